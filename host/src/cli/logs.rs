//! `sandflow logs <id> [node-path]`: what each attempt of a recorded execution wrote to
//! stdout and stderr, every line prefixed with where it came from, as `sandflow run --logs`
//! prints it: `[<path> attempt N stdout] line`.

use super::store::{descendants, natural_cmp, open_existing_store};
use clap::Args;
use sandflow_host::store::{AttemptLog, StoreError, StoreRead};
use std::path::PathBuf;

#[derive(Args)]
/// Print what a recorded execution's task attempts wrote to stdout and stderr
pub struct LogsArgs {
    /// The execution id, or a prefix of it that no other id has
    id: String,
    /// Only this node (a path as `sandflow show` lists it)
    node_path: Option<String>,
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long)]
    db: Option<PathBuf>,
}

pub fn logs(args: LogsArgs) -> anyhow::Result<u8> {
    let store = open_existing_store(args.db)?;
    let id = store.execution(&args.id)?.summary.id;
    // The nodes of the child executions (launch plan calls) are part of the execution's tree,
    // as `show` prints it, so their attempts are printed too.
    let mut ids = vec![id.clone()];
    ids.extend(descendants(&store, &id)?.into_iter().map(|c| c.id));
    let mut attempts: Vec<AttemptLog> = Vec::new();
    let mut found = false;
    for x in &ids {
        match store.logs(x, args.node_path.as_deref()) {
            Ok(a) => {
                found = true;
                attempts.extend(a);
            }
            Err(StoreError::UnknownNode { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !found {
        // No execution of the tree has that node: the error names it and the execution asked for.
        store.logs(&id, args.node_path.as_deref())?;
    }
    attempts.sort_by(|a, b| {
        natural_cmp(&a.path, &b.path).then(a.record.attempt.cmp(&b.record.attempt))
    });
    let mut text = String::new();
    for a in &attempts {
        let at = format!("{} attempt {}", a.path, a.record.attempt);
        for (stream, bytes) in [("stdout", &a.stdout), ("stderr", &a.stderr)] {
            for line in String::from_utf8_lossy(bytes).lines() {
                text.push_str(&format!("[{at} {stream}] {line}\n"));
            }
        }
    }
    if text.is_empty() {
        let what = match &args.node_path {
            Some(p) => format!("node {p} of execution {id}"),
            None => format!("execution {id}"),
        };
        eprintln!("sandflow: no task attempt of {what} wrote anything");
        return Ok(0);
    }
    super::print_stdout(text.trim_end_matches('\n'));
    Ok(0)
}
