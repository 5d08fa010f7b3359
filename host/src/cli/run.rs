//! `sandflow run <module> <entity> --<input> <json> ...`: run an entity, print its output as
//! JSON on stdout; logs, the summary and the execution tree go to stderr.

use super::build::module_path;
use super::execute::{execute, open_for_run, Launch, StoreArgs};
use anyhow::{bail, Context};
use clap::Args;
use sandflow_contract::{EntityDecl, Value};
use sandflow_host::json::{self, inputs_from_json};
use sandflow_host::module::ModuleError;
use sandflow_host::runner::{Host, RunControls};
use sandflow_host::sandbox::Sandbox;
use sandflow_host::scheduler::{Options, TaskOverrides};
use serde_json::Value as Json;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
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
    /// options below may also come after the entity, among the inputs
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "INPUTS"
    )]
    rest: Vec<String>,
    /// A JSON object of inputs (`-`: read it from standard input); `--name` flags override
    /// its keys
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Print the execution tree to stderr
    #[arg(long)]
    tree: bool,
    /// Print what each task execution wrote to stdout and stderr (to stderr, by node path)
    #[arg(long)]
    logs: bool,
    /// Running task executions at once in the top execution (default 25)
    #[arg(long, value_parser = small)]
    max_parallelism: Option<u32>,
    /// Sandbox worker threads (default: one per core)
    #[arg(long, value_parser = small_usize)]
    workers: Option<usize>,
    /// Wall-clock limit of every task attempt, overriding what tasks declare
    #[arg(long, value_parser = number)]
    task_timeout_ms: Option<u64>,
    /// Memory limit of every task attempt in MiB (at most 256), overriding what tasks declare
    #[arg(long, value_parser = number)]
    task_memory_mb: Option<u64>,
    /// Retries of every task, overriding what tasks declare
    #[arg(long, value_parser = small)]
    task_retries: Option<u32>,
    /// A deterministic CPU budget (wasmtime fuel) for every task attempt
    #[arg(long, value_parser = number)]
    task_fuel: Option<u64>,
    /// Host memory the run may hold for its nodes, graphs and values, in MiB (default 4096)
    #[arg(long, value_parser = number)]
    max_run_memory_mb: Option<u64>,
    /// Run cached tasks even when the task cache has their result, and replace it
    #[arg(long)]
    overwrite_cache: bool,
    /// Enqueue the execution in the store's work queue (PostgreSQL) for `sandflow worker`,
    /// print its id and exit
    #[arg(long)]
    submit: bool,
    /// Submit, then follow the execution to its end: the summary, output and exit code of a
    /// local run
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// An option's count or size (the message follows clap's "invalid value 'x' for '--name'").
fn number(v: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| "expected a non-negative integer".to_string())
}

fn small(v: &str) -> Result<u32, String> {
    v.parse()
        .map_err(|_| format!("expected an integer from 0 to {}", u32::MAX))
}

fn small_usize(v: &str) -> Result<usize, String> {
    small(v).map(|n| n as usize)
}

/// The largest `--task-memory-mb`: what the sandbox's engines allow any instance.
const MAX_TASK_MEMORY_MB: u64 =
    (sandflow_host::sandbox::SandboxConfig::DEFAULT_MAX_MEMORY_BYTES >> 20) as u64;

/// Longest piece of an argument quoted back in an error message.
const MAX_QUOTE: usize = 80;

/// `text`, or its first [`MAX_QUOTE`] characters and how long it was: an error message quotes
/// what was wrong, not the whole of a 100 KB input.
pub(super) fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTE) {
        None => text.into(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()).into(),
    }
}

/// The long options `RunArgs` declares, by name, and whether each takes a value: clap's own
/// definition, so a new flag is declared once.
fn declared_options<A: Args>() -> Vec<(String, bool)> {
    A::augment_args(clap::Command::new("run"))
        .get_arguments()
        .filter_map(|a| Some((a.get_long()?.to_string(), a.get_action().takes_values())))
        .collect()
}

/// `sandflow run`'s (and `relaunch`'s and `launch`'s) arguments with the options given among the inputs moved before the module
/// (`run [options] <module> <entity> -- <inputs>`), so clap parses every option, wherever it
/// stands, and `rest` holds only the inputs. Other commands' arguments are returned as they are.
pub fn hoist_options(argv: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    // The commands that take `--<input> <json>` pairs after their positionals.
    let (known, wanted) = match argv.get(1).and_then(|a| a.to_str()) {
        Some("run") => (declared_options::<RunArgs>(), 2),
        Some("relaunch") => (declared_options::<super::again::RelaunchArgs>(), 1),
        Some("launch") => (declared_options::<super::launch::LaunchArgs>(), 2),
        _ => return Ok(argv),
    };
    // What `token` is: a declared option with its value next (`Some(true)`), a declared
    // option complete in itself (`Some(false)`: a flag, or `--name=value`), or not one.
    let option = |token: &OsStr| {
        let flag = token.to_str()?.strip_prefix("--")?;
        let (name, inline) = match flag.split_once('=') {
            Some((name, _)) => (name, true),
            None => (flag, false),
        };
        let takes_value = known.iter().find(|(k, _)| k == name)?.1;
        // `--tree=x` is no option: taken as an input, as it always was.
        (takes_value || !inline).then_some(takes_value && !inline)
    };
    let mut it = argv.into_iter();
    let mut head: Vec<OsString> = it.by_ref().take(2).collect();
    // The options before the module and the entity stay where they are (clap parses them);
    // the two positionals end that part.
    let mut positionals = 0;
    while positionals < wanted {
        let Some(token) = it.next() else {
            return Ok(head);
        };
        if token == "--" {
            head.push(token);
            head.extend(it);
            return Ok(head);
        }
        match option(&token) {
            Some(true) => {
                head.push(token);
                head.extend(it.next());
                continue;
            }
            Some(false) => {}
            None if token.to_string_lossy().starts_with('-') => {}
            None => positionals += 1,
        }
        head.push(token);
    }
    let (positional_end, mut moved, mut inputs) = (head.len() - wanted, Vec::new(), Vec::new());
    while let Some(token) = it.next() {
        match option(&token) {
            Some(true) => {
                let value = it
                    .next()
                    .with_context(|| format!("{} needs a value", token.to_string_lossy()))?;
                moved.extend([token, value]);
            }
            Some(false) => moved.push(token),
            None => {
                // `--name <value>`: the value is the next argument, whatever it looks like.
                let pair = token
                    .to_str()
                    .is_some_and(|t| t.starts_with("--") && !t.contains('='));
                inputs.push(token);
                if pair {
                    inputs.extend(it.next());
                }
            }
        }
    }
    head.splice(positional_end..positional_end, moved);
    if !inputs.is_empty() {
        head.push("--".into());
        head.extend(inputs);
    }
    Ok(head)
}

/// The `--name value` / `--name=value` input pairs, each name once.
pub(super) fn input_pairs(rest: Vec<String>) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut it = rest.into_iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else {
            bail!(
                "unexpected argument `{}`: inputs are given as `--name <json>`",
                clip(&a)
            );
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let value = it
                    .next()
                    .with_context(|| format!("--{flag} needs a value"))?;
                (flag.to_string(), value)
            }
        };
        if pairs.iter().any(|(n, _)| *n == name) {
            bail!("--{name} is given twice: give each input once");
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Installs the Ctrl-C handler: before the run starts (building the guest, compiling the
/// module) it exits 130; after, it sets the run's cancel flag and the run stops its instances
/// and returns what it has. Installed first, so an early Ctrl-C never kills the process
/// unreported.
pub(super) fn on_ctrl_c(
    controls: Arc<RunControls>,
    started: Arc<AtomicBool>,
) -> std::io::Result<()> {
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
                controls.cancel.store(true, Ordering::Relaxed);
            }
        })?;
    Ok(())
}

/// The run's options from the command line, checked.
pub(super) fn options(args: &RunArgs) -> anyhow::Result<Options> {
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
    opts.overwrite_cache = args.overwrite_cache;
    opts.overrides = TaskOverrides {
        retries: args.task_retries,
        timeout_ms: args.task_timeout_ms,
        max_memory_mb: args.task_memory_mb,
        fuel: args.task_fuel,
    };
    Ok(opts)
}

/// The host with `--workers` sandbox threads, or an error that says what to try.
pub(super) fn start_host(workers: usize) -> anyhow::Result<Host> {
    Host::new(workers).map_err(|e| {
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
    })
}

/// The JSON object of inputs in `--inputs <file>` (`-`: standard input, which is how the
/// console hands a form's values to the run it starts), by name.
pub(super) fn inputs_file(file: &Path) -> anyhow::Result<serde_json::Map<String, Json>> {
    let from = if file == Path::new("-") {
        "--inputs - (standard input)".to_string()
    } else {
        format!("--inputs {}", file.display())
    };
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).with_context(|| from.clone())?
    } else {
        std::fs::read_to_string(file).with_context(|| from.clone())?
    };
    let obj: Json =
        serde_json::from_str(&text).with_context(|| format!("{from}: not valid JSON"))?;
    let Json::Object(map) = obj else {
        bail!(
            "{from}: expected a JSON object of inputs, found {}",
            clip(&obj.to_string())
        );
    };
    Ok(map)
}

/// `--name <value>` as JSON: a bare word is taken as a string where the input takes one.
pub(super) fn pair_json(entity: &EntityDecl, name: &str, raw: String) -> anyhow::Result<Json> {
    let is_str = entity
        .interface
        .input(name)
        .is_some_and(|p| json::takes_bare_word(&p.ty));
    match serde_json::from_str::<Json>(&raw) {
        Ok(j) => Ok(j),
        Err(_) if is_str => Ok(Json::String(raw)),
        Err(e) => bail!("--{name} {}: not valid JSON ({e})", clip(&raw)),
    }
}

/// The entity's inputs: the `--inputs` file's keys, overridden by the `--name` pairs;
/// `usage` is the command line an error shows (`sandflow run m.wasm`).
pub(super) fn gather_inputs(
    file: Option<&Path>,
    usage: &str,
    sandbox: &Sandbox,
    entity: &EntityDecl,
    pairs: Vec<(String, String)>,
) -> anyhow::Result<Vec<Value>> {
    let mut given: Vec<(String, Json)> = Vec::new();
    if let Some(file) = file {
        // Flags override the file's keys.
        given.extend(
            inputs_file(file)?
                .into_iter()
                .filter(|(k, _)| !pairs.iter().any(|(n, _)| n == k)),
        );
    }
    for (name, raw) in pairs {
        let j = pair_json(entity, &name, raw)?;
        given.push((name, j));
    }
    inputs_from_json(&sandbox.decl, entity, &given).map_err(|e| {
        anyhow::anyhow!(
            "{e}; usage: {usage} {} {}",
            entity.name,
            json::signature(entity)
        )
    })
}

/// The options of a submitted run that its worker's run takes too, as `sandflow run` reads
/// them: how it runs, not how this machine runs it (`--workers`) or what it prints.
fn queued_options(args: &RunArgs) -> Vec<String> {
    let mut out = Vec::new();
    let mut put = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push(format!("--{name}"));
            out.push(v);
        }
    };
    put(
        "max-parallelism",
        args.max_parallelism.map(|v| v.to_string()),
    );
    put(
        "task-timeout-ms",
        args.task_timeout_ms.map(|v| v.to_string()),
    );
    put("task-memory-mb", args.task_memory_mb.map(|v| v.to_string()));
    put("task-retries", args.task_retries.map(|v| v.to_string()));
    put("task-fuel", args.task_fuel.map(|v| v.to_string()));
    put(
        "max-run-memory-mb",
        args.max_run_memory_mb.map(|v| v.to_string()),
    );
    if args.overwrite_cache {
        out.push("--overwrite-cache".into());
    }
    out
}

/// Runs the entity; the process exit code: 0 success, 1 failed, 130 cancelled.
pub fn run(mut args: RunArgs) -> anyhow::Result<u8> {
    let controls = Arc::new(RunControls::default());
    let run_started = Arc::new(AtomicBool::new(false));
    on_ctrl_c(controls.clone(), run_started.clone())?;
    let pairs = input_pairs(std::mem::take(&mut args.rest))?;
    let opts = options(&args)?;
    let host = start_host(args.workers.unwrap_or(0))?;
    let path = module_path(&args.module)?;
    let module_bytes = std::fs::read(&path).map_err(|source| ModuleError::Read {
        path: path.clone(),
        source,
    })?;
    let sandbox = host.load_bytes(&module_bytes, &path)?;
    let entity = sandbox
        .decl
        .find(&args.entity)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.module.display()))?;
    let usage = format!("sandflow run {}", args.module.display());
    let inputs = gather_inputs(args.inputs.as_deref(), &usage, &sandbox, entity, pairs)?;
    if args.submit || args.wait {
        return super::submit::submit(
            &args.store,
            &module_bytes,
            &sandbox,
            entity,
            &inputs,
            args.wait,
            &queued_options(&args),
        );
    }
    let entity_name = entity.name.clone();

    let launch = Launch {
        host,
        sandbox,
        module_bytes,
        entity: entity_name,
        inputs,
        opts,
        tree: args.tree,
        logs: args.logs,
        store: open_for_run(&args.store)?,
        recovered_from: None,
        controls,
        run_started,
    };
    execute(launch)
}

#[cfg(test)]
mod tests {
    use super::{hoist_options, input_pairs};
    use std::ffi::OsString;

    fn hoist(args: &str) -> String {
        let argv: Vec<OsString> = args.split(' ').map(OsString::from).collect();
        let out = hoist_options(argv).expect("hoists");
        out.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn options_among_the_inputs_move_before_the_module() {
        assert_eq!(
            hoist("sandflow run --logs m e --a 1 --tree --workers 2 --task-fuel=9 --b=x"),
            "sandflow run --logs --tree --workers 2 --task-fuel=9 m e -- --a 1 --b=x"
        );
        assert_eq!(
            hoist("sandflow run --workers 2 m e --tree"),
            "sandflow run --workers 2 --tree m e"
        );
        assert_eq!(
            hoist("sandflow describe m --tree"),
            "sandflow describe m --tree"
        );
    }

    #[test]
    fn an_inputs_value_is_never_taken_for_an_option() {
        assert_eq!(
            hoist("sandflow run m e --s --tree --tree=1"),
            "sandflow run m e -- --s --tree --tree=1"
        );
    }

    #[test]
    fn an_option_without_its_value_is_named() {
        let argv = ["sandflow", "run", "m", "e", "--a", "1", "--workers"].map(OsString::from);
        let e = hoist_options(argv.to_vec()).unwrap_err();
        assert_eq!(e.to_string(), "--workers needs a value");
    }

    #[test]
    fn inputs_are_pairs_each_given_once() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            input_pairs(args("--a 1 --b=x")).unwrap(),
            [("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        let e = input_pairs(args("--a 1 --a=2")).unwrap_err();
        assert_eq!(e.to_string(), "--a is given twice: give each input once");
        let e = input_pairs(args("word")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected argument `word`: inputs are given as `--name <json>`"
        );
        let e = input_pairs(args("--a")).unwrap_err();
        assert_eq!(e.to_string(), "--a needs a value");
    }
}
