//! The PostgreSQL store against a real server (see [`cluster`](super::cluster)): what is
//! written is read back by another store, whole; and the bad inputs of a database.

use super::super::tests::{module, new_execution, node};
use super::super::*;
use super::cluster::{cluster, PASSWORD};
use sandflow_contract::{Binding, GraphSpec, NodeSpec, Value};
use std::time::{Duration, Instant};

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
fn an_execution_round_trips_through_postgres_and_a_shared_value_is_stored_once() {
    let url = cluster().database("round_trip");
    let store = PgStore::open(&url).unwrap();
    let id = ExecutionId::generate();
    let shared = Value::List((0..1000).map(Value::Int).collect());
    let mut ops = vec![
        WriteOp::PutModule(module()),
        WriteOp::StartExecution(new_execution(&id, 1_000, Owner::current())),
    ];
    for k in 0..100u64 {
        ops.push(WriteOp::Node {
            execution: id.clone(),
            node: node(k, &format!("wf/t[{k:03}]"), NodeStatus::Running, None),
        });
    }
    // Each node again, ended: the last row of a node is what is read, even in one batch.
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

    let c = cluster();
    assert_eq!(
        c.query_i64(&url, "SELECT count(*) FROM sandflow.value_bytes"),
        1
    );
    assert_eq!(
        c.query_i64(&url, "SELECT count(*) FROM sandflow.nodes"),
        201
    );

    let store = PgStore::open(&url).unwrap();
    let e = store.execution(&id.as_str()[..6]).unwrap();
    assert_eq!(e.summary.status, ExecStatus::Succeeded);
    assert_eq!(e.inputs, new_execution(&id, 0, Owner::current()).inputs);
    assert_eq!(e.output, Some(Value::List(vec![Value::Int(1)])));
    assert_eq!(e.summary.counts.succeeded, 101);
    let nodes = store.nodes(&id).unwrap();
    assert_eq!(nodes.len(), 101);
    assert_eq!(nodes[0].path, "wf/t[000]");
    assert_eq!(nodes[0].attempts, 2);
    assert_eq!(nodes[0].output.as_ref(), Some(&shared));
    assert_eq!(nodes[100].output, Some(Value::Int(42)));
    let logs = store.logs(&id, Some("wf/t[000]")).unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].record.outcome, AttemptOutcome::User);
    assert_eq!(logs[1].stdout, b"second");
    assert_eq!(logs[1].record.worker, Some(3));
    assert!(matches!(
        store.logs(&id, Some("wf/nope")),
        Err(StoreError::UnknownNode { .. })
    ));
    assert_eq!(store.graphs(&id).unwrap().get(&500), Some(&graph()));
    assert_eq!(store.events(&id).unwrap().len(), 2);
    let hit = store.cache_get(b"key-1").unwrap().expect("the entry");
    assert_eq!(hit.output, Some(shared));
    assert_eq!(store.cache_get(b"key-2").unwrap(), None);
    assert_eq!(store.children(&id).unwrap()[0].id, child);
    assert_eq!(store.module("digest-1").unwrap(), module().bytes);
    assert_eq!(store.entities("digest-1").unwrap(), module().entities);
    assert_eq!(store.succeeded_outputs(&id).unwrap().len(), 101);
    // The child is running in this (live) process: not interrupted, and not pruned.
    assert_eq!(store.mark_interrupted_if_dead().unwrap(), vec![]);
    assert_eq!(store.prune(Duration::ZERO).unwrap().executions, 0);
    assert_eq!(store.cache_clear(None).unwrap(), 1);
    assert!(matches!(
        store.execution("zzzz"),
        Err(StoreError::UnknownExecution { .. })
    ));
}

#[test]
fn a_row_for_an_execution_never_started_fails_the_batch_and_later_flushes() {
    let url = cluster().database("never_started");
    let store = PgStore::open(&url).unwrap();
    store.write(WriteOp::Node {
        execution: ExecutionId::generate(),
        node: node(1, "wf/t", NodeStatus::Succeeded, None),
    });
    let e = store.flush().unwrap_err().to_string();
    assert!(e.contains("never started"), "{e}");
    assert!(store.flush().is_err(), "the failure is kept");
}

#[test]
fn a_dead_owner_is_interrupted_and_its_tree_pruned() {
    let url = cluster().database("dead_owner");
    let store = PgStore::open(&url).unwrap();
    let id = ExecutionId::generate();
    let dead = Owner {
        pid: u32::MAX - 1,
        ..Owner::current()
    };
    store.write_batch(vec![
        WriteOp::PutModule(module()),
        WriteOp::StartExecution(new_execution(&id, 1_000, dead)),
        WriteOp::Node {
            execution: id.clone(),
            node: node(
                1,
                "wf/t",
                NodeStatus::Succeeded,
                Some(Value::Str("x".repeat(100))),
            ),
        },
    ]);
    store.flush().unwrap();
    assert_eq!(
        store.executions(&Default::default()).unwrap()[0].status,
        ExecStatus::Interrupted
    );
    assert_eq!(store.mark_interrupted_if_dead().unwrap(), vec![id.clone()]);
    let report = store.prune(Duration::ZERO).unwrap();
    assert_eq!(
        (
            report.executions,
            report.nodes,
            report.values,
            report.modules
        ),
        (1, 1, 1, 1)
    );
    assert!(store.executions(&Default::default()).unwrap().is_empty());
}

#[test]
fn a_database_with_another_schema_version_is_refused_naming_both_versions() {
    let url = cluster().database("other_version");
    PgStore::open(&url).unwrap().finish().unwrap();
    cluster().execute(&url, "UPDATE sandflow.meta SET version = 99");
    let e = PgStore::open(&url).err().expect("refused").to_string();
    assert!(
        e.contains("schema version 99") && e.contains(&format!("version {PG_SCHEMA_VERSION}")),
        "{e}"
    );
    assert!(!e.contains(PASSWORD), "the password is never shown: {e}");
}

#[test]
fn a_bad_password_or_an_unreachable_server_is_a_clear_error_within_seconds() {
    let c = cluster();
    let url = c.database("bad_password");
    let t0 = Instant::now();
    let bad = url.replace(PASSWORD, "wrong");
    let e = PgStore::open(&bad).err().expect("refused").to_string();
    assert!(
        e.contains("cannot connect") && e.contains("password authentication failed"),
        "{e}"
    );
    assert!(!e.contains("wrong"), "the password is never shown: {e}");
    // A port nothing listens on, and an address that drops packets (TEST-NET-1).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let e = PgStore::open(&format!("postgres://u:p@127.0.0.1:{port}/db"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("cannot connect") && e.contains(&port.to_string()),
        "{e}"
    );
    let e = PgStore::open("postgres://u:p@192.0.2.1:5432/db?connect_timeout=1")
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("cannot connect") && e.contains("192.0.2.1"),
        "{e}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "not hanging: {:?}",
        t0.elapsed()
    );
    let e = PgStore::open("postgres://u:p@host:notaport/db")
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("not a PostgreSQL URL") && !e.contains(":p@"),
        "{e}"
    );
}

#[test]
fn cache_entries_are_read_in_one_batch_in_the_order_asked() {
    let url = cluster().database("cache_many");
    let store = PgStore::open(&url).unwrap();
    let id = ExecutionId::generate();
    store.write(WriteOp::StartExecution(new_execution(
        &id,
        1,
        Owner::current(),
    )));
    for (k, v) in [(b"a", 1), (b"c", 3)] {
        store.write(WriteOp::CachePut(CacheRecord {
            key: k.to_vec(),
            task: "t".into(),
            cache_version: "1".into(),
            output: Value::Int(v),
            created_ms: 1,
            execution: id.clone(),
            node: 1,
        }));
    }
    store.flush().unwrap();
    let got = store
        .cache_get_many(&[b"c", b"b", b"a", b"c"])
        .unwrap()
        .into_iter()
        .map(|e| e.and_then(|e| e.output))
        .collect::<Vec<_>>();
    assert_eq!(
        got,
        [
            Some(Value::Int(3)),
            None,
            Some(Value::Int(1)),
            Some(Value::Int(3))
        ]
    );
}

#[test]
fn reads_and_writes_connect_again_after_their_connections_are_terminated() {
    let url = cluster().database("terminated");
    let store = PgStore::open(&url).unwrap();
    assert!(store.executions(&Default::default()).unwrap().is_empty());
    // Every other connection to this database: the store's reader and writer.
    cluster().execute(
        &url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    // The read meets the dead connection and is made again on a new one.
    assert!(store.executions(&Default::default()).unwrap().is_empty());
    // The writer's connection is gone too: it connects again and writes the batch, once.
    let id = ExecutionId::generate();
    store.write(WriteOp::StartExecution(new_execution(
        &id,
        1,
        Owner::current(),
    )));
    store.flush().unwrap();
    let listed = store.executions(&Default::default()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(
        cluster().query_i64(&url, "SELECT count(*) FROM sandflow.executions"),
        1
    );
}

#[test]
fn stores_opened_at_once_on_a_new_database_create_its_tables_once() {
    let url = cluster().database("at_once");
    let opened: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    PgStore::open(&url)
                        .and_then(|st| st.finish())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    assert!(opened.iter().all(|r| r.is_ok()), "{opened:?}");
    assert_eq!(
        cluster().query_i64(&url, "SELECT count(*) FROM sandflow.meta"),
        1
    );
}

#[test]
fn node_queries_answer_as_the_reference_in_postgres() {
    let url = cluster().database("node_query");
    let store = PgStore::open(&url).unwrap();
    super::super::tests::node_query::queries_answer_as_the_reference(&store);
}
