//! The console over a tree with a group too big to read whole (a map of 12 000 elements, a
//! few of which fail): the run writes a summary when it ends, and the console reads the tree
//! in parts from it. Every answer must be the one the console gives when it reads the whole
//! tree, which it does for the same store with the summaries removed. On SQLite and on
//! PostgreSQL (their queries differ).

use crate::console::{get_json, serve};
use crate::guests::{module, repo, sandflow_command};
use crate::pg_cluster::cluster;
use serde_json::Value as Json;

const ELEMENTS: usize = 12_000;
const FAILING: [usize; 3] = [5, 7_000, ELEMENTS - 1];

/// Records `survivors` over `ELEMENTS` kinds (those at `FAILING` panic) in `db`; returns the
/// execution's id.
fn record(db: &str) -> String {
    let kinds: Vec<&str> = (0..ELEMENTS)
        .map(|i| if FAILING.contains(&i) { "panic" } else { "ok" })
        .collect();
    let out = sandflow_command()
        .arg("run")
        .arg(module("hostile_guests"))
        .arg("survivors")
        .arg("--kinds")
        .arg(serde_json::to_string(&kinds).unwrap())
        .args(["--db", db])
        .env_remove("SANDFLOW_DB")
        .current_dir(repo())
        .output()
        .expect("sandflow run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr
        .split("(execution ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no execution id in {stderr}"))
        .to_string()
}

/// What the console answers for the requests its execution page makes, and a few more.
fn answers(db: &str, id: &str) -> Vec<(String, Json)> {
    let server = serve(std::path::Path::new(db), &[]);
    let a = server.addr.as_str();
    let map = "survivors/behave";
    let mut targets = vec![
        format!("/api/executions/{id}"),
        format!("/api/executions/{id}/nodes?parent="),
        format!("/api/executions/{id}/nodes?parent=survivors"),
        format!("/api/executions/{id}/graphs"),
        format!("/api/executions/{id}/graphs?owner=survivors"),
        format!("/api/executions/{id}/logs?path={map}%5B7000%5D"),
        format!("/api/executions/{id}/node?path={map}%5B7000%5D"),
        format!("/api/executions/{id}/node?path={map}%5B11998%5D"),
    ];
    for (offset, limit) in [(0, 100), (1, 4), (2, 2), (5_000, 100), (11_950, 100)] {
        targets.push(format!(
            "/api/executions/{id}/nodes?parent={map}&offset={offset}&limit={limit}&outputs=false"
        ));
    }
    targets.push(format!("/api/executions/{id}/nodes?parent={map}&limit=3"));
    let mut out: Vec<(String, Json)> = targets
        .into_iter()
        .map(|t| {
            let j = get_json(a, &t);
            (t, j)
        })
        .collect();
    // The timeline's first spans are the same tasks either way; ties in start time may be
    // listed in another order.
    let mut t = get_json(a, &format!("/api/executions/{id}/timeline?limit=50"));
    if let Some(spans) = t["spans"].as_array_mut() {
        spans.sort_by_key(|s| (s["start_us"].as_u64(), s["path"].to_string()));
    }
    out.push(("timeline".into(), t));
    out
}

fn big_map_reads_the_same_in_parts(db: &str, clear_summaries: impl Fn()) {
    let id = record(db);
    let parts = answers(db, &id);
    clear_summaries();
    let whole = answers(db, &id);

    let get = |list: &[(String, Json)], needle: &str| -> Json {
        list.iter()
            .find(|(t, _)| t.contains(needle))
            .unwrap_or_else(|| panic!("no answer for {needle}"))
            .1
            .clone()
    };
    // What the page shows, read in parts.
    let exec = get(&parts, &format!("/api/executions/{id}"));
    assert_eq!(exec["tasks"]["total"], ELEMENTS, "{exec}");
    assert_eq!(exec["tasks"]["failed"], FAILING.len(), "{exec}");
    let first = get(&parts, "offset=0&limit=100");
    assert_eq!(first["total"], ELEMENTS, "{first}");
    assert_eq!(first["phases"]["failed"], FAILING.len(), "{first}");
    assert_eq!(first["phases"]["succeeded"], ELEMENTS - FAILING.len());
    let paths: Vec<&str> = first["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 100);
    // Failed first, then the rest by index.
    assert_eq!(
        paths[..5],
        [
            "survivors/behave[5]",
            "survivors/behave[7000]",
            "survivors/behave[11999]",
            "survivors/behave[0]",
            "survivors/behave[1]",
        ]
    );
    assert_eq!(paths[99], "survivors/behave[97]");
    let far = get(&parts, "offset=5000&limit=100");
    assert_eq!(far["nodes"][0]["path"], "survivors/behave[4998]", "{far}");
    let last = get(&parts, "offset=11950&limit=100");
    assert_eq!(last["nodes"].as_array().unwrap().len(), 50, "{last}");
    assert_eq!(last["nodes"][49]["path"], "survivors/behave[11998]");
    let panel = get(&parts, "node?path=survivors/behave%5B7000%5D");
    assert_eq!(panel["status"], "failed", "{panel}");
    assert_eq!(panel["inputs"]["kind"], "panic", "{panel}");
    let ok = get(&parts, "node?path=survivors/behave%5B11998%5D");
    assert_eq!(ok["inputs"]["kind"], "ok", "{ok}");
    assert_eq!(ok["output"], "fine", "{ok}");
    let logs = get(&parts, "/logs?path=");
    assert!(
        logs["attempts"][0]["stderr"]
            .as_str()
            .is_some_and(|e| e.contains("behave: panic")),
        "{logs}"
    );
    let timeline = get(&parts, "timeline");
    assert_eq!(timeline["total"], ELEMENTS, "{timeline}");
    assert_eq!(timeline["spans"].as_array().unwrap().len(), 50);

    // The same answers as from the whole tree.
    for ((target, p), (_, w)) in parts.iter().zip(&whole) {
        assert_eq!(p, w, "{target}: in parts, then whole");
    }
}

#[test]
fn a_big_map_is_read_in_parts_with_the_answers_of_the_whole_tree_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    let db = db.to_str().unwrap().to_string();
    let summaries = |db: &str| -> Vec<Option<String>> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut s = conn.prepare("SELECT summary FROM executions").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let clear = || {
        let list = summaries(&db);
        assert_eq!(list.len(), 1);
        let s: Json = serde_json::from_str(list[0].as_deref().expect("a summary")).unwrap();
        assert_eq!(s["groups"][0]["prefix"], "survivors/behave", "{s}");
        assert_eq!(s["groups"][0]["total"], ELEMENTS, "{s}");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute("UPDATE executions SET summary = NULL", [])
            .unwrap();
    };
    big_map_reads_the_same_in_parts(&db, clear);
}

#[test]
fn a_big_map_is_read_in_parts_with_the_answers_of_the_whole_tree_in_postgres() {
    let url = cluster().database("console_big");
    let clear = || {
        let with = cluster().query_i64(
            &url,
            "SELECT count(*) FROM sandflow.executions WHERE summary LIKE '%\"groups\"%'",
        );
        assert_eq!(with, 1, "the run wrote a summary with its group");
        cluster().execute(&url, "UPDATE sandflow.executions SET summary = NULL");
    };
    big_map_reads_the_same_in_parts(&url, clear);
}
