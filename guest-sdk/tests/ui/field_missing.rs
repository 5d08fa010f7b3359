// A field that the record does not have is a compile error at the access.
use sandflow::{task, workflow, SfType};

#[derive(SfType)]
pub struct Fruit {
    pub name: String,
}

#[task]
pub fn dataclass_task() -> Fruit {
    Fruit { name: "banana".into() }
}

#[task]
pub fn print_message(message: String) {
    println!("{message}");
}

#[workflow]
pub fn dataclass_wf() {
    print_message::call(dataclass_task::call().colour());
}

fn main() {}
