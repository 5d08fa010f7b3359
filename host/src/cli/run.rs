//! `sandflow run <module> <entity> --<input> <json> ...`: run an entity, print its output as
//! JSON on stdout; logs, the summary and the execution tree go to stderr.

use super::build::module_path;
use anyhow::{bail, Context};
use clap::Args;
use sandflow_host::json::{self, inputs_from_json};
use sandflow_host::runner::{Host, RunControls};
use sandflow_host::scheduler::{render_tree, Options, TaskOverrides, TreeNode, TreeOptions};
use serde_json::Value as Json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Args)]
/// Run a task, workflow, dynamic or launch plan of a module
pub struct RunArgs {
    /// A .wasm module, or a guest crate directory to build for wasm32-wasip1 first
    module: PathBuf,
    /// The entity to run (see `sandflow describe`)
    entity: String,
    /// Inputs as `--name <json>` (a bare word is taken as a string for string inputs); the
    /// options below may also come after the entity
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "INPUTS"
    )]
    rest: Vec<String>,
    /// A JSON object of inputs; `--name` flags override its keys
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Print the execution tree to stderr
    #[arg(long)]
    tree: bool,
    /// Print what each task execution wrote to stdout and stderr (to stderr, by node path)
    #[arg(long)]
    logs: bool,
    /// Running task executions at once in the top execution (default 25)
    #[arg(long)]
    max_parallelism: Option<u32>,
    /// Sandbox worker threads (default: one per core)
    #[arg(long)]
    workers: Option<usize>,
    /// Wall-clock limit of every task attempt, overriding what tasks declare
    #[arg(long)]
    task_timeout_ms: Option<u64>,
    /// Memory limit of every task attempt in MiB (at most 256), overriding what tasks declare
    #[arg(long)]
    task_memory_mb: Option<u64>,
    /// Retries of every task, overriding what tasks declare
    #[arg(long)]
    task_retries: Option<u32>,
    /// A deterministic CPU budget (wasmtime fuel) for every task attempt
    #[arg(long)]
    task_fuel: Option<u64>,
    /// Host memory the run may hold for its nodes, graphs and values, in MiB (default 4096)
    #[arg(long)]
    max_run_memory_mb: Option<u64>,
}

/// The largest `--task-memory-mb`: what the sandbox's engines allow any instance.
const MAX_TASK_MEMORY_MB: u64 =
    (sandflow_host::sandbox::SandboxConfig::DEFAULT_MAX_MEMORY_BYTES >> 20) as u64;

/// Longest piece of an argument quoted back in an error message.
const MAX_QUOTE: usize = 80;

/// `text`, or its first [`MAX_QUOTE`] characters and how long it was: an error message quotes
/// what was wrong, not the whole of a 100 KB input.
fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTE) {
        None => text.into(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()).into(),
    }
}

/// Splits `--name value` / `--name=value` pairs; `--tree` and friends may sit among them.
fn parse_rest(args: &mut RunArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut it = std::mem::take(&mut args.rest).into_iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else {
            bail!(
                "unexpected argument `{}`: inputs are given as `--name <json>`",
                clip(&a)
            );
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if name == "tree" && inline.is_none() {
            args.tree = true;
            continue;
        }
        if name == "logs" && inline.is_none() {
            args.logs = true;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .with_context(|| format!("--{name} needs a value"))?,
        };
        let number = |v: &str| -> anyhow::Result<u64> {
            v.parse()
                .with_context(|| format!("--{name} {v}: expected a non-negative integer"))
        };
        let small = |v: &str| -> anyhow::Result<u32> {
            v.parse().with_context(|| {
                format!("--{name} {v}: expected an integer from 0 to {}", u32::MAX)
            })
        };
        match name.as_str() {
            "inputs" => args.inputs = Some(value.into()),
            "max-parallelism" => args.max_parallelism = Some(small(&value)?),
            "workers" => args.workers = Some(small(&value)? as usize),
            "task-timeout-ms" => args.task_timeout_ms = Some(number(&value)?),
            "task-memory-mb" => args.task_memory_mb = Some(number(&value)?),
            "task-retries" => args.task_retries = Some(small(&value)?),
            "task-fuel" => args.task_fuel = Some(number(&value)?),
            "max-run-memory-mb" => args.max_run_memory_mb = Some(number(&value)?),
            _ if pairs.iter().any(|(n, _)| *n == name) => {
                bail!("--{name} is given twice: give each input once")
            }
            _ => pairs.push((name, value)),
        }
    }
    Ok(pairs)
}

/// Runs the entity; the process exit code: 0 success, 1 failed, 130 cancelled.
pub fn run(mut args: RunArgs) -> anyhow::Result<u8> {
    // Ctrl-C sets the run's cancel flag; the run stops its instances and returns what it has.
    // Before the run starts (building the guest, compiling the module), it just exits 130.
    // The handler is installed first, so an early Ctrl-C never kills the process unreported.
    let controls = Arc::new(RunControls::default());
    let run_started = Arc::new(AtomicBool::new(false));
    let (signals, started) = (controls.clone(), run_started.clone());
    std::thread::Builder::new()
        .name("sandflow-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
                if !started.load(Ordering::Relaxed) {
                    eprintln!("sandflow: cancelled before the run started");
                    std::process::exit(130);
                }
                signals.cancel.store(true, Ordering::Relaxed);
            }
        })?;
    let pairs = parse_rest(&mut args)?;
    if args.max_parallelism == Some(0) {
        bail!("--max-parallelism must be at least 1");
    }
    if args.task_timeout_ms == Some(0) {
        bail!("--task-timeout-ms 0: a task needs at least 1 ms");
    }
    match args.task_memory_mb {
        Some(0) => bail!("--task-memory-mb 0: a task needs at least 1 MiB of memory"),
        Some(mb) if mb > MAX_TASK_MEMORY_MB => bail!(
            "--task-memory-mb {mb}: at most {MAX_TASK_MEMORY_MB} (the sandbox's memory limit)"
        ),
        _ => {}
    }
    let workers = args.workers.unwrap_or(0);
    let host = Host::new(workers).map_err(|e| {
        anyhow::anyhow!(
            "{}could not start the sandbox workers: {e:#}{}",
            if workers > 0 { format!("--workers {workers}: ") } else { String::new() },
            if workers > 0 {
                format!(
                    "; each worker reserves its own instance pool, so try fewer (this machine has {} cores)",
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                )
            } else {
                String::new()
            }
        )
    })?;
    let sandbox = host.load(&module_path(&args.module)?)?;
    let Some(entity) = sandbox.decl.get(&args.entity) else {
        bail!(
            "unknown entity `{}`; {} has: {}",
            args.entity,
            args.module.display(),
            sandbox.decl.names()
        );
    };
    let mut given: Vec<(String, Json)> = Vec::new();
    if let Some(file) = &args.inputs {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--inputs {}", file.display()))?;
        let obj: Json = serde_json::from_str(&text)
            .with_context(|| format!("--inputs {}: not valid JSON", file.display()))?;
        let Json::Object(map) = obj else {
            bail!(
                "--inputs {}: expected a JSON object of inputs, found {}",
                file.display(),
                clip(&obj.to_string())
            );
        };
        // Flags override the file's keys.
        given.extend(
            map.into_iter()
                .filter(|(k, _)| !pairs.iter().any(|(n, _)| n == k)),
        );
    }
    for (name, raw) in pairs {
        let is_str = entity
            .interface
            .input(&name)
            .is_some_and(|p| p.ty == sandflow_contract::Type::Str);
        let j = match serde_json::from_str::<Json>(&raw) {
            Ok(j) => j,
            Err(_) if is_str => Json::String(raw),
            Err(e) => bail!("--{name} {}: not valid JSON ({e})", clip(&raw)),
        };
        given.push((name, j));
    }
    let inputs = inputs_from_json(&sandbox.decl, entity, &given).map_err(|e| {
        anyhow::anyhow!(
            "{e}; usage: sandflow run {} {} {}",
            args.module.display(),
            entity.name,
            json::signature(entity)
        )
    })?;
    let output_type = entity.interface.output.clone();
    let mut opts = Options::default();
    if let Some(m) = args.max_parallelism {
        opts.max_parallelism = m;
    }
    if let Some(mb) = args.max_run_memory_mb {
        if mb == 0 {
            bail!("--max-run-memory-mb must be at least 1");
        }
        opts.max_run_memory_bytes = mb.saturating_mul(1 << 20);
    }
    opts.overrides = TaskOverrides {
        retries: args.task_retries,
        timeout_ms: args.task_timeout_ms,
        max_memory_mb: args.task_memory_mb,
        fuel: args.task_fuel,
    };
    let opts_log_mb = opts.max_log_bytes >> 20;
    let done = Arc::new(AtomicBool::new(false));
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| show_progress(controls.clone(), done.clone()));
    let entity_name = entity.name.clone();
    run_started.store(true, Ordering::Relaxed);
    let report = host.run(&sandbox, &entity_name, inputs, opts, Some(controls));
    done.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.join();
    }
    let report = report?;
    if args.logs {
        let opts = TreeOptions {
            max_map_elements: usize::MAX,
        };
        print_logs(&report.scheduler.tree(&opts));
    }
    if args.tree {
        eprint!(
            "{}",
            render_tree(&report.scheduler.tree(&TreeOptions::default()))
        );
    }
    let dropped = report.scheduler.logs_dropped();
    if dropped > 0 {
        eprintln!(
            "sandflow: {dropped} bytes of task output were not kept: the run keeps at most {} MiB of it in memory",
            opts_log_mb
        );
    }
    let tasks = report.scheduler.attempts_started();
    let children = report.scheduler.child_executions();
    // The process ends right after this: leave the execution tree, the module and the engine
    // (its pool's slots, the worker threads) to the OS instead of freeing them piece by piece
    // (a few ms for the seed at 10 000 items). Everything the user sees is written before.
    std::mem::forget(report.scheduler);
    std::mem::forget(sandbox);
    std::mem::forget(host);
    match report.result {
        Ok(v) => {
            eprintln!(
                "sandflow: {entity_name} succeeded in {:.1} ms ({tasks} task executions, {children} child executions)",
                report.elapsed.as_secs_f64() * 1e3
            );
            if let (Some(v), Some(t)) = (v, output_type) {
                let text = serde_json::to_string(&json::to_json(&v, &t))?;
                super::print_stdout(&text);
            }
            Ok(0)
        }
        Err(f) if f.cancelled => {
            eprintln!(
                "sandflow: {entity_name} cancelled after {:.1} ms",
                report.elapsed.as_secs_f64() * 1e3
            );
            Ok(130)
        }
        Err(f) => {
            eprintln!("error: {entity_name} failed: {f}");
            Ok(1)
        }
    }
}

/// Prints what every attempt of `n` and its children wrote, each line marked with the node
/// path (and the attempt, for a node that ran more than once).
fn print_logs(n: &TreeNode) {
    let many = n.attempts > 1;
    for a in &n.earlier_attempts {
        print_streams(
            &n.path,
            Some(a.attempt),
            &a.stdout,
            &a.stderr,
            a.logs_dropped,
        );
    }
    let last = many.then_some(n.attempts);
    print_streams(&n.path, last, &n.stdout, &n.stderr, n.logs_dropped);
    n.children.iter().for_each(print_logs);
}

fn print_streams(
    path: &str,
    attempt: Option<u32>,
    stdout: &Option<String>,
    stderr: &Option<String>,
    dropped: u64,
) {
    let at = attempt.map(|a| format!(" attempt {a}")).unwrap_or_default();
    for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
        for line in text.iter().flat_map(|t| t.lines()) {
            eprintln!("[{path}{at} {stream}] {line}");
        }
    }
    if dropped > 0 {
        eprintln!("[{path}{at}] {dropped} bytes of output not kept: the run's in-memory log budget was spent");
    }
}

/// On a terminal, a status line on stderr while the run goes: task executions ended and
/// running, and the time so far. Cleared when the run ends.
fn show_progress(controls: Arc<RunControls>, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        let mut shown = false;
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let ended = controls.ended.load(Ordering::Relaxed);
            let running = controls
                .started
                .load(Ordering::Relaxed)
                .saturating_sub(ended);
            eprint!(
                "\r\x1b[2Ksandflow: {ended} task executions done, {running} running, {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            shown = true;
        }
        if shown {
            eprint!("\r\x1b[2K");
        }
    })
}
