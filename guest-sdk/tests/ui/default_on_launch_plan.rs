use sandflow::{launch_plan, task, workflow};

#[task]
pub fn inc(a: i64) -> i64 {
    a + 1
}

#[workflow]
pub fn wf(a: i64) -> i64 {
    inc::call(a)
}

#[launch_plan(wf)]
pub fn wf_lp(#[default(3)] a: i64) -> i64;

fn main() {}
