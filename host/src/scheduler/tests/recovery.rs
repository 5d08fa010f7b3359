//! The journal a durable store reads (stable node keys, changes, graphs) and a recovery that
//! reuses what an earlier run finished.

use super::support::*;
use crate::scheduler::{Change, Origin, Recovered, State};

/// Runs the seed with the journal on, answering at most `limit` attempts (the rest are left
/// unanswered, as in a run killed midway); returns what a store would have recorded of its
/// tasks.
fn journaled_seed(limit: usize) -> (Recovered, usize) {
    journaled_seed_keeping(limit, |kind| kind == "task")
}

/// [`journaled_seed`], keeping the outputs of the nodes of the kinds `keep` says.
fn journaled_seed_keeping(limit: usize, keep: fn(&str) -> bool) -> (Recovered, usize) {
    let mut sched = Scheduler::new(
        module(seed()),
        "multi_wf",
        vec![ints(1..=6), Value::Int(2)],
        Options::default(),
    )
    .expect("starts");
    sched.journal();
    let mut pending: VecDeque<RunTask> = runs(&sched.start()).into();
    let mut rec = Recovered::default();
    let mut answered = 0;
    let record = |sched: &mut Scheduler, rec: &mut Recovered| {
        for c in sched.take_changes() {
            match c {
                Change::Node { node, output } => {
                    let v = sched.node_view(node);
                    if v.state == State::Succeeded && keep(v.kind) {
                        rec.outputs.insert(v.key, output.into());
                    }
                }
                Change::Graph { node, graph } => {
                    rec.graphs
                        .insert(sched.node_key(node), graph.spec.clone().into());
                }
                Change::Attempt { .. } | Change::Execution { .. } | Change::Cache { .. } => {}
            }
        }
    };
    while let Some(run) = pending.pop_front() {
        if answered == limit {
            break;
        }
        answered += 1;
        let name = sched.decl().entities[run.entity as usize].name.clone();
        let outcome = seed_answer(&name, &run.inputs, run.attempt);
        let cmds = sched.on_event(answer(&run, outcome));
        pending.extend(runs(&cmds));
        record(&mut sched, &mut rec);
    }
    (rec, answered)
}

#[test]
fn node_keys_are_the_same_in_a_second_run_and_distinct_within_one() {
    let a = play_seed((1..=6).collect(), 2, Options::default());
    let b = play_seed((1..=6).collect(), 2, Options::default());
    let keys = |p: &Played| -> Vec<(String, u64)> {
        p.runs
            .iter()
            .map(|(path, r)| (path.clone(), p.sched.node_key(r.node)))
            .collect()
    };
    assert_eq!(keys(&a), keys(&b));
    let distinct: HashSet<u64> = keys(&a).into_iter().map(|(_, k)| k).collect();
    assert_eq!(distinct.len(), a.runs.len(), "one key per node that ran");
}

#[test]
fn a_recovery_of_a_finished_run_runs_nothing_and_gives_the_same_result() {
    let (rec, answered) = journaled_seed(usize::MAX);
    assert_eq!(answered, 17);
    // Six step1, six step2, one reduce; level1 and three level2 graphs.
    assert_eq!(rec.outputs.len(), 13);
    assert_eq!(rec.graphs.len(), 4);
    let opts = Options {
        recovered: Some(Arc::new(rec)),
        ..Options::default()
    };
    let p = play_seed((1..=6).collect(), 2, opts);
    assert_eq!(p.value(), &ints([4, 5, 6, 7, 8, 9]));
    assert!(p.runs.is_empty(), "ran {:?}", p.runs);
    assert_eq!(p.sched.reused(), (17, 0));
    let tree = p.sched.tree(&TreeOptions::default());
    assert_eq!(tree.children[0].attempts, 0, "level1 was not run again");
}

#[test]
fn a_recovery_of_a_run_stopped_midway_runs_only_what_did_not_finish() {
    // The first 9 attempts answered: level1, three level2, and five of the launch plans'
    // tasks; the rest never answered (the run was killed).
    let (rec, answered) = journaled_seed(9);
    assert_eq!(answered, 9);
    let finished: usize = rec.outputs.len() + rec.graphs.len();
    assert_eq!(finished, 9);
    let opts = Options {
        recovered: Some(Arc::new(rec)),
        ..Options::default()
    };
    let p = play_seed((1..=6).collect(), 2, opts);
    assert_eq!(p.value(), &ints([4, 5, 6, 7, 8, 9]));
    assert_eq!(p.runs.len(), 17 - 9, "only what had not finished ran");
    assert_eq!(p.sched.reused().0, 9);
    let reused_ran_again = p
        .runs
        .iter()
        .filter(|(_, r)| p.sched.node_view(r.node).origin == Origin::Recovered)
        .count();
    assert_eq!(reused_ran_again, 0);
}

#[test]
fn the_cache_key_changes_with_the_version_the_interface_and_the_inputs_it_does_not_ignore() {
    use crate::scheduler::journal::interface_hash;
    use sandflow_contract::{CacheConfig, EntityDecl};
    let cache_key = |e: &EntityDecl, c: &CacheConfig, inputs: &[Value]| {
        crate::scheduler::journal::cache_key(e, c, &interface_hash(e), inputs)
    };
    let t = task(
        "t",
        &[("x", Type::Int), ("note", Type::Str)],
        Some(Type::Int),
    );
    let v1 = CacheConfig {
        version: "1".into(),
        ignore: vec!["note".into()],
    };
    let inputs = |x: i64, note: &str| vec![Value::Int(x), Value::Str(note.into())];
    let key = cache_key(&t, &v1, &inputs(2, "a"));
    assert_eq!(key, cache_key(&t, &v1, &inputs(2, "a")), "deterministic");
    assert_eq!(key, cache_key(&t, &v1, &inputs(2, "b")), "an ignored input");
    assert_ne!(key, cache_key(&t, &v1, &inputs(3, "a")), "another value");
    let v2 = CacheConfig {
        version: "2".into(),
        ..v1.clone()
    };
    assert_ne!(key, cache_key(&t, &v2, &inputs(2, "a")), "a new version");
    let wider = task(
        "t",
        &[("x", Type::Int), ("note", Type::Str)],
        Some(Type::Float),
    );
    assert_ne!(
        key,
        cache_key(&wider, &v1, &inputs(2, "a")),
        "another interface"
    );
    let other = task(
        "u",
        &[("x", Type::Int), ("note", Type::Str)],
        Some(Type::Int),
    );
    assert_ne!(key, cache_key(&other, &v1, &inputs(2, "a")), "another task");
}

#[test]
fn a_recorded_launch_plan_or_workflow_output_stands_for_everything_under_it() {
    // Every node's output kept, as the store keeps them: a recovery of the whole run reuses
    // its top node and starts nothing.
    let (rec, _) = journaled_seed_keeping(usize::MAX, |_| true);
    let opts = Options {
        recovered: Some(Arc::new(rec)),
        ..Options::default()
    };
    let p = play_seed((1..=6).collect(), 2, opts);
    assert_eq!(p.value(), &ints([4, 5, 6, 7, 8, 9]));
    assert!(p.runs.is_empty());
    assert_eq!(p.sched.reused(), (1, 0), "the top node alone");
    assert_eq!(
        p.sched.child_executions(),
        0,
        "no launch plan started again"
    );
    // Stopped midway: finished launch plans are reused whole, not started again.
    let (rec, _) = journaled_seed_keeping(12, |_| true);
    let reused_plans = rec.outputs.len();
    let opts = Options {
        recovered: Some(Arc::new(rec)),
        ..Options::default()
    };
    let p = play_seed((1..=6).collect(), 2, opts);
    assert_eq!(p.value(), &ints([4, 5, 6, 7, 8, 9]));
    assert!(
        p.sched.child_executions() < 6,
        "{reused_plans} outputs kept"
    );
}
