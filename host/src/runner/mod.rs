//! Drives the scheduler: sends its `Run` commands to a pool of worker threads that execute
//! them in sandboxes, feeds their results back as events, and stops at `Finished`.
//!
//! The pool belongs to the [`Host`] and is shared by every run and every child execution, so
//! however deep executions nest, wasm never runs on more threads than the pool has.

use crate::module::ModuleError;
use crate::sandbox::{self, CallLimits, Sandbox, SandboxConfig};
use crate::scheduler::{
    AttemptFailure, Command, Event, Failure, NodeId, Options, Outcome, RunTask, Scheduler,
    StartError, State, Timing,
};

mod cached;

use cached::{CachedCalls, Lookup};
use rustc_hash::FxHashMap;
use sandflow_contract::{codec, CallResult, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Job {
    task: RunTask,
    /// Everything the attempt shares with its run, behind one reference count: each clone or
    /// drop of an `Arc` the driver also holds moves a cache line between cores.
    run: Arc<RunShared>,
    /// This attempt's stop flag: set, it stops the instance within an epoch tick.
    cancel: Arc<AtomicBool>,
}

/// What a run's driver shares with the workers running its attempts.
///
/// The driver blocks in `park` (a futex, no spinning) when it has no event to read, and a
/// worker wakes it only when it is needed: when the run has few attempts left queued (the
/// workers could soon idle), or when an attempt failed (fail-fast should act at once).
/// Otherwise results pile up in the channel and the driver takes them in one batch later.
/// On two cores a driver that spins or wakes for every result takes CPU from the workers:
/// before this, the driver called `sched_yield` about 7 500 times in one seed run.
struct RunShared {
    driver: std::thread::Thread,
    /// This run's attempts handed to the pool and not yet picked up by a worker.
    queued: AtomicUsize,
    /// Wake the driver when at most this many attempts are queued.
    low_water: usize,
    sandbox: Arc<Sandbox>,
    /// The run's start: attempt timings are microseconds since.
    t0: Instant,
    events: crossbeam_channel::Sender<Event>,
}

impl RunShared {
    fn ended(&self, failed: bool) {
        if failed || self.queued.load(Ordering::Acquire) <= self.low_water {
            self.driver.unpark();
        }
    }
}

/// Worker threads that run sandboxes; sized to the machine by default.
pub struct WorkerPool {
    jobs: Option<crossbeam_channel::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    pub fn new(workers: usize) -> std::io::Result<WorkerPool> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("sandflow-worker-{i}"))
                    .spawn(move || {
                        let mut inputs = Vec::new();
                        while let Ok(job) = rx.recv() {
                            run_job(job, i, &mut inputs);
                            // Keep the buffer for the next job, unless one was very large.
                            if inputs.capacity() > 1 << 20 {
                                inputs = Vec::new();
                            }
                        }
                    })?,
            );
        }
        Ok(WorkerPool {
            jobs: Some(tx),
            threads,
        })
    }

    pub fn size(&self) -> usize {
        self.threads.len()
    }

    fn submit(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(job);
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Runs `job` on worker `worker`, in that worker's lane (engine and instance pool), encoding
/// its inputs into the worker's buffer `inputs`.
fn run_job(job: Job, worker: usize, inputs: &mut Vec<u8>) {
    if job.run.queued.fetch_sub(1, Ordering::AcqRel) == job.run.low_water + 1 {
        // The queue just fell to the low-water mark: let the driver top it up while this
        // attempt runs, with whatever results have piled up.
        job.run.driver.unpark();
    }
    let run = &*job.run;
    let start_us = run.t0.elapsed().as_micros() as u64;
    if job.cancel.load(Ordering::Relaxed) {
        // Aborted while it waited: say so without running it, so the scheduler frees the
        // attempt's place in its execution (the run may go on).
        let _ = run.events.send(Event::Attempted {
            node: job.task.node,
            attempt: job.task.attempt,
            outcome: Outcome::Failed(AttemptFailure::host("aborted before it started")),
            timing: Timing {
                start_us,
                end_us: start_us,
            },
            worker: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        });
        run.ended(true);
        return;
    }
    let limits = CallLimits {
        timeout: job.task.timeout_ms.map(Duration::from_millis),
        max_memory_bytes: job
            .task
            .max_memory_mb
            .map(|mb| (mb as usize).saturating_mul(1 << 20)),
        cancel: Some(job.cancel),
        fuel: job.task.fuel,
    };
    inputs.clear();
    let (outcome, stdout, stderr) = match codec::encode_to(&job.task.inputs, inputs) {
        Ok(()) => {
            let o = run
                .sandbox
                .call_in(worker, job.task.entity as usize, inputs, &limits);
            let outcome = match o.result {
                Ok(r) => Outcome::Returned(r),
                Err(f) => Outcome::Failed(f),
            };
            (outcome, o.stdout, o.stderr)
        }
        Err(e) => (
            Outcome::Failed(AttemptFailure::host(format!(
                "could not encode the inputs: {e}"
            ))),
            Vec::new(),
            Vec::new(),
        ),
    };
    let timing = Timing {
        start_us,
        end_us: run.t0.elapsed().as_micros() as u64,
    };
    let failed = !matches!(outcome, Outcome::Returned(_));
    // The run may have ended (failed elsewhere, or cancelled) and dropped its receiver.
    let _ = run.events.send(Event::Attempted {
        node: job.task.node,
        attempt: job.task.attempt,
        outcome,
        timing,
        // Workers are at most MAX_WORKERS (well below u16::MAX).
        worker: u16::try_from(worker).ok(),
        stdout,
        stderr,
    });
    run.ended(failed);
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A run's driver-side state: how commands reach the pool and which attempts still run.
struct Driver<'a> {
    pool: &'a WorkerPool,
    shared: Arc<RunShared>,
    controls: &'a RunControls,
    /// Each running attempt's own stop flag, so one attempt can be aborted (fail-fast) while
    /// the run goes on; all are set when the run ends.
    running: FxHashMap<NodeId, Arc<AtomicBool>>,
    result: Option<Result<Option<Value>, Failure>>,
    /// Cached tasks' attempts: answered from the cache, or run once for identical calls.
    cached: CachedCalls,
    /// Run cached tasks even when the cache has their result (`Options::overwrite_cache`).
    overwrite_cache: bool,
    /// Launch plan calls the scheduler delegated (`Options::delegate_launch_plans`), handed
    /// to the observer together after each batch of commands.
    to_launch: Vec<RunTask>,
    /// The delegated calls not yet ended.
    delegated: rustc_hash::FxHashSet<NodeId>,
}

impl Driver<'_> {
    /// Feeds `event` to the scheduler, showing it to the run's observer first, and forgetting
    /// the stop flag of the attempt that ended.
    fn feed(
        &mut self,
        sched: &mut Scheduler,
        observer: &mut Option<&mut dyn RunObserver>,
        event: Event,
    ) -> Vec<Command> {
        let mut computed = None;
        if let Event::Attempted { node, outcome, .. } = &event {
            self.running.remove(node);
            self.delegated.remove(node);
            if self.cached.computes(*node) {
                // Identical calls wait for this one: they get its result if the scheduler
                // takes it.
                let result = match outcome {
                    Outcome::Returned(r) if self.cached.has_waiters(*node) => Some(r.clone()),
                    _ => None,
                };
                computed = Some((*node, result));
            }
        }
        if let Some(o) = observer {
            o.event(&event);
        }
        let commands = sched.on_event(event);
        if let Some((node, result)) = computed {
            let taken = matches!(sched.node_state(node), State::Succeeded | State::Expanded);
            let now = self.shared.t0.elapsed().as_micros() as u64;
            self.cached.ended(node, result.filter(|_| taken), now);
        }
        commands
    }

    /// Looks up the cached tasks' attempts the last commands asked for: a hit is answered at
    /// once, an identical call waits, the rest run. Hands the delegated launch plan calls to
    /// the observer (without one, each fails).
    fn look_up(&mut self, sched: &Scheduler, observer: &mut Option<&mut dyn RunObserver>) {
        if !self.to_launch.is_empty() {
            let calls = std::mem::take(&mut self.to_launch);
            let sink = EventSink {
                events: self.shared.events.clone(),
                driver: self.shared.driver.clone(),
                t0: self.shared.t0,
            };
            match observer.as_mut() {
                Some(o) => o.launch(sched, calls, &sink),
                None => calls.into_iter().for_each(|c| {
                    sink.fail(
                        &c,
                        AttemptFailure::host("no launcher for launch plan calls"),
                    )
                }),
            }
        }
        // Looked up together: a store reads a batch in one transaction.
        while !self.cached.to_look_up.is_empty() {
            let tasks = std::mem::take(&mut self.cached.to_look_up);
            let hits = match observer.as_mut() {
                Some(o) if !self.overwrite_cache => {
                    let keys: Vec<[u8; 32]> = tasks.iter().filter_map(|t| t.cache_key).collect();
                    o.cache_get_many(&keys)
                }
                _ => Vec::new(),
            };
            let mut hits = hits.into_iter();
            let now = self.shared.t0.elapsed().as_micros() as u64;
            for task in tasks {
                let hit = hits.next().flatten();
                if let Lookup::Run(task) = self.cached.look_up(task, hit, now) {
                    self.submit(task);
                } else {
                    self.controls.started.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Hands `task` to the worker pool.
    fn submit(&mut self, task: RunTask) {
        self.controls.started.fetch_add(1, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        self.running.insert(task.node, stop.clone());
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        self.pool.submit(Job {
            task,
            run: self.shared.clone(),
            cancel: stop,
        })
    }

    /// Carries out the scheduler's commands: attempts go to the pool, aborts set stop flags.
    fn dispatch(&mut self, commands: Vec<Command>) {
        for c in commands {
            match c {
                Command::Launch(task) => {
                    self.controls.started.fetch_add(1, Ordering::Relaxed);
                    self.delegated.insert(task.node);
                    self.to_launch.push(task)
                }
                Command::Run(task) if task.cache_key.is_some() => self.cached.to_look_up.push(task),
                Command::Run(task) => self.submit(task),
                Command::Abort { node, attempt } => {
                    if let Some(stop) = self.running.get(&node) {
                        stop.store(true, Ordering::Relaxed);
                    } else if self.delegated.remove(&node) {
                        // A child execution elsewhere is not waited for: the call ends now,
                        // and the child's late answer is stale.
                        let _ = self.shared.events.send(Event::Attempted {
                            node,
                            attempt,
                            outcome: Outcome::Failed(AttemptFailure::host(
                                "aborted: its result was no longer wanted",
                            )),
                            timing: Timing::default(),
                            worker: None,
                            stdout: Vec::new(),
                            stderr: Vec::new(),
                        });
                    }
                }
                Command::Finished(r) => self.result = Some(r),
            }
        }
    }
}

/// What watches a run as it goes, on the driver thread: a durable store's recorder, or the
/// event log of [`Host::run_logged`]. What it does here delays the run: it should hand work
/// to a thread of its own rather than do I/O.
pub trait RunObserver {
    /// The run's scheduler, made and not yet started (to turn its journal on, say).
    fn starting(&mut self, _sched: &mut Scheduler) {}
    /// An event, before the scheduler is fed it.
    fn event(&mut self, _event: &Event) {}
    /// After a step: the run's start, or a batch of events.
    fn step(&mut self, _sched: &mut Scheduler) {}
    /// The task cache's result for `key`, if it has one.
    fn cache_get(&mut self, _key: &[u8; 32]) -> Option<CallResult> {
        None
    }
    /// The task cache's results for `keys`, in order.
    fn cache_get_many(&mut self, keys: &[[u8; 32]]) -> Vec<Option<CallResult>> {
        keys.iter().map(|k| self.cache_get(k)).collect()
    }
    /// The run ended with `result`.
    fn finish(&mut self, _sched: &mut Scheduler, _result: &Result<Option<Value>, Failure>) {}
    /// Launch plan calls to run as executions of their own elsewhere
    /// (`Options::delegate_launch_plans`): each call's end goes to `sink`. By default none
    /// is run: each fails.
    fn launch(&mut self, _sched: &Scheduler, calls: Vec<RunTask>, sink: &EventSink) {
        for c in calls {
            sink.fail(
                &c,
                AttemptFailure::host("no launcher for launch plan calls"),
            );
        }
    }
}

/// Where a launcher sends the ends of the launch plan calls it was given, from any thread:
/// into the run's event channel, waking its driver.
#[derive(Clone)]
pub struct EventSink {
    events: crossbeam_channel::Sender<Event>,
    driver: std::thread::Thread,
    t0: Instant,
}

impl EventSink {
    /// Microseconds since the run started: the clock of attempt timings.
    pub fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// Attempt `attempt` of call `node` ended with `outcome`; it was handed over at
    /// `start_us`.
    pub fn ended(&self, node: NodeId, attempt: u32, start_us: u64, outcome: Outcome) {
        let _ = self.events.send(Event::Attempted {
            node,
            attempt,
            outcome,
            timing: Timing {
                start_us,
                end_us: self.now_us(),
            },
            worker: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        });
        self.driver.unpark();
    }

    /// The call `call` could not run.
    pub fn fail(&self, call: &RunTask, failure: AttemptFailure) {
        let now = self.now_us();
        self.ended(call.node, call.attempt, now, Outcome::Failed(failure));
    }
}

/// Keeps every event, in order.
struct EventLog(Vec<Event>);

impl RunObserver for EventLog {
    fn event(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}

/// Shared with a running [`Host::run`]: a way to stop it, and how far it has come.
#[derive(Debug, Default)]
pub struct RunControls {
    /// Set from any thread to cancel the run.
    pub cancel: AtomicBool,
    /// Task executions (attempts) handed to the worker pool so far.
    pub started: AtomicU64,
    /// Task executions that have ended.
    pub ended: AtomicU64,
}

/// How often a waiting driver looks at its cancel flag.
pub const CANCEL_POLL: Duration = Duration::from_millis(20);

/// What a run produced: its result, and the scheduler's final state for the execution tree.
pub struct Report {
    pub result: Result<Option<Value>, Failure>,
    pub scheduler: Scheduler,
    pub elapsed: Duration,
}

/// A worker pool and an engine per worker: load modules and run their entities.
pub struct Host {
    engines: Vec<wasmtime::Engine>,
    config: SandboxConfig,
    pool: WorkerPool,
}

impl Host {
    /// A host with `workers` sandbox threads (0: one per core).
    pub fn new(workers: usize) -> anyhow::Result<Host> {
        let workers = if workers == 0 { cores() } else { workers };
        let config = SandboxConfig {
            // Per engine (one per worker): its worker's running instance, plus slots waiting
            // in wasmtime's decommit batches (one shard per core), plus headroom for describe
            // and for callers of `Sandbox::call` on other threads.
            max_instances: (2 + 8 + cores().min(16) * sandbox::DECOMMIT_BATCH) as u32,
            ..SandboxConfig::default()
        };
        let engines = sandbox::engines(&config, workers)?;
        Ok(Host {
            engines,
            config,
            pool: WorkerPool::new(workers)?,
        })
    }

    /// This host with its compiled modules cached at `location` (by default, where the
    /// environment says).
    pub fn with_module_cache(mut self, location: crate::cache::CacheLocation) -> Host {
        self.config.module_cache = location;
        self
    }

    pub fn workers(&self) -> usize {
        self.pool.size()
    }

    /// The configuration this host's engine was built with, so a benchmark can build a bare
    /// engine exactly like it with [`sandbox::engine`].
    pub fn sandbox_config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Loads, checks and describes the module at `path`.
    pub fn load(&self, path: &Path) -> Result<Arc<Sandbox>, ModuleError> {
        let bytes = std::fs::read(path).map_err(|source| ModuleError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(&bytes, path)
    }

    pub fn load_bytes(&self, bytes: &[u8], origin: &Path) -> Result<Arc<Sandbox>, ModuleError> {
        Sandbox::load(&self.engines, self.config.clone(), bytes, origin).map(Arc::new)
    }

    /// Runs `entity` on `inputs` (interface order) to the end, or until `controls.cancel` is
    /// set (from another thread; it is checked at least every [`CANCEL_POLL`]). `controls`
    /// also counts the run's task executions as they start and end, for a progress display.
    pub fn run(
        &self,
        sandbox: &Arc<Sandbox>,
        entity: &str,
        inputs: Vec<Value>,
        opts: Options,
        controls: Option<Arc<RunControls>>,
    ) -> Result<Report, StartError> {
        self.run_inner(sandbox, entity, inputs, opts, controls, None)
    }

    /// [`Host::run`] with an observer (a durable store's recorder) that sees every event
    /// before the scheduler does, and the scheduler after each step.
    pub fn run_observed(
        &self,
        sandbox: &Arc<Sandbox>,
        entity: &str,
        inputs: Vec<Value>,
        opts: Options,
        controls: Option<Arc<RunControls>>,
        observer: &mut dyn RunObserver,
    ) -> Result<Report, StartError> {
        self.run_inner(sandbox, entity, inputs, opts, controls, Some(observer))
    }

    /// [`Host::run`], also returning every event the scheduler was fed, in order: what a
    /// durable store would keep. Feeding them to a new [`Scheduler`] for the same entity and
    /// inputs rebuilds the same state and result without running anything.
    pub fn run_logged(
        &self,
        sandbox: &Arc<Sandbox>,
        entity: &str,
        inputs: Vec<Value>,
        opts: Options,
    ) -> Result<(Report, Vec<Event>), StartError> {
        let mut log = EventLog(Vec::new());
        let report = self.run_inner(sandbox, entity, inputs, opts, None, Some(&mut log))?;
        Ok((report, log.0))
    }

    fn run_inner(
        &self,
        sandbox: &Arc<Sandbox>,
        entity: &str,
        inputs: Vec<Value>,
        opts: Options,
        controls: Option<Arc<RunControls>>,
        mut observer: Option<&mut dyn RunObserver>,
    ) -> Result<Report, StartError> {
        let t0 = Instant::now();
        let overwrite_cache = opts.overwrite_cache;
        let mut sched = Scheduler::new(sandbox.decl.clone(), entity, inputs, opts)?;
        if let Some(o) = &mut observer {
            o.starting(&mut sched);
        }
        // A plain channel read with `try_recv`; between batches the driver parks on a futex
        // (no spinning: on two cores a spinning driver takes CPU from the workers) instead of
        // waking an async runtime's event loop for each result.
        let (tx, rx) = crossbeam_channel::unbounded::<Event>();
        let shared = Arc::new(RunShared {
            driver: std::thread::current(),
            queued: AtomicUsize::new(0),
            // Enough queued work to keep every worker busy while the driver wakes up.
            low_water: 2 * self.pool.size(),
            sandbox: sandbox.clone(),
            t0,
            events: tx,
        });
        let controls = controls.unwrap_or_default();
        let mut driver = Driver {
            pool: &self.pool,
            shared,
            controls: &controls,
            running: FxHashMap::default(),
            result: None,
            cached: CachedCalls::default(),
            overwrite_cache,
            to_launch: Vec::new(),
            delegated: Default::default(),
        };
        driver.dispatch(sched.start());
        driver.look_up(&sched, &mut observer);
        if let Some(o) = &mut observer {
            o.step(&mut sched);
        }
        let mut cancelled = false;
        loop {
            if let Some(result) = driver.result.take() {
                // Nothing of this run is needed any more: stop what still runs or waits.
                driver
                    .running
                    .values()
                    .for_each(|s| s.store(true, Ordering::Relaxed));
                if let Some(o) = &mut observer {
                    o.finish(&mut sched, &result);
                }
                return Ok(Report {
                    result,
                    scheduler: sched,
                    elapsed: t0.elapsed(),
                });
            }
            if !cancelled && controls.cancel.load(Ordering::Relaxed) {
                cancelled = true;
                let commands = driver.feed(&mut sched, &mut observer, Event::Cancel);
                driver.dispatch(commands);
                driver.look_up(&sched, &mut observer);
                if let Some(o) = &mut observer {
                    o.step(&mut sched);
                }
                continue;
            }
            // Take whatever has arrived, handing each result's follow-up work to the pool at
            // once (a batch of results is not held back until all are read). With nothing
            // there, sleep until a worker says the run needs its driver (see `RunShared`), or
            // at most CANCEL_POLL.
            let mut ended = 0;
            // Answers from the cache first (they need no worker), then the workers' results.
            while let Some(ev) = driver
                .cached
                .answers
                .pop_front()
                .or_else(|| rx.try_recv().ok())
            {
                ended += 1;
                let commands = driver.feed(&mut sched, &mut observer, ev);
                driver.dispatch(commands);
                // Cached attempts are looked up together once the cache's answers queued so
                // far are fed (each answer frees one place, so looking up after each one
                // was a read transaction per key: 10 000 of them for a fully cached map).
                if driver.cached.answers.is_empty() {
                    driver.look_up(&sched, &mut observer);
                }
                // A cancel is acted on between two events, not after a whole batch: a batch
                // can hold thousands of results, and one of them a large graph to compile.
                if driver.result.is_some()
                    || (!cancelled && controls.cancel.load(Ordering::Relaxed))
                {
                    break;
                }
            }
            controls.ended.fetch_add(ended, Ordering::Relaxed);
            if ended == 0 {
                std::thread::park_timeout(CANCEL_POLL);
            } else if let Some(o) = &mut observer {
                o.step(&mut sched);
            }
        }
    }

    /// [`Host::run`] without controls.
    pub fn run_blocking(
        &self,
        sandbox: &Arc<Sandbox>,
        entity: &str,
        inputs: Vec<Value>,
        opts: Options,
    ) -> Result<Report, StartError> {
        self.run(sandbox, entity, inputs, opts, None)
    }
}
