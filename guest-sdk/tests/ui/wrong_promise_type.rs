use sandflow::{task, workflow};

#[task]
pub fn name(a: i64) -> String {
    a.to_string()
}

#[task]
pub fn double(a: i64) -> i64 {
    a * 2
}

#[workflow]
pub fn wf(a: i64) -> i64 {
    double::call(name::call(a))
}

fn main() {}
