//! What the store records and returns: executions, nodes, attempts, logs, cache entries.
//! Plain data, no SQL: a second backend (PostgreSQL) speaks the same types.

use super::{ExecutionId, Owner};
use sandflow_contract::{GraphSpec, Interface, Value};

/// Names stored as text: each enum's `as_str` is what the database holds.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)* _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// An execution's status.
    ExecStatus {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Ctrl-C or a cancel: recoverable.
        Cancelled = "cancelled",
        /// Its process died while it ran: recoverable.
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// A node's status as last recorded.
    NodeStatus {
        Queued = "queued",
        Running = "running",
        /// Its children (a scope, a child execution, map elements) run.
        Expanded = "expanded",
        Succeeded = "succeeded",
        Failed = "failed",
        Skipped = "skipped",
        Aborted = "aborted",
    }
}

text_enum! {
    /// How an attempt ended.
    AttemptOutcome {
        Ok = "ok",
        /// The guest's fault (trap, panic, timeout, an error it returned).
        User = "user",
        /// The host's fault.
        System = "system",
        /// Stopped: its result was no longer wanted.
        Aborted = "aborted",
    }
}

/// A module's bytes and the entities it declares, stored once per digest.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleRecord {
    /// Hex digest of the bytes (the caller's; the module loader already computes one).
    pub digest: String,
    pub bytes: Vec<u8>,
    pub entities: Vec<EntityRecord>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EntityRecord {
    pub name: String,
    /// `task`, `workflow`, `dynamic`, `launch_plan`, ...: the caller's names.
    pub kind: String,
    pub interface: Interface,
}

/// An execution as it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct NewExecution {
    pub id: ExecutionId,
    /// The execution that called this one (a launch plan call), if any.
    pub parent: Option<ExecutionId>,
    /// The top of the tree; `id` itself for a top-level execution.
    pub root: ExecutionId,
    pub entity: String,
    /// Digest of a module stored with [`WriteOp::PutModule`](super::WriteOp::PutModule).
    pub module: String,
    pub inputs: Value,
    pub started_ms: i64,
    pub owner: Owner,
    /// The execution this one recovers, if it is a recovery.
    pub recovered_from: Option<ExecutionId>,
}

/// A node's state, written whenever the caller wants it durable (upserted by `key`).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRecord {
    /// The stable node id (the same in a recovery of the execution).
    pub key: u64,
    pub path: String,
    pub entity: String,
    pub kind: String,
    pub status: NodeStatus,
    pub attempts: u32,
    pub output: Option<Value>,
    /// Served from the task cache without running.
    pub cached: bool,
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    /// The worker (sandbox thread) that ran its latest attempt; none for what no sandbox
    /// ran (workflows, cache hits, recovered nodes).
    pub worker: Option<u32>,
}

/// One attempt of a node, as it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub node: u64,
    pub attempt: u32,
    pub start_us: u64,
    pub end_us: u64,
    pub outcome: AttemptOutcome,
    pub message: Option<String>,
    pub worker: Option<u32>,
}

/// How an execution ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionEnd {
    pub status: ExecStatus,
    pub ended_ms: i64,
    pub error: Option<String>,
    pub output: Option<Value>,
}

/// A cache entry as written.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheRecord {
    pub key: Vec<u8>,
    pub task: String,
    pub cache_version: String,
    pub output: Value,
    pub created_ms: i64,
    /// Where the output was computed.
    pub execution: ExecutionId,
    pub node: u64,
}

/// Task executions of an execution (nodes that ran in a sandbox or came from the cache), by
/// status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub running: u64,
    pub cached: u64,
}

/// A row of `sandflow executions`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionSummary {
    pub id: ExecutionId,
    pub parent: Option<ExecutionId>,
    pub root: ExecutionId,
    pub entity: String,
    pub module: String,
    /// As recorded, except that a `running` execution whose process is gone is `interrupted`.
    pub status: ExecStatus,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub error: Option<String>,
    pub recovered_from: Option<ExecutionId>,
    pub owner: Owner,
    pub counts: TaskCounts,
}

/// One execution in full (`sandflow show`).
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub summary: ExecutionSummary,
    pub inputs: Value,
    pub output: Option<Value>,
}

/// A node as read back.
pub type NodeInfo = NodeRecord;

/// One attempt with its captured output (`sandflow logs`).
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptLog {
    pub path: String,
    pub record: AttemptRecord,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A cache entry as read back; `output` is decoded by [`StoreRead::cache_get`](super::StoreRead::cache_get)
/// only.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheEntry {
    pub key: Vec<u8>,
    pub task: String,
    pub cache_version: String,
    pub created_ms: i64,
    pub execution: ExecutionId,
    pub node: u64,
    pub output: Option<Value>,
}

/// Filters of `sandflow executions`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutionFilter {
    pub status: Option<ExecStatus>,
    pub entity: Option<String>,
    pub limit: Option<usize>,
    /// Leave out child executions (launch plan calls).
    pub roots_only: bool,
}

/// What a prune removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub executions: u64,
    pub nodes: u64,
    pub attempts: u64,
    pub logs: u64,
    pub values: u64,
    pub graphs: u64,
    pub modules: u64,
}

/// A dynamic's recorded graph, by node key.
pub type Graphs = std::collections::HashMap<u64, GraphSpec>;

/// A module in the store, as `GET /api/modules` lists them.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleSummary {
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its entities' names and kinds, by name.
    pub entities: Vec<(String, String)>,
    /// Executions recorded with it.
    pub executions: u64,
    /// When the newest of them started, in ms since the Unix epoch.
    pub last_started_ms: Option<i64>,
}
