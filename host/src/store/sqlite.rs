//! [`SqliteStore`]: the execution store in one SQLite file. Opening it creates the directory,
//! sets the connection up and migrates the schema; writes go to its writer thread, reads to a
//! connection of their own (WAL lets them run while the writer commits).

use super::{schema, writer::Writer, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How long a statement waits for another process's write lock before failing. Eight
/// `sandflow run`s on one file take turns committing; each commit is short (group commit),
/// so this is a bound for a stuck process, not a wait anyone should see.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    pub(crate) path: PathBuf,
    pub(crate) reader: Mutex<Connection>,
    pub(crate) writer: Writer,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path.as_ref(), None)
    }

    /// Opens the store with the writer's database limited to `max_page_count` pages: a full
    /// disk, for tests.
    #[cfg(test)]
    pub(crate) fn open_limited(
        path: &Path,
        max_page_count: u64,
    ) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, Some(max_page_count))
    }

    fn open_with(path: &Path, max_page_count: Option<u64>) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.clone(),
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let mut write_conn = connect(&path)?;
        schema::migrate(&mut write_conn, &path)?;
        if let Some(pages) = max_page_count {
            write_conn
                .execute_batch(&format!("PRAGMA max_page_count = {pages}"))
                .map_err(StoreError::sqlite(&path, "limiting the page count"))?;
        }
        // Checkpoints are not the writer's: SQLite's automatic one runs inside the commit
        // that takes the log past 1 000 pages, so a run's last flush (or the first commit of
        // a recovery, after a killed run left its log behind) waited for a copy of megabytes.
        // A thread of its own checkpoints instead, beside the writer (WAL lets it).
        write_conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(StoreError::sqlite(
                &path,
                "turning the automatic checkpoint off",
            ))?;
        let read_conn = connect(&path)?;
        let writer = Writer::spawn(write_conn, path.clone(), Checkpointer::spawn(path.clone()));
        Ok(SqliteStore {
            path,
            reader: Mutex::new(read_conn),
            writer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits what is queued, stops the writer thread and returns its first error.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.writer.shutdown()
    }

    pub(crate) fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A reader that panicked left no transaction open (statements are scoped), so the
        // connection is still good.
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the store lives unless `--db` says: `$SANDFLOW_DB`, else
/// `$XDG_DATA_HOME/sandflow/sandflow.db`, else `~/.local/share/sandflow/sandflow.db`.
pub fn default_path() -> Result<PathBuf, StoreError> {
    default_path_from(|name| std::env::var_os(name))
}

/// [`default_path`] with the environment given, for tests.
pub(crate) fn default_path_from(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, StoreError> {
    // An empty variable is as good as unset.
    let var = |name| env(name).filter(|v| !v.is_empty());
    if let Some(p) = var("SANDFLOW_DB") {
        return Ok(PathBuf::from(p));
    }
    let data = var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or(StoreError::NoDefaultPath)?;
    Ok(data.join("sandflow").join("sandflow.db"))
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| {
        if super::error::is_not_a_database(&source) {
            StoreError::NotADatabase {
                path: path.to_path_buf(),
                message: source.to_string(),
            }
        } else {
            StoreError::Open {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let err = |what: &str| StoreError::sqlite(path, what.to_string());
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("setting the busy timeout"))?;
    // The first statement that reads the file: a file that is not a database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err("switching to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!("the journal mode stays {mode:?}, not WAL"),
        });
    }
    // In WAL mode, NORMAL syncs the log only at checkpoints, not at each commit. A commit is
    // durable as soon as it is in the log file: a killed process (SIGKILL, a panic, OOM) loses
    // nothing it committed, which is what recovery needs. Only a power loss or an OS crash may
    // lose the last commits, never corrupt the file; a recovery then re-runs those tasks.
    // FULL would fsync every group commit, the slowest part of the write path.
    conn.execute_batch("PRAGMA synchronous = NORMAL")
        .map_err(err("setting synchronous = NORMAL"))?;
    // SQLite's default page cache is 2 MiB: a large run's node index outgrows it, and the
    // writer then rereads pages and spills dirty ones to the log mid-transaction (seen in a
    // profile of the write path). Pages are allocated as used; this is a ceiling.
    conn.execute_batch("PRAGMA cache_size = -32768")
        .map_err(err("setting the page cache size"))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Checkpoints the store's log on a thread of its own (PASSIVE: it never blocks the writer or
/// a reader) when the writer finds the log past [`Checkpointer::LOG_BYTES`] after a commit.
/// Its connection is opened on the first checkpoint: a short run that never needs one never
/// pays for it. A process that exits meanwhile leaves the log to the next one (a checkpoint
/// stopped half way is safe: SQLite redoes it).
pub(crate) struct Checkpointer {
    log: PathBuf,
    wanted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::Thread>,
}

impl Checkpointer {
    /// SQLite's own threshold (1 000 pages of 4 KiB).
    const LOG_BYTES: u64 = 4 << 20;

    fn spawn(path: PathBuf) -> Checkpointer {
        let mut log = path.clone().into_os_string();
        log.push("-wal");
        let wanted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = wanted.clone();
        let thread = std::thread::Builder::new()
            .name("sandflow-checkpoint".into())
            .spawn(move || {
                let mut conn: Option<Connection> = None;
                loop {
                    std::thread::park();
                    if !flag.swap(false, std::sync::atomic::Ordering::AcqRel) {
                        continue;
                    }
                    if conn.is_none() {
                        conn = connect(&path).ok();
                    }
                    if let Some(c) = &conn {
                        // Best effort: a checkpoint that cannot run now runs at the next one.
                        let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                }
            })
            .ok()
            .map(|h| h.thread().clone());
        Checkpointer {
            log: PathBuf::from(log),
            wanted,
            thread,
        }
    }

    /// After a commit: wakes the thread if the log has grown past the threshold.
    pub(crate) fn after_commit(&self) {
        let big = std::fs::metadata(&self.log).is_ok_and(|m| m.len() > Self::LOG_BYTES);
        if big && !self.wanted.swap(true, std::sync::atomic::Ordering::AcqRel) {
            if let Some(t) = &self.thread {
                t.unpark();
            }
        }
    }
}
