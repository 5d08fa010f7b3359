//! `sandflow worker --db postgres://... [--workers N] [--lease-secs S]`: a long-running
//! process that claims submitted executions from the store's queue (`store::pg::queue`) and
//! drives each to its end.
//!
//! Each claimed execution runs in a child `sandflow run` (or `sandflow recover`, when an
//! earlier claimer died and recorded part of it) of this binary, recording into the same
//! store: the existing run pipeline, unchanged, and a crash of one run cannot take the
//! others down. The module is fetched from the store once per worker into a directory of its
//! own and compiled once per machine by the on-disk module cache. The child dies with the
//! worker (`PR_SET_PDEATHSIG`): a SIGKILLed worker leaves no run behind that would keep
//! writing.
//!
//! A heartbeat renews the worker's leases every lease/3. A claim the heartbeat no longer
//! finds (the lease expired, another worker claimed it) is cancelled as Ctrl-C cancels a
//! run, and its end is refused by the fence (`Queue::finish`).

use super::children::{drive_children, ChildHost};
use super::store::open_store;
use anyhow::{bail, Context};
use clap::Args;
use sandflow_host::runner::RunControls;
use sandflow_host::store::queue::{Claim, Queue};
use sandflow_host::store::{AnyStore, StoreRead};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args)]
/// Claim executions submitted with `sandflow run --submit` and run them (PostgreSQL only)
pub struct WorkerArgs {
    /// The execution store: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB)
    #[arg(long, value_name = "URL")]
    db: Option<PathBuf>,
    /// Executions driven at once
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How long a claim lasts without a heartbeat: a dead worker's executions are taken over
    /// after at most this long
    #[arg(long, default_value_t = 10)]
    lease_secs: u64,
}

/// Rows of delegated calls driven at once, per `--workers`.
const ROW_SLOTS: usize = 4;

/// How often an idle worker looks at the queue when no notification came.
const POLL: Duration = Duration::from_secs(1);

/// The claims this worker drives: queue id -> (fence, how to stop it: the run process's pid
/// once started, or the controls of a row of delegated calls run in this process).
type Running = Arc<Mutex<HashMap<String, (i64, Stop)>>>;

#[derive(Clone, Default)]
enum Stop {
    #[default]
    NotStarted,
    Process(u32),
    Calls(Arc<RunControls>),
}

pub fn worker(args: WorkerArgs) -> anyhow::Result<u8> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.lease_secs == 0 {
        bail!("--lease-secs must be at least 1");
    }
    let store = Arc::new(open_store(args.db.clone())?);
    let AnyStore::Postgres(pg) = &*store else {
        bail!(
            "sandflow worker needs a PostgreSQL store (--db postgres://...); {} is a file",
            store.path().display()
        );
    };
    let url = pg.url().to_string();
    let lease = Duration::from_secs(args.lease_secs);
    let me = format!(
        "{}:{}",
        sandflow_host::store::Owner::current().host,
        std::process::id()
    );
    let dir = std::env::temp_dir().join(format!("sandflow-worker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let running: Running = Arc::default();
    // Set by a claim that ended: its slot is free.
    let freed = Arc::new(AtomicBool::new(false));
    let mut claims = pg.queue()?;
    let mut listen = pg.queue()?;
    listen.listen()?;
    spawn_heartbeat(pg.queue()?, me.clone(), lease, running.clone())?;
    eprintln!(
        "sandflow: worker {me} on {}: up to {} executions at once, lease {} s",
        store.location(),
        args.workers,
        args.lease_secs
    );
    // Rows of delegated launch plan calls run in this process, on one host, with slots of
    // their own: an execution waiting for its calls never keeps them from being run.
    let child_host = Arc::new(std::sync::OnceLock::<Option<Arc<ChildHost>>>::new());
    loop {
        let (top, calls) = {
            let r = lock(&running);
            let calls = r
                .values()
                .filter(|(_, s)| matches!(s, Stop::Calls(_)))
                .count();
            (r.len() - calls, calls)
        };
        let free = args.workers as usize - top.min(args.workers as usize);
        // Rows of calls wait on the database (their claim, the commit of what they recorded,
        // their end) more than on the CPU: more of them at once than executions.
        let row_slots = ROW_SLOTS * args.workers as usize;
        let free_calls = row_slots - calls.min(row_slots);
        let job = || Job {
            store: store.clone(),
            url: url.clone(),
            dir: dir.clone(),
            running: running.clone(),
            me: me.clone(),
            freed: freed.clone(),
        };
        // Rows of calls first (they unblock executions that wait), then executions; what
        // is claimed is started before anything else is asked of the server.
        let Some(rows) = claim_or_reconnect(&mut claims, pg, &me, free_calls, lease, true) else {
            continue;
        };
        for claim in rows {
            let controls = Arc::new(RunControls::default());
            lock(&running).insert(
                claim.id.clone(),
                (claim.fence, Stop::Calls(controls.clone())),
            );
            let host = child_host
                .get_or_init(|| match ChildHost::new() {
                    Ok(h) => Some(Arc::new(h)),
                    Err(e) => {
                        eprintln!("sandflow: worker {me}: cannot start a host for child executions: {e:#}");
                        None
                    }
                })
                .clone();
            let job = job();
            std::thread::Builder::new()
                .name("sandflow-calls".into())
                .spawn(move || job.drive_calls(claim, host, controls))?;
        }
        let Some(executions) = claim_or_reconnect(&mut claims, pg, &me, free, lease, false) else {
            continue;
        };
        for claim in executions {
            lock(&running).insert(claim.id.clone(), (claim.fence, Stop::NotStarted));
            let job = job();
            std::thread::Builder::new()
                .name("sandflow-drive".into())
                .spawn(move || job.drive(claim))?;
        }
        // A submit wakes the loop at once; polling is the fallback (a lost notification, an
        // expired lease, which notifies nobody). A full worker only polls.
        // A claim that ends frees a slot: the loop claims again at once (a row of calls that
        // waited for a slot would otherwise wait for the next notification or poll).
        let deadline = std::time::Instant::now() + POLL;
        while !freed.swap(false, Ordering::AcqRel) && std::time::Instant::now() < deadline {
            if free == 0 && free_calls == 0 {
                std::thread::sleep(SLICE);
                continue;
            }
            match listen.wait(SLICE) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    eprintln!("sandflow: worker {me}: {e}; listening again");
                    std::thread::sleep(POLL);
                    if let Ok(mut q) = pg.queue() {
                        if q.listen().is_ok() {
                            listen = q;
                        }
                    }
                    break;
                }
            }
        }
    }
}

/// How long the idle loop waits at a time for a notification before it looks whether a
/// claim of its own ended.
const SLICE: Duration = Duration::from_millis(10);

/// Claims at most `n` rows (of calls, or executions) for `me`; `None` after a lost
/// connection (a restarted server, a terminated backend: the worker outlives it, and what it
/// runs meanwhile is fenced), once `claims` is connected again or a poll has passed.
fn claim_or_reconnect(
    claims: &mut Queue,
    pg: &sandflow_host::store::PgStore,
    me: &str,
    n: usize,
    lease: Duration,
    children: bool,
) -> Option<Vec<Claim>> {
    if n == 0 {
        return Some(Vec::new());
    }
    match claims.claim(me, n as i64, lease, children) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("sandflow: worker {me}: {e}; connecting again");
            std::thread::sleep(POLL);
            if let Ok(q) = pg.queue() {
                *claims = q;
            }
            None
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Renews the leases every lease/3, and cancels each run whose claim was lost.
fn spawn_heartbeat(
    mut queue: Queue,
    me: String,
    lease: Duration,
    running: Running,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sandflow-heartbeat".into())
        .spawn(move || loop {
            std::thread::sleep(lease / 3);
            let ids: Vec<String> = lock(&running).keys().cloned().collect();
            // A lost connection is connected again inside (`Queue`'s retries).
            let held = match queue.heartbeat(&me, lease, &ids) {
                Ok(held) => held,
                Err(e) => {
                    // The leases run out unless a later heartbeat succeeds; the claims'
                    // ends are fenced either way.
                    eprintln!("sandflow: worker {me}: heartbeat failed: {e}");
                    continue;
                }
            };
            for (id, (fence, stop)) in lock(&running).iter() {
                // A claim made while the heartbeat ran (it may wait through a lost
                // connection) was not asked about: judged at the next one.
                if !ids.contains(id) || held.iter().any(|(h, f)| h == id && f == fence) {
                    continue;
                }
                match stop {
                    Stop::Process(pid) => {
                        eprintln!(
                            "sandflow: worker {me}: lost the lease of {id}; cancelling its run"
                        );
                        // SAFETY: kill(2) with a pid this worker started and has not reaped.
                        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGINT) };
                    }
                    Stop::Calls(controls) => {
                        eprintln!(
                            "sandflow: worker {me}: lost the lease of {id}; cancelling its calls"
                        );
                        controls
                            .cancel
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Stop::NotStarted => {}
                }
            }
        })?;
    Ok(())
}

struct Job {
    store: Arc<AnyStore>,
    url: String,
    dir: PathBuf,
    running: Running,
    me: String,
    freed: Arc<AtomicBool>,
}

impl Job {
    /// Drives a row of delegated launch plan calls in this process, and ends it.
    fn drive_calls(self, claim: Claim, host: Option<Arc<ChildHost>>, controls: Arc<RunControls>) {
        let (code, summary, ends) = match host {
            None => (
                1,
                "error: this worker has no host for child executions".to_string(),
                Vec::new(),
            ),
            Some(host) => match drive_children(&host, &self.store, &claim, controls) {
                Ok((s, ends)) => (0, s, ends),
                Err(e) => (1, format!("error: {}", super::render_error(&e)), Vec::new()),
            },
        };
        let ended = match &*self.store {
            AnyStore::Postgres(pg) => pg.take_queue().and_then(|mut q| {
                let r = q.finish_children(&claim.id, claim.fence, code, &summary, &ends);
                pg.give_back(q);
                r
            }),
            AnyStore::Sqlite(_) => Ok(false),
        };
        self.report(&claim.id, &summary, ended);
    }

    /// Ends claim `claim` with the exit code, summary and output of what drove it.
    fn end(&self, claim: &Claim, code: i32, summary: &str, output: &str) {
        let id = &claim.id;
        let ended = match &*self.store {
            AnyStore::Postgres(pg) => pg.take_queue().and_then(|mut q| {
                let r = q.finish(id, claim.fence, code, summary, output);
                pg.give_back(q);
                r
            }),
            AnyStore::Sqlite(_) => Ok(false),
        };
        self.report(id, summary, ended);
    }

    /// Says how ending claim `id` went, and frees its slot.
    fn report(
        &self,
        id: &str,
        summary: &str,
        ended: Result<bool, sandflow_host::store::StoreError>,
    ) {
        match ended {
            Ok(true) => eprintln!("sandflow: worker {}: {id} ended: {summary}", self.me),
            Ok(false) => eprintln!(
                "sandflow: worker {}: {id} was taken over by another worker; its end here is dropped",
                self.me
            ),
            Err(e) => eprintln!("sandflow: worker {}: recording the end of {id}: {e}", self.me),
        }
        lock(&self.running).remove(id);
        self.freed.store(true, Ordering::Release);
    }

    fn drive(self, claim: Claim) {
        let (code, summary, output) = match self.run(&claim) {
            Ok(r) => r,
            Err(e) => (
                1,
                format!("error: {}", super::render_error(&e)),
                String::new(),
            ),
        };
        self.end(&claim, code, &summary, &output);
    }

    /// Runs the claim in a child process; its exit code, summary line and stdout.
    fn run(&self, claim: &Claim) -> anyhow::Result<(i32, String, String)> {
        let AnyStore::Postgres(pg) = &*self.store else {
            bail!("not a PostgreSQL store");
        };
        let mut queue = pg.queue()?;
        let mut cmd = Command::new(std::env::current_exe().context("finding this binary")?);
        match &claim.execution {
            Some(previous) => {
                if !queue.interrupt_previous(&claim.id, claim.fence, previous)? {
                    bail!("the claim was lost before it started");
                }
                eprintln!(
                    "sandflow: worker {}: taking over {} (its driver's lease expired); recovering execution {previous}",
                    self.me, claim.id
                );
                cmd.args(["recover", previous.as_str()]);
                // A recovery takes the run's parallelism; the task overrides are recorded
                // with the nodes that ran under them, and the rest runs with them too only
                // where the recovery is given them (not yet: `recover` takes no overrides).
                for pair in claim.args.chunks(2) {
                    if pair.len() == 2 && pair[0] == "--max-parallelism" {
                        cmd.args(pair);
                    }
                }
            }
            None => {
                // The digest names a file: hex only, whatever the row says.
                if claim.module.is_empty() || !claim.module.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!(
                        "{}: module digest {:?} is not a sha256 in hex",
                        claim.id,
                        claim.module
                    );
                }
                let file = self.dir.join(format!("{}.wasm", claim.module));
                if !file.exists() {
                    let bytes = pg.module(&claim.module).with_context(|| {
                        format!(
                            "{}: its module {} is not in the store",
                            claim.id, claim.module
                        )
                    })?;
                    let part = file.with_extension("part");
                    std::fs::write(&part, bytes)
                        .and_then(|()| std::fs::rename(&part, &file))
                        .with_context(|| format!("writing {}", file.display()))?;
                }
                check_options(&claim.args)
                    .with_context(|| format!("{}: its run options", claim.id))?;
                cmd.arg("run")
                    .arg(&file)
                    .arg(&claim.entity)
                    .args(["--inputs", "-"])
                    // The submitter's options, checked by the submitter's own parse.
                    .args(&claim.args);
            }
        }
        // The URL (with its password) in the environment, never on a command line; the
        // claim, so the run delegates its launch plan calls under it.
        cmd.env("SANDFLOW_DB", &self.url)
            .env(
                super::children::CLAIM_ENV,
                format!("{}:{}", claim.id, claim.fence),
            )
            .env(
                sandflow_host::store::WORKER_OWNER,
                sandflow_host::store::Owner::current().to_env(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the child dies with its worker.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("starting the run's process")?;
        if let Some(e) = lock(&self.running).get_mut(&claim.id) {
            e.1 = Stop::Process(child.id());
        }
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(claim.inputs.as_bytes());
        }
        let mut stdout = child.stdout.take().context("the run's stdout")?;
        let out_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let mut last = String::new();
        let mut execution: Option<String> = None;
        for line in BufReader::new(child.stderr.take().context("the run's stderr")?).lines() {
            let Ok(line) = line else { break };
            if let Some(started) = super::execute::started_execution(&line) {
                execution = Some(started.to_string());
                let execution = started;
                if !queue.set_execution(&claim.id, claim.fence, execution)? {
                    eprintln!(
                        "sandflow: worker {}: lost the claim of {}",
                        self.me, claim.id
                    );
                }
                eprintln!(
                    "sandflow: worker {}: {} is execution {execution} (process {})",
                    self.me,
                    claim.id,
                    child.id()
                );
                continue;
            }
            eprintln!("[{}] {line}", claim.id);
            if !line.trim().is_empty() {
                last = line;
            }
        }
        let status = child.wait().context("waiting for the run's process")?;
        // Its owner is this worker, alive: an execution the run left `running` (it crashed)
        // would read as running for ever, so it is marked interrupted, recoverable.
        if let Some(e) = &execution {
            queue.interrupt_previous(&claim.id, claim.fence, e)?;
        }
        let output = out_thread.join().unwrap_or_default();
        let code = status.code().unwrap_or(1);
        if status.code().is_none() {
            last = format!("error: the run's process was killed ({status})");
        }
        Ok((code, last, output.trim_end().to_string()))
    }
}

/// A queue row's run options are those `run --submit` writes (see `run::queued_options`):
/// a row that says anything else (`--db`, say) is refused, not passed on to a run.
fn check_options(args: &[String]) -> anyhow::Result<()> {
    const VALUED: [&str; 6] = [
        "--max-parallelism",
        "--task-timeout-ms",
        "--task-memory-mb",
        "--task-retries",
        "--task-fuel",
        "--max-run-memory-mb",
    ];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--overwrite-cache" {
            continue;
        }
        if !VALUED.contains(&a.as_str()) {
            bail!("{a:?} is not an option a submitted run may carry");
        }
        match it.next() {
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {}
            other => bail!("{a} needs a number, got {other:?}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_options;

    #[test]
    fn a_rows_run_options_are_only_those_submit_writes() {
        let ok = |a: &[&str]| check_options(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(ok(&[]).is_ok());
        assert!(ok(&[
            "--max-parallelism",
            "5",
            "--overwrite-cache",
            "--task-retries",
            "2"
        ])
        .is_ok());
        assert!(ok(&["--db", "/tmp/other.db"]).is_err());
        assert!(ok(&["--max-parallelism"]).is_err());
        assert!(ok(&["--max-parallelism", "--db"]).is_err());
    }
}
