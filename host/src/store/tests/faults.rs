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

#[test]
fn a_damaged_database_is_an_error_naming_the_file_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let store = SqliteStore::open(&db).unwrap();
    let id = ExecutionId::generate();
    let mut ops = vec![WriteOp::StartExecution(new_execution(
        &id,
        1,
        Owner::current(),
    ))];
    for k in 0..2000 {
        ops.push(WriteOp::Node {
            execution: id.clone(),
            node: node(
                k,
                &format!("wf/t{k}"),
                NodeStatus::Succeeded,
                Some(Value::Int(k as i64)),
            ),
        });
    }
    store.write_batch(ops);
    store.finish().unwrap();
    // Closing the last connection checkpointed the log into the file; overwrite every page
    // after the first (the header and the schema stay readable).
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 8192, "{} bytes", bytes.len());
    for b in &mut bytes[4096..] {
        *b = 0xa5;
    }
    std::fs::write(&db, bytes).unwrap();

    let store = match SqliteStore::open(&db) {
        Err(e) => {
            assert!(e.to_string().contains(&db.display().to_string()), "{e}");
            return;
        }
        Ok(s) => s,
    };
    let errors = [
        store.execution(id.as_str()).err(),
        store.nodes(&id).err(),
        store.executions(&ExecutionFilter::default()).err(),
    ];
    for e in errors {
        let e = e.expect("a damaged file is an error");
        assert!(e.to_string().contains(&db.display().to_string()), "{e}");
    }
}

#[test]
fn the_default_path_is_sandflow_db_then_xdg_data_home_then_home() {
    use std::ffi::OsString;
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let p = |pairs| sqlite::default_path_from(env(pairs)).map(|p| p.display().to_string());
    assert_eq!(
        p(&[("SANDFLOW_DB", "/x/my.db"), ("HOME", "/h")]).unwrap(),
        "/x/my.db"
    );
    assert_eq!(
        p(&[("SANDFLOW_DB", ""), ("XDG_DATA_HOME", "/d"), ("HOME", "/h")]).unwrap(),
        "/d/sandflow/sandflow.db"
    );
    assert_eq!(
        p(&[("HOME", "/h")]).unwrap(),
        "/h/.local/share/sandflow/sandflow.db"
    );
    assert!(matches!(p(&[]), Err(StoreError::NoDefaultPath)));
}
