//! The work queue in PostgreSQL, end to end through the `sandflow` binary: executions
//! submitted with `run --submit`/`--wait` and run by `sandflow worker` processes; a SIGKILLed
//! worker's execution taken over and recovered by another; the errors of a queue that cannot
//! be used. The server is a real PostgreSQL started for this binary (see `pg_cluster`).

use crate::guests::{freeze_when, module, repo, sandflow_command};
use crate::pg_cluster::{cluster, private_cluster};
use serde_json::{json, Value as Json};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A `sandflow worker` process, killed when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(url: &str, lease_secs: u32) -> Worker {
    started_worker(url, lease_secs, Stdio::null())
}

/// A worker as [`worker`], its stderr in `log` (shown when a fault test fails).
fn logged_worker(url: &str, lease_secs: u32, log: &std::path::Path) -> Worker {
    let file = std::fs::File::create(log).expect("the worker's log");
    started_worker(url, lease_secs, file.into())
}

/// `sandflow worker --workers 2 --lease-secs <lease_secs>` on `url`, its stderr to `stderr`.
fn started_worker(url: &str, lease_secs: u32, stderr: Stdio) -> Worker {
    let child = sandflow_command()
        .args([
            "worker",
            "--workers",
            "2",
            "--lease-secs",
            &lease_secs.to_string(),
        ])
        .env("SANDFLOW_DB", url)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("sandflow worker starts");
    Worker(child)
}

/// `sandflow run <nested_dynamics> multi_wf --l [0..n) --chunk c <extra>`.
fn submit(url: &str, n: usize, chunk: usize, extra: &str) -> std::process::Output {
    let m = module("nested_dynamics");
    let l = json!((0..n).collect::<Vec<_>>()).to_string();
    sandflow_command()
        .args(["run", m.to_str().unwrap(), "multi_wf", "--l", &l])
        .args(["--chunk", &chunk.to_string(), extra])
        .env("SANDFLOW_DB", url)
        .current_dir(repo())
        .output()
        .expect("sandflow runs")
}

/// The pids of `parent`'s child processes (field 4 of `/proc/<pid>/stat`).
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    let after = st.rsplit_once(')')?.1.to_string();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn expected(n: usize) -> Json {
    json!((0..n).map(|a| a + 3).collect::<Vec<_>>())
}

/// The queue row of `id`: state, lease owner, execution, exit code, output.
fn row(
    c: &mut postgres::Client,
    id: &str,
) -> (
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<String>,
) {
    let r = c
        .query_one(
            "SELECT state, lease_owner, execution, exit_code, output FROM sandflow.queue WHERE id = $1",
            &[&id],
        )
        .expect("the queue row");
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

fn wait_done(c: &mut postgres::Client, id: &str) -> (Option<String>, Option<i32>, Option<String>) {
    let t0 = Instant::now();
    loop {
        let (state, owner, _, code, out) = row(c, id);
        if state == "done" {
            return (owner, code, out);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "{id} never ended: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn submitted_executions_are_run_by_two_workers_and_wait_prints_the_result() {
    let url = cluster().database("queue_two");
    let w1 = worker(&url, 10);
    let w2 = worker(&url, 10);
    let mut ids = Vec::new();
    for n in [5, 40, 100, 7] {
        let out = submit(&url, n, 10, "--submit");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(sandflow_host::store::is_id_text(&id), "not an id: {id}");
        ids.push((id, n));
    }
    let waited = submit(&url, 30, 7, "--wait");
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert_eq!(waited.status.code(), Some(0), "{stderr}");
    let got: Json = serde_json::from_slice(&waited.stdout).expect("JSON output");
    assert_eq!(got, expected(30));
    assert!(
        stderr.contains("sandflow: multi_wf succeeded in "),
        "{stderr}"
    );
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    let mut owners = std::collections::HashSet::new();
    for (id, n) in ids {
        let (owner, code, out) = wait_done(&mut c, &id);
        assert_eq!(code, Some(0), "{id}");
        let out: Json = serde_json::from_str(&out.expect("an output")).expect("JSON");
        assert_eq!(out, expected(n));
        owners.insert(owner.expect("a worker"));
    }
    // Each execution is recorded in the store, owned by a run of a worker.
    let recorded: i64 = c
        .query_one(
            "SELECT count(*) FROM sandflow.executions e JOIN sandflow.queue q ON q.execution = e.id \
             WHERE e.status = 'succeeded'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded, 5);
    assert!(!owners.is_empty());
    // Each is recorded as driven by the worker that claimed it, and `show` says which.
    let pids = [w1.0.id(), w2.0.id()];
    for r in c
        .query(
            "SELECT e.id, e.owner_pid, q.lease_owner FROM sandflow.executions e \
             JOIN sandflow.queue q ON q.execution = e.id",
            &[],
        )
        .unwrap()
    {
        let (id, pid, lease): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
        assert!(
            pids.iter().any(|p| i64::from(*p) == pid),
            "{id}: {pid} is no worker"
        );
        assert!(
            lease.ends_with(&format!(":{pid}")),
            "{lease} claimed it, {pid} drove it"
        );
        let shown = sandflow_command()
            .args(["show", &id])
            .env("SANDFLOW_DB", &url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            text.contains(&format!("driven by  process {pid} on ")),
            "{text}"
        );
    }
}

#[test]
fn a_sigkilled_workers_execution_is_taken_over_and_nothing_finished_runs_twice() {
    let url = cluster().database("queue_kill");
    let n = 10_000;
    let mut workers = vec![worker(&url, 2)];
    let out = submit(&url, n, 100, "--submit");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    // The worker claims it and starts its run process.
    let t0 = Instant::now();
    let (execution, run) = loop {
        let (state, _, execution, _, _) = row(&mut c, &id);
        assert_ne!(
            state, "done",
            "the run ended before it was killed: the test proves nothing"
        );
        let runs = children_of(workers[0].0.id());
        if let (Some(e), [run]) = (execution, runs.as_slice()) {
            break (e, *run);
        }
        assert!(runs.len() <= 1, "one run process: {runs:?}");
        assert!(t0.elapsed() < Duration::from_secs(60), "never claimed");
        std::thread::sleep(Duration::from_millis(2));
    };
    // Killed once a third of its 20 001 tasks are recorded: the run is frozen while the store
    // is read, so that it cannot end between the look and the kill.
    freeze_when(run, Duration::from_secs(180), || {
        let (state, ..) = row(&mut c, &id);
        let status: String = c
            .query_one(
                "SELECT status FROM sandflow.executions WHERE id = $1",
                &[&execution],
            )
            .unwrap()
            .get(0);
        if state == "done" || status != "running" {
            return Some(false);
        }
        let done: i64 = c
            .query_one(
                "SELECT count(*) FROM sandflow.nodes WHERE status = 'succeeded' AND kind = 'task'",
                &[],
            )
            .unwrap()
            .get(0);
        (done >= 7_000).then_some(true)
    });
    // The execution is recorded as the worker's; its run is a child process of it.
    let owner: i64 = c
        .query_one(
            "SELECT owner_pid FROM sandflow.executions WHERE id = $1",
            &[&execution],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, i64::from(workers[0].0.id()));
    let runs = [run];
    let killed = workers.remove(0);
    drop(killed); // SIGKILL, and its run dies with it.
    let t0 = Instant::now();
    while std::path::Path::new(&format!("/proc/{}", runs[0])).exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the run outlived its worker"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let before: std::collections::HashSet<i64> = c
        .query(
            "SELECT n.key FROM sandflow.nodes n JOIN sandflow.executions e \
             ON e.seq = n.execution WHERE e.root = $1 AND n.status = 'succeeded'",
            &[&execution],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!before.is_empty());
    let _w2 = worker(&url, 2);
    let (_, code, out) = wait_done(&mut c, &id);
    assert_eq!(code, Some(0));
    let got: Json = serde_json::from_str(&out.expect("an output")).expect("JSON");
    assert_eq!(got, expected(n));
    let (_, _, recovery, _, _) = row(&mut c, &id);
    let recovery = recovery.expect("the recovery's execution");
    assert_ne!(recovery, execution, "taken over as a recovery");
    let from: Option<String> = c
        .query_one(
            "SELECT recovered_from FROM sandflow.executions WHERE id = $1",
            &[&recovery],
        )
        .unwrap()
        .get(0);
    assert_eq!(from.as_deref(), Some(execution.as_str()));
    let reran: Vec<String> = c
        .query(
            "SELECT n.path, n.key FROM sandflow.nodes n JOIN sandflow.executions e \
             ON e.seq = n.execution WHERE e.root = $1 AND n.attempts > 0",
            &[&recovery],
        )
        .unwrap()
        .iter()
        .filter(|r| before.contains(&r.get::<_, i64>(1)))
        .map(|r| r.get(0))
        .collect();
    assert!(reran.is_empty(), "ran again: {reran:?}");
}

#[test]
fn submitting_without_a_postgres_store_or_to_a_bad_url_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let out = submit(file.to_str().unwrap(), 3, 1, "--submit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("need a PostgreSQL store (--db postgres://...)"),
        "{stderr}"
    );
    let t0 = Instant::now();
    let out = submit("postgres://nobody@127.0.0.1:1/none", 3, 1, "--wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("postgres://nobody@127.0.0.1:1/none"),
        "{stderr}"
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "not within seconds");
    let out = sandflow_command()
        .args(["worker", "--db", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("sandflow worker needs a PostgreSQL store"),
        "{stderr}"
    );
}

#[test]
fn the_seeds_child_executions_are_driven_by_more_than_one_of_three_workers() {
    let url = cluster().database("queue_children");
    let workers: Vec<Worker> = (0..3).map(|_| worker(&url, 10)).collect();
    let n = 5_000;
    let out = submit(&url, n, 100, "--wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let got: Json = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(got, expected(n));
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    let top: String = c
        .query_one(
            "SELECT id FROM sandflow.executions WHERE parent IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    // One child execution per item, each recorded once, succeeded, under the top execution,
    // and driven by the workers themselves (the top one by a run process of one of them).
    let rows = c
        .query(
            "SELECT owner_pid, count(*), count(DISTINCT id), bool_and(status = 'succeeded'), \
             bool_and(root = $1) FROM sandflow.executions WHERE parent = $1 GROUP BY owner_pid",
            &[&top],
        )
        .unwrap();
    let pids: Vec<i64> = workers.iter().map(|w| i64::from(w.0.id())).collect();
    let mut total = 0;
    for r in &rows {
        let (pid, count, distinct, ok, under): (i64, i64, i64, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        assert!(pids.contains(&pid), "{pid} is no worker: {pids:?}");
        assert_eq!(count, distinct);
        assert!(ok && under, "worker {pid}: {ok} {under}");
        total += count;
    }
    assert_eq!(total, n as i64, "one child execution per item");
    assert!(
        rows.len() >= 2,
        "the child executions were driven by {} worker(s) only",
        rows.len()
    );
    // Their nodes have the paths an expanded call gives them, and each task ran once.
    let (tasks, distinct_paths): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(DISTINCT n.path) FROM sandflow.nodes n \
                 JOIN sandflow.executions e ON e.seq = n.execution \
                 WHERE n.kind = 'task' AND n.path LIKE 'multi_wf/level1/level2[%]/core_wf_lp[%]/step_'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((tasks, distinct_paths), (2 * n as i64, 2 * n as i64));
    // `show` lists them, each with the worker that drove it.
    let shown = sandflow_command()
        .args(["show", &top])
        .env("SANDFLOW_DB", &url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&format!("child executions ({n})")), "{text}");
}

/// `sandflow run <fixtures> <entity> <args> --wait` against `url`.
fn wait_fixture(url: &str, entity: &str, args: &[&str]) -> std::process::Output {
    sandflow_command()
        .arg("run")
        .arg(module("fixtures"))
        .arg(entity)
        .args(args)
        .arg("--wait")
        .env("SANDFLOW_DB", url)
        .current_dir(repo())
        .output()
        .expect("sandflow runs")
}

#[test]
fn a_map_over_a_launch_plan_is_delegated_and_a_submitted_runs_options_are_kept() {
    let url = cluster().database("queue_options");
    let _w = [worker(&url, 10), worker(&url, 10)];
    // Each element a child execution on a worker, with the plan's default (b = 100).
    let l: Vec<i64> = (0..300).collect();
    let out = wait_fixture(
        &url,
        "map_over_launch_plan",
        &["--l", &json!(l).to_string()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Json = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(
        got,
        json!(l.iter().map(|a| a * 2 + 100).collect::<Vec<_>>())
    );
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    let children: i64 = c
        .query_one(
            "SELECT count(*) FROM sandflow.executions WHERE parent IS NOT NULL AND entity = 'dta_lp'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(children, 300);
    // The submitter's --task-retries 0 is the run's: one attempt, not the task's three.
    let out = wait_fixture(&url, "always_fails", &["--a", "1", "--task-retries", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("always fails (input 1)"), "{stderr}");
    let attempts: i64 = c
        .query_one(
            "SELECT max(n.attempts) FROM sandflow.nodes n JOIN sandflow.executions e \
             ON e.seq = n.execution WHERE e.entity = 'always_fails'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1, "the run kept the task's own retries");
    // And so do the child executions it delegates, as expanded ones would.
    let out = wait_fixture(
        &url,
        "map_over_fails_lp",
        &["--l", "[1, 2]", "--task-retries", "0"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (children, attempts): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(DISTINCT e.id), max(n.attempts) FROM sandflow.nodes n \
                 JOIN sandflow.executions e ON e.seq = n.execution \
                 WHERE e.parent IS NOT NULL AND n.entity = 'always_fails'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(children >= 1, "no child execution ran the task");
    assert_eq!(attempts, 1, "a child execution kept the task's own retries");
}

#[test]
fn a_sigkilled_worker_driving_child_executions_has_them_taken_over_without_rerunning_what_finished()
{
    let url = cluster().database("queue_kill_children");
    let mut workers = vec![worker(&url, 2), worker(&url, 2)];
    let n = 10_000;
    let out = submit(&url, n, 100, "--submit");
    assert_eq!(out.status.code(), Some(0));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    // The worker that does not drive the top execution is killed while it drives child
    // executions, some finished and some running.
    let t0 = Instant::now();
    let victim = loop {
        let (state, owner, ..) = row(&mut c, &id);
        assert_ne!(state, "done", "the run ended before a worker was killed");
        if let Some(owner) = owner {
            let driver = workers
                .iter()
                .position(|w| owner.ends_with(&format!(":{}", w.0.id())))
                .expect("claimed by one of the workers");
            break 1 - driver;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never claimed");
        std::thread::sleep(Duration::from_millis(5));
    };
    let pid = i64::from(workers[victim].0.id());
    freeze_when(workers[victim].0.id(), Duration::from_secs(180), || {
        let (state, ..) = row(&mut c, &id);
        if state == "done" {
            return Some(false);
        }
        let r = c
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), \
                 count(*) FILTER (WHERE status = 'running') \
                 FROM sandflow.executions WHERE parent IS NOT NULL AND owner_pid = $1",
                &[&pid],
            )
            .unwrap();
        let (done, running): (i64, i64) = (r.get(0), r.get(1));
        (done >= 50 && running > 0).then_some(true)
    });
    let killed = workers.remove(victim);
    drop(killed); // SIGKILL
    let before: std::collections::HashSet<i64> = c
        .query(
            "SELECT key FROM sandflow.nodes WHERE status = 'succeeded' AND kind = 'task'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (_, code, out) = wait_done(&mut c, &id);
    assert_eq!(code, Some(0));
    let got: Json = serde_json::from_str(&out.expect("an output")).expect("JSON");
    assert_eq!(got, expected(n));
    // The dead worker's child executions were recovered by the other one: what finished there
    // ran nowhere again.
    let recovered: i64 = c
        .query_one(
            "SELECT count(*) FROM sandflow.executions WHERE parent IS NOT NULL \
             AND recovered_from IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(recovered > 0, "no child execution was taken over");
    let twice: Vec<(String, i64)> = c
        .query(
            "SELECT min(path), key FROM sandflow.nodes WHERE kind = 'task' AND attempts > 0 \
             GROUP BY key HAVING count(*) > 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .filter(|(_, k)| before.contains(k))
        .collect();
    assert!(
        twice.is_empty(),
        "finished before the kill, ran again: {twice:?}"
    );
}

/// A connection to `url`, tried again for a while (the server may be restarting).
fn connect_again(url: &str) -> postgres::Client {
    let t0 = Instant::now();
    loop {
        match postgres::Client::connect(url, postgres::NoTls) {
            Ok(c) => return c,
            Err(e) => assert!(
                t0.elapsed() < Duration::from_secs(60),
                "cannot connect to {url}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Submits the nested 10 000/100 program and waits until its run is under way (`tasks`
/// task nodes recorded succeeded, the row not done): the moment of a fault. Its queue id.
fn submit_and_wait_for_progress(c: &mut postgres::Client, url: &str, tasks: i64) -> String {
    let out = submit(url, 10_000, 100, "--submit");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    wait_for_progress(c, &id, tasks);
    id
}

/// Waits until `tasks` task nodes are recorded succeeded while the row of `id` is not done.
fn wait_for_progress(c: &mut postgres::Client, id: &str, tasks: i64) {
    let t0 = Instant::now();
    loop {
        let (state, ..) = row(c, id);
        assert_ne!(
            state, "done",
            "the run ended before the fault: the test proves nothing"
        );
        let done: i64 = c
            .query_one(
                "SELECT count(*) FROM sandflow.nodes WHERE status = 'succeeded' AND kind = 'task'",
                &[],
            )
            .unwrap()
            .get(0);
        if done >= tasks {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The end checks of a fault test: the row of `id` is done with exit code 0 and the right
/// output, and in the tree of the execution that gave it, each of the 20 001 tasks is
/// recorded succeeded exactly once.
fn assert_ended_right_and_recorded_once(url: &str, id: &str, logs: &[&std::path::Path]) {
    let show_logs = || {
        logs.iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let mut c = connect_again(url);
    let t0 = Instant::now();
    let (execution, code, summary, out) = loop {
        let r = c
            .query_one(
                "SELECT state, execution, exit_code, summary, output FROM sandflow.queue \
                 WHERE id = $1",
                &[&id],
            )
            .expect("the queue row");
        let state: String = r.get(0);
        if state == "done" {
            let (e, code, summary, out): (
                Option<String>,
                Option<i32>,
                Option<String>,
                Option<String>,
            ) = (r.get(1), r.get(2), r.get(3), r.get(4));
            break (e, code, summary, out);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "{id} never ended: {state}\n{}",
            show_logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0), "{summary:?}\n{}", show_logs());
    let got: Json = serde_json::from_str(&out.expect("an output")).expect("JSON");
    assert_eq!(got, expected(10_000));
    let execution = execution.expect("the execution");
    let status: String = c
        .query_one(
            "SELECT status FROM sandflow.executions WHERE id = $1",
            &[&execution],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, "succeeded");
    let r = c
        .query_one(
            "SELECT count(*), count(DISTINCT n.path) FROM sandflow.nodes n \
             JOIN sandflow.executions e ON e.seq = n.execution \
             WHERE e.root = $1 AND n.kind = 'task' AND n.status = 'succeeded'",
            &[&execution],
        )
        .unwrap();
    let (rows, paths): (i64, i64) = (r.get(0), r.get(1));
    assert_eq!(
        (rows, paths),
        (20_001, 20_001),
        "succeeded task rows and distinct paths in the tree of {execution}\n{}",
        show_logs()
    );
}

#[test]
fn a_restart_of_postgres_mid_run_is_ridden_out_and_each_task_is_recorded_once() {
    let pg = private_cluster();
    let url = pg.database("queue_restart");
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("w1.log"), dir.path().join("w2.log")];
    let _w1 = logged_worker(&url, 10, &logs[0]);
    let _w2 = logged_worker(&url, 10, &logs[1]);
    // Submitted by `run --wait`, which waits through the restarts too.
    let l = json!((0..10_000).collect::<Vec<_>>()).to_string();
    let waiting = sandflow_command()
        .args([
            "run",
            module("nested_dynamics").to_str().unwrap(),
            "multi_wf",
        ])
        .args(["--l", &l, "--chunk", "100", "--wait"])
        .env("SANDFLOW_DB", &url)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sandflow runs");
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    let t0 = Instant::now();
    let id: String = loop {
        // The queue's table is created by the first process to use it.
        if let Ok(Some(r)) = c.query_opt("SELECT id FROM sandflow.queue WHERE parent IS NULL", &[])
        {
            break r.get(0);
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never submitted");
        std::thread::sleep(Duration::from_millis(20));
    };
    wait_for_progress(&mut c, &id, 2_000);
    drop(c);
    // Every connection of the workers, their runs and the waiting submitter is lost; the
    // server is down for 2 s.
    pg.restart("fast", Duration::from_secs(2));
    // Again, later in the run, as a crash: transactions in flight are neither committed nor
    // rolled back until the server recovers.
    let mut c = connect_again(&url);
    wait_for_progress(&mut c, &id, 8_000);
    drop(c);
    pg.restart("immediate", Duration::from_secs(1));
    let logs: Vec<&std::path::Path> = logs.iter().map(|l| l.as_path()).collect();
    assert_ended_right_and_recorded_once(&url, &id, &logs);
    let waited = waiting.wait_with_output().expect("run --wait ends");
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert_eq!(waited.status.code(), Some(0), "{stderr}");
    let got: Json = serde_json::from_slice(&waited.stdout).expect("JSON output");
    assert_eq!(got, expected(10_000));
}

#[test]
fn terminating_a_workers_backends_mid_run_is_ridden_out_and_each_task_is_recorded_once() {
    let url = cluster().database("queue_terminate");
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("w1.log"), dir.path().join("w2.log")];
    let workers = [
        logged_worker(&url, 10, &logs[0]),
        logged_worker(&url, 10, &logs[1]),
    ];
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    let id = submit_and_wait_for_progress(&mut c, &url, 2_000);
    // The worker driving the top execution, and its run process.
    let (_, owner, ..) = row(&mut c, &id);
    let owner = owner.expect("a claimer");
    let pid: u32 = owner
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("host:pid");
    assert!(
        workers.iter().any(|w| w.0.id() == pid),
        "{owner} is no worker"
    );
    let runs = children_of(pid);
    assert_eq!(runs.len(), 1, "one run process: {runs:?}");
    let names = vec![format!("sandflow {pid}"), format!("sandflow {}", runs[0])];
    let terminated: Vec<(String, bool)> = c
        .query(
            "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = ANY($1)",
            &[&names],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The worker's (claims, listen, heartbeat, store) and the run's (store, queue) at least.
    for name in &names {
        assert!(
            terminated.iter().any(|(n, ok)| n == name && *ok),
            "no backend of {name} terminated: {terminated:?}"
        );
    }
    let logs: Vec<&std::path::Path> = logs.iter().map(|l| l.as_path()).collect();
    assert_ended_right_and_recorded_once(&url, &id, &logs);
}

#[test]
fn cancelling_a_submitted_execution_cancels_its_child_executions_on_the_workers() {
    let url = cluster().database("queue_cancel_children");
    let _w = [worker(&url, 2), worker(&url, 2)];
    // Four child executions of 40 naps of 250 ms, two at a time: 5 s each.
    let l = json!(vec![vec![250; 40]; 4]).to_string();
    let out = sandflow_command()
        .arg("run")
        .arg(module("fixtures"))
        .args(["nap_children", "--l", &l, "--submit"])
        .env("SANDFLOW_DB", &url)
        .current_dir(repo())
        .output()
        .expect("sandflow runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    let running = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM sandflow.executions WHERE parent IS NOT NULL AND status = 'running'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let t0 = Instant::now();
    let execution = loop {
        let (state, _, execution, ..) = row(&mut c, &id);
        assert_ne!(state, "done", "it ended before it was cancelled");
        if let (Some(e), true) = (execution, running(&mut c) > 0) {
            break e;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no child execution ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let cancel = sandflow_command()
        .args(["cancel", &execution])
        .env("SANDFLOW_DB", &url)
        .output()
        .expect("sandflow cancel");
    assert_eq!(
        cancel.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
    let (_, code, _) = wait_done(&mut c, &id);
    assert_eq!(code, Some(130), "the submitted execution ends cancelled");
    // Its child executions stop on their workers: none is left running, none succeeded, long
    // before their 5 s were up.
    let t0 = Instant::now();
    while running(&mut c) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "child executions still running after the caller was cancelled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let statuses: Vec<String> = c
        .query(
            "SELECT status FROM sandflow.executions WHERE parent IS NOT NULL",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| s == "cancelled"), "{statuses:?}");
}
