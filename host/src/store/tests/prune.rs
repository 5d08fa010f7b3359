//! Prune and cache clear: old execution trees go with their rows, and so do the values,
//! graphs and modules nothing refers to any more; what is still referenced stays.

use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn finished(id: &ExecutionId) -> WriteOp {
    WriteOp::FinishExecution {
        execution: id.clone(),
        end: ExecutionEnd {
            status: ExecStatus::Succeeded,
            ended_ms: now_ms(),
            error: None,
            output: None,
        },
    }
}

#[test]
fn prune_removes_old_executions_and_unreferenced_values_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let store = SqliteStore::open(&db).unwrap();
    let day = 24 * 3600 * 1000;
    let (old, old_child, running, recent) = (
        ExecutionId::generate(),
        ExecutionId::generate(),
        ExecutionId::generate(),
        ExecutionId::generate(),
    );
    let only_old =
        Value::Str("only in the old execution, and too long to be kept in its rows".into());
    let shared =
        Value::Str("in the old and the recent execution, and too long to be kept in a row".into());
    let mut old_module = module();
    old_module.digest = "digest-old".into();
    let mut ops = vec![
        WriteOp::PutModule(module()),
        WriteOp::PutModule(old_module),
        WriteOp::StartExecution(NewExecution {
            module: "digest-old".into(),
            ..new_execution(&old, now_ms() - 10 * day, Owner::current())
        }),
        WriteOp::StartExecution(NewExecution {
            parent: Some(old.clone()),
            root: old.clone(),
            module: "digest-old".into(),
            ..new_execution(&old_child, now_ms() - 10 * day, Owner::current())
        }),
        // Old, but its process still runs: kept.
        WriteOp::StartExecution(new_execution(
            &running,
            now_ms() - 10 * day,
            Owner::current(),
        )),
        WriteOp::StartExecution(new_execution(&recent, now_ms(), Owner::current())),
    ];
    for (id, v) in [
        (&old, &only_old),
        (&old, &shared),
        (&old_child, &only_old),
        (&recent, &shared),
    ] {
        for k in 0..3 {
            ops.push(WriteOp::Node {
                execution: id.clone(),
                node: node(
                    k + 10 * (v == &shared) as u64,
                    "p",
                    NodeStatus::Succeeded,
                    Some(v.clone()),
                ),
            });
        }
    }
    ops.push(WriteOp::Attempt {
        execution: old.clone(),
        attempt: AttemptRecord {
            node: 0,
            attempt: 1,
            start_us: 0,
            end_us: 1,
            outcome: AttemptOutcome::Ok,
            message: None,
            worker: None,
        },
    });
    ops.push(WriteOp::Logs {
        execution: old.clone(),
        node: 0,
        attempt: 1,
        stdout: b"out".to_vec(),
        stderr: Vec::new(),
    });
    ops.push(WriteOp::Graph {
        execution: old.clone(),
        node: 0,
        graph: Default::default(),
    });
    ops.extend([finished(&old), finished(&old_child), finished(&recent)]);
    store.write_batch(ops);
    store.flush().unwrap();
    let values_before = count(&db, "value_bytes");

    let report = store.prune(Duration::from_secs(7 * 24 * 3600)).unwrap();
    assert_eq!(report.executions, 2, "{report:?}");
    assert_eq!(
        (report.nodes, report.attempts, report.logs),
        (9, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        (report.values, report.graphs, report.modules),
        (1, 1, 1),
        "{report:?}"
    );
    assert_eq!(count(&db, "value_bytes"), values_before - 1);
    assert_eq!(count(&db, "modules"), 1);
    assert_eq!(count(&db, "entities"), 1);

    for gone in [&old, &old_child] {
        assert!(matches!(
            store.execution(gone.as_str()),
            Err(StoreError::UnknownExecution { .. })
        ));
    }
    assert_eq!(
        store.execution(running.as_str()).unwrap().summary.status,
        ExecStatus::Running
    );
    let kept = store.nodes(&recent).unwrap();
    assert_eq!(kept[0].output, Some(shared));
    // Nothing more to prune.
    assert_eq!(
        store.prune(Duration::from_secs(7 * 24 * 3600)).unwrap(),
        PruneReport::default()
    );
    integrity_ok(&db);
}

#[test]
fn cache_clear_by_task_leaves_other_tasks_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let id = ExecutionId::generate();
    store.write(WriteOp::StartExecution(new_execution(
        &id,
        1,
        Owner::current(),
    )));
    for (key, task) in [(b"k1", "a"), (b"k2", "a"), (b"k3", "b")] {
        store.write(WriteOp::CachePut(CacheRecord {
            key: key.to_vec(),
            task: task.into(),
            cache_version: "1".into(),
            output: Value::Str(format!("output of {task}")),
            created_ms: 1,
            execution: id.clone(),
            node: 0,
        }));
    }
    store.flush().unwrap();
    assert_eq!(store.cache_clear(Some("a")).unwrap(), 2);
    assert!(store.cache_get(b"k1").unwrap().is_none());
    let b = store.cache_get(b"k3").unwrap().unwrap();
    assert_eq!(b.output, Some(Value::Str("output of b".into())));
    assert_eq!(store.cache_clear(None).unwrap(), 1);
    assert!(store.cache_list(None).unwrap().is_empty());
}
