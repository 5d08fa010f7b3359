use sandflow::task;

#[task(retries = 2, cache = true)]
pub fn step(a: i64) -> i64 {
    a
}

fn main() {}
