//! The write operations the writer thread commits, and how each becomes rows. Values and
//! graphs are encoded with the contract's codec and stored once per sha256 of their bytes.

use super::types::*;
use super::ExecutionId;
use rusqlite::{params, Transaction};
use sandflow_contract::{codec, GraphSpec, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// One thing to record. Sent to the writer thread; committed with whatever else is queued.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOp {
    PutModule(ModuleRecord),
    StartExecution(NewExecution),
    Node {
        execution: ExecutionId,
        node: NodeRecord,
    },
    Attempt {
        execution: ExecutionId,
        attempt: AttemptRecord,
    },
    /// An attempt's captured output; nothing is stored when both are empty.
    Logs {
        execution: ExecutionId,
        node: u64,
        attempt: u32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// The graph a dynamic returned.
    Graph {
        execution: ExecutionId,
        node: u64,
        graph: GraphSpec,
    },
    /// The scheduler's events, encoded by the caller; opaque to the store.
    Events {
        execution: ExecutionId,
        seq: u64,
        bytes: Vec<u8>,
    },
    FinishExecution {
        execution: ExecutionId,
        end: ExecutionEnd,
    },
    CachePut(CacheRecord),
    /// What a run knows of an execution when it ends (written after its last node).
    Summary {
        execution: ExecutionId,
        summary: TreeSummary,
    },
}

pub type Hash = [u8; 32];

/// The writer's memory between operations.
#[derive(Default)]
pub(crate) struct State {
    /// Execution id -> its `seq`, so node rows need no lookup by text.
    seqs: HashMap<ExecutionId, i64>,
    /// Hashes inserted in the current transaction: a value shared by many nodes is encoded
    /// for each, but inserted once.
    inserted: HashSet<Hash>,
    buf: Vec<u8>,
}

impl State {
    pub(crate) fn start_transaction(&mut self) {
        self.inserted.clear();
    }

    /// Forgets what a rolled-back transaction did.
    pub(crate) fn rolled_back(&mut self) {
        self.seqs.clear();
        self.inserted.clear();
    }
}

type OpResult<T> = Result<T, String>;

fn sql(what: impl FnOnce() -> String) -> impl FnOnce(rusqlite::Error) -> String {
    move |e| format!("{}: {e}", what())
}

fn key(k: u64) -> i64 {
    // SQLite integers are signed; node keys and cache node ids use all 64 bits.
    k as i64
}

fn opt(k: Option<u64>) -> Option<i64> {
    k.map(key)
}

/// An execution's inputs or output as its row keeps them: the encoding itself when it is
/// shorter than a hash (a child execution's `[42]`: one insert less per launch plan call),
/// else the hash of the value, stored once. The length tells them apart:
/// a hash is always 32 bytes, an inline value fewer.
pub(crate) fn put_small_inline(
    tx: &Transaction,
    st: &mut State,
    value: &Value,
) -> OpResult<Vec<u8>> {
    st.buf.clear();
    codec::encode_to(value, &mut st.buf).map_err(|e| format!("encoding a value: {e}"))?;
    if st.buf.len() < 32 {
        Ok(st.buf.clone())
    } else {
        Ok(put_encoded(tx, st)?.to_vec())
    }
}

/// Stores the value encoded in `st.buf` by its hash.
fn put_encoded(tx: &Transaction, st: &mut State) -> OpResult<Hash> {
    let hash: Hash = Sha256::digest(&st.buf).into();
    if st.inserted.insert(hash) {
        tx.prepare_cached("INSERT OR IGNORE INTO value_bytes (hash, bytes) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![&hash[..], &st.buf]))
            .map_err(sql(|| "storing a value".into()))?;
    }
    Ok(hash)
}

fn seq(tx: &Transaction, st: &mut State, id: &ExecutionId) -> OpResult<i64> {
    if let Some(s) = st.seqs.get(id) {
        return Ok(*s);
    }
    let s: i64 = tx
        .prepare_cached("SELECT seq FROM executions WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)))
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => {
                format!("a row for execution {id}, which was never started")
            }
            e => format!("looking up execution {id}: {e}"),
        })?;
    st.seqs.insert(id.clone(), s);
    Ok(s)
}

pub(crate) fn apply(tx: &Transaction, st: &mut State, op: &WriteOp) -> OpResult<()> {
    match op {
        WriteOp::PutModule(m) => {
            tx.prepare_cached("INSERT OR IGNORE INTO modules (digest, bytes) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![m.digest, m.bytes]))
                .map_err(sql(|| format!("storing module {}", m.digest)))?;
            for e in &m.entities {
                let interface = codec::encode(&e.interface)
                    .map_err(|err| format!("encoding the interface of {}: {err}", e.name))?;
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO entities (module, name, kind, interface) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![m.digest, e.name, e.kind, interface]))
                .map_err(sql(|| {
                    format!("storing entity {} of module {}", e.name, m.digest)
                }))?;
            }
        }
        WriteOp::StartExecution(x) => {
            let inputs = put_small_inline(tx, st, &x.inputs)?;
            // A start delivered twice (a batch retried after a commit whose answer was
            // lost) is the same start: the row stays as the first one made it.
            tx.prepare_cached(
                "INSERT INTO executions (id, parent, root, entity, module, inputs, status, \
                 started_ms, owner_host, owner_boot, owner_pid, owner_start, recovered_from) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    x.id.as_str(),
                    x.parent.as_ref().map(|p| p.as_str()),
                    x.root.as_str(),
                    x.entity,
                    x.module,
                    &inputs[..],
                    ExecStatus::Running.as_str(),
                    x.started_ms,
                    x.owner.host,
                    x.owner.boot,
                    x.owner.pid,
                    key(x.owner.start),
                    x.recovered_from.as_ref().map(|p| p.as_str()),
                ])
            })
            .map_err(sql(|| format!("starting execution {}", x.id)))
            .and_then(|inserted| {
                let seq = if inserted == 1 {
                    tx.last_insert_rowid()
                } else {
                    tx.prepare_cached("SELECT seq FROM executions WHERE id = ?1")
                        .and_then(|mut s| s.query_row([x.id.as_str()], |r| r.get(0)))
                        .map_err(sql(|| format!("finding execution {}", x.id)))?
                };
                st.seqs.insert(x.id.clone(), seq);
                Ok(())
            })?;
        }
        WriteOp::Node { execution, node } => {
            let e = seq(tx, st, execution)?;
            // A value smaller than its hash is kept in the row: one insert less per task
            // execution and fewer bytes; larger ones are stored once by hash.
            let (output, inline) = match &node.output {
                None => (None, None),
                Some(v) => {
                    st.buf.clear();
                    codec::encode_to(v, &mut st.buf)
                        .map_err(|e| format!("encoding the output of node {}: {e}", node.path))?;
                    if st.buf.len() < 32 {
                        (None, Some(st.buf.clone()))
                    } else {
                        (Some(put_encoded(tx, st)?), None)
                    }
                }
            };
            tx.prepare_cached(
                "INSERT INTO nodes (execution, key, path, entity, kind, status, attempts, output, \
                 output_inline, cached, start_us, end_us, worker) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    e,
                    key(node.key),
                    node.path,
                    node.entity,
                    node.kind,
                    node.status.as_str(),
                    node.attempts,
                    output.as_ref().map(|h| &h[..]),
                    inline,
                    node.cached,
                    opt(node.start_us),
                    opt(node.end_us),
                    node.worker,
                ])
            })
            .map_err(sql(|| {
                format!("recording node {} of execution {execution}", node.path)
            }))?;
        }
        WriteOp::Attempt {
            execution,
            attempt: a,
        } => {
            let e = seq(tx, st, execution)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO attempts (execution, node, attempt, start_us, end_us, \
                 outcome, message, worker) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    e,
                    key(a.node),
                    a.attempt,
                    key(a.start_us),
                    key(a.end_us),
                    a.outcome.as_str(),
                    a.message,
                    a.worker,
                ])
            })
            .map_err(sql(|| {
                format!(
                    "recording attempt {} of node {:#x} of execution {execution}",
                    a.attempt, a.node
                )
            }))?;
        }
        WriteOp::Logs {
            execution,
            node,
            attempt,
            stdout,
            stderr,
        } => {
            if stdout.is_empty() && stderr.is_empty() {
                return Ok(());
            }
            let e = seq(tx, st, execution)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO logs (execution, node, attempt, stdout, stderr) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![e, key(*node), attempt, stdout, stderr]))
            .map_err(sql(|| {
                format!("recording the output of node {node:#x} of execution {execution}")
            }))?;
        }
        WriteOp::Graph {
            execution,
            node,
            graph,
        } => {
            let e = seq(tx, st, execution)?;
            st.buf.clear();
            codec::encode_to(graph, &mut st.buf)
                .map_err(|err| format!("encoding the graph of node {node:#x}: {err}"))?;
            let hash: Hash = Sha256::digest(&st.buf).into();
            tx.prepare_cached("INSERT OR IGNORE INTO graph_bytes (hash, bytes) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![&hash[..], &st.buf]))
                .and_then(|_| {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO graphs (execution, node, hash) VALUES (?1, ?2, ?3)",
                    )
                })
                .and_then(|mut s| s.execute(params![e, key(*node), &hash[..]]))
                .map_err(sql(|| {
                    format!("recording the graph of node {node:#x} of execution {execution}")
                }))?;
        }
        WriteOp::Events {
            execution,
            seq: n,
            bytes,
        } => {
            let e = seq(tx, st, execution)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO events (execution, seq, bytes) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![e, key(*n), bytes]))
            .map_err(sql(|| format!("recording events of execution {execution}")))?;
        }
        WriteOp::FinishExecution { execution, end } => {
            let output = match &end.output {
                Some(v) => Some(put_small_inline(tx, st, v)?),
                None => None,
            };
            let changed = tx
                .prepare_cached(
                    "UPDATE executions SET status = ?2, ended_ms = ?3, error = ?4, output = ?5 \
                     WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        execution.as_str(),
                        end.status.as_str(),
                        end.ended_ms,
                        end.error,
                        output.as_ref().map(|h| &h[..]),
                    ])
                })
                .map_err(sql(|| format!("finishing execution {execution}")))?;
            if changed == 0 {
                return Err(format!(
                    "finishing execution {execution}, which was never started"
                ));
            }
        }
        WriteOp::CachePut(c) => {
            // A small output in the row: a hit is then one index seek less.
            let output = put_small_inline(tx, st, &c.output)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO cache (key, task, cache_version, output, created_ms, \
                 execution, node) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    c.key,
                    c.task,
                    c.cache_version,
                    &output[..],
                    c.created_ms,
                    c.execution.as_str(),
                    key(c.node),
                ])
            })
            .map_err(sql(|| format!("storing a cache entry of task {}", c.task)))?;
        }
        WriteOp::Summary { execution, summary } => {
            let text = serde_json::to_string(summary)
                .map_err(|e| format!("encoding the summary of execution {execution}: {e}"))?;
            tx.prepare_cached("UPDATE executions SET summary = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![execution.as_str(), text]))
                .map_err(sql(|| {
                    format!("writing the summary of execution {execution}")
                }))?;
        }
    }
    Ok(())
}
