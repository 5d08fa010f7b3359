//! A field of a conditional's output, read by the host (the fixture the conditional benchmark
//! maps over 10 000 elements).

use crate::guests::{run, run_with};
use sandflow_host::scheduler::{Options, TreeOptions};
use serde_json::json;

#[test]
fn a_field_of_a_conditionals_pair_is_read_without_a_task() {
    assert_eq!(
        run(
            "fixtures",
            "conditionals::sign_field_steps",
            json!({"l": [4, 7, -1]})
        )
        .unwrap(),
        json!([2, 3, -2])
    );
    let r = run_with(
        "fixtures",
        "conditionals::sign_field_step",
        json!({"n": 4}),
        Options::default(),
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    // One task ran: the taken branch; the field access is the host's.
    assert_eq!(r.scheduler.attempts_started(), 1);
    let tree = r.scheduler.tree(&TreeOptions::default());
    assert_eq!(tree.children.len(), 1, "the conditional alone: {tree:?}");
}
