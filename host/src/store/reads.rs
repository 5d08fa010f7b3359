//! Reads of the SQLite store, for `executions`, `show`, `logs`, `recover`, `relaunch` and the
//! cache commands. Every row read from the file is checked: an unknown status or bytes that do
//! not decode are a [`StoreError::Corrupt`] naming the row, not a panic.

use super::node_query::{last_rows, node_query, Dialect, Param};
use super::owner::Liveness;
use super::types::*;
use super::{ids, ExecutionId, Owner, SqliteStore, StoreError, StoreRead};
use crate::scheduler::{RecordedGraph, RecordedOutput, Recovered};
use rusqlite::{Connection, OptionalExtension, Row};
use sandflow_contract::{codec, GraphSpec, Value};
use std::collections::HashMap;
use std::path::Path;

const SUMMARY_COLUMNS: &str = "seq, id, parent, root, entity, module, status, started_ms, \
     ended_ms, error, recovered_from, owner_host, owner_boot, owner_pid, owner_start, summary";

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn corrupt(path: &Path, what: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        what,
    }
}

pub(crate) fn decode_value(path: &Path, bytes: &[u8], whose: &str) -> Result<Value, StoreError> {
    codec::decode(bytes)
        .map_err(|e| corrupt(path, format!("the value of {whose} does not decode: {e}")))
}

/// The value a hash column points at: `bytes` is the joined `value_bytes.bytes`.
fn joined_value(
    path: &Path,
    hash: Option<Vec<u8>>,
    bytes: Option<Vec<u8>>,
    whose: &str,
) -> Result<Option<Value>, StoreError> {
    match (hash, bytes) {
        (None, _) => Ok(None),
        (Some(_), Some(b)) => decode_value(path, &b, whose).map(Some),
        (Some(h), None) => Err(corrupt(
            path,
            format!("the value {} of {whose} is missing", hex(&h)),
        )),
    }
}

/// After `SELECT n.key[, n.path], `: each succeeded node's output hash (or inline value) and
/// its bytes, in the tree of execution `?1`: the top execution's nodes and those of its
/// unfinished children (a child that succeeded is stood for by its launch plan node's output
/// in its caller: a recovery does not start it, so a run killed at 90% reads a tenth of its
/// records).
const RECORDED_OUTPUTS: &str = "coalesce(n.output, n.output_inline), \
     coalesce(n.output_inline, v.bytes) FROM nodes n \
     LEFT JOIN value_bytes v ON v.hash = n.output \
     WHERE n.execution IN (SELECT seq FROM executions WHERE root = \
     (SELECT root FROM executions WHERE seq = ?1) \
     AND (parent IS NULL OR status <> 'succeeded')) \
     AND n.status = 'succeeded'";

/// Each dynamic's graph (node, hash, bytes) in the tree of execution `?1`.
const RECORDED_GRAPHS: &str = "SELECT g.node, g.hash, b.bytes FROM graphs g \
     LEFT JOIN graph_bytes b ON b.hash = g.hash WHERE g.execution IN \
     (SELECT seq FROM executions WHERE root = \
     (SELECT root FROM executions WHERE seq = ?1))";

/// The summary column of execution `id`'s row, read.
pub(crate) fn parse_summary(
    text: Option<&str>,
    id: &str,
    corrupt: impl FnOnce(String) -> StoreError,
) -> Result<Option<TreeSummary>, StoreError> {
    text.map(|t| {
        serde_json::from_str(t)
            .map_err(|e| corrupt(format!("execution {id} has an unreadable summary: {e}")))
    })
    .transpose()
}

/// A summary row and its `seq`; its counts are those its run wrote when it ended, or zero
/// (and `false`) when it wrote none.
fn summary_row(path: &Path, r: &Row) -> Result<(i64, ExecutionSummary, bool), StoreError> {
    let get_err = StoreError::sqlite(path, "reading an execution");
    let read = || -> rusqlite::Result<_> {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, Option<i64>>(8)?,
            r.get::<_, Option<String>>(9)?,
            r.get::<_, Option<String>>(10)?,
            Owner {
                host: r.get(11)?,
                boot: r.get(12)?,
                pid: r.get(13)?,
                start: r.get::<_, i64>(14)? as u64,
            },
            r.get::<_, Option<String>>(15)?,
        ))
    };
    let (
        seq,
        id,
        parent,
        root,
        entity,
        module,
        status,
        started_ms,
        ended_ms,
        error,
        rec,
        owner,
        summary,
    ) = read().map_err(get_err)?;
    let summary = parse_summary(summary.as_deref(), &id, |w| corrupt(path, w))?;
    let mut status = ExecStatus::parse(&status).ok_or_else(|| {
        corrupt(
            path,
            format!("execution {id} has an unknown status {status:?}"),
        )
    })?;
    if status == ExecStatus::Running && owner.liveness() == Liveness::Dead {
        status = ExecStatus::Interrupted;
    }
    let id = ExecutionId::from_string(id);
    Ok((
        seq,
        ExecutionSummary {
            id,
            parent: parent.map(ExecutionId::from_string),
            root: ExecutionId::from_string(root),
            entity,
            module,
            status,
            started_ms,
            ended_ms,
            error,
            recovered_from: rec.map(ExecutionId::from_string),
            owner,
            counts: summary
                .as_ref()
                .map(|s| s.counts.clone())
                .unwrap_or_default(),
        },
        summary.is_some(),
    ))
}

fn counts(conn: &Connection, path: &Path, seq: i64) -> Result<TaskCounts, StoreError> {
    conn.prepare_cached(
        "SELECT count(*), \
         coalesce(sum(status = 'succeeded'), 0), coalesce(sum(status = 'failed'), 0), \
         coalesce(sum(status = 'running'), 0), coalesce(sum(cached), 0) \
         FROM nodes WHERE id IN (SELECT max(id) FROM nodes WHERE execution = ?1 GROUP BY key) \
         AND (attempts > 0 OR cached)",
    )
    .and_then(|mut s| {
        s.query_row([seq], |r| {
            Ok(TaskCounts {
                total: r.get::<_, i64>(0)? as u64,
                succeeded: r.get::<_, i64>(1)? as u64,
                failed: r.get::<_, i64>(2)? as u64,
                running: r.get::<_, i64>(3)? as u64,
                cached: r.get::<_, i64>(4)? as u64,
            })
        })
    })
    .map_err(StoreError::sqlite(path, "counting task executions"))
}

/// Summaries of the rows `sql` selects (it selects [`SUMMARY_COLUMNS`]), kept while `keep`
/// says so, at most `limit`.
fn summaries(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    keep: impl Fn(&ExecutionSummary) -> bool,
    limit: usize,
) -> Result<Vec<ExecutionSummary>, StoreError> {
    let err = || StoreError::sqlite(path, "listing executions");
    let mut stmt = conn.prepare_cached(sql).map_err(err())?;
    let mut rows = stmt.query(params).map_err(err())?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(row) = rows.next().map_err(err())? else {
            break;
        };
        let (seq, mut s, counted) = summary_row(path, row)?;
        if keep(&s) {
            if !counted {
                s.counts = counts(conn, path, seq)?;
            }
            out.push(s);
        }
    }
    Ok(out)
}

impl SqliteStore {
    /// The `seq` of execution `id` (exact), or the error naming it.
    fn seq_of(&self, conn: &Connection, id: &ExecutionId) -> Result<i64, StoreError> {
        conn.prepare_cached("SELECT seq FROM executions WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
            .map_err(StoreError::sqlite(
                &self.path,
                format!("looking up execution {id}"),
            ))?
            .ok_or_else(|| self.unknown(id.as_str()))
    }

    fn unknown(&self, id: &str) -> StoreError {
        StoreError::UnknownExecution {
            path: self.path.clone(),
            id: id.to_string(),
        }
    }

    /// The one id `prefix` starts, or why not.
    pub(crate) fn resolve(
        &self,
        conn: &Connection,
        prefix: &str,
    ) -> Result<ExecutionId, StoreError> {
        if !ids::is_id_text(prefix) {
            return Err(self.unknown(prefix));
        }
        // '~' sorts after every character of an id, so this is a range scan of the index.
        let upper = format!("{prefix}~");
        let err = StoreError::sqlite(&self.path, format!("looking up execution {prefix}"));
        let found: Vec<String> = conn
            .prepare_cached(
                "SELECT id FROM executions WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6",
            )
            .and_then(|mut s| {
                s.query_map([prefix, upper.as_str()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(err)?;
        match found.as_slice() {
            [] => Err(self.unknown(prefix)),
            [one] => Ok(ExecutionId::from_string(one.clone())),
            many if many.iter().any(|m| m == prefix) => Ok(ExecutionId::from_string(prefix.into())),
            many => {
                let mut matches: Vec<String> = many.iter().take(5).cloned().collect();
                if many.len() > 5 {
                    matches.push("...".into());
                }
                Err(StoreError::AmbiguousPrefix {
                    path: self.path.clone(),
                    prefix: prefix.to_string(),
                    matches,
                })
            }
        }
    }

    /// The task cache's entry for `key`, read on `conn`.
    fn cache_row(&self, conn: &Connection, key: &[u8]) -> Result<Option<CacheEntry>, StoreError> {
        let err = StoreError::sqlite(&self.path, "reading the task cache");
        let row = conn
            .prepare_cached(
                "SELECT c.task, c.cache_version, c.created_ms, c.execution, c.node, c.output, v.bytes \
                 FROM cache c LEFT JOIN value_bytes v ON v.hash = c.output WHERE c.key = ?1",
            )
            .and_then(|mut s| {
                s.query_row([key], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, Option<Vec<u8>>>(6)?,
                    ))
                })
                .optional()
            })
            .map_err(err)?;
        let Some((task, cache_version, created_ms, execution, node, hash, bytes)) = row else {
            return Ok(None);
        };
        let output = self.cache_output(hash, bytes, || {
            format!("the cache entry {} of task {task}", hex(key))
        })?;
        Ok(Some(CacheEntry {
            key: key.to_vec(),
            task,
            cache_version,
            created_ms,
            execution: ExecutionId::from_string(execution),
            node: node as u64,
            output,
        }))
    }

    /// A cache entry's output from its `output` column and the joined value bytes: kept in
    /// the row when its encoding is shorter than a hash (see `ops::put_small_inline`).
    fn cache_output(
        &self,
        hash: Vec<u8>,
        bytes: Option<Vec<u8>>,
        whose: impl FnOnce() -> String,
    ) -> Result<Option<Value>, StoreError> {
        if hash.len() < 32 {
            // The message is formatted only if it is needed: a run looks up thousands.
            return codec::decode(&hash).map(Some).map_err(|e| {
                corrupt(
                    &self.path,
                    format!("the value of {} does not decode: {e}", whose()),
                )
            });
        }
        match bytes {
            Some(b) => codec::decode(&b).map(Some).map_err(|e| {
                corrupt(
                    &self.path,
                    format!("the value of {} does not decode: {e}", whose()),
                )
            }),
            None => Err(corrupt(
                &self.path,
                format!("the value {} of {} is missing", hex(&hash), whose()),
            )),
        }
    }

    /// An execution by id or prefix; its task counts (a scan of its nodes) only if `counted`.
    fn execution_with(&self, id_or_prefix: &str, counted: bool) -> Result<Execution, StoreError> {
        let conn = self.read();

        let id = self.resolve(&conn, id_or_prefix)?;
        let sql = format!("SELECT {SUMMARY_COLUMNS}, inputs, output FROM executions WHERE id = ?1");
        let err = || StoreError::sqlite(&self.path, format!("reading execution {id}"));
        let mut stmt = conn.prepare_cached(&sql).map_err(err())?;
        let mut rows = stmt.query([id.as_str()]).map_err(err())?;
        let row = rows
            .next()
            .map_err(err())?
            .ok_or_else(|| self.unknown(id.as_str()))?;
        let (seq, mut summary, recorded) = summary_row(&self.path, row)?;
        let inputs: Vec<u8> = row.get(16).map_err(err())?;
        let output: Option<Vec<u8>> = row.get(17).map_err(err())?;
        if counted && !recorded {
            summary.counts = counts(&conn, &self.path, seq)?;
        }
        let inputs = self.value_at(&conn, &inputs, &format!("the inputs of execution {id}"))?;
        let output = match output {
            Some(h) => Some(self.value_at(&conn, &h, &format!("the output of execution {id}"))?),
            None => None,
        };
        Ok(Execution {
            summary,
            inputs,
            output,
        })
    }

    /// A node read by [`NODE_COLUMNS`] (or the same columns up to `worker`).
    fn node_row(&self, r: &Row, id: &ExecutionId) -> Result<NodeRecord, StoreError> {
        let err = || StoreError::sqlite(&self.path, format!("reading the nodes of execution {id}"));
        let read = || -> rusqlite::Result<_> {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, Option<Vec<u8>>>(6)?,
                r.get::<_, Option<Vec<u8>>>(7)?,
                r.get::<_, bool>(8)?,
                r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
                r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
                r.get::<_, Option<u32>>(11)?,
            ))
        };
        let (
            key,
            path,
            entity,
            kind,
            status,
            attempts,
            hash,
            bytes,
            cached,
            start_us,
            end_us,
            worker,
        ) = read().map_err(err())?;
        let whose = format!("node {path} of execution {id}");
        let status = NodeStatus::parse(&status).ok_or_else(|| {
            corrupt(
                &self.path,
                format!("{whose} has an unknown status {status:?}"),
            )
        })?;
        let output = joined_value(&self.path, hash, bytes, &whose)?;
        Ok(NodeRecord {
            key,
            path,
            entity,
            kind,
            status,
            attempts,
            output,
            cached,
            start_us,
            end_us,
            worker,
        })
    }

    fn value_at(&self, conn: &Connection, hash: &[u8], whose: &str) -> Result<Value, StoreError> {
        if hash.len() < 32 {
            // Kept in the row itself (see `ops::put_small_inline`).
            return codec::decode(hash)
                .map_err(|e| corrupt(&self.path, format!("{whose} does not decode: {e}")));
        }
        let bytes: Option<Vec<u8>> = conn
            .prepare_cached("SELECT bytes FROM value_bytes WHERE hash = ?1")
            .and_then(|mut s| s.query_row([hash], |r| r.get(0)).optional())
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading the value of {whose}"),
            ))?;
        joined_value(&self.path, Some(hash.to_vec()), bytes, whose)?
            .ok_or_else(|| corrupt(&self.path, format!("no value for {whose}")))
    }
}

impl StoreRead for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>, StoreError> {
        let conn = self.read();
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM executions WHERE 1");
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
        if let Some(e) = &filter.entity {
            sql.push_str(" AND entity = ?1");
            params.push(e);
        }
        if filter.roots_only {
            sql.push_str(" AND parent IS NULL");
        }
        sql.push_str(" ORDER BY started_ms DESC, seq DESC");
        summaries(
            &conn,
            &self.path,
            &sql,
            &params,
            |s| filter.status.is_none_or(|st| st == s.status),
            filter.limit.unwrap_or(usize::MAX),
        )
    }

    fn execution(&self, id_or_prefix: &str) -> Result<Execution, StoreError> {
        self.execution_with(id_or_prefix, true)
    }

    fn execution_uncounted(&self, id_or_prefix: &str) -> Result<Execution, StoreError> {
        self.execution_with(id_or_prefix, false)
    }

    fn nodes(&self, id: &ExecutionId) -> Result<Vec<NodeInfo>, StoreError> {
        let conn = self.read();
        let seq = self.seq_of(&conn, id)?;
        let err = || StoreError::sqlite(&self.path, format!("reading the nodes of execution {id}"));
        let mut stmt = conn
            .prepare_cached(
                "SELECT n.key, n.path, n.entity, n.kind, n.status, n.attempts, \
                 coalesce(n.output, n.output_inline), coalesce(n.output_inline, v.bytes), \
                 n.cached, n.start_us, n.end_us, n.worker FROM nodes n \
                 LEFT JOIN value_bytes v ON v.hash = n.output \
                 WHERE n.id IN (SELECT max(id) FROM nodes WHERE execution = ?1 GROUP BY key) \
                 ORDER BY n.path",
            )
            .map_err(err())?;
        let mut rows = stmt.query([seq]).map_err(err())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err())? {
            out.push(self.node_row(r, id)?);
        }
        Ok(out)
    }

    fn tree_summary(&self, id: &ExecutionId) -> Result<Option<TreeSummary>, StoreError> {
        let conn = self.read();
        let text: Option<Option<String>> = conn
            .prepare_cached("SELECT summary FROM executions WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading the summary of execution {id}"),
            ))?;
        let text = text.ok_or_else(|| self.unknown(id.as_str()))?;
        parse_summary(text.as_deref(), id.as_str(), |w| corrupt(&self.path, w))
    }

    fn row_span(&self, id: &ExecutionId) -> Result<Option<(i64, i64)>, StoreError> {
        let conn = self.read();
        let seq = self.seq_of(&conn, id)?;
        conn.prepare_cached("SELECT min(id), max(id) FROM nodes WHERE execution = ?1")
            .and_then(|mut s| {
                s.query_row([seq], |r| {
                    Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
                })
            })
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading where the nodes of execution {id} are"),
            ))
    }

    fn nodes_where(&self, id: &ExecutionId, q: &NodeQuery) -> Result<Vec<NodeInfo>, StoreError> {
        let conn = self.read();
        let seq = self.seq_of(&conn, id)?;
        let err = || StoreError::sqlite(&self.path, format!("reading the nodes of execution {id}"));
        let (sql, params) = node_query(Dialect::Sqlite, seq, q);
        let mut stmt = conn.prepare_cached(&sql).map_err(err())?;
        let params = params.into_iter().map(|p| match p {
            Param::Int(i) => rusqlite::types::Value::Integer(i),
            Param::Text(t) => rusqlite::types::Value::Text(t),
            // `node_query` binds a list item by item for SQLite.
            Param::TextList(l) => rusqlite::types::Value::Text(l.join(",")),
        });
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(err())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err())? {
            let row_id: i64 = r.get(12).map_err(err())?;
            let node = self.node_row(r, id)?;
            out.push((row_id, node.key, node));
        }
        Ok(last_rows(out, q))
    }

    fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionSummary>, StoreError> {
        let conn = self.read();
        self.seq_of(&conn, id)?;
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM executions WHERE parent = ?1 ORDER BY started_ms, seq"
        );
        summaries(
            &conn,
            &self.path,
            &sql,
            &[&id.as_str()],
            |_| true,
            usize::MAX,
        )
    }

    fn logs(
        &self,
        id: &ExecutionId,
        node_path: Option<&str>,
    ) -> Result<Vec<AttemptLog>, StoreError> {
        let conn = self.read();
        let seq = self.seq_of(&conn, id)?;
        let err = || StoreError::sqlite(&self.path, format!("reading the logs of execution {id}"));
        if let Some(p) = node_path {
            let exists = conn
                .prepare_cached("SELECT 1 FROM nodes WHERE execution = ?1 AND path = ?2 LIMIT 1")
                .and_then(|mut s| s.exists(rusqlite::params![seq, p]))
                .map_err(err())?;
            if !exists {
                return Err(StoreError::UnknownNode {
                    path: self.path.clone(),
                    execution: id.to_string(),
                    node_path: p.to_string(),
                });
            }
        }
        let mut stmt = conn
            .prepare_cached(
                "SELECT n.path, a.node, a.attempt, a.start_us, a.end_us, a.outcome, a.message, \
                 a.worker, l.stdout, l.stderr FROM attempts a \
                 JOIN (SELECT key, max(path) AS path FROM nodes WHERE execution = ?1 \
                 AND (?2 IS NULL OR path = ?2) \
                 AND key IN (SELECT node FROM attempts WHERE execution = ?1) \
                 GROUP BY key) n ON n.key = a.node \
                 LEFT JOIN logs l ON l.execution = a.execution AND l.node = a.node \
                 AND l.attempt = a.attempt \
                 WHERE a.execution = ?1 AND (?2 IS NULL OR n.path = ?2) ORDER BY n.path, a.attempt",
            )
            .map_err(err())?;
        let mut rows = stmt
            .query(rusqlite::params![seq, node_path])
            .map_err(err())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err())? {
            let read = || -> rusqlite::Result<_> {
                Ok((
                    r.get::<_, String>(0)?,
                    AttemptRecord {
                        node: r.get::<_, i64>(1)? as u64,
                        attempt: r.get(2)?,
                        start_us: r.get::<_, i64>(3)? as u64,
                        end_us: r.get::<_, i64>(4)? as u64,
                        outcome: AttemptOutcome::Ok,
                        message: r.get(6)?,
                        worker: r.get(7)?,
                    },
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<Vec<u8>>>(8)?.unwrap_or_default(),
                    r.get::<_, Option<Vec<u8>>>(9)?.unwrap_or_default(),
                ))
            };
            let (path, mut record, outcome, stdout, stderr) = read().map_err(err())?;
            record.outcome = AttemptOutcome::parse(&outcome).ok_or_else(|| {
                corrupt(
                    &self.path,
                    format!("attempt {} of node {path} of execution {id} has an unknown outcome {outcome:?}", record.attempt),
                )
            })?;
            out.push(AttemptLog {
                path,
                record,
                stdout,
                stderr,
            });
        }
        Ok(out)
    }

    fn module(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let conn = self.read();
        conn.prepare_cached("SELECT bytes FROM modules WHERE digest = ?1")
            .and_then(|mut s| s.query_row([digest], |r| r.get(0)).optional())
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading module {digest}"),
            ))?
            .ok_or_else(|| StoreError::MissingModule {
                path: self.path.clone(),
                digest: digest.to_string(),
            })
    }

    fn entities(&self, digest: &str) -> Result<Vec<EntityRecord>, StoreError> {
        let conn = self.read();
        let rows: Vec<(String, String, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT name, kind, interface FROM entities WHERE module = ?1 ORDER BY name",
            )
            .and_then(|mut s| {
                s.query_map([digest], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading the entities of module {digest}"),
            ))?;
        rows.into_iter()
            .map(|(name, kind, bytes)| {
                let interface = codec::decode(&bytes).map_err(|e| {
                    corrupt(
                        &self.path,
                        format!("the interface of {name} in module {digest} does not decode: {e}"),
                    )
                })?;
                Ok(EntityRecord {
                    name,
                    kind,
                    interface,
                })
            })
            .collect()
    }

    fn succeeded_outputs(
        &self,
        id: &ExecutionId,
    ) -> Result<HashMap<u64, Option<Value>>, StoreError> {
        let conn = self.read();
        let seq = self.seq_of(&conn, id)?;
        // key, path, output hash, output bytes (see RECORDED_OUTPUTS).
        type OutputRow = (i64, String, Option<Vec<u8>>, Option<Vec<u8>>);
        let rows: Vec<OutputRow> = conn
            .prepare_cached(&format!("SELECT n.key, n.path, {RECORDED_OUTPUTS}"))
            .and_then(|mut s| {
                s.query_map([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading the outputs of execution {id}"),
            ))?;
        rows.into_iter()
            .map(|(key, path, hash, bytes)| {
                // Decoded without naming the node first: a recovery reads thousands, and
                // the name is needed only for the error.
                let v = match (&hash, &bytes) {
                    (Some(_), Some(b)) => codec::decode(b).ok(),
                    _ => None,
                };
                let v = match v {
                    Some(v) => Some(v),
                    None => joined_value(
                        &self.path,
                        hash,
                        bytes,
                        &format!("node {path} of execution {id}"),
                    )?,
                };
                Ok((key as u64, v))
            })
            .collect()
    }

    fn recovered(&self, id: &ExecutionId) -> Result<Recovered, StoreError> {
        let conn = self.read();
        let seq = self.seq_of(&conn, id)?;
        // As `succeeded_outputs` and `graphs`, left encoded: a recovery after a kill at 90%
        // reaches a few hundred of the thousands of results its run recorded (the rest are
        // under nodes that succeeded whole), and decoding them all took longer than the part
        // of the run that was left. The path is read only to name a missing value.
        let mut outputs = HashMap::new();
        let mut missing: Option<i64> = None;
        conn.prepare_cached(&format!("SELECT n.key, {RECORDED_OUTPUTS}"))
            .and_then(|mut s| {
                let mut rows = s.query([seq])?;
                while let Some(r) = rows.next()? {
                    let key: i64 = r.get(0)?;
                    let has_output = !matches!(r.get_ref(1)?, rusqlite::types::ValueRef::Null);
                    let out = match (has_output, r.get::<_, Option<Vec<u8>>>(2)?) {
                        (false, _) => RecordedOutput::Nothing,
                        (true, Some(b)) => RecordedOutput::Encoded(b),
                        (true, None) => {
                            missing = Some(key);
                            continue;
                        }
                    };
                    outputs.insert(key as u64, out);
                }
                Ok(())
            })
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading the outputs of execution {id}"),
            ))?;
        if let Some(key) = missing {
            let path: String = conn
                .query_row(
                    "SELECT path FROM nodes WHERE key = ?1 LIMIT 1",
                    [key],
                    |r| r.get(0),
                )
                .unwrap_or_else(|_| format!("{:#x}", key as u64));
            return Err(corrupt(
                &self.path,
                format!("the output of node {path} of execution {id} is missing"),
            ));
        }
        let mut graphs = HashMap::new();
        let mut lost: Option<(i64, Vec<u8>)> = None;
        conn.prepare_cached(RECORDED_GRAPHS)
            .and_then(|mut s| {
                let mut rows = s.query([seq])?;
                while let Some(r) = rows.next()? {
                    let node: i64 = r.get(0)?;
                    match r.get::<_, Option<Vec<u8>>>(2)? {
                        Some(b) => {
                            graphs.insert(node as u64, RecordedGraph::Encoded(b));
                        }
                        None => lost = Some((node, r.get(1)?)),
                    }
                }
                Ok(())
            })
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading the graphs of execution {id}"),
            ))?;
        if let Some((node, hash)) = lost {
            return Err(corrupt(
                &self.path,
                format!(
                    "the graph of node {:#x} of execution {id} ({}) is missing",
                    node as u64,
                    hex(&hash)
                ),
            ));
        }
        Ok(Recovered { outputs, graphs })
    }

    fn graphs(&self, id: &ExecutionId) -> Result<Graphs, StoreError> {
        let conn = self.read();
        let seq = self.seq_of(&conn, id)?;
        let rows: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = conn
            .prepare_cached(RECORDED_GRAPHS)
            .and_then(|mut s| {
                s.query_map([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading the graphs of execution {id}"),
            ))?;
        rows.into_iter()
            .map(|(node, hash, bytes)| {
                let whose = format!("the graph of node {:#x} of execution {id}", node as u64);
                let bytes = bytes.ok_or_else(|| {
                    corrupt(&self.path, format!("{whose} ({}) is missing", hex(&hash)))
                })?;
                let g: GraphSpec = codec::decode(&bytes)
                    .map_err(|e| corrupt(&self.path, format!("{whose} does not decode: {e}")))?;
                Ok((node as u64, g))
            })
            .collect()
    }

    fn events(&self, id: &ExecutionId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let conn = self.read();
        let seq = self.seq_of(&conn, id)?;
        conn.prepare_cached("SELECT seq, bytes FROM events WHERE execution = ?1 ORDER BY seq")
            .and_then(|mut s| {
                s.query_map([seq], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
                    .collect()
            })
            .map_err(StoreError::sqlite(
                &self.path,
                format!("reading the events of execution {id}"),
            ))
    }

    fn cache_get(&self, key: &[u8]) -> Result<Option<CacheEntry>, StoreError> {
        let conn = self.read();
        self.cache_row(&conn, key)
    }

    fn cache_get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<CacheEntry>>, StoreError> {
        let conn = self.read();
        // One read transaction for all of them: a point read in a transaction of its own
        // costs more in taking and releasing the database's shared lock than in the read.
        let tx = conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite(&self.path, "reading the task cache"))?;
        let rows = keys
            .iter()
            .map(|k| self.cache_row(&tx, k))
            .collect::<Result<Vec<_>, _>>()?;
        drop(tx);
        Ok(rows)
    }

    fn cache_outputs(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>, StoreError> {
        let conn = self.read();
        let err = || StoreError::sqlite(&self.path, "reading the task cache");
        // One read transaction for all of them (see `cache_get_many`), begun and ended by
        // prepared statements: a lookup of 25 keys is a few microseconds, and parsing
        // BEGIN and COMMIT again each time was a good part of it.
        conn.prepare_cached("BEGIN")
            .and_then(|mut s| s.execute([]))
            .map_err(err())?;
        let rows = (|| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT c.output, v.bytes FROM cache c \
                     LEFT JOIN value_bytes v ON length(c.output) = 32 AND v.hash = c.output \
                     WHERE c.key = ?1",
                )
                .map_err(err())?;
            keys.iter()
                .map(|k| {
                    let row = stmt
                        .query_row([k], |r| {
                            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
                        })
                        .optional()
                        .map_err(err())?;
                    // An entry that cannot be read is a miss: the task runs, and its result
                    // replaces the entry.
                    Ok(row.and_then(|(hash, bytes)| {
                        self.cache_output(hash, bytes, || format!("the cache entry {}", hex(k)))
                            .ok()
                            .flatten()
                    }))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })();
        // Ends the read transaction whatever happened (it wrote nothing).
        let _ = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]));
        rows
    }

    fn cancel_requested(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        self.cancel_requested_row(id)
    }

    fn modules(&self) -> Result<Vec<ModuleSummary>, StoreError> {
        self.module_rows()
    }

    fn cache_list(&self, task: Option<&str>) -> Result<Vec<CacheEntry>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(
            "SELECT key, task, cache_version, created_ms, execution, node FROM cache \
             WHERE ?1 IS NULL OR task = ?1 ORDER BY task, created_ms",
        )
        .and_then(|mut s| {
            s.query_map([task], |r| {
                Ok(CacheEntry {
                    key: r.get(0)?,
                    task: r.get(1)?,
                    cache_version: r.get(2)?,
                    created_ms: r.get(3)?,
                    execution: ExecutionId::from_string(r.get(4)?),
                    node: r.get::<_, i64>(5)? as u64,
                    output: None,
                })
            })?
            .collect()
        })
        .map_err(StoreError::sqlite(&self.path, "listing the task cache"))
    }
}
