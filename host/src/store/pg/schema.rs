//! The PostgreSQL schema: the tables of the SQLite store's version 5 (see
//! `store::schema`), in a schema named `sandflow`, with a version in `sandflow.meta`. They
//! are created on first use, and a database of version 1 is migrated (version 2 adds the
//! executions' `summary`, as SQLite's version 5 does); a newer one is refused.
//!
//! Text that is compared or ordered (ids by prefix, node paths) is `COLLATE "C"`: byte
//! order, as SQLite compares, whatever the database's locale. Node rows are appended, never
//! updated, and readers take the last per key, as in SQLite: a batch inserts them in one
//! multi-row statement, where an upsert would fail on a node that appears twice in it.

use super::super::error::pg;
use super::super::StoreError;
use postgres::Client;

pub(crate) const SCHEMA: &str = "sandflow";

/// The version this build reads and writes.
pub const VERSION: i64 = 2;

/// What takes a database from version `i + 1` to `i + 2`.
const MIGRATIONS: &[&str] =
    &["ALTER TABLE sandflow.executions ADD COLUMN IF NOT EXISTS summary text"];

const TABLES: &str = r#"
CREATE TABLE sandflow.modules (digest text PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE sandflow.entities (
    module text NOT NULL, name text NOT NULL, kind text NOT NULL, interface bytea NOT NULL,
    PRIMARY KEY (module, name)
);
CREATE TABLE sandflow.executions (
    seq bigserial PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    parent text COLLATE "C",
    root text COLLATE "C" NOT NULL,
    entity text NOT NULL,
    module text NOT NULL,
    inputs bytea NOT NULL,
    status text NOT NULL,
    started_ms bigint NOT NULL,
    ended_ms bigint,
    error text,
    output bytea,
    owner_host text NOT NULL,
    owner_boot text NOT NULL,
    owner_pid bigint NOT NULL,
    owner_start bigint NOT NULL,
    recovered_from text COLLATE "C",
    summary text
);
CREATE INDEX executions_started ON sandflow.executions (started_ms);
CREATE INDEX executions_parent ON sandflow.executions (parent);
CREATE INDEX executions_root ON sandflow.executions (root);
CREATE INDEX executions_running ON sandflow.executions (status) WHERE status = 'running';
CREATE TABLE sandflow.nodes (
    id bigserial PRIMARY KEY,
    execution bigint NOT NULL,
    key bigint NOT NULL,
    path text COLLATE "C" NOT NULL,
    entity text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    attempts bigint NOT NULL,
    output bytea,
    output_inline bytea,
    cached boolean NOT NULL,
    start_us bigint,
    end_us bigint,
    worker bigint
);
CREATE INDEX nodes_execution ON sandflow.nodes (execution, key, id);
CREATE TABLE sandflow.attempts (
    execution bigint NOT NULL,
    node bigint NOT NULL,
    attempt bigint NOT NULL,
    start_us bigint NOT NULL,
    end_us bigint NOT NULL,
    outcome text NOT NULL,
    message text,
    worker bigint,
    PRIMARY KEY (execution, node, attempt)
);
CREATE TABLE sandflow.logs (
    execution bigint NOT NULL,
    node bigint NOT NULL,
    attempt bigint NOT NULL,
    stdout bytea NOT NULL,
    stderr bytea NOT NULL,
    PRIMARY KEY (execution, node, attempt)
);
CREATE TABLE sandflow.value_bytes (hash bytea PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE sandflow.graphs (
    execution bigint NOT NULL, node bigint NOT NULL, hash bytea NOT NULL,
    PRIMARY KEY (execution, node)
);
CREATE TABLE sandflow.graph_bytes (hash bytea PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE sandflow.events (
    execution bigint NOT NULL, seq bigint NOT NULL, bytes bytea NOT NULL,
    PRIMARY KEY (execution, seq)
);
CREATE TABLE sandflow.cache (
    key bytea PRIMARY KEY,
    task text NOT NULL,
    cache_version text NOT NULL,
    output bytea NOT NULL,
    created_ms bigint NOT NULL,
    execution text NOT NULL,
    node bigint NOT NULL
);
CREATE INDEX cache_task ON sandflow.cache (task);
CREATE TABLE sandflow.cancel_requests (
    execution bigint PRIMARY KEY,
    requested_ms bigint NOT NULL
);
"#;

/// The version recorded in the database, `None` where the store has no tables yet.
fn found_version(client: &mut Client, location: &str) -> Result<Option<i64>, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('sandflow.meta') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(pg(location, "looking for the store's tables"))?;
    if !exists {
        return Ok(None);
    }
    // A version of another type (a store of a future layout) is an error naming it, not a
    // panic.
    client
        .query_opt("SELECT version FROM sandflow.meta", &[])
        .and_then(|row| row.map(|r| r.try_get(0)).transpose())
        .map_err(pg(location, "reading the schema version"))
}

fn check(found: i64, location: &str) -> Result<(), StoreError> {
    if found != VERSION {
        return Err(StoreError::PgSchemaVersion {
            location: location.to_string(),
            found,
            supported: VERSION,
        });
    }
    Ok(())
}

/// Creates the tables where there are none, and checks the version where there are. Several
/// processes may open a new database at once: an advisory lock makes them take turns, and
/// the version is read again under it, so only the first creates the tables.
pub(crate) fn ensure(client: &mut Client, location: &str) -> Result<(), StoreError> {
    if let Some(found) = found_version(client, location)? {
        if !(1..VERSION).contains(&found) {
            return check(found, location);
        }
    }
    // A session lock, taken outside the transaction: the transaction then starts after the
    // first process committed, and so sees its tables (a transaction begun before that
    // commit still resolves names from what it saw, and would try to create them again).
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .map_err(pg(
            location,
            "waiting for another process creating the tables",
        ))?;
    let created = create_under_lock(client, location);
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .map_err(pg(location, "releasing the lock on creating the tables"));
    created.and(unlocked.map(|_| ()))
}

/// The advisory lock of table creation: any constant of our own (locks are per database).
const LOCK: i64 = 7_362_841_905;

fn create_under_lock(client: &mut Client, location: &str) -> Result<(), StoreError> {
    if let Some(found) = found_version(client, location)? {
        if (1..VERSION).contains(&found) {
            return migrate_under_lock(client, location, found);
        }
        return check(found, location);
    }
    let mut tx = client
        .transaction()
        .map_err(pg(location, "starting to create the store's tables"))?;
    tx.batch_execute("CREATE SCHEMA IF NOT EXISTS sandflow")
        .and_then(|_| tx.batch_execute(TABLES))
        .and_then(|_| tx.batch_execute("CREATE TABLE sandflow.meta (version bigint NOT NULL)"))
        .and_then(|_| {
            tx.execute(
                "INSERT INTO sandflow.meta (version) VALUES ($1)",
                &[&VERSION],
            )
        })
        .map_err(pg(
            location,
            format!("creating the tables of schema version {VERSION}"),
        ))?;
    tx.commit()
        .map_err(pg(location, "committing the store's tables"))
}

/// Takes a database of an older version to [`VERSION`], in one transaction.
fn migrate_under_lock(client: &mut Client, location: &str, found: i64) -> Result<(), StoreError> {
    let mut tx = client
        .transaction()
        .map_err(pg(location, "starting the schema migration"))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize - 1) {
        tx.batch_execute(sql).map_err(pg(
            location,
            format!("migrating to schema version {}", i + 2),
        ))?;
    }
    tx.execute("UPDATE sandflow.meta SET version = $1", &[&VERSION])
        .map_err(pg(location, "setting the schema version"))?;
    tx.commit()
        .map_err(pg(location, "committing the schema migration"))
}
