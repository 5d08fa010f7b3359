//! Flyte's conditionals guide, ported (`examples/flyte-examples/src/conditional.rs`), run
//! end to end against the outputs flytekit gives for the same inputs (flytekit 1.16.31, the
//! Python file run locally: every value and failure message below is what it printed); the
//! branches not taken show as skipped in `run --tree` and in `show` (from the store).

// Flyte's example computes with 3.14, not π: the expected values are flytekit's.
#![allow(clippy::approx_constant)]

use crate::guests::{module, repo, run, run_with, sandflow_command};
use sandflow_host::scheduler::{Options, TreeNode, TreeOptions};
use serde_json::json;

const GUEST: &str = "flyte_examples";

fn radius(wf: &str, r: f64) -> Result<serde_json::Value, sandflow_host::scheduler::Failure> {
    run(GUEST, wf, json!({ "radius": r }))
}

#[test]
fn shape_properties_takes_the_branch_its_radius_falls_in() {
    // flytekit: shape_properties(radius=0.5) == 3.14, (radius=3.0) == 28.259999999999998.
    assert_eq!(radius("shape_properties", 0.5).unwrap(), json!(3.14));
    assert_eq!(
        radius("shape_properties", 3.0).unwrap(),
        json!(28.259999999999998)
    );
}

#[test]
fn multiple_branches_fail_outside_the_range_with_flytes_message() {
    let wf = "shape_properties_with_multiple_branches";
    assert_eq!(radius(wf, 0.5).unwrap(), json!(3.14));
    assert_eq!(radius(wf, 3.0).unwrap(), json!(28.259999999999998));
    assert_eq!(radius(wf, 10.0).unwrap(), json!(314.0));
    let f = radius(wf, 11.0).unwrap_err();
    assert_eq!(f.message, "The input must be within the range of 0 to 10.");
    assert_eq!(f.path, format!("conditional::{wf}/{wf}"));
    // 0.05 is below the first case: no case holds, the else branch fails.
    let f = radius(wf, 0.05).unwrap_err();
    assert_eq!(f.message, "The input must be within the range of 0 to 10.");
}

#[test]
fn a_conditionals_output_feeds_a_task() {
    // flytekit: 3.14 * 3.14 * 3.14, the area of the circumference of radius 0.5.
    assert_eq!(
        radius("shape_properties_accept_conditional_output", 0.5).unwrap(),
        json!(30.959144000000002)
    );
    let f = radius("shape_properties_accept_conditional_output", -1.0).unwrap_err();
    assert_eq!(f.message, "The input must exist between 0 and 10.");
}

#[test]
fn nested_conditions_choose_inside_the_outer_branch() {
    // flytekit: nested_conditions(radius=0.4) == 2.5120000000000005.
    assert_eq!(
        radius("nested_conditions", 0.4).unwrap(),
        json!(2.5120000000000005)
    );
    assert_eq!(radius("nested_conditions", 0.7).unwrap(), json!(1.5386));
    assert_eq!(radius("nested_conditions", 5.0).unwrap(), json!(78.5));
    let f = radius("nested_conditions", 0.95).unwrap_err();
    assert_eq!(f.message, "0.9 is an outlier.");
    assert_eq!(
        f.path,
        "conditional::nested_conditions/nested_conditions/inner_nested_conditions"
    );
    let f = radius("nested_conditions", 12.0).unwrap_err();
    assert_eq!(f.message, "The input must be within the range of 0 to 10.");
}

#[test]
fn boolean_conditions_follow_the_coin_and_the_input() {
    assert_eq!(
        run(GUEST, "boolean_input_wf", json!({"boolean_input": true})).unwrap(),
        json!(0)
    );
    assert_eq!(
        run(GUEST, "boolean_input_wf", json!({"boolean_input": false})).unwrap(),
        json!(-1)
    );
    let mut sides = std::collections::HashSet::new();
    for seed in 0..8 {
        let heads = run(GUEST, "coin_toss", json!({ "seed": seed })).unwrap();
        let heads = heads.as_bool().expect("a bool");
        sides.insert(heads);
        let expected = if heads { 0 } else { -1 };
        assert_eq!(
            run(GUEST, "boolean_wf", json!({ "seed": seed })).unwrap(),
            json!(expected),
            "seed {seed}"
        );
        let r = run(
            GUEST,
            "consume_task_output",
            json!({ "radius": 0.4, "seed": seed }),
        )
        .unwrap();
        let expected = if heads {
            2.5120000000000005
        } else {
            0.5024000000000001
        };
        assert_eq!(r, json!(expected), "seed {seed}");
    }
    assert_eq!(sides.len(), 2, "eight seeds give both sides of the coin");
    // The default seed (5), as Flyte's `boolean_wf()`.
    let heads = run(GUEST, "coin_toss", json!({"seed": 5})).unwrap() == json!(true);
    assert_eq!(
        run(GUEST, "boolean_wf", json!({})).unwrap(),
        json!(if heads { 0 } else { -1 })
    );
}

fn find<'a>(t: &'a TreeNode, path: &str) -> &'a TreeNode {
    fn go<'a>(t: &'a TreeNode, path: &str) -> Option<&'a TreeNode> {
        if t.path == path {
            return Some(t);
        }
        t.children.iter().find_map(|c| go(c, path))
    }
    go(t, path).unwrap_or_else(|| panic!("no node {path} in {t:#?}"))
}

#[test]
fn the_tree_shows_the_branch_taken_and_the_ones_skipped() {
    let report = run_with(
        GUEST,
        "nested_conditions",
        json!({"radius": 0.7}),
        Options::default(),
    );
    assert!(report.result.is_ok());
    let tree = report.scheduler.tree(&TreeOptions::default());
    let outer = find(&tree, "conditional::nested_conditions/nested_conditions");
    assert_eq!(
        (outer.kind.as_str(), outer.state.as_str()),
        ("conditional", "SUCCEEDED")
    );
    let inner = "conditional::nested_conditions/nested_conditions/inner_nested_conditions";
    let states: Vec<(String, String)> = find(&tree, inner)
        .children
        .iter()
        .map(|c| (c.name.clone(), c.state.clone()))
        .collect();
    assert_eq!(
        states,
        [
            (
                "conditional::calculate_circle_circumference".to_string(),
                "SKIPPED".to_string()
            ),
            (
                "conditional::calculate_circle_area".to_string(),
                "SUCCEEDED".to_string()
            ),
        ]
    );
    let outer_area = find(
        &tree,
        "conditional::nested_conditions/nested_conditions/conditional::calculate_circle_area",
    );
    assert_eq!(outer_area.state, "SKIPPED");
}

#[test]
fn run_tree_and_show_list_the_skipped_branches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("x.db");
    let out = sandflow_command()
        .args(["run", "--tree", "--db"])
        .arg(&db)
        .arg(module(GUEST))
        .args(["shape_properties", "--radius", "3.0"])
        .current_dir(repo())
        .output()
        .expect("sandflow runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "28.259999999999998"
    );
    let line = |text: &str, name: &str| -> String {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_lowercase()
    };
    assert!(
        line(&stderr, "calculate_circle_circumference").contains("skipped"),
        "{stderr}"
    );
    assert!(
        line(&stderr, "calculate_circle_area").contains("succeeded"),
        "{stderr}"
    );

    let at = stderr.find("(execution ").expect("an execution id");
    let id = stderr[at + "(execution ".len()..]
        .split(')')
        .next()
        .expect("an id");
    let show = sandflow_command()
        .args(["show", id, "--db"])
        .arg(&db)
        .current_dir(repo())
        .output()
        .expect("sandflow runs");
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let tree = text.split_once("\ntree\n").expect("a tree").1;
    assert!(
        line(tree, "calculate_circle_circumference").contains("skipped"),
        "{text}"
    );
    assert!(
        line(tree, "calculate_circle_area").contains("succeeded"),
        "{text}"
    );
    assert!(
        tree.lines()
            .any(|l| l.contains("└─ shape_properties") && l.contains("conditional")),
        "{text}"
    );
}

#[test]
fn conditionals_run_in_a_dynamics_graph_and_in_each_element_of_a_map() {
    assert_eq!(
        run("fixtures", "collatz_steps", json!({"l": [6, 7, 1, 0, -3]})).unwrap(),
        json!([3, 22, 4, 0, -8])
    );
    assert_eq!(
        run("fixtures", "collatz_dyn", json!({"n": 6})).unwrap(),
        json!(1)
    );
    assert_eq!(
        run("fixtures", "collatz_dyn", json!({"n": 3})).unwrap(),
        json!(5)
    );
    let f = run("fixtures", "collatz_dyn", json!({"n": 2})).unwrap_err();
    assert_eq!(f.message, "reached 1");
    assert_eq!(f.path, "conditionals::collatz_dyn/again");
}
