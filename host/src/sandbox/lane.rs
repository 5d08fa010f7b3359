//! One engine's copy of a module: instantiate it fresh from that engine's pool, write a
//! call's inputs into the instance, call an entity's export, and read its answer back out of
//! the guest's memory.

use super::trap::{error_text, human_bytes, trap_failure};
use super::{poll, CallLimits, CallOutcome, Ctx, Logs, SandboxConfig};
use crate::module::ModuleError;
use crate::scheduler::AttemptFailure;
use sandflow_contract::{abi, codec, CallResult, EntityDecl};
use std::path::Path;
use std::time::{Duration, Instant};
use wasmtime::{Engine, InstancePre, Linker, ModuleExport, Store, UpdateDeadline};

/// Fuel the panic-message export gets at most after a failed call (never more than the
/// attempt has left).
const PANIC_MESSAGE_FUEL: u64 = 50_000_000;
/// Time the panic-message export gets at most (never past the attempt's own deadline).
const PANIC_MESSAGE_TIME: Duration = Duration::from_secs(1);

/// The module as one engine has it: what instantiates it in that engine's pool.
pub(super) struct Lane {
    pub(super) engine: Engine,
    pub(super) config: SandboxConfig,
    pre: InstancePre<Ctx>,
    initialize: Option<ModuleExport>,
    alloc: ModuleExport,
    memory: ModuleExport,
    pub(super) version: ModuleExport,
    panic_message: Option<ModuleExport>,
    /// Each entity's call export, by entity index in the module model (none for entities
    /// that do not run, and none until [`Lane::bind`]): a call finds its export without
    /// hashing a name.
    calls: Vec<Option<ModuleExport>>,
}

impl Lane {
    /// Links `module` (compiled for `engine`) against WASI and finds its ABI exports.
    pub(super) fn new(
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
        Ok(Lane {
            engine: engine.clone(),
            config,
            pre,
            initialize: export(abi::WASI_INITIALIZE_EXPORT),
            alloc,
            memory,
            version,
            panic_message: export(abi::PANIC_MESSAGE_EXPORT),
            calls: Vec::new(),
        })
    }

    /// The wasm module this lane instantiates.
    pub(super) fn module(&self) -> &wasmtime::Module {
        self.pre.module()
    }

    /// Finds the call export of each of `entities` (the module model's order), once, so that
    /// calls name their entity by index.
    /// `calls` names the call export of each entity that runs (see [`super::Lanes`]).
    pub(super) fn bind(
        &mut self,
        entities: &[EntityDecl],
        calls: &std::collections::HashMap<String, String>,
    ) {
        let module = self.pre.module();
        self.calls = entities
            .iter()
            .map(|e| {
                calls
                    .get(&e.name)
                    .and_then(|export| module.get_export_index(export))
            })
            .collect();
    }

    /// A fresh store and instance whose output is not kept.
    pub(super) fn instantiate(
        &self,
        limits: &CallLimits,
    ) -> Result<(Store<Ctx>, wasmtime::Instance), AttemptFailure> {
        self.instantiate_with(limits, 0, &mut None)
    }

    /// A fresh store and instance. Output the guest writes is kept up to `log_limit` bytes per
    /// stream; if `_initialize` fails, what it wrote is left in `logs`.
    fn instantiate_with(
        &self,
        limits: &CallLimits,
        log_limit: usize,
        logs: &mut Option<Logs>,
    ) -> Result<(Store<Ctx>, wasmtime::Instance), AttemptFailure> {
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
            .map_err(|e| AttemptFailure::host(format!("could not set the fuel budget: {e}")))?;
        // Every tick, check the wall clock and the cancel flag: one ticker thread serves all
        // stores, and a cancelled run stops its running instances within a tick.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            Ok(match cx.data_mut().stop_due(Instant::now()) {
                Some(_) => UpdateDeadline::Interrupt,
                None => UpdateDeadline::Continue(1),
            })
        });
        let instance =
            self.pre
                .instantiate(&mut store)
                .map_err(|e| match store.data().memory_exceeded {
                    // The module's own initial memory is past the attempt's limit: the task's (or
                    // the run's) limit is too low for it, which no retry changes.
                    Some(desired) => AttemptFailure::guest(format!(
                        "needs {} of memory to start, more than its memory limit of {}",
                        human_bytes(desired as u64),
                        human_bytes(max_memory as u64)
                    )),
                    None => AttemptFailure::host(format!(
                        "could not instantiate the module: {}",
                        error_text(&e)
                    )),
                })?;
        if let Some(init) = &self.initialize {
            let f = instance
                .get_module_export(&mut store, init)
                .and_then(|e| e.into_func())
                .ok_or_else(|| AttemptFailure::guest("_initialize is not a function"))?;
            f.typed::<(), ()>(&store)
                .map_err(|e| {
                    AttemptFailure::guest(format!("_initialize has the wrong signature: {e}"))
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
    pub(super) fn read(
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

    /// The message of the guest's last panic, from its panic-message export, if it has one
    /// and the attempt has time and fuel left to ask it.
    pub(super) fn panic_message(
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

    /// Runs entity `entity` (its index in the module model; `name` for messages) on `inputs`
    /// in a fresh instance.
    pub(super) fn call(
        &self,
        entity: usize,
        name: &str,
        inputs: &[u8],
        limits: &CallLimits,
    ) -> CallOutcome {
        let mut logs = None;
        let result = self.call_inner(entity, name, inputs, limits, &mut logs);
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
        entity: usize,
        name: &str,
        inputs: &[u8],
        limits: &CallLimits,
        logs: &mut Option<Logs>,
    ) -> Result<CallResult, AttemptFailure> {
        let call = self
            .calls
            .get(entity)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                AttemptFailure::host(format!("the module has no call export for `{name}`"))
            })?;
        let (mut store, instance) =
            self.instantiate_with(limits, self.config.max_log_bytes, logs)?;
        let result = self.run(&mut store, &instance, name, call, inputs);
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
    ) -> Result<CallResult, AttemptFailure> {
        let func = |store: &mut Store<Ctx>, e: &ModuleExport| {
            instance
                .get_module_export(&mut *store, e)
                .and_then(|e| e.into_func())
        };
        let alloc = func(store, &self.alloc)
            .and_then(|f| f.typed::<i32, i32>(&*store).ok())
            .ok_or_else(|| {
                AttemptFailure::guest(format!(
                    "{} is not a function (i32) -> i32",
                    abi::ALLOC_EXPORT
                ))
            })?;
        let len = i32::try_from(inputs.len())
            .map_err(|_| AttemptFailure::host("inputs larger than 2 GiB"))?;
        let ptr = alloc
            .call(&mut *store, len)
            .map_err(|e| trap_failure(e, store.data(), None))?;
        let memory = instance
            .get_module_export(&mut *store, &self.memory)
            .and_then(|e| e.into_memory())
            .ok_or_else(|| AttemptFailure::guest("the module exports no memory"))?;
        memory
            .write(&mut *store, ptr as u32 as usize, inputs)
            .map_err(|_| {
                AttemptFailure::guest(format!(
                    "{} returned {ptr:#x}, which has no room for {len} bytes",
                    abi::ALLOC_EXPORT
                ))
            })?;
        let f = func(store, call)
            .and_then(|f| f.typed::<(i32, i32), i64>(&*store).ok())
            .ok_or_else(|| {
                AttemptFailure::guest(format!(
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
        .map_err(AttemptFailure::guest)?
        .map_err(|e| {
            AttemptFailure::guest(format!(
                "the guest returned bytes that are not a call result ({e})"
            ))
        })
    }
}
