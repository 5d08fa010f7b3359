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
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskCounts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub running: u64,
    pub cached: u64,
}

/// What the run that recorded an execution wrote into its row when it ended: its task counts
/// (so listing it reads no node), and the groups of nodes too many to read whole. There is
/// none while it runs, nor for a run that stopped without ending.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TreeSummary {
    pub counts: TaskCounts,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<NodeGroup>,
}

/// Nodes of one level of a tree named `prefix[i]` (a map's elements, or one entity called
/// many times in a graph), when there are at least [`NodeGroup::MIN`] of them: a reader pages
/// through them in the store rather than reading them all.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeGroup {
    /// Their paths without the `[i]`: the map node's path, or the graph owner's path and the
    /// entity's name.
    pub prefix: String,
    /// How many are recorded.
    pub total: u64,
    /// How many are in each status (`NodeStatus::as_str`).
    pub phases: std::collections::BTreeMap<String, u64>,
    /// Their kind (`task`, `dynamic`, ...): one entity's calls, all of one kind.
    pub kind: String,
    /// Whether any of them has nodes below it (a dynamic's graph, a child execution).
    pub nested: bool,
    /// Whether their indices are exactly `0..total`: then the `k`-th member that did not fail
    /// is found by its path, with `failed`.
    #[serde(default)]
    pub contiguous: bool,
    /// The indices of the members that failed, in order, when at most
    /// [`NodeGroup::MAX_FAILED_LISTED`] did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<u64>>,
}

impl NodeGroup {
    /// The fewest nodes a group has.
    pub const MIN: u64 = 10_000;
    /// The most failed members a summary lists.
    pub const MAX_FAILED_LISTED: usize = 10_000;
}

/// Which nodes of an execution [`StoreRead::nodes_where`](super::StoreRead::nodes_where)
/// reads: a part of a tree too big to read whole. Each node is read as its last row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeQuery {
    /// Only this node and the nodes below it (paths that continue with `/` or `[`).
    pub under: Option<String>,
    /// Leave out the members of these groups (by prefix) and the nodes below them.
    pub except: Vec<String>,
    /// Only the members of the group with this prefix (`prefix[i]`, nothing below them),
    /// ordered by index.
    pub members: Option<String>,
    /// With `members`: only failed ones (`Some(true)`), or only ones that did not fail
    /// (`Some(false)`).
    pub failed: Option<bool>,
    /// Only the node at this path.
    pub path: Option<String>,
    /// Only the nodes at these paths.
    pub paths: Option<Vec<String>>,
    /// Only rows whose position in the store is in this range, inclusive (see
    /// [`StoreRead::row_span`](super::StoreRead::row_span)): where to look first. A store
    /// may read beyond it (the reference does), never less.
    pub rows: Option<(i64, i64)>,
    /// Only tasks that ran (not from the cache) and have times, ordered by start.
    pub tasks_by_start: bool,
    pub limit: Option<u64>,
    pub offset: u64,
    /// Whether to read outputs (a map's can hold a million items).
    pub outputs: bool,
}

impl NodeQuery {
    /// Whether the node at `path` in `status`, of `kind`, is one `q` selects (all but the
    /// order, offset and limit).
    pub fn selects(&self, r: &NodeRecord) -> bool {
        let p = r.path.as_str();
        let below = |base: &str| {
            p.strip_prefix(base)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '[']))
        };
        let member_of = |prefix: &str| {
            p.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('['))
                .is_some_and(|rest| !rest.contains(['/', '[']))
        };
        let in_group = |prefix: &str| {
            p.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('['))
        };
        self.under.as_deref().is_none_or(below)
            && !self.except.iter().any(|e| in_group(e))
            && self.members.as_deref().is_none_or(member_of)
            && match self.failed {
                None => true,
                Some(true) => r.status == NodeStatus::Failed,
                Some(false) => !matches!(r.status, NodeStatus::Failed | NodeStatus::Expanded),
            }
            && self.path.as_deref().is_none_or(|x| x == p)
            && self.paths.as_ref().is_none_or(|l| l.iter().any(|x| x == p))
            && (!self.tasks_by_start || (r.kind == "task" && !r.cached && r.start_us.is_some()))
    }

    /// What `q` selects of `nodes` (each node's last row), in its order: the reference the
    /// stores' queries answer as.
    pub fn select(&self, nodes: Vec<NodeRecord>) -> Vec<NodeRecord> {
        let mut out: Vec<NodeRecord> = nodes.into_iter().filter(|r| self.selects(r)).collect();
        if self.members.is_some() {
            out.sort_by(|a, b| (a.path.len(), &a.path).cmp(&(b.path.len(), &b.path)));
        } else if self.tasks_by_start {
            out.sort_by(|a, b| (a.start_us, &a.path).cmp(&(b.start_us, &b.path)));
        } else {
            out.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let limit = self.limit.map_or(usize::MAX, |l| l as usize);
        out.into_iter()
            .skip(self.offset as usize)
            .take(limit)
            .map(|mut r| {
                if !self.outputs {
                    r.output = None;
                }
                r
            })
            .collect()
    }
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
