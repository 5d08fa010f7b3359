//! Child executions on other workers (issue 15): the launch plan calls of an execution that a
//! `sandflow worker` drives are delegated through the queue, and any worker drives them.
//!
//! The caller's side is [`Delegating`], the observer of a run that a worker started (its
//! claim in [`CLAIM_ENV`]): the scheduler hands it each launch plan call of the top execution
//! (`Options::delegate_launch_plans`) instead of expanding it; it enqueues them, many calls a
//! row, and a waiter thread feeds each call's end back to the run when its row is done.
//!
//! The worker's side is [`drive_children`]: a worker that claims such a row runs its calls in
//! its own process, each as a child execution recorded under the caller's execution and
//! placed at the call's node (`Options::placed`), so its nodes have the paths and stable
//! keys they would have had expanded in the caller. Child execution ids are derived from the
//! caller, the call's key and the row's fence: a worker that takes over a dead one's row
//! finds what it recorded, takes the output of each child that succeeded and recovers the
//! rest, so no task that finished runs again.
//!
//! The unit of a claim is a row of up to [`ROW_CALLS`] calls rather than one call: a call of
//! the seed's `core_wf_lp` is two microsecond tasks, not worth a database round trip of its
//! own, and the calls of one step (a dynamic's graph) are made together.

use anyhow::{bail, Context};
use sandflow_contract::{CallResult, Value};
use sandflow_host::module::ModuleDecl;
use sandflow_host::record::{ChildOf, Recorder};
use sandflow_host::runner::{EventSink, Host, RunControls, RunObserver};
use sandflow_host::sandbox::Sandbox;
use sandflow_host::scheduler::{
    AttemptFailure, Event, Failure, NodeId, Options, Outcome, Placement, Recovered, RunTask,
    Scheduler, TaskOverrides,
};
use sandflow_host::store::queue::{ChildBatch, ChildCall, ChildEnd, ChildOptions, Claim, Queue};
use sandflow_host::store::{
    ExecStatus, ExecutionId, PgStore, Store, StoreError, StoreRead, StoreWrite,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Set by a worker for the run it starts: `<queue id>:<fence>` of its claim.
pub const CLAIM_ENV: &str = "SANDFLOW_QUEUE_CLAIM";

/// Calls in one row at most.
pub const ROW_CALLS: usize = 500;

/// How often the waiter looks at the rows when no notification came.
const POLL: Duration = Duration::from_millis(250);

/// The claim of the run this process is, from [`CLAIM_ENV`]; `None` outside a worker.
pub fn claim_from_env() -> Option<(String, i64)> {
    let v = std::env::var(CLAIM_ENV).ok()?;
    let (id, fence) = v.rsplit_once(':')?;
    Some((id.to_string(), fence.parse().ok()?))
}

/// A pending call: its key, node, attempt and when it was handed over.
type Waiting = Vec<(u64, NodeId, u32, u64)>;

/// The observer of a run whose launch plan calls go to other workers: the store's recorder,
/// and the delegation.
pub struct Delegating<'a> {
    pub recorder: &'a mut Recorder,
    queue: Queue,
    store: PgStore,
    claim: String,
    fence: i64,
    module: String,
    /// What the child executions take from this run's options.
    options: ChildOptions,
    /// Rows enqueued by earlier claimers of this execution (key -> row), read once.
    earlier: Option<HashMap<u64, String>>,
    pending: Arc<Mutex<HashMap<String, Waiting>>>,
    stop: Arc<AtomicBool>,
    waiter: Option<std::thread::JoinHandle<()>>,
    submitter: Option<std::sync::mpsc::Sender<Calls>>,
}

/// A row to enqueue: its id, the launch plan's name, its calls.
type Row = (String, String, ChildBatch);

/// Calls of one launch plan (by name) to enqueue, each with its node, attempt and when it was
/// handed over.
type Calls = (String, Vec<(ChildCall, NodeId, u32, u64)>);

impl<'a> Delegating<'a> {
    /// Delegation for the run `recorder` records, of the module stored as `module`.
    pub fn new(
        recorder: &'a mut Recorder,
        store: PgStore,
        (claim, fence): (String, i64),
        module: String,
        opts: &Options,
    ) -> anyhow::Result<Delegating<'a>> {
        let queue = store.queue()?;
        let o = &opts.overrides;
        Ok(Delegating {
            recorder,
            queue,
            store,
            claim,
            fence,
            module,
            options: ChildOptions {
                retries: o.retries,
                timeout_ms: o.timeout_ms,
                max_memory_mb: o.max_memory_mb,
                fuel: o.fuel,
                max_run_memory_bytes: opts.max_run_memory_bytes,
                max_log_bytes: opts.max_log_bytes,
                overwrite_cache: opts.overwrite_cache,
            },
            earlier: None,
            pending: Arc::default(),
            stop: Arc::default(),
            waiter: None,
            submitter: None,
        })
    }

    fn enqueue(
        &mut self,
        sched: &Scheduler,
        calls: &[RunTask],
        sink: &EventSink,
    ) -> anyhow::Result<()> {
        if self.earlier.is_none() {
            // A claim taken over: the calls its earlier claimer delegated are waited for
            // where they are, not made again.
            let mut earlier = HashMap::new();
            for row in self.queue.children(&self.claim, None)? {
                // A row that ended without its results (its worker failed) gives nothing to
                // wait for: its calls are made again.
                if row.ended.as_ref().is_some_and(|(ends, ..)| ends.is_empty()) {
                    continue;
                }
                for k in &row.keys {
                    earlier.insert(*k as u64, row.id.clone());
                }
            }
            self.earlier = Some(earlier);
        }
        let now = sink.now_us();
        let parent = self.recorder.execution().to_string();
        let root = self.recorder.tree_root().to_string();
        let mut fresh: HashMap<u32, Vec<(ChildCall, NodeId, u32)>> = HashMap::new();
        {
            let mut pending = lock(&self.pending);
            for c in calls {
                let key = sched.node_key(c.node);
                if let Some(row) = self.earlier.as_ref().and_then(|e| e.get(&key)) {
                    pending
                        .entry(row.clone())
                        .or_default()
                        .push((key, c.node, c.attempt, now));
                    continue;
                }
                fresh.entry(c.entity).or_default().push((
                    ChildCall {
                        key,
                        path: sched.path(c.node),
                        inputs: c.inputs.clone(),
                    },
                    c.node,
                    c.attempt,
                ));
            }
        }
        if self.waiter.is_none() {
            self.waiter = Some(spawn_waiter(
                self.store.queue()?,
                self.claim.clone(),
                self.pending.clone(),
                self.stop.clone(),
                sink.clone(),
            )?);
        }
        if self.submitter.is_none() {
            self.submitter = Some(spawn_submitter(
                self.store.queue()?,
                (self.claim.clone(), self.fence),
                self.module.clone(),
                (parent, root, self.options.clone()),
                self.pending.clone(),
                sink.clone(),
            )?);
        }
        // Made into rows and enqueued by a thread of its own: the driver never waits for a
        // commit, and the calls of the steps taken while one commits go together. (The
        // caller's execution was committed before its run started: a worker can record
        // children of it at once.)
        if let Some(tx) = &self.submitter {
            for (entity, list) in fresh {
                let name = sched.decl().entities[entity as usize].name.clone();
                let calls = list
                    .into_iter()
                    .map(|(c, node, attempt)| (c, node, attempt, now))
                    .collect();
                let _ = tx.send((name, calls));
            }
        }
        Ok(())
    }
}

impl RunObserver for Delegating<'_> {
    fn starting(&mut self, sched: &mut Scheduler) {
        self.recorder.starting(sched)
    }
    fn event(&mut self, event: &Event) {
        self.recorder.event(event)
    }
    fn step(&mut self, sched: &mut Scheduler) {
        self.recorder.step(sched)
    }
    fn cache_get(&mut self, key: &[u8; 32]) -> Option<CallResult> {
        self.recorder.cache_get(key)
    }
    fn cache_get_many(&mut self, keys: &[[u8; 32]]) -> Vec<Option<CallResult>> {
        self.recorder.cache_get_many(keys)
    }
    fn finish(&mut self, sched: &mut Scheduler, result: &Result<Option<Value>, Failure>) {
        self.stop.store(true, Ordering::Relaxed);
        // Rows nobody claimed yet are not wanted any more (a failure or cancel ended the run
        // first), and the child executions being driven are cancelled.
        if result.is_err() {
            let _ = self.queue.drop_unclaimed_children(&self.claim);
            // Those being driven are stopped: their workers cancel them at their next
            // heartbeat (lease/3).
            let _ = self.queue.cancel_claimed_children(&self.claim);
        }
        self.recorder.finish(sched, result)
    }
    fn launch(&mut self, sched: &Scheduler, calls: Vec<RunTask>, sink: &EventSink) {
        if let Err(e) = self.enqueue(sched, &calls, sink) {
            let m = format!("delegating the launch plan call to a worker: {e:#}");
            for c in &calls {
                lock(&self.pending).retain(|_, w| {
                    w.retain(|(_, n, ..)| *n != c.node);
                    !w.is_empty()
                });
                sink.fail(c, AttemptFailure::host(m.clone()));
            }
        }
    }
}

/// Makes the calls it is sent into rows of at most [`ROW_CALLS`] calls of one launch plan, all
/// that have come while it committed the last ones, and enqueues them in one transaction; a
/// row that cannot be enqueued fails its calls.
fn spawn_submitter(
    mut queue: Queue,
    (claim, fence): (String, i64),
    module: String,
    (parent, root, options): (String, String, ChildOptions),
    pending: Arc<Mutex<HashMap<String, Waiting>>>,
    sink: EventSink,
) -> std::io::Result<std::sync::mpsc::Sender<Calls>> {
    let (tx, rx) = std::sync::mpsc::channel::<Calls>();
    std::thread::Builder::new()
        .name("sandflow-delegate".into())
        .spawn(move || {
            let mut made = 0u64;
            while let Ok(first) = rx.recv() {
                let mut by_entity: Vec<Calls> = vec![first];
                while let Ok((name, calls)) = rx.try_recv() {
                    match by_entity.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, list)) => list.extend(calls),
                        None => by_entity.push((name, calls)),
                    }
                }
                let mut rows: Vec<Row> = Vec::new();
                for (name, list) in by_entity {
                    for chunk in list.chunks(ROW_CALLS) {
                        made += 1;
                        let id = format!("{claim}.{fence}.{made}");
                        let waiting: Waiting = chunk
                            .iter()
                            .map(|(c, node, attempt, start)| (c.key, *node, *attempt, *start))
                            .collect();
                        lock(&pending).insert(id.clone(), waiting);
                        rows.push((
                            id,
                            name.clone(),
                            ChildBatch {
                                parent_execution: parent.clone(),
                                root: root.clone(),
                                calls: chunk.iter().map(|(c, ..)| c.clone()).collect(),
                                options: options.clone(),
                            },
                        ));
                    }
                }
                // A lost connection is connected again inside, and the insert repeated (it
                // is idempotent).
                let failed = queue
                    .submit_children(&claim, &module, &rows)
                    .err()
                    .map(|e| e.to_string());
                if let Some(e) = failed {
                    let m = format!("delegating the launch plan call to a worker: {e}");
                    for (id, ..) in &rows {
                        let Some(waiting) = lock(&pending).remove(id) else {
                            continue;
                        };
                        for (_, node, attempt, _) in waiting {
                            let now = sink.now_us();
                            let f = Outcome::Failed(AttemptFailure::host(m.clone()));
                            sink.ended(node, attempt, now, f);
                        }
                    }
                }
            }
        })?;
    Ok(tx)
}

/// Waits for the rows in `pending` to be done and feeds each call's end to the run.
fn spawn_waiter(
    mut queue: Queue,
    claim: String,
    pending: Arc<Mutex<HashMap<String, Waiting>>>,
    stop: Arc<AtomicBool>,
    sink: EventSink,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sandflow-children".into())
        .spawn(move || {
            // Without it, the poll below still finds each end.
            let _ = queue.listen_done();
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<String> = lock(&pending).keys().cloned().collect();
                if !ids.is_empty() {
                    match queue.children(&claim, Some(&ids)) {
                        Ok(rows) => {
                            for row in rows {
                                let Some((ends, code, summary)) = row.ended else {
                                    continue;
                                };
                                let Some(waiting) = lock(&pending).remove(&row.id) else {
                                    continue;
                                };
                                deliver(&sink, &row.id, waiting, ends, code, &summary);
                            }
                        }
                        // The queue connects again (and listens again) on its next call.
                        Err(e) => {
                            eprintln!("sandflow: waiting for child executions: {e}; trying again");
                            std::thread::sleep(POLL);
                            continue;
                        }
                    }
                }
                // A notification wakes it at once; polling is the fallback (a lost connection
                // is connected again, and listened on again, by the next read).
                if queue.wait(POLL).is_err() {
                    std::thread::sleep(POLL);
                }
            }
        })
}

/// The ends of row `row`'s calls, to the run.
fn deliver(
    sink: &EventSink,
    row: &str,
    waiting: Waiting,
    ends: Vec<ChildEnd>,
    code: i32,
    summary: &str,
) {
    let by_key: HashMap<u64, &ChildEnd> = ends.iter().map(|e| (e.key, e)).collect();
    for (key, node, attempt, start) in waiting {
        let outcome = match by_key.get(&key) {
            Some(ChildEnd {
                result: Ok(v), ..
            }) => Outcome::Returned(CallResult::Output(v.clone())),
            Some(ChildEnd {
                execution,
                result: Err((user, m)),
                ..
            }) => Outcome::Failed(AttemptFailure {
                user: *user,
                message: format!("child execution {execution} failed: {m}"),
                backtrace: None,
            }),
            None => Outcome::Failed(AttemptFailure::host(format!(
                "the worker that claimed {row} ended without its result (exit code {code}): {summary}"
            ))),
        };
        sink.ended(node, attempt, start, outcome);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a worker keeps to drive rows of calls in its own process: one host, and each module
/// loaded once.
pub struct ChildHost {
    host: Host,
    modules: Mutex<HashMap<String, Arc<Sandbox>>>,
}

impl ChildHost {
    pub fn new() -> anyhow::Result<ChildHost> {
        Ok(ChildHost {
            host: super::run::start_host(0)?,
            modules: Mutex::default(),
        })
    }

    fn sandbox(&self, store: &PgStore, digest: &str) -> anyhow::Result<Arc<Sandbox>> {
        if let Some(s) = lock(&self.modules).get(digest) {
            return Ok(s.clone());
        }
        let bytes = store
            .module(digest)
            .with_context(|| format!("module {digest} is not in the store"))?;
        let origin = std::path::PathBuf::from(format!("{digest}.wasm"));
        let s = self.host.load_bytes(&bytes, &origin)?;
        lock(&self.modules).insert(digest.to_string(), s.clone());
        Ok(s)
    }
}

/// Runs the calls of claimed row `claim` (each a child execution, several at once); the
/// summary line and their ends, for the row. `controls` cancels them all.
pub fn drive_children(
    host: &ChildHost,
    store: &Arc<sandflow_host::store::AnyStore>,
    claim: &Claim,
    controls: Arc<RunControls>,
) -> anyhow::Result<(String, Vec<ChildEnd>)> {
    let sandflow_host::store::AnyStore::Postgres(pg) = &**store else {
        bail!("not a PostgreSQL store");
    };
    let mut queue = pg.take_queue()?;
    let Some(batch) = queue.child_batch(&claim.id, claim.fence)? else {
        bail!("the claim of {} was lost before it started", claim.id);
    };
    let sandbox = host.sandbox(pg, &claim.module)?;
    let decl: Arc<ModuleDecl> = sandbox.decl.clone();
    let entity = decl
        .find(&claim.entity)
        .map_err(|e| anyhow::anyhow!("{}: {e}", claim.id))?
        .name
        .clone();
    let parent = ExecutionId::from_string(batch.parent_execution.clone());
    let root = ExecutionId::from_string(batch.root.clone());
    let fence = u32::try_from(claim.fence).unwrap_or(u32::MAX);
    // A row taken over: what the earlier claimers recorded of each call.
    let mut earlier: HashMap<u64, (ExecutionId, ExecStatus, Option<Value>)> = HashMap::new();
    for call in &batch.calls {
        for f in (1..fence).rev() {
            let id = ExecutionId::derived(&parent, call.key, f);
            match store.execution_uncounted(id.as_str()) {
                Ok(e) if e.summary.id == id => {
                    earlier.insert(call.key, (id, e.summary.status, e.output));
                    break;
                }
                Ok(_) | Err(StoreError::UnknownExecution { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let unfinished: Vec<String> = earlier
        .values()
        .filter(|(_, s, _)| *s != ExecStatus::Succeeded)
        .map(|(id, ..)| id.to_string())
        .collect();
    let recovered = match unfinished.first() {
        Some(one) => {
            queue.interrupt_executions(&unfinished)?;
            let id = ExecutionId::from_string(one.clone());
            Some(Arc::new(store.recovered(&id)?))
        }
        None => None,
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    let next = AtomicUsize::new(0);
    let ends: Mutex<Vec<ChildEnd>> = Mutex::new(Vec::with_capacity(batch.calls.len()));
    let drivers = batch.calls.len().min(16);
    std::thread::scope(|s| {
        for _ in 0..drivers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(call) = batch.calls.get(i) else {
                    break;
                };
                let end = match earlier.get(&call.key) {
                    Some((id, ExecStatus::Succeeded, output)) => ChildEnd {
                        key: call.key,
                        execution: id.to_string(),
                        result: Ok(output.clone()),
                    },
                    previous => {
                        let at = ChildOf {
                            id: ExecutionId::derived(&parent, call.key, fence),
                            parent: parent.clone(),
                            root: root.clone(),
                            module: claim.module.clone(),
                        };
                        run_call(
                            host,
                            &sandbox,
                            dyn_store.clone(),
                            at,
                            &entity,
                            call,
                            previous.map(|(id, ..)| id.clone()),
                            recovered.clone(),
                            controls.clone(),
                            &batch.options,
                        )
                    }
                };
                lock(&ends).push(end);
            });
        }
    });
    pg.give_back(queue);
    let ends = ends.into_inner().unwrap_or_else(|e| e.into_inner());
    // Every child execution is committed before its end is given to the caller.
    store.flush()?;
    let failed = ends.iter().filter(|e| e.result.is_err()).count();
    let summary = format!(
        "{} child executions of {entity} ({failed} failed)",
        ends.len()
    );
    Ok((summary, ends))
}

/// Runs one delegated call as a child execution; how it ended.
#[allow(clippy::too_many_arguments)]
fn run_call(
    host: &ChildHost,
    sandbox: &Arc<Sandbox>,
    store: Arc<dyn Store>,
    at: ChildOf,
    entity: &str,
    call: &ChildCall,
    recovered_from: Option<ExecutionId>,
    recovered: Option<Arc<Recovered>>,
    controls: Arc<RunControls>,
    options: &ChildOptions,
) -> ChildEnd {
    let id = at.id.clone();
    let mut recorder =
        Recorder::start_child(store, at, entity, &call.inputs, recovered_from.clone());
    let opts = Options {
        placed: Some(Placement {
            path: call.path.clone(),
            key: call.key,
        }),
        recovered: recovered_from.and(recovered),
        overrides: TaskOverrides {
            retries: options.retries,
            timeout_ms: options.timeout_ms,
            max_memory_mb: options.max_memory_mb,
            fuel: options.fuel,
        },
        max_run_memory_bytes: options.max_run_memory_bytes,
        max_log_bytes: options.max_log_bytes,
        overwrite_cache: options.overwrite_cache,
        ..Options::default()
    };
    let report = host.host.run_observed(
        sandbox,
        entity,
        call.inputs.clone(),
        opts,
        Some(controls),
        &mut recorder,
    );
    let result = match report {
        Ok(r) => r.result.map_err(|f| (f.user, f.to_string())),
        Err(e) => Err((true, e.to_string())),
    };
    ChildEnd {
        key: call.key,
        execution: id.to_string(),
        result,
    }
}
