use sandflow::launch_plan;

#[launch_plan(max_parallelism = 3)]
pub fn lp(a: i64) -> i64;

fn main() {}
