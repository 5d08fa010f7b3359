//! `sandflow launch <module digest> <entity> --<input> <json> ...`: run an entity of a module
//! kept in the execution store (every module a run used is stored by its sha256), without
//! its file. The console's launch form starts its runs with it.

use super::execute::{execute, Launch};
use super::run::{gather_inputs, input_pairs, on_ctrl_c, start_host};
use super::store::open_existing_store;
use anyhow::bail;
use clap::Args;
use sandflow_host::runner::RunControls;
use sandflow_host::scheduler::Options;
use sandflow_host::store::{AnyStore, Store, StoreError, StoreRead};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Args)]
/// Run an entity of a module stored in the execution store (by its digest, or a prefix)
pub struct LaunchArgs {
    /// The module's sha256 digest, or a prefix of it that only it has
    module: String,
    /// The entity to run
    entity: String,
    /// Inputs as `--name <json>` (a bare word is taken as a string for string inputs)
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
    /// The execution store (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
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

/// Why no stored module was found for a digest prefix.
#[derive(Debug, thiserror::Error)]
pub enum ModuleLookupError {
    #[error("module {prefix:?}: expected a module's sha256 digest (hex), or a prefix of one")]
    NotADigest { prefix: String },
    #[error(
        "no module {prefix} in the execution store {} (a module is stored when a run uses it)",
        path.display()
    )]
    Unknown { prefix: String, path: PathBuf },
    #[error(
        "module prefix {prefix} is ambiguous in the execution store {}: {} modules start with \
         it ({}); give more of the digest",
        path.display(),
        matches.len(),
        matches.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    )]
    Ambiguous {
        prefix: String,
        path: PathBuf,
        matches: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The digest of the one stored module whose digest starts with `prefix`, or why not.
pub fn resolve_module(store: &AnyStore, prefix: &str) -> Result<String, ModuleLookupError> {
    let wanted = prefix.to_ascii_lowercase();
    if wanted.is_empty() || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ModuleLookupError::NotADigest {
            prefix: prefix.to_string(),
        });
    }
    let mut found: Vec<String> = store
        .modules()?
        .into_iter()
        .map(|m| m.digest)
        .filter(|d| d.starts_with(&wanted))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(ModuleLookupError::Unknown {
            prefix: prefix.to_string(),
            path: store.path().to_path_buf(),
        }),
        _ => Err(ModuleLookupError::Ambiguous {
            prefix: prefix.to_string(),
            path: store.path().to_path_buf(),
            matches: found,
        }),
    }
}

pub fn launch(mut args: LaunchArgs) -> anyhow::Result<u8> {
    let controls = Arc::new(RunControls::default());
    let run_started = Arc::new(AtomicBool::new(false));
    on_ctrl_c(controls.clone(), run_started.clone())?;
    let pairs = input_pairs(std::mem::take(&mut args.rest))?;
    let store = Arc::new(open_existing_store(args.db.clone())?);
    let digest = resolve_module(&store, &args.module)?;
    let module_bytes = store.module(&digest)?;
    let host = start_host(args.workers.unwrap_or(0))?;
    let origin = PathBuf::from(format!("<stored module {digest}>"));
    let sandbox = host.load_bytes(&module_bytes, &origin)?;
    let entity = sandbox
        .decl
        .find(&args.entity)
        .map_err(|e| anyhow::anyhow!("module {digest}: {e}"))?;
    let usage = format!("sandflow launch {}", &digest[..digest.len().min(12)]);
    let inputs = gather_inputs(args.inputs.as_deref(), &usage, &sandbox, entity, pairs)?;
    let mut opts = Options::default();
    if let Some(m) = args.max_parallelism {
        if m == 0 {
            bail!("--max-parallelism must be at least 1");
        }
        opts.max_parallelism = m;
    }
    let entity = entity.name.clone();
    execute(Launch {
        host,
        sandbox,
        module_bytes,
        entity,
        inputs,
        opts,
        tree: args.tree,
        logs: args.logs,
        store: Some(store as Arc<dyn Store>),
        recovered_from: None,
        controls,
        run_started,
    })
}
