//! Starting a run for the console: a `sandflow` child process (this very binary), so a guest
//! can never hurt the server and the run owns its execution as any CLI run does (Ctrl-C in
//! no terminal, `sandflow cancel` and the console's cancel button stop it).
//!
//! The child's stderr goes to a file that is unlinked as soon as the child has it open: the
//! server reads the `sandflow: running <entity> (execution <id>)` line from it, or the error
//! the child ended with, and never holds a pipe the child could block on or die writing to
//! (a run outlives the console that started it). The file disappears with the child.
//! Each child is in its own process group, so Ctrl-C in the console's terminal stops the
//! console, not the runs it started.

use crate::cli::execute::started_execution;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a child may take to load its module and check its inputs before the console
/// gives up on it (compiling a large module the first time takes seconds).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Why no run started.
pub enum StartError {
    /// The child refused its arguments or inputs (exit code 2): its message.
    Refused(String),
    /// The child ended otherwise, or could not be started or watched.
    Failed(String),
}

/// Runs `sandflow <args>` with `stdin` on its standard input; returns the id of the execution
/// it started, once it has said so.
/// `db` is the store the child opens, given as `SANDFLOW_DB` (a PostgreSQL URL's password
/// stays off the command line, where any local user could read it).
pub fn start(
    exe: &Path,
    db: &std::ffi::OsStr,
    args: &[OsString],
    stdin: Option<Vec<u8>>,
) -> Result<String, StartError> {
    let failed = |what: &str, e: std::io::Error| StartError::Failed(format!("{what}: {e}"));
    let (log, log_path) = log_file().map_err(|e| failed("creating the run's log file", e))?;
    let child_log = log
        .try_clone()
        .map_err(|e| failed("sharing the run's log file", e))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("SANDFLOW_DB", db)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::from(child_log))
        .process_group(0);
    let spawned = cmd.spawn();
    // The child has the file open (or never will): its name is not needed any more.
    let _ = std::fs::remove_file(&log_path);
    let mut child = spawned.map_err(|e| failed(&format!("starting {}", exe.display()), e))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A thread, so a child that ends before reading all of it cannot block the server; a
        // child that ended early makes this fail, and says why on its stderr.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let t0 = Instant::now();
    let mut text = Vec::new();
    let mut scanned = 0;
    loop {
        let ended = child
            .try_wait()
            .map_err(|e| failed("watching the run", e))?;
        read_more(&log, &mut text).map_err(|e| failed("reading the run's log", e))?;
        // Complete lines only: a line half written is read whole at the next poll.
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let lines = String::from_utf8_lossy(&text[scanned..complete]).into_owned();
        scanned = complete;
        if let Some(id) = lines.lines().find_map(started_execution) {
            let id = id.to_string();
            reap(child);
            return Ok(id);
        }
        if let Some(status) = ended {
            let said = String::from_utf8_lossy(&text);
            let why = said
                .lines()
                .filter_map(|l| l.strip_prefix("error: "))
                .collect::<Vec<_>>()
                .join("; ");
            let why = if why.is_empty() {
                format!(
                    "the run ended ({status}) before it started: {}",
                    said.trim()
                )
            } else {
                why
            };
            return Err(if status.code() == Some(2) {
                StartError::Refused(why)
            } else {
                StartError::Failed(why)
            });
        }
        if t0.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            reap(child);
            return Err(StartError::Failed(format!(
                "the run did not start within {} s (still loading its module?); it was stopped",
                START_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the child on a thread of its own, so it leaves no zombie behind.
fn reap(mut child: Child) {
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

/// Appends what the file holds after `text` to it.
fn read_more(log: &File, text: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        // Positional reads: the child's writes (O_APPEND) never depend on where we read.
        let n = log.read_at(&mut buf, text.len() as u64)?;
        if n == 0 {
            return Ok(());
        }
        text.extend_from_slice(&buf[..n]);
    }
}

/// A new file for a child's stderr, opened for appending, in the temporary directory.
fn log_file() -> std::io::Result<(File, PathBuf)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("sandflow-console-{}-{n}.log", std::process::id()));
        // `create_new`: never a file (or a link) someone else put there.
        match std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}
