//! Logs: every attempt keeps its own output, bounded over the run by its log budget.

use super::support::*;

#[test]
fn every_attempt_of_a_retried_task_keeps_its_own_output() {
    let decl = module(vec![task_with_retries(
        "step1",
        &[("a", Type::Int)],
        Some(Type::Int),
        2,
    )]);
    let mut s = Scheduler::new(decl, "step1", vec![Value::Int(1)], Options::default())
        .expect("the run starts");
    let first = runs(&s.start()).remove(0);
    let second = runs(&s.on_event(failed_writing(&first, true, "one\n"))).remove(0);
    let third = runs(&s.on_event(failed_writing(&second, true, "two\n"))).remove(0);
    let cmds = s.on_event(Event::Attempted {
        node: third.node,
        attempt: third.attempt,
        outcome: output(Value::Int(2)),
        timing: Timing::default(),
        worker: None,
        stdout: b"three\n".to_vec(),
        stderr: Vec::new(),
    });
    assert_eq!(finished(&cmds), Ok(Some(Value::Int(2))));
    let tree = s.tree(&TreeOptions::default());
    assert_eq!(tree.attempts, 3);
    assert_eq!(tree.stdout.as_deref(), Some("three\n"));
    let earlier: Vec<(u32, Option<&str>)> = tree
        .earlier_attempts
        .iter()
        .map(|a| (a.attempt, a.stdout.as_deref()))
        .collect();
    assert_eq!(earlier, vec![(1, Some("one\n")), (2, Some("two\n"))]);
}

#[test]
fn a_run_keeps_task_output_only_up_to_its_log_budget() {
    let decl = module(vec![
        task("t", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "wf",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            vec![map_call("t", &[("a", input("l"))], &["a"], None, None)],
            Some(node(0)),
        ),
    ]);
    let opts = Options {
        max_log_bytes: 250,
        ..Options::default()
    };
    let mut s = Scheduler::new(decl, "wf", vec![ints([1, 2, 3, 4, 5])], opts).expect("starts");
    let mut pending = runs(&s.start());
    let mut result = None;
    while let Some(run) = pending.pop() {
        let cmds = s.on_event(Event::Attempted {
            node: run.node,
            attempt: run.attempt,
            outcome: output(Value::Int(0)),
            timing: Timing::default(),
            worker: None,
            stdout: vec![b'x'; 100],
            stderr: Vec::new(),
        });
        pending.extend(runs(&cmds));
        if matches!(cmds.last(), Some(Command::Finished(_))) {
            result = finished(&cmds).ok();
        }
    }
    assert!(result.is_some(), "the run succeeded");
    // Two attempts' 100 bytes fit in 250; the other three are counted, not kept.
    assert_eq!(s.logs_dropped(), 300);
    let tree = s.tree(&TreeOptions::default());
    let map = &tree.children[0];
    let kept: usize = map
        .children
        .iter()
        .filter_map(|c| c.stdout.as_ref())
        .map(|t| t.len())
        .sum();
    assert_eq!(kept, 200);
    let dropped: u64 = map.children.iter().map(|c| c.logs_dropped).sum();
    assert_eq!(dropped, 300);
}
