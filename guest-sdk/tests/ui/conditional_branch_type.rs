use sandflow::{conditional, task, workflow};

#[task]
pub fn area(r: f64) -> f64 {
    r * r
}

#[task]
pub fn count(r: f64) -> i64 {
    r as i64
}

#[workflow]
pub fn wf(r: f64) -> f64 {
    conditional("c")
        .if_(r.lt(1.0))
        .then(|| area::call(r))
        .else_()
        .then(|| count::call(r))
}

fn main() {}
