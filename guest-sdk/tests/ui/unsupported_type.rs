use sandflow::task;

#[task]
pub fn step(a: u8) -> i64 {
    a as i64
}

fn main() {}
