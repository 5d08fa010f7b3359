//! `sandflow run --db postgres://... --submit` and `--wait`: the execution goes to the store's
//! work queue for `sandflow worker` instead of running here. `--submit` prints the queue id
//! and exits; `--wait` (which submits too) follows it to its end (woken by the worker's
//! NOTIFY of the end, reading the row every 500 ms as the fallback) and then prints what a
//! local run prints: the summary line on stderr, the output on stdout, the same exit code.

use super::execute::StoreArgs;
use super::store::open_store;
use anyhow::bail;
use sandflow_contract::{EntityDecl, Value};
use sandflow_host::json;
use sandflow_host::record::module_record;
use sandflow_host::sandbox::Sandbox;
use sandflow_host::store::{AnyStore, ExecutionId, StoreWrite, WriteOp};
use std::time::Duration;

/// How often `--wait` reads the queue row when no notification of its end came.
const WAIT_POLL: Duration = Duration::from_millis(500);

pub fn submit(
    store: &StoreArgs,
    module_bytes: &[u8],
    sandbox: &Sandbox,
    entity: &EntityDecl,
    inputs: &[Value],
    wait: bool,
    args: &[String],
) -> anyhow::Result<u8> {
    if store.no_store {
        bail!("--submit and --wait need the store's work queue: drop --no-store");
    }
    let any = open_store(store.db.clone())?;
    let AnyStore::Postgres(pg) = &any else {
        bail!(
            "--submit and --wait need a PostgreSQL store (--db postgres://...), where workers claim executions; {} is a file",
            any.path().display()
        );
    };
    let record = module_record(module_bytes, &sandbox.decl);
    let digest = record.digest.clone();
    // The module first, committed: a worker that claims the execution finds it.
    pg.write_batch(vec![WriteOp::PutModule(record)]);
    pg.flush()?;
    let named: serde_json::Map<String, serde_json::Value> = entity
        .interface
        .inputs
        .iter()
        .zip(inputs)
        .map(|(p, v)| (p.name.clone(), json::to_json(v, &p.ty)))
        .collect();
    let inputs = serde_json::Value::Object(named).to_string();
    let id = ExecutionId::generate();
    let mut queue = pg.queue()?;
    queue.submit(id.as_str(), &digest, &entity.name, &inputs, args)?;
    if !wait {
        eprintln!("sandflow: submitted {} (queued as {id})", entity.name);
        super::print_stdout(id.as_str());
        return Ok(0);
    }
    eprintln!(
        "sandflow: submitted {} (queued as {id}); waiting for a worker",
        entity.name
    );
    // Woken by the worker's notification of the end; the poll is the fallback.
    let mut woken = pg.queue()?;
    woken.listen_done()?;
    let mut seen: Option<String> = None;
    loop {
        let Some(status) = queue.status(id.as_str())? else {
            bail!("submitted execution {id} is no longer in the queue (was the store pruned?)");
        };
        if status.execution.is_some() && status.execution != seen {
            seen = status.execution.clone();
            eprintln!(
                "sandflow: running {} (execution {}) on worker {}",
                entity.name,
                seen.as_deref().unwrap_or(""),
                status.lease_owner.as_deref().unwrap_or("?")
            );
        }
        if status.state == "done" {
            if let Some(s) = status.summary.filter(|s| !s.is_empty()) {
                eprintln!("{s}");
            }
            if let Some(o) = status.output.filter(|o| !o.is_empty()) {
                super::print_stdout(&o);
            }
            let code = status.exit_code.unwrap_or(1);
            return Ok(u8::try_from(code).unwrap_or(1));
        }
        if woken.wait(WAIT_POLL).is_err() {
            // A lost connection: poll only.
            std::thread::sleep(WAIT_POLL);
        }
    }
}
