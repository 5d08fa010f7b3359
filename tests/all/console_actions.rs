//! The console's actions over HTTP, against a real `sandflow ui` and real runs: cancel (from
//! the API and from `sandflow cancel`), recover, relaunch with an edited input, launch from a
//! stored module, the forms' interfaces, and the errors a bad request gets.

use crate::console::{get_json, recorded, request_with_body, serve, Reply};
use crate::guests::{kill_while_running, module, sandflow_command};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A POST the page would send (with the X-Sandflow header).
fn post(addr: &str, target: &str, body: &Json) -> Reply {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    request_with_body(
        addr,
        "POST",
        target,
        &["X-Sandflow: 1", "Content-Type: application/json"],
        &body,
    )
}

fn post_ok(addr: &str, target: &str, body: &Json, status: u16) -> Json {
    let r = post(addr, target, body);
    assert_eq!(r.status, status, "POST {target}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("POST {target}: {e}: {}", r.body))
}

/// The seed's nested program on `0..n` (output: each item + 3), recorded in `db`, started in
/// the background; returns the process and its execution id.
fn start_seed(db: &Path, n: i64) -> (Child, String) {
    let l = json!((0..n).collect::<Vec<_>>()).to_string();
    let mut child = sandflow_command()
        .arg("run")
        .arg(module("nested_dynamics"))
        // One worker: the run lasts seconds in a debug build, longer than the store's
        // writer trails it (a child execution is seen only once its group commit is in).
        .args([
            "multi_wf",
            "--l",
            &l,
            "--chunk",
            "100",
            "--workers",
            "1",
            "--db",
        ])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sandflow run starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("(execution ") {
        line.clear();
    }
    let id = line
        .split("(execution ")
        .nth(1)
        .map(|rest| rest.trim_end().trim_end_matches(')').to_string())
        .unwrap_or_default();
    // Keep reading, so the run never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    (child, id)
}

/// Waits (at most a minute: "not hanging") for `child` to exit.
fn exit_of(child: &mut Child) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            return status;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the run did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the execution until it is no longer running (at most two minutes); its JSON.
fn ended(addr: &str, id: &str) -> Json {
    let t0 = Instant::now();
    loop {
        let e = get_json(addr, &format!("/api/executions/{id}"));
        if e["status"] != "running" {
            return e;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{id} still runs: {e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Cancels one of the running child executions of `id` through the API (one that ends
/// first is a 409, and the next is tried); the answer. The child is found in the store
/// itself: listing thousands of running executions over the API is slower than the run.
fn cancel_a_running_child(addr: &str, db: &Path, id: &str) -> Json {
    let conn = rusqlite::Connection::open(db).expect("the store opens");
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no running child of {id}"
        );
        let child: Option<String> = conn
            .query_row(
                "SELECT id FROM executions WHERE root = ?1 AND parent IS NOT NULL \
                 AND status = 'running' ORDER BY seq DESC LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .ok();
        let Some(child) = child else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let target = format!("/api/executions/{child}/cancel");
        let r = post(addr, &target, &Json::Null);
        match r.status {
            202 => return serde_json::from_str(&r.body).expect("JSON"),
            409 => continue,
            other => panic!("POST {target}: {other} {}", r.body),
        }
    }
}

fn seed_output(n: i64) -> Json {
    json!((0..n).map(|a| a + 3).collect::<Vec<_>>())
}

fn empty_store(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("actions.db");
    sandflow_host::store::SqliteStore::open(&db).expect("create the store");
    db
}

#[test]
fn a_running_execution_cancelled_from_the_api_ends_cancelled_and_recovers_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_store(dir.path());
    let server = serve(&db, &[]);
    let a = server.addr.as_str();
    // Long enough (seconds) that the run is still going when the request comes.
    let n = 20_000;
    let (mut run, id) = start_seed(&db, n);
    assert!(!id.is_empty(), "the run never named its execution");

    // Cancel a child execution (a launch plan call): its whole run stops, as on Ctrl-C.
    let r = cancel_a_running_child(a, &db, &id);
    assert_eq!(r["root"], id.as_str(), "{r}");
    assert_ne!(r["execution"], id.as_str(), "{r}");
    assert_eq!(exit_of(&mut run).code(), Some(130), "exits as on Ctrl-C");
    let e = ended(a, &id);
    assert_eq!(e["status"], "cancelled", "{e}");

    // Not running any more: a clear conflict, naming the status.
    let again = post(a, &format!("/api/executions/{id}/cancel"), &Json::Null);
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.body.contains("cancelled, not running"),
        "{}",
        again.body
    );

    let r = post_ok(
        a,
        &format!("/api/executions/{id}/recover"),
        &Json::Null,
        201,
    );
    assert_eq!(r["recovers"], id.as_str());
    let new = r["execution"].as_str().expect("the new execution's id");
    assert_ne!(new, id);
    let e = ended(a, new);
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["output"], seed_output(n));
    assert_eq!(e["recovered_from"], id.as_str(), "{e}");
}

#[test]
fn sandflow_cancel_stops_a_run_in_another_process_and_recover_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_store(dir.path());
    // Long enough (seconds) that the run is still going when `sandflow cancel` starts.
    let n = 20_000;
    let (mut run, id) = start_seed(&db, n);
    assert!(!id.is_empty(), "the run never named its execution");
    let out = sandflow_command()
        .args(["cancel", &id[..10], "--db"])
        .arg(&db)
        .output()
        .expect("sandflow cancel");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("execution {id} cancelled")), "{err}");
    assert_eq!(exit_of(&mut run).code(), Some(130));

    let out = sandflow_command()
        .args(["cancel", &id, "--db"])
        .arg(&db)
        .output()
        .expect("sandflow cancel");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("execution {id} is cancelled, not running")),
        "{err}"
    );

    let out = sandflow_command()
        .args(["recover", &id, "--db"])
        .arg(&db)
        .output()
        .expect("sandflow recover");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let output: Json = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(output, seed_output(n));
}

#[test]
fn a_killed_run_recovers_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_store(dir.path());
    let server = serve(&db, &[]);
    let a = server.addr.as_str();
    let n = 2_000;
    let (mut run, id) = start_seed(&db, n);
    assert!(!id.is_empty(), "the run never named its execution");
    kill_while_running(&mut run, &db, &id);
    assert_eq!(ended(a, &id)["status"], "interrupted");
    let r = post_ok(
        a,
        &format!("/api/executions/{id}/recover"),
        &Json::Null,
        201,
    );
    let e = ended(a, r["execution"].as_str().unwrap());
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["output"], seed_output(n));
}

#[test]
fn a_relaunch_with_an_edited_input_gives_the_new_output() {
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = recorded(dir.path());
    let server = serve(&db, &[]);
    let a = server.addr.as_str();

    // The form: the entity's inputs, typed as `describe` shows them, with their values.
    let form = get_json(a, &format!("/api/executions/{id}/interface"));
    let inputs = form["entity"]["inputs"].as_array().expect("inputs").clone();
    let l = inputs.iter().find(|i| i["name"] == "l").expect("input l");
    assert_eq!(l["type"], "list<i64>", "{form}");
    assert_eq!(l["value"], json!([1, 2, 3, 4, 5, 6]), "{form}");
    assert_eq!(form["entity"]["output"], "list<i64>", "{form}");

    let body = json!({ "inputs": { "l": [10, 20, 30] } });
    let r = post_ok(a, &format!("/api/executions/{id}/relaunch"), &body, 201);
    let e = ended(a, r["execution"].as_str().unwrap());
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["output"], json!([13, 23, 33]));
    assert_eq!(
        e["inputs"]["chunk"],
        json!(2),
        "the other input is kept: {e}"
    );

    // A bad input is refused with the CLI's message, and nothing runs.
    let bad = post(
        a,
        &format!("/api/executions/{id}/relaunch"),
        &json!({ "inputs": { "l": "ten" } }),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("l") && bad.body.contains("list"),
        "{}",
        bad.body
    );
    let bad = post(
        a,
        &format!("/api/executions/{id}/relaunch"),
        &json!({ "inputs": { "nope": 1 } }),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("unknown input `nope`"), "{}", bad.body);
    let bad = request_with_body(
        a,
        "POST",
        &format!("/api/executions/{id}/relaunch"),
        &["X-Sandflow: 1"],
        "{not json",
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("not valid JSON"), "{}", bad.body);
}

#[test]
fn launch_runs_an_entity_of_a_stored_module_and_bad_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = recorded(dir.path());
    let server = serve(&db, &[]);
    let a = server.addr.as_str();

    let modules = get_json(a, "/api/modules");
    let m = &modules["modules"][0];
    let digest = m["digest"].as_str().expect("a digest").to_string();
    assert_eq!(digest.len(), 64, "{modules}");
    assert!(
        m["entities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "multi_wf"),
        "{modules}"
    );
    let described = get_json(a, &format!("/api/modules/{}", &digest[..12]));
    let entities = described["entities"].as_array().expect("entities");
    let wf = entities
        .iter()
        .find(|e| e["name"] == "multi_wf")
        .expect("multi_wf");
    assert_eq!(wf["inputs"][0]["name"], "l", "{wf}");
    assert_eq!(wf["inputs"][0]["type"], "list<i64>", "{wf}");
    assert!(
        entities.iter().any(|e| e["launch_plan"].is_object()),
        "the seed's launch plan is described: {described}"
    );

    let body = json!({ "module": &digest[..12], "entity": "multi_wf",
                       "inputs": { "l": [1, 2], "chunk": 1 } });
    let r = post_ok(a, "/api/launch", &body, 201);
    let e = ended(a, r["execution"].as_str().unwrap());
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["output"], json!([4, 5]));

    for (body, status, says) in [
        (
            json!({ "module": digest, "entity": "multi_wf", "inputs": { "l": [1] } }),
            400,
            "chunk",
        ),
        (
            json!({ "module": digest, "entity": "multi_wf", "inputs": { "l": [1], "chunk": "x" } }),
            400,
            "chunk",
        ),
        (
            json!({ "module": digest, "entity": "nope", "inputs": {} }),
            404,
            "has no entity",
        ),
        (
            json!({ "module": "abcdef0123", "entity": "multi_wf" }),
            404,
            "no module abcdef0123",
        ),
        (
            json!({ "module": "not hex", "entity": "multi_wf" }),
            400,
            "sha256 digest",
        ),
        (json!({ "entity": "multi_wf" }), 400, "needs `module`"),
        (
            json!({ "module": digest, "entity": "multi_wf", "inputs": [1] }),
            400,
            "`inputs` must be a JSON object",
        ),
    ] {
        let r = post(a, "/api/launch", &body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(
            r.body.contains(says),
            "{body}: expected {says:?} in {}",
            r.body
        );
    }

    // Unknown executions, and actions on ones that are not running or ended as they must be.
    let r = post(a, "/api/executions/nosuchexecution/cancel", &Json::Null);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post(a, &format!("/api/executions/{id}/cancel"), &Json::Null);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("succeeded, not running"), "{}", r.body);
    let r = post(a, &format!("/api/executions/{id}/recover"), &Json::Null);
    assert_eq!(r.status, 409, "{}", r.body);
    let r = post(a, "/api/executions/nosuchexecution/recover", &Json::Null);
    assert_eq!(r.status, 404, "{}", r.body);

    // A state change without the console's header is refused, and runs nothing.
    let r = request_with_body(a, "POST", "/api/launch", &[], &body.to_string());
    assert_eq!(r.status, 403, "{}", r.body);
    let r = request_with_body(
        a,
        "POST",
        &format!("/api/executions/{id}/relaunch"),
        &[],
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let all = get_json(a, "/api/executions");
    assert_eq!(
        all["executions"].as_array().unwrap().len(),
        2,
        "only the recorded run and the one launch: {all}"
    );
}

/// The console over a PostgreSQL store: the run it watches is cancelled through the store
/// (the run's watch reads the request there) and recovered by a child process that opens the
/// same database (given to it as `SANDFLOW_DB`, password included).
#[test]
fn the_console_over_postgres_cancels_and_recovers_a_run() {
    let url = crate::pg_cluster::cluster().database("console_actions");
    let db = Path::new(&url);
    let server = serve(db, &[]);
    let a = server.addr.as_str();
    let n = 20_000;
    let (mut run, id) = start_seed(db, n);
    assert!(!id.is_empty(), "the run never named its execution");
    let r = post_ok(a, &format!("/api/executions/{id}/cancel"), &Json::Null, 202);
    assert_eq!(r["root"], id.as_str(), "{r}");
    assert_eq!(exit_of(&mut run).code(), Some(130), "exits as on Ctrl-C");
    assert_eq!(ended(a, &id)["status"], "cancelled");
    let r = post_ok(
        a,
        &format!("/api/executions/{id}/recover"),
        &Json::Null,
        201,
    );
    let new = r["execution"].as_str().expect("the new execution's id");
    let e = ended(a, new);
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["output"], seed_output(n));
    assert_eq!(e["recovered_from"], id.as_str(), "{e}");
}
