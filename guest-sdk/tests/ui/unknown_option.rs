use sandflow::task;

#[task(retries = 2, priority = 3)]
pub fn step(a: i64) -> i64 {
    a
}

fn main() {}
