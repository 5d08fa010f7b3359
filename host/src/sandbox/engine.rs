//! Engines: the wasmtime configuration every sandbox shares (pooling allocator, epoch
//! interruption, fuel), the limits of one engine's instances, and the epoch ticker thread.

use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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
