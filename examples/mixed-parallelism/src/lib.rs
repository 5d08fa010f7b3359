//! The seed's "Mixed Parallelism" program. For 6 items and a chunk size of 2:
//!
//! multi_wf -> level1 -> level2 -> mappable
//!                              -> mappable
//!                       level2 -> mappable
//!                              -> mappable
//!                       level2 -> mappable
//!                              -> mappable
use sandflow::{dynamic, map, task, workflow};

#[task]
pub fn mappable(a: i64) -> i64 {
    a + 2
}

#[workflow]
pub fn level2(l: Vec<i64>) -> Vec<i64> {
    map(mappable::entity()).over(l)
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
