//! Tagged unions (`enum Shape { Circle(f64), Square(Side) }`) end to end: JSON in as
//! `{"Variant": value}`, through tasks and a workflow, JSON out; an unknown variant is an
//! error listing the variants; `describe` lists them.

use crate::guests::{module, repo, run, sandflow_command};
use serde_json::json;

#[test]
fn a_union_passes_into_between_and_out_of_tasks_and_workflows() {
    assert_eq!(
        run(
            "fixtures",
            "unions::area",
            json!({"shape": {"Circle": 2.0}})
        )
        .unwrap(),
        json!(12.0)
    );
    assert_eq!(
        run(
            "fixtures",
            "unions::grown",
            json!({"shape": {"Square": {"length": 2.0}}, "by": 1.0})
        )
        .unwrap(),
        json!({"0": {"Square": {"length": 3.0}}, "1": 9.0})
    );
    assert_eq!(
        run(
            "fixtures",
            "unions::grow",
            json!({"shape": {"Circle": 1.5}, "by": 0.5})
        )
        .unwrap(),
        json!({"Circle": 2.0})
    );
}

#[test]
fn an_unknown_variant_or_a_wrong_value_is_a_clear_error() {
    let out = |shape: serde_json::Value| {
        let o = sandflow_command()
            .arg("run")
            .arg(module("fixtures"))
            .arg("unions::area")
            .arg("--shape")
            .arg(shape.to_string())
            .current_dir(repo())
            .output()
            .expect("sandflow runs");
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = out(json!({"Triangle": 1.0}));
    assert!(
        e.contains("Shape (one of Circle(f64), Square(Side))")
            && e.contains("unknown variant `Triangle`"),
        "{e}"
    );
    let e = out(json!({"Circle": "big"}));
    assert!(e.contains("input `shape` at .Circle: expected f64"), "{e}");
    let e = out(json!("Circle"));
    assert!(e.contains("as {\"Variant\": value}"), "{e}");
}

#[test]
fn describe_lists_a_unions_variants() {
    let o = sandflow_command()
        .arg("describe")
        .arg(module("fixtures"))
        .current_dir(repo())
        .output()
        .expect("sandflow runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.lines()
            .any(|l| l.starts_with("union") && l.contains("Shape { Circle(f64), Square(Side) }")),
        "{text}"
    );
    assert!(text.contains("Side { length: f64 }"), "{text}");
}
