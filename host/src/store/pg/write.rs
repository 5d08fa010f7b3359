//! A batch of write operations as rows: the writer thread's commit for PostgreSQL. Each
//! round trip to the server costs far more than a row, so a batch is not written op by op (as
//! SQLite's in-process `ops::apply` does) but gathered into columns, one array per column,
//! and written with one `INSERT ... SELECT FROM unnest(...)` per table: a batch of 50 000
//! node rows is one statement. Values and graphs are stored once per sha256 of their
//! encoding, as in SQLite.
//!
//! A lost connection (a restarted server, a terminated backend) does not fail the run: the
//! writer connects again and writes the batch again, for up to [`RECONNECT_FOR`]. Writing it
//! again must not record anything twice, and the batch's statements cannot all make that so
//! by themselves: node rows are appended (see `schema`), with no key an `ON CONFLICT` could
//! name. Instead the writer learns whether the lost transaction committed. Each writer has a
//! row of its own in `write_marks`, made when it starts, and each batch's transaction first
//! sets that row to the batch's number, in the round trip `BEGIN` alone would cost. After
//! connecting again the writer reads its row `FOR UPDATE`: that waits for the lost
//! transaction where its backend has not ended yet (it holds the row's lock), and then the
//! number says whether the batch committed (done) or not (write it again).
//!
//! Not `txid_status`: a transaction id is reused after a crash of the server when the
//! transaction's WAL had not reached the disk, so the status of a lost id may be that of a
//! newer transaction of another process (a test that crashes the server mid-run lost batches
//! that way). A committed row of our own cannot be mistaken.
//!
//! [`RECONNECT_FOR`]: super::RECONNECT_FOR

use super::super::error::pg_message;
use super::super::ops::{Hash, WriteOp};
use super::super::types::*;
use super::super::ExecutionId;
use super::{is_lost, reconnect, RECONNECT_FOR};
use postgres::types::ToSql;
use postgres::{Client, Config};
use sandflow_contract::{codec, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The writer's memory between batches, and its connection.
pub(crate) struct State {
    location: String,
    /// Execution id -> its `seq`.
    seqs: HashMap<ExecutionId, i64>,
    /// To connect again after the connection was lost.
    config: Config,
    /// `None` from a lost connection until the next is made.
    client: Option<Client>,
    /// This writer's row in `write_marks`, and the number of its last batch.
    mark: String,
    marked: bool,
    batch: i64,
}

/// The writers' marks (see the module's comment): one row per writer, kept for a week after
/// its last batch. Created on first use, like the queue's table, outside the schema version.
const MARKS: &str = "CREATE TABLE IF NOT EXISTS sandflow.write_marks \
     (writer text PRIMARY KEY, batch bigint NOT NULL, at_ms bigint NOT NULL)";
/// A lock of our own around creating it (see `queue::LOCK`).
const MARKS_LOCK: i64 = 7_362_841_907;
const MARKS_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

/// A node row: its execution, the record, its output's hash or its inline bytes.
type NodeRow = (ExecutionId, NodeRecord, Option<Vec<u8>>, Option<Vec<u8>>);
/// An attempt: execution, node key, attempt number.
type AttemptKey = (ExecutionId, u64, u32);

/// A batch's rows. Rows that replace (attempts, logs, graphs, events,
/// cache entries, finishes) are kept by key, the last one winning, as `INSERT OR REPLACE`
/// does: one statement may not touch a row twice.
#[derive(Default)]
struct Rows {
    values: Vec<(Hash, Vec<u8>)>,
    value_seen: HashSet<Hash>,
    graph_bytes: Vec<(Hash, Vec<u8>)>,
    graph_seen: HashSet<Hash>,
    starts: Vec<(NewExecution, Vec<u8>)>,
    nodes: Vec<NodeRow>,
    attempts: HashMap<AttemptKey, AttemptRecord>,
    /// stdout and stderr.
    logs: HashMap<AttemptKey, (Vec<u8>, Vec<u8>)>,
    graphs: HashMap<(ExecutionId, u64), Hash>,
    events: HashMap<(ExecutionId, u64), Vec<u8>>,
    cache: HashMap<Vec<u8>, (CacheRecord, Hash)>,
    finishes: HashMap<ExecutionId, (ExecutionEnd, Option<Vec<u8>>)>,
    /// Executions' summaries, as JSON.
    summaries: HashMap<ExecutionId, String>,
    modules: Vec<ModuleRecord>,
}

/// Why a batch was not written, and whether because the connection was lost (worth
/// connecting again) rather than because of the batch.
struct Fail {
    message: String,
    lost: bool,
}

impl From<String> for Fail {
    fn from(message: String) -> Fail {
        Fail {
            message,
            lost: false,
        }
    }
}

type OpResult<T> = Result<T, Fail>;

fn db(what: impl FnOnce() -> String) -> impl FnOnce(postgres::Error) -> Fail {
    move |e| Fail {
        lost: is_lost(&e),
        message: format!("{}: {}", what(), pg_message(&e)),
    }
}

fn encode(value: &Value, whose: impl FnOnce() -> String) -> OpResult<Vec<u8>> {
    codec::encode(value).map_err(|e| Fail::from(format!("encoding {}: {e}", whose())))
}

impl Rows {
    /// Stores encoded `bytes` by hash (once per batch) and returns the hash.
    fn value(&mut self, bytes: Vec<u8>) -> Hash {
        let hash: Hash = Sha256::digest(&bytes).into();
        if self.value_seen.insert(hash) {
            self.values.push((hash, bytes));
        }
        hash
    }

    /// A value as an execution's row keeps it: inline when shorter than a hash, else the
    /// hash (see `ops::put_small_inline`).
    fn small_inline(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        if bytes.len() < 32 {
            bytes
        } else {
            self.value(bytes).to_vec()
        }
    }

    fn add(&mut self, op: &WriteOp) -> OpResult<()> {
        match op {
            WriteOp::PutModule(m) => self.modules.push(m.clone()),
            WriteOp::StartExecution(x) => {
                let inputs = encode(&x.inputs, || format!("the inputs of execution {}", x.id))?;
                let inputs = self.small_inline(inputs);
                self.starts.push((x.clone(), inputs));
            }
            WriteOp::Node { execution, node } => {
                let (output, inline) = match &node.output {
                    None => (None, None),
                    Some(v) => {
                        let bytes = encode(v, || format!("the output of node {}", node.path))?;
                        if bytes.len() < 32 {
                            (None, Some(bytes))
                        } else {
                            (Some(self.value(bytes).to_vec()), None)
                        }
                    }
                };
                self.nodes
                    .push((execution.clone(), node.clone(), output, inline));
            }
            WriteOp::Attempt { execution, attempt } => {
                self.attempts.insert(
                    (execution.clone(), attempt.node, attempt.attempt),
                    attempt.clone(),
                );
            }
            WriteOp::Logs {
                execution,
                node,
                attempt,
                stdout,
                stderr,
            } => {
                if !(stdout.is_empty() && stderr.is_empty()) {
                    self.logs.insert(
                        (execution.clone(), *node, *attempt),
                        (stdout.clone(), stderr.clone()),
                    );
                }
            }
            WriteOp::Graph {
                execution,
                node,
                graph,
            } => {
                let bytes = codec::encode(graph).map_err(|e| {
                    Fail::from(format!("encoding the graph of node {node:#x}: {e}"))
                })?;
                let hash: Hash = Sha256::digest(&bytes).into();
                if self.graph_seen.insert(hash) {
                    self.graph_bytes.push((hash, bytes));
                }
                self.graphs.insert((execution.clone(), *node), hash);
            }
            WriteOp::Events {
                execution,
                seq,
                bytes,
            } => {
                self.events.insert((execution.clone(), *seq), bytes.clone());
            }
            WriteOp::FinishExecution { execution, end } => {
                let output = match &end.output {
                    Some(v) => {
                        let bytes = encode(v, || format!("the output of execution {execution}"))?;
                        Some(self.small_inline(bytes))
                    }
                    None => None,
                };
                self.finishes
                    .insert(execution.clone(), (end.clone(), output));
            }
            WriteOp::Summary { execution, summary } => {
                let text = serde_json::to_string(summary).map_err(|e| {
                    Fail::from(format!(
                        "encoding the summary of execution {execution}: {e}"
                    ))
                })?;
                self.summaries.insert(execution.clone(), text);
            }
            WriteOp::CachePut(c) => {
                let bytes = encode(&c.output, || format!("a cache entry of task {}", c.task))?;
                let hash = self.value(bytes);
                self.cache.insert(c.key.clone(), (c.clone(), hash));
            }
        }
        Ok(())
    }

    /// Every execution id the rows refer to by `seq`.
    fn referenced(&self) -> HashSet<&ExecutionId> {
        let mut ids: HashSet<&ExecutionId> = HashSet::new();
        ids.extend(self.nodes.iter().map(|n| &n.0));
        ids.extend(self.attempts.keys().map(|k| &k.0));
        ids.extend(self.logs.keys().map(|k| &k.0));
        ids.extend(self.graphs.keys().map(|k| &k.0));
        ids.extend(self.events.keys().map(|k| &k.0));
        ids
    }
}

/// Node keys, times and other u64s as PostgreSQL's signed bigint, bit for bit (as SQLite).
fn i(k: u64) -> i64 {
    k as i64
}

fn hashes(rows: &[(Hash, Vec<u8>)]) -> (Vec<&[u8]>, Vec<&[u8]>) {
    rows.iter().map(|(h, b)| (&h[..], &b[..])).unzip()
}

/// Runs `sql` with `params` unless `n` (the number of rows) is 0.
fn exec(
    tx: &mut Client,
    n: usize,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &str,
) -> OpResult<u64> {
    if n == 0 {
        return Ok(0);
    }
    tx.execute(sql, params)
        .map_err(db(|| format!("{what} ({n} rows)")))
}

impl State {
    /// The writer of the store at `location`, writing on `client` (connected with `config`).
    pub(crate) fn new(location: String, config: Config, client: Client) -> State {
        // Only letters, digits and '-': it is written into the SQL text of `BEGIN`.
        let mark = format!("{}-{}", std::process::id(), ExecutionId::generate())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>();
        State {
            location,
            seqs: HashMap::new(),
            config,
            client: Some(client),
            mark,
            marked: false,
            batch: 0,
        }
    }

    /// Makes this writer's row in `write_marks` (and the table where there is none), committed
    /// before its first batch, so that every batch's transaction updates the row and holds
    /// its lock. Made at the first batch rather than at open: a store only read never writes.
    fn make_mark(&mut self, client: &mut Client) -> Result<(), postgres::Error> {
        let now = crate::record::now_ms();
        client.execute("SELECT pg_advisory_lock($1)", &[&MARKS_LOCK])?;
        let made = client.batch_execute(MARKS);
        client.execute("SELECT pg_advisory_unlock($1)", &[&MARKS_LOCK])?;
        made?;
        client.execute(
            "DELETE FROM write_marks WHERE at_ms < $1",
            &[&(now - MARKS_KEPT_MS)],
        )?;
        // Run again after a lost connection, the first may have committed.
        client.execute(
            "INSERT INTO write_marks (writer, batch, at_ms) VALUES ($1, 0, $2) \
             ON CONFLICT (writer) DO NOTHING",
            &[&self.mark, &now],
        )?;
        self.marked = true;
        Ok(())
    }

    /// Writes `ops` in one transaction, connecting again (for up to [`RECONNECT_FOR`]) where
    /// the connection is lost, and never twice (see the module's comment). What a failed
    /// transaction taught (seqs) is forgotten with it.
    pub(crate) fn commit(&mut self, ops: &[WriteOp]) -> Result<(), String> {
        let mut rows = Rows::default();
        for op in ops {
            rows.add(op).map_err(|f| self.located(f.message))?;
        }
        // When the connection was first lost: the deadline is counted from there.
        let mut lost_at: Option<Instant> = None;
        loop {
            let deadline = lost_at.map_or_else(Instant::now, |t| t + RECONNECT_FOR);
            let mut client = match self.client.take() {
                Some(c) => c,
                None => reconnect(&self.config, &self.location, deadline)
                    .map_err(|e| self.gave_up(&e.to_string()))?,
            };
            self.batch += 1;
            let mut begun = false;
            let result = self.write(&mut client, &rows, &mut begun);
            let lost = match result {
                Ok(()) => {
                    self.client = Some(client);
                    if lost_at.is_some() {
                        eprintln!(
                            "sandflow: connected to the store {} again; writing goes on",
                            self.location
                        );
                    }
                    return Ok(());
                }
                Err(f) => {
                    self.seqs.clear();
                    if !(f.lost || client.is_closed()) {
                        // The batch's own error: the transaction is rolled back where the
                        // connection still holds it, and the run fails with the error.
                        let _ = client.batch_execute("ROLLBACK");
                        self.client = Some(client);
                        return Err(self.located(f.message));
                    }
                    f
                }
            };
            if lost_at.is_none() {
                eprintln!(
                    "sandflow: warning: the connection to the store {} was lost while writing \
                     ({}); connecting again for up to {} s",
                    self.location,
                    lost.message,
                    RECONNECT_FOR.as_secs()
                );
                lost_at = Some(Instant::now());
            }
            let deadline = lost_at.map_or_else(Instant::now, |t| t + RECONNECT_FOR);
            if begun && self.committed(deadline)? {
                eprintln!(
                    "sandflow: connected to the store {} again; writing goes on",
                    self.location
                );
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.gave_up(&lost.message));
            }
        }
    }

    fn located(&self, message: String) -> String {
        format!("{message} (in {})", self.location)
    }

    fn gave_up(&self, message: &str) -> String {
        format!(
            "{message} (in {}; the connection was lost and connecting again failed for {} s)",
            self.location,
            RECONNECT_FOR.as_secs()
        )
    }

    /// Whether the transaction of batch `self.batch`, whose connection was lost (perhaps
    /// after its COMMIT reached the server), committed: its mark says so once its backend has
    /// ended (the row lock is waited for, until `deadline`).
    fn committed(&mut self, deadline: Instant) -> Result<bool, String> {
        loop {
            let mut client = match self.client.take() {
                Some(c) => c,
                None => reconnect(&self.config, &self.location, deadline)
                    .map_err(|e| self.gave_up(&e.to_string()))?,
            };
            let wait_ms = deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .max(1);
            let asked = client
                .batch_execute(&format!("SET lock_timeout = {wait_ms}"))
                .and_then(|_| {
                    client.query_opt(
                        "SELECT batch FROM write_marks WHERE writer = $1 FOR UPDATE",
                        &[&self.mark],
                    )
                })
                .and_then(|row| {
                    client.batch_execute("RESET lock_timeout")?;
                    row.map(|r| r.try_get::<_, i64>(0)).transpose()
                });
            let lost = match asked {
                Ok(batch) => {
                    self.client = Some(client);
                    return Ok(batch == Some(self.batch));
                }
                Err(e) if is_lost(&e) || client.is_closed() => pg_message(&e),
                Err(e) => {
                    return Err(self.located(format!(
                        "reading whether batch {} committed after the connection was lost: {}",
                        self.batch,
                        pg_message(&e)
                    )))
                }
            };
            if Instant::now() >= deadline {
                return Err(self.gave_up(&lost));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One try at writing `rows` in one transaction on `client`; `begun` is set once the
    /// transaction may have reached the server.
    fn write(&mut self, client: &mut Client, rows: &Rows, begun: &mut bool) -> OpResult<()> {
        if !self.marked {
            self.make_mark(client)
                .map_err(db(|| "making the writer's mark".into()))?;
        }
        *begun = true;
        // One round trip, as `BEGIN` alone: the mark is how a retry knows whether this
        // transaction committed.
        client
            .batch_execute(&format!(
                "BEGIN; INSERT INTO write_marks (writer, batch, at_ms) VALUES ('{}', {}, {}) \
                 ON CONFLICT (writer) DO UPDATE SET batch = EXCLUDED.batch, at_ms = EXCLUDED.at_ms",
                self.mark,
                self.batch,
                crate::record::now_ms()
            ))
            .map_err(db(|| "starting a transaction".into()))?;
        let tx = client;
        write_modules(tx, &rows.modules)?;
        self.write_starts(tx, &rows.starts)?;
        self.resolve(tx, rows)?;
        let (h, b) = hashes(&rows.values);
        exec(
            tx,
            h.len(),
            "INSERT INTO value_bytes (hash, bytes) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
             ON CONFLICT DO NOTHING",
            &[&h, &b],
            "storing values",
        )?;
        let (h, b) = hashes(&rows.graph_bytes);
        exec(
            tx,
            h.len(),
            "INSERT INTO graph_bytes (hash, bytes) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
             ON CONFLICT DO NOTHING",
            &[&h, &b],
            "storing graphs",
        )?;
        self.write_nodes(tx, rows)?;
        self.write_attempts(tx, rows)?;
        self.write_logs(tx, rows)?;
        self.write_graphs_events(tx, rows)?;
        write_cache(tx, rows)?;
        write_finishes(tx, rows)?;
        tx.batch_execute("COMMIT")
            .map_err(db(|| "committing".into()))
    }

    /// Keeps the `seq` of each `(id, seq)` row.
    fn learn_seqs(&mut self, rows: &[postgres::Row]) -> OpResult<()> {
        for r in rows {
            let (id, seq): (String, i64) = r
                .try_get(0)
                .and_then(|id| Ok((id, r.try_get(1)?)))
                .map_err(db(|| "reading the seq of an execution".into()))?;
            self.seqs.insert(ExecutionId::from_string(id), seq);
        }
        Ok(())
    }

    fn seq(&self, id: &ExecutionId) -> OpResult<i64> {
        self.seqs
            .get(id)
            .copied()
            .ok_or_else(|| Fail::from(format!("a row for execution {id}, which was never started")))
    }

    fn write_starts(
        &mut self,
        tx: &mut Client,
        starts: &[(NewExecution, Vec<u8>)],
    ) -> OpResult<()> {
        if starts.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = starts.iter().map(|(x, _)| x.id.as_str()).collect();
        let parents: Vec<Option<&str>> = starts
            .iter()
            .map(|(x, _)| x.parent.as_ref().map(|p| p.as_str()))
            .collect();
        let roots: Vec<&str> = starts.iter().map(|(x, _)| x.root.as_str()).collect();
        let entities: Vec<&str> = starts.iter().map(|(x, _)| x.entity.as_str()).collect();
        let modules: Vec<&str> = starts.iter().map(|(x, _)| x.module.as_str()).collect();
        let inputs: Vec<&[u8]> = starts.iter().map(|(_, i)| &i[..]).collect();
        let started: Vec<i64> = starts.iter().map(|(x, _)| x.started_ms).collect();
        let hosts: Vec<&str> = starts.iter().map(|(x, _)| x.owner.host.as_str()).collect();
        let boots: Vec<&str> = starts.iter().map(|(x, _)| x.owner.boot.as_str()).collect();
        let pids: Vec<i64> = starts.iter().map(|(x, _)| i64::from(x.owner.pid)).collect();
        let owner_starts: Vec<i64> = starts.iter().map(|(x, _)| i(x.owner.start)).collect();
        let recovered: Vec<Option<&str>> = starts
            .iter()
            .map(|(x, _)| x.recovered_from.as_ref().map(|p| p.as_str()))
            .collect();
        let rows = tx
            .query(
                "INSERT INTO executions (id, parent, root, entity, module, inputs, status, \
                 started_ms, owner_host, owner_boot, owner_pid, owner_start, recovered_from) \
                 SELECT id, parent, root, entity, module, inputs, 'running', started_ms, \
                 owner_host, owner_boot, owner_pid, owner_start, recovered_from FROM \
                 unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::bytea[], $7::bigint[], $8::text[], $9::text[], $10::bigint[], \
                 $11::bigint[], $12::text[]) AS x(id, parent, root, entity, module, inputs, \
                 started_ms, owner_host, owner_boot, owner_pid, owner_start, recovered_from) \
                 ON CONFLICT (id) DO NOTHING RETURNING id, seq",
                &[
                    &ids,
                    &parents,
                    &roots,
                    &entities,
                    &modules,
                    &inputs,
                    &started,
                    &hosts,
                    &boots,
                    &pids,
                    &owner_starts,
                    &recovered,
                ],
            )
            .map_err(db(|| format!("starting executions {}", ids.join(", "))))?;
        // A start delivered twice (a batch retried after a commit whose answer was lost)
        // returns no row: `resolve` looks its seq up with the others this writer has not seen.
        self.learn_seqs(&rows)
    }

    /// Looks up the `seq` of every execution the batch refers to and this writer has not
    /// seen (one started by another process: a recovery's parent, say).
    fn resolve(&mut self, tx: &mut Client, rows: &Rows) -> OpResult<()> {
        let missing: Vec<&str> = rows
            .referenced()
            .into_iter()
            .filter(|id| !self.seqs.contains_key(*id))
            .map(|id| id.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let found = tx
            .query(
                "SELECT id, seq FROM executions WHERE id = ANY($1)",
                &[&missing],
            )
            .map_err(db(|| {
                format!("looking up executions {}", missing.join(", "))
            }))?;
        self.learn_seqs(&found)
    }

    fn write_nodes(&self, tx: &mut Client, rows: &Rows) -> OpResult<()> {
        let n = rows.nodes.len();
        let mut execs = Vec::with_capacity(n);
        for (id, ..) in &rows.nodes {
            execs.push(self.seq(id)?);
        }
        let keys: Vec<i64> = rows.nodes.iter().map(|r| i(r.1.key)).collect();
        let paths: Vec<&str> = rows.nodes.iter().map(|r| r.1.path.as_str()).collect();
        let entities: Vec<&str> = rows.nodes.iter().map(|r| r.1.entity.as_str()).collect();
        let kinds: Vec<&str> = rows.nodes.iter().map(|r| r.1.kind.as_str()).collect();
        let statuses: Vec<&str> = rows.nodes.iter().map(|r| r.1.status.as_str()).collect();
        let attempts: Vec<i64> = rows.nodes.iter().map(|r| i64::from(r.1.attempts)).collect();
        let outputs: Vec<Option<&[u8]>> = rows.nodes.iter().map(|r| r.2.as_deref()).collect();
        let inline: Vec<Option<&[u8]>> = rows.nodes.iter().map(|r| r.3.as_deref()).collect();
        let cached: Vec<bool> = rows.nodes.iter().map(|r| r.1.cached).collect();
        let starts: Vec<Option<i64>> = rows.nodes.iter().map(|r| r.1.start_us.map(i)).collect();
        let ends: Vec<Option<i64>> = rows.nodes.iter().map(|r| r.1.end_us.map(i)).collect();
        let workers: Vec<Option<i64>> = rows
            .nodes
            .iter()
            .map(|r| r.1.worker.map(i64::from))
            .collect();
        exec(
            tx,
            n,
            "INSERT INTO nodes (execution, key, path, entity, kind, status, attempts, output, \
             output_inline, cached, start_us, end_us, worker) SELECT * FROM unnest($1::bigint[], \
             $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], \
             $8::bytea[], $9::bytea[], $10::boolean[], $11::bigint[], $12::bigint[], \
             $13::bigint[])",
            &[
                &execs, &keys, &paths, &entities, &kinds, &statuses, &attempts, &outputs, &inline,
                &cached, &starts, &ends, &workers,
            ],
            "recording nodes",
        )?;
        Ok(())
    }

    fn write_attempts(&self, tx: &mut Client, rows: &Rows) -> OpResult<()> {
        let n = rows.attempts.len();
        let (mut execs, mut nodes, mut numbers, mut starts, mut ends) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut outcomes, mut messages, mut workers) = (Vec::new(), Vec::new(), Vec::new());
        for ((id, ..), a) in &rows.attempts {
            execs.push(self.seq(id)?);
            nodes.push(i(a.node));
            numbers.push(i64::from(a.attempt));
            starts.push(i(a.start_us));
            ends.push(i(a.end_us));
            outcomes.push(a.outcome.as_str());
            messages.push(a.message.as_deref());
            workers.push(a.worker.map(i64::from));
        }
        exec(
            tx,
            n,
            "INSERT INTO attempts (execution, node, attempt, start_us, end_us, outcome, message, \
             worker) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], \
             $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[]) \
             ON CONFLICT (execution, node, attempt) DO UPDATE SET start_us = EXCLUDED.start_us, \
             end_us = EXCLUDED.end_us, outcome = EXCLUDED.outcome, message = EXCLUDED.message, \
             worker = EXCLUDED.worker",
            &[
                &execs, &nodes, &numbers, &starts, &ends, &outcomes, &messages, &workers,
            ],
            "recording attempts",
        )?;
        Ok(())
    }

    fn write_logs(&self, tx: &mut Client, rows: &Rows) -> OpResult<()> {
        let (mut execs, mut nodes, mut numbers, mut outs, mut errs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((id, node, attempt), (stdout, stderr)) in &rows.logs {
            execs.push(self.seq(id)?);
            nodes.push(i(*node));
            numbers.push(i64::from(*attempt));
            outs.push(&stdout[..]);
            errs.push(&stderr[..]);
        }
        exec(
            tx,
            execs.len(),
            "INSERT INTO logs (execution, node, attempt, stdout, stderr) SELECT * FROM \
             unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bytea[]) \
             ON CONFLICT (execution, node, attempt) DO UPDATE SET stdout = EXCLUDED.stdout, \
             stderr = EXCLUDED.stderr",
            &[&execs, &nodes, &numbers, &outs, &errs],
            "recording task output",
        )?;
        Ok(())
    }

    fn write_graphs_events(&self, tx: &mut Client, rows: &Rows) -> OpResult<()> {
        let (mut execs, mut nodes, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for ((id, node), hash) in &rows.graphs {
            execs.push(self.seq(id)?);
            nodes.push(i(*node));
            hashes.push(&hash[..]);
        }
        exec(
            tx,
            execs.len(),
            "INSERT INTO graphs (execution, node, hash) SELECT * FROM unnest($1::bigint[], \
             $2::bigint[], $3::bytea[]) ON CONFLICT (execution, node) DO UPDATE SET \
             hash = EXCLUDED.hash",
            &[&execs, &nodes, &hashes],
            "recording dynamic graphs",
        )?;
        let (mut execs, mut seqs, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        for ((id, seq), b) in &rows.events {
            execs.push(self.seq(id)?);
            seqs.push(i(*seq));
            bytes.push(&b[..]);
        }
        exec(
            tx,
            execs.len(),
            "INSERT INTO events (execution, seq, bytes) SELECT * FROM unnest($1::bigint[], \
             $2::bigint[], $3::bytea[]) ON CONFLICT (execution, seq) DO UPDATE SET \
             bytes = EXCLUDED.bytes",
            &[&execs, &seqs, &bytes],
            "recording events",
        )?;
        Ok(())
    }
}

fn write_modules(tx: &mut Client, modules: &[ModuleRecord]) -> OpResult<()> {
    for m in modules {
        tx.execute(
            "INSERT INTO modules (digest, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&m.digest, &m.bytes],
        )
        .map_err(db(|| format!("storing module {}", m.digest)))?;
        let mut names = Vec::new();
        let mut kinds = Vec::new();
        let mut ifaces = Vec::new();
        for e in &m.entities {
            let interface = codec::encode(&e.interface)
                .map_err(|err| format!("encoding the interface of {}: {err}", e.name))?;
            names.push(e.name.as_str());
            kinds.push(e.kind.as_str());
            ifaces.push(interface);
        }
        exec(
            tx,
            names.len(),
            "INSERT INTO entities (module, name, kind, interface) SELECT $1, * FROM \
             unnest($2::text[], $3::text[], $4::bytea[]) ON CONFLICT DO NOTHING",
            &[&m.digest, &names, &kinds, &ifaces],
            &format!("storing the entities of module {}", m.digest),
        )?;
    }
    Ok(())
}

fn write_cache(tx: &mut Client, rows: &Rows) -> OpResult<()> {
    let entries: Vec<&(CacheRecord, Hash)> = rows.cache.values().collect();
    let keys: Vec<&[u8]> = entries.iter().map(|(c, _)| &c.key[..]).collect();
    let tasks: Vec<&str> = entries.iter().map(|(c, _)| c.task.as_str()).collect();
    let versions: Vec<&str> = entries
        .iter()
        .map(|(c, _)| c.cache_version.as_str())
        .collect();
    let outputs: Vec<&[u8]> = entries.iter().map(|(_, h)| &h[..]).collect();
    let created: Vec<i64> = entries.iter().map(|(c, _)| c.created_ms).collect();
    let execs: Vec<&str> = entries.iter().map(|(c, _)| c.execution.as_str()).collect();
    let nodes: Vec<i64> = entries.iter().map(|(c, _)| i(c.node)).collect();
    exec(
        tx,
        keys.len(),
        "INSERT INTO cache (key, task, cache_version, output, created_ms, execution, node) \
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], \
         $6::text[], $7::bigint[]) ON CONFLICT (key) DO UPDATE SET task = EXCLUDED.task, \
         cache_version = EXCLUDED.cache_version, output = EXCLUDED.output, \
         created_ms = EXCLUDED.created_ms, execution = EXCLUDED.execution, node = EXCLUDED.node",
        &[&keys, &tasks, &versions, &outputs, &created, &execs, &nodes],
        "storing cache entries",
    )?;
    Ok(())
}

fn write_finishes(tx: &mut Client, rows: &Rows) -> OpResult<()> {
    let n = rows.finishes.len();
    let ids: Vec<&str> = rows.finishes.keys().map(|id| id.as_str()).collect();
    let statuses: Vec<&str> = rows
        .finishes
        .values()
        .map(|(e, _)| e.status.as_str())
        .collect();
    let ended: Vec<i64> = rows.finishes.values().map(|(e, _)| e.ended_ms).collect();
    let errors: Vec<Option<&str>> = rows
        .finishes
        .values()
        .map(|(e, _)| e.error.as_deref())
        .collect();
    let outputs: Vec<Option<&[u8]>> = rows.finishes.values().map(|(_, o)| o.as_deref()).collect();
    let changed = exec(
        tx,
        n,
        "UPDATE executions e SET status = f.status, ended_ms = f.ended_ms, error = f.error, \
         output = f.output FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], \
         $5::bytea[]) AS f(id, status, ended_ms, error, output) WHERE e.id = f.id",
        &[&ids, &statuses, &ended, &errors, &outputs],
        "finishing executions",
    )?;
    if changed < n as u64 {
        let found: HashSet<String> = tx
            .query("SELECT id FROM executions WHERE id = ANY($1)", &[&ids])
            .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
            .map_err(db(|| "looking up finished executions".into()))?;
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|i| !found.contains(*i))
            .collect();
        return Err(Fail::from(format!(
            "finishing execution {}, which was never started",
            missing.join(", ")
        )));
    }
    if !rows.summaries.is_empty() {
        let ids: Vec<&str> = rows.summaries.keys().map(|id| id.as_str()).collect();
        let texts: Vec<&str> = rows.summaries.values().map(|t| t.as_str()).collect();
        exec(
            tx,
            ids.len(),
            "UPDATE executions e SET summary = f.summary FROM unnest($1::text[], $2::text[]) \
             AS f(id, summary) WHERE e.id = f.id",
            &[&ids, &texts],
            "writing executions' summaries",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::cluster::cluster;
    use super::super::PgStore;
    use super::*;
    use postgres::NoTls;
    use std::str::FromStr;

    /// Begins on `c` the transaction of `state`'s next batch, as `write` does.
    fn begin(state: &mut State, c: &mut Client) {
        state.batch += 1;
        c.batch_execute(&format!(
            "BEGIN; UPDATE write_marks SET batch = {} WHERE writer = '{}'",
            state.batch, state.mark
        ))
        .unwrap();
    }

    #[test]
    fn a_lost_batchs_outcome_is_read_back_committed_rolled_back_or_waited_for() {
        let url = cluster().database("outcome");
        // The tables.
        PgStore::open(&url).unwrap().finish().unwrap();
        let config = Config::from_str(&url).unwrap();
        let writer = config.connect(NoTls).unwrap();
        let mut state = State::new("test".into(), config.clone(), writer);
        let mut c = config.connect(NoTls).unwrap();
        c.batch_execute("SET search_path TO sandflow").unwrap();
        state.make_mark(&mut c).unwrap();
        state.client = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut other = config.connect(NoTls).unwrap();
        other.batch_execute("SET search_path TO sandflow").unwrap();
        begin(&mut state, &mut other);
        other.batch_execute("COMMIT").unwrap();
        assert!(state.committed(deadline).unwrap());
        begin(&mut state, &mut other);
        other.batch_execute("ROLLBACK").unwrap();
        assert!(!state.committed(deadline).unwrap());
        // One whose backend is terminated while it is open: not committed, once it ended.
        begin(&mut state, &mut other);
        let pid: i32 = other
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cluster().execute(&url, &format!("SELECT pg_terminate_backend({pid})"));
        });
        let t0 = Instant::now();
        assert!(!state.committed(deadline).unwrap());
        assert!(
            t0.elapsed() >= Duration::from_millis(250),
            "it was waited for"
        );
        killer.join().unwrap();
        assert!(
            other.batch_execute("SELECT 1").is_err(),
            "it was terminated"
        );
    }
}
