//! Faults: a file that is not a database, a newer schema, a directory that cannot be
//! written, a full disk. Each is an error naming the file; nothing committed is lost.

use super::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_database_from_a_newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    SqliteStore::open(&db).unwrap().finish().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 5))
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&db)
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. } if found == SCHEMA_VERSION + 5 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&db.display().to_string()), "{msg}");
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    std::fs::write(&db, "this is a text file, not a database\n".repeat(100)).unwrap();
    let err = SqliteStore::open(&db)
        .err()
        .expect("a text file is refused");
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&db.display().to_string()) && msg.contains("not a sandflow execution store"),
        "{msg}"
    );
    // The file is left as it was.
    assert!(std::fs::read_to_string(&db)
        .unwrap()
        .starts_with("this is a text file"));
}

#[test]
fn a_directory_that_cannot_be_written_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // Root writes through permission bits; nobody can create entries below a regular file.
    let blocked = if is_root() {
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        file
    } else {
        use std::os::unix::fs::PermissionsExt;
        let d = dir.path().join("read-only");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o500)).unwrap();
        d
    };
    for db in [blocked.join("s.db"), blocked.join("sub/s.db")] {
        let err = SqliteStore::open(&db)
            .err()
            .expect("an unwritable place is refused");
        let msg = err.to_string();
        assert!(msg.contains(&db.display().to_string()), "{msg}");
        assert!(
            matches!(err, StoreError::CreateDir { .. } | StoreError::Open { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn a_full_disk_fails_the_flush_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    SqliteStore::open(&db).unwrap().finish().unwrap();
    let pages: u64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let store = SqliteStore::open_limited(&db, pages + 8).unwrap();
    let id = ExecutionId::generate();
    store.write_batch(vec![
        WriteOp::PutModule(module()),
        WriteOp::StartExecution(new_execution(&id, 1, Owner::current())),
        WriteOp::Node {
            execution: id.clone(),
            node: node(1, "wf/a", NodeStatus::Succeeded, Some(Value::Int(1))),
        },
    ]);
    store.flush().unwrap();
    // 64 distinct values of 4 KiB each do not fit in 8 pages.
    let big: Vec<WriteOp> = (2..66u64)
        .map(|k| WriteOp::Node {
            execution: id.clone(),
            node: node(
                k,
                &format!("wf/b{k}"),
                NodeStatus::Succeeded,
                Some(Value::Bytes(vec![k as u8; 4096])),
            ),
        })
        .collect();
    store.write_batch(big);
    let err = store.flush().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Write { .. }), "{err:?}");
    assert!(
        msg.contains("full") && msg.contains(&db.display().to_string()),
        "{msg}"
    );
    // The failure sticks: later writes are not taken for recorded.
    store.write(WriteOp::Node {
        execution: id.clone(),
        node: node(99, "wf/c", NodeStatus::Succeeded, None),
    });
    assert!(store.flush().is_err());
    assert!(store.finish().is_err());

    integrity_ok(&db);
    let store = SqliteStore::open(&db).unwrap();
    let nodes = store.nodes(&id).unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.path.as_str()).collect::<Vec<_>>(),
        vec!["wf/a"]
    );
    assert_eq!(
        store.execution(id.as_str()).unwrap().summary.status,
        ExecStatus::Running
    );
}
