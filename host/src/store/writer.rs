//! The writer thread: every write of a store goes through it. It takes everything queued,
//! writes it in one transaction and commits (group commit): while it commits, the next batch
//! queues up, so a fast run costs one commit per batch, not one per task execution.
//!
//! The first failure (a full disk, a lost lock) is kept: what was committed before stays, the
//! writer stops writing (a later batch could refer to rows the failed one held), and every
//! `flush` from then on returns the failure.
//!
//! A failure is final, so a backend's commit rides out what is transient itself: PostgreSQL's
//! (`pg::write`) connects again after a lost connection and writes the batch again, never
//! twice, for up to half a minute, before it returns a failure. The thread blocks meanwhile
//! and the bounded queue holds the run back: a run waits through a restarted server rather
//! than failing.

use super::ops::{apply, State, WriteOp};
use super::StoreError;
use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, TransactionBehavior};
use std::path::PathBuf;

/// Writes one batch in one transaction and commits it, or says why not. Each backend has
/// its own (SQLite's below, PostgreSQL's in `pg::write`); the thread around it is shared.
pub(crate) type Commit = Box<dyn FnMut(&[WriteOp]) -> Result<(), String> + Send>;
use std::thread::JoinHandle;

/// Messages queued before the writer blocks its callers: enough for many driver steps, and a
/// bound on memory when the disk is slower than the run.
const QUEUE: usize = 16_384;
/// Operations per transaction at most, so a commit's latency stays bounded under a flood.
const MAX_BATCH: usize = 50_000;

// Ops are the common message: boxing them would cost an allocation each to save channel
// slot space.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    Op(WriteOp),
    Batch(Vec<WriteOp>),
    Flush(Sender<Result<(), StoreError>>),
}

pub(crate) struct Writer {
    tx: Option<Sender<Msg>>,
    handle: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Writer {
    pub(crate) fn spawn(
        mut conn: Connection,
        path: PathBuf,
        checkpoints: super::sqlite::Checkpointer,
    ) -> Writer {
        let mut state = State::default();
        Writer::spawn_with(
            Box::new(move |ops| {
                let r = commit(&mut conn, &mut state, ops).inspect_err(|_| state.rolled_back());
                checkpoints.after_commit();
                r
            }),
            path,
        )
    }

    /// A writer thread that commits each batch with `commit`; `path` names the store in
    /// its errors.
    pub(crate) fn spawn_with(commit: Commit, path: PathBuf) -> Writer {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let thread_path = path.clone();
        let handle = std::thread::Builder::new()
            .name("sandflow-store".into())
            .spawn(move || run(commit, thread_path, rx))
            .ok();
        Writer {
            tx: handle.as_ref().map(|_| tx),
            handle,
            path,
        }
    }

    /// Queues `msg`; if the thread is gone, the next `flush` says so.
    pub(crate) fn send(&self, msg: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = crossbeam_channel::bounded(1);
        let gone = || StoreError::Write {
            path: self.path.clone(),
            message: "the writer thread is not running".into(),
        };
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send(Msg::Flush(ack)).map_err(|_| gone())?;
        done.recv().map_err(|_| gone())?
    }

    pub(crate) fn shutdown(&mut self) -> Result<(), StoreError> {
        let result = self.flush();
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        result
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread commit what is queued and end.
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(mut commit: Commit, path: PathBuf, rx: Receiver<Msg>) {
    let mut failed: Option<String> = None;
    let mut ops = Vec::new();
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut take = |m: Msg, ops: &mut Vec<WriteOp>| match m {
            Msg::Op(op) => ops.push(op),
            Msg::Batch(b) => ops.extend(b),
            Msg::Flush(ack) => acks.push(ack),
        };
        take(first, &mut ops);
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => take(m, &mut ops),
                Err(_) => break,
            }
        }
        if failed.is_none() && !ops.is_empty() {
            if let Err(e) = commit(&ops) {
                failed = Some(e);
            }
        }
        ops.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(match &failed {
                None => Ok(()),
                Some(message) => Err(StoreError::Write {
                    path: path.clone(),
                    message: message.clone(),
                }),
            });
        }
    }
}

fn commit(conn: &mut Connection, state: &mut State, ops: &[WriteOp]) -> Result<(), String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| format!("starting a transaction: {e}"))?;
    state.start_transaction();
    for op in ops {
        apply(&tx, state, op)?;
    }
    tx.commit().map_err(|e| format!("committing: {e}"))
}
