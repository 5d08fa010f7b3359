//! The schema, versioned with `PRAGMA user_version`: migration `i` takes a database from
//! version `i` to `i + 1`. A database newer than the last migration is refused, not guessed at.
//!
//! Executions have a text id users type and an integer `seq` the other tables refer to (8
//! bytes less per node, attempt and log row than repeating the id). Value hashes are raw
//! 32-byte sha256 digests; a node's output that encodes in fewer bytes than its hash (an
//! integer, a short string) is kept in the node's row (`output_inline`) instead. Foreign keys are not declared: the writer is the only one that
//! adds rows and writes an execution before its nodes, and `prune` deletes in order; a check
//! per inserted row would cost the hot path for nothing.

//! Node rows are appended, never updated: a node that expands and later ends has two rows, and
//! readers take the last one per key. Node keys are hashes, in no order: a table keyed by them
//! inserts all over its B-tree, and each commit rewrote most of its pages (a million-element
//! map wrote gigabytes of WAL that way); appended rows fill pages in order.

use super::StoreError;
use rusqlite::Connection;
use std::path::Path;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE modules (digest TEXT PRIMARY KEY, bytes BLOB NOT NULL);
    CREATE TABLE entities (
        module TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, interface BLOB NOT NULL,
        PRIMARY KEY (module, name)
    ) WITHOUT ROWID;
    CREATE TABLE executions (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        parent TEXT,
        root TEXT NOT NULL,
        entity TEXT NOT NULL,
        module TEXT NOT NULL,
        inputs BLOB NOT NULL,
        status TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        error TEXT,
        output BLOB,
        owner_host TEXT NOT NULL,
        owner_boot TEXT NOT NULL,
        owner_pid INTEGER NOT NULL,
        owner_start INTEGER NOT NULL,
        recovered_from TEXT
    );
    CREATE INDEX executions_started ON executions (started_ms);
    CREATE INDEX executions_parent ON executions (parent);
    CREATE INDEX executions_root ON executions (root);
    CREATE TABLE nodes (
        execution INTEGER NOT NULL,
        key INTEGER NOT NULL,
        path TEXT NOT NULL,
        entity TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        output BLOB,
        output_inline BLOB,
        cached INTEGER NOT NULL,
        start_us INTEGER,
        end_us INTEGER,
        PRIMARY KEY (execution, key)
    ) WITHOUT ROWID;
    CREATE TABLE attempts (
        execution INTEGER NOT NULL,
        node INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        start_us INTEGER NOT NULL,
        end_us INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        message TEXT,
        worker INTEGER,
        PRIMARY KEY (execution, node, attempt)
    ) WITHOUT ROWID;
    CREATE TABLE logs (
        execution INTEGER NOT NULL,
        node INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        stdout BLOB NOT NULL,
        stderr BLOB NOT NULL,
        PRIMARY KEY (execution, node, attempt)
    );
    CREATE TABLE value_bytes (hash BLOB PRIMARY KEY, bytes BLOB NOT NULL);
    CREATE TABLE graphs (
        execution INTEGER NOT NULL, node INTEGER NOT NULL, hash BLOB NOT NULL,
        PRIMARY KEY (execution, node)
    ) WITHOUT ROWID;
    CREATE TABLE graph_bytes (hash BLOB PRIMARY KEY, bytes BLOB NOT NULL);
    CREATE TABLE events (
        execution INTEGER NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL,
        PRIMARY KEY (execution, seq)
    );
    CREATE TABLE cache (
        key BLOB PRIMARY KEY,
        task TEXT NOT NULL,
        cache_version TEXT NOT NULL,
        output BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        execution TEXT NOT NULL,
        node INTEGER NOT NULL
    );
    CREATE INDEX cache_task ON cache (task);
    ",
    // 2: node rows appended in order, not kept by (execution, key): see the module's doc.
    "
    CREATE TABLE nodes_appended (
        id INTEGER PRIMARY KEY,
        execution INTEGER NOT NULL,
        key INTEGER NOT NULL,
        path TEXT NOT NULL,
        entity TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        output BLOB,
        output_inline BLOB,
        cached INTEGER NOT NULL,
        start_us INTEGER,
        end_us INTEGER
    );
    INSERT INTO nodes_appended (execution, key, path, entity, kind, status, attempts, output,
        output_inline, cached, start_us, end_us)
        SELECT execution, key, path, entity, kind, status, attempts, output, output_inline,
        cached, start_us, end_us FROM nodes;
    DROP TABLE nodes;
    ALTER TABLE nodes_appended RENAME TO nodes;
    CREATE INDEX nodes_execution ON nodes (execution);
    ",
    // 3: requests to stop a running execution, from another process (`sandflow cancel`, the
    // console); the run that owns the execution polls for its own row.
    "
    CREATE TABLE cancel_requests (
        execution INTEGER PRIMARY KEY,
        requested_ms INTEGER NOT NULL
    );
    ",
    // 4: the worker that ran a node's latest attempt, for the console's timeline (an attempt
    // that answered silently is recorded only as its node's row).
    "
    ALTER TABLE nodes ADD COLUMN worker INTEGER;
    ",
    // 5: what a run knows of an execution when it ends (`TreeSummary`, as JSON): its task
    // counts and the groups of nodes too many to read whole, so that reading them costs no
    // scan of its nodes (a million of them for a big map) and writing them no index.
    "
    ALTER TABLE executions ADD COLUMN summary TEXT;
    ",
];

/// The version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

fn user_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(StoreError::sqlite(path, "reading the schema version"))
}

/// Brings the database to [`VERSION`]. Several processes may open a new file at once: the
/// version is read again inside the write transaction, so only one of them migrates.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found = user_version(conn, path)?;
    if found == VERSION {
        return Ok(());
    }
    check_not_newer(found, path)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(path, "starting the schema migration"))?;
    let found = user_version(&tx, path)?;
    check_not_newer(found, path)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).map_err(StoreError::sqlite(
            path,
            format!("migrating to schema version {}", i + 1),
        ))?;
    }
    // PRAGMA takes no bound parameters; VERSION is our own constant.
    tx.execute_batch(&format!("PRAGMA user_version = {VERSION}"))
        .map_err(StoreError::sqlite(path, "setting the schema version"))?;
    tx.commit()
        .map_err(StoreError::sqlite(path, "committing the schema migration"))
}

fn check_not_newer(found: i64, path: &Path) -> Result<(), StoreError> {
    if found > VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_store_migrates_keeping_its_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v1.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "INSERT INTO nodes (execution, key, path, entity, kind, status, attempts, cached) \
                 VALUES (1, 7, 'wf/t', 't', 'task', 'succeeded', 1, 0); \
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let mut conn = Connection::open(&db).unwrap();
        migrate(&mut conn, &db).unwrap();
        assert_eq!(user_version(&conn, &db).unwrap(), VERSION);
        let (key, path): (i64, String) = conn
            .query_row("SELECT key, path FROM nodes WHERE execution = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((key, path.as_str()), (7, "wf/t"));
        // Appended now: a second row for the same node is allowed, and read as the last.
        conn.execute(
            "INSERT INTO nodes (execution, key, path, entity, kind, status, attempts, cached) \
             VALUES (1, 7, 'wf/t', 't', 'task', 'failed', 2, 0)",
            [],
        )
        .unwrap();
    }
}
