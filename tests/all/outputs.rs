//! Several outputs and constants as promises (issue 16): entities named by module path, an
//! index out of range at run time, and plain values where promises are expected.

use crate::guests::{load, run, run_with};
use sandflow_host::scheduler::{Options, TreeOptions};
use serde_json::json;

#[test]
fn two_tasks_of_one_short_name_in_two_modules_are_two_entities() {
    // first::t1 adds one, second::t1 multiplies by ten.
    assert_eq!(
        run("fixtures", "two_t1", json!({"a": 4})).unwrap(),
        json!(50)
    );
    let decl = &load("fixtures").decl;
    assert!(decl.get("first::t1").is_some() && decl.get("second::t1").is_some());
    // A crate root entity keeps its plain name.
    assert!(decl.get("two_t1").is_some());
    let e = decl.find("t1").unwrap_err();
    assert_eq!(
        e.to_string(),
        "`t1` names more than one entity: first::t1, second::t1; give the full name"
    );
    assert_eq!(decl.find("inc_wf").unwrap().name, "stats::inc_wf");
}

#[test]
fn an_index_out_of_range_fails_the_node_that_reads_it() {
    assert_eq!(
        run(
            "fixtures",
            "sixth_plus_one",
            json!({"l": [0, 1, 2, 3, 4, 5]})
        )
        .unwrap(),
        json!(6)
    );
    let e = run("fixtures", "sixth_plus_one", json!({"l": [1, 2]})).unwrap_err();
    let m = format!("{e:?}");
    assert!(m.contains("increment"), "names the node: {m}");
    assert!(
        m.contains("input `a`: l[5]: index 5 is out of range of a list of 2 elements"),
        "{m}"
    );
}

#[test]
fn a_dynamic_mixes_constants_with_promises_and_runs_no_task_for_them() {
    let r = run_with(
        "fixtures",
        "incs_or_zeros",
        json!({"l": [3, -1, 0, 7]}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    assert_eq!(
        crate::guests::output("fixtures", "incs_or_zeros", r).unwrap(),
        json!([4, 0, 0, 8])
    );
    // Two tasks, for the two positive elements: the constants are no nodes.
    assert_eq!(tree.children.len(), 2, "{:?}", tree.children);
}

#[test]
fn a_dynamic_returns_a_plain_value_with_no_task() {
    assert_eq!(
        run("fixtures", "plain_or_call", json!({"a": 2})).unwrap(),
        json!(3)
    );
    let r = run_with(
        "fixtures",
        "plain_or_call",
        json!({"a": 0}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    assert!(tree.children.is_empty(), "{:?}", tree.children);
    assert_eq!(
        crate::guests::output("fixtures", "plain_or_call", r).unwrap(),
        json!(-1)
    );
}
