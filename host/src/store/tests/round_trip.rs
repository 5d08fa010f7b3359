//! What is written is read back, whole, by another store on the same file.

use super::*;
use sandflow_contract::{Binding, GraphSpec, NodeSpec};

fn graph() -> GraphSpec {
    GraphSpec {
        nodes: vec![NodeSpec {
            entity: "t".into(),
            inputs: vec![("x".into(), Binding::Literal(Value::Int(3)))],
            map: None,
            after: vec![],
            conditional: None,
        }],
        output: Some(Binding::Node(0)),
        on_failure: Default::default(),
        failure_handler: None,
    }
}

#[test]
fn an_execution_round_trips_and_a_shared_value_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/dir/sandflow.db");
    let store = SqliteStore::open(&db).unwrap();
    let id = ExecutionId::generate();
    let shared = Value::List((0..1000).map(Value::Int).collect());
    let mut ops = vec![
        WriteOp::PutModule(module()),
        WriteOp::StartExecution(new_execution(&id, 1_000, Owner::current())),
    ];
    // 100 nodes with the same output, node 0 failed once before it succeeded.
    for k in 0..100u64 {
        let mut n = node(
            k,
            &format!("wf/t[{k:03}]"),
            NodeStatus::Succeeded,
            Some(shared.clone()),
        );
        n.attempts = if k == 0 { 2 } else { 1 };
        ops.push(WriteOp::Node {
            execution: id.clone(),
            node: n,
        });
    }
    ops.push(WriteOp::Node {
        execution: id.clone(),
        node: node(500, "wf/dyn", NodeStatus::Expanded, None),
    });
    // Smaller than a hash: kept in its row, not in value_bytes.
    ops.push(WriteOp::Node {
        execution: id.clone(),
        node: node(600, "wf/u", NodeStatus::Succeeded, Some(Value::Int(42))),
    });
    store.write_batch(ops);
    for (attempt, outcome, out) in [
        (1, AttemptOutcome::User, "first"),
        (2, AttemptOutcome::Ok, "second"),
    ] {
        store.write(WriteOp::Attempt {
            execution: id.clone(),
            attempt: AttemptRecord {
                node: 0,
                attempt,
                start_us: attempt as u64 * 100,
                end_us: attempt as u64 * 100 + 50,
                outcome,
                message: (outcome == AttemptOutcome::User).then(|| "panicked".to_string()),
                worker: Some(3),
            },
        });
        store.write(WriteOp::Logs {
            execution: id.clone(),
            node: 0,
            attempt,
            stdout: out.as_bytes().to_vec(),
            stderr: b"err".to_vec(),
        });
    }
    store.write(WriteOp::Graph {
        execution: id.clone(),
        node: 500,
        graph: graph(),
    });
    for seq in 0..2 {
        store.write(WriteOp::Events {
            execution: id.clone(),
            seq,
            bytes: vec![seq as u8; 4],
        });
    }
    store.write(WriteOp::CachePut(CacheRecord {
        key: b"key-1".to_vec(),
        task: "t".into(),
        cache_version: "1".into(),
        output: shared.clone(),
        created_ms: 1_500,
        execution: id.clone(),
        node: 3,
    }));
    // A child execution (a launch plan call).
    let child = ExecutionId::generate();
    store.write(WriteOp::StartExecution(NewExecution {
        parent: Some(id.clone()),
        root: id.clone(),
        ..new_execution(&child, 1_100, Owner::current())
    }));
    store.write(WriteOp::FinishExecution {
        execution: id.clone(),
        end: ExecutionEnd {
            status: ExecStatus::Succeeded,
            ended_ms: 2_000,
            error: None,
            output: Some(Value::List(vec![Value::Int(1)])),
        },
    });
    store.finish().unwrap();

    // The shared list, once for 101 nodes; the execution's small inputs and output are kept
    // in its row.
    assert_eq!(count(&db, "value_bytes"), 1);
    assert_eq!(count(&db, "nodes"), 102);

    let store = SqliteStore::open(&db).unwrap();
    let x = store.execution(id.as_str()).unwrap();
    assert_eq!(x.summary.status, ExecStatus::Succeeded);
    assert_eq!(
        x.inputs,
        Value::Record(vec![Value::Int(7), Value::Str("x".into())])
    );
    assert_eq!(x.output, Some(Value::List(vec![Value::Int(1)])));
    assert_eq!(
        (x.summary.started_ms, x.summary.ended_ms),
        (1_000, Some(2_000))
    );
    assert_eq!(x.summary.counts.total, 102, "{:?}", x.summary.counts);
    assert_eq!(x.summary.counts.succeeded, 101);

    let nodes = store.nodes(&id).unwrap();
    assert_eq!(nodes.len(), 102);
    assert_eq!(nodes[101].path, "wf/u");
    assert_eq!(nodes[101].output, Some(Value::Int(42)));
    assert_eq!(nodes[0].path, "wf/dyn");
    assert_eq!(nodes[1].path, "wf/t[000]");
    assert_eq!(nodes[1].attempts, 2);
    assert_eq!(nodes[50].output.as_ref(), Some(&shared));

    let logs = store.logs(&id, Some("wf/t[000]")).unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].record.outcome, AttemptOutcome::User);
    assert_eq!(logs[0].record.message.as_deref(), Some("panicked"));
    assert_eq!(
        (logs[0].stdout.as_slice(), logs[1].stdout.as_slice()),
        (&b"first"[..], &b"second"[..])
    );
    assert_eq!(logs[1].stderr, b"err");
    let err = store.logs(&id, Some("wf/nope")).unwrap_err().to_string();
    assert!(
        err.contains("wf/nope") && err.contains(id.as_str()),
        "{err}"
    );

    let outputs = store.succeeded_outputs(&id).unwrap();
    assert_eq!(outputs.len(), 101);
    assert_eq!(outputs[&7], Some(shared.clone()));
    assert_eq!(outputs[&600], Some(Value::Int(42)));
    assert_eq!(store.graphs(&id).unwrap()[&500], graph());
    assert_eq!(
        store.events(&id).unwrap(),
        vec![(0, vec![0; 4]), (1, vec![1; 4])]
    );

    let hit = store.cache_get(b"key-1").unwrap().unwrap();
    assert_eq!(
        (hit.output, hit.execution, hit.node),
        (Some(shared), id.clone(), 3)
    );
    assert!(store.cache_get(b"other").unwrap().is_none());
    assert_eq!(store.cache_list(Some("t")).unwrap().len(), 1);
    assert_eq!(store.cache_list(Some("u")).unwrap().len(), 0);

    assert_eq!(store.module("digest-1").unwrap(), module().bytes);
    assert_eq!(store.entities("digest-1").unwrap(), module().entities);
    let err = store.module("digest-9").unwrap_err().to_string();
    assert!(
        err.contains("digest-9") && err.contains("sandflow.db"),
        "{err}"
    );

    let children = store.children(&id).unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].id, child);
    let roots = store
        .executions(&ExecutionFilter {
            roots_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(roots.len(), 1);
    // Newest first: the child started later.
    let all = store.executions(&ExecutionFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![child, id]
    );
}

#[test]
fn an_id_is_found_by_a_unique_prefix_and_an_ambiguous_or_unknown_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let store = SqliteStore::open(&db).unwrap();
    let ids = ["0abcd0000001", "0abcd0000002", "0abce0000003"]
        .map(|s| ExecutionId::from_string(s.into()));
    for id in &ids {
        store.write(WriteOp::StartExecution(new_execution(
            id,
            1,
            Owner::current(),
        )));
    }
    store.flush().unwrap();
    assert_eq!(store.execution("0abce").unwrap().summary.id, ids[2]);
    assert_eq!(store.execution("0abcd0000002").unwrap().summary.id, ids[1]);
    match store.execution("0abcd") {
        Err(StoreError::AmbiguousPrefix {
            prefix, matches, ..
        }) => {
            assert_eq!(prefix, "0abcd");
            assert_eq!(matches, vec!["0abcd0000001", "0abcd0000002"]);
        }
        other => panic!("expected an ambiguous prefix, got {other:?}"),
    }
    for unknown in ["0abcf", "not-an-id!"] {
        let err = store.execution(unknown).unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownExecution { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(unknown), "{err}");
    }
    let err = store
        .nodes(&ExecutionId::from_string("zzzz".into()))
        .unwrap_err();
    assert!(err.to_string().contains("no execution zzzz"), "{err}");
}

#[test]
fn a_running_execution_whose_process_died_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let dead = ExecutionId::generate();
    let reused = ExecutionId::generate();
    let alive = ExecutionId::generate();
    let me = Owner::current();
    store.write(WriteOp::StartExecution(new_execution(
        &dead,
        1,
        Owner { pid, ..me.clone() },
    )));
    store.write(WriteOp::StartExecution(new_execution(
        &reused,
        2,
        Owner {
            start: me.start.wrapping_add(1),
            ..me.clone()
        },
    )));
    store.write(WriteOp::StartExecution(new_execution(&alive, 3, me)));
    store.flush().unwrap();

    let status = |id: &ExecutionId| store.execution(id.as_str()).unwrap().summary.status;
    assert_eq!(status(&dead), ExecStatus::Interrupted);
    assert_eq!(status(&reused), ExecStatus::Interrupted);
    assert_eq!(status(&alive), ExecStatus::Running);
    let listed = store
        .executions(&ExecutionFilter {
            status: Some(ExecStatus::Interrupted),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 2);

    let mut marked = store.mark_interrupted_if_dead().unwrap();
    marked.sort();
    let mut expected = vec![dead, reused];
    expected.sort();
    assert_eq!(marked, expected);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM executions WHERE status = 'interrupted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
}
