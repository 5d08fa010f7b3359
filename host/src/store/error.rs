//! The store's errors: each names the database file, and the execution, node or digest
//! that was asked for.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory {dir} for the execution store {path}: {source}")]
    CreateDir {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no place for the execution store: set $SANDFLOW_DB, $XDG_DATA_HOME or $HOME, or pass --db"
    )]
    NoDefaultPath,
    #[error("cannot open the execution store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{path} is not a sandflow execution store (not an SQLite database, or a corrupt one): \
         {message}; move it away or pass another --db"
    )]
    NotADatabase { path: PathBuf, message: String },
    #[error(
        "the execution store {path} has schema version {found}, newer than version {supported} \
         that this sandflow knows; use a newer sandflow or another --db"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("execution store {path}: {context}: {source}")]
    Sqlite {
        path: PathBuf,
        context: String,
        source: rusqlite::Error,
    },
    /// The writer thread's first failure; what it committed before stays.
    #[error("writing to the execution store {path} failed: {message}")]
    Write { path: PathBuf, message: String },
    #[error("no execution {id} in the execution store {path}")]
    UnknownExecution { path: PathBuf, id: String },
    #[error(
        "execution id prefix {prefix:?} matches {} executions in {path} ({}); type more of the id",
        matches.len(),
        matches.join(", ")
    )]
    AmbiguousPrefix {
        path: PathBuf,
        prefix: String,
        matches: Vec<String>,
    },
    #[error("execution {execution} has no node {node_path:?} (in the execution store {path})")]
    UnknownNode {
        path: PathBuf,
        execution: String,
        node_path: String,
    },
    #[error("module {digest} is not in the execution store {path}")]
    MissingModule { path: PathBuf, digest: String },
    /// A `postgres://` location that does not parse.
    #[error(
        "{url:?} is not a PostgreSQL URL the execution store can use: {message}; expected \
         postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    PgUrl { url: String, message: String },
    #[error(
        "cannot connect to the execution store {location}: {message} (is the server running, \
         and are the host, port, user and password right?)"
    )]
    PgConnect { location: String, message: String },
    #[error("execution store {location}: {context}: {message}")]
    Postgres {
        location: String,
        context: String,
        message: String,
    },
    /// PostgreSQL stores are not migrated: one sandflow reads and writes one version.
    #[error(
        "the execution store {location} has schema version {found}, but this sandflow reads and \
         writes version {supported} only; use the sandflow that made it, or another database"
    )]
    PgSchemaVersion {
        location: String,
        found: i64,
        supported: i64,
    },
    /// A row that does not decode (a value, a graph or an interface) or holds an unknown name.
    #[error("execution store {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
}

impl StoreError {
    /// Wraps an SQLite error with the file and what was being done; a file that is not a
    /// database, or a damaged one, becomes [`StoreError::NotADatabase`] wherever it shows.
    pub(crate) fn sqlite(
        path: &std::path::Path,
        context: impl Into<String>,
    ) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        let context = context.into();
        move |source| {
            if is_not_a_database(&source) {
                StoreError::NotADatabase {
                    path,
                    message: source.to_string(),
                }
            } else {
                StoreError::Sqlite {
                    path,
                    context,
                    source,
                }
            }
        }
    }
}

/// Wraps a PostgreSQL error with the store's location and what was being done.
pub(crate) fn pg(
    location: &str,
    context: impl Into<String>,
) -> impl FnOnce(postgres::Error) -> StoreError {
    let location = location.to_string();
    let context = context.into();
    move |e| StoreError::Postgres {
        location,
        context,
        message: pg_message(&e),
    }
}

/// What a PostgreSQL error says: the server's message (and detail) for a server's error,
/// whose `Display` is only "db error", else the client's with its cause.
pub(crate) fn pg_message(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            m.push_str(&format!(" ({d})"));
        }
        return m;
    }
    let mut m = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !m.contains(&s) {
            m.push_str(&format!(": {s}"));
        }
        cause = c.source();
    }
    m
}

pub(crate) fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}
