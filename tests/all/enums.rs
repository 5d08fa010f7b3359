//! Enums of unit variants (a coffee menu; Flyte's own coffee example is in
//! flyte_examples.rs): passed between tasks as variant indices, read and printed by name, an
//! unknown name an error listing the variants; and maps with integer keys, whose keys JSON
//! writes in decimal.

use crate::guests::{load, module, repo, run, sandflow_command};
use sandflow_host::json::inputs_from_json;
use serde_json::json;

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = sandflow_command()
        .args(args)
        .current_dir(repo())
        .output()
        .expect("sandflow runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_enum_passes_between_tasks_and_prints_by_name() {
    // Flyte's own coffee example (a string in, the enum between two tasks) runs in
    // flyte_examples.rs.
    assert_eq!(
        run(
            "fixtures",
            "two_coffees_on",
            json!({"coffee_enum": "Latte"})
        )
        .unwrap(),
        json!("Espresso")
    );
    assert_eq!(
        run(
            "fixtures",
            "next_coffees",
            json!({"coffees": ["Espresso", "Cappuccino", "Latte"]})
        )
        .unwrap(),
        json!(["Americano", "Espresso", "Cappuccino"])
    );
}

#[test]
fn an_unknown_variant_in_json_input_is_an_error_listing_the_variants() {
    let sandbox = load("fixtures");
    let entity = sandbox.decl.get("two_coffees_on").expect("declared");
    let given = [("coffee_enum".to_string(), json!("Mocha"))];
    let e = inputs_from_json(&sandbox.decl, entity, &given).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `coffee_enum`: expected Coffee (one of Espresso, Americano, Latte, Cappuccino), \
         found the string \"Mocha\""
    );
}

#[test]
fn the_cli_reads_and_prints_enums_by_name() {
    let m = module("fixtures");
    let m = m.to_str().unwrap();
    let (code, out, err) = cli(&["run", m, "two_coffees_on", "--coffee_enum", "Cappuccino"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "\"Americano\"");
    let (code, out, err) = cli(&["run", m, "next_coffees", "--coffees", "[\"Latte\"]"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "[\"Cappuccino\"]");
    let (code, _, err) = cli(&["run", m, "two_coffees_on", "--coffee_enum", "latte"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("expected Coffee (one of Espresso, Americano, Latte, Cappuccino)"),
        "{err}"
    );
}

#[test]
fn describe_lists_the_enum_and_its_variants() {
    let m = module("fixtures");
    let (code, out, err) = cli(&["describe", m.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("enum         Coffee { Espresso, Americano, Latte, Cappuccino }"),
        "{out}"
    );
    assert!(out.contains("(coffee_enum: Coffee) -> Coffee"), "{out}");
}

#[test]
fn an_integer_keyed_map_crosses_the_boundary_keys_in_decimal() {
    assert_eq!(
        run(
            "fixtures",
            "next_by_number",
            json!({"menu": {"-1": "Latte", "9": "Cappuccino"}})
        )
        .unwrap(),
        json!({"0": "Cappuccino", "10": "Espresso"})
    );
    let m = module("fixtures");
    let m = m.to_str().unwrap();
    let (code, _, err) = cli(&["run", m, "next_by_number", "--menu", r#"{"one": "Latte"}"#]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(r#"input `menu` at ["one"]: expected an integer key"#),
        "{err}"
    );
    let (code, out, err) = cli(&["describe", m]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("(menu: map<i64, Coffee>) -> map<i64, Coffee>"),
        "{out}"
    );
}
