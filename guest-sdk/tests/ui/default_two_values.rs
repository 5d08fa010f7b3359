use sandflow::task;

#[task]
pub fn inc(#[default(1, 2)] a: i64) -> i64 {
    a + 1
}

fn main() {}
