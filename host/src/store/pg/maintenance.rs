//! The PostgreSQL store's writes: queued operations go to the writer thread; the maintenance
//! writes (`prune`, `cache clear`, marking dead executions interrupted) run on the reading
//! connection, each in one transaction, as SQLite's `store::maintenance` does.

use super::super::owner::Liveness;
use super::super::types::*;
use super::super::writer::Msg;
use super::super::{ExecutionId, Owner, StoreError, StoreWrite, WriteOp};
use super::PgStore;
use postgres::Transaction;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl PgStore {
    /// Running executions whose process is gone (as seen from this machine): (seq, id).
    fn dead_running(&self, tx: &mut Transaction) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = tx
            .query(
                "SELECT seq, id, owner_host, owner_boot, owner_pid, owner_start FROM executions \
                 WHERE status = 'running'",
                &[],
            )
            .map_err(self.err("reading running executions"))?;
        let mut dead = Vec::new();
        for r in &rows {
            let owner = Owner {
                host: self.col(r, 2)?,
                boot: self.col(r, 3)?,
                pid: self.col::<i64>(r, 4)? as u32,
                start: self.col::<i64>(r, 5)? as u64,
            };
            if owner.liveness() == Liveness::Dead {
                dead.push((self.col(r, 0)?, self.col(r, 1)?));
            }
        }
        Ok(dead)
    }

    /// Deletes the values, graphs and modules nothing refers to any more.
    fn collect_garbage(
        &self,
        tx: &mut Transaction,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        let mut run = |sql: &str, what: &str| {
            tx.execute(sql, &[])
                .map_err(self.err(format!("removing unreferenced {what}")))
        };
        report.values += run(
            "DELETE FROM value_bytes v WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.output = v.hash) \
             AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.inputs = v.hash \
             OR e.output = v.hash) AND NOT EXISTS (SELECT 1 FROM cache c WHERE c.output = v.hash)",
            "values",
        )?;
        report.graphs += run(
            "DELETE FROM graph_bytes b WHERE NOT EXISTS \
             (SELECT 1 FROM graphs g WHERE g.hash = b.hash)",
            "graphs",
        )?;
        run(
            "DELETE FROM entities t WHERE NOT EXISTS \
             (SELECT 1 FROM executions e WHERE e.module = t.module)",
            "entities",
        )?;
        report.modules += run(
            "DELETE FROM modules m WHERE NOT EXISTS \
             (SELECT 1 FROM executions e WHERE e.module = m.digest)",
            "modules",
        )?;
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl StoreWrite for PgStore {
    fn write(&self, op: WriteOp) {
        self.writer.send(Msg::Op(op));
    }

    fn write_batch(&self, ops: Vec<WriteOp>) {
        if !ops.is_empty() {
            self.writer.send(Msg::Batch(ops));
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.writer.flush()
    }

    fn mark_interrupted_if_dead(&self) -> Result<Vec<ExecutionId>, StoreError> {
        let mut c = self.read();
        let mut tx = c
            .transaction()
            .map_err(self.err("starting to mark dead executions interrupted"))?;
        let dead = self.dead_running(&mut tx)?;
        let seqs: Vec<i64> = dead.iter().map(|(s, _)| *s).collect();
        tx.execute(
            "UPDATE executions SET status = 'interrupted' WHERE seq = ANY($1) \
             AND status = 'running'",
            &[&seqs],
        )
        .map_err(self.err("marking dead executions interrupted"))?;
        tx.commit()
            .map_err(self.err("committing interrupted executions"))?;
        Ok(dead
            .into_iter()
            .map(|(_, id)| ExecutionId::from_string(id))
            .collect())
    }

    fn request_cancel(&self, id: &ExecutionId) -> Result<(), StoreError> {
        self.request_cancel_row(id)
    }

    fn cache_clear(&self, task: Option<&str>) -> Result<u64, StoreError> {
        let mut c = self.read();
        let mut tx = c
            .transaction()
            .map_err(self.err("starting to clear the task cache"))?;
        let n = tx
            .execute(
                "DELETE FROM cache WHERE $1::text IS NULL OR task = $1",
                &[&task],
            )
            .map_err(self.err("clearing the task cache"))?;
        self.collect_garbage(&mut tx, &mut PruneReport::default())?;
        tx.commit()
            .map_err(self.err("committing the cleared task cache"))?;
        Ok(n)
    }

    fn prune(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        let cutoff = now_ms().saturating_sub(older_than.as_millis().min(i64::MAX as u128) as i64);
        let mut c = self.read();
        let mut tx = c.transaction().map_err(self.err("starting to prune"))?;
        // A tree goes as a whole, when its root started before the cutoff and nothing in it
        // is still running (a running execution whose process died counts as ended).
        let dead: HashSet<String> = self
            .dead_running(&mut tx)?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let candidates: Vec<String> = tx
            .query(
                "SELECT id FROM executions WHERE id = root AND started_ms < $1",
                &[&cutoff],
            )
            .map_err(self.err("choosing executions to prune"))?
            .iter()
            .map(|r| self.col(r, 0))
            .collect::<Result<_, _>>()?;
        let mut report = PruneReport::default();
        for root in candidates {
            let tree: Vec<(i64, String, String)> = tx
                .query(
                    "SELECT seq, id, status FROM executions WHERE root = $1",
                    &[&root],
                )
                .map_err(self.err("reading an execution tree"))?
                .iter()
                .map(|r| Ok((self.col(r, 0)?, self.col(r, 1)?, self.col(r, 2)?)))
                .collect::<Result<_, StoreError>>()?;
            if tree
                .iter()
                .any(|(_, id, st)| st == "running" && !dead.contains(id))
            {
                continue;
            }
            let seqs: Vec<i64> = tree.iter().map(|(s, ..)| *s).collect();
            let mut del = |table: &str| {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE execution = ANY($1)"),
                    &[&seqs],
                )
                .map_err(self.err(format!("pruning the {table} of the execution tree {root}")))
            };
            report.nodes += del("nodes")?;
            report.attempts += del("attempts")?;
            report.logs += del("logs")?;
            del("graphs")?;
            del("events")?;
            del("cancel_requests")?;
            report.executions += tx
                .execute("DELETE FROM executions WHERE seq = ANY($1)", &[&seqs])
                .map_err(self.err(format!("pruning the execution tree {root}")))?;
        }
        self.collect_garbage(&mut tx, &mut report)?;
        tx.commit().map_err(self.err("committing the prune"))?;
        Ok(report)
    }
}
