//! Flyte's `advanced_composition/subworkflow.py`: a workflow returning a tuple, split by the
//! workflow that calls it; a workflow nested in another; a launch plan called from one.

use sandflow::{launch_plan, task, workflow, UseDefault};

#[task]
pub fn slope(x: Vec<i64>, y: Vec<i64>) -> f64 {
    let sum_xy: i64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    let sum_x_squared: i64 = x.iter().map(|a| a * a).sum();
    let (n, sum_x, sum_y) = (x.len() as i64, x.iter().sum::<i64>(), y.iter().sum::<i64>());
    (n * sum_xy - sum_x * sum_y) as f64 / (n * sum_x_squared - sum_x.pow(2)) as f64
}

#[task]
pub fn intercept(x: Vec<i64>, y: Vec<i64>, slope: f64) -> f64 {
    let mean_x = x.iter().sum::<i64>() as f64 / x.len() as f64;
    let mean_y = y.iter().sum::<i64>() as f64 / y.len() as f64;
    mean_y - slope * mean_x
}

#[workflow]
pub fn slope_intercept_wf(x: Vec<i64>, y: Vec<i64>) -> (f64, f64) {
    let slope_value = slope::call(x, y);
    let intercept_value = intercept::call(x, y, slope_value);
    (slope_value, intercept_value)
}

#[task]
pub fn regression_line(val: i64, slope_value: f64, intercept_value: f64) -> f64 {
    (slope_value * val as f64) + intercept_value // y = mx + c
}

#[workflow]
pub fn regression_line_wf(
    #[default(5)] val: i64,
    #[default(vec![-3, 0, 3])] x: Vec<i64>,
    #[default(vec![7, 4, -2])] y: Vec<i64>,
) -> f64 {
    let (slope_value, intercept_value) = slope_intercept_wf::call(x, y).split();
    regression_line::call(val, slope_value, intercept_value)
}

#[workflow]
pub fn nested_regression_line_wf() -> f64 {
    regression_line_wf::call(UseDefault, UseDefault, UseDefault)
}

#[launch_plan(regression_line_wf, defaults(val = 7, x = vec![-3, 0, 3], y = vec![7, 4, -2]))]
pub fn regression_line_workflow() -> f64;

#[workflow]
pub fn nested_regression_line_lp() -> f64 {
    regression_line_workflow::call()
}
