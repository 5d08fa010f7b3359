//! `sandflow recover <id>` and `sandflow relaunch <id> [--<input> <json> ...]`: run a recorded
//! execution again from the store: its module (stored by content, so the crate may have
//! changed or the .wasm moved), its entity and its inputs.
//!
//! A recovery reuses every task the original finished (its recorded output) and every graph
//! a dynamic returned, and runs only what did not finish; a relaunch runs everything again,
//! with some inputs replaced if given.

use super::execute::{execute, Launch};
use super::run::{input_pairs, inputs_file, on_ctrl_c, pair_json, start_host};
use super::store::open_store;
use anyhow::{bail, Context};
use clap::Args;
use sandflow_contract::Value;
use sandflow_host::json;
use sandflow_host::runner::RunControls;
use sandflow_host::scheduler::Options;
use sandflow_host::store::{AnyStore, ExecStatus, Execution, Store, StoreRead};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Options shared by `recover` and `relaunch`.
#[derive(Args)]
pub struct AgainArgs {
    /// The execution (its id, or a prefix of it that only it has)
    id: String,
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Print the execution tree to stderr
    #[arg(long)]
    tree: bool,
    /// Print what each task execution wrote (to stderr, by node path)
    #[arg(long)]
    logs: bool,
    /// Sandbox worker threads (default: one per core)
    #[arg(long)]
    workers: Option<usize>,
    /// Running task executions at once in the top execution (default 25)
    #[arg(long)]
    max_parallelism: Option<u32>,
}

#[derive(Args)]
/// Finish a failed, cancelled or interrupted execution: reuse what it finished, run the rest
pub struct RecoverArgs {
    #[command(flatten)]
    again: AgainArgs,
}

#[derive(Args)]
/// Run an execution again with the same inputs, or with some replaced (`--name <json>`)
pub struct RelaunchArgs {
    #[command(flatten)]
    again: AgainArgs,
    /// Inputs to replace, as `--name <json>`
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "INPUTS"
    )]
    rest: Vec<String>,
    /// A JSON object of inputs to replace (`-`: read it from standard input); `--name`
    /// flags override its keys
    #[arg(long)]
    inputs: Option<PathBuf>,
}

/// The store, the execution (its whole tree's root) and what is needed to run it again.
struct Recorded {
    store: Arc<AnyStore>,
    execution: Execution,
    module: Vec<u8>,
}

fn open(args: &AgainArgs) -> anyhow::Result<Recorded> {
    let store = Arc::new(open_store(args.db.clone())?);
    let mut execution = store.execution_uncounted(&args.id)?;
    if let Some(parent) = &execution.summary.parent {
        // Node keys (what a recovery matches on) are the whole run's: run its top execution.
        let root = execution.summary.root.clone();
        eprintln!(
            "sandflow: {} is a child execution (of {parent}); running its top execution {root}",
            execution.summary.id
        );
        execution = store.execution_uncounted(root.as_str())?;
    }
    if execution.summary.status == ExecStatus::Running {
        bail!(
            "execution {} is still running (process {} on {}); cancel it first or wait",
            execution.summary.id,
            execution.summary.owner.pid,
            execution.summary.owner.host
        );
    }
    let module = store.module(&execution.summary.module).with_context(|| {
        format!(
            "execution {} cannot run again: its module is not in the store",
            execution.summary.id
        )
    })?;
    Ok(Recorded {
        store,
        execution,
        module,
    })
}

/// Loads the recorded module and prepares the run of the recorded entity on `inputs`.
fn launch(
    args: &AgainArgs,
    rec: &Recorded,
    inputs: impl FnOnce(&sandflow_contract::EntityDecl) -> anyhow::Result<Vec<Value>>,
    opts: Options,
    recovered: bool,
) -> anyhow::Result<Launch> {
    let controls = Arc::new(RunControls::default());
    let run_started = Arc::new(AtomicBool::new(false));
    on_ctrl_c(controls.clone(), run_started.clone())?;
    let host = start_host(args.workers.unwrap_or(0))?;
    let id = &rec.execution.summary.id;
    let origin = PathBuf::from(format!("<module of execution {id}>"));
    let sandbox = host.load_bytes(&rec.module, Path::new(&origin))?;
    let name = &rec.execution.summary.entity;
    let Some(entity) = sandbox.decl.get(name) else {
        bail!("execution {id} ran `{name}`, which its recorded module does not declare");
    };
    let inputs = inputs(entity)?;
    let mut opts = opts;
    if let Some(m) = args.max_parallelism {
        if m == 0 {
            bail!("--max-parallelism must be at least 1");
        }
        opts.max_parallelism = m;
    }
    Ok(Launch {
        entity: name.clone(),
        host,
        sandbox,
        module_bytes: rec.module.clone(),
        inputs,
        opts,
        tree: args.tree,
        logs: args.logs,
        store: Some(rec.store.clone() as Arc<dyn Store>),
        recovered_from: recovered.then(|| id.clone()),
        controls,
        run_started,
    })
}

/// The recorded inputs, in interface order.
fn recorded_inputs(rec: &Recorded, arity: usize) -> anyhow::Result<Vec<Value>> {
    match &rec.execution.inputs {
        Value::List(items) if items.len() == arity => Ok(items.clone()),
        _ => bail!(
            "execution {}: its recorded inputs do not fit its entity's interface",
            rec.execution.summary.id
        ),
    }
}

pub fn recover(args: RecoverArgs) -> anyhow::Result<u8> {
    let rec = open(&args.again)?;
    let id = rec.execution.summary.id.clone();
    let recovered = rec.store.recovered(&id)?;
    eprintln!(
        "sandflow: recovering {id} ({}): {} node results and {} dynamic graphs recorded",
        rec.execution.summary.status,
        recovered.outputs.len(),
        recovered.graphs.len()
    );
    let opts = Options {
        recovered: Some(Arc::new(recovered)),
        ..Options::default()
    };
    let launch = launch(
        &args.again,
        &rec,
        |e| recorded_inputs(&rec, e.interface.inputs.len()),
        opts,
        true,
    )?;
    execute(launch)
}

pub fn relaunch(args: RelaunchArgs) -> anyhow::Result<u8> {
    let rec = open(&args.again)?;
    let pairs = input_pairs(args.rest)?;
    // Read before the run starts: standard input is the console's form.
    let file = match &args.inputs {
        Some(f) => inputs_file(f)?,
        None => serde_json::Map::new(),
    };
    let inputs = |e: &sandflow_contract::EntityDecl| -> anyhow::Result<Vec<Value>> {
        let mut values = recorded_inputs(&rec, e.interface.inputs.len())?;
        // The file's keys, then the flags (which override them).
        let mut given: Vec<(String, Json)> = file
            .into_iter()
            .filter(|(k, _)| !pairs.iter().any(|(n, _)| n == k))
            .collect();
        for (name, raw) in pairs {
            let j = pair_json(e, &name, raw)?;
            given.push((name, j));
        }
        for (name, j) in given {
            let Some(k) = e.interface.inputs.iter().position(|p| p.name == name) else {
                bail!(
                    "unknown input `{name}`; {} takes {}",
                    e.name,
                    json::signature(e)
                );
            };
            let ty = &e.interface.inputs[k].ty;
            values[k] = json::from_json(&j, ty, &name, &mut String::new())?;
        }
        Ok(values)
    };
    let launch = launch(&args.again, &rec, inputs, Options::default(), false)?;
    execute(launch)
}
