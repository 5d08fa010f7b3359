use sandflow::task;

#[task]
pub fn identity<T>(a: T) -> T {
    a
}

fn main() {}
