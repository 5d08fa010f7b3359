//! The run's log budget: what each attempt wrote and what a failed attempt said, kept in
//! memory only up to `Options::max_log_bytes` over the whole run; and the stderr tail a
//! failure carries.

use super::Timing;

/// Failed attempts of a node, kept for the tree.
#[derive(Clone, Debug)]
pub(super) struct AttemptLog {
    pub(super) timing: Timing,
    pub(super) message: String,
    /// What this attempt wrote, when another attempt followed it (the last attempt's output
    /// is the node's own `logs`).
    pub(super) logs: Option<Box<Logs>>,
}

/// What one attempt wrote to stdout and stderr, as far as the run's log budget kept it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Logs {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    /// Bytes the attempt wrote that were not kept: the run's log budget was spent.
    pub(crate) dropped: u64,
}

/// The bytes of task output (and of failed attempts' messages) a run keeps in memory, over
/// all its attempts: each attempt's capture is bounded by the sandbox, but a map of 200 000
/// chatty elements would otherwise keep 200 000 of them. Past the budget, an attempt's output
/// is counted, not kept.
#[derive(Debug, Default)]
pub(super) struct LogBudget {
    kept: u64,
    dropped: u64,
}

impl LogBudget {
    /// Bytes not kept so far.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether `stdout` and `stderr` would be kept.
    pub(super) fn fits(&self, max: u64, stdout: &[u8], stderr: &[u8]) -> bool {
        self.kept + (stdout.len() + stderr.len()) as u64 <= max
    }

    /// Keeps `stdout` and `stderr` while the budget `max` allows, else counts them.
    pub(super) fn keep(&mut self, max: u64, stdout: Vec<u8>, stderr: Vec<u8>) -> Option<Box<Logs>> {
        let len = (stdout.len() + stderr.len()) as u64;
        if len == 0 {
            return None;
        }
        if self.kept + len <= max {
            self.kept += len;
            return Some(Box::new(Logs {
                stdout,
                stderr,
                dropped: 0,
            }));
        }
        self.dropped += len;
        Some(Box::new(Logs {
            dropped: len,
            ..Logs::default()
        }))
    }

    /// A failed attempt's message, whole while the budget allows, else its first
    /// [`CLIPPED_MESSAGE`] bytes.
    pub(super) fn message(&mut self, max: u64, message: &str) -> String {
        let len = message.len() as u64;
        if self.kept + len <= max {
            self.kept += len;
            return message.to_string();
        }
        let mut cut = CLIPPED_MESSAGE.min(message.len());
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        self.dropped += (message.len() - cut) as u64;
        format!("{}…", &message[..cut])
    }
}

/// Bytes of a failed attempt's message kept once the run's log budget is spent.
const CLIPPED_MESSAGE: usize = 256;

/// Bytes of stderr a failure carries at most: a flood without newlines is one long line.
const MAX_TAIL_BYTES: usize = 4096;

/// The last lines of a guest's stderr, for failure messages: at most 10 lines and
/// [`MAX_TAIL_BYTES`], cut at the front with `…`.
pub(super) fn tail(stderr: &[u8]) -> Option<String> {
    if stderr.is_empty() {
        return None;
    }
    let s = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(10);
    let tail = lines[start..].join("\n");
    if tail.len() <= MAX_TAIL_BYTES {
        return Some(tail);
    }
    let mut cut = tail.len() - MAX_TAIL_BYTES;
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    Some(format!("…{}", &tail[cut..]))
}
