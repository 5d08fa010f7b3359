//! The seed's "Nested Dynamics" program. For 6 items and a chunk size of 2:
//!
//! multi_wf -> level1 -> level2 -> core_wf -> step1 -> step2
//!                              -> core_wf -> step1 -> step2
//!                       level2 -> core_wf -> step1 -> step2
//!                              -> core_wf -> step1 -> step2
//!                       level2 -> core_wf -> step1 -> step2
//!                              -> core_wf -> step1 -> step2
use sandflow::{dynamic, launch_plan, task, workflow};

#[task]
pub fn step1(a: i64) -> i64 {
    a + 1
}

#[task]
pub fn step2(a: i64) -> i64 {
    a + 2
}

#[workflow]
pub fn core_wf(a: i64) -> i64 {
    step2::call(step1::call(a))
}

#[launch_plan(core_wf)]
pub fn core_wf_lp(a: i64) -> i64;

#[dynamic]
pub fn level2(l: Vec<i64>) -> Vec<i64> {
    l.into_iter().map(core_wf_lp::call).collect::<Vec<_>>()
}

#[task]
pub fn reduce(l: Vec<Vec<i64>>) -> Vec<i64> {
    l.into_iter().flatten().collect()
}

#[dynamic]
pub fn level1(l: Vec<i64>, chunk: i64) -> Vec<i64> {
    assert!(chunk > 0, "chunk must be positive, got {chunk}");
    let size = usize::try_from(chunk).unwrap_or(usize::MAX);
    let v: Vec<_> = l.chunks(size).map(|c| level2::call(c.to_vec())).collect();
    reduce::call(v)
}

#[workflow]
pub fn multi_wf(l: Vec<i64>, chunk: i64) -> Vec<i64> {
    level1::call(l, chunk)
}
