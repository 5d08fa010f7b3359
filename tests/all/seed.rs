//! The seed's two programs (Flyte's "Nested Parallelization" page), end to end.

use crate::guests::{run, run_with};
use proptest::prelude::*;
use sandflow_host::scheduler::{Options, TreeNode, TreeOptions};
use serde_json::{json, Value as Json};

fn model(l: &[i64], add: i64) -> Json {
    json!(l.iter().map(|x| x + add).collect::<Vec<_>>())
}

#[test]
fn nested_dynamics_adds_three_to_each_item() {
    assert_eq!(
        run(
            "nested_dynamics",
            "multi_wf",
            json!({"l": [1, 2, 3, 4, 5, 6], "chunk": 2})
        )
        .unwrap(),
        json!([4, 5, 6, 7, 8, 9])
    );
}

#[test]
fn mixed_parallelism_adds_two_to_each_item() {
    assert_eq!(
        run(
            "mixed_parallelism",
            "multi_wf",
            json!({"l": [1, 2, 3, 4, 5, 6], "chunk": 2})
        )
        .unwrap(),
        json!([3, 4, 5, 6, 7, 8])
    );
}

#[test]
fn chunk_larger_than_the_list_makes_one_level2() {
    for (guest, add) in [("nested_dynamics", 3), ("mixed_parallelism", 2)] {
        let r = run_with(
            guest,
            "multi_wf",
            json!({"l": [5, 6, 7], "chunk": 10}),
            Options::default(),
        );
        let tree = r.scheduler.tree(&TreeOptions::default());
        let level1 = &tree.children[0];
        assert_eq!(
            level1
                .children
                .iter()
                .filter(|c| c.entity == "level2")
                .count(),
            1,
            "{guest}"
        );
        assert_eq!(
            crate::guests::output(guest, "multi_wf", r).unwrap(),
            model(&[5, 6, 7], add)
        );
    }
}

#[test]
fn empty_list_gives_empty_list() {
    for guest in ["nested_dynamics", "mixed_parallelism"] {
        assert_eq!(
            run(guest, "multi_wf", json!({"l": [], "chunk": 3})).unwrap(),
            json!([]),
            "{guest}"
        );
    }
}

#[test]
fn chunk_one_makes_one_level2_per_item() {
    let r = run_with(
        "nested_dynamics",
        "multi_wf",
        json!({"l": [10, 20, 30, 40], "chunk": 1}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    assert_eq!(
        tree.children[0]
            .children
            .iter()
            .filter(|c| c.entity == "level2")
            .count(),
        4
    );
    assert_eq!(
        crate::guests::output("nested_dynamics", "multi_wf", r).unwrap(),
        json!([13, 23, 33, 43])
    );
    assert_eq!(
        run(
            "mixed_parallelism",
            "multi_wf",
            json!({"l": [10, 20, 30, 40], "chunk": 1})
        )
        .unwrap(),
        json!([12, 22, 32, 42])
    );
}

#[test]
fn chunk_zero_fails_saying_the_chunk_was_zero() {
    for guest in ["nested_dynamics", "mixed_parallelism"] {
        let f = run(guest, "multi_wf", json!({"l": [1, 2, 3], "chunk": 0})).unwrap_err();
        assert_eq!(f.path, "multi_wf/level1", "{guest}");
        assert!(
            f.message.contains("chunk must be positive, got 0"),
            "{guest}: {}",
            f.message
        );
        assert!(
            f.backtrace.as_deref().unwrap_or("").contains("level1"),
            "{guest}: {:?}",
            f.backtrace
        );
    }
}

fn find<'a>(n: &'a TreeNode, entity: &str, out: &mut Vec<&'a TreeNode>) {
    if n.entity == entity {
        out.push(n);
    }
    n.children.iter().for_each(|c| find(c, entity, out));
}

#[test]
fn nested_tree_has_three_level2_and_six_child_executions_of_core_wf_lp() {
    let r = run_with(
        "nested_dynamics",
        "multi_wf",
        json!({"l": [1, 2, 3, 4, 5, 6], "chunk": 2}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    assert_eq!(
        (
            tree.entity.as_str(),
            tree.kind.as_str(),
            tree.state.as_str()
        ),
        ("multi_wf", "workflow", "SUCCEEDED")
    );
    assert_eq!(tree.children.len(), 1);
    let level1 = &tree.children[0];
    assert_eq!(
        (level1.entity.as_str(), level1.kind.as_str()),
        ("level1", "dynamic")
    );
    let names: Vec<&str> = level1.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["level2[0]", "level2[1]", "level2[2]", "reduce"]);
    let mut lps = Vec::new();
    find(&tree, "core_wf_lp", &mut lps);
    assert_eq!(lps.len(), 6);
    let mut execs: Vec<u32> = lps
        .iter()
        .map(|n| n.execution.expect("a launch plan starts a child execution"))
        .collect();
    execs.sort();
    execs.dedup();
    assert_eq!(execs.len(), 6, "each launch plan call is its own execution");
    for lp in &lps {
        let steps: Vec<&str> = lp.children.iter().map(|c| c.entity.as_str()).collect();
        assert_eq!(steps, ["step1", "step2"]);
        assert!(lp
            .children
            .iter()
            .all(|c| c.state == "SUCCEEDED" && c.attempts == 1));
        let (s1, s2) = (&lp.children[0], &lp.children[1]);
        assert!(
            s1.end_us.unwrap() <= s2.start_us.unwrap(),
            "step2 starts after step1 ends"
        );
    }
    assert_eq!(lps[3].path, "multi_wf/level1/level2[1]/core_wf_lp[1]");
    assert_eq!(r.scheduler.attempts_started(), 1 + 3 + 12 + 1);
}

#[test]
fn mixed_tree_maps_within_each_level2() {
    let r = run_with(
        "mixed_parallelism",
        "multi_wf",
        json!({"l": [1, 2, 3, 4, 5, 6], "chunk": 2}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    let level1 = &tree.children[0];
    let level2: Vec<&TreeNode> = level1
        .children
        .iter()
        .filter(|c| c.entity == "level2")
        .collect();
    assert_eq!(level2.len(), 3);
    for l2 in level2 {
        assert_eq!(l2.kind, "workflow");
        assert_eq!(l2.children.len(), 1);
        let m = &l2.children[0];
        assert_eq!(
            (m.entity.as_str(), m.kind.as_str(), m.children.len()),
            ("mappable", "map", 2)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn long_random_lists_match_a_plain_rust_model(l in proptest::collection::vec(-1_000_000i64..1_000_000, 0..300), chunk in 1i64..40) {
        prop_assert_eq!(run("nested_dynamics", "multi_wf", json!({"l": l, "chunk": chunk})).unwrap(), model(&l, 3));
        prop_assert_eq!(run("mixed_parallelism", "multi_wf", json!({"l": l, "chunk": chunk})).unwrap(), model(&l, 2));
    }
}

#[test]
fn max_parallelism_does_not_change_results() {
    let l: Vec<i64> = (0..200).collect();
    for maxp in [1, 3, 25] {
        let opts = Options {
            max_parallelism: maxp,
            ..Options::default()
        };
        let r = run_with(
            "mixed_parallelism",
            "multi_wf",
            json!({"l": l, "chunk": 7}),
            opts,
        );
        assert_eq!(
            crate::guests::output("mixed_parallelism", "multi_wf", r).unwrap(),
            model(&l, 2),
            "max_parallelism {maxp}"
        );
    }
}

/// The scheduler is a pure function of its events: the events of a real run, fed to a fresh
/// scheduler without any sandbox, give the same result, the same commands and the same tree.
#[test]
fn a_runs_events_replay_to_the_same_result_without_running_anything() {
    use sandflow_host::json::inputs_from_json;
    use sandflow_host::scheduler::{Command, Scheduler};
    let sandbox = crate::guests::load("nested_dynamics");
    let decl = sandbox.decl.get("multi_wf").unwrap();
    let inputs = inputs_from_json(
        &sandbox.decl,
        decl,
        &[
            ("l".into(), json!([1, 2, 3, 4, 5, 6])),
            ("chunk".into(), json!(2)),
        ],
    )
    .unwrap();
    let (report, events) = crate::guests::host()
        .run_logged(&sandbox, "multi_wf", inputs.clone(), Options::default())
        .unwrap();
    assert_eq!(events.len(), 17, "one event per task execution");
    // Events survive serialization, as a durable store would keep them.
    let events: Vec<sandflow_host::scheduler::Event> = events
        .iter()
        .map(|e| serde_json::from_value(serde_json::to_value(e).unwrap()).unwrap())
        .collect();
    let mut replay =
        Scheduler::new(sandbox.decl.clone(), "multi_wf", inputs, Options::default()).unwrap();
    let mut runs = replay.start().len();
    let mut finished = None;
    for e in events {
        for c in replay.on_event(e) {
            match c {
                Command::Run(_) | Command::Launch(_) => runs += 1,
                Command::Finished(r) => finished = Some(r),
                Command::Abort { .. } => {}
            }
        }
    }
    assert_eq!(runs, 17, "the replay asks for the same task executions");
    assert_eq!(finished, Some(report.result.clone()));
    let (a, b) = (
        report.scheduler.tree(&TreeOptions::default()),
        replay.tree(&TreeOptions::default()),
    );
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::to_value(&b).unwrap()
    );
}

#[test]
fn a_ten_thousand_item_random_list_matches_the_model() {
    // A fixed pseudo-random list (xorshift), so a failure reproduces.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let l: Vec<i64> = (0..10_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2_000_001) as i64 - 1_000_000
        })
        .collect();
    for (guest, add, chunk) in [("nested_dynamics", 3, 97), ("mixed_parallelism", 2, 333)] {
        let out = run(guest, "multi_wf", json!({"l": l, "chunk": chunk})).unwrap();
        assert_eq!(out, model(&l, add), "{guest}");
    }
}
