//! Flyte's `basics/workflow.py`: two tasks chained by a workflow.

use sandflow::{task, workflow};

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
pub fn simple_wf(x: Vec<i64>, y: Vec<i64>) -> f64 {
    let slope_value = slope::call(x, y);
    intercept::call(x, y, slope_value)
}

// `functools.partial(slope, x=x)` binds an argument ahead of the call; a Rust call names
// every argument where it is made.
#[workflow]
pub fn simple_wf_with_partial(x: Vec<i64>, y: Vec<i64>) -> f64 {
    slope::call(x, y)
}
