//! Several stores on one file at once, and the write path's throughput (printed, not
//! asserted: `cargo test --release -p sandflow-host --lib store_write_throughput -- --ignored
//! --nocapture`).

use super::*;
use std::time::Instant;

/// Node, attempt and (non-empty) logs of task execution `k`, as a driver step writes them.
fn task_ops(id: &ExecutionId, k: u64) -> Vec<WriteOp> {
    vec![
        WriteOp::Node {
            execution: id.clone(),
            node: NodeRecord {
                key: k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                path: format!("nested/level1[{}]/t[{}]", k / 100, k % 100),
                entity: "square".into(),
                kind: "task".into(),
                status: NodeStatus::Succeeded,
                attempts: 1,
                output: Some(Value::Int(k as i64 * k as i64)),
                cached: false,
                start_us: Some(k * 5),
                end_us: Some(k * 5 + 4),
                worker: None,
            },
        },
        WriteOp::Attempt {
            execution: id.clone(),
            attempt: AttemptRecord {
                node: k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                attempt: 1,
                start_us: k * 5,
                end_us: k * 5 + 4,
                outcome: AttemptOutcome::Ok,
                message: None,
                worker: Some((k % 2) as u32),
            },
        },
        WriteOp::Logs {
            execution: id.clone(),
            node: k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            attempt: 1,
            stdout: Vec::new(),
            stderr: Vec::new(),
        },
    ]
}

#[test]
fn eight_stores_on_one_file_write_at_once_and_all_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let store = SqliteStore::open(&db).expect("open from each thread");
                let id = ExecutionId::generate();
                store.write_batch(vec![
                    WriteOp::PutModule(module()),
                    WriteOp::StartExecution(new_execution(&id, t, Owner::current())),
                ]);
                for k in 0..500 {
                    store.write_batch(task_ops(&id, k));
                }
                store.write(WriteOp::FinishExecution {
                    execution: id.clone(),
                    end: ExecutionEnd {
                        status: ExecStatus::Succeeded,
                        ended_ms: 10,
                        error: None,
                        output: None,
                    },
                });
                store.finish().expect("every write committed");
                id
            })
        })
        .collect();
    let ids: Vec<ExecutionId> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let store = SqliteStore::open(&db).unwrap();
    let listed = store.executions(&ExecutionFilter::default()).unwrap();
    assert_eq!(listed.len(), 8);
    for id in &ids {
        let x = store.execution(id.as_str()).unwrap();
        assert_eq!(x.summary.status, ExecStatus::Succeeded);
        assert_eq!(x.summary.counts.total, 500);
        assert_eq!(store.nodes(id).unwrap().len(), 500);
    }
    assert_eq!(count(&db, "modules"), 1);
    integrity_ok(&db);
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn store_write_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let store = SqliteStore::open(&db).unwrap();
    const TASKS: u64 = 20_000;
    for round in 0..3 {
        let id = ExecutionId::generate();
        let start = Instant::now();
        store.write_batch(vec![
            WriteOp::PutModule(module()),
            WriteOp::StartExecution(new_execution(&id, round, Owner::current())),
        ]);
        // One batch per task execution, as a driver step that finished one task sends it.
        for k in 0..TASKS {
            store.write_batch(task_ops(&id, k));
        }
        let queued = start.elapsed();
        store.flush().unwrap();
        let total = start.elapsed();
        println!(
            "round {round}: {TASKS} task executions (node + attempt + value): queued in {queued:?}, \
             committed in {total:?}: {:.0} task executions/s",
            TASKS as f64 / total.as_secs_f64()
        );
    }
    store.finish().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let bytes = std::fs::metadata(&db).unwrap().len();
    println!(
        "database: {bytes} bytes for {} task executions: {:.0} bytes each",
        3 * TASKS,
        bytes as f64 / (3 * TASKS) as f64
    );
}
