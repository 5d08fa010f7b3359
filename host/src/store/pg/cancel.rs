//! Cancelling a run from another process, and the list of stored modules, in PostgreSQL: the
//! same rows and meaning as the SQLite store's (`store::cancel`). A request is a row of
//! `cancel_requests` keyed by the execution's `seq`; the process that owns the execution
//! polls for it (`sandflow_host::remote_cancel`).

use super::super::types::ModuleSummary;
use super::super::{ExecutionId, StoreError};
use super::PgStore;
use std::collections::HashMap;

impl PgStore {
    pub(super) fn request_cancel_row(&self, id: &ExecutionId) -> Result<(), StoreError> {
        let mut c = self.read();
        let seq = self.seq_of(&mut *c, id)?;
        // A second request keeps the first one's time: it asks nothing new.
        c.execute(
            "INSERT INTO cancel_requests (execution, requested_ms) VALUES ($1, $2) \
             ON CONFLICT (execution) DO NOTHING",
            &[&seq, &crate::record::now_ms()],
        )
        .map_err(self.err(format!("recording the cancel request of execution {id}")))?;
        Ok(())
    }

    pub(super) fn cancel_requested_row(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        let mut c = self.read();
        let row = c
            .query_opt(
                "SELECT 1 FROM cancel_requests WHERE execution = \
                 (SELECT seq FROM executions WHERE id = $1)",
                &[&id.as_str()],
            )
            .map_err(self.err(format!("reading the cancel requests of execution {id}")))?;
        Ok(row.is_some())
    }

    pub(super) fn module_rows(&self) -> Result<Vec<ModuleSummary>, StoreError> {
        let mut c = self.read();
        let err = || self.err("listing the stored modules");
        let modules = c
            .query(
                "SELECT m.digest, length(m.bytes)::bigint, count(e.seq), max(e.started_ms) \
                 FROM modules m LEFT JOIN executions e ON e.module = m.digest \
                 GROUP BY m.digest ORDER BY max(e.started_ms) DESC NULLS LAST, m.digest",
                &[],
            )
            .map_err(err())?;
        let mut names: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in c
            .query(
                "SELECT module, name, kind FROM entities ORDER BY module, name",
                &[],
            )
            .map_err(err())?
        {
            names
                .entry(self.col(&r, 0)?)
                .or_default()
                .push((self.col(&r, 1)?, self.col(&r, 2)?));
        }
        modules
            .into_iter()
            .map(|r| {
                let digest: String = self.col(&r, 0)?;
                Ok(ModuleSummary {
                    entities: names.remove(&digest).unwrap_or_default(),
                    digest,
                    size: self.col::<i64>(&r, 1)? as u64,
                    executions: self.col::<i64>(&r, 2)? as u64,
                    last_started_ms: self.col(&r, 3)?,
                })
            })
            .collect()
    }
}
