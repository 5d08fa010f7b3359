//! `sandflow ui`: the console's HTTP server and JSON API over a store that a real
//! `sandflow run` of the seed recorded, spoken to with a minimal HTTP/1.1 client.

use crate::guests::{module, repo, sandflow_command};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A running `sandflow ui`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sandflow ui --db <db> --addr 127.0.0.1:0 <extra>` and reads the bound address
/// from the URL it prints.
pub(crate) fn serve(db: &Path, extra: &[&str]) -> Server {
    let mut child = sandflow_command()
        .args(["ui", "--addr", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(extra)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sandflow ui starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("sandflow ui prints its URL");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    Server { child, addr }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    head: String,
    pub(crate) body: String,
}

/// One request on a new connection; reads the head and up to `Content-Length` (or, for a
/// stream, what the first read brings).
fn request(addr: &str, method: &str, target: &str, headers: &[&str]) -> Reply {
    request_with_body(addr, method, target, headers, "")
}

/// [`request`] with a body (sent with its length when not empty).
pub(crate) fn request_with_body(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect to the console");
    // Generous: a bound that proves "not hanging" on a loaded machine, not a timing.
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).expect("read the reply");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            if head.contains("text/event-stream") {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub(crate) fn get_json(addr: &str, target: &str) -> Json {
    let r = request(addr, "GET", target, &[]);
    assert_eq!(r.status, 200, "GET {target}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {target}: {e}: {}", r.body))
}

/// A store with one recorded run of the seed; returns its execution id.
pub(crate) fn recorded(dir: &Path) -> (std::path::PathBuf, String) {
    let db = dir.join("ui.db");
    let out = sandflow_command()
        .arg("run")
        .arg(module("nested_dynamics"))
        .args(["multi_wf", "--l", "[1,2,3,4,5,6]", "--chunk", "2", "--db"])
        .arg(&db)
        .current_dir(repo())
        .output()
        .expect("sandflow run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = sandflow_command()
        .args(["executions", "--json", "--db"])
        .arg(&db)
        .output()
        .expect("sandflow executions");
    let rows: Json = serde_json::from_slice(&list.stdout).expect("executions --json");
    let id = rows[0]["id"].as_str().expect("an id").to_string();
    (db, id)
}

#[test]
fn the_console_serves_a_recorded_run_through_its_api() {
    let dir = tempfile::tempdir().unwrap();
    let (db, id) = recorded(dir.path());
    let server = serve(&db, &[]);
    let a = server.addr.as_str();

    let list = get_json(a, "/api/executions");
    let ids: Vec<&str> = list["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    assert_eq!(list["executions"][0]["status"], "succeeded");
    let failed = get_json(a, "/api/executions?status=failed");
    assert_eq!(failed["executions"].as_array().unwrap().len(), 0);
    let bad = request(a, "GET", "/api/executions?status=sideways", &[]);
    assert_eq!(bad.status, 400, "{}", bad.body);

    let exec = get_json(a, &format!("/api/executions/{id}"));
    assert_eq!(exec["entity"], "multi_wf");
    assert_eq!(exec["children"].as_array().unwrap().len(), 6, "{exec}");
    assert!(exec["inputs"].is_object(), "{exec}");
    assert!(!exec["output"].is_null(), "{exec}");
    let missing = request(a, "GET", "/api/executions/nosuchexecution", &[]);
    assert_eq!(missing.status, 404, "{}", missing.body);

    // Walk down the tree, one level per request, to a `step2` leaf.
    let mut parent = String::new();
    let leaf = 'walk: loop {
        let target = format!("/api/executions/{id}/nodes?parent={parent}");
        let level = get_json(a, &target);
        let nodes = level["nodes"].as_array().unwrap().clone();
        assert!(!nodes.is_empty(), "{target}: {level}");
        if let Some(l) = nodes.iter().find(|n| n["entity"] == "step2") {
            break 'walk l.clone();
        }
        let next = nodes
            .iter()
            .find(|n| n["has_children"] == true)
            .unwrap_or_else(|| panic!("no step2 and nothing to open under {parent:?}: {level}"));
        parent = next["path"].as_str().unwrap().to_string();
        assert!(parent.len() < 400, "the walk does not go down: {parent}");
    };
    assert_eq!(leaf["status"], "succeeded", "{leaf}");
    assert!(!leaf["output"].is_null(), "{leaf}");
    assert_eq!(leaf["has_children"], false);
    let bare = get_json(a, &format!("/api/executions/{id}/nodes?outputs=false"));
    assert!(bare["nodes"][0].get("output").is_none(), "{bare}");
    assert_eq!(bare["phases"]["succeeded"], 1, "{bare}");
    let unknown = request(
        a,
        "GET",
        &format!("/api/executions/{id}/nodes?parent=nope"),
        &[],
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    let logs = get_json(a, &format!("/api/executions/{id}/logs"));
    // The seed's tasks print nothing and succeed: the store keeps no attempt of theirs.
    let attempts = logs["attempts"].as_array().expect("a list of attempts");
    assert!(attempts.iter().all(|t| t["stdout"].is_string()), "{logs}");
    assert_eq!(logs["execution"], id.as_str());
    let leaf_path = leaf["path"].as_str().unwrap();
    let one = get_json(a, &format!("/api/executions/{id}/logs?path={leaf_path}"));
    assert!(one["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["path"] == leaf_path));

    let page = request(a, "GET", "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/console.js"), "{}", page.body);
    let js = request(a, "GET", "/assets/console.js", &[]);
    assert!(js.body.contains("textContent") && !js.body.contains("innerHTML"));

    for escape in [
        "/../../etc/passwd",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
    ] {
        let r = request(a, "GET", escape, &[]);
        assert_eq!(r.status, 404, "{escape}: {}", r.body);
    }

    let sse = request(a, "GET", "/api/events", &[]);
    assert_eq!(sse.status, 200);
    assert!(
        sse.head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{}",
        sse.head
    );

    // No state changes without the custom header; a foreign Host (DNS rebinding) is refused.
    assert_eq!(request(a, "POST", "/api/executions", &[]).status, 403);
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"GET /api/executions HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
}

#[test]
fn a_token_guards_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    // An empty store: open_existing_store wants the file; `executions` makes none.
    sandflow_host::store::SqliteStore::open(&db).expect("create the store");
    let server = serve(&db, &["--token", "s3cret"]);
    let a = server.addr.as_str();
    assert_eq!(request(a, "GET", "/api/executions", &[]).status, 401);
    assert_eq!(request(a, "GET", "/", &[]).status, 401);
    let wrong = request(a, "GET", "/api/executions", &["Authorization: Bearer nope"]);
    assert_eq!(wrong.status, 401);
    let ok = request(
        a,
        "GET",
        "/api/executions",
        &["Authorization: Bearer s3cret"],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(request(a, "GET", "/?token=s3cret", &[]).status, 200);
}

#[test]
fn a_public_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    sandflow_host::store::SqliteStore::open(&db).expect("create the store");
    let out = sandflow_command()
        .args(["ui", "--addr", "0.0.0.0:0", "--db"])
        .arg(&db)
        .output()
        .expect("sandflow ui");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--token"),
        "{err}"
    );
}
