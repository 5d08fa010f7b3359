//! Flyte's conditionals guide (flytesnacks `advanced_composition/conditional.py`), ported:
//! the same entities, inputs and conditions, `conditional(..).if_(..).then(..)` with each
//! branch's call in a closure. `coin_toss` flips its own seeded generator (not Python's
//! `random`), so which seed gives heads differs from Flyte; the workflows follow the coin.

// Flyte's example computes with 3.14, not π, and so does the port.
#![allow(clippy::approx_constant)]

use sandflow::{conditional, task, workflow};

#[task]
pub fn calculate_circle_circumference(radius: f64) -> f64 {
    2.0 * 3.14 * radius
}

#[task]
pub fn calculate_circle_area(radius: f64) -> f64 {
    3.14 * radius * radius
}

#[workflow]
pub fn shape_properties(radius: f64) -> f64 {
    conditional("shape_properties")
        .if_(radius.ge(0.1) & radius.lt(1.0))
        .then(|| calculate_circle_circumference::call(radius))
        .else_()
        .then(|| calculate_circle_area::call(radius))
}

#[workflow]
pub fn shape_properties_with_multiple_branches(radius: f64) -> f64 {
    conditional("shape_properties_with_multiple_branches")
        .if_(radius.ge(0.1) & radius.lt(1.0))
        .then(|| calculate_circle_circumference::call(radius))
        .elif_(radius.ge(1.0) & radius.le(10.0))
        .then(|| calculate_circle_area::call(radius))
        .else_()
        .fail("The input must be within the range of 0 to 10.")
}

#[workflow]
pub fn shape_properties_accept_conditional_output(radius: f64) -> f64 {
    let result = conditional("shape_properties_accept_conditional_output")
        .if_(radius.ge(0.1) & radius.lt(1.0))
        .then(|| calculate_circle_circumference::call(radius))
        .elif_(radius.ge(1.0) & radius.le(10.0))
        .then(|| calculate_circle_area::call(radius))
        .else_()
        .fail("The input must exist between 0 and 10.");
    calculate_circle_area::call(result)
}

/// Mimic a condition to verify the successful execution of an operation.
#[task]
pub fn coin_toss(seed: i64) -> bool {
    // SplitMix64, one step: a seeded draw in [0, 1) without a dependency.
    let mut z = (seed as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let r = (z >> 11) as f64 / (1u64 << 53) as f64;
    r < 0.5
}

/// Mimic a task that handles failure.
#[task]
pub fn failed() -> i64 {
    -1
}

/// Mimic a task that handles success.
#[task]
pub fn success() -> i64 {
    0
}

#[workflow]
pub fn boolean_wf(#[default(5)] seed: i64) -> i64 {
    let result = coin_toss::call(seed);
    conditional("coin_toss")
        .if_(result.is_true())
        .then(success::call)
        .else_()
        .then(failed::call)
}

#[workflow]
pub fn boolean_input_wf(boolean_input: bool) -> i64 {
    conditional("boolean_input_conditional")
        .if_(boolean_input.is_true())
        .then(success::call)
        .else_()
        .then(failed::call)
}

#[workflow]
pub fn nested_conditions(radius: f64) -> f64 {
    conditional("nested_conditions")
        .if_(radius.ge(0.1) & radius.lt(1.0))
        .then(|| {
            conditional("inner_nested_conditions")
                .if_(radius.lt(0.5))
                .then(|| calculate_circle_circumference::call(radius))
                .elif_(radius.ge(0.5) & radius.lt(0.9))
                .then(|| calculate_circle_area::call(radius))
                .else_()
                .fail("0.9 is an outlier.")
        })
        .elif_(radius.ge(1.0) & radius.le(10.0))
        .then(|| calculate_circle_area::call(radius))
        .else_()
        .fail("The input must be within the range of 0 to 10.")
}

#[workflow]
pub fn consume_task_output(radius: f64, #[default(5)] seed: i64) -> f64 {
    let is_heads = coin_toss::call(seed);
    conditional("double_or_square")
        .if_(is_heads.is_true())
        .then(|| calculate_circle_circumference::call(radius))
        .else_()
        .then(|| calculate_circle_area::call(radius))
}
