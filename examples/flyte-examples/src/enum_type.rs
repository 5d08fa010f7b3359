//! Flyte's `data_types_and_io/enum_type.py`: an enum passed between tasks and taken as a
//! workflow's input (by variant name: `--coffee_enum Latte`).

use sandflow::{task, workflow, SfType};

#[derive(SfType, Clone, Copy, Debug, PartialEq)]
pub enum Coffee {
    Espresso,
    Americano,
    Latte,
    Cappuccino,
}

impl Coffee {
    /// The value Flyte's enum gives each member (its misspelt "cappucccino" kept).
    pub fn value(self) -> &'static str {
        match self {
            Coffee::Espresso => "espresso",
            Coffee::Americano => "americano",
            Coffee::Latte => "latte",
            Coffee::Cappuccino => "cappucccino",
        }
    }
}

#[task]
pub fn take_order(coffee: String) -> Result<Coffee, String> {
    [
        Coffee::Espresso,
        Coffee::Americano,
        Coffee::Latte,
        Coffee::Cappuccino,
    ]
    .into_iter()
    .find(|c| c.value() == coffee)
    .ok_or_else(|| format!("'{coffee}' is not a valid Coffee"))
}

#[task]
pub fn prep_order(coffee_enum: Coffee) -> String {
    format!("Preparing {} ...", coffee_enum.value())
}

#[workflow]
pub fn coffee_maker(coffee: String) -> String {
    let coffee_enum = take_order::call(coffee);
    prep_order::call(coffee_enum)
}

// The workflow can also accept an enum value
#[workflow]
pub fn coffee_maker_enum(coffee_enum: Coffee) -> String {
    prep_order::call(coffee_enum)
}
