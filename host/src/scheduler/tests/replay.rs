//! Replay: a run's events, fed to a fresh scheduler of the same run, rebuild its result and its
//! tree with no executor, as a durable store will recover a run from what it recorded.

use super::maps::{odd_fails, tolerant};
use super::support::*;

/// Feeds `events` (after a round trip through JSON, as a store would keep them) to a fresh
/// scheduler of `entity` on `inputs`; returns it and the one result it finished with.
fn replay(
    decl: Arc<ModuleDecl>,
    entity: &str,
    inputs: Vec<Value>,
    opts: Options,
    events: &[Event],
) -> (Scheduler, Result<Option<Value>, Failure>) {
    let json = serde_json::to_string(events).expect("events encode as JSON");
    let events: Vec<Event> = serde_json::from_str(&json).expect("events decode from JSON");
    let mut sched = Scheduler::new(decl, entity, inputs, opts).expect("the run starts");
    let mut results = Vec::new();
    let mut collect = |cmds: Vec<Command>| {
        results.extend(cmds.into_iter().filter_map(|c| match c {
            Command::Finished(r) => Some(r),
            Command::Run(_) | Command::Launch(_) | Command::Abort { .. } => None,
        }))
    };
    collect(sched.start());
    for e in events {
        collect(sched.on_event(e));
    }
    assert_eq!(results.len(), 1, "one Finished in {results:?}");
    let result = results.remove(0);
    (sched, result)
}

fn tree_text(s: &Scheduler) -> String {
    render_tree(&s.tree(&TreeOptions::default()))
}

/// Replays `p`, a run of `entity` on `inputs`, and checks that the replay ends the same.
fn assert_replays(what: &str, decl: Arc<ModuleDecl>, entity: &str, inputs: Vec<Value>, p: &Played) {
    let (s, result) = replay(decl, entity, inputs, Options::default(), &p.events);
    assert_eq!(result, p.result, "{what}");
    assert_eq!(tree_text(&s), tree_text(&p.sched), "{what}");
    assert_eq!(s.attempts_started(), p.sched.attempts_started(), "{what}");
    assert!(s.is_finished(), "{what}");
}

#[test]
fn replayed_events_rebuild_the_result_tree_and_attempts() {
    let seed_inputs = || vec![ints(1..=5), Value::Int(2)];
    let p = play(
        module(seed()),
        "multi_wf",
        seed_inputs(),
        Options::default(),
        seed_answer,
    );
    assert_replays("the seed", module(seed()), "multi_wf", seed_inputs(), &p);

    // step1 of a == 3 fails its first attempt and succeeds on the retry; step1 of a == 5
    // fails every attempt and fails the run.
    let retried = || {
        let mut entities = seed();
        entities[0] = task_with_retries("step1", &[("a", Type::Int)], Some(Type::Int), 2);
        module(entities)
    };
    let p = play(
        retried(),
        "multi_wf",
        seed_inputs(),
        Options::default(),
        |e, inputs, attempt| {
            let a = (e == "step1").then(|| int_of(&inputs[0]));
            match (a, attempt) {
                (Some(3), 1) | (Some(5), _) => fail("flaky"),
                _ => seed_answer(e, inputs, attempt),
            }
        },
    );
    assert_eq!(
        (p.failure().attempt, p.failure().attempts),
        (3, 3),
        "{}",
        p.failure()
    );
    assert_replays("retries", retried(), "multi_wf", seed_inputs(), &p);

    let inputs = || vec![ints([1, 2, 4])];
    let p = play(
        tolerant(Some(0.5)),
        "tolerant",
        inputs(),
        Options::default(),
        odd_fails,
    );
    assert_replays(
        "a tolerant map",
        tolerant(Some(0.5)),
        "tolerant",
        inputs(),
        &p,
    );
}
