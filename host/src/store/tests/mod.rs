//! Tests of the SQLite store, each in a temporary directory of its own.

mod cancel;
mod concurrency;
mod faults;
pub(crate) mod node_query;
mod prune;
mod round_trip;

use super::*;
use sandflow_contract::{Interface, Param, Type, Value};
use std::path::Path;

pub(super) fn new_execution(id: &ExecutionId, started_ms: i64, owner: Owner) -> NewExecution {
    NewExecution {
        id: id.clone(),
        parent: None,
        root: id.clone(),
        entity: "wf".into(),
        module: "digest-1".into(),
        inputs: Value::Record(vec![Value::Int(7), Value::Str("x".into())]),
        started_ms,
        owner,
        recovered_from: None,
    }
}

pub(super) fn module() -> ModuleRecord {
    ModuleRecord {
        digest: "digest-1".into(),
        bytes: b"\0asm fake module bytes".to_vec(),
        entities: vec![EntityRecord {
            name: "wf".into(),
            kind: "workflow".into(),
            interface: Interface {
                inputs: vec![
                    Param {
                        name: "n".into(),
                        ty: Type::Int,
                        default: None,
                    },
                    Param {
                        name: "s".into(),
                        ty: Type::Str,
                        default: None,
                    },
                ],
                output: Some(Type::List(Box::new(Type::Int))),
            },
        }],
    }
}

pub(super) fn node(key: u64, path: &str, status: NodeStatus, output: Option<Value>) -> NodeRecord {
    NodeRecord {
        key,
        path: path.into(),
        entity: "t".into(),
        kind: "task".into(),
        status,
        attempts: 1,
        output,
        cached: false,
        start_us: Some(key * 10),
        end_us: Some(key * 10 + 5),
        worker: None,
    }
}

/// Rows of `table`, counted on a connection of the test's own.
pub(super) fn count(db: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open for counting");
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count rows")
}

pub(super) fn integrity_ok(db: &Path) {
    let conn = rusqlite::Connection::open(db).expect("open for the integrity check");
    let r: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(r, "ok");
}
