//! `sandflow executions`: the recorded executions, newest first; `sandflow executions prune
//! --older-than 7d`: removes old ones.

use super::store::{fmt_ms, local_time, open_existing_store, parse_age};
use clap::{Args, Subcommand};
use sandflow_host::store::{ExecStatus, ExecutionFilter, ExecutionSummary, StoreRead, StoreWrite};
use serde_json::{json, Value as Json};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
/// List recorded executions, newest first (`prune` removes old ones)
pub struct ExecutionsArgs {
    #[command(subcommand)]
    command: Option<ExecutionsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Subcommand)]
enum ExecutionsCommand {
    /// Remove executions that started before a given age, and what only they used
    Prune(PruneArgs),
}

#[derive(Args)]
struct ListArgs {
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long)]
    db: Option<PathBuf>,
    /// Only executions with this status
    #[arg(long, value_parser = status)]
    status: Option<ExecStatus>,
    /// Only executions of this entity
    #[arg(long)]
    entity: Option<String>,
    /// At most this many executions
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Include child executions (launch plan calls)
    #[arg(long)]
    all: bool,
    /// One JSON array of executions
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PruneArgs {
    /// Remove executions that started longer ago than this: 30s, 15m, 12h, 7d
    #[arg(long, value_parser = parse_age)]
    older_than: Duration,
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long)]
    db: Option<PathBuf>,
}

fn status(s: &str) -> Result<ExecStatus, String> {
    ExecStatus::parse(s).ok_or_else(|| {
        let names: Vec<&str> = ExecStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

pub fn executions(args: ExecutionsArgs) -> anyhow::Result<u8> {
    match args.command {
        Some(ExecutionsCommand::Prune(p)) => prune(p),
        None => list(args.list),
    }
}

fn list(args: ListArgs) -> anyhow::Result<u8> {
    let store = open_existing_store(args.db)?;
    let rows = store.executions(&ExecutionFilter {
        status: args.status,
        entity: args.entity,
        limit: Some(args.limit),
        roots_only: !args.all,
    })?;
    if args.json {
        let all: Vec<Json> = rows.iter().map(summary_json).collect();
        super::print_stdout(&serde_json::to_string_pretty(&Json::Array(all))?);
        return Ok(0);
    }
    if rows.is_empty() {
        super::print_stdout(&format!("no executions in {}", store.location()));
        return Ok(0);
    }
    // Ids are as wide as the store makes them; entities as the longest listed.
    let id_w = rows.iter().map(|s| s.id.as_str().len()).max().unwrap_or(0);
    let entity_w = rows
        .iter()
        .map(|s| s.entity.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut text = vec![format!(
        "{:<id_w$}  {:<11}  {:<entity_w$}  {:<19}  {:>8}  {:<23}  PARENT",
        "ID", "STATUS", "ENTITY", "STARTED", "DURATION", "TASKS done/run/fail/hit"
    )];
    for s in &rows {
        let c = &s.counts;
        let tasks = format!("{}/{}/{}/{}", c.succeeded, c.running, c.failed, c.cached);
        text.push(
            format!(
                "{:<id_w$}  {:<11}  {:<entity_w$}  {:<19}  {:>8}  {:<23}  {}",
                s.id,
                s.status,
                s.entity,
                local_time(s.started_ms),
                duration(s),
                tasks,
                s.parent.as_ref().map(|p| p.as_str()).unwrap_or("")
            )
            .trim_end()
            .to_string(),
        );
    }
    super::print_stdout(&text.join("\n"));
    Ok(0)
}

/// How long it ran, `-` while it runs (or if it never recorded an end).
pub fn duration(s: &ExecutionSummary) -> String {
    s.ended_ms
        .map(|e| fmt_ms(e - s.started_ms))
        .unwrap_or_else(|| "-".into())
}

/// An execution's summary as JSON, for `executions --json` and `show --json`.
pub fn summary_json(s: &ExecutionSummary) -> Json {
    let c = &s.counts;
    json!({
        "id": s.id.as_str(),
        "status": s.status.as_str(),
        "entity": s.entity,
        "module": s.module,
        "parent": s.parent.as_ref().map(|p| p.as_str()),
        "root": s.root.as_str(),
        "started": local_time(s.started_ms),
        "started_ms": s.started_ms,
        "ended_ms": s.ended_ms,
        "duration_ms": s.ended_ms.map(|e| e - s.started_ms),
        "error": s.error,
        "recovered_from": s.recovered_from.as_ref().map(|p| p.as_str()),
        "tasks": {
            "total": c.total,
            "succeeded": c.succeeded,
            "running": c.running,
            "failed": c.failed,
            "cached": c.cached,
        },
    })
}

fn prune(args: PruneArgs) -> anyhow::Result<u8> {
    let store = open_existing_store(args.db)?;
    let r = store.prune(args.older_than)?;
    super::print_stdout(&format!(
        "removed {} executions ({} nodes, {} attempts, {} logs), {} values, {} graphs, {} modules from {}",
        r.executions,
        r.nodes,
        r.attempts,
        r.logs,
        r.values,
        r.graphs,
        r.modules,
        store.location()
    ));
    store.finish()?;
    Ok(0)
}
