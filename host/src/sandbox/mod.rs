//! The wasm executor: one wasmtime [`Engine`] per worker, one compiled module per guest and
//! engine, and a fresh store + instance (from an [`wasmtime::InstancePre`] and the pooling
//! allocator) per task execution. WASI preview 1 with no preopened directories, no
//! environment, no arguments and no network; stdout and stderr are captured per call.
//!
//! - engine: [`engines`], their limits ([`SandboxConfig`]) and the epoch ticker;
//! - [`describe()`]: compile, check and describe a module (its entities; the module model is
//!   built from them outside the executor, in [`crate::load`]);
//! - lane: one engine's copy of a module (instantiate, call, read);
//! - trap: why a call failed, in words; poll: a `poll_oneoff` that honours deadlines.

mod describe;
mod engine;
mod lane;
mod logs;
mod poll;
mod trap;

pub use describe::{describe, Described, Lanes};
pub use engine::{engine, engines, SandboxConfig, DECOMMIT_BATCH, EPOCH_TICK};
pub use logs::LogPipe;
// One type carries an attempt's failure from the sandbox to the scheduler (and its log).
pub use crate::scheduler::AttemptFailure;

use crate::module::ModuleDecl;
use lane::Lane;
use sandflow_contract::CallResult;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::WasiCtxBuilder;

/// A guest module, compiled and checked, ready to instantiate many times: one lane per engine
/// of its host, so each worker thread instantiates from a pool of its own.
pub struct Sandbox {
    lanes: Vec<Lane>,
    /// The module model its entities make, as the caller built it (see [`crate::load`]).
    pub decl: Arc<ModuleDecl>,
}

impl Sandbox {
    /// Binds `lanes` (from [`describe()`]) to `decl`, the module model built from the entities
    /// they described: each lane finds every entity's call export once, so calls name their
    /// entity by its index in `decl`.
    pub fn new(lanes: Lanes, decl: Arc<ModuleDecl>) -> Sandbox {
        let Lanes(mut lanes, calls) = lanes;
        for lane in &mut lanes {
            lane.bind(&decl.entities, &calls);
        }
        Sandbox { lanes, decl }
    }

    /// The engine of the first lane (the one [`Sandbox::call`] uses).
    pub fn engine(&self) -> &Engine {
        &self.lanes[0].engine
    }

    /// Runs entity `entity` (a task or dynamic, by name) on `inputs` (encoded `Vec<Value>`)
    /// in a fresh instance, in the first lane. The host's workers use [`Sandbox::call_in`].
    pub fn call(&self, entity: &str, inputs: &[u8], limits: &CallLimits) -> CallOutcome {
        match self.decl.index(entity) {
            Some(index) => self.call_in(0, index, inputs, limits),
            None => CallOutcome {
                result: Err(AttemptFailure::host(format!(
                    "the module has no call export for `{entity}`"
                ))),
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
        }
    }

    /// Runs entity `entity` (its index in [`Sandbox::decl`]) on `inputs` in a fresh instance
    /// of lane `lane` (modulo the lanes there are): the host's worker `i` calls in lane `i`,
    /// so workers never share a pool.
    pub fn call_in(
        &self,
        lane: usize,
        entity: usize,
        inputs: &[u8],
        limits: &CallLimits,
    ) -> CallOutcome {
        let Some(e) = self.decl.entities.get(entity) else {
            return CallOutcome {
                result: Err(AttemptFailure::host(format!(
                    "the module has no entity #{entity} (it has {})",
                    self.decl.entities.len()
                ))),
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
        };
        self.lanes[lane % self.lanes.len()].call(entity, &e.name, inputs, limits)
    }
}

/// What one call produced: the guest's answer or why there is none, plus its logs.
pub struct CallOutcome {
    pub result: Result<CallResult, AttemptFailure>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why the host stopped an instance.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Timeout,
    Cancelled,
}

/// Limits of one call; `None` takes the sandbox's defaults.
#[derive(Clone, Debug, Default)]
pub struct CallLimits {
    pub timeout: Option<Duration>,
    /// Capped by the engine-wide [`SandboxConfig::max_memory_bytes`].
    pub max_memory_bytes: Option<usize>,
    /// Set to stop the call within one epoch tick (the run was cancelled).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Wasm fuel the call may burn; `None` is unlimited.
    pub fuel: Option<u64>,
}

/// A call's captured stdout and stderr.
type Logs = (LogPipe, LogPipe);

pub(crate) struct Ctx {
    /// Built on the guest's first WASI call: a task that computes and returns makes none,
    /// and building one (its streams, table and seeded RNGs) is a tenth of a fresh instance.
    wasi: Option<WasiP1Ctx>,
    /// Bytes kept per stream of what the guest writes.
    log_limit: usize,
    /// Where that context sends the guest's stdout and stderr, made with it.
    logs: Option<Logs>,
    max_memory: usize,
    /// The size the guest tried to grow its memory to, past `max_memory`.
    memory_exceeded: Option<usize>,
    deadline: Instant,
    timeout: Duration,
    cancel: Option<Arc<AtomicBool>>,
    stopped: Option<Stop>,
    /// The attempt's fuel budget, for the message when it runs out.
    fuel: Option<u64>,
}

impl Ctx {
    /// Whether the attempt must stop at `now`: its run was cancelled, or its deadline has
    /// passed. The reason is kept in `stopped`, for the failure's message. The one check of
    /// both the epoch callback (guest code running) and `poll_oneoff` (guest asleep).
    fn stop_due(&mut self, now: Instant) -> Option<Stop> {
        let stop = if self
            .cancel
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            Stop::Cancelled
        } else if now >= self.deadline {
            Stop::Timeout
        } else {
            return None;
        };
        self.stopped = Some(stop);
        Some(stop)
    }

    fn wasi(&mut self) -> &mut WasiP1Ctx {
        let (limit, logs) = (self.log_limit, &mut self.logs);
        self.wasi.get_or_insert_with(|| {
            let (stdout, stderr) = (LogPipe::new(limit), LogPipe::new(limit));
            *logs = Some((stdout.clone(), stderr.clone()));
            WasiCtxBuilder::new()
                .stdout(stdout)
                .stderr(stderr)
                .build_p1()
        })
    }
}

impl ResourceLimiter for Ctx {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.memory_exceeded = Some(desired);
            wasmtime::bail!("memory limit exceeded");
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            wasmtime::bail!("table grew past {MAX_TABLE_ELEMENTS} elements");
        }
        Ok(true)
    }
}

/// Table elements an instance may have (function pointers; Rust guests use a few hundred).
const MAX_TABLE_ELEMENTS: usize = 20_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(deadline: Instant, cancel: bool) -> Ctx {
        Ctx {
            wasi: None,
            log_limit: 0,
            logs: None,
            max_memory: 0,
            memory_exceeded: None,
            deadline,
            timeout: Duration::from_secs(1),
            cancel: Some(Arc::new(AtomicBool::new(cancel))),
            stopped: None,
            fuel: None,
        }
    }

    #[test]
    fn an_attempt_stops_when_cancelled_or_past_its_deadline_and_says_which() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut running = ctx(later, false);
        assert!(running.stop_due(now).is_none());
        assert!(running.stopped.is_none());

        let mut late = ctx(now, false);
        assert!(matches!(late.stop_due(now), Some(Stop::Timeout)));
        assert!(matches!(late.stopped, Some(Stop::Timeout)));

        // A cancel is reported as such even once the deadline has passed too.
        let mut cancelled = ctx(now, true);
        assert!(matches!(cancelled.stop_due(later), Some(Stop::Cancelled)));
        assert!(matches!(cancelled.stopped, Some(Stop::Cancelled)));
    }
}
