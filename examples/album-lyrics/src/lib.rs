use sandflow::task;
#[task]
pub fn ok(a: i64) -> i64 { a }
