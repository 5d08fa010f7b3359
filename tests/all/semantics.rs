//! Flyte's semantics, and where sandflow goes past them: launch plans, maps over every kind of
//! entity, min success ratios, retries, typed errors, timeouts, records and maps.

use crate::guests::{load, output, run, run_with};
use sandflow_host::json::{inputs_from_json, InputError};
use sandflow_host::scheduler::{Options, TreeOptions};
use serde_json::json;

fn album(name: &str, lyrics: &[&str]) -> serde_json::Value {
    json!({"name": name, "songs": lyrics.iter().enumerate().map(|(i, l)| json!({"title": format!("s{i}"), "lyrics": l})).collect::<Vec<_>>()})
}

#[test]
fn launch_plan_uses_defaults_and_fixed_inputs() {
    // min_len defaults to 3 and lowercase is fixed to true: "Hi" is too short, "Hello" and
    // "hello" are one word.
    let out = run(
        "album_lyrics",
        "album_lp",
        json!({"album": album("A", &["Hello hello Hi"])}),
    )
    .unwrap();
    assert_eq!(out["songs"][0]["counts"], json!({"hello": 2}));
    assert_eq!(out["top_word"], json!("hello"));
    // A default can be overridden by the caller.
    let out = run(
        "album_lyrics",
        "album_lp",
        json!({"album": album("A", &["Hello hello Hi"]), "min_len": 1}),
    )
    .unwrap();
    assert_eq!(out["songs"][0]["counts"], json!({"hello": 2, "hi": 1}));
}

#[test]
fn fixed_launch_plan_inputs_cannot_be_given() {
    let s = load("album_lyrics");
    let lp = s.decl.get("album_lp").unwrap();
    let err = inputs_from_json(
        &s.decl,
        lp,
        &[
            ("album".into(), album("A", &[])),
            ("lowercase".into(), json!(false)),
        ],
    )
    .unwrap_err();
    assert_eq!(
        err,
        InputError::Fixed {
            entity: "album_lp".into(),
            input: "lowercase".into()
        }
    );
}

#[test]
fn album_pipeline_runs_one_child_execution_per_album_with_records_and_maps() {
    let albums = json!([
        album(
            "Blue",
            &["Blue blue sky, the sky is blue", "Rain in the sky"]
        ),
        album("Empty", &[])
    ]);
    let r = run_with(
        "album_lyrics",
        "library",
        json!({"albums": albums}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    let per_album = &tree.children[0];
    assert_eq!(per_album.children.len(), 2);
    assert!(per_album
        .children
        .iter()
        .all(|c| c.kind == "launch plan" && c.execution.is_some()));
    let out = output("album_lyrics", "library", r).unwrap();
    assert_eq!(
        out["vocabulary"],
        json!({"blue": 3, "rain": 1, "sky": 3, "the": 2})
    );
    assert_eq!(out["albums"][0]["words"], json!(9));
    assert_eq!(out["albums"][0]["top_word"], json!("blue"));
    assert_eq!(
        out["albums"][1],
        json!({"album": "Empty", "words": 0, "songs": [], "top_word": null})
    );
}

#[test]
fn map_with_min_success_ratio_gives_none_for_failed_elements() {
    let out = run(
        "fixtures",
        "ratio_map",
        json!({"l": [1, -2, 3, -4], "ratio": 0.5}),
    )
    .unwrap();
    assert_eq!(out, json!([10, null, 30, null]));
}

#[test]
fn map_fails_when_fewer_elements_succeed_than_the_ratio_asks() {
    let f = run(
        "fixtures",
        "ratio_map",
        json!({"l": [1, -2, 3, -4], "ratio": 0.75}),
    )
    .unwrap_err();
    assert!(f.message.contains("negative input"), "{}", f.message);
    assert!(
        f.message.contains("more than min_success allows"),
        "{}",
        f.message
    );
    assert!(f.path.starts_with("ratio_map/non_negative["), "{}", f.path);
}

#[test]
fn map_without_ratio_fails_on_the_first_failed_element() {
    assert_eq!(
        run("fixtures", "strict_map", json!({"l": [1, 2, 3]})).unwrap(),
        json!([10, 20, 30])
    );
    let f = run("fixtures", "strict_map", json!({"l": [1, -2, 3]})).unwrap_err();
    assert_eq!(f.path, "strict_map/non_negative[1]");
}

#[test]
fn map_over_a_workflow_runs_it_per_element() {
    assert_eq!(
        run(
            "fixtures",
            "map_over_workflow",
            json!({"l": [1, 2, 3], "b": 5})
        )
        .unwrap(),
        json!([7, 9, 11])
    );
}

#[test]
fn map_over_a_launch_plan_starts_a_child_execution_per_element() {
    let r = run_with(
        "fixtures",
        "map_over_launch_plan",
        json!({"l": [1, 2, 3]}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    let m = &tree.children[0];
    assert_eq!(m.kind, "map");
    assert!(m
        .children
        .iter()
        .all(|c| c.kind == "launch plan" && c.execution.is_some()));
    assert_eq!(
        output("fixtures", "map_over_launch_plan", r).unwrap(),
        json!([102, 104, 106])
    );
}

#[test]
fn map_over_a_dynamic_expands_each_element() {
    assert_eq!(
        run("fixtures", "map_over_dynamic", json!({"l": [1, 10]})).unwrap(),
        json!([[2, 4], [20, 22]])
    );
}

#[test]
fn retries_run_every_attempt_and_keep_them_in_the_tree() {
    let r = run_with(
        "fixtures",
        "always_fails",
        json!({"a": 3}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    assert_eq!(tree.attempts, 3);
    assert_eq!(tree.failed_attempts.len(), 3);
    let f = r.result.unwrap_err();
    assert_eq!((f.attempt, f.attempts), (3, 3));
    assert!(
        f.message.contains("always fails (input 3)"),
        "{}",
        f.message
    );
    assert!(f.stderr_tail.unwrap_or_default().contains("always fails"));
}

#[test]
fn typed_errors_surface_with_their_message() {
    assert_eq!(
        run("fixtures", "parse", json!({"s": " 42 "})).unwrap(),
        json!(42)
    );
    let f = run("fixtures", "parse", json!({"s": "x1"})).unwrap_err();
    assert_eq!(f.message, "not a number: \"x1\"");
    assert_eq!(f.path, "parse");
}

#[test]
fn a_task_past_its_timeout_fails_with_the_limit() {
    let f = run("fixtures", "spin", json!({"a": 1})).unwrap_err();
    assert_eq!(f.message, "timed out after 100 ms");
}

#[test]
fn a_failing_branch_fails_the_workflow_with_its_path() {
    assert_eq!(
        run("fixtures", "branches", json!({"a": 2})).unwrap(),
        json!(24)
    );
    let f = run("fixtures", "branches", json!({"a": -1})).unwrap_err();
    assert_eq!(f.path, "branches/non_negative");
    assert!(f.message.contains("negative input -1"));
}

#[test]
fn nested_maps_and_optionals_cross_the_boundary_intact() {
    let m = json!({"a": [1, null, 3], "b": [], "c": [null]});
    assert_eq!(
        run("fixtures", "echo_nested", json!({"m": m.clone()})).unwrap(),
        m
    );
}

#[test]
fn run_all_policy_lets_independent_branches_finish_before_failing() {
    let r = run_with(
        "fixtures",
        "run_all_branches",
        json!({"a": -1}),
        Options::default(),
    );
    let tree = r.scheduler.tree(&TreeOptions::default());
    let states: Vec<(&str, &str)> = tree
        .children
        .iter()
        .map(|c| (c.entity.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("spin_briefly", "SUCCEEDED"),
            ("non_negative", "FAILED"),
            ("add", "SKIPPED")
        ]
    );
    let f = r.result.unwrap_err();
    assert_eq!(f.path, "run_all_branches/non_negative");
    assert_eq!(
        run("fixtures", "run_all_branches", json!({"a": 2})).unwrap(),
        json!(24)
    );
}

#[test]
fn fail_fast_policy_aborts_running_siblings() {
    let r = run_with("fixtures", "branches", json!({"a": -1}), Options::default());
    let f = r.result.unwrap_err();
    assert_eq!(f.path, "branches/non_negative");
    let tree = r.scheduler.tree(&TreeOptions::default());
    let add = tree.children.iter().find(|c| c.entity == "add").unwrap();
    assert_eq!(add.state, "SKIPPED");
}

#[test]
fn map_min_success_counts_elements() {
    assert_eq!(
        run("fixtures", "min_success_map", json!({"l": [1, -1, 2]})).unwrap(),
        json!([10, null, 20])
    );
    let f = run("fixtures", "min_success_map", json!({"l": [1, -1, -2]})).unwrap_err();
    assert!(
        f.message.contains("2 of 3 elements failed"),
        "{}",
        f.message
    );
    let f = run("fixtures", "min_success_map", json!({"l": [1]})).unwrap_err();
    assert!(
        f.message
            .contains("min_success is 2, but the map has only 1 elements"),
        "{}",
        f.message
    );
}

#[test]
fn run_overrides_replace_what_tasks_declare() {
    use sandflow_host::scheduler::TaskOverrides;
    // always_fails declares retries = 2; the run says none.
    let opts = Options {
        overrides: TaskOverrides {
            retries: Some(0),
            ..Default::default()
        },
        ..Options::default()
    };
    let r = run_with("fixtures", "always_fails", json!({"a": 1}), opts);
    assert_eq!(r.result.unwrap_err().attempts, 1);
    // spin declares 100 ms; the run says 30.
    let opts = Options {
        overrides: TaskOverrides {
            timeout_ms: Some(30),
            ..Default::default()
        },
        ..Options::default()
    };
    let r = run_with("fixtures", "spin", json!({"a": 1}), opts);
    assert_eq!(r.result.unwrap_err().message, "timed out after 30 ms");
}

#[test]
fn fuel_is_a_deterministic_cpu_budget() {
    assert!(run("fixtures", "burn", json!({"n": 1000})).is_ok());
    for _ in 0..2 {
        let f = run("fixtures", "burn", json!({"n": 100_000_000})).unwrap_err();
        assert_eq!(f.message, "ran out of its fuel budget of 1000000");
    }
    use sandflow_host::scheduler::TaskOverrides;
    let opts = Options {
        overrides: TaskOverrides {
            fuel: Some(10),
            ..Default::default()
        },
        ..Options::default()
    };
    let r = run_with("fixtures", "burn", json!({"n": 1000}), opts);
    assert_eq!(
        r.result.unwrap_err().message,
        "ran out of its fuel budget of 10"
    );
}

/// Fail-fast stops a failed scope's running siblings even when the run goes on (here a map
/// with a zero min success ratio absorbs the failure): the spinning sibling is aborted at
/// once, not left to run to its 30 s timeout.
#[test]
fn fail_fast_aborts_running_siblings_while_the_run_goes_on() {
    // Loaded (and, run alone, built) before the clock starts: only the run is timed.
    crate::guests::load("fixtures");
    let t0 = std::time::Instant::now();
    let r = run_with(
        "fixtures",
        "absorb",
        json!({"l": [-1, -2]}),
        Options::default(),
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t0.elapsed()
    );
    let tree = r.scheduler.tree(&TreeOptions {
        max_map_elements: 10,
    });
    for el in &tree.children[0].children {
        let states: Vec<(&str, &str)> = el
            .children
            .iter()
            .map(|c| (c.entity.as_str(), c.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("spin_long", "ABORTED"),
                ("non_negative", "FAILED"),
                ("add", "SKIPPED")
            ]
        );
    }
    assert_eq!(
        output("fixtures", "absorb", r).unwrap(),
        json!([null, null])
    );
}
