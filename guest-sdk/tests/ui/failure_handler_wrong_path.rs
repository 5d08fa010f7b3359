use sandflow::{task, workflow};

#[task]
pub fn clean_up(a: i64) {
    println!("cleaning up after {a}");
}

#[task]
pub fn inc(a: i64) -> i64 {
    a + 1
}

// A misspelt handler is a compile error at its name, not a load-time one.
#[workflow(on_failure = clean_upp)]
pub fn inc_wf(a: i64) -> i64 {
    inc::call(a)
}

fn main() {}
