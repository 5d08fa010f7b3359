//! Flyte's own examples (flytesnacks), ported one Rust module per Python file in
//! `examples/flyte-examples`, run with flytekit's outputs as the expected values (flytekit
//! 1.x run locally on the Python files: see BENCHMARKS.md, "Flyte's examples").

use crate::guests::{module, repo, run, run_with, sandflow_command};
use sandflow_host::scheduler::{Options, TreeNode, TreeOptions};
use serde_json::json;

const GUEST: &str = "flyte_examples";

fn tree_of(entity: &str, inputs: serde_json::Value) -> TreeNode {
    let r = run_with(GUEST, entity, inputs, Options::default());
    assert!(r.result.is_ok(), "{entity}: {:?}", r.result);
    r.scheduler.tree(&TreeOptions::default())
}

/// Every node under `t`, depth first.
fn all(t: &TreeNode) -> Vec<&TreeNode> {
    let mut out = vec![t];
    for c in &t.children {
        out.extend(all(c));
    }
    out
}

/// What the nodes of entity `entity` printed, in the tree's order.
fn printed(t: &TreeNode, entity: &str) -> Vec<String> {
    all(t)
        .into_iter()
        .filter(|n| n.entity == entity)
        .map(|n| n.stdout.clone().unwrap_or_default().trim().to_string())
        .collect()
}

#[test]
fn named_outputs_pass_one_field_on_and_return_a_record_built_from_two() {
    // flytekit: slope_and_intercept_values(slope=-1.5, intercept=3.0)
    assert_eq!(
        run(GUEST, "simple_wf_with_named_outputs", json!({})).unwrap(),
        json!({"slope": -1.5, "intercept": 3.0})
    );
    // Field access and the record built are the host's: two task nodes, no accessor tasks.
    let tree = tree_of("simple_wf_with_named_outputs", json!({}));
    let names: Vec<&str> = tree.children.iter().map(|c| c.entity.as_str()).collect();
    assert_eq!(names, ["named_outputs::slope", "named_outputs::intercept"]);
}

#[test]
fn workflow_chains_slope_into_intercept() {
    let xy = json!({"x": [-3, 0, 3], "y": [7, 4, -2]});
    // flytekit: simple_wf(x=[-3, 0, 3], y=[7, 4, -2]) == 3.0
    assert_eq!(
        run(GUEST, "workflow::simple_wf", xy.clone()).unwrap(),
        json!(3.0)
    );
    assert_eq!(
        run(GUEST, "simple_wf_with_partial", xy).unwrap(),
        json!(-1.5)
    );
}

#[test]
fn launch_plans_default_fix_and_override_the_workflows_inputs() {
    let xy = json!({"x": [-3, 0, 3], "y": [7, 4, -2]});
    assert_eq!(run(GUEST, "default_lp", xy).unwrap(), json!(3.0));
    assert_eq!(run(GUEST, "simple_wf_lp", json!({})).unwrap(), json!(3.0));
    // flytekit: simple_wf_lp(x=[3, 5, 3], y=[-3, 2, -2]) == -9.25
    assert_eq!(
        run(
            GUEST,
            "simple_wf_lp",
            json!({"x": [3, 5, 3], "y": [-3, 2, -2]})
        )
        .unwrap(),
        json!(-9.25)
    );
    assert_eq!(
        run(GUEST, "fixed_inputs", json!({"y": [7, 4, -2]})).unwrap(),
        json!(3.0)
    );
}

#[test]
fn subworkflow_splits_a_tuple_and_nests_workflows_and_a_launch_plan() {
    // flytekit: slope_intercept_wf(x=[-3, 0, 3], y=[7, 4, -2]) == (-1.5, 3.0)
    assert_eq!(
        run(
            GUEST,
            "slope_intercept_wf",
            json!({"x": [-3, 0, 3], "y": [7, 4, -2]})
        )
        .unwrap(),
        json!({"0": -1.5, "1": 3.0})
    );
    // flytekit: regression_line_wf() == -4.5, nested_regression_line_wf() == -4.5,
    // nested_regression_line_lp() == -7.5
    assert_eq!(
        run(GUEST, "regression_line_wf", json!({})).unwrap(),
        json!(-4.5)
    );
    assert_eq!(
        run(GUEST, "regression_line_wf", json!({"val": 7})).unwrap(),
        json!(-7.5)
    );
    assert_eq!(
        run(GUEST, "nested_regression_line_wf", json!({})).unwrap(),
        json!(-4.5)
    );
    assert_eq!(
        run(GUEST, "nested_regression_line_lp", json!({})).unwrap(),
        json!(-7.5)
    );
}

#[test]
fn attribute_access_reads_elements_entries_fields_and_tuple_parts_without_tasks() {
    let cases = [
        ("list_wf", vec!["apple"]),
        ("dict_wf", vec!["banana"]),
        ("dataclass_wf", vec!["banana"]),
        ("advanced_workflow", vec!["banana", "banana", "banana"]),
    ];
    for (wf, expected) in cases {
        let tree = tree_of(wf, json!({}));
        assert_eq!(
            printed(&tree, "attribute_access::print_message"),
            expected,
            "{wf}"
        );
        // Only the calls of the Python file are nodes: no accessor tasks.
        let tasks = tree.children.len();
        let python_calls = if wf == "advanced_workflow" { 6 } else { 2 };
        assert_eq!(tasks, python_calls, "{wf}");
    }
    let tree = tree_of("advanced_workflow", json!({}));
    assert_eq!(
        printed(&tree, "attribute_access::print_list"),
        [r#"["banana"]"#]
    );
    assert_eq!(
        printed(&tree, "attribute_access::print_dict"),
        [r#"{"fruit": "banana"}"#]
    );
}

#[test]
fn chained_tasks_and_workflows_run_in_the_order_given_though_no_data_passes() {
    let order = |t: &TreeNode, entities: &[&str]| -> Vec<u64> {
        entities
            .iter()
            .map(|e| {
                let n = all(t)
                    .into_iter()
                    .find(|n| n.entity == *e)
                    .unwrap_or_else(|| panic!("no {e}"));
                n.start_us.expect("started")
            })
            .collect()
    };
    let ends = |t: &TreeNode, e: &str| -> u64 {
        all(t)
            .into_iter()
            .find(|n| n.entity == e)
            .and_then(|n| n.end_us)
            .expect("ended")
    };
    let opts = Options {
        max_parallelism: 8,
        ..Options::default()
    };
    let r = run_with(GUEST, "chain_tasks_wf", json!({}), opts.clone());
    assert!(r.result.is_ok(), "{:?}", r.result);
    let t = r.scheduler.tree(&TreeOptions::default());
    let starts = order(&t, &["chain_entities::t1", "chain_entities::t2"]);
    assert!(starts[0] >= ends(&t, "chain_entities::t0"));
    assert!(starts[1] >= ends(&t, "chain_entities::t1"));
    assert_eq!(printed(&t, "chain_entities::t0"), ["Running t0"]);

    for wf in ["chain_workflows_wf", "chain_launchplans_wf"] {
        let r = run_with(GUEST, wf, json!({}), opts.clone());
        assert!(r.result.is_ok(), "{wf}: {:?}", r.result);
        let t = r.scheduler.tree(&TreeOptions::default());
        let t1 = order(&t, &["chain_entities::t1"])[0];
        assert!(t1 >= ends(&t, "chain_entities::t0"), "{wf}");
    }
}

#[test]
fn the_enum_example_takes_an_order_by_value_and_an_enum_by_name() {
    // flytekit: coffee_maker(coffee="latte") == coffee_maker_enum(coffee_enum=Coffee.LATTE)
    // == "Preparing latte ..."
    assert_eq!(
        run(GUEST, "coffee_maker", json!({"coffee": "latte"})).unwrap(),
        json!("Preparing latte ...")
    );
    assert_eq!(
        run(GUEST, "coffee_maker_enum", json!({"coffee_enum": "Latte"})).unwrap(),
        json!("Preparing latte ...")
    );
    let e = run(GUEST, "coffee_maker", json!({"coffee": "mocha"})).unwrap_err();
    assert!(
        format!("{e:?}").contains("'mocha' is not a valid Coffee"),
        "{e:?}"
    );
}

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
fn the_cli_takes_a_short_name_while_it_is_unique_and_lists_the_candidates_when_not() {
    let m = module(GUEST);
    let m = m.to_str().unwrap();
    let (ok, out, err) = cli(&["run", m, "regression_line_wf", "--val", "7"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "-7.5");
    let (ok, out, err) = cli(&["run", m, "fixed_inputs", "--y", "[7, 4, -2]"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "3.0");
    // `slope` is a task of three modules.
    let (ok, _, err) = cli(&["run", m, "slope", "--x", "[1]", "--y", "[1]"]);
    assert!(!ok);
    assert!(
        err.contains(
            "`slope` names more than one entity: named_outputs::slope, subworkflow::slope, \
             workflow::slope; give the full name"
        ),
        "{err}"
    );
    let (ok, out, err) = cli(&[
        "run",
        m,
        "workflow::slope",
        "--x",
        "[-3, 0, 3]",
        "--y",
        "[7, 4, -2]",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "-1.5");
    // describe lists the full names.
    let (ok, out, err) = cli(&["describe", m]);
    assert!(ok, "{err}");
    assert!(out.contains("chain_entities::t1"), "{out}");
    assert!(out.contains("subworkflow::regression_line_wf"), "{out}");
}
