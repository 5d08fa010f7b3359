//! Cancel requests and the module list.

use super::*;

#[test]
fn a_cancel_request_is_seen_by_its_execution_only_and_pruned_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("c.db")).unwrap();
    let (a, b) = (ExecutionId::generate(), ExecutionId::generate());
    store.write_batch(vec![
        WriteOp::PutModule(module()),
        WriteOp::StartExecution(new_execution(&a, 1_000, Owner::current())),
        WriteOp::StartExecution(new_execution(&b, 2_000, Owner::current())),
    ]);
    store.flush().unwrap();
    assert!(!store.cancel_requested(&a).unwrap());
    store.request_cancel(&a).unwrap();
    // Asked twice: still one request.
    store.request_cancel(&a).unwrap();
    assert!(store.cancel_requested(&a).unwrap());
    assert!(!store.cancel_requested(&b).unwrap());
    // Another process (another store on the file) sees it.
    let other = SqliteStore::open(dir.path().join("c.db")).unwrap();
    assert!(other.cancel_requested(&a).unwrap());

    let unknown = ExecutionId::generate();
    let e = store.request_cancel(&unknown).unwrap_err();
    assert!(matches!(e, StoreError::UnknownExecution { .. }), "{e}");
    assert!(!store.cancel_requested(&unknown).unwrap());

    for id in [&a, &b] {
        store.write(WriteOp::FinishExecution {
            execution: id.clone(),
            end: ExecutionEnd {
                status: ExecStatus::Cancelled,
                ended_ms: 3_000,
                error: None,
                output: None,
            },
        });
    }
    store.flush().unwrap();
    store.prune(std::time::Duration::ZERO).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let left: i64 = conn
        .query_row("SELECT count(*) FROM cancel_requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "a pruned execution's request goes with it");
}

#[test]
fn modules_are_listed_with_their_entities_and_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("m.db")).unwrap();
    assert_eq!(store.modules().unwrap(), vec![]);
    let id = ExecutionId::generate();
    store.write_batch(vec![
        WriteOp::PutModule(module()),
        WriteOp::StartExecution(new_execution(&id, 1_234, Owner::current())),
    ]);
    store.flush().unwrap();
    let m = store.modules().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].digest, "digest-1");
    assert_eq!(m[0].size, module().bytes.len() as u64);
    assert_eq!(m[0].entities, [("wf".to_string(), "workflow".to_string())]);
    assert_eq!((m[0].executions, m[0].last_started_ms), (1, Some(1_234)));
}
