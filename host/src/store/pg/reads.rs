//! Reads of the PostgreSQL store: the queries of SQLite's `store::reads`, with the same
//! checks (an unknown status, bytes that do not decode: a [`StoreError::Corrupt`] naming
//! the row). The last row of a node is taken with `DISTINCT ON (key) ... ORDER BY key, id
//! DESC`.

use super::super::owner::Liveness;
use super::super::reads::{decode_value, hex};
use super::super::types::*;
use super::super::{ids, ExecutionId, Owner, StoreError, StoreRead};
use super::PgStore;
use crate::store::node_query::{last_rows, node_query, Dialect, Param};
use crate::store::reads::parse_summary;
use postgres::types::{FromSql, ToSql};
use postgres::{GenericClient, Row};
use sandflow_contract::{codec, GraphSpec, Value};
use std::collections::HashMap;

const SUMMARY_COLUMNS: &str = "seq, id, parent, root, entity, module, status, started_ms, \
     ended_ms, error, recovered_from, owner_host, owner_boot, owner_pid, owner_start, summary";

/// The last row of each node of execution `$1`.
const LAST_NODES: &str =
    "(SELECT DISTINCT ON (key) * FROM nodes WHERE execution = $1 ORDER BY key, id DESC)";

impl PgStore {
    /// Column `i` of row `r`. A column of another type than this build reads (a store
    /// written by another version of sandflow) is an error naming the column, not a panic.
    pub(super) fn col<'a, T: FromSql<'a>>(&self, r: &'a Row, i: usize) -> Result<T, StoreError> {
        r.try_get(i).map_err(|e| {
            let name = r.columns().get(i).map_or("?", |c| c.name());
            self.corrupt(format!("column {name} (number {i}) of a row it read: {e}"))
        })
    }

    /// `read` run again once where it failed because the reads' connection was lost (a
    /// restarted server, a terminated backend): the client learns its connection is gone
    /// only from a failed statement, and the next read connects again (`PgStore::read`), so
    /// a run, a worker or a console reads through a restart instead of failing one read.
    fn again<T>(&self, read: impl Fn() -> Result<T, StoreError>) -> Result<T, StoreError> {
        match read() {
            Err(_) if self.reader_lost() => read(),
            r => r,
        }
    }

    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }

    fn unknown(&self, id: &str) -> StoreError {
        StoreError::UnknownExecution {
            path: self.path.clone(),
            id: id.to_string(),
        }
    }

    fn joined_value(
        &self,
        hash: Option<Vec<u8>>,
        bytes: Option<Vec<u8>>,
        whose: &str,
    ) -> Result<Option<Value>, StoreError> {
        match (hash, bytes) {
            (None, _) => Ok(None),
            (Some(_), Some(b)) => decode_value(&self.path, &b, whose).map(Some),
            (Some(h), None) => {
                Err(self.corrupt(format!("the value {} of {whose} is missing", hex(&h))))
            }
        }
    }

    /// A summary row and its `seq`; its counts are those its run wrote when it ended, or
    /// zero (and `false`) when it wrote none.
    fn summary_row(&self, r: &Row) -> Result<(i64, ExecutionSummary, bool), StoreError> {
        let id: String = self.col(r, 1)?;
        let summary: Option<String> = self.col(r, 15)?;
        let summary = parse_summary(summary.as_deref(), &id, |w| self.corrupt(w))?;
        let status: String = self.col(r, 6)?;
        let owner = Owner {
            host: self.col(r, 11)?,
            boot: self.col(r, 12)?,
            pid: self.col::<i64>(r, 13)? as u32,
            start: self.col::<i64>(r, 14)? as u64,
        };
        let mut status = ExecStatus::parse(&status).ok_or_else(|| {
            self.corrupt(format!("execution {id} has an unknown status {status:?}"))
        })?;
        if status == ExecStatus::Running && owner.liveness() == Liveness::Dead {
            status = ExecStatus::Interrupted;
        }
        Ok((
            self.col(r, 0)?,
            ExecutionSummary {
                id: ExecutionId::from_string(id),
                parent: self
                    .col::<Option<String>>(r, 2)?
                    .map(ExecutionId::from_string),
                root: ExecutionId::from_string(self.col(r, 3)?),
                entity: self.col(r, 4)?,
                module: self.col(r, 5)?,
                status,
                started_ms: self.col(r, 7)?,
                ended_ms: self.col(r, 8)?,
                error: self.col(r, 9)?,
                recovered_from: self
                    .col::<Option<String>>(r, 10)?
                    .map(ExecutionId::from_string),
                owner,
                counts: summary
                    .as_ref()
                    .map(|s| s.counts.clone())
                    .unwrap_or_default(),
            },
            summary.is_some(),
        ))
    }

    fn counts(&self, c: &mut impl GenericClient, seq: i64) -> Result<TaskCounts, StoreError> {
        let r = c
            .query_one(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'), \
                     count(*) FILTER (WHERE status = 'failed'), \
                     count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE cached) \
                     FROM {LAST_NODES} n WHERE attempts > 0 OR cached"
                ),
                &[&seq],
            )
            .map_err(self.err("counting task executions"))?;
        let n = |i| r.get::<_, i64>(i) as u64;
        Ok(TaskCounts {
            total: n(0),
            succeeded: n(1),
            failed: n(2),
            running: n(3),
            cached: n(4),
        })
    }

    fn summaries(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        keep: impl Fn(&ExecutionSummary) -> bool,
        limit: usize,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        let mut c = self.read();
        let rows = c
            .query(sql, params)
            .map_err(self.err("listing executions"))?;
        let mut out = Vec::new();
        for row in rows {
            if out.len() >= limit {
                break;
            }
            let (seq, mut s, counted) = self.summary_row(&row)?;
            if keep(&s) {
                if !counted {
                    s.counts = self.counts(&mut *c, seq)?;
                }
                out.push(s);
            }
        }
        Ok(out)
    }

    pub(super) fn seq_of(
        &self,
        c: &mut impl GenericClient,
        id: &ExecutionId,
    ) -> Result<i64, StoreError> {
        c.query_opt("SELECT seq FROM executions WHERE id = $1", &[&id.as_str()])
            .map_err(self.err(format!("looking up execution {id}")))?
            .map(|r| self.col(&r, 0))
            .ok_or_else(|| self.unknown(id.as_str()))?
    }

    /// The one id `prefix` starts, or why not.
    fn resolve(&self, c: &mut impl GenericClient, prefix: &str) -> Result<ExecutionId, StoreError> {
        if !ids::is_id_text(prefix) {
            return Err(self.unknown(prefix));
        }
        // '~' sorts after every character of an id (byte order: the column is COLLATE "C").
        let upper = format!("{prefix}~");
        let found: Vec<String> = c
            .query(
                "SELECT id FROM executions WHERE id >= $1 AND id < $2 ORDER BY id LIMIT 6",
                &[&prefix, &upper],
            )
            .map_err(self.err(format!("looking up execution {prefix}")))?
            .into_iter()
            .map(|r| self.col(&r, 0))
            .collect::<Result<_, _>>()?;
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

    fn cache_row(
        &self,
        c: &mut impl GenericClient,
        key: &[u8],
    ) -> Result<Option<CacheEntry>, StoreError> {
        let row = c
            .query_opt(
                "SELECT c.task, c.cache_version, c.created_ms, c.execution, c.node, c.output, \
                 v.bytes FROM cache c LEFT JOIN value_bytes v ON v.hash = c.output \
                 WHERE c.key = $1",
                &[&key],
            )
            .map_err(self.err("reading the task cache"))?;
        let Some(r) = row else {
            return Ok(None);
        };
        let task: String = self.col(&r, 0)?;
        let whose = format!("the cache entry {} of task {task}", hex(key));
        let output = self.joined_value(Some(self.col(&r, 5)?), self.col(&r, 6)?, &whose)?;
        Ok(Some(CacheEntry {
            key: key.to_vec(),
            task,
            cache_version: self.col(&r, 1)?,
            created_ms: self.col(&r, 2)?,
            execution: ExecutionId::from_string(self.col(&r, 3)?),
            node: self.col::<i64>(&r, 4)? as u64,
            output,
        }))
    }

    fn value_at(
        &self,
        c: &mut impl GenericClient,
        hash: &[u8],
        whose: &str,
    ) -> Result<Value, StoreError> {
        if hash.len() < 32 {
            // Kept in the row itself (see `ops::put_small_inline`).
            return codec::decode(hash)
                .map_err(|e| self.corrupt(format!("{whose} does not decode: {e}")));
        }
        let bytes: Option<Vec<u8>> = c
            .query_opt("SELECT bytes FROM value_bytes WHERE hash = $1", &[&hash])
            .map_err(self.err(format!("reading the value of {whose}")))?
            .map(|r| self.col(&r, 0))
            .transpose()?;
        self.joined_value(Some(hash.to_vec()), bytes, whose)?
            .ok_or_else(|| self.corrupt(format!("no value for {whose}")))
    }

    fn node_row(&self, r: &Row, id: &ExecutionId) -> Result<NodeRecord, StoreError> {
        let path: String = self.col(r, 1)?;
        let status: String = self.col(r, 4)?;
        let whose = format!("node {path} of execution {id}");
        let status = NodeStatus::parse(&status)
            .ok_or_else(|| self.corrupt(format!("{whose} has an unknown status {status:?}")))?;
        let output = self.joined_value(self.col(r, 6)?, self.col(r, 7)?, &whose)?;
        Ok(NodeRecord {
            key: self.col::<i64>(r, 0)? as u64,
            path,
            entity: self.col(r, 2)?,
            kind: self.col(r, 3)?,
            status,
            attempts: self.col::<i64>(r, 5)? as u32,
            output,
            cached: self.col(r, 8)?,
            start_us: self.col::<Option<i64>>(r, 9)?.map(|v| v as u64),
            end_us: self.col::<Option<i64>>(r, 10)?.map(|v| v as u64),
            worker: r
                .get::<_, Option<i64>>(11)
                .and_then(|w| u32::try_from(w).ok()),
        })
    }
}

impl StoreRead for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>, StoreError> {
        self.again(|| {
            let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM executions WHERE true");
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
            if let Some(e) = &filter.entity {
                sql.push_str(" AND entity = $1");
                params.push(e);
            }
            if filter.roots_only {
                sql.push_str(" AND parent IS NULL");
            }
            sql.push_str(" ORDER BY started_ms DESC, seq DESC");
            self.summaries(
                &sql,
                &params,
                |s| filter.status.is_none_or(|st| st == s.status),
                filter.limit.unwrap_or(usize::MAX),
            )
        })
    }

    fn execution(&self, id_or_prefix: &str) -> Result<Execution, StoreError> {
        self.again(|| {
            let mut c = self.read();
            let id = self.resolve(&mut *c, id_or_prefix)?;
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {SUMMARY_COLUMNS}, inputs, output FROM executions WHERE id = $1"
                    ),
                    &[&id.as_str()],
                )
                .map_err(self.err(format!("reading execution {id}")))?
                .ok_or_else(|| self.unknown(id.as_str()))?;
            let (seq, mut summary, counted) = self.summary_row(&row)?;
            let inputs: Vec<u8> = self.col(&row, 16)?;
            let output: Option<Vec<u8>> = self.col(&row, 17)?;
            if !counted {
                summary.counts = self.counts(&mut *c, seq)?;
            }
            let inputs =
                self.value_at(&mut *c, &inputs, &format!("the inputs of execution {id}"))?;
            let output = match output {
                Some(h) => {
                    Some(self.value_at(&mut *c, &h, &format!("the output of execution {id}"))?)
                }
                None => None,
            };
            Ok(Execution {
                summary,
                inputs,
                output,
            })
        })
    }

    fn nodes(&self, id: &ExecutionId) -> Result<Vec<NodeInfo>, StoreError> {
        self.again(|| {
            let mut c = self.read();
            let seq = self.seq_of(&mut *c, id)?;
            let rows = c
                .query(
                    &format!(
                        "SELECT n.key, n.path, n.entity, n.kind, n.status, n.attempts, \
                         coalesce(n.output, n.output_inline), coalesce(n.output_inline, v.bytes), \
                         n.cached, n.start_us, n.end_us, n.worker FROM {LAST_NODES} n \
                         LEFT JOIN value_bytes v ON v.hash = n.output ORDER BY n.path"
                    ),
                    &[&seq],
                )
                .map_err(self.err(format!("reading the nodes of execution {id}")))?;
            rows.iter().map(|r| self.node_row(r, id)).collect()
        })
    }

    fn tree_summary(&self, id: &ExecutionId) -> Result<Option<TreeSummary>, StoreError> {
        self.again(|| {
            let row = self
                .read()
                .query_opt(
                    "SELECT summary FROM executions WHERE id = $1",
                    &[&id.as_str()],
                )
                .map_err(self.err(format!("reading the summary of execution {id}")))?
                .ok_or_else(|| self.unknown(id.as_str()))?;
            let text: Option<String> = self.col(&row, 0)?;
            parse_summary(text.as_deref(), id.as_str(), |w| self.corrupt(w))
        })
    }

    fn row_span(&self, id: &ExecutionId) -> Result<Option<(i64, i64)>, StoreError> {
        self.again(|| {
            let mut c = self.read();
            let seq = self.seq_of(&mut *c, id)?;
            let r = c
                .query_one(
                    "SELECT min(id), max(id) FROM nodes WHERE execution = $1",
                    &[&seq],
                )
                .map_err(self.err(format!("reading where the nodes of execution {id} are")))?;
            let lo: Option<i64> = self.col(&r, 0)?;
            let hi: Option<i64> = self.col(&r, 1)?;
            Ok(lo.zip(hi))
        })
    }

    fn nodes_where(&self, id: &ExecutionId, q: &NodeQuery) -> Result<Vec<NodeInfo>, StoreError> {
        self.again(|| {
            let mut c = self.read();
            let seq = self.seq_of(&mut *c, id)?;
            let (sql, params) = node_query(Dialect::Postgres, seq, q);
            let params: Vec<Box<dyn ToSql + Sync>> = params
                .into_iter()
                .map(|p| -> Box<dyn ToSql + Sync> {
                    match p {
                        Param::Int(i) => Box::new(i),
                        Param::Text(t) => Box::new(t),
                        Param::TextList(l) => Box::new(l),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            let rows = c
                .query(&sql, &refs)
                .map_err(self.err(format!("reading the nodes of execution {id}")))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let row_id: i64 = self.col(r, 12)?;
                let node = self.node_row(r, id)?;
                out.push((row_id, node.key, node));
            }
            Ok(last_rows(out, q))
        })
    }

    fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionSummary>, StoreError> {
        self.again(|| {
            self.seq_of(&mut *self.read(), id)?;
            let sql = format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE parent = $1 ORDER BY started_ms, seq"
            );
            self.summaries(&sql, &[&id.as_str()], |_| true, usize::MAX)
        })
    }

    fn logs(
        &self,
        id: &ExecutionId,
        node_path: Option<&str>,
    ) -> Result<Vec<AttemptLog>, StoreError> {
        self.again(|| {
            let mut c = self.read();
            let seq = self.seq_of(&mut *c, id)?;
            let err = || self.err(format!("reading the logs of execution {id}"));
            if let Some(p) = node_path {
                let exists = c
                    .query_opt(
                        "SELECT 1 FROM nodes WHERE execution = $1 AND path = $2 LIMIT 1",
                        &[&seq, &p],
                    )
                    .map_err(err())?
                    .is_some();
                if !exists {
                    return Err(StoreError::UnknownNode {
                        path: self.path.clone(),
                        execution: id.to_string(),
                        node_path: p.to_string(),
                    });
                }
            }
            let rows = c
                .query(
                    "SELECT n.path, a.node, a.attempt, a.start_us, a.end_us, a.outcome, a.message, \
                     a.worker, l.stdout, l.stderr FROM attempts a \
                     JOIN (SELECT key, max(path) AS path FROM nodes WHERE execution = $1 \
                     AND ($2::text IS NULL OR path = $2) \
                     AND key IN (SELECT node FROM attempts WHERE execution = $1) \
                     GROUP BY key) n ON n.key = a.node \
                     LEFT JOIN logs l ON l.execution = a.execution AND l.node = a.node \
                     AND l.attempt = a.attempt \
                     WHERE a.execution = $1 AND ($2::text IS NULL OR n.path = $2) \
                     ORDER BY n.path, a.attempt",
                    &[&seq, &node_path],
                )
                .map_err(err())?;
            rows.iter()
                .map(|r| {
                    let path: String = self.col(r, 0)?;
                    let attempt = self.col::<i64>(r, 2)? as u32;
                    let outcome: String = self.col(r, 5)?;
                    let outcome = AttemptOutcome::parse(&outcome).ok_or_else(|| {
                        self.corrupt(format!(
                            "attempt {attempt} of node {path} of execution {id} has an unknown \
                             outcome {outcome:?}"
                        ))
                    })?;
                    Ok(AttemptLog {
                        record: AttemptRecord {
                            node: self.col::<i64>(r, 1)? as u64,
                            attempt,
                            start_us: self.col::<i64>(r, 3)? as u64,
                            end_us: self.col::<i64>(r, 4)? as u64,
                            outcome,
                            message: self.col(r, 6)?,
                            worker: self.col::<Option<i64>>(r, 7)?.map(|w| w as u32),
                        },
                        path,
                        stdout: r.get::<_, Option<Vec<u8>>>(8).unwrap_or_default(),
                        stderr: r.get::<_, Option<Vec<u8>>>(9).unwrap_or_default(),
                    })
                })
                .collect()
        })
    }

    fn module(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        self.again(|| {
            self.read()
                .query_opt("SELECT bytes FROM modules WHERE digest = $1", &[&digest])
                .map_err(self.err(format!("reading module {digest}")))?
                .map(|r| self.col(&r, 0))
                .ok_or_else(|| StoreError::MissingModule {
                    path: self.path.clone(),
                    digest: digest.to_string(),
                })?
        })
    }

    fn entities(&self, digest: &str) -> Result<Vec<EntityRecord>, StoreError> {
        self.again(|| {
            let rows = self
                .read()
                .query(
                    "SELECT name, kind, interface FROM entities WHERE module = $1 ORDER BY name",
                    &[&digest],
                )
                .map_err(self.err(format!("reading the entities of module {digest}")))?;
            rows.iter()
                .map(|r| {
                    let name: String = self.col(r, 0)?;
                    let bytes: Vec<u8> = self.col(r, 2)?;
                    let interface = codec::decode(&bytes).map_err(|e| {
                        self.corrupt(format!(
                            "the interface of {name} in module {digest} does not decode: {e}"
                        ))
                    })?;
                    Ok(EntityRecord {
                        name,
                        kind: self.col(r, 1)?,
                        interface,
                    })
                })
                .collect()
        })
    }

    fn succeeded_outputs(
        &self,
        id: &ExecutionId,
    ) -> Result<HashMap<u64, Option<Value>>, StoreError> {
        self.again(|| {
            let mut c = self.read();
            let seq = self.seq_of(&mut *c, id)?;
            // As in SQLite: the top execution's nodes and those of unfinished children only.
            let rows = c
                .query(
                    "SELECT n.key, n.path, coalesce(n.output, n.output_inline), \
                     coalesce(n.output_inline, v.bytes) FROM nodes n \
                     LEFT JOIN value_bytes v ON v.hash = n.output \
                     WHERE n.execution IN (SELECT seq FROM executions WHERE root = \
                     (SELECT root FROM executions WHERE seq = $1) \
                     AND (parent IS NULL OR status <> 'succeeded')) \
                     AND n.status = 'succeeded'",
                    &[&seq],
                )
                .map_err(self.err(format!("reading the outputs of execution {id}")))?;
            rows.iter()
                .map(|r| {
                    let path: String = self.col(r, 1)?;
                    let v = self.joined_value(
                        self.col(r, 2)?,
                        self.col(r, 3)?,
                        &format!("node {path} of execution {id}"),
                    )?;
                    Ok((self.col::<i64>(r, 0)? as u64, v))
                })
                .collect()
        })
    }

    fn graphs(&self, id: &ExecutionId) -> Result<Graphs, StoreError> {
        self.again(|| {
            let mut c = self.read();
            let seq = self.seq_of(&mut *c, id)?;
            let rows = c
                .query(
                    "SELECT g.node, g.hash, b.bytes FROM graphs g \
                     LEFT JOIN graph_bytes b ON b.hash = g.hash WHERE g.execution IN \
                     (SELECT seq FROM executions WHERE root = \
                     (SELECT root FROM executions WHERE seq = $1))",
                    &[&seq],
                )
                .map_err(self.err(format!("reading the graphs of execution {id}")))?;
            rows.iter()
                .map(|r| {
                    let node = self.col::<i64>(r, 0)? as u64;
                    let hash: Vec<u8> = self.col(r, 1)?;
                    let whose = format!("the graph of node {node:#x} of execution {id}");
                    let bytes: Vec<u8> = self.col::<Option<Vec<u8>>>(r, 2)?.ok_or_else(|| {
                        self.corrupt(format!("{whose} ({}) is missing", hex(&hash)))
                    })?;
                    let g: GraphSpec = codec::decode(&bytes)
                        .map_err(|e| self.corrupt(format!("{whose} does not decode: {e}")))?;
                    Ok((node, g))
                })
                .collect()
        })
    }

    fn events(&self, id: &ExecutionId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.again(|| {
            let mut c = self.read();
            let seq = self.seq_of(&mut *c, id)?;
            let rows = c
                .query(
                    "SELECT seq, bytes FROM events WHERE execution = $1 ORDER BY seq",
                    &[&seq],
                )
                .map_err(self.err(format!("reading the events of execution {id}")))?;
            rows.iter()
                .map(|r| Ok((self.col::<i64>(r, 0)? as u64, self.col(r, 1)?)))
                .collect()
        })
    }

    fn cache_get(&self, key: &[u8]) -> Result<Option<CacheEntry>, StoreError> {
        self.again(|| self.cache_row(&mut *self.read(), key))
    }

    fn cache_get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<CacheEntry>>, StoreError> {
        self.again(|| {
            // One query for the batch: a round trip costs more than the lookup.
            let rows = self
                .read()
                .query(
                    "SELECT c.key, c.task, c.cache_version, c.created_ms, c.execution, c.node, \
                     c.output, v.bytes FROM cache c LEFT JOIN value_bytes v ON v.hash = c.output \
                     WHERE c.key = ANY($1)",
                    &[&keys],
                )
                .map_err(self.err("reading the task cache"))?;
            let mut found: HashMap<Vec<u8>, CacheEntry> = HashMap::with_capacity(rows.len());
            for r in rows {
                let key: Vec<u8> = self.col(&r, 0)?;
                let task: String = self.col(&r, 1)?;
                let whose = format!("the cache entry {} of task {task}", hex(&key));
                let output = self.joined_value(Some(self.col(&r, 6)?), self.col(&r, 7)?, &whose)?;
                let entry = CacheEntry {
                    key: key.clone(),
                    task,
                    cache_version: self.col(&r, 2)?,
                    created_ms: self.col(&r, 3)?,
                    execution: ExecutionId::from_string(self.col(&r, 4)?),
                    node: self.col::<i64>(&r, 5)? as u64,
                    output,
                };
                found.insert(key, entry);
            }
            Ok(keys.iter().map(|k| found.get(*k).cloned()).collect())
        })
    }

    fn cancel_requested(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        self.again(|| self.cancel_requested_row(id))
    }

    fn modules(&self) -> Result<Vec<ModuleSummary>, StoreError> {
        self.again(|| self.module_rows())
    }

    fn cache_list(&self, task: Option<&str>) -> Result<Vec<CacheEntry>, StoreError> {
        self.again(|| {
            let rows = self
                .read()
                .query(
                    "SELECT key, task, cache_version, created_ms, execution, node FROM cache \
                     WHERE $1::text IS NULL OR task = $1 ORDER BY task, created_ms",
                    &[&task],
                )
                .map_err(self.err("listing the task cache"))?;
            rows.iter()
                .map(|r| {
                    Ok(CacheEntry {
                        key: self.col(r, 0)?,
                        task: self.col(r, 1)?,
                        cache_version: self.col(r, 2)?,
                        created_ms: self.col(r, 3)?,
                        execution: ExecutionId::from_string(self.col(r, 4)?),
                        node: self.col::<i64>(r, 5)? as u64,
                        output: None,
                    })
                })
                .collect()
        })
    }
}
