//! Flyte's `basics/launch_plan.py`: launch plans over `workflow::simple_wf`, with no
//! defaults, with default inputs, and with a fixed input.

use sandflow::launch_plan;

#[launch_plan(crate::workflow::simple_wf)]
pub fn default_lp(x: Vec<i64>, y: Vec<i64>) -> f64;

#[launch_plan(crate::workflow::simple_wf, defaults(x = vec![-3, 0, 3], y = vec![7, 4, -2]))]
pub fn simple_wf_lp() -> f64;

#[launch_plan(crate::workflow::simple_wf, fixed(x = vec![-3, 0, 3]))]
pub fn fixed_inputs(y: Vec<i64>) -> f64;
