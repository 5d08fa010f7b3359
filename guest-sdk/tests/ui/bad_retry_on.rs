use sandflow::task;

#[task(retry_on = "sometimes")]
pub fn step(a: i64) -> i64 {
    a
}

fn main() {}
