//! The execution store in PostgreSQL, end to end through the `sandflow` binary: the seed's
//! nested program recorded and read back by `executions`, `show` and `logs`; the task cache
//! across processes; `recover` of a SIGKILLed run; and the errors of a database that cannot
//! be used. The server is a real PostgreSQL started for this binary (see `pg_cluster`).

use crate::guests::{freeze_when, module, repo, sandflow_command};
use crate::pg_cluster::{cluster, PASSWORD};
use sandflow_host::store::{ExecutionId, PgStore, StoreRead};
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `sandflow <args> --db <url>` in UTC.
fn sf(url: &str, args: &[&str]) -> Out {
    let out = sandflow_command()
        .args(args)
        .args(["--db", url])
        .env("TZ", "UTC")
        .env_remove("SANDFLOW_DB")
        .current_dir(repo())
        .output()
        .expect("sandflow runs");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(url: &str, args: &[&str]) -> Out {
    let out = sf(url, args);
    assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
    out
}

fn run_id(stderr: &str) -> String {
    stderr
        .split("(execution ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no execution id in {stderr}"))
        .to_string()
}

/// Ids listed by `sandflow executions` (the first column).
fn listed(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn the_seed_program_recorded_in_postgres_is_listed_shown_and_its_logs_printed() {
    let url = cluster().database("seed");
    let m = module("nested_dynamics");
    let m = m.to_str().unwrap();
    let run = ok(
        &url,
        &["run", m, "multi_wf", "--l", "[1,2,3,4,5,6]", "--chunk", "2"],
    );
    assert_eq!(run.stdout, "[4,5,6,7,8,9]\n");
    let ok_id = run_id(&run.stderr);
    let failed = sf(&url, &["run", m, "multi_wf", "--l", "[1]", "--chunk", "0"]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let failed_id = run_id(&failed.stderr);

    let list = ok(&url, &["executions"]).stdout;
    assert_eq!(listed(&list), [failed_id.clone(), ok_id.clone()], "{list}");
    assert_eq!(
        listed(&ok(&url, &["executions", "--all"]).stdout).len(),
        2 + 6,
        "six child executions; the failed run launched none"
    );
    let show = ok(&url, &["show", &ok_id[..6]]).stdout;
    assert!(show.contains("status     succeeded"), "{show}");
    assert!(show.contains("output     [4,5,6,7,8,9]"), "{show}");
    assert!(show.contains("child executions (6)"), "{show}");
    let logs = ok(&url, &["logs", &failed_id, "multi_wf/level1"]).stdout;
    assert!(
        logs.starts_with(
            "[multi_wf/level1 attempt 1 stderr] panicked: chunk must be positive, got 0"
        ),
        "{logs}"
    );
    // The password is in the URL given, never in what is printed.
    for text in [&run.stderr, &list, &show] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

#[test]
fn the_cache_in_postgres_serves_another_process() {
    let url = cluster().database("cache");
    let m = module("fixtures");
    let m = m.to_str().unwrap();
    let run = |note: &str| {
        ok(
            &url,
            &[
                "run",
                m,
                "cached_squares",
                "--l",
                "[7,8]",
                "--note",
                note,
                "--tree",
            ],
        )
    };
    let first = run("a");
    assert_eq!(first.stdout, "[49,64]\n");
    assert!(
        first
            .stderr
            .contains("(2 task executions, 0 child executions)"),
        "{}",
        first.stderr
    );
    let second = run("b");
    assert_eq!(second.stdout, "[49,64]\n");
    assert!(
        second
            .stderr
            .contains("(0 task executions, 0 child executions)"),
        "{}",
        second.stderr
    );
    assert_eq!(
        second.stderr.matches("  cached").count(),
        2,
        "{}",
        second.stderr
    );
    let list = ok(&url, &["cache", "list"]).stdout;
    assert!(list.contains("cached_square"), "{list}");
    let cleared = ok(&url, &["cache", "clear"]);
    assert!(cleared.stdout.contains('2') || cleared.stderr.contains('2'));
}

/// Succeeded task nodes recorded so far in database `url`.
fn finished_tasks(client: &mut postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM sandflow.nodes WHERE status = 'succeeded' AND kind = 'task'",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(0)
}

#[test]
fn a_sigkilled_run_recorded_in_postgres_is_recovered_without_rerunning_what_finished() {
    use std::io::{BufRead, BufReader};
    let url = cluster().database("recover");
    let n = 10_000;
    let m = module("nested_dynamics");
    let l = json!((0..n).collect::<Vec<_>>()).to_string();
    let mut child = sandflow_command()
        .args([
            "run",
            m.to_str().unwrap(),
            "multi_wf",
            "--l",
            &l,
            "--chunk",
            "100",
        ])
        .args(["--db", &url])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sandflow starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while lines.read_line(&mut line).expect("reads") > 0 && !line.contains("(execution ") {
        line.clear();
    }
    let id = run_id(&line);
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    // Killed once its first tasks are recorded, while it runs: frozen while the store is
    // read, so that it cannot end between the look and the kill. (Not at a count further
    // on: the writer commits in group commits of thousands of rows, and the one that takes
    // the count past any point may also be the one that ends the run.)
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    freeze_when(child.id(), Duration::from_secs(180), || {
        let status: Option<String> = client
            .query_opt(
                "SELECT status FROM sandflow.executions WHERE id = $1",
                &[&id],
            )
            .expect("a query")
            .map(|r| r.get(0));
        if status.as_deref().is_some_and(|s| s != "running") {
            return Some(false);
        }
        (finished_tasks(&mut client) >= 1).then_some(true)
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let before: std::collections::HashSet<i64> = client
        .query(
            "SELECT n.key FROM sandflow.nodes n JOIN sandflow.executions e \
             ON e.seq = n.execution WHERE e.root = $1 AND n.status = 'succeeded'",
            &[&id],
        )
        .expect("a query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!before.is_empty());
    let store = PgStore::open(&url).expect("opens");
    assert_eq!(
        store.execution(&id).unwrap().summary.status.as_str(),
        "interrupted"
    );

    let out = ok(&url, &["recover", &id]);
    let got: Json = serde_json::from_str(&out.stdout).expect("JSON output");
    assert_eq!(got, json!((0..n).map(|a| a + 3).collect::<Vec<_>>()));
    assert!(
        out.stderr.contains("sandflow: recovery reused"),
        "{}",
        out.stderr
    );
    let recovery = store
        .executions(&Default::default())
        .unwrap()
        .into_iter()
        .find(|e| e.recovered_from.as_ref().map(|r| r.as_str()) == Some(id.as_str()))
        .expect("the recovery is recorded");
    assert_eq!(recovery.status.as_str(), "succeeded");
    let mut reran = Vec::new();
    let mut tree: Vec<ExecutionId> = vec![recovery.id.clone()];
    while let Some(x) = tree.pop() {
        tree.extend(store.children(&x).unwrap().into_iter().map(|c| c.id));
        reran.extend(
            store
                .nodes(&x)
                .unwrap()
                .into_iter()
                .filter(|n| n.attempts > 0 && before.contains(&(n.key as i64)))
                .map(|n| n.path),
        );
    }
    assert!(reran.is_empty(), "ran again: {reran:?}");
}

#[test]
fn an_unusable_database_is_a_clear_error_within_seconds_before_anything_runs() {
    let c = cluster();
    let url = c.database("unusable");
    let m = module("nested_dynamics");
    let m = m.to_str().unwrap();
    let args = ["run", m, "multi_wf", "--l", "[1]", "--chunk", "1"];
    let t0 = Instant::now();
    // A bad password.
    let bad = url.replace(PASSWORD, "not-the-password");
    let out = sf(&bad, &args);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot connect to the execution store postgres://postgres@127.0.0.1")
            && out.stderr.contains("password authentication failed"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not-the-password") && !out.stderr.contains("running multi_wf"));
    // No server on that port, for a command that reads.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let out = sf(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        &["executions"],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "not hanging: {:?}",
        t0.elapsed()
    );
    // Another schema version.
    ok(&url, &["executions"]);
    c.execute(&url, "UPDATE sandflow.meta SET version = 42");
    for a in [
        &args[..],
        &["show", "abc"],
        &["recover", "abc"],
        &["cache", "list"],
    ] {
        let out = sf(&url, a);
        assert_eq!(out.code, Some(2), "{a:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("has schema version 42"),
            "{a:?}: {}",
            out.stderr
        );
    }
    // $SANDFLOW_DB names a database as --db does.
    c.execute(&url, "UPDATE sandflow.meta SET version = 1");
    let out = sandflow_command()
        .args(["executions"])
        .env("SANDFLOW_DB", &url)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
