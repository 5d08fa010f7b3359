//! Constructs of Flyte's workflow language: default values of inputs, and ordering calls
//! without passing data (`a >> b`).

use crate::guests::{module, repo, run, run_with, sandflow_command};
use sandflow_host::scheduler::{Options, TreeNode, TreeOptions};
use serde_json::json;

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = sandflow_command()
        .args(args)
        .current_dir(repo())
        .output()
        .expect("sandflow runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_workflow_input_left_out_takes_its_default_and_a_given_one_wins() {
    assert_eq!(
        run("fixtures", "add_with_default", json!({"a": 1})).unwrap(),
        json!(4)
    );
    assert_eq!(
        run("fixtures", "add_with_default", json!({"a": 1, "b": 5})).unwrap(),
        json!(6)
    );
    // A task's own default, of a string input.
    assert_eq!(
        run("fixtures", "hello", json!({})).unwrap(),
        json!("hello, world")
    );
}

#[test]
fn the_cli_runs_a_workflow_with_and_without_its_defaulted_input() {
    let m = module("fixtures");
    let m = m.to_str().unwrap();
    let (ok, out, err) = cli(&["run", m, "add_with_default", "--a", "1"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "4");
    let (ok, out, err) = cli(&["run", m, "add_with_default", "--a", "1", "--b", "5"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "6");
    // The undefaulted input is still required.
    let (ok, _, err) = cli(&["run", m, "add_with_default"]);
    assert!(!ok);
    assert!(err.contains("missing input `a`"), "{err}");
}

#[test]
fn a_launch_plan_falls_back_to_its_workflows_default_and_its_own_wins() {
    assert_eq!(
        run("fixtures", "add_with_default_lp", json!({"a": 1})).unwrap(),
        json!(4)
    );
    assert_eq!(
        run("fixtures", "add_with_plan_default_lp", json!({"a": 1})).unwrap(),
        json!(11)
    );
    // A caller still overrides either.
    assert_eq!(
        run(
            "fixtures",
            "add_with_plan_default_lp",
            json!({"a": 1, "b": 0})
        )
        .unwrap(),
        json!(1)
    );
}

#[test]
fn describe_shows_each_inputs_default() {
    let m = module("fixtures");
    let (ok, out, err) = cli(&["describe", m.to_str().unwrap()]);
    assert!(ok, "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().any(|w| w == name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_string()
    };
    assert!(line("add_with_default").contains("(a: i64, b: i64 = 3) -> i64"));
    assert!(line("add_with_default_lp").contains("(a: i64, b: i64 = 3) -> i64"));
    assert!(line("add_with_plan_default_lp").contains("(a: i64, b: i64 = 10) -> i64"));
    assert!(line("hello").contains(r#"(name: string = "world") -> string"#));
}

fn find<'a>(t: &'a TreeNode, name: &str) -> &'a TreeNode {
    t.children
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} under {}", t.name))
}

#[test]
fn a_call_made_to_wait_starts_after_the_other_ends_though_no_data_passes() {
    // Room for both calls at once: only the ordering keeps them apart.
    let opts = Options {
        max_parallelism: 8,
        ..Options::default()
    };
    let r = run_with("fixtures", "ordered", json!({"a": 2}), opts);
    let tree = r.scheduler.tree(&TreeOptions::default());
    let (first, second) = (
        find(&tree, "spin_briefly[0]"),
        find(&tree, "spin_briefly[1]"),
    );
    let end = first.end_us.expect("the first call ended");
    let start = second.start_us.expect("the second call started");
    assert!(
        start >= end,
        "second started at {start}us, first ended at {end}us"
    );
    assert_eq!(
        r.result.expect("succeeds"),
        Some(sandflow_contract::Value::Int(8))
    );
}
