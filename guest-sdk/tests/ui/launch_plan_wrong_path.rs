use sandflow::{launch_plan, task, workflow};

pub mod stats {
    use super::*;

    #[task]
    pub fn inc(a: i64) -> i64 {
        a + 1
    }

    #[workflow]
    pub fn inc_wf(a: i64) -> i64 {
        inc::call(a)
    }
}

#[launch_plan(stats::inc_wff)]
pub fn inc_lp(a: i64) -> i64;

fn main() {}
