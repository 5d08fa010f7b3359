use sandflow::task;

#[task]
pub fn name() -> &'static str {
    "x"
}

fn main() {}
