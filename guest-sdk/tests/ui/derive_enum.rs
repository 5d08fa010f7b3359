use sandflow::SfType;

#[derive(SfType)]
pub enum Color {
    Red,
    Green,
}

fn main() {}
