//! `cargo bench -p sandflow-host --bench sandflow`: what one task execution costs, from bare
//! wasmtime up through the whole engine to a `sandflow run` process, printed as a markdown
//! table (recorded in BENCHMARKS.md). No criterion: every case is a handful of long runs whose
//! median or best is reported, which is what these numbers need.
//!
//! Cases, in the order they print:
//! 1. the floor: bare wasmtime with the executor's engine configuration, one fresh instance
//!    per call of `step1`; then `Sandbox::call` (the executor's per-call path) alone;
//! 2. the same kind of task through the whole engine: a map of `mappable` over 20 000 elements;
//! 3. the seed's two programs at the sizes compared with flytekit;
//! 4. a 1 000 000-element map, in a fresh process (`--only-map1m`) so its peak RSS is its own;
//! 5. cold start: a whole `sandflow run` process, with and without the compiled-module cache;
//! 6. the execution store: whole `sandflow run` processes of nested 10 000/100 with the store on
//!    (a fresh database each run) taking turns with `--no-store`, and the database's bytes per
//!    task execution.
//!
//! Progress goes to stderr; the table and the machine to stdout.

// The same allocator as the `sandflow` binary, so the engine cases (and the million-element
// map's peak RSS) measure what the CLI does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{anyhow, bail, ensure, Context};
use sandflow_contract::{abi, codec, CallResult, EntityDecl, Value};
use sandflow_host::guest_build::{self, BuildOptions};
use sandflow_host::runner::{Host, Report};
use sandflow_host::sandbox::{self, CallLimits, Sandbox, SandboxConfig};
use sandflow_host::scheduler::Options;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Engine, InstancePre, Linker, Module, ModuleExport, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;

/// Calls per round of the single-thread cases, and rounds (the median is reported).
const CALLS: usize = 20_000;
const ROUNDS: usize = 5;
const WARMUP_CALLS: usize = 2_000;
/// Elements of the map run through the engine to compare with the floor.
const MAP_ELEMENTS: i64 = 20_000;
const MAP1M_ELEMENTS: i64 = 1_000_000;
const COLD_RUNS: usize = 20;
/// Runs of each side of the store case (store on, `--no-store`), taking turns.
const STORE_RUNS: usize = 7;
/// What the child process prints for the parent to parse.
const MAP1M_TAG: &str = "sandflow-bench-map1m";

fn main() -> anyhow::Result<()> {
    let mut only_map1m = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            // `cargo bench` passes it to every bench binary.
            "--bench" => {}
            "--only-map1m" => only_map1m = true,
            _ => bail!("unknown argument `{a}`: this bench runs every case and takes no filter"),
        }
    }
    if only_map1m {
        return map1m_child();
    }

    let load_before = load_average();
    let guests = build_guests()?;
    let cli = build_cli()?;
    let mut table = Table::default();
    {
        // One worker: the floor, and the engine's cost per task next to it.
        let host = Host::new(1)?;
        let floor = floor_rows(&mut table, &host, &guests)?;
        engine_map_rows(&mut table, &host, &guests, Some(floor))?;
    }
    let host = Host::new(0)?;
    engine_map_rows(&mut table, &host, &guests, None)?;
    seed_rows(&mut table, &host, &guests)?;
    drop(host);
    map1m_rows(&mut table)?;
    cold_start_rows(&mut table, &cli, &guests.nested)?;
    store_rows(&mut table, &cli, &guests.nested)?;

    println!("{}", machine(&load_before));
    println!();
    println!("{}", table.markdown());
    Ok(())
}

// ---- the table's rows, case by case ------------------------------------------------------------

/// Case 1: the floor (bare wasmtime), and the executor's per-call path, on this thread.
fn floor_rows(table: &mut Table, host: &Host, guests: &Guests) -> anyhow::Result<f64> {
    let bare = Bare::new(host.sandbox_config(), &guests.nested)?;
    let nested = host.load(&guests.nested)?;
    let input = codec::encode(&vec![Value::Int(1)])?;
    // What a worker passes for a task that declares no limits.
    let limits = CallLimits {
        cancel: Some(Arc::new(AtomicBool::new(false))),
        ..CallLimits::default()
    };
    let mut executor = || match nested.call("step1", &input, &limits).result {
        Ok(CallResult::Output(Some(Value::Int(2)))) => Ok(()),
        Ok(other) => bail!("Sandbox::call step1(1) returned {other:?}"),
        Err(f) => bail!("Sandbox::call step1(1) failed: {}", f.message),
    };
    eprintln!("[bench] bare wasmtime and Sandbox::call, alternating rounds");
    let [floor, call] = interleaved([&mut || bare.call(), &mut executor])?;
    let rounds = format!(
        "median of {ROUNDS} rounds × {} calls, 1 thread",
        int(CALLS as i64)
    );
    table.row(
        "bare wasmtime: fresh instance + `step1` (nested_dynamics)",
        format!("{floor:.2}"),
        "µs/call",
        format!(
            "{rounds}; the executor's engine config, WASI p1 (its context built on the first \
             WASI call, as the executor does: `step1` makes none), `_initialize` + alloc + \
             write input + call + read result"
        ),
    );
    table.row(
        "`Sandbox::call(step1)` (executor path, no scheduler)",
        format!("{call:.2}"),
        "µs/call",
        format!(
            "{rounds}, alternating with the row above; {:+.2} µs over bare (limiter, epoch \
             callback, export lookup by name, result decode)",
            call - floor
        ),
    );
    Ok(floor)
}

/// Case 2: the same kind of task through the whole engine: µs per element of a map (with
/// one worker, compared with the floor), or tasks/s (with more).
fn engine_map_rows(
    table: &mut Table,
    host: &Host,
    guests: &Guests,
    floor: Option<f64>,
) -> anyhow::Result<()> {
    let mixed = host.load(&guests.mixed)?;
    let per_task = map_per_task(host, &mixed)?;
    let case = format!(
        "engine: mixed `level2` map of {} elements, workers={}",
        int(MAP_ELEMENTS),
        host.workers()
    );
    match floor {
        Some(floor) => table.row(
            &case,
            format!("{per_task:.2}"),
            "µs/task",
            format!(
                "wall / {}, median of 3; {:.2}× the bare floor, {:+.2} µs/task over it",
                int(MAP_ELEMENTS),
                per_task / floor,
                per_task - floor
            ),
        ),
        None => table.row(
            &case,
            int((1e6 / per_task) as i64),
            "tasks/s",
            format!("{per_task:.2} µs/task of wall, median of 3"),
        ),
    }
    Ok(())
}

/// Case 3: the seed's programs at the sizes compared with flytekit.
fn seed_rows(table: &mut Table, host: &Host, guests: &Guests) -> anyhow::Result<()> {
    let nested = host.load(&guests.nested)?;
    let mixed = host.load(&guests.mixed)?;
    for (program, sandbox, n, chunk, add) in [
        ("nested", &nested, 1_000, 10, 3),
        ("nested", &nested, 10_000, 100, 3),
        ("mixed", &mixed, 10_000, 100, 2),
        ("mixed", &mixed, 100_000, 1_000, 2),
    ] {
        let (wall, attempts) = seed(host, sandbox, n, chunk, add)?;
        let name = format!("{program} `multi_wf` {}/{}", int(n), int(chunk));
        table.row(
            &format!("{name}: wall"),
            format!("{:.1}", ms(wall)),
            "ms",
            format!(
                "best of 3, workers={}, output checked (x+{add})",
                host.workers()
            ),
        );
        table.row(
            &format!("{name}: throughput"),
            int((attempts as f64 / wall.as_secs_f64()) as i64),
            "tasks/s",
            format!("{} task executions / best wall", int(attempts as i64)),
        );
    }
    Ok(())
}

/// Case 4: a million-element map, in a process of its own.
fn map1m_rows(table: &mut Table) -> anyhow::Result<()> {
    let m = map1m()?;
    let case = format!("mixed `level2` map of {} elements", int(MAP1M_ELEMENTS));
    let workers = format!("workers={}", m.workers);
    table.row(
        &format!("{case}: wall"),
        format!("{:.2}", m.wall.as_secs_f64()),
        "s",
        format!("one run in a fresh process, {workers}, output checked (x+2)"),
    );
    table.row(
        &format!("{case}: throughput"),
        int((MAP1M_ELEMENTS as f64 / m.wall.as_secs_f64()) as i64),
        "elements/s",
        workers,
    );
    let above = m.vmhwm_kb.saturating_sub(m.rss_before_kb) * 1024;
    table.row(
        &format!("{case}: peak RSS"),
        format!("{:.0}", m.vmhwm_kb as f64 / 1024.0),
        "MiB",
        format!(
            "VmHWM of the child; {:.0} MiB before the run (module loaded, input built), \
             ≈{:.0} bytes/element above that",
            m.rss_before_kb as f64 / 1024.0,
            above as f64 / MAP1M_ELEMENTS as f64
        ),
    );
    Ok(())
}

/// Case 5: cold start of the CLI, with the compiled-module cache and without.
fn cold_start_rows(table: &mut Table, cli: &Path, nested: &Path) -> anyhow::Result<()> {
    let (warm, cold) = cold_start(cli, nested)?;
    table.row(
        "cold start: `sandflow run` nested multi_wf [1..6]/2, warm module cache",
        format!("{:.1}", ms(warm)),
        "ms",
        format!("whole process, median of {COLD_RUNS}; cache filled by one run before"),
    );
    table.row(
        "cold start: same, no cache (`SANDFLOW_CACHE_DIR=off`)",
        format!("{:.1}", ms(cold)),
        "ms",
        format!("whole process, median of {COLD_RUNS}; Cranelift compiles the module every run"),
    );
    Ok(())
}

/// Case 6: what recording a run in the execution store costs, and what it writes.
fn store_rows(table: &mut Table, cli: &Path, nested: &Path) -> anyhow::Result<()> {
    let s = store_case(cli, nested)?;
    let turns = format!("median of {STORE_RUNS}, taking turns with the other side");
    for (side, run, wall) in [
        ("store on (a fresh `--db` each run)", s.run_on, s.wall_on),
        ("`--no-store`", s.run_off, s.wall_off),
    ] {
        table.row(
            &format!("store: nested `multi_wf` 10 000/100, `sandflow run`, {side}: run"),
            format!("{run:.1}"),
            "ms",
            format!("the run time the CLI reports on stderr; {turns}; output checked (x+3)"),
        );
        table.row(
            &format!("store: same, {side}: whole process"),
            format!("{wall:.1}"),
            "ms",
            format!("spawn to exit; {turns}"),
        );
    }
    table.row(
        "store: database bytes per task execution (nested 10 000/100)",
        format!("{:.0}", s.bytes_per_task),
        "bytes",
        format!(
            "the first run's database after `PRAGMA wal_checkpoint(TRUNCATE)`, {} bytes / \
             {} task executions (the run's 10 000 child executions and the module included)",
            int(s.db_bytes as i64),
            int(s.tasks as i64)
        ),
    );
    Ok(())
}

// ---- what the cases run ------------------------------------------------------------------------

/// Case 1: the least any embedding of this engine configuration pays per task execution.
struct Bare {
    engine: Engine,
    pre: InstancePre<BareCtx>,
    initialize: Option<ModuleExport>,
    alloc: ModuleExport,
    memory: ModuleExport,
    step1: ModuleExport,
    max_log_bytes: usize,
    input: Vec<u8>,
    expected: Vec<u8>,
}

impl Bare {
    fn new(config: &SandboxConfig, wasm: &Path) -> anyhow::Result<Bare> {
        let engine = sandbox::engine(config)?;
        let module = Module::from_file(&engine, wasm)?;
        let mut linker: Linker<BareCtx> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, BareCtx::wasi)?;
        let export = |name: &str| {
            module
                .get_export_index(name)
                .with_context(|| format!("{} has no export {name}", wasm.display()))
        };
        Ok(Bare {
            pre: linker.instantiate_pre(&module)?,
            initialize: module.get_export_index(abi::WASI_INITIALIZE_EXPORT),
            alloc: export(abi::ALLOC_EXPORT)?,
            memory: export("memory")?,
            step1: export(&format!("{}step1", abi::CALL_PREFIX))?,
            max_log_bytes: config.max_log_bytes,
            input: codec::encode(&vec![Value::Int(1)])?,
            expected: codec::encode(&CallResult::Output(Some(Value::Int(2))))?,
            engine,
        })
    }

    /// `step1(1)` in a fresh store and instance.
    fn call(&self) -> anyhow::Result<()> {
        let ctx = BareCtx {
            wasi: None,
            max_log_bytes: self.max_log_bytes,
        };
        let mut store = Store::new(&self.engine, ctx);
        // The engine interrupts on epochs and meters fuel; neither limit is reached here.
        store.set_epoch_deadline(1 << 40);
        store.set_fuel(u64::MAX)?;
        let instance = self.pre.instantiate(&mut store)?;
        let func = |store: &mut Store<BareCtx>, e| {
            instance
                .get_module_export(store, e)
                .and_then(|e| e.into_func())
                .context("not a function")
        };
        if let Some(init) = &self.initialize {
            func(&mut store, init)?
                .typed::<(), ()>(&store)?
                .call(&mut store, ())?;
        }
        let len = self.input.len() as i32;
        let ptr = func(&mut store, &self.alloc)?
            .typed::<i32, i32>(&store)?
            .call(&mut store, len)?;
        let mem = instance
            .get_module_export(&mut store, &self.memory)
            .and_then(|e| e.into_memory())
            .context("no memory")?;
        mem.write(&mut store, ptr as u32 as usize, &self.input)?;
        let packed = func(&mut store, &self.step1)?
            .typed::<(i32, i32), i64>(&store)?
            .call(&mut store, (ptr, len))?;
        let (p, l) = abi::unpack(packed);
        let out = mem
            .data(&store)
            .get(p as usize..p as usize + l as usize)
            .context("result outside memory")?;
        ensure!(out == self.expected, "bare step1(1) returned {out:?}");
        Ok(())
    }
}

/// The bare case's store data: a WASI context made on the guest's first WASI call.
struct BareCtx {
    wasi: Option<WasiP1Ctx>,
    max_log_bytes: usize,
}

impl BareCtx {
    fn wasi(&mut self) -> &mut WasiP1Ctx {
        let limit = self.max_log_bytes;
        self.wasi.get_or_insert_with(|| {
            WasiCtxBuilder::new()
                .stdout(MemoryOutputPipe::new(limit))
                .stderr(MemoryOutputPipe::new(limit))
                .build_p1()
        })
    }
}

/// Case 2: µs of wall per element of a map of `mappable` (the median of 3 runs).
fn map_per_task(host: &Host, mixed: &Arc<Sandbox>) -> anyhow::Result<f64> {
    eprintln!(
        "[bench] engine: map of {MAP_ELEMENTS}, workers={}",
        host.workers()
    );
    let level2 = entity(mixed, "level2")?;
    let l = |n| inputs(level2, vec![("l", ints(0..n))]);
    run_checked(host, mixed, "level2", l(1_000)?, 0..1_000, 2)?;
    let mut walls = Vec::new();
    for _ in 0..3 {
        let (wall, _) = run_checked(host, mixed, "level2", l(MAP_ELEMENTS)?, 0..MAP_ELEMENTS, 2)?;
        walls.push(wall.as_secs_f64() * 1e6 / MAP_ELEMENTS as f64);
    }
    Ok(median(walls))
}

/// Case 3: the best wall of 3 runs of `multi_wf` over `0..n`, and the task executions it took.
fn seed(
    host: &Host,
    sandbox: &Arc<Sandbox>,
    n: i64,
    chunk: i64,
    add: i64,
) -> anyhow::Result<(Duration, u64)> {
    eprintln!("[bench] seed multi_wf {n}/{chunk}");
    let multi_wf = entity(sandbox, "multi_wf")?;
    let mut best: Option<(Duration, u64)> = None;
    for _ in 0..3 {
        let values = inputs(
            multi_wf,
            vec![("l", ints(0..n)), ("chunk", Value::Int(chunk))],
        )?;
        let (wall, report) = run_checked(host, sandbox, "multi_wf", values, 0..n, add)?;
        let attempts = report.scheduler.attempts_started();
        if best.is_none_or(|(b, _)| wall < b) {
            best = Some((wall, attempts));
        }
    }
    Ok(best.expect("three runs"))
}

struct Map1m {
    wall: Duration,
    workers: usize,
    rss_before_kb: u64,
    vmhwm_kb: u64,
}

/// Case 4, the parent: runs this binary again with `--only-map1m` and reads what it prints.
fn map1m() -> anyhow::Result<Map1m> {
    eprintln!("[bench] map of {MAP1M_ELEMENTS} (child process)");
    let out = Command::new(std::env::current_exe()?)
        .arg("--only-map1m")
        .stderr(Stdio::inherit())
        .output()
        .context("running the map1m child")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the map1m child failed ({}): {stdout}",
        out.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(MAP1M_TAG))
        .with_context(|| format!("the map1m child printed no `{MAP1M_TAG}` line: {stdout}"))?;
    let field = |key: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no {key}= in `{line}`"))?
            .parse()
            .with_context(|| format!("{key} in `{line}`"))
    };
    Ok(Map1m {
        wall: Duration::from_nanos(field("wall_ns")?),
        workers: field("workers")? as usize,
        rss_before_kb: field("rss_before_kb")?,
        vmhwm_kb: field("vmhwm_kb")?,
    })
}

/// Case 4, the child: one run of the million-element map, then this process's peak RSS.
fn map1m_child() -> anyhow::Result<()> {
    let guests = guest_paths();
    let host = Host::new(0)?;
    let mixed = host.load(&guests.mixed)?;
    let values = inputs(
        entity(&mixed, "level2")?,
        vec![("l", ints(0..MAP1M_ELEMENTS))],
    )?;
    let rss_before_kb = proc_status_kb("VmRSS")?;
    let (wall, report) = run_checked(&host, &mixed, "level2", values, 0..MAP1M_ELEMENTS, 2)?;
    drop(report);
    println!(
        "{MAP1M_TAG} wall_ns={} workers={} rss_before_kb={rss_before_kb} vmhwm_kb={}",
        wall.as_nanos(),
        host.workers(),
        proc_status_kb("VmHWM")?
    );
    Ok(())
}

/// Case 5: median wall of a whole `sandflow run` process, with a warm cache and without.
fn cold_start(cli: &Path, nested: &Path) -> anyhow::Result<(Duration, Duration)> {
    eprintln!("[bench] cold start ({COLD_RUNS} runs each)");
    let cache = std::env::temp_dir().join(format!("sandflow-bench-cache-{}", std::process::id()));
    let run = |cache_dir: &std::ffi::OsStr| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let out = Command::new(cli)
            .arg("run")
            .arg(nested)
            .args(["multi_wf", "--l", "[1,2,3,4,5,6]", "--chunk", "2"])
            .env("SANDFLOW_CACHE_DIR", cache_dir)
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("running {}", cli.display()))?;
        let wall = t.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success() && stdout.trim() == "[4,5,6,7,8,9]",
            "`sandflow run` exited {} and printed {stdout:?}, expected [4,5,6,7,8,9]",
            out.status
        );
        Ok(wall)
    };
    let series = |cache_dir: &std::ffi::OsStr| -> anyhow::Result<Duration> {
        let walls = (0..COLD_RUNS)
            .map(|_| run(cache_dir).map(|d| d.as_secs_f64()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Duration::from_secs_f64(median(walls)))
    };
    let result = (|| {
        run(cache.as_os_str())?;
        Ok((series(cache.as_os_str())?, series("off".as_ref())?))
    })();
    let _ = std::fs::remove_dir_all(&cache);
    result
}

/// Case 6: medians in ms, and the first store-on run's database.
struct StoreCase {
    run_on: f64,
    wall_on: f64,
    run_off: f64,
    wall_off: f64,
    db_bytes: u64,
    tasks: u64,
    bytes_per_task: f64,
}

fn store_case(cli: &Path, nested: &Path) -> anyhow::Result<StoreCase> {
    eprintln!("[bench] the execution store ({STORE_RUNS} runs with it, {STORE_RUNS} without)");
    let dir = std::env::temp_dir().join(format!("sandflow-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = (|| {
        let list = |add: i64| {
            let items: Vec<String> = (0..10_000i64).map(|x| (x + add).to_string()).collect();
            format!("[{}]", items.join(","))
        };
        // In a file: 10 000 items are more than one argument may hold on some systems.
        let inputs = dir.join("inputs.json");
        std::fs::write(&inputs, format!("{{\"l\":{},\"chunk\":100}}", list(0)))?;
        let expected = list(3);
        // One run: the run time the CLI reports, the process's wall (both ms), task executions.
        let run = |db: Option<&Path>| -> anyhow::Result<(f64, f64, u64)> {
            let mut cmd = Command::new(cli);
            cmd.arg("run")
                .arg(nested)
                .arg("multi_wf")
                .arg("--inputs")
                .arg(&inputs)
                .env("SANDFLOW_CACHE_DIR", dir.join("cache"));
            match db {
                Some(db) => cmd.arg("--db").arg(db),
                None => cmd.arg("--no-store"),
            };
            let t = Instant::now();
            let out = cmd
                .output()
                .with_context(|| format!("running {}", cli.display()))?;
            let wall = ms(t.elapsed());
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == expected,
                "`sandflow run` of nested 10 000/100 exited {} without the expected output: {stderr}",
                out.status
            );
            let (run_ms, tasks) = reported_run(&stderr)?;
            Ok((run_ms, wall, tasks))
        };
        run(None)?; // fills the compiled-module cache
        let (mut on, mut off) = (Vec::new(), Vec::new());
        let mut first_db = None;
        for i in 0..STORE_RUNS {
            let db = dir.join(format!("run{i}.db"));
            let (run_ms, wall, tasks) = run(Some(&db))?;
            on.push((run_ms, wall));
            if first_db.is_none() {
                first_db = Some((checkpointed_size(&db)?, tasks));
            }
            let (run_ms, wall, _) = run(None)?;
            off.push((run_ms, wall));
        }
        let (db_bytes, tasks) = first_db.context("the store case made no run")?;
        let med = |xs: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(xs.iter().map(f).collect());
        Ok(StoreCase {
            run_on: med(&on, |x| x.0),
            wall_on: med(&on, |x| x.1),
            run_off: med(&off, |x| x.0),
            wall_off: med(&off, |x| x.1),
            db_bytes,
            tasks,
            bytes_per_task: db_bytes as f64 / tasks.max(1) as f64,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// "… succeeded in 201.3 ms (20102 task executions, …" from a run's stderr.
fn reported_run(stderr: &str) -> anyhow::Result<(f64, u64)> {
    let rest = stderr
        .split_once("succeeded in ")
        .with_context(|| format!("no `succeeded in` on stderr: {stderr}"))?
        .1;
    let mut words = rest.split_whitespace();
    let run_ms = words
        .next()
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("no run time after `succeeded in`: {rest}"))?;
    let tasks = words
        .nth(1)
        .and_then(|w| w.strip_prefix('('))
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("no task executions after the run time: {rest}"))?;
    Ok((run_ms, tasks))
}

/// The database's size once its write-ahead log is folded in.
fn checkpointed_size(db: &Path) -> anyhow::Result<u64> {
    let conn =
        rusqlite::Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .with_context(|| format!("checkpointing {}", db.display()))?;
    drop(conn);
    Ok(std::fs::metadata(db)?.len())
}

// ---- running and checking ----------------------------------------------------------------------

/// Runs `entity` and checks that its output is `[x + add for x in expected]`.
fn run_checked(
    host: &Host,
    sandbox: &Arc<Sandbox>,
    entity: &str,
    values: Vec<Value>,
    expected: std::ops::Range<i64>,
    add: i64,
) -> anyhow::Result<(Duration, Report)> {
    let t = Instant::now();
    let report = host
        .run_blocking(sandbox, entity, values, Options::default())
        .map_err(|e| anyhow!("{entity}: {e}"))?;
    let wall = t.elapsed();
    let out = match &report.result {
        Ok(Some(Value::List(out))) => out,
        Ok(other) => bail!("{entity} returned {other:?}, expected a list"),
        Err(f) => bail!("{entity} failed: {f}"),
    };
    ensure!(
        out.len() == expected.clone().count(),
        "{entity} returned {} elements, expected {}",
        out.len(),
        expected.count()
    );
    for (i, (got, x)) in out.iter().zip(expected).enumerate() {
        ensure!(
            *got == Value::Int(x + add),
            "{entity}: element {i} is {got:?}, expected {}",
            x + add
        );
    }
    Ok((wall, report))
}

fn entity<'a>(sandbox: &'a Sandbox, name: &str) -> anyhow::Result<&'a EntityDecl> {
    sandbox
        .decl
        .get(name)
        .with_context(|| format!("the module has no entity `{name}`"))
}

/// `given` in the entity's interface order.
fn inputs(decl: &EntityDecl, mut given: Vec<(&str, Value)>) -> anyhow::Result<Vec<Value>> {
    ensure!(
        given.len() == decl.interface.inputs.len(),
        "{} takes {} inputs",
        decl.name,
        decl.interface.inputs.len()
    );
    decl.interface
        .inputs
        .iter()
        .map(|p| {
            let i = given
                .iter()
                .position(|(n, _)| *n == p.name)
                .with_context(|| format!("no input `{}` for {}", p.name, decl.name))?;
            Ok(given.swap_remove(i).1)
        })
        .collect()
}

fn ints(r: std::ops::Range<i64>) -> Value {
    Value::List(r.map(Value::Int).collect())
}

/// Warms each of `fs` up, then times [`ROUNDS`] rounds of [`CALLS`] calls of each, taking
/// turns so that whatever else the machine does falls on all alike; the median µs per call.
fn interleaved<const N: usize>(
    mut fs: [&mut dyn FnMut() -> anyhow::Result<()>; N],
) -> anyhow::Result<[f64; N]> {
    for f in fs.iter_mut() {
        for _ in 0..WARMUP_CALLS {
            f()?;
        }
    }
    let mut rounds: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for _ in 0..ROUNDS {
        for (f, r) in fs.iter_mut().zip(rounds.iter_mut()) {
            let t = Instant::now();
            for _ in 0..CALLS {
                f()?;
            }
            r.push(t.elapsed().as_secs_f64() * 1e6 / CALLS as f64);
        }
    }
    Ok(rounds.map(median))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

// ---- builds and the machine --------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the repository")
        .to_path_buf()
}

struct Guests {
    nested: PathBuf,
    mixed: PathBuf,
}

/// Where the example guests are built (the same directory as the end-to-end suite's).
fn guest_paths() -> Guests {
    let dir = guest_target_dir().join("wasm32-wasip1/release");
    Guests {
        nested: dir.join("nested_dynamics.wasm"),
        mixed: dir.join("mixed_parallelism.wasm"),
    }
}

fn guest_target_dir() -> PathBuf {
    std::env::var_os("SANDFLOW_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("examples/target"))
}

/// Builds the example guests (a no-op when they are up to date), as tests/all/guests.rs does.
fn build_guests() -> anyhow::Result<Guests> {
    eprintln!("[bench] building the example guests (release, wasm32-wasip1)");
    let opts = BuildOptions {
        target_dir: Some(guest_target_dir()),
        ..BuildOptions::default()
    };
    guest_build::build(&repo().join("examples"), &opts)
        .context("building the guest crates for wasm32-wasip1 failed")?;
    let guests = guest_paths();
    for p in [&guests.nested, &guests.mixed] {
        ensure!(p.exists(), "{} is missing after the build", p.display());
    }
    Ok(guests)
}

/// Builds the release `sandflow` binary next to this bench binary (target/release/), so the
/// cold-start case runs the code this bench was built from.
fn build_cli() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/release/deps/sandflow-<hash> → target/release/sandflow
    let release = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench binary is not in <target>/release/deps")?;
    eprintln!("[bench] building the sandflow CLI (release)");
    let status = cargo()
        .args([
            "build",
            "--release",
            "-p",
            "sandflow-host",
            "--bin",
            "sandflow",
        ])
        .current_dir(repo())
        .status()?;
    ensure!(status.success(), "building target/release/sandflow failed");
    let cli = release.join("sandflow");
    ensure!(cli.exists(), "{} is missing after the build", cli.display());
    Ok(cli)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A `kB` line of /proc/self/status (`VmRSS`, `VmHWM`).
fn proc_status_kb(key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/self/status"))
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn machine(load_before: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                Some(
                    l.strip_prefix("model name")?
                        .split_once(':')?
                        .1
                        .trim()
                        .to_string(),
                )
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    // Other processes share the cores; the load says how much the numbers may suffer.
    format!(
        "Machine: {nproc} cores (nproc), CPU: {cpu}, kernel: {kernel}; load average \
         (1/5/15 min) before: {load_before}, after: {}",
        load_average()
    )
}

// ---- output ------------------------------------------------------------------------------------

#[derive(Default)]
struct Table(Vec<[String; 4]>);

impl Table {
    fn row(&mut self, case: &str, value: String, unit: &str, notes: String) {
        eprintln!("[bench]   {case}: {value} {unit}");
        self.0
            .push([case.to_string(), value, unit.to_string(), notes]);
    }

    fn markdown(&self) -> String {
        let mut s = String::from("| case | value | unit | notes |\n|---|---:|---|---|\n");
        for [case, value, unit, notes] in &self.0 {
            s.push_str(&format!("| {case} | {value} | {unit} | {notes} |\n"));
        }
        s
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `1234567` → `1 234 567`.
fn int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}
