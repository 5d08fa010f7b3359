//! Cancelling a run from another process (`sandflow cancel`, the console's cancel button):
//! the request is a row in the execution store ([`StoreWrite::request_cancel`]), and the
//! process that owns the run polls for it with [`watch`]. When it is there, the run's cancel
//! flag is set, exactly as Ctrl-C sets it: the run stops its instances and ends cancelled,
//! recoverable.
//!
//! Polling, not a signal: the owner may be on another host (a shared PostgreSQL store), and
//! a signal could not say which of a process's runs to stop. The poll is one point read of a
//! small table on its own thread every [`POLL`]: nothing the run's threads ever wait for.
//!
//! [`StoreWrite::request_cancel`]: crate::store::StoreWrite::request_cancel

use crate::runner::RunControls;
use crate::store::{ExecutionId, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the owner of a run looks for a cancel request: a person who clicks cancel sees
/// the run stop within about this long.
pub const POLL: Duration = Duration::from_millis(250);

/// Stops watching when dropped (and waits at most one poll for the thread to end).
pub struct Watch {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Watches the store for a request to cancel `id` (the run's top execution) and sets
/// `controls.cancel` when one comes. A store that cannot be read is said once on stderr and
/// read again at the next poll: Ctrl-C still stops the run meanwhile.
pub fn watch(
    store: Arc<dyn Store>,
    id: ExecutionId,
    controls: Arc<RunControls>,
) -> std::io::Result<Watch> {
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let thread = std::thread::Builder::new()
        .name("sandflow-cancel-watch".into())
        .spawn(move || {
            let mut warned = false;
            while !stop.load(Ordering::Relaxed) && !controls.cancel.load(Ordering::Relaxed) {
                std::thread::park_timeout(POLL);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match store.cancel_requested(&id) {
                    Ok(true) => {
                        eprintln!("sandflow: execution {id} was asked to stop; cancelling");
                        controls.cancel.store(true, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) if !warned => {
                        warned = true;
                        eprintln!(
                            "sandflow: warning: cannot read the cancel requests of execution \
                             {id} ({e}); Ctrl-C still stops the run"
                        );
                    }
                    Err(_) => {}
                }
            }
        })?;
    Ok(Watch {
        done,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ModuleRecord, NewExecution, Owner, SqliteStore, StoreWrite, WriteOp};
    use sandflow_contract::Value;
    use std::time::Instant;

    #[test]
    fn a_request_in_the_store_sets_the_runs_cancel_flag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("w.db")).unwrap());
        let id = ExecutionId::generate();
        store.write_batch(vec![
            WriteOp::PutModule(ModuleRecord {
                digest: "d".into(),
                bytes: vec![],
                entities: vec![],
            }),
            WriteOp::StartExecution(NewExecution {
                id: id.clone(),
                parent: None,
                root: id.clone(),
                entity: "wf".into(),
                module: "d".into(),
                inputs: Value::List(vec![]),
                started_ms: 0,
                owner: Owner::current(),
                recovered_from: None,
            }),
        ]);
        store.flush().unwrap();
        let controls = Arc::new(RunControls::default());
        let w = watch(store.clone(), id.clone(), controls.clone()).unwrap();
        std::thread::sleep(POLL * 2);
        assert!(!controls.cancel.load(Ordering::Relaxed), "nobody asked");
        store.request_cancel(&id).unwrap();
        let t0 = Instant::now();
        while !controls.cancel.load(Ordering::Relaxed) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the request was not seen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Dropping the watch ends its thread (the join returns).
        drop(w);
    }
}
