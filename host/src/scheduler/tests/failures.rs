//! Failures, retries and cancel: fail fast, node paths, stderr tails, retry policies,
//! stale and duplicate events.

use super::support::*;

#[test]
fn retries_rerun_a_failed_attempt_then_give_up() {
    // (failing attempts, retries, outcome: Ok(output) or Err(attempt of attempts))
    /// The output, or the failure's (attempt, attempts).
    type Expected = Result<i64, (u32, u32)>;
    let cases: &[(u32, u32, Expected)] = &[
        (0, 2, Ok(2)),
        (1, 2, Ok(2)),
        (2, 2, Ok(2)),
        (3, 2, Err((3, 3))),
        (1, 0, Err((1, 1))),
    ];
    for &(failing, retries, expected) in cases {
        let decl = module(vec![task_with_retries(
            "flaky",
            &[("a", Type::Int)],
            Some(Type::Int),
            retries,
        )]);
        let p = play(
            decl,
            "flaky",
            vec![Value::Int(1)],
            Options::default(),
            |_, inputs, attempt| {
                assert_eq!(inputs, [Value::Int(1)], "every attempt gets the inputs");
                if attempt <= failing {
                    fail(&format!("attempt {attempt} failed"))
                } else {
                    output(Value::Int(int_of(&inputs[0]) + 1))
                }
            },
        );
        let case = format!("failing={failing} retries={retries}");
        let attempts: Vec<u32> = p.runs.iter().map(|(_, r)| r.attempt).collect();
        let tree = p.sched.tree(&TreeOptions::default());
        match expected {
            Ok(v) => {
                assert_eq!(p.value(), &Value::Int(v), "{case}");
                assert_eq!(attempts, (1..=failing + 1).collect::<Vec<_>>(), "{case}");
            }
            Err((attempt, of)) => {
                let f = p.failure();
                assert_eq!((f.attempt, f.attempts), (attempt, of), "{case}");
                assert_eq!(f.path, "flaky");
                assert_eq!(
                    f.to_string(),
                    format!("flaky (attempt {attempt} of {of}): attempt {attempt} failed")
                );
                assert_eq!(attempts, (1..=retries + 1).collect::<Vec<_>>(), "{case}");
            }
        }
        let failed = (1..=failing.min(retries + 1)).map(|a| format!("attempt {a} failed"));
        // Each failed attempt is listed with its duration after the message.
        let listed: Vec<&str> = tree
            .failed_attempts
            .iter()
            .map(|m| m.rsplit_once(" (").map_or(m.as_str(), |(msg, _)| msg))
            .collect();
        assert_eq!(listed, failed.collect::<Vec<_>>(), "{case}");
    }
}

#[test]
fn fail_fast_never_dispatches_queued_siblings() {
    let decl = module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "fan",
            &[],
            None,
            (1..=3)
                .map(|a| call("step1", &[("a", lit(Value::Int(a)))]))
                .collect(),
            None,
        ),
    ]);
    let boom = |_: &str, inputs: &[Value], _: u32| match int_of(&inputs[0]) {
        1 => fail("boom"),
        a => output(Value::Int(a + 1)),
    };
    // One slot: the failing node is the only one ever dispatched.
    let p = play(decl.clone(), "fan", vec![], options(1), boom);
    assert_eq!(p.failure().path, "fan/step1[0]");
    assert_eq!(p.runs.len(), 1);
    let tree = p.sched.tree(&TreeOptions::default());
    let states: Vec<&str> = tree.children.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["FAILED", "SKIPPED", "SKIPPED"]);
    assert_eq!(tree.state, "FAILED");

    // Two slots: the running sibling is aborted and its answer ignored (drive checks that no
    // command follows Finished).
    let p = play(decl, "fan", vec![], options(2), boom);
    assert_eq!(p.runs.len(), 2);
    let tree = p.sched.tree(&TreeOptions::default());
    let states: Vec<&str> = tree.children.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["FAILED", "ABORTED", "SKIPPED"]);
}

#[test]
fn a_failure_is_named_by_its_node_path() {
    let inputs = vec![ints(1..=6), Value::Int(2)];
    let p = play(
        module(seed()),
        "multi_wf",
        inputs,
        Options::default(),
        |e, inputs, a| {
            // step2 of item 3 (chunk [3, 4], first launch plan) reads step1's 4.
            if e == "step2" && inputs == [Value::Int(4)] {
                fail("step2 refuses 4")
            } else {
                seed_answer(e, inputs, a)
            }
        },
    );
    let f = p.failure();
    assert_eq!(f.path, "multi_wf/level1/level2[1]/core_wf_lp[0]/step2");
    assert_eq!((f.attempt, f.attempts, f.user), (1, 1, true));
    assert_eq!(
        f.to_string(),
        "multi_wf/level1/level2[1]/core_wf_lp[0]/step2 (attempt 1 of 1): step2 refuses 4"
    );
    assert_eq!(p.count("reduce"), 0);
    let tree = p.sched.tree(&TreeOptions::default());
    assert_eq!(tree.state, "FAILED");
    assert_eq!(tree.children[0].children[1].state, "FAILED");
    assert_eq!(
        tree.children[0].children[3].state, "SKIPPED",
        "reduce never ran"
    );
}

#[test]
fn a_failed_attempt_reports_stderr_tail_backtrace_and_system_errors() {
    let decl = module(vec![task("step1", &[("a", Type::Int)], Some(Type::Int))]);
    let mut s = Scheduler::new(decl, "step1", vec![Value::Int(1)], Options::default())
        .expect("the run starts");
    let run = runs(&s.start()).remove(0);
    let stderr: String = (1..=15).map(|i| format!("line {i}\n")).collect();
    let cmds = s.on_event(Event::Attempted {
        node: run.node,
        attempt: run.attempt,
        outcome: Outcome::Failed(AttemptFailure {
            user: false,
            message: "out of fuel".into(),
            backtrace: Some("0: step1".into()),
        }),
        timing: Timing::default(),
        worker: None,
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    });
    let f = finished(&cmds).expect_err("the attempt failed");
    assert!(!f.user);
    assert_eq!(f.backtrace.as_deref(), Some("0: step1"));
    let tail: Vec<String> = (6..=15).map(|i| format!("line {i}")).collect();
    assert_eq!(f.stderr_tail, Some(tail.join("\n")));
    let text = f.to_string();
    assert!(text.starts_with("step1 (attempt 1 of 1): out of fuel [system error]\nwasm backtrace:\n0: step1\nstderr (tail):\nline 6\n"), "{text}");
}

#[test]
fn a_stderr_flood_on_one_line_leaves_a_bounded_tail() {
    let decl = module(vec![task("step1", &[("a", Type::Int)], Some(Type::Int))]);
    let mut s = Scheduler::new(decl, "step1", vec![Value::Int(1)], Options::default())
        .expect("the run starts");
    let run = runs(&s.start()).remove(0);
    let mut stderr = "é".repeat(300_000).into_bytes();
    stderr.extend_from_slice(b"\npanicked: boom");
    let cmds = s.on_event(Event::Attempted {
        node: run.node,
        attempt: run.attempt,
        outcome: Outcome::Failed(AttemptFailure {
            user: true,
            message: "panicked: boom".into(),
            backtrace: None,
        }),
        timing: Timing::default(),
        worker: None,
        stdout: Vec::new(),
        stderr,
    });
    let f = finished(&cmds).expect_err("the attempt failed");
    let tail = f.stderr_tail.expect("stderr was written");
    assert!(tail.len() <= 4096 + "…".len(), "{}", tail.len());
    assert!(
        tail.starts_with("…é") && tail.ends_with("éé\npanicked: boom"),
        "{tail}"
    );
}

#[test]
fn a_task_returning_the_wrong_type_fails_naming_the_type() {
    let cases: Vec<(Outcome, &str)> = vec![
        (
            output(Value::Str("x".into())),
            "returned a value that does not match its output type: expected i64, found a string",
        ),
        (output(ints([1])), "expected i64, found a list"),
        (
            Outcome::Returned(CallResult::Output(None)),
            "returned nothing, expected i64",
        ),
        (graph(Vec::new(), None), "is a task but returned a graph"),
        (
            Outcome::Returned(CallResult::Error("bad input".into())),
            "bad input",
        ),
    ];
    for (outcome, message) in cases {
        let mut s = Scheduler::new(
            module(seed()),
            "core_wf",
            vec![Value::Int(1)],
            Options::default(),
        )
        .expect("the run starts");
        let run = runs(&s.start()).remove(0);
        let f = finished(&s.on_event(answer(&run, outcome))).expect_err("ill-typed output");
        assert_eq!(f.path, "core_wf/step1");
        assert!(f.message.contains(message), "{f} does not say {message}");
    }
}

#[test]
fn a_dynamic_returning_an_ill_typed_graph_fails_with_a_compile_message() {
    let lp = |a: Value| call("core_wf_lp", &[("a", lit(a))]);
    let cases: Vec<(Outcome, &str)> = vec![
        (
            graph(
                vec![lp(Value::Str("x".into()))],
                Some(Binding::List(vec![node(0)])),
            ),
            "input `a`: literal expected i64, found a string",
        ),
        (
            graph(vec![call("nope", &[])], None),
            "unknown entity `nope`",
        ),
        (
            graph(vec![lp(Value::Int(1))], Some(node(0))),
            "the output of node n0 has type i64, expected list<i64>",
        ),
        (
            graph(vec![lp(Value::Int(1))], None),
            "returns nothing, but its interface declares output list<i64>",
        ),
        (
            graph(
                vec![call("core_wf_lp", &[("a", input("l"))])],
                Some(Binding::List(vec![node(0)])),
            ),
            "a dynamic's graph has no inputs",
        ),
        (
            graph(
                vec![call("core_wf_lp", &[("a", node(0))])],
                Some(Binding::List(vec![node(0)])),
            ),
            "refers to its own output",
        ),
        (output(ints([1])), "is a dynamic but returned a task output"),
    ];
    for (bad, message) in cases {
        let mut bad = Some(bad);
        let p = play_seed_with((1..=4).collect(), 2, move |e, inputs, a| {
            match bad.take_if(|_| e == "level2") {
                Some(outcome) => outcome,
                None => seed_answer(e, inputs, a),
            }
        });
        let f = p.failure();
        assert_eq!(f.path, "multi_wf/level1/level2[0]");
        assert!(f.message.contains(message), "{f} does not say {message}");
        if !message.contains("task output") {
            assert!(
                f.message
                    .starts_with("returned a graph that does not compile: "),
                "{f}"
            );
        }
    }
}

#[test]
fn events_for_unknown_nodes_and_stale_attempts_are_ignored() {
    let mut entities = seed();
    entities[0] = task_with_retries("step1", &[("a", Type::Int)], Some(Type::Int), 1);
    let mut s = Scheduler::new(
        module(entities),
        "core_wf",
        vec![Value::Int(1)],
        Options::default(),
    )
    .expect("the run starts");
    let first = runs(&s.start());
    assert_eq!(first.len(), 1);
    let step1 = first[0].clone();
    let ignored = [
        attempted(999, 1, output(Value::Int(0))),
        attempted(u32::MAX, 1, fail("x")),
        attempted(0, 1, output(Value::Int(0))),
        attempted(step1.node, 0, output(Value::Int(0))),
        attempted(step1.node, 2, output(Value::Int(0))),
    ];
    for e in &ignored {
        assert!(s.on_event(e.clone()).is_empty(), "{e:?}");
    }
    // Attempt 1 fails; its late duplicate and a guess at attempt 3 are stale.
    let retry = runs(&s.on_event(answer(&step1, fail("flake"))));
    assert_eq!((retry[0].node, retry[0].attempt), (step1.node, 2));
    assert!(s.on_event(answer(&step1, output(Value::Int(2)))).is_empty());
    assert!(s
        .on_event(attempted(step1.node, 3, output(Value::Int(2))))
        .is_empty());
    let step2 = runs(&s.on_event(answer(&retry[0], output(Value::Int(2)))));
    assert_eq!(paths(&s, &step2), ["core_wf/step2"]);
    // A duplicate of a successful attempt changes nothing; step2 is not dispatched again.
    assert!(s
        .on_event(answer(&retry[0], output(Value::Int(99))))
        .is_empty());
    // An attempt that was never started is stale too.
    assert!(s
        .on_event(attempted(step2[0].node, 2, output(Value::Int(4))))
        .is_empty());
    let last = s.on_event(answer(&step2[0], output(Value::Int(4))));
    assert_eq!(finished(&last), Ok(Some(Value::Int(4))));
    // After the end nothing reacts.
    assert!(s
        .on_event(answer(&step2[0], output(Value::Int(4))))
        .is_empty());
    assert!(s.on_event(Event::Cancel).is_empty());
}

#[test]
fn cancel_finishes_the_run_as_cancelled() {
    let mut s = Scheduler::new(
        module(seed()),
        "multi_wf",
        vec![ints(1..=6), Value::Int(2)],
        options(2),
    )
    .expect("the run starts");
    let level1 = runs(&s.start()).remove(0);
    let level2s = runs(&s.on_event(answer(&level1, seed_answer("level1", &level1.inputs, 1))));
    assert_eq!(level2s.len(), 2, "two slots");
    let cmds = s.on_event(Event::Cancel);
    let f = finished(&cmds).expect_err("cancelled");
    assert_eq!(
        (f.path.as_str(), f.message.as_str()),
        ("multi_wf", "cancelled")
    );
    assert!(s.is_finished());
    // The running attempts' answers are ignored; nothing else starts.
    for r in &level2s {
        assert!(s
            .on_event(answer(r, seed_answer("level2", &r.inputs, 1)))
            .is_empty());
    }
    assert!(s.on_event(Event::Cancel).is_empty(), "one Finished only");
    let tree = s.tree(&TreeOptions::default());
    let states: Vec<&str> = tree.children[0]
        .children
        .iter()
        .map(|c| c.state.as_str())
        .collect();
    assert_eq!(states, ["ABORTED", "ABORTED", "SKIPPED", "SKIPPED"]);
    assert_eq!(tree.children[0].state, "ABORTED");

    // Cancelled before anything returned.
    let mut s = Scheduler::new(
        module(seed()),
        "step1",
        vec![Value::Int(1)],
        Options::default(),
    )
    .expect("the run starts");
    let run = runs(&s.start()).remove(0);
    let f = finished(&s.on_event(Event::Cancel)).expect_err("cancelled");
    assert_eq!(
        (f.path.as_str(), f.message.as_str()),
        ("step1", "cancelled")
    );
    assert!(s.on_event(answer(&run, output(Value::Int(2)))).is_empty());
}

/// An event store may deliver an event twice; a second answer for an aborted attempt must not
/// count its execution's running attempts down again.
#[test]
fn a_duplicate_answer_for_an_aborted_attempt_is_ignored() {
    let decl = module(vec![
        task("t", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "two",
            &[("a", Type::Int)],
            Some(Type::Int),
            vec![
                call("t", &[("a", input("a"))]),
                call("t", &[("a", input("a"))]),
            ],
            Some(node(0)),
        ),
    ]);
    let mut s = Scheduler::new(decl, "two", vec![Value::Int(1)], Options::default()).unwrap();
    let runs: Vec<RunTask> = s
        .start()
        .into_iter()
        .filter_map(|c| match c {
            Command::Run(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 2);
    // The first fails: the second is aborted while it runs.
    let out = s.on_event(attempted(runs[0].node, 1, fail("boom")));
    assert!(matches!(out.last(), Some(Command::Finished(Err(_)))));
    for _ in 0..2 {
        assert!(s
            .on_event(attempted(runs[1].node, 1, output(Value::Int(2))))
            .is_empty());
    }
    let tree = s.tree(&TreeOptions::default());
    assert_eq!(tree.children[1].state, "ABORTED");
}

#[test]
fn a_failure_its_retry_policy_does_not_retry_says_so() {
    let config = TaskConfig {
        retries: 2,
        retry_on: RetryOn::SystemErrors,
        ..TaskConfig::default()
    };
    let decl = module(vec![entity(
        "step1",
        &[("a", Type::Int)],
        Some(Type::Int),
        EntityKind::Task(config),
    )]);
    let mut s = Scheduler::new(decl, "step1", vec![Value::Int(1)], Options::default())
        .expect("the run starts");
    let run = runs(&s.start()).remove(0);
    let f = finished(&s.on_event(failed_writing(&run, true, ""))).expect_err("failed");
    assert_eq!((f.attempt, f.attempts), (1, 1));
    assert_eq!(
        f.to_string(),
        "step1 (attempt 1 of 1): attempt 1 failed (not retried: user errors are not retried, the task retries only system errors)"
    );
}
