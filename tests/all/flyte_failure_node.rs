//! Flyte's failure-node example (`examples/flyte-examples/src/failure_node.rs`) against
//! flytekit 1.16.31 run locally on the Python file (with `clean_up(name, err:
//! Optional[FlyteError] = None)`): which tasks run, what fails, and that each failed
//! workflow's handler ran once. flytekit printed:
//!
//! - `subwf(name="c")`: `Creating cluster: c`, `1 2`, `Cleaning up cluster c due to
//!   FlyteError(message=".. Fail!", ..)`, then failed; `delete_cluster` did not run.
//! - `wf1()`: `Creating cluster: my_cluster`, `Creating cluster: another_cluster`, `1 2`,
//!   `Cleaning up cluster another_cluster ..`, `Cleaning up cluster my_cluster ..`, failed:
//!   the handler ran twice, once per failed workflow.
//! - `wf2()`: `Creating cluster: my_cluster`, `1 2`, `Cleaning up cluster my_cluster due to
//!   None` (the workflow handler `clean_up_wf` passes no error), failed.
//!
//! One difference, on purpose: flytekit's local run of `wf1` stops at the sub-workflow's
//! failure although `wf1` asks for FAIL_AFTER_EXECUTABLE_NODES_COMPLETE; sandflow follows
//! the policy as Flyte's backend does, so `wf1`'s own `t1` (which does not wait for `subwf`)
//! runs too, and fails.

use crate::guests::{module, repo, run_with, sandflow_command};
use sandflow_host::scheduler::{Options, TreeNode, TreeOptions};
use serde_json::json;

const GUEST: &str = "flyte_examples";

/// Runs `entity`, which must fail; its failure's message and its tree.
fn failed(entity: &str, inputs: serde_json::Value) -> (String, String, TreeNode) {
    let r = run_with(GUEST, entity, inputs, Options::default());
    let f = r.result.expect_err("the workflow fails");
    (f.path, f.message, r.scheduler.tree(&TreeOptions::default()))
}

fn all(t: &TreeNode) -> Vec<&TreeNode> {
    let mut out = vec![t];
    for c in &t.children {
        out.extend(all(c));
    }
    out
}

/// (state, what it printed) of each node of `entity`, in the tree's order.
fn nodes(t: &TreeNode, entity: &str) -> Vec<(String, String)> {
    all(t)
        .into_iter()
        .filter(|n| n.entity == format!("failure_node::{entity}"))
        .map(|n| {
            let out = n.stdout.clone().unwrap_or_default().trim().to_string();
            (n.state.clone(), out)
        })
        .collect()
}

fn pair(state: &str, out: &str) -> (String, String) {
    (state.to_string(), out.to_string())
}

#[test]
fn subwf_cleans_up_once_when_t1_fails_and_does_not_delete_the_cluster() {
    let (path, message, tree) = failed("subwf", json!({"name": "c"}));
    assert_eq!(path, "failure_node::subwf/failure_node::t1");
    assert!(message.contains("Fail!"), "{message}");
    assert!(
        message.ends_with("(failure handler failure_node::clean_up ran and succeeded)"),
        "{message}"
    );
    assert_eq!(
        nodes(&tree, "create_cluster"),
        [pair("SUCCEEDED", "Creating cluster: c")]
    );
    assert_eq!(nodes(&tree, "t1"), [pair("FAILED", "1 2")]);
    assert_eq!(nodes(&tree, "delete_cluster"), [pair("SKIPPED", "")]);
    let cleaned = nodes(&tree, "clean_up");
    assert_eq!(cleaned.len(), 1, "{cleaned:?}");
    assert_eq!(cleaned[0].0, "SUCCEEDED");
    assert!(
        cleaned[0].1.starts_with("Cleaning up cluster c due to ") && cleaned[0].1.contains("Fail!"),
        "{cleaned:?}"
    );
}

#[test]
fn wf1_and_its_sub_workflow_each_run_their_handler_once() {
    let (_, message, tree) = failed("wf1", json!({}));
    assert!(message.contains("Fail!"), "{message}");
    let cleaned: Vec<String> = nodes(&tree, "clean_up")
        .into_iter()
        .map(|(state, out)| {
            assert_eq!(state, "SUCCEEDED");
            out.split(" due to ").next().unwrap_or_default().to_string()
        })
        .collect();
    // The sub-workflow's handler (under `subwf`), then wf1's own (its last node).
    assert_eq!(
        cleaned,
        [
            "Cleaning up cluster another_cluster",
            "Cleaning up cluster my_cluster"
        ]
    );
    let created: Vec<String> = nodes(&tree, "create_cluster")
        .into_iter()
        .map(|(_, out)| out)
        .collect();
    assert_eq!(
        created,
        [
            "Creating cluster: my_cluster",
            "Creating cluster: another_cluster"
        ]
    );
    // Neither workflow deleted its cluster: each delete waited for a failed t1.
    assert!(nodes(&tree, "delete_cluster")
        .iter()
        .all(|(state, _)| state == "SKIPPED"));
}

#[test]
fn wf2s_workflow_handler_runs_once_and_show_records_it_as_a_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("x.db");
    let out = sandflow_command()
        .args(["run", "--tree", "--db"])
        .arg(&db)
        .arg(module(GUEST))
        .arg("wf2")
        .current_dir(repo())
        .output()
        .expect("sandflow runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "wf2 fails: {stderr}");
    assert!(
        stderr.contains("(failure handler failure_node::clean_up_wf ran and succeeded)"),
        "{stderr}"
    );
    let (_, _, tree) = failed("wf2", json!({}));
    assert_eq!(
        nodes(&tree, "clean_up"),
        [pair(
            "SUCCEEDED",
            "Cleaning up cluster my_cluster due to None"
        )]
    );
    assert_eq!(nodes(&tree, "clean_up_wf").len(), 1);

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
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_lowercase()
    };
    assert!(line("clean_up_wf").contains("succeeded"), "{text}");
    assert!(line("delete_cluster").contains("skipped"), "{text}");
    assert!(text.contains("failure handler"), "{text}");
}
