//! Running a loaded entity to the end, for `run`, `recover` and `relaunch`: recorded in the
//! execution store unless `--no-store`, with a progress line on a terminal, the tree and logs
//! when asked, the summary on stderr and the output on stdout.

use anyhow::Context;
use clap::Args;
use sandflow_contract::{Type, Value};
use sandflow_host::json;
use sandflow_host::record::{module_record, Recorder};
use sandflow_host::remote_cancel;
use sandflow_host::runner::{Host, RunControls};
use sandflow_host::sandbox::Sandbox;
use sandflow_host::scheduler::{render_tree, Failure, Options, Scheduler, TreeNode, TreeOptions};
use sandflow_host::store::{AnyStore, ExecutionId, Store};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where executions are recorded.
#[derive(Args, Clone, Debug, Default)]
pub struct StoreArgs {
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Record nothing: run as if there were no store
    #[arg(long, conflicts_with = "db")]
    pub no_store: bool,
}

/// Opens the store a run records into (`None` with `--no-store`).
pub fn open_for_run(args: &StoreArgs) -> anyhow::Result<Option<Arc<dyn Store>>> {
    if args.no_store {
        return Ok(None);
    }
    let store = super::store::open_store(args.db.clone())
        .context("the execution store (give another with --db PATH, or run with --no-store)")?;
    Ok(Some(Arc::new(store)))
}

/// Everything a run needs, loaded and checked.
pub struct Launch {
    pub host: Host,
    pub sandbox: Arc<Sandbox>,
    pub module_bytes: Vec<u8>,
    pub entity: String,
    pub inputs: Vec<Value>,
    pub opts: Options,
    pub tree: bool,
    pub logs: bool,
    pub store: Option<Arc<dyn Store>>,
    /// The execution this run recovers.
    pub recovered_from: Option<ExecutionId>,
    pub controls: Arc<RunControls>,
    pub run_started: Arc<AtomicBool>,
}

/// What a run prints on stderr when it has started: `sandflow: running <entity> (execution
/// <id>)`. A supervisor waits for it before it cancels the run; the console reads the id from
/// it ([`started_execution`]).
pub fn started_line(entity: &str, execution: Option<&ExecutionId>) -> String {
    match execution {
        Some(id) => format!("sandflow: running {entity} (execution {id})"),
        None => format!("sandflow: running {entity}"),
    }
}

/// The execution id in a [`started_line`], if `line` is one.
pub fn started_execution(line: &str) -> Option<&str> {
    let rest = line.trim_end().strip_prefix("sandflow: running ")?;
    let id = rest.strip_suffix(')')?.rsplit_once(" (execution ")?.1;
    sandflow_host::store::is_id_text(id).then_some(id)
}

/// Runs `launch` to the end; the process exit code: 0 success, 1 failed (or not recorded),
/// 130 cancelled.
pub fn execute(mut launch: Launch) -> anyhow::Result<u8> {
    let output_type = launch
        .sandbox
        .decl
        .get(&launch.entity)
        .and_then(|e| e.interface.output.clone());
    let max_log_mb = launch.opts.max_log_bytes >> 20;
    let mut recorder = launch.store.clone().map(|store| {
        let module = module_record(&launch.module_bytes, &launch.sandbox.decl);
        Recorder::start(
            store,
            module,
            &launch.entity,
            &launch.inputs,
            launch.recovered_from.clone(),
        )
    });
    let done = Arc::new(AtomicBool::new(false));
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| show_progress(launch.controls.clone(), done.clone()));
    launch.run_started.store(true, Ordering::Relaxed);
    // A request from another process (`sandflow cancel`, the console) stops the run as
    // Ctrl-C does; the watch ends when it is dropped, after the run.
    let watch = match (&launch.store, &recorder) {
        (Some(store), Some(r)) => Some(
            remote_cancel::watch(
                store.clone(),
                r.execution().clone(),
                launch.controls.clone(),
            )
            .context("starting the thread that watches for cancel requests")?,
        ),
        _ => None,
    };
    // The execution is committed before the line that names it: whoever reads the id (the
    // console, `sandflow cancel`) finds it in the store. A failed write is kept by the
    // writer and reported when the run ends (`Recorder::close`), as any other.
    if let Some(store) = &launch.store {
        let _ = store.flush();
    }
    // The line a supervisor (or a test, or the console) waits for before it may cancel the run.
    eprintln!(
        "{}",
        started_line(&launch.entity, recorder.as_ref().map(|r| r.execution()))
    );
    // A run a worker started: its launch plan calls go to the queue, for any worker.
    let delegate = match (&recorder, super::children::claim_from_env()) {
        (Some(_), Some(claim)) => match std::env::var("SANDFLOW_DB") {
            Ok(url) if AnyStore::is_database_url(std::path::Path::new(&url)) => Some((
                claim,
                sandflow_host::store::PgStore::open(&url)
                    .context("opening the queue to delegate launch plan calls")?,
            )),
            _ => None,
        },
        _ => None,
    };
    launch.opts.delegate_launch_plans = delegate.is_some();
    let inputs = std::mem::take(&mut launch.inputs);
    let opts = launch.opts.clone();
    let controls = Some(launch.controls.clone());
    let report = match &mut recorder {
        Some(r) => match delegate {
            Some((claim, pg)) => {
                let module = r.module().to_string();
                let mut d = super::children::Delegating::new(r, pg, claim, module, &launch.opts)?;
                launch.host.run_observed(
                    &launch.sandbox,
                    &launch.entity,
                    inputs,
                    opts,
                    controls,
                    &mut d,
                )
            }
            None => {
                launch
                    .host
                    .run_observed(&launch.sandbox, &launch.entity, inputs, opts, controls, r)
            }
        },
        None => launch
            .host
            .run(&launch.sandbox, &launch.entity, inputs, opts, controls),
    };
    drop(watch);
    done.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.join();
    }
    let report = report?;
    print_diagnostics(&launch, &report.scheduler, max_log_mb);
    if launch.recovered_from.is_some() {
        let (reused, cached) = report.scheduler.reused();
        eprintln!(
            "sandflow: recovery reused {reused} nodes{}; {} task executions ran",
            if cached > 0 {
                format!(" and {cached} cached results")
            } else {
                String::new()
            },
            report.scheduler.attempts_started()
        );
    }
    // Everything the run did is committed before the process says how it ended.
    let recorded = recorder
        .as_ref()
        .map(|r| (r.execution().clone(), r.close()));
    let counts = (
        report.scheduler.attempts_started(),
        report.scheduler.child_executions() + report.scheduler.delegated_calls() as usize,
    );
    // The process ends right after this: leave the execution tree, the module and the engine
    // (its pool's slots, the worker threads) to the OS instead of freeing them piece by piece
    // (a few ms for the seed at 10 000 items). Everything the user sees is written before.
    std::mem::forget(report.scheduler);
    let entity = std::mem::take(&mut launch.entity);
    std::mem::forget(launch);
    let code = conclude(
        &entity,
        recorder
            .as_ref()
            .map(|r| r.execution().as_str())
            .unwrap_or(""),
        report.result,
        report.elapsed,
        counts,
        output_type,
    )?;
    std::mem::forget(recorder);
    match recorded {
        Some((id, Err(e))) => {
            eprintln!(
                "error: execution {id} ran, but recording it failed: {e}; what was recorded before stays"
            );
            Ok(if code == 0 { 1 } else { code })
        }
        _ => Ok(code),
    }
}

/// `--logs`, `--tree` and the note on task output that was not kept, on stderr.
fn print_diagnostics(launch: &Launch, scheduler: &Scheduler, max_log_mb: u64) {
    if launch.logs {
        let opts = TreeOptions {
            max_map_elements: usize::MAX,
        };
        print_logs(&scheduler.tree(&opts));
    }
    if launch.tree {
        eprint!("{}", render_tree(&scheduler.tree(&TreeOptions::default())));
    }
    let dropped = scheduler.logs_dropped();
    if dropped > 0 {
        eprintln!(
            "sandflow: {dropped} bytes of task output were not kept: the run keeps at most {max_log_mb} MiB of it in memory"
        );
    }
}

/// The summary line, the output on stdout, and the exit code.
fn conclude(
    entity_name: &str,
    execution: &str,
    result: Result<Option<Value>, Failure>,
    elapsed: Duration,
    (tasks, children): (u64, usize),
    output_type: Option<Type>,
) -> anyhow::Result<u8> {
    let ms = elapsed.as_secs_f64() * 1e3;
    let of = if execution.is_empty() {
        String::new()
    } else {
        format!(" [execution {execution}]")
    };
    match result {
        Ok(v) => {
            eprintln!(
                "sandflow: {entity_name} succeeded in {ms:.1} ms ({tasks} task executions, {children} child executions){of}"
            );
            if let (Some(v), Some(t)) = (v, output_type) {
                let text = serde_json::to_string(&json::to_json(&v, &t))?;
                super::print_stdout(&text);
            }
            Ok(0)
        }
        Err(f) if f.cancelled => {
            eprintln!("sandflow: {entity_name} cancelled after {ms:.1} ms{of}; `sandflow recover {execution}` finishes it");
            Ok(130)
        }
        Err(f) => {
            eprintln!("error: {entity_name} failed{of}: {f}");
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

#[cfg(test)]
mod tests {
    use super::{started_execution, started_line};
    use sandflow_host::store::ExecutionId;

    #[test]
    fn the_started_line_gives_back_its_execution_id() {
        let id = ExecutionId::generate();
        let line = started_line("multi_wf", Some(&id));
        assert_eq!(started_execution(&line), Some(id.as_str()));
        assert_eq!(started_execution(&format!("{line}\n")), Some(id.as_str()));
        // No store, another line, or something that is not an id: no execution.
        assert_eq!(started_execution(&started_line("multi_wf", None)), None);
        assert_eq!(
            started_execution("sandflow: multi_wf succeeded in 1 ms"),
            None
        );
        assert_eq!(
            started_execution("sandflow: running x (execution ../../etc)"),
            None
        );
    }
}
