use sandflow::task;

#[task]
pub fn shout(s: &str) -> String {
    s.to_uppercase()
}

#[task]
pub fn total(l: &[i64]) -> i64 {
    l.iter().sum()
}

fn main() {}
