//! Cancelling a run from another process, and the list of stored modules: the SQLite side of
//! [`StoreWrite::request_cancel`](super::StoreWrite::request_cancel),
//! [`StoreRead::cancel_requested`](super::StoreRead::cancel_requested) and
//! [`StoreRead::modules`](super::StoreRead::modules).
//!
//! A request is a row of `cancel_requests`, keyed by the execution's `seq`; the process that
//! owns the execution polls for it (see `sandflow_host::remote_cancel`). The store never
//! signals a process: the owner may be on another host, and only it knows how to stop its
//! sandboxes cleanly.

use super::types::ModuleSummary;
use super::{ExecutionId, SqliteStore, StoreError};
use rusqlite::{OptionalExtension, TransactionBehavior};

impl SqliteStore {
    pub(super) fn request_cancel_row(&self, id: &ExecutionId) -> Result<(), StoreError> {
        let mut conn = self.read();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite(
                &self.path,
                format!("starting to cancel execution {id}"),
            ))?;
        let seq: Option<i64> = tx
            .prepare_cached("SELECT seq FROM executions WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
            .map_err(StoreError::sqlite(
                &self.path,
                format!("looking up execution {id}"),
            ))?;
        let seq = seq.ok_or_else(|| StoreError::UnknownExecution {
            path: self.path.clone(),
            id: id.to_string(),
        })?;
        // A second request keeps the first one's time: it asks nothing new.
        tx.execute(
            "INSERT OR IGNORE INTO cancel_requests (execution, requested_ms) VALUES (?1, ?2)",
            rusqlite::params![seq, crate::record::now_ms()],
        )
        .map_err(StoreError::sqlite(
            &self.path,
            format!("recording the cancel request of execution {id}"),
        ))?;
        tx.commit().map_err(StoreError::sqlite(
            &self.path,
            format!("committing the cancel request of execution {id}"),
        ))
    }

    pub(super) fn cancel_requested_row(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        let conn = self.read();
        conn.prepare_cached(
            "SELECT 1 FROM cancel_requests WHERE execution = \
             (SELECT seq FROM executions WHERE id = ?1)",
        )
        .and_then(|mut s| s.exists([id.as_str()]))
        .map_err(StoreError::sqlite(
            &self.path,
            format!("reading the cancel requests of execution {id}"),
        ))
    }

    pub(super) fn module_rows(&self) -> Result<Vec<ModuleSummary>, StoreError> {
        let conn = self.read();
        let err = || StoreError::sqlite(&self.path, "listing the stored modules");
        let rows: Vec<(String, i64, i64, Option<i64>)> = conn
            .prepare_cached(
                "SELECT m.digest, length(m.bytes), count(e.seq), max(e.started_ms) \
                 FROM modules m LEFT JOIN executions e ON e.module = m.digest \
                 GROUP BY m.digest ORDER BY max(e.started_ms) DESC, m.digest",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(err())?;
        let mut entities = conn
            .prepare_cached("SELECT name, kind FROM entities WHERE module = ?1 ORDER BY name")
            .map_err(err())?;
        rows.into_iter()
            .map(|(digest, size, executions, last_started_ms)| {
                let names = entities
                    .query_map([&digest], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(err())?;
                Ok(ModuleSummary {
                    digest,
                    size: size as u64,
                    entities: names,
                    executions: executions as u64,
                    last_started_ms,
                })
            })
            .collect()
    }
}
