use sandflow::task;

pub struct S;

impl S {
    #[task]
    pub fn step(&self, a: i64) -> i64 {
        a
    }
}

fn main() {}
