//! The store's writes: queued operations go to the writer thread; the maintenance writes
//! (`prune`, `cache clear`, marking dead executions interrupted) run in the caller's thread,
//! each in one transaction that waits its turn for the lock like any other process.

use super::owner::Liveness;
use super::types::*;
use super::writer::Msg;
use super::{ExecutionId, Owner, SqliteStore, StoreError, StoreWrite, WriteOp};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn begin<'c>(
    conn: &'c mut Connection,
    path: &Path,
    what: &str,
) -> Result<Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(path, format!("starting to {what}")))
}

/// Running executions of `tx` whose process is gone: (seq, id, root).
fn dead_running(tx: &Transaction, path: &Path) -> Result<Vec<(i64, String, String)>, StoreError> {
    let rows: Vec<(i64, String, String, Owner)> = tx
        .prepare_cached(
            "SELECT seq, id, root, owner_host, owner_boot, owner_pid, owner_start FROM executions \
             WHERE status = 'running'",
        )
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    Owner {
                        host: r.get(3)?,
                        boot: r.get(4)?,
                        pid: r.get(5)?,
                        start: r.get::<_, i64>(6)? as u64,
                    },
                ))
            })?
            .collect()
        })
        .map_err(StoreError::sqlite(path, "reading running executions"))?;
    Ok(rows
        .into_iter()
        .filter(|(.., o)| o.liveness() == Liveness::Dead)
        .map(|(s, id, root, _)| (s, id, root))
        .collect())
}

/// Deletes the values, graphs and modules nothing refers to any more.
fn collect_garbage(
    tx: &Transaction,
    path: &Path,
    report: &mut PruneReport,
) -> Result<(), StoreError> {
    let run = |sql: &str, what: &str| {
        tx.execute(sql, [])
            .map(|n| n as u64)
            .map_err(StoreError::sqlite(
                path,
                format!("removing unreferenced {what}"),
            ))
    };
    report.values += run(
        "DELETE FROM value_bytes WHERE hash NOT IN (\
         SELECT output FROM nodes WHERE output IS NOT NULL \
         UNION SELECT inputs FROM executions \
         UNION SELECT output FROM executions WHERE output IS NOT NULL \
         UNION SELECT output FROM cache)",
        "values",
    )?;
    report.graphs += run(
        "DELETE FROM graph_bytes WHERE hash NOT IN (SELECT hash FROM graphs)",
        "graphs",
    )?;
    run(
        "DELETE FROM entities WHERE module NOT IN (SELECT module FROM executions)",
        "entities",
    )?;
    report.modules += run(
        "DELETE FROM modules WHERE digest NOT IN (SELECT module FROM executions)",
        "modules",
    )?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl StoreWrite for SqliteStore {
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
        let mut conn = self.read();
        let tx = begin(&mut conn, &self.path, "mark dead executions interrupted")?;
        let dead = dead_running(&tx, &self.path)?;
        for (seq, id, _) in &dead {
            tx.execute(
                "UPDATE executions SET status = 'interrupted' WHERE seq = ?1 AND status = 'running'",
                [seq],
            )
            .map_err(StoreError::sqlite(&self.path, format!("marking execution {id} interrupted")))?;
        }
        tx.commit().map_err(StoreError::sqlite(
            &self.path,
            "committing interrupted executions",
        ))?;
        Ok(dead
            .into_iter()
            .map(|(_, id, _)| ExecutionId::from_string(id))
            .collect())
    }

    fn cache_clear(&self, task: Option<&str>) -> Result<u64, StoreError> {
        let mut conn = self.read();
        let tx = begin(&mut conn, &self.path, "clear the task cache")?;
        let n = tx
            .execute("DELETE FROM cache WHERE ?1 IS NULL OR task = ?1", [task])
            .map_err(StoreError::sqlite(&self.path, "clearing the task cache"))?;
        collect_garbage(&tx, &self.path, &mut PruneReport::default())?;
        tx.commit().map_err(StoreError::sqlite(
            &self.path,
            "committing the cleared task cache",
        ))?;
        Ok(n as u64)
    }

    fn request_cancel(&self, id: &ExecutionId) -> Result<(), StoreError> {
        self.request_cancel_row(id)
    }

    fn prune(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        let cutoff = now_ms().saturating_sub(older_than.as_millis().min(i64::MAX as u128) as i64);
        let mut conn = self.read();
        let tx = begin(&mut conn, &self.path, "prune executions")?;
        let err = |what: &str| StoreError::sqlite(&self.path, what.to_string());
        // A tree goes as a whole, when its root started before the cutoff and nothing in it
        // is still running (a running execution whose process died counts as ended).
        let dead: std::collections::HashSet<String> = dead_running(&tx, &self.path)?
            .into_iter()
            .map(|(_, id, _)| id)
            .collect();
        let candidates: Vec<String> = tx
            .prepare("SELECT id FROM executions WHERE id = root AND started_ms < ?1")
            .and_then(|mut s| s.query_map([cutoff], |r| r.get(0))?.collect())
            .map_err(err("choosing executions to prune"))?;
        let mut report = PruneReport::default();
        for root in candidates {
            let tree: Vec<(i64, String, String)> = tx
                .prepare_cached("SELECT seq, id, status FROM executions WHERE root = ?1")
                .and_then(|mut s| {
                    s.query_map([&root], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect()
                })
                .map_err(err("reading an execution tree"))?;
            if tree
                .iter()
                .any(|(_, id, st)| st == "running" && !dead.contains(id))
            {
                continue;
            }
            for (seq, id, _) in tree {
                let del = |table: &str| {
                    tx.execute(&format!("DELETE FROM {table} WHERE execution = ?1"), [seq])
                        .map(|n| n as u64)
                        .map_err(StoreError::sqlite(
                            &self.path,
                            format!("pruning the {table} of execution {id}"),
                        ))
                };
                report.nodes += del("nodes")?;
                report.attempts += del("attempts")?;
                report.logs += del("logs")?;
                del("graphs")?;
                del("events")?;
                del("cancel_requests")?;
                tx.execute("DELETE FROM executions WHERE seq = ?1", [seq])
                    .map_err(StoreError::sqlite(
                        &self.path,
                        format!("pruning execution {id}"),
                    ))?;
                report.executions += 1;
            }
        }
        collect_garbage(&tx, &self.path, &mut report)?;
        tx.commit().map_err(err("committing the prune"))?;
        Ok(report)
    }
}
