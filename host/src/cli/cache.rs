//! `sandflow cache list [--task NAME]` and `sandflow cache clear [--task NAME]`: the task
//! cache in the execution store.

use super::store::{local_time, open_existing_store};
use clap::{Args, Subcommand};
use sandflow_host::store::{StoreRead, StoreWrite};
use serde_json::{json, Value as Json};
use std::path::PathBuf;

#[derive(Args)]
/// List or clear the task cache
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List cache entries, by task
    List(ListArgs),
    /// Remove cache entries (of one task, or all)
    Clear(ClearArgs),
}

#[derive(Args)]
struct ListArgs {
    /// Only the entries of this task
    #[arg(long)]
    task: Option<String>,
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long)]
    db: Option<PathBuf>,
    /// One JSON array of entries
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ClearArgs {
    /// Only the entries of this task
    #[arg(long)]
    task: Option<String>,
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long)]
    db: Option<PathBuf>,
}

pub fn cache(args: CacheArgs) -> anyhow::Result<u8> {
    match args.command {
        CacheCommand::List(a) => list(a),
        CacheCommand::Clear(a) => clear(a),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn list(args: ListArgs) -> anyhow::Result<u8> {
    let store = open_existing_store(args.db)?;
    let entries = store.cache_list(args.task.as_deref())?;
    if args.json {
        let all: Vec<Json> = entries
            .iter()
            .map(|e| {
                json!({
                    "task": e.task,
                    "cache_version": e.cache_version,
                    "key": hex(&e.key),
                    "created": local_time(e.created_ms),
                    "created_ms": e.created_ms,
                    "execution": e.execution.as_str(),
                    "node": format!("{:016x}", e.node),
                })
            })
            .collect();
        super::print_stdout(&serde_json::to_string_pretty(&Json::Array(all))?);
        return Ok(0);
    }
    if entries.is_empty() {
        let of = args
            .task
            .map(|t| format!(" of task {t}"))
            .unwrap_or_default();
        super::print_stdout(&format!("no cache entries{of} in {}", store.location()));
        return Ok(0);
    }
    let mut text = vec![format!(
        "{:<24}  {:<8}  {:<19}  {:<12}  KEY",
        "TASK", "VERSION", "CREATED", "EXECUTION"
    )];
    for e in &entries {
        text.push(format!(
            "{:<24}  {:<8}  {:<19}  {:<12}  {}",
            e.task,
            e.cache_version,
            local_time(e.created_ms),
            e.execution,
            // The key's first 8 bytes tell entries apart to the eye; --json has all of it.
            hex(&e.key[..e.key.len().min(8)])
        ));
    }
    super::print_stdout(&text.join("\n"));
    Ok(0)
}

fn clear(args: ClearArgs) -> anyhow::Result<u8> {
    let store = open_existing_store(args.db)?;
    let n = store.cache_clear(args.task.as_deref())?;
    let of = args
        .task
        .map(|t| format!(" of task {t}"))
        .unwrap_or_default();
    super::print_stdout(&format!(
        "removed {n} cache entries{of} from {}",
        store.location()
    ));
    store.finish()?;
    Ok(0)
}
