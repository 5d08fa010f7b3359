use sandflow::SfType;

#[derive(SfType)]
pub enum Order {
    Latte,
    Custom { shots: i64 },
}

fn main() {}
