//! [`AnyStore`]: the store a `--db` names, SQLite or PostgreSQL, for the CLI, which opens
//! either by location and otherwise does not care which.

use super::pg::{is_pg_url, PgStore};
use super::types::*;
use super::{ExecutionId, SqliteStore, StoreError, StoreRead, StoreWrite, WriteOp};
use sandflow_contract::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

pub enum AnyStore {
    Sqlite(SqliteStore),
    // Boxed: its connection settings make it several times the size of the SQLite variant.
    Postgres(Box<PgStore>),
}

impl AnyStore {
    /// `postgres://...` (or `postgresql://...`) is a PostgreSQL database; anything else a
    /// file.
    pub fn open(location: &Path) -> Result<AnyStore, StoreError> {
        match location.to_str().filter(|l| is_pg_url(l)) {
            Some(url) => PgStore::open(url).map(|s| AnyStore::Postgres(Box::new(s))),
            None => SqliteStore::open(location).map(AnyStore::Sqlite),
        }
    }

    /// Whether `location` names a PostgreSQL database (which exists wherever it is reached).
    pub fn is_database_url(location: &Path) -> bool {
        location.to_str().is_some_and(is_pg_url)
    }

    /// Where the store is, as messages name it (a PostgreSQL URL without its password).
    pub fn path(&self) -> &Path {
        match self {
            AnyStore::Sqlite(s) => s.path(),
            AnyStore::Postgres(s) => s.path(),
        }
    }

    /// The location a child process opens the same store by (a PostgreSQL URL with its
    /// password: give it in the environment, as `SANDFLOW_DB`, not on a command line).
    pub fn child_location(&self) -> std::ffi::OsString {
        match self {
            AnyStore::Sqlite(s) => s.path().as_os_str().to_owned(),
            AnyStore::Postgres(s) => s.url().into(),
        }
    }

    /// Commits what is queued, stops the writer thread and returns its first error.
    pub fn finish(self) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.finish(),
            AnyStore::Postgres(s) => s.finish(),
        }
    }
}

/// Calls `$body` with `$s` bound to the backend.
macro_rules! each {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $body,
            AnyStore::Postgres($s) => $body,
        }
    };
}

impl StoreRead for AnyStore {
    fn location(&self) -> String {
        each!(self, s => s.location())
    }
    fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>, StoreError> {
        each!(self, s => s.executions(filter))
    }
    fn execution(&self, id_or_prefix: &str) -> Result<Execution, StoreError> {
        each!(self, s => s.execution(id_or_prefix))
    }
    fn execution_uncounted(&self, id_or_prefix: &str) -> Result<Execution, StoreError> {
        each!(self, s => s.execution_uncounted(id_or_prefix))
    }
    fn nodes(&self, id: &ExecutionId) -> Result<Vec<NodeInfo>, StoreError> {
        each!(self, s => s.nodes(id))
    }
    fn tree_summary(&self, id: &ExecutionId) -> Result<Option<TreeSummary>, StoreError> {
        each!(self, s => s.tree_summary(id))
    }
    fn nodes_where(&self, id: &ExecutionId, q: &NodeQuery) -> Result<Vec<NodeInfo>, StoreError> {
        each!(self, s => s.nodes_where(id, q))
    }
    fn row_span(&self, id: &ExecutionId) -> Result<Option<(i64, i64)>, StoreError> {
        each!(self, s => s.row_span(id))
    }
    fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionSummary>, StoreError> {
        each!(self, s => s.children(id))
    }
    fn logs(
        &self,
        id: &ExecutionId,
        node_path: Option<&str>,
    ) -> Result<Vec<AttemptLog>, StoreError> {
        each!(self, s => s.logs(id, node_path))
    }
    fn module(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        each!(self, s => s.module(digest))
    }
    fn entities(&self, digest: &str) -> Result<Vec<EntityRecord>, StoreError> {
        each!(self, s => s.entities(digest))
    }
    fn succeeded_outputs(
        &self,
        id: &ExecutionId,
    ) -> Result<HashMap<u64, Option<Value>>, StoreError> {
        each!(self, s => s.succeeded_outputs(id))
    }
    fn graphs(&self, id: &ExecutionId) -> Result<Graphs, StoreError> {
        each!(self, s => s.graphs(id))
    }
    fn recovered(&self, id: &ExecutionId) -> Result<crate::scheduler::Recovered, StoreError> {
        each!(self, s => s.recovered(id))
    }
    fn events(&self, id: &ExecutionId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        each!(self, s => s.events(id))
    }
    fn cache_get(&self, key: &[u8]) -> Result<Option<CacheEntry>, StoreError> {
        each!(self, s => s.cache_get(key))
    }
    fn cache_get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<CacheEntry>>, StoreError> {
        each!(self, s => s.cache_get_many(keys))
    }
    fn cache_outputs(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>, StoreError> {
        each!(self, s => s.cache_outputs(keys))
    }
    fn cache_list(&self, task: Option<&str>) -> Result<Vec<CacheEntry>, StoreError> {
        each!(self, s => s.cache_list(task))
    }
    fn cancel_requested(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        each!(self, s => s.cancel_requested(id))
    }
    fn modules(&self) -> Result<Vec<ModuleSummary>, StoreError> {
        each!(self, s => s.modules())
    }
}

impl StoreWrite for AnyStore {
    fn write(&self, op: WriteOp) {
        each!(self, s => s.write(op))
    }
    fn write_batch(&self, ops: Vec<WriteOp>) {
        each!(self, s => s.write_batch(ops))
    }
    fn flush(&self) -> Result<(), StoreError> {
        each!(self, s => s.flush())
    }
    fn mark_interrupted_if_dead(&self) -> Result<Vec<ExecutionId>, StoreError> {
        each!(self, s => s.mark_interrupted_if_dead())
    }
    fn cache_clear(&self, task: Option<&str>) -> Result<u64, StoreError> {
        each!(self, s => s.cache_clear(task))
    }
    fn request_cancel(&self, id: &ExecutionId) -> Result<(), StoreError> {
        each!(self, s => s.request_cancel(id))
    }
    fn prune(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        each!(self, s => s.prune(older_than))
    }
}
