use sandflow::{task, workflow};

#[task]
pub fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[workflow]
pub fn wf(a: i64, #[default("three")] b: i64) -> i64 {
    add::call(a, b)
}

fn main() {}
