//! `sandflow cancel <id>`: asks the run that owns a running execution to stop, as Ctrl-C in
//! its terminal would (it ends `cancelled`, and `sandflow recover` finishes it), and waits
//! until it has. The request goes through the store (see `sandflow_host::remote_cancel`), so
//! the run may be in any process that records into it. The console's cancel uses
//! [`request`] too.

use super::store::open_existing_store;
use clap::Args;
use sandflow_host::store::{ExecStatus, ExecutionId, Owner, StoreError, StoreRead, StoreWrite};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args)]
/// Stop a running execution (from any process that records into the store), as Ctrl-C would
pub struct CancelArgs {
    /// The execution (its id, or a prefix of it that only it has); a child execution stops
    /// its whole run
    id: String,
    /// The execution store (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Return once the request is recorded, without waiting for the run to stop
    #[arg(long)]
    no_wait: bool,
}

/// Why an execution cannot be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error(
        "execution {id} is {status}, not running: there is nothing to cancel{}",
        if matches!(status, ExecStatus::Succeeded) { "" } else { " (`sandflow recover` finishes it)" }
    )]
    NotRunning { id: ExecutionId, status: ExecStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A recorded cancel request.
pub struct Requested {
    /// The execution asked for.
    pub execution: ExecutionId,
    /// The run's top execution, which stops with everything under it.
    pub root: ExecutionId,
    pub owner: Owner,
}

/// Records a request that the run owning execution `id_or_prefix` stop. A child execution (a
/// launch plan call) runs in its top execution's run, which has one cancel flag: the request
/// is for the whole run, as Ctrl-C in its terminal would be.
pub fn request(
    store: &(impl StoreRead + StoreWrite),
    id_or_prefix: &str,
) -> Result<Requested, CancelError> {
    let s = store.execution(id_or_prefix)?.summary;
    if s.status != ExecStatus::Running {
        return Err(CancelError::NotRunning {
            id: s.id,
            status: s.status,
        });
    }
    store.request_cancel(&s.root)?;
    Ok(Requested {
        execution: s.id,
        root: s.root,
        owner: s.owner,
    })
}

/// How long `sandflow cancel` waits for the run to stop: a run stops its instances at once
/// (epoch interruption), so this bounds a run whose process is stuck or on another host.
const WAIT: Duration = Duration::from_secs(60);

pub fn cancel(args: CancelArgs) -> anyhow::Result<u8> {
    let store = open_existing_store(args.db)?;
    let r = request(&store, &args.id)?;
    let whose = if r.execution == r.root {
        format!("execution {}", r.root)
    } else {
        format!(
            "execution {} (a child of {}, whose run it is)",
            r.execution, r.root
        )
    };
    eprintln!(
        "sandflow: asked the run of {whose} (process {} on {}) to stop",
        r.owner.pid, r.owner.host
    );
    if args.no_wait {
        return Ok(0);
    }
    let t0 = Instant::now();
    loop {
        let status = store.execution(r.root.as_str())?.summary.status;
        match status {
            ExecStatus::Running if t0.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(100))
            }
            ExecStatus::Running => anyhow::bail!(
                "execution {} is still running {} s after the request: is process {} on {} \
                 stuck? The request stays recorded",
                r.root,
                WAIT.as_secs(),
                r.owner.pid,
                r.owner.host
            ),
            ExecStatus::Cancelled => {
                eprintln!(
                    "sandflow: execution {} cancelled; `sandflow recover {}` finishes it",
                    r.root, r.root
                );
                return Ok(0);
            }
            other => {
                eprintln!(
                    "sandflow: execution {} ended {other} before it saw the request",
                    r.root
                );
                return Ok(1);
            }
        }
    }
}
