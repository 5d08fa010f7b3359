//! The work queue in PostgreSQL (issue 15, step 2): `sandflow run --submit` enqueues an
//! execution, `sandflow worker` processes claim and drive them.
//!
//! A row of `sandflow.queue` is one submitted execution. It is claimed in one statement,
//! `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)`, which sets a lease
//! (the worker's id and an expiry in server time) and increments the fence: every later
//! write of the claimer (the recorded execution, the end) is `... AND fence = $fence`, so a
//! worker whose lease expired and was claimed again writes nothing. A row whose lease
//! expired is claimable again: its new claimer recovers the execution the dead one recorded.
//!
//! The table is created on first use (`IF NOT EXISTS`) rather than in the store's schema
//! version: it is the only addition, and a store of version 1 without it is still read by
//! every build of version 1.
//!
//! A lost connection (a restarted server, a terminated backend) is connected again by the
//! queue itself, for up to [`RECONNECT_FOR`], wherever the statement may simply run again:
//! reads, and updates under the fence that set what they set. Those that may not (a submit,
//! a claim, whose result would be lost with the connection) return the error; their callers
//! poll, and a claim whose answer was lost is claimable again when its lease expires.
//!
//! [`RECONNECT_FOR`]: super::RECONNECT_FOR

use super::super::error::pg;
use super::super::StoreError;
use super::{is_lost, PgStore, RECONNECT_FOR};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config};
use sandflow_contract::{codec, Value};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The channel a submit notifies and idle workers listen on.
pub const CHANNEL: &str = "sandflow_queue";

/// The channel an execution's end is notified on (its queue id as the payload), for
/// `run --wait`.
pub const DONE_CHANNEL: &str = "sandflow_queue_done";

const TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS sandflow.queue (
    id text COLLATE "C" PRIMARY KEY,
    module text NOT NULL,
    entity text NOT NULL,
    inputs text NOT NULL,
    submitted_ms bigint NOT NULL,
    state text NOT NULL,
    lease_owner text,
    lease_until timestamptz,
    fence bigint NOT NULL DEFAULT 0,
    execution text COLLATE "C",
    exit_code integer,
    summary text,
    output text
);
CREATE INDEX IF NOT EXISTS queue_claimable ON sandflow.queue (state, submitted_ms)
    WHERE state <> 'done';
ALTER TABLE sandflow.queue
    ADD COLUMN IF NOT EXISTS parent text COLLATE "C",
    ADD COLUMN IF NOT EXISTS calls bytea,
    ADD COLUMN IF NOT EXISTS keys bigint[],
    ADD COLUMN IF NOT EXISTS results bytea,
    ADD COLUMN IF NOT EXISTS args text[];
CREATE INDEX IF NOT EXISTS queue_parent ON sandflow.queue (parent) WHERE parent IS NOT NULL;
"#;

/// A batch of launch plan calls that a claimed execution delegated (a row whose `parent` is
/// that execution's queue id): each call is a child execution of its own, and a worker that
/// claims the row drives them all. One row for many calls: a call of a microsecond task's
/// workflow is not worth a claim (a round trip and a process) of its own.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildBatch {
    /// The calling execution, and the top execution of its tree.
    pub parent_execution: String,
    pub root: String,
    pub calls: Vec<ChildCall>,
    /// The caller's run options that its child executions take too.
    pub options: ChildOptions,
}

/// What a delegated child execution takes from its caller's run options, as an expanded
/// call's child execution would: the task overrides, the memory bound, the cache policy.
/// (Its parallelism is its launch plan's own.)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChildOptions {
    pub retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_memory_mb: Option<u64>,
    pub fuel: Option<u64>,
    pub max_run_memory_bytes: u64,
    pub max_log_bytes: u64,
    pub overwrite_cache: bool,
}

/// One delegated launch plan call: the node it is in its caller, and its inputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildCall {
    pub key: u64,
    pub path: String,
    /// In the launch plan's interface order.
    pub inputs: Vec<Value>,
}

/// How a delegated call's child execution ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildEnd {
    pub key: u64,
    /// The child execution, as recorded.
    pub execution: String,
    /// Its output, or its failure (a fault of the guest?, the message).
    pub result: Result<Option<Value>, (bool, String)>,
}

/// A row of delegated calls as its caller sees it.
#[derive(Clone, Debug)]
pub struct ChildRow {
    pub id: String,
    pub keys: Vec<i64>,
    /// Set once the row is done: its ends (none if its claimer failed without them), the exit
    /// code and summary line of its claimer.
    pub ended: Option<(Vec<ChildEnd>, i32, String)>,
}

/// Creates or completes the queue's table where it lacks what this build needs: `ALTER TABLE`
/// takes the table's exclusive lock even when it changes nothing, which would stop every
/// worker's claims for as long, so it runs only when a column is missing.
fn make_table(client: &mut Client) -> Result<(), postgres::Error> {
    let columns: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = \
             'sandflow' AND table_name = 'queue' AND column_name = ANY($1)",
            &[&QUEUE_COLUMNS.to_vec()],
        )?
        .try_get(0)?;
    if columns != QUEUE_COLUMNS.len() as i64 {
        // The lock is the session's: a lost connection releases it.
        client.execute("SELECT pg_advisory_lock($1)", &[&LOCK])?;
        client.batch_execute(TABLE)?;
        client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK])?;
    }
    Ok(())
}

/// The columns the latest `TABLE` adds last, and all the others before them: when all are
/// there, nothing in `TABLE` needs to run.
const QUEUE_COLUMNS: [&str; 6] = ["id", "parent", "calls", "keys", "results", "args"];

/// A lock of our own around creating the table: `CREATE TABLE IF NOT EXISTS` run by two
/// sessions at once can still fail on the type's unique index.
const LOCK: i64 = 7_362_841_906;

/// One claimed execution, as its claimer sees it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: String,
    pub module: String,
    pub entity: String,
    /// The inputs as a JSON object, by name.
    pub inputs: String,
    pub fence: i64,
    /// The execution an earlier claimer recorded (to recover), if any.
    pub execution: Option<String>,
    /// For a row of delegated launch plan calls: the queue id of the execution that made them.
    pub parent: Option<String>,
    /// The run's options as `sandflow run` takes them (`--max-parallelism 5`, ...).
    pub args: Vec<String>,
}

/// Where a submitted execution is.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: String,
    pub lease_owner: Option<String>,
    pub execution: Option<String>,
    pub exit_code: Option<i32>,
    pub summary: Option<String>,
    pub output: Option<String>,
}

/// A connection of its own to the queue.
pub struct Queue {
    client: Client,
    location: String,
    /// To connect again after the connection was lost.
    config: Config,
    /// The channels listened on, listened on again on a new connection.
    listening: Vec<&'static str>,
}

impl PgStore {
    /// A new connection to the store's queue, its table created if absent. A server that is
    /// not there (restarting) is waited for, as a lost connection is: the store was opened,
    /// so it was there a moment ago.
    pub fn queue(&self) -> Result<Queue, StoreError> {
        use std::sync::atomic::Ordering;
        let deadline = Instant::now() + RECONNECT_FOR;
        loop {
            let mut client = super::reconnect(&self.config, &self.location, deadline)?;
            let made = if self.queue_ready.load(Ordering::Acquire) {
                Ok(())
            } else {
                make_table(&mut client)
            };
            match made {
                Ok(()) => {
                    self.queue_ready.store(true, Ordering::Release);
                    return Ok(Queue {
                        client,
                        location: self.location.clone(),
                        config: self.config.clone(),
                        listening: Vec::new(),
                    });
                }
                Err(e) if is_lost(&e) && Instant::now() < deadline => {}
                Err(e) => return Err(pg(&self.location, "creating the work queue's table")(e)),
            }
        }
    }

    /// A queue connection given back earlier, else a new one.
    pub fn take_queue(&self) -> Result<Queue, StoreError> {
        let idle = self
            .idle_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match idle {
            Some(q) if !q.client.is_closed() => Ok(q),
            _ => self.queue(),
        }
    }

    /// Keeps `queue` for the next `take_queue`, unless its connection is lost.
    pub fn give_back(&self, queue: Queue) {
        if !queue.client.is_closed() {
            let mut idle = self.idle_queues.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < 16 {
                idle.push(queue);
            }
        }
    }
}

impl Queue {
    fn err(&self, context: impl Into<String>) -> impl FnOnce(postgres::Error) -> StoreError {
        pg(&self.location, context)
    }

    /// Runs `f` on the connection; where the connection is lost, connects again and runs it
    /// again, until it succeeds or [`RECONNECT_FOR`] has passed since the first loss. Only
    /// for statements that may run twice: `f` gets whether it is run again, so one that may
    /// have committed before the loss can accept its own earlier effect.
    fn retrying<T>(
        &mut self,
        context: impl Fn() -> String,
        mut f: impl FnMut(&mut Client, bool) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut lost_at: Option<Instant> = None;
        loop {
            let e = match f(&mut self.client, lost_at.is_some()) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !(is_lost(&e) || self.client.is_closed()) {
                return Err(pg(&self.location, context())(e));
            }
            let deadline = *lost_at.get_or_insert_with(Instant::now) + RECONNECT_FOR;
            if Instant::now() >= deadline {
                return Err(pg(&self.location, context())(e));
            }
            self.reconnect(deadline)?;
        }
    }

    /// A new connection in place of a lost one, listening where the old one listened.
    fn reconnect(&mut self, deadline: Instant) -> Result<(), StoreError> {
        let mut client = super::reconnect(&self.config, &self.location, deadline)?;
        for channel in &self.listening {
            client
                .batch_execute(&format!("LISTEN {channel}"))
                .map_err(pg(&self.location, format!("listening on {channel} again")))?;
        }
        self.client = client;
        Ok(())
    }

    /// Enqueues an execution of `entity` of the stored module `module` and wakes the
    /// listening workers (the notification is sent when the insert commits).
    pub fn submit(
        &mut self,
        id: &str,
        module: &str,
        entity: &str,
        inputs: &str,
        args: &[String],
    ) -> Result<(), StoreError> {
        let err = self.err(format!("enqueueing execution {id}"));
        let mut tx = self
            .client
            .transaction()
            .map_err(pg(&self.location, "enqueueing"))?;
        tx.execute(
            "INSERT INTO queue (id, module, entity, inputs, submitted_ms, state, args) \
             VALUES ($1, $2, $3, $4, $5, 'queued', $6)",
            &[
                &id,
                &module,
                &entity,
                &inputs,
                &crate::record::now_ms(),
                &args,
            ],
        )
        .and_then(|_| tx.execute(&format!("NOTIFY {CHANNEL}"), &[]))
        .and_then(|_| tx.commit())
        .map_err(err)
    }

    /// Claims at most `n` executions, queued or with an expired lease, for `worker`, with a
    /// lease of `lease`: submitted ones, or (`children`) rows of delegated launch plan calls.
    pub fn claim(
        &mut self,
        worker: &str,
        n: i64,
        lease: Duration,
        children: bool,
    ) -> Result<Vec<Claim>, StoreError> {
        let secs = lease.as_secs_f64();
        let rows = self
            .client
            .query(
                "UPDATE queue SET state = 'claimed', lease_owner = $1, \
                 lease_until = now() + make_interval(secs => $2), fence = fence + 1 \
                 WHERE id IN (SELECT id FROM queue WHERE (state = 'queued' \
                   OR (state = 'claimed' AND lease_until < now() AND lease_owner <> $1)) \
                   AND (parent IS NOT NULL) = $4 \
                   ORDER BY submitted_ms FOR UPDATE SKIP LOCKED LIMIT $3) \
                 RETURNING id, module, entity, inputs, fence, execution, parent, args",
                &[&worker, &secs, &n, &children],
            )
            .map_err(pg(&self.location, "claiming queued executions"))?;
        rows.iter()
            .map(|r| {
                Ok(Claim {
                    id: r.try_get(0)?,
                    module: r.try_get(1)?,
                    entity: r.try_get(2)?,
                    inputs: r.try_get(3)?,
                    fence: r.try_get(4)?,
                    execution: r.try_get(5)?,
                    parent: r.try_get(6)?,
                    args: r.try_get::<_, Option<Vec<String>>>(7)?.unwrap_or_default(),
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(pg(&self.location, "reading claimed executions"))
    }

    /// Enqueues rows of launch plan calls that the execution claimed as `parent` delegated,
    /// each `(id, entity, batch)`, in one transaction, and wakes the listening workers.
    pub fn submit_children(
        &mut self,
        parent: &str,
        module: &str,
        rows: &[(String, String, ChildBatch)],
    ) -> Result<(), StoreError> {
        let location = self.location.clone();
        let now = crate::record::now_ms();
        let mut encoded = Vec::with_capacity(rows.len());
        for (id, entity, batch) in rows {
            let calls = codec::encode(batch).map_err(|e| StoreError::Postgres {
                location: location.clone(),
                context: format!("the launch plan calls of {parent}"),
                message: format!("does not decode: {e}"),
            })?;
            let keys: Vec<i64> = batch.calls.iter().map(|c| c.key as i64).collect();
            encoded.push((id, entity, calls, keys));
        }
        // Written again after a lost connection: rows that committed are kept (`DO NOTHING`).
        self.retrying(
            || format!("enqueueing the launch plan calls of {parent}"),
            |client, _| {
                let mut tx = client.transaction()?;
                for (id, entity, calls, keys) in &encoded {
                    tx.execute(
                        "INSERT INTO queue (id, module, entity, inputs, submitted_ms, state, parent, \
                         calls, keys) VALUES ($1, $2, $3, '', $4, 'queued', $5, $6, $7) \
                         ON CONFLICT (id) DO NOTHING",
                        &[id, &module, entity, &now, &parent, calls, keys],
                    )?;
                }
                tx.execute(&format!("NOTIFY {CHANNEL}"), &[])?;
                tx.commit()
            },
        )
    }

    /// The rows of launch plan calls the execution claimed as `parent` delegated, with the
    /// ends of those done; only rows in `ids` when given.
    pub fn children(
        &mut self,
        parent: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<ChildRow>, StoreError> {
        let context = format!("reading the launch plan calls of {parent}");
        let rows = self.retrying(
            || context.clone(),
            |client, _| match ids {
                Some(ids) => client.query(
                    "SELECT id, keys, state, results, exit_code, summary FROM queue \
                     WHERE parent = $1 AND id = ANY($2)",
                    &[&parent, &ids],
                ),
                None => client.query(
                    "SELECT id, keys, state, results, exit_code, summary FROM queue \
                     WHERE parent = $1",
                    &[&parent],
                ),
            },
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let read = || -> Result<_, postgres::Error> {
                Ok((
                    r.try_get::<_, String>(0)?,
                    r.try_get::<_, Option<Vec<i64>>>(1)?,
                    r.try_get::<_, String>(2)?,
                    r.try_get::<_, Option<Vec<u8>>>(3)?,
                    r.try_get::<_, Option<i32>>(4)?,
                    r.try_get::<_, Option<String>>(5)?,
                ))
            };
            let (id, keys, state, results, code, summary) =
                read().map_err(pg(&self.location, context.clone()))?;
            let ended = if state == "done" {
                let ends = match results {
                    Some(bytes) => codec::decode::<Vec<ChildEnd>>(&bytes).map_err(|e| {
                        StoreError::Postgres {
                            location: self.location.clone(),
                            context: format!("the ends of the launch plan calls in {id}"),
                            message: format!("does not decode: {e}"),
                        }
                    })?,
                    None => Vec::new(),
                };
                Some((ends, code.unwrap_or(1), summary.unwrap_or_default()))
            } else {
                None
            };
            out.push(ChildRow {
                id,
                keys: keys.unwrap_or_default(),
                ended,
            });
        }
        Ok(out)
    }

    /// The calls of row `id` under `fence`; `None` if the claim is lost.
    pub fn child_batch(&mut self, id: &str, fence: i64) -> Result<Option<ChildBatch>, StoreError> {
        let row = self.retrying(
            || format!("reading the launch plan calls of {id}"),
            |client, _| {
                client.query_opt(
                    "SELECT calls FROM queue WHERE id = $1 AND fence = $2 AND parent IS NOT NULL",
                    &[&id, &fence],
                )
            },
        )?;
        let Some(row) = row else { return Ok(None) };
        let bytes: Option<Vec<u8>> = row
            .try_get(0)
            .map_err(self.err(format!("reading the launch plan calls of {id}")))?;
        let bytes = bytes.unwrap_or_default();
        codec::decode(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Postgres {
                location: self.location.clone(),
                context: format!("the launch plan calls of {id}"),
                message: format!("does not decode: {e}"),
            })
    }

    /// Ends row `id` of delegated calls under `fence` with its claimer's exit code, summary
    /// line and the calls' ends, and wakes their caller, in one statement (one commit);
    /// false (nothing written) if the claim was lost to another worker.
    pub fn finish_children(
        &mut self,
        id: &str,
        fence: i64,
        exit_code: i32,
        summary: &str,
        ends: &[ChildEnd],
    ) -> Result<bool, StoreError> {
        let bytes = codec::encode(ends).map_err(|e| StoreError::Postgres {
            location: self.location.clone(),
            context: format!("the ends of the launch plan calls in {id}"),
            message: format!("does not encode: {e}"),
        })?;
        // Fenced and conditioned on the claim: a retry after a lost answer changes nothing.
        let rows = self.retrying(
            || format!("recording the end of {id}"),
            |client, _| {
                client.query(
                    "WITH ended AS (UPDATE queue SET state = 'done', exit_code = $3, \
                     summary = $4, results = $5, lease_until = NULL WHERE id = $1 \
                     AND fence = $2 AND state = 'claimed' RETURNING id) \
                     SELECT pg_notify($6, id) FROM ended",
                    &[&id, &fence, &exit_code, &summary, &bytes, &DONE_CHANNEL],
                )
            },
        )?;
        Ok(rows.len() == 1)
    }

    /// Child executions a dead claimer left `running`, as `interrupted` (recoverable).
    pub fn interrupt_executions(&mut self, ids: &[String]) -> Result<u64, StoreError> {
        self.retrying(
            || "marking the child executions of a dead worker interrupted".into(),
            |client, _| {
                client.execute(
                    "UPDATE executions SET status = 'interrupted' WHERE id = ANY($1) \
                     AND status = 'running'",
                    &[&ids],
                )
            },
        )
    }

    /// Ends every row of launch plan calls of `parent` that a worker is driving (its caller
    /// failed or was cancelled): the worker's next heartbeat finds the claim gone and cancels
    /// the calls' child executions, as Ctrl-C cancels a run, and their ends are fenced out.
    pub fn cancel_claimed_children(&mut self, parent: &str) -> Result<u64, StoreError> {
        self.retrying(
            || format!("cancelling the launch plan calls of {parent}"),
            |client, _| {
                client.execute(
                    "UPDATE queue SET state = 'done', exit_code = 130, lease_until = NULL, \
                     summary = 'cancelled: the calling execution ended first' \
                     WHERE parent = $1 AND state = 'claimed'",
                    &[&parent],
                )
            },
        )
    }

    /// Ends every row of launch plan calls of `parent` not yet claimed (its run ended
    /// without them: they are no longer wanted).
    pub fn drop_unclaimed_children(&mut self, parent: &str) -> Result<u64, StoreError> {
        self.retrying(
            || format!("dropping the unclaimed launch plan calls of {parent}"),
            |client, _| {
                client.execute(
                    "UPDATE queue SET state = 'done', exit_code = 130, \
                     summary = 'not run: the calling execution ended first' \
                     WHERE parent = $1 AND state = 'queued'",
                    &[&parent],
                )
            },
        )
    }

    /// Renews the leases `worker` holds on rows `ids` (those it still drives); returns the
    /// (id, fence) of each one it still holds. A claim the worker no longer drives (its end
    /// could not be recorded) is not renewed: it expires and is taken over, never stuck. A
    /// lease that expired (a late heartbeat: a busy machine, a slow server) and that nobody
    /// claimed since is still this worker's: another claimer would have replaced the owner
    /// and the fence. A worker never takes over its own claim (`claim`).
    pub fn heartbeat(
        &mut self,
        worker: &str,
        lease: Duration,
        ids: &[String],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let secs = lease.as_secs_f64();
        let rows = self.retrying(
            || "renewing the worker's leases".into(),
            |client, _| {
                client.query(
                    "UPDATE queue SET lease_until = now() + make_interval(secs => $2) \
                     WHERE lease_owner = $1 AND state = 'claimed' AND id = ANY($3) \
                     RETURNING id, fence",
                    &[&worker, &secs, &ids],
                )
            },
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(pg(&self.location, "reading the renewed leases"))
    }

    /// Records the execution the claim under `fence` drives; false if the claim is lost.
    pub fn set_execution(
        &mut self,
        id: &str,
        fence: i64,
        execution: &str,
    ) -> Result<bool, StoreError> {
        let n = self.retrying(
            || format!("recording the execution of {id}"),
            |client, _| {
                client.execute(
                    "UPDATE queue SET execution = $3 WHERE id = $1 AND fence = $2",
                    &[&id, &fence, &execution],
                )
            },
        )?;
        Ok(n == 1)
    }

    /// A dead claimer's execution, `running` in the store, as `interrupted`, so it can be
    /// recovered: the expired lease is the proof its driver is gone, on any host. Only under
    /// the current fence. Only that execution: a worker's run delegates every launch plan call
    /// of it, so the child executions under it are driven by other claims (rows of calls),
    /// alive or taken over on their own.
    pub fn interrupt_previous(
        &mut self,
        id: &str,
        fence: i64,
        execution: &str,
    ) -> Result<bool, StoreError> {
        let held = self
            .retrying(
                || format!("checking the claim of {id}"),
                |client, _| {
                    client.query_opt(
                        "SELECT 1 FROM queue WHERE id = $1 AND fence = $2",
                        &[&id, &fence],
                    )
                },
            )?
            .is_some();
        if held {
            self.retrying(
                || format!("marking execution {execution} interrupted"),
                |client, _| {
                    client.execute(
                        "UPDATE executions SET status = 'interrupted' WHERE id = $1 \
                         AND status = 'running'",
                        &[&execution],
                    )
                },
            )?;
        }
        Ok(held)
    }

    /// Ends the claim under `fence` with the run's exit code, summary line and output; false
    /// (nothing written) if the claim was lost to another worker.
    pub fn finish(
        &mut self,
        id: &str,
        fence: i64,
        exit_code: i32,
        summary: &str,
        output: &str,
    ) -> Result<bool, StoreError> {
        // Run again after a lost connection, the first run may have committed: a row done
        // under this fence was ended by this claimer (a taker-over holds another fence).
        let n = self.retrying(
            || format!("recording the end of {id}"),
            |client, again| {
                client.execute(
                    "UPDATE queue SET state = 'done', exit_code = $3, summary = $4, output = $5, \
                     lease_until = NULL WHERE id = $1 AND fence = $2 \
                     AND (state = 'claimed' OR ($6 AND state = 'done'))",
                    &[&id, &fence, &exit_code, &summary, &output, &again],
                )
            },
        )?;
        if n == 1 {
            // Only a wake-up: a waiter that misses it reads the row at its next poll.
            let _ = self
                .client
                .execute("SELECT pg_notify($1, $2)", &[&DONE_CHANNEL, &id]);
        }
        Ok(n == 1)
    }

    /// The state of submitted execution `id`, `None` if there is none.
    pub fn status(&mut self, id: &str) -> Result<Option<Status>, StoreError> {
        let row = self.retrying(
            || format!("reading the queue row of {id}"),
            |client, _| {
                client.query_opt(
                    "SELECT state, lease_owner, execution, exit_code, summary, output FROM queue \
                     WHERE id = $1",
                    &[&id],
                )
            },
        )?;
        row.map(|r| {
            Ok(Status {
                state: r.try_get(0)?,
                lease_owner: r.try_get(1)?,
                execution: r.try_get(2)?,
                exit_code: r.try_get(3)?,
                summary: r.try_get(4)?,
                output: r.try_get(5)?,
            })
        })
        .transpose()
        .map_err(self.err(format!("reading the queue row of {id}")))
    }

    /// Listens for submits on [`CHANNEL`].
    pub fn listen(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .map_err(pg(&self.location, "listening for submitted executions"))?;
        self.listening.push(CHANNEL);
        Ok(())
    }

    /// Listens for ends on [`DONE_CHANNEL`].
    pub fn listen_done(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute(&format!("LISTEN {DONE_CHANNEL}"))
            .map_err(pg(&self.location, "listening for ended executions"))?;
        self.listening.push(DONE_CHANNEL);
        Ok(())
    }

    /// Waits at most `timeout` for a notification on a channel this connection listens on
    /// (true if one came). A lost connection is an error: the caller polls meanwhile and
    /// connects again.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        let mut n = self.client.notifications();
        let mut it = n.timeout_iter(timeout);
        let got = it
            .next()
            .map_err(pg(&self.location, "waiting for submitted executions"))?;
        Ok(got.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::super::cluster::cluster;
    use super::PgStore;
    use std::time::Duration;

    #[test]
    fn a_claim_whose_lease_expired_is_taken_over_and_its_late_end_is_refused_by_the_fence() {
        let store = PgStore::open(&cluster().database("queue_fence")).unwrap();
        let (mut a, mut b) = (store.queue().unwrap(), store.queue().unwrap());
        a.submit("q1", "digest", "wf", "{}", &[]).unwrap();
        let short = Duration::from_millis(200);
        let first = a.claim("a", 10, short, false).unwrap();
        assert_eq!(first.len(), 1);
        // Held: nobody else gets it, and its heartbeat renews it.
        assert!(b.claim("b", 10, short, false).unwrap().is_empty());
        let q1 = ["q1".to_string()];
        assert_eq!(
            a.heartbeat("a", short, &q1).unwrap(),
            [("q1".to_string(), first[0].fence)]
        );
        // Renewed only while its worker says it drives it.
        assert!(a.heartbeat("a", short, &[]).unwrap().is_empty());
        assert!(a.set_execution("q1", first[0].fence, "e1").unwrap());
        std::thread::sleep(short * 2);
        // Its owner never takes its own expired claim over (it still drives it).
        assert!(a.claim("a", 10, short, false).unwrap().is_empty());
        let second = b.claim("b", 10, Duration::from_secs(60), false).unwrap();
        assert_eq!(second.len(), 1, "an expired lease is claimable");
        assert_eq!(second[0].fence, first[0].fence + 1);
        assert_eq!(second[0].execution.as_deref(), Some("e1"), "to recover");
        // The first claimer's heartbeat and end change nothing.
        assert!(a.heartbeat("a", short, &q1).unwrap().is_empty());
        assert!(!a.finish("q1", first[0].fence, 0, "late", "1").unwrap());
        assert!(b.finish("q1", second[0].fence, 0, "done", "2").unwrap());
        let s = a.status("q1").unwrap().unwrap();
        assert_eq!((s.state.as_str(), s.output.as_deref()), ("done", Some("2")));
        assert_eq!(s.lease_owner.as_deref(), Some("b"));
        assert!(
            b.claim("b", 10, short, false).unwrap().is_empty(),
            "done is never claimed"
        );
    }
}
