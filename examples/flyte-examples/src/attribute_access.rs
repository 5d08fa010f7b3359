//! Flyte's `data_types_and_io/attribute_access.py`: an element of a list, an entry of a map,
//! a field of a record and an element of a tuple, read from promises by the host, with no
//! task in between.

use sandflow::{task, workflow, SfType};
use std::collections::HashMap;

#[task]
pub fn print_message(message: String) {
    println!("{message}");
}

#[task]
pub fn list_task() -> Vec<String> {
    vec!["apple".into(), "banana".into()]
}

#[workflow]
pub fn list_wf() {
    let items = list_task::call();
    let first_item = items.at(0);
    print_message::call(first_item);
}

#[task]
pub fn dict_task() -> HashMap<String, String> {
    HashMap::from([("fruit".into(), "banana".into())])
}

#[workflow]
pub fn dict_wf() {
    let fruit_dict = dict_task::call();
    print_message::call(fruit_dict.get("fruit"));
}

#[derive(SfType)]
pub struct Fruit {
    pub name: String,
}

#[task]
pub fn dataclass_task() -> Fruit {
    Fruit {
        name: "banana".into(),
    }
}

#[workflow]
pub fn dataclass_wf() {
    let fruit_instance = dataclass_task::call();
    print_message::call(fruit_instance.name());
}

type Advanced = (
    HashMap<String, Vec<String>>,
    Vec<HashMap<String, String>>,
    HashMap<String, Fruit>,
);

#[task]
pub fn advance_task() -> Advanced {
    (
        HashMap::from([("fruits".into(), vec!["banana".into()])]),
        vec![HashMap::from([("fruit".into(), "banana".into())])],
        HashMap::from([(
            "fruit".into(),
            Fruit {
                name: "banana".into(),
            },
        )]),
    )
}

#[task]
pub fn print_list(fruits: Vec<String>) {
    println!("{fruits:?}");
}

#[task]
pub fn print_dict(fruit_dict: HashMap<String, String>) {
    println!("{fruit_dict:?}");
}

#[workflow]
pub fn advanced_workflow() {
    let (dictionary_list, list_dict, dict_dataclass) = advance_task::call().split();
    print_message::call(dictionary_list.get("fruits").at(0));
    print_message::call(list_dict.at(0).get("fruit"));
    print_message::call(dict_dataclass.get("fruit").name());

    print_list::call(dictionary_list.get("fruits"));
    print_dict::call(list_dict.at(0));
}
