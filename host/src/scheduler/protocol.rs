//! What the scheduler speaks: the events it is fed, the commands it returns, the options of a
//! run, and the failures it reports. Everything a driver (the runner, a test, a durable store
//! replaying a log) needs, and nothing of the scheduler's state.

use super::budget::DEFAULT_MAX_RUN_MEMORY_BYTES;
use sandflow_contract::{CallResult, Value};
use serde::{Deserialize, Serialize};

pub type NodeId = u32;
pub type ExecId = u32;

/// Flyte's default: running task executions allowed at once in one execution.
pub const DEFAULT_MAX_PARALLELISM: u32 = 25;

#[derive(Clone, Debug)]
pub struct Options {
    /// Running task executions at once in the top execution (a launch plan sets its own).
    pub max_parallelism: u32,
    /// Graphs nested inside graphs, counting workflows, dynamics and launch plans.
    pub max_depth: u32,
    /// Nodes one run may create in all, counting map elements.
    pub max_nodes: usize,
    /// Host memory one run may hold, estimated: its nodes, scopes, dynamics' graphs and the
    /// values it keeps (see `budget.rs`). A node that would go past it fails.
    pub max_run_memory_bytes: u64,
    /// Per-run overrides of what tasks declare (the CLI's `--task-*` options).
    pub overrides: TaskOverrides,
    /// Bytes of task output the run keeps in memory over all its attempts (each attempt's
    /// stdout and stderr are also bounded by the sandbox). Output past it is counted in
    /// [`Scheduler::logs_dropped`], not kept.
    pub max_log_bytes: u64,
    /// What an earlier run of the same entity on the same inputs finished, to reuse instead
    /// of running it again (a recovery).
    pub recovered: Option<std::sync::Arc<super::Recovered>>,
    /// Run cached tasks even when the cache has their result, and replace it.
    pub overwrite_cache: bool,
    /// Launch plan calls made by the top execution are not expanded here: each is a
    /// [`Command::Launch`] of the launch plan entity, which the driver answers with the child
    /// execution's output as the call's only attempt (the child runs elsewhere: another
    /// process or machine). Calls deeper down, inside a child execution, expand here.
    pub delegate_launch_plans: bool,
    /// This run is a child execution another run delegated: its top node stands for that
    /// run's launch plan node, with its path and stable key, so its nodes have the paths
    /// and keys they would have had had the call expanded there.
    pub placed: Option<Placement>,
}

/// Where a delegated child execution's top node sits in the run that called it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The launch plan node's path, e.g. `multi_wf/level1/level2[3]/core_wf_lp[7]`.
    pub path: String,
    /// The launch plan node's stable key ([`Scheduler::node_key`](super::Scheduler::node_key)).
    pub key: u64,
}

/// The default [`Options::max_log_bytes`]: 64 MiB.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 64 << 20;

/// Replaces, for every task and dynamic of a run, what they declare in the SDK.
#[derive(Clone, Debug, Default)]
pub struct TaskOverrides {
    pub retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_memory_mb: Option<u64>,
    pub fuel: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            max_depth: 64,
            max_nodes: 20_000_000,
            max_run_memory_bytes: DEFAULT_MAX_RUN_MEMORY_BYTES,
            overrides: TaskOverrides::default(),
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            recovered: None,
            overwrite_cache: false,
            delegate_launch_plans: false,
            placed: None,
        }
    }
}

/// When an attempt ran, in microseconds since the run started (the driver's clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub start_us: u64,
    pub end_us: u64,
}

/// What a sandbox did with one attempt: its answer, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Returned(CallResult),
    /// Taken from the task cache without a sandbox: a result an earlier attempt of the same
    /// task on the same inputs returned (see [`RunTask::cache_key`]).
    Cached(CallResult),
    /// No answer: trap, panic, timeout, garbage, or a host fault.
    Failed(AttemptFailure),
}

/// Why an attempt produced no answer. The sandbox makes it, the event carries it, and the
/// scheduler turns it into the node's [`Failure`] (adding where and which attempt) or retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptFailure {
    /// A fault of the guest (trap, panic, limit exceeded, garbage returned), as opposed to one
    /// of the host (could not instantiate, pool exhausted).
    pub user: bool,
    pub message: String,
    /// The wasm backtrace, one frame a line, when the guest trapped.
    pub backtrace: Option<String>,
}

impl AttemptFailure {
    /// The guest's fault: the user's to fix.
    pub fn guest(message: impl Into<String>) -> Self {
        AttemptFailure {
            user: true,
            message: message.into(),
            backtrace: None,
        }
    }

    /// The host's fault (a system error).
    pub fn host(message: impl Into<String>) -> Self {
        AttemptFailure {
            user: false,
            message: message.into(),
            backtrace: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// An attempt of a task or dynamic ended.
    Attempted {
        node: NodeId,
        attempt: u32,
        outcome: Outcome,
        timing: Timing,
        /// The worker (sandbox thread) that ran it; `None` when none did (a cache hit).
        worker: Option<u16>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// Stop: nothing new starts, the run fails as cancelled.
    Cancel,
}

/// Run attempt `attempt` of a task or dynamic in a fresh sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct RunTask {
    pub node: NodeId,
    pub attempt: u32,
    /// Index into the module's entities.
    pub entity: u32,
    /// In interface order.
    pub inputs: Vec<Value>,
    pub timeout_ms: Option<u64>,
    pub max_memory_mb: Option<u64>,
    pub fuel: Option<u64>,
    /// For a cached task: the key its result is cached under (task name, cache version, a
    /// hash of its interface and of its inputs less the ignored ones). A driver may answer
    /// the attempt from the cache with [`Outcome::Cached`] instead of running it.
    pub cache_key: Option<[u8; 32]>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Run(RunTask),
    /// Start the child execution of a delegated launch plan call elsewhere
    /// ([`Options::delegate_launch_plans`]); its end comes back as the call's attempt.
    Launch(RunTask),
    /// Stop attempt `attempt` of `node` if it still runs: its result is no longer wanted
    /// (a sibling failed its scope, or the run was cancelled).
    Abort {
        node: NodeId,
        attempt: u32,
    },
    /// The run ended; no command follows.
    Finished(Result<Option<Value>, Failure>),
}

/// Why a node, and so the run, failed: the first failure, named where it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Node path, e.g. `multi_wf/level1/level2[1]/core_wf_lp[0]/step2`.
    pub path: String,
    pub attempt: u32,
    pub attempts: u32,
    /// A fault of the guest rather than of the host.
    pub user: bool,
    pub message: String,
    pub backtrace: Option<String>,
    pub stderr_tail: Option<String>,
    /// The run was cancelled (Ctrl-C, or its cancel flag), not failed.
    #[serde(default)]
    pub cancelled: bool,
}

impl Failure {
    /// `failure` as the failure of the node at `path`, with no attempt to name: the
    /// constructor every other one starts from.
    pub(super) fn at(path: String, failure: AttemptFailure) -> Failure {
        Failure {
            path,
            attempt: 0,
            attempts: 0,
            user: failure.user,
            message: failure.message,
            backtrace: failure.backtrace,
            stderr_tail: None,
            cancelled: false,
        }
    }

    /// The run was cancelled; `path` is the root's.
    pub(super) fn cancelled(path: String) -> Failure {
        Failure {
            cancelled: true,
            ..Failure::at(path, AttemptFailure::guest("cancelled"))
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path)?;
        if self.attempt > 0 {
            write!(f, " (attempt {} of {})", self.attempt, self.attempts)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.user {
            write!(f, " [system error]")?;
        }
        if let Some(bt) = &self.backtrace {
            write!(f, "\nwasm backtrace:\n{bt}")?;
        }
        if let Some(tail) = &self.stderr_tail {
            write!(f, "\nstderr (tail):\n{tail}")?;
        }
        Ok(())
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("unknown entity `{name}`; the module has: {available}")]
    UnknownEntity { name: String, available: String },
    #[error("{entity} takes {expected} inputs, got {got}")]
    Arity {
        entity: String,
        expected: usize,
        got: usize,
    },
}
