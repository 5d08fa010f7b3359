use sandflow::{conditional, task, workflow};

#[task]
pub fn first(l: Vec<i64>) -> i64 {
    l[0]
}

#[workflow]
pub fn wf(l: Vec<i64>) -> i64 {
    conditional("c")
        .if_(l.eq(vec![1]))
        .then(|| first::call(l))
        .else_()
        .fail("not [1]")
}

fn main() {}
