//! Flyte's `basics/named_outputs.py`: tasks return named tuples (records), a workflow passes
//! one field of a promise on and returns a record built from fields of two promises.

use sandflow::{task, workflow, SfType};

/// Flyte's `NamedTuple("slope_value", [("slope", float)])`.
#[derive(SfType)]
pub struct SlopeValue {
    pub slope: f64,
}

#[task]
pub fn slope(x: Vec<i64>, y: Vec<i64>) -> SlopeValue {
    let sum_xy: i64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    let sum_x_squared: i64 = x.iter().map(|a| a * a).sum();
    let (n, sum_x, sum_y) = (x.len() as i64, x.iter().sum::<i64>(), y.iter().sum::<i64>());
    let slope = (n * sum_xy - sum_x * sum_y) as f64 / (n * sum_x_squared - sum_x.pow(2)) as f64;
    SlopeValue { slope }
}

#[derive(SfType)]
pub struct InterceptValue {
    pub intercept: f64,
}

#[task]
pub fn intercept(x: Vec<i64>, y: Vec<i64>, slope: f64) -> InterceptValue {
    let mean_x = x.iter().sum::<i64>() as f64 / x.len() as f64;
    let mean_y = y.iter().sum::<i64>() as f64 / y.len() as f64;
    let intercept = mean_y - slope * mean_x;
    InterceptValue { intercept }
}

#[derive(SfType)]
pub struct SlopeAndInterceptValues {
    pub slope: f64,
    pub intercept: f64,
}

#[workflow]
pub fn simple_wf_with_named_outputs(
    #[default(vec![-3, 0, 3])] x: Vec<i64>,
    #[default(vec![7, 4, -2])] y: Vec<i64>,
) -> SlopeAndInterceptValues {
    let slope_value = slope::call(x, y);
    let intercept_value = intercept::call(x, y, slope_value.slope());
    SlopeAndInterceptValuesPromises {
        slope: slope_value.slope(),
        intercept: intercept_value.intercept(),
    }
}
