//! The execution store: every execution made durable (issue 13). What runs records its
//! executions, nodes, attempts, logs, values, dynamic graphs, events and cache entries here;
//! `executions`, `show`, `logs`, `recover` and the cache commands read them back.
//!
//! The scheduler and the runner see only the [`StoreRead`] and [`StoreWrite`] traits;
//! [`SqliteStore`] is the embedded implementation (one file, no setup), [`PgStore`] the
//! PostgreSQL one (a database that many processes and machines share), and [`AnyStore`]
//! either, as a `--db` names it. Writes are queued ([`WriteOp`]) and committed by one writer
//! thread in groups; reads run on their own connection.
//!
//! - [`types`]: the records; [`ops`]: the write operations and their rows;
//! - [`sqlite`]: opening the file; [`schema`]: the versioned schema and its migrations;
//! - [`writer`]: the group-commit thread; [`reads`]: the queries;
//! - [`maintenance`]: prune, cache clear, interrupted executions;
//! - [`pg`]: the PostgreSQL backend; [`any`]: either backend;
//! - [`ids`]: execution ids; [`owner`]: which process runs an execution, and is it alive;
//! - [`cancel`]: requests to stop a run from another process, and the module list.

mod any;
mod cancel;
mod error;
mod ids;
mod maintenance;
mod node_query;
mod ops;
mod owner;
pub(crate) mod pg;
mod reads;
mod schema;
pub(crate) mod sqlite;
mod types;
mod writer;

#[cfg(test)]
mod tests;

pub use any::AnyStore;
pub use error::StoreError;
pub use ids::{is_id_text, ExecutionId};
pub use ops::WriteOp;
pub use owner::{Liveness, Owner, WORKER_OWNER};
pub use pg::queue;
pub use pg::{is_pg_url, PgStore, PG_SCHEMA_VERSION};
pub use schema::VERSION as SCHEMA_VERSION;
pub use sqlite::{default_path, SqliteStore};
pub use types::*;

use sandflow_contract::Value;
use std::collections::HashMap;
use std::time::Duration;

/// What the CLI and recovery read.
pub trait StoreRead: Send + Sync {
    /// Where the store is (a file, later a URL), for messages.
    fn location(&self) -> String;
    /// Newest first. A `running` execution whose process is gone is listed as `interrupted`.
    fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>, StoreError>;
    /// By full id or unique prefix.
    fn execution(&self, id_or_prefix: &str) -> Result<Execution, StoreError>;
    /// The same without its task counts (zero), which cost a scan of its nodes: for what only
    /// needs the record (a recovery, a relaunch).
    fn execution_uncounted(&self, id_or_prefix: &str) -> Result<Execution, StoreError> {
        self.execution(id_or_prefix)
    }
    /// Ordered by path.
    fn nodes(&self, id: &ExecutionId) -> Result<Vec<NodeInfo>, StoreError>;
    /// The summary the run wrote when execution `id` ended, if it did.
    fn tree_summary(&self, id: &ExecutionId) -> Result<Option<TreeSummary>, StoreError> {
        self.execution_uncounted(id.as_str())?;
        Ok(None)
    }
    /// The nodes of execution `id` that `q` selects: a part of a tree too big to read whole.
    /// This reads them all and picks; the stores ask the database for just those.
    fn nodes_where(&self, id: &ExecutionId, q: &NodeQuery) -> Result<Vec<NodeInfo>, StoreError> {
        Ok(q.select(self.nodes(id)?))
    }
    /// The first and last positions of execution `id`'s node rows in the store (rows are
    /// appended in the order they were written), for [`NodeQuery::rows`]; `None` where the
    /// store has no such order or the execution no node.
    fn row_span(&self, id: &ExecutionId) -> Result<Option<(i64, i64)>, StoreError> {
        self.execution_uncounted(id.as_str())?;
        Ok(None)
    }
    /// The executions `id` called (launch plans), in the order they started.
    fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionSummary>, StoreError>;
    /// Every attempt (of the node at `node_path`, or of all nodes) with its captured output.
    fn logs(
        &self,
        id: &ExecutionId,
        node_path: Option<&str>,
    ) -> Result<Vec<AttemptLog>, StoreError>;
    fn module(&self, digest: &str) -> Result<Vec<u8>, StoreError>;
    fn entities(&self, digest: &str) -> Result<Vec<EntityRecord>, StoreError>;
    /// Node key -> output of every succeeded node in the execution tree of `id` (its root
    /// and every child execution under it that did not succeed: a succeeded one is stood for
    /// by its launch plan node's output), for recovery.
    fn succeeded_outputs(
        &self,
        id: &ExecutionId,
    ) -> Result<HashMap<u64, Option<Value>>, StoreError>;
    /// Node key -> the graph each dynamic of the execution tree of `id` returned, for
    /// recovery.
    fn graphs(&self, id: &ExecutionId) -> Result<Graphs, StoreError>;
    /// What a recovery of `id` reuses: [`succeeded_outputs`](StoreRead::succeeded_outputs)
    /// and [`graphs`](StoreRead::graphs), which a store may leave encoded until the
    /// recovery reaches them.
    fn recovered(&self, id: &ExecutionId) -> Result<crate::scheduler::Recovered, StoreError> {
        Ok(crate::scheduler::Recovered {
            outputs: self
                .succeeded_outputs(id)?
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect(),
            graphs: self
                .graphs(id)?
                .into_iter()
                .map(|(k, g)| (k, g.into()))
                .collect(),
        })
    }
    /// The scheduler's events, by sequence number.
    fn events(&self, id: &ExecutionId) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// The entry for `key` with its output.
    fn cache_get(&self, key: &[u8]) -> Result<Option<CacheEntry>, StoreError>;
    /// The entries for `keys`, in order (read together: a run looks up a batch at once).
    fn cache_get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<CacheEntry>>, StoreError> {
        keys.iter().map(|k| self.cache_get(k)).collect()
    }
    /// Just the outputs of the entries for `keys`, in order: what a run's cache lookups need
    /// (an entry whose output is missing or unreadable is `None`, a miss).
    fn cache_outputs(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>, StoreError> {
        Ok(self
            .cache_get_many(keys)?
            .into_iter()
            .map(|e| e.and_then(|e| e.output))
            .collect())
    }
    /// Entries (of `task`, or all), without their outputs.
    fn cache_list(&self, task: Option<&str>) -> Result<Vec<CacheEntry>, StoreError>;
    /// Whether someone asked the execution `id` (exact) to stop ([`StoreWrite::request_cancel`]).
    /// The run that owns it asks this a few times a second: it must be a point read.
    fn cancel_requested(&self, id: &ExecutionId) -> Result<bool, StoreError>;
    /// Every module stored, the most recently used first.
    fn modules(&self) -> Result<Vec<ModuleSummary>, StoreError>;
}

/// What a run and the maintenance commands write.
pub trait StoreWrite: Send + Sync {
    /// Queues `op`; never waits for the disk (only for queue space when the disk is far
    /// behind). A failure is returned by the next [`flush`](StoreWrite::flush).
    fn write(&self, op: WriteOp);
    /// Queues `ops` to be committed in one transaction: a module and the execution that
    /// uses it, or all a driver step produced.
    fn write_batch(&self, ops: Vec<WriteOp>);
    /// Waits until everything queued before is committed; the writer's first error, if any.
    fn flush(&self) -> Result<(), StoreError>;
    /// Records as `interrupted` every `running` execution whose process is gone.
    fn mark_interrupted_if_dead(&self) -> Result<Vec<ExecutionId>, StoreError>;
    /// Records a request that the execution `id` (exact; a top-level one, since a run stops
    /// as a whole) stop, committed before it returns. Whether it is running is the caller's
    /// to check: a request for an execution that already ended is never read.
    fn request_cancel(&self, id: &ExecutionId) -> Result<(), StoreError>;
    /// Removes the cache entries (of `task`, or all); returns how many.
    fn cache_clear(&self, task: Option<&str>) -> Result<u64, StoreError>;
    /// Removes execution trees that started before `older_than` ago and are not running, and
    /// the values, graphs and modules nothing refers to any more.
    fn prune(&self, older_than: Duration) -> Result<PruneReport, StoreError>;
}

/// A whole store.
pub trait Store: StoreRead + StoreWrite {}
impl<T: StoreRead + StoreWrite> Store for T {}
