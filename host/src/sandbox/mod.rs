//! The wasm executor: one wasmtime [`Engine`] per process, one compiled module per guest, and a
//! fresh store + instance (from an [`InstancePre`] and the pooling allocator) per task
//! execution. WASI preview 1 with no preopened directories, no environment, no arguments and
//! no network; stdout and stderr are captured per call.

mod logs;
mod poll;

pub use logs::LogPipe;

use crate::cache;
use crate::module::{ModuleDecl, ModuleError};
use rustc_hash::FxHashMap;
use sandflow_contract::{abi, codec, CallResult, EntityDecl};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, ModuleExport,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline, WasmBacktrace,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::WasiCtxBuilder;

/// How often the epoch ticker advances; the granularity of timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits applied to every instance of one engine.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Instances that may be alive at once (the worker pool's size plus headroom).
    pub max_instances: u32,
    /// Largest linear memory a guest may grow to.
    pub max_memory_bytes: usize,
    /// Captured stdout and stderr, each, per call.
    pub max_log_bytes: usize,
    /// Wall-clock limit of one call when the task declares none.
    pub default_timeout: Duration,
    /// Largest result a call may return (encoded).
    pub max_output_bytes: usize,
    /// Host memory all of a module's declarations may take once decoded, estimated as the
    /// contract's decode charges it: workflow graphs are small encoded and large decoded, and
    /// compiling them takes about as much again.
    pub max_declaration_bytes: u64,
    /// Where compiled modules are cached.
    pub module_cache: crate::cache::CacheLocation,
}

impl SandboxConfig {
    /// The default [`SandboxConfig::max_memory_bytes`].
    pub const DEFAULT_MAX_MEMORY_BYTES: usize = 256 << 20;
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_instances: 64,
            max_memory_bytes: Self::DEFAULT_MAX_MEMORY_BYTES,
            max_log_bytes: 1 << 20,
            default_timeout: Duration::from_secs(300),
            max_output_bytes: 64 << 20,
            max_declaration_bytes: 1 << 30,
            module_cache: Default::default(),
        }
    }
}

/// Fuel the panic-message export gets at most after a failed call (never more than the
/// attempt has left).
const PANIC_MESSAGE_FUEL: u64 = 50_000_000;
/// Time the panic-message export gets at most (never past the attempt's own deadline).
const PANIC_MESSAGE_TIME: Duration = Duration::from_secs(1);

/// Bytes of each linear memory reset in place rather than decommitted.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;
/// Decommits batched together (per shard; wasmtime keeps one shard per core, up to 16).
pub const DECOMMIT_BATCH: usize = 16;

/// Builds one engine as the host builds each of its own, with an epoch ticker.
pub fn engine(config: &SandboxConfig) -> anyhow::Result<Engine> {
    let mut engines = engines(config, 1)?;
    Ok(engines.remove(0))
}

/// Builds `n` engines of one configuration, each with its own instance pool, and starts one
/// epoch ticker thread for all of them.
///
/// The host gives each worker thread an engine of its own. wasmtime's pooling allocator is
/// per engine, and two threads instantiating from one pool share its index allocator, slot
/// counters and decommit queues: in a bare instantiate-and-call loop on two cores that cost
/// 12% more CPU per call than two threads with a pool each (6.9–7.0 against 6.2–6.35 µs).
/// A module is then loaded into every engine (from the same compiled form: the engines share
/// a configuration, so one compiled artifact serves them all).
pub fn engines(config: &SandboxConfig, n: usize) -> anyhow::Result<Vec<Engine>> {
    let mut pool = PoolingAllocationConfig::default();
    // A task execution's cost is mostly the pages it dirties and giving them back. Reset
    // slots in place (only the pages actually touched, found with PAGEMAP_SCAN where the
    // kernel has it) instead of madvise, and batch the decommits that remain: each madvise
    // is a TLB shootdown across every core.
    pool.total_core_instances(config.max_instances)
        .total_memories(config.max_instances)
        .total_tables(config.max_instances)
        .max_memory_size(config.max_memory_bytes)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto)
        .decommit_batch_size(DECOMMIT_BATCH)
        // Fiber stacks serve only async calls, which sandflow never makes (the default pool of
        // 1 000 cost 1 000 `mprotect`s of guard pages at startup, and as many extra VMAs that
        // every page-table scan of a slot reset then searches through).
        .total_stacks(0);
    let mut c = Config::new();
    // Fuel costs the guest's code a few percent (a counter per basic block); it buys
    // deterministic CPU budgets (`#[task(fuel = N)]`). Stores without a budget get u64::MAX.
    c.epoch_interruption(true)
        .consume_fuel(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engines = (0..n.max(1))
        .map(|_| Engine::new(&c))
        .collect::<Result<Vec<_>, _>>()?;
    let weak: Vec<_> = engines.iter().map(Engine::weak).collect();
    std::thread::Builder::new()
        .name("sandflow-epoch".into())
        .spawn(move || loop {
            let mut alive = false;
            for engine in weak.iter().filter_map(|w| w.upgrade()) {
                engine.increment_epoch();
                alive = true;
            }
            if !alive {
                break;
            }
            std::thread::sleep(EPOCH_TICK);
        })?;
    Ok(engines)
}

/// A guest module, compiled and checked, ready to instantiate many times: one [`Lane`] per
/// engine of its host, so each worker thread instantiates from a pool of its own.
pub struct Sandbox {
    lanes: Vec<Lane>,
    /// The module's entities, read from its decl exports.
    pub decl: Arc<ModuleDecl>,
}

/// The module as one engine has it: what instantiates it in that engine's pool.
struct Lane {
    engine: Engine,
    config: SandboxConfig,
    pre: InstancePre<Ctx>,
    initialize: Option<ModuleExport>,
    alloc: ModuleExport,
    memory: ModuleExport,
    version: ModuleExport,
    panic_message: Option<ModuleExport>,
    calls: FxHashMap<String, ModuleExport>,
    decls: Vec<(String, ModuleExport)>,
}

/// What one call produced: the guest's answer or why there is none, plus its logs.
pub struct CallOutcome {
    pub result: Result<CallResult, CallFailure>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a call produced no answer.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallFailure {
    /// A fault of the guest (trap, panic, limit exceeded, garbage returned), as opposed to one
    /// of the host (could not instantiate, pool exhausted).
    pub user: bool,
    pub message: String,
    /// The wasm backtrace, one frame a line, when the guest trapped.
    pub backtrace: Option<String>,
}

impl CallFailure {
    fn guest(message: impl Into<String>) -> Self {
        CallFailure {
            user: true,
            message: message.into(),
            backtrace: None,
        }
    }
    fn host(message: impl Into<String>) -> Self {
        CallFailure {
            user: false,
            message: message.into(),
            backtrace: None,
        }
    }
}

const WASI_MODULE: &str = "wasi_snapshot_preview1";

impl Sandbox {
    /// Loads `bytes` (a wasm module) from `origin` (for messages), compiling it or taking the
    /// compiled form from the on-disk cache, checks its imports and ABI, and reads its entities.
    pub fn load(
        engines: &[Engine],
        config: SandboxConfig,
        bytes: &[u8],
        origin: &Path,
    ) -> Result<Sandbox, ModuleError> {
        if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
            return Err(ModuleError::NotWasm {
                path: origin.to_path_buf(),
            });
        }
        if engines.is_empty() {
            return Err(ModuleError::Invalid {
                path: origin.to_path_buf(),
                reason: "no engine to load it into".into(),
            });
        }
        let modules = cache::compile(engines, bytes, &config.module_cache).map_err(|e| {
            ModuleError::Invalid {
                path: origin.to_path_buf(),
                reason: format!("{e:#}"),
            }
        })?;
        for import in modules[0].imports() {
            if import.module() != WASI_MODULE {
                return Err(ModuleError::ForbiddenImport {
                    path: origin.to_path_buf(),
                    import: format!("{}::{}", import.module(), import.name()),
                });
            }
        }
        let lanes = engines
            .iter()
            .zip(&modules)
            .map(|(engine, module)| Lane::new(engine, module, config.clone(), origin))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sandbox = Sandbox {
            lanes,
            decl: Arc::new(ModuleDecl::default()),
        };
        let missing = |name: &str| ModuleError::MissingExport {
            path: origin.to_path_buf(),
            export: name.to_string(),
        };
        let invalid = |reason: String| ModuleError::Invalid {
            path: origin.to_path_buf(),
            reason,
        };

        // Describe: one instance reads the ABI version and every entity's declaration.
        let lane = &sandbox.lanes[0];
        let version = lane.version;
        let (mut store, instance) = lane
            .instantiate(&CallLimits {
                timeout: Some(Duration::from_secs(30)),
                ..CallLimits::default()
            })
            .map_err(|f| invalid(f.message))?;
        let v = instance
            .get_module_export(&mut store, &version)
            .and_then(|e| e.into_func())
            .ok_or_else(|| missing(abi::ABI_VERSION_EXPORT))?
            .typed::<(), i32>(&store)
            .map_err(|e| {
                invalid(format!(
                    "{} has the wrong signature: {e}",
                    abi::ABI_VERSION_EXPORT
                ))
            })?
            .call(&mut store, ())
            .map_err(|e| {
                let failure = trap_failure(e, store.data(), None);
                invalid(format!(
                    "{} failed: {}",
                    abi::ABI_VERSION_EXPORT,
                    failure.message
                ))
            })?;
        if v != abi::ABI_VERSION {
            return Err(ModuleError::AbiVersion {
                path: origin.to_path_buf(),
                found: v,
                expected: abi::ABI_VERSION,
            });
        }
        let mut entities = Vec::new();
        let mut declared = 0u64;
        for (name, idx) in &lane.decls {
            let name = name.clone();
            let r: Result<EntityDecl, String> = (|| {
                let f = instance
                    .get_module_export(&mut store, idx)
                    .and_then(|e| e.into_func())
                    .ok_or("not a function")?
                    .typed::<(), i64>(&store)
                    .map_err(|e| format!("wrong signature: {e}"))?;
                let packed = match f.call(&mut store, ()) {
                    Ok(p) => p,
                    Err(e) => {
                        let panic = lane.panic_message(&mut store, &instance);
                        return Err(trap_failure(e, store.data(), panic).message);
                    }
                };
                let bytes =
                    lane.read(&mut store, &instance, packed, lane.config.max_output_bytes)?;
                let d = codec::decode::<EntityDecl>(&bytes).map_err(|e| e.to_string())?;
                declared += sandflow_contract::depth::last_decode_bytes();
                check_declared(declared, lane.config.max_declaration_bytes)?;
                Ok(d)
            })();
            match r {
                Ok(d) if d.name == name => entities.push(d),
                Ok(d) => {
                    return Err(invalid(format!(
                        "export for `{name}` declares `{}`",
                        d.name
                    )))
                }
                Err(reason) => {
                    return Err(ModuleError::Describe {
                        path: origin.to_path_buf(),
                        entity: name,
                        reason,
                    })
                }
            }
        }
        entities.sort_by(|a, b| a.name.cmp(&b.name));
        for d in &entities {
            let runs = matches!(
                d.kind,
                sandflow_contract::EntityKind::Task(_) | sandflow_contract::EntityKind::Dynamic(_)
            );
            if runs && !lane.calls.contains_key(&d.name) {
                return Err(missing(&format!("{}{}", abi::CALL_PREFIX, d.name)));
            }
        }
        sandbox.decl =
            Arc::new(
                ModuleDecl::new(entities).map_err(|source| ModuleError::Compile {
                    path: origin.to_path_buf(),
                    source,
                })?,
            );
        Ok(sandbox)
    }

    /// The engine of the first lane (the one [`Sandbox::call`] uses).
    pub fn engine(&self) -> &Engine {
        &self.lanes[0].engine
    }

    /// Runs entity `entity` (a task or dynamic) on `inputs` (encoded `Vec<Value>`) in a fresh
    /// instance.
    pub fn call(&self, entity: &str, inputs: &[u8], limits: &CallLimits) -> CallOutcome {
        self.call_in(0, entity, inputs, limits)
    }

    /// [`Sandbox::call`] in lane `lane` (modulo the lanes there are): the host's worker `i`
    /// calls in lane `i`, so workers never share a pool.
    pub fn call_in(
        &self,
        lane: usize,
        entity: &str,
        inputs: &[u8],
        limits: &CallLimits,
    ) -> CallOutcome {
        self.lanes[lane % self.lanes.len()].call(entity, inputs, limits)
    }
}

impl Lane {
    fn new(
        engine: &Engine,
        module: &wasmtime::Module,
        config: SandboxConfig,
        origin: &Path,
    ) -> Result<Lane, ModuleError> {
        let mut linker: Linker<Ctx> = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c: &mut Ctx| c.wasi()).map_err(
            |e| ModuleError::Invalid {
                path: origin.to_path_buf(),
                reason: format!("{e:#}"),
            },
        )?;
        // Our deadline-aware poll_oneoff (see poll.rs) replaces wasmtime-wasi's.
        linker.allow_shadowing(true);
        linker
            .func_wrap("wasi_snapshot_preview1", "poll_oneoff", poll::poll_oneoff)
            .map_err(|e| ModuleError::Invalid {
                path: origin.to_path_buf(),
                reason: format!("{e:#}"),
            })?;
        let pre = linker.instantiate_pre(module).map_err(|e| {
            // wasmtime names the import in backticks: "unknown import: `m::f` has not been
            // defined", or gives its signature when only the types differ.
            let text = format!("{e:#}");
            let import = text
                .split('`')
                .nth(1)
                .map(|name| format!("{name} (as this module declares it)"))
                .unwrap_or(text);
            ModuleError::ForbiddenImport {
                path: origin.to_path_buf(),
                import,
            }
        })?;
        let export = |name: &str| module.get_export_index(name);
        let missing = |name: &str| ModuleError::MissingExport {
            path: origin.to_path_buf(),
            export: name.to_string(),
        };
        let alloc = export(abi::ALLOC_EXPORT).ok_or_else(|| missing(abi::ALLOC_EXPORT))?;
        let memory = export("memory").ok_or_else(|| missing("memory"))?;
        let version =
            export(abi::ABI_VERSION_EXPORT).ok_or_else(|| missing(abi::ABI_VERSION_EXPORT))?;
        let mut calls = FxHashMap::default();
        let mut decl_exports = Vec::new();
        for e in module.exports() {
            if let Some(name) = e.name().strip_prefix(abi::CALL_PREFIX) {
                calls.insert(name.to_string(), export(e.name()).expect("listed export"));
            } else if let Some(name) = e.name().strip_prefix(abi::DECL_PREFIX) {
                decl_exports.push((name.to_string(), export(e.name()).expect("listed export")));
            }
        }
        Ok(Lane {
            engine: engine.clone(),
            config,
            pre,
            initialize: export(abi::WASI_INITIALIZE_EXPORT),
            alloc,
            memory,
            version,
            panic_message: export(abi::PANIC_MESSAGE_EXPORT),
            calls,
            decls: decl_exports,
        })
    }

    fn instantiate(
        &self,
        limits: &CallLimits,
    ) -> Result<(Store<Ctx>, wasmtime::Instance), CallFailure> {
        self.instantiate_with(limits, 0, &mut None)
    }

    /// A fresh store and instance. Output the guest writes is kept up to `log_limit` bytes per
    /// stream; if `_initialize` fails, what it wrote is left in `logs`.
    fn instantiate_with(
        &self,
        limits: &CallLimits,
        log_limit: usize,
        logs: &mut Option<Logs>,
    ) -> Result<(Store<Ctx>, wasmtime::Instance), CallFailure> {
        let timeout = limits.timeout.unwrap_or(self.config.default_timeout);
        let max_memory = limits
            .max_memory_bytes
            .unwrap_or(self.config.max_memory_bytes)
            .min(self.config.max_memory_bytes);
        let ctx = Ctx {
            wasi: None,
            log_limit,
            logs: None,
            max_memory,
            memory_exceeded: None,
            deadline: Instant::now() + timeout,
            timeout,
            cancel: limits.cancel.clone(),
            stopped: None,
            fuel: limits.fuel,
        };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|c| c);
        store
            .set_fuel(limits.fuel.unwrap_or(u64::MAX))
            .or(Ok::<(), wasmtime::Error>(()))
            .or(Ok::<(), wasmtime::Error>(()))
            .map_err(|e| CallFailure::host(format!("could not set the fuel budget: {e}")))?;
        // Every tick, check the wall clock and the cancel flag: one ticker thread serves all
        // stores, and a cancelled run stops its running instances within a tick.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            let c = cx.data_mut();
            if c.cancel.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
                c.stopped = Some(Stop::Cancelled);
                return Ok(UpdateDeadline::Interrupt);
            }
            if Instant::now() >= c.deadline {
                c.stopped = Some(Stop::Timeout);
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });
        let instance =
            self.pre
                .instantiate(&mut store)
                .map_err(|e| match store.data().memory_exceeded {
                    // The module's own initial memory is past the attempt's limit: the task's (or
                    // the run's) limit is too low for it, which no retry changes.
                    Some(desired) => CallFailure::guest(format!(
                        "needs {} of memory to start, more than its memory limit of {}",
                        human_bytes(desired as u64),
                        human_bytes(max_memory as u64)
                    )),
                    None => CallFailure::host(format!(
                        "could not instantiate the module: {}",
                        error_text(&e)
                    )),
                })?;
        if let Some(init) = &self.initialize {
            let f = instance
                .get_module_export(&mut store, init)
                .and_then(|e| e.into_func())
                .ok_or_else(|| CallFailure::guest("_initialize is not a function"))?;
            f.typed::<(), ()>(&store)
                .map_err(|e| {
                    CallFailure::guest(format!("_initialize has the wrong signature: {e}"))
                })?
                .call(&mut store, ())
                .map_err(|e| {
                    *logs = store.data_mut().logs.take();
                    trap_failure(e, store.data(), None)
                })?;
        }
        Ok((store, instance))
    }

    /// Copies the buffer `packed` points at out of the guest, refusing more than `limit` bytes.
    fn read(
        &self,
        store: &mut Store<Ctx>,
        instance: &wasmtime::Instance,
        packed: i64,
        limit: usize,
    ) -> Result<Vec<u8>, String> {
        self.read_with(store, instance, packed, limit, <[u8]>::to_vec)
    }

    /// Hands `f` the buffer `packed` points at, in the guest's memory, refusing more than
    /// `limit` bytes.
    fn read_with<R>(
        &self,
        store: &mut Store<Ctx>,
        instance: &wasmtime::Instance,
        packed: i64,
        limit: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, String> {
        let (ptr, len) = abi::unpack(packed);
        if len as usize > limit {
            return Err(format!(
                "returned {}, more than the {} output limit",
                human_bytes(len as u64),
                human_bytes(limit as u64)
            ));
        }
        let memory = instance
            .get_module_export(&mut *store, &self.memory)
            .and_then(|e| e.into_memory())
            .ok_or("the module exports no memory")?;
        let data = memory.data(&*store);
        let (start, end) = (ptr as usize, ptr as usize + len as usize);
        if end > data.len() {
            return Err(format!(
                "the guest returned a buffer at {ptr:#x}..{end:#x}, outside its {}-byte memory",
                data.len()
            ));
        }
        Ok(f(&data[start..end]))
    }

    fn panic_message(
        &self,
        store: &mut Store<Ctx>,
        instance: &wasmtime::Instance,
    ) -> Option<String> {
        // A cancelled or timed-out guest gets no more time; its stderr still says what it did.
        if store.data().stopped.is_some() {
            return None;
        }
        let export = self.panic_message.as_ref()?;
        let f = instance
            .get_module_export(&mut *store, export)?
            .into_func()?
            .typed::<(), i64>(&*store)
            .ok()?;
        // The export is guest code too, and part of the attempt: it runs within what the
        // attempt has left of its deadline and its fuel (at most a second and
        // PANIC_MESSAGE_FUEL of them), and whatever it does (loop, grow memory), the failure
        // reported is the call's own, not this export's.
        let fuel_left = store.get_fuel().unwrap_or(0);
        if fuel_left == 0 {
            return None;
        }
        let c = store.data_mut();
        let saved = (c.deadline, c.memory_exceeded);
        c.deadline = c.deadline.min(Instant::now() + PANIC_MESSAGE_TIME);
        let _ = store.set_fuel(fuel_left.min(PANIC_MESSAGE_FUEL));
        let packed = f.call(&mut *store, ());
        let c = store.data_mut();
        (c.deadline, c.memory_exceeded) = saved;
        c.stopped = None;
        let bytes = self.read(store, instance, packed.ok()?, 64 << 10).ok()?;
        let msg = String::from_utf8_lossy(&bytes).into_owned();
        (!msg.is_empty()).then_some(msg)
    }

    fn call(&self, entity: &str, inputs: &[u8], limits: &CallLimits) -> CallOutcome {
        let mut logs = None;
        let result = self.call_inner(entity, inputs, limits, &mut logs);
        let (stdout, stderr) = logs
            .map(|(out, err)| (out.contents(), err.contents()))
            .unwrap_or_default();
        CallOutcome {
            result,
            stdout,
            stderr,
        }
    }

    fn call_inner(
        &self,
        entity: &str,
        inputs: &[u8],
        limits: &CallLimits,
        logs: &mut Option<Logs>,
    ) -> Result<CallResult, CallFailure> {
        let call = self.calls.get(entity).ok_or_else(|| {
            CallFailure::host(format!("the module has no call export for `{entity}`"))
        })?;
        let (mut store, instance) =
            self.instantiate_with(limits, self.config.max_log_bytes, logs)?;
        let result = self.run(&mut store, &instance, entity, call, inputs);
        // Whatever the outcome, what the guest wrote goes with it.
        *logs = store.data_mut().logs.take();
        result
    }

    /// Writes `inputs` into the fresh `instance` and calls `entity`'s export `call`.
    fn run(
        &self,
        store: &mut Store<Ctx>,
        instance: &wasmtime::Instance,
        entity: &str,
        call: &ModuleExport,
        inputs: &[u8],
    ) -> Result<CallResult, CallFailure> {
        let func = |store: &mut Store<Ctx>, e: &ModuleExport| {
            instance
                .get_module_export(&mut *store, e)
                .and_then(|e| e.into_func())
        };
        let alloc = func(store, &self.alloc)
            .and_then(|f| f.typed::<i32, i32>(&*store).ok())
            .ok_or_else(|| {
                CallFailure::guest(format!(
                    "{} is not a function (i32) -> i32",
                    abi::ALLOC_EXPORT
                ))
            })?;
        let len = i32::try_from(inputs.len())
            .map_err(|_| CallFailure::host("inputs larger than 2 GiB"))?;
        let ptr = alloc
            .call(&mut *store, len)
            .map_err(|e| trap_failure(e, store.data(), None))?;
        let memory = instance
            .get_module_export(&mut *store, &self.memory)
            .and_then(|e| e.into_memory())
            .ok_or_else(|| CallFailure::guest("the module exports no memory"))?;
        memory
            .write(&mut *store, ptr as u32 as usize, inputs)
            .map_err(|_| {
                CallFailure::guest(format!(
                    "{} returned {ptr:#x}, which has no room for {len} bytes",
                    abi::ALLOC_EXPORT
                ))
            })?;
        let f = func(store, call)
            .and_then(|f| f.typed::<(i32, i32), i64>(&*store).ok())
            .ok_or_else(|| {
                CallFailure::guest(format!(
                    "the call export of `{entity}` is not (i32, i32) -> i64"
                ))
            })?;
        let packed = match f.call(&mut *store, (ptr, len)) {
            Ok(p) => p,
            Err(e) => {
                let panic = self.panic_message(store, instance);
                return Err(trap_failure(e, store.data(), panic));
            }
        };
        // Decoded where the guest left it: no copy out of its memory first.
        self.read_with(
            store,
            instance,
            packed,
            self.config.max_output_bytes,
            codec::decode::<CallResult>,
        )
        .map_err(CallFailure::guest)?
        .map_err(|e| {
            CallFailure::guest(format!(
                "the guest returned bytes that are not a call result ({e})"
            ))
        })
    }
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

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

fn trap_failure(e: wasmtime::Error, ctx: &Ctx, panic: Option<String>) -> CallFailure {
    let backtrace = e.downcast_ref::<WasmBacktrace>().map(format_backtrace);
    let message = if let Some(p) = panic {
        format!("panicked: {p}")
    } else if let Some(Stop::Timeout) = ctx.stopped {
        format!("timed out after {} ms", ctx.timeout.as_millis())
    } else if let Some(Stop::Cancelled) = ctx.stopped {
        "cancelled while running".to_string()
    } else if let Some(desired) = ctx.memory_exceeded {
        format!(
            "exceeded its memory limit of {} (tried to grow to {})",
            human_bytes(ctx.max_memory as u64),
            human_bytes(desired as u64)
        )
    } else if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!("called exit({}) instead of returning a result", exit.0)
    } else {
        match e.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => "wasm stack overflow (recursion too deep)".to_string(),
            Some(Trap::OutOfFuel) => match ctx.fuel {
                Some(f) => format!("ran out of its fuel budget of {f}"),
                None => "ran out of fuel".to_string(),
            },
            // Displays as "wasm trap: <what>".
            Some(t) => t.to_string(),
            None => error_text(&e),
        }
    };
    CallFailure {
        user: true,
        message,
        backtrace,
    }
}

/// An error's whole chain of causes on one line (`outer: inner: root`), without the wasm
/// backtrace wasmtime adds as context (it is reported on its own) and without a cause that
/// only repeats the one before it.
fn error_text(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // WasmBacktrace's own Display (it is not an `Error` to downcast to).
        if text.starts_with("error while executing at wasm backtrace") {
            continue;
        }
        let text = text.lines().next().unwrap_or("").trim().to_string();
        if text.is_empty() || parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    if parts.is_empty() {
        "trapped".to_string()
    } else {
        parts.join(": ")
    }
}

/// One frame a line, demangled, without the panic machinery above the frame that panicked.
fn format_backtrace(bt: &WasmBacktrace) -> String {
    let names: Vec<String> = bt
        .frames()
        .iter()
        .map(|f| match f.func_name() {
            Some(n) => format!("{:#}", rustc_demangle::demangle(n)),
            None => format!("<wasm function {}>", f.func_index()),
        })
        .collect();
    // Frames are innermost first; everything up to the panic entry point is std's machinery.
    let skip = names
        .iter()
        .rposition(|n| n.contains("core::panicking::") || n.contains("rust_begin_unwind"))
        .map(|i| i + 1)
        .unwrap_or(0);
    names[skip..]
        .iter()
        .map(|n| format!("  {n}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails once a module's declarations, `declared` bytes so far, take more than `limit`.
fn check_declared(declared: u64, limit: u64) -> Result<(), String> {
    if declared <= limit {
        return Ok(());
    }
    let size = |b: u64| match b {
        0..0x10_0000 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
    };
    Err(format!(
        "the module's declarations take {} in memory up to this one, more than the {} a \
         module may declare (SandboxConfig::max_declaration_bytes)",
        size(declared),
        size(limit)
    ))
}
