//! [`PgStore`]: the execution store in a PostgreSQL database (issue 15), for executions that
//! several processes and machines share. Same records and the same semantics as
//! [`SqliteStore`](super::SqliteStore): writes go to a writer thread that commits each batch
//! in one transaction (group commit), with one multi-row statement per table; reads run on a
//! connection of their own.
//!
//! - [`schema`]: the tables, created on first use, and the version check;
//! - [`write`]: a batch as rows; [`reads`]: the queries; [`maintenance`]: prune, cache clear,
//!   interrupted executions.

mod cancel;
mod maintenance;
pub mod queue;
mod reads;
mod schema;
mod write;

#[cfg(test)]
pub(crate) mod cluster;
#[cfg(test)]
mod tests;

use super::error::{pg, pg_message};
use super::writer::Writer;
use super::StoreError;
use postgres::config::Host;
use postgres::{Client, Config, NoTls};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use schema::VERSION as PG_SCHEMA_VERSION;

/// How long connecting may take unless the URL says (`connect_timeout=`): an unreachable
/// server is an error in seconds, not after the kernel's TCP timeout of minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an operation of a run (a batch of writes, a queue update) keeps connecting again
/// after its connection was lost before it fails: a restarted server or a terminated backend
/// is back within seconds, and a run that waits through it ends as it would have; a server
/// gone for longer fails the run with the error, and the queue's lease hands it to another
/// worker.
pub(crate) const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// Whether `e` says the connection is gone (a restarted server, a terminated backend, a lost
/// network) rather than that the statement was wrong: only then is it worth connecting
/// again and retrying.
pub(crate) fn is_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 is "connection exception"; 57P01-57P03 are an administrator's shutdown or
        // termination, a crash of another backend, and a server not accepting connections yet.
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
        }
        // The client's own error: lost where it is an I/O error (the socket).
        None => {
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                if c.is::<std::io::Error>() {
                    return true;
                }
                cause = c.source();
            }
            false
        }
    }
}

/// A new connection after the last one was lost, tried again with growing pauses until
/// `deadline` while the server is not there (refused, starting up). An error that says the
/// server is there and refuses us (a password changed) ends the wait at once.
pub(crate) fn reconnect(
    config: &Config,
    location: &str,
    deadline: Instant,
) -> Result<Client, StoreError> {
    let mut pause = Duration::from_millis(50);
    loop {
        match try_connect(config, location) {
            Ok(c) => return Ok(c),
            Err((e, lost)) => {
                if !lost || Instant::now() + pause >= deadline {
                    return Err(e);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Whether `location` (a `--db` or `$SANDFLOW_DB`) names a PostgreSQL database.
pub fn is_pg_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

pub struct PgStore {
    config: Config,
    /// The URL as given, password included: for the processes a console starts on the same
    /// store (passed in their environment, never on a command line).
    url: String,
    /// The URL without its password, for messages.
    location: String,
    /// The same, as the shared error variants' `path`.
    path: PathBuf,
    reader: Mutex<Client>,
    writer: Writer,
    /// The queue's table is there as this build needs it (checked once per process).
    queue_ready: std::sync::atomic::AtomicBool,
    /// Queue connections given back for reuse (`take_queue`, `give_back`): a new one costs
    /// a TCP handshake and a SCRAM exchange (thousands of SHA-256 rounds on both sides).
    idle_queues: Mutex<Vec<queue::Queue>>,
}

impl PgStore {
    /// Connects to the database at `url` and creates the store's tables there if it has none.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| StoreError::PgUrl {
            url: redact(url),
            message: e.to_string(),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A connection whose peer vanished (a lost network) fails instead of hanging.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        // With the pid, so that an operator (or a test) finds a process's connections in
        // pg_stat_activity.
        if config.get_application_name().is_none() {
            config.application_name(&format!("sandflow {}", std::process::id()));
        }
        let location = location_of(&config);
        let mut write_conn = connect(&config, &location)?;
        schema::ensure(&mut write_conn, &location)?;
        let read_conn = connect(&config, &location)?;
        let path = PathBuf::from(&location);
        let mut state = write::State::new(location.clone(), config.clone(), write_conn);
        let writer = Writer::spawn_with(Box::new(move |ops| state.commit(ops)), path.clone());
        Ok(PgStore {
            config,
            url: url.to_string(),
            location,
            path,
            reader: Mutex::new(read_conn),
            writer,
            queue_ready: Default::default(),
            idle_queues: Mutex::default(),
        })
    }

    /// The URL as given, password included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The location without its password, as messages name it.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Commits what is queued, stops the writer thread and returns its first error.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.writer.shutdown()
    }

    /// The reads' connection, connected again if the last one was lost (a restarted server,
    /// a terminated backend): a long-lived reader such as `sandflow ui` outlives it. Where
    /// connecting fails, the closed client stays and the read fails naming the store.
    pub(crate) fn read(&self) -> MutexGuard<'_, Client> {
        // A reader that panicked left at most a transaction that the server rolls back at
        // the next statement's error; the client itself is still good.
        let mut guard = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_closed() {
            if let Ok(fresh) = connect(&self.config, &self.location) {
                *guard = fresh;
            }
        }
        guard
    }

    /// Whether the reads' connection is known to be gone.
    pub(crate) fn reader_lost(&self) -> bool {
        self.reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_closed()
    }

    pub(crate) fn err(
        &self,
        context: impl Into<String>,
    ) -> impl FnOnce(postgres::Error) -> StoreError {
        pg(&self.location, context)
    }
}

fn connect(config: &Config, location: &str) -> Result<Client, StoreError> {
    try_connect(config, location).map_err(|(e, _)| e)
}

/// A connection, or the error and whether it is one of a server that is not there (yet).
fn try_connect(config: &Config, location: &str) -> Result<Client, (StoreError, bool)> {
    let mut client = config.connect(NoTls).map_err(|e| {
        let lost = is_lost(&e);
        let e = StoreError::PgConnect {
            location: location.to_string(),
            message: pg_message(&e),
        };
        (e, lost)
    })?;
    // The store's tables live in a schema of their own, so a database shared with other
    // applications keeps its `public` schema to itself.
    client
        .batch_execute(&format!("SET search_path TO {}", schema::SCHEMA))
        .map_err(|e| {
            let lost = is_lost(&e);
            (pg(location, "selecting the sandflow schema")(e), lost)
        })?;
    Ok(client)
}

/// `postgres://user@host:port/database`, never the password.
fn location_of(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    let port = config
        .get_ports()
        .first()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{}{port}/{db}", hosts.join(","))
}

/// `url` with the password (between `user:` and `@`) replaced, for an error about the URL.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    match (rest.find(':'), rest.find('@')) {
        (Some(colon), Some(at)) if colon < at => {
            format!(
                "{}{}:***{}",
                &url[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => url.to_string(),
    }
}
