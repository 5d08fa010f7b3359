//! Drives the scheduler: sends its `Run` commands to a pool of worker threads that execute
//! them in sandboxes, feeds their results back as events, and stops at `Finished`.
//!
//! The pool belongs to the [`Host`] and is shared by every run and every child execution, so
//! however deep executions nest, wasm never runs on more threads than the pool has.

use crate::module::ModuleError;
use crate::sandbox::{self, CallLimits, Sandbox, SandboxConfig};
use crate::scheduler::{
    Command, Event, Failure, Options, Outcome, RunTask, Scheduler, StartError, Timing,
};
use sandflow_contract::{codec, Value};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

struct Job {
    sandbox: Arc<Sandbox>,
    task: RunTask,
    t0: Instant,
    events: UnboundedSender<Event>,
    /// The run's cancel flag: set, it stops this job's instance within an epoch tick.
    cancel: Arc<AtomicBool>,
}

/// Worker threads that run sandboxes; sized to the machine by default.
pub struct WorkerPool {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    pub fn new(workers: usize) -> std::io::Result<WorkerPool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("sandflow-worker-{i}"))
                    .spawn(move || loop {
                        // A poisoned lock only means another worker panicked while holding it, which
                        // `recv` cannot do; keep going with the receiver either way.
                        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        };
                        run_job(job);
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

fn run_job(job: Job) {
    if job.cancel.load(Ordering::Relaxed) {
        return;
    }
    let start_us = job.t0.elapsed().as_micros() as u64;
    let entity = &job.sandbox.decl.entities[job.task.entity as usize].name;
    let limits = CallLimits {
        timeout: job.task.timeout_ms.map(Duration::from_millis),
        max_memory_bytes: job
            .task
            .max_memory_mb
            .map(|mb| (mb as usize).saturating_mul(1 << 20)),
        cancel: Some(job.cancel.clone()),
    };
    let (outcome, stdout, stderr) = match codec::encode(&job.task.inputs) {
        Ok(bytes) => {
            let o = job.sandbox.call(entity, &bytes, &limits);
            let outcome = match o.result {
                Ok(r) => Outcome::Returned(r),
                Err(f) => Outcome::Failed {
                    user: f.user,
                    message: f.message,
                    backtrace: f.backtrace,
                },
            };
            (outcome, o.stdout, o.stderr)
        }
        Err(e) => (
            Outcome::Failed {
                user: false,
                message: format!("could not encode the inputs: {e}"),
                backtrace: None,
            },
            Vec::new(),
            Vec::new(),
        ),
    };
    let timing = Timing {
        start_us,
        end_us: job.t0.elapsed().as_micros() as u64,
    };
    // The run may have ended (failed elsewhere, or cancelled) and dropped its receiver.
    let _ = job.events.send(Event::Attempted {
        node: job.task.node,
        attempt: job.task.attempt,
        outcome,
        timing,
        stdout,
        stderr,
    });
}

/// What a run produced: its result, and the scheduler's final state for the execution tree.
pub struct Report {
    pub result: Result<Option<Value>, Failure>,
    pub scheduler: Scheduler,
    pub elapsed: Duration,
}

/// One engine, one worker pool: load modules and run their entities.
pub struct Host {
    engine: wasmtime::Engine,
    config: SandboxConfig,
    pool: WorkerPool,
}

impl Host {
    /// A host with `workers` sandbox threads (0: one per core).
    pub fn new(workers: usize) -> anyhow::Result<Host> {
        let workers = if workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            workers
        };
        let config = SandboxConfig {
            max_instances: (workers as u32) * 2 + 8,
            ..SandboxConfig::default()
        };
        let engine = sandbox::engine(&config)?;
        Ok(Host {
            engine,
            config,
            pool: WorkerPool::new(workers)?,
        })
    }

    pub fn workers(&self) -> usize {
        self.pool.size()
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
        Sandbox::load(&self.engine, self.config.clone(), bytes, origin).map(Arc::new)
    }

    /// Runs `entity` on `inputs` (interface order) to the end, or until `cancel` resolves.
    pub async fn run(
        &self,
        sandbox: &Arc<Sandbox>,
        entity: &str,
        inputs: Vec<Value>,
        opts: Options,
        cancel: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    ) -> Result<Report, StartError> {
        let t0 = Instant::now();
        let mut sched = Scheduler::new(sandbox.decl.clone(), entity, inputs, opts)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut cancel = cancel.unwrap_or_else(|| Box::pin(std::future::pending()));
        let mut commands = sched.start();
        let mut cancelled = false;
        let stop = Arc::new(AtomicBool::new(false));
        loop {
            let mut result = None;
            for c in commands.drain(..) {
                match c {
                    Command::Run(task) => self.pool.submit(Job {
                        sandbox: sandbox.clone(),
                        task,
                        t0,
                        events: tx.clone(),
                        cancel: stop.clone(),
                    }),
                    Command::Finished(r) => result = Some(r),
                }
            }
            if let Some(result) = result {
                // Nothing of this run is needed any more: stop what still runs or waits.
                stop.store(true, Ordering::Relaxed);
                return Ok(Report {
                    result,
                    scheduler: sched,
                    elapsed: t0.elapsed(),
                });
            }
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { unreachable!("the driver holds a sender") };
                    commands = sched.on_event(ev);
                    // Take whatever else has arrived in one go.
                    while let Ok(ev) = rx.try_recv() {
                        commands.extend(sched.on_event(ev));
                    }
                }
                _ = &mut cancel, if !cancelled => {
                    cancelled = true;
                    commands = sched.on_event(Event::Cancel);
                }
            }
        }
    }

    /// [`Host::run`] on a runtime of its own, for callers that are not async.
    pub fn run_blocking(
        &self,
        sandbox: &Arc<Sandbox>,
        entity: &str,
        inputs: Vec<Value>,
        opts: Options,
    ) -> Result<Report, StartError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        rt.block_on(self.run(sandbox, entity, inputs, opts, None))
    }
}
