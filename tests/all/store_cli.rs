//! The commands that read the execution store (`executions`, `show`, `logs`, `cache`), run as
//! the `sandflow` binary on a database these tests write through the store's API, and once
//! end to end after a recorded `sandflow run`.

use crate::guests::{module, repo, sandflow_command};
use sandflow_contract::{Interface, Param, Type, Value};
use sandflow_host::store::{
    AttemptOutcome, AttemptRecord, CacheRecord, EntityRecord, ExecStatus, ExecutionEnd,
    ExecutionId, ModuleRecord, NewExecution, NodeRecord, NodeStatus, Owner, SqliteStore,
    StoreWrite, WriteOp,
};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// 2023-11-14 22:13:20 UTC: the old execution's start, shown in UTC (the tests set TZ).
const OLD_MS: i64 = 1_700_000_000_000;
const DIGEST: &str = "c0ffee";

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `sandflow <args> --db <db>` in UTC.
fn sf(db: &Path, args: &[&str]) -> Out {
    let out = sandflow_command()
        .args(args)
        .arg("--db")
        .arg(db)
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

/// `sf` that must succeed.
fn ok(db: &Path, args: &[&str]) -> String {
    let out = sf(db, args);
    assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
    out.stdout
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

fn iface(inputs: &[(&str, Type)], output: Option<Type>) -> Interface {
    Interface {
        inputs: inputs
            .iter()
            .map(|(n, t)| Param {
                name: n.to_string(),
                ty: t.clone(),
                default: None,
            })
            .collect(),
        output,
    }
}

fn entity(name: &str, kind: &str, interface: Interface) -> EntityRecord {
    EntityRecord {
        name: name.into(),
        kind: kind.into(),
        interface,
    }
}

fn ints(v: &[i64]) -> Value {
    Value::List(v.iter().map(|i| Value::Int(*i)).collect())
}

/// The ids of what [`fixture`] wrote.
struct Ids {
    /// `wf`, succeeded, 5 s ago, with a child execution.
    root: ExecutionId,
    /// `lp`, the root's child execution.
    child: ExecutionId,
    /// `other`, failed, 2 s ago.
    failed: ExecutionId,
    /// `wf`, recorded as running by a process that is gone, 1 s ago.
    dead: ExecutionId,
    /// `wf`, succeeded in 2023.
    old: ExecutionId,
}

fn new_exec(
    id: &ExecutionId,
    parent: Option<&ExecutionId>,
    entity: &str,
    inputs: Value,
    started_ms: i64,
) -> WriteOp {
    WriteOp::StartExecution(NewExecution {
        id: id.clone(),
        parent: parent.cloned(),
        root: parent.cloned().unwrap_or_else(|| id.clone()),
        entity: entity.into(),
        module: DIGEST.into(),
        inputs,
        started_ms,
        owner: Owner::current(),
        recovered_from: None,
    })
}

fn end(id: &ExecutionId, status: ExecStatus, ended_ms: i64, output: Option<Value>) -> WriteOp {
    WriteOp::FinishExecution {
        execution: id.clone(),
        end: ExecutionEnd {
            status,
            ended_ms,
            error: (status == ExecStatus::Failed).then(|| "node other/t[0] failed: boom".into()),
            output,
        },
    }
}

/// A node row: `[entity, kind]`, `(status, attempts, cached)`.
fn node(
    execution: &ExecutionId,
    key: u64,
    path: &str,
    [entity, kind]: [&str; 2],
    (status, attempts, cached): (NodeStatus, u32, bool),
    output: Option<Value>,
) -> WriteOp {
    WriteOp::Node {
        execution: execution.clone(),
        node: NodeRecord {
            key,
            path: path.into(),
            entity: entity.into(),
            kind: kind.into(),
            status,
            attempts,
            output,
            cached,
            start_us: Some(key * 1_000),
            end_us: Some(key * 1_000 + 2_500),
            worker: None,
        },
    }
}

fn attempt(
    execution: &ExecutionId,
    node: u64,
    n: u32,
    outcome: AttemptOutcome,
    stdout: &str,
    stderr: &str,
) -> Vec<WriteOp> {
    vec![
        WriteOp::Attempt {
            execution: execution.clone(),
            attempt: AttemptRecord {
                node,
                attempt: n,
                start_us: 0,
                end_us: 1_500,
                outcome,
                message: (outcome != AttemptOutcome::Ok).then(|| "boom".into()),
                worker: None,
            },
        },
        WriteOp::Logs {
            execution: execution.clone(),
            node,
            attempt: n,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        },
    ]
}

/// A database with a module, five executions (one a child execution, one interrupted, one
/// old), nodes with attempts and logs, and three cache entries.
fn fixture(db: &Path) -> Ids {
    let store = SqliteStore::open(db).expect("open the test store");
    // Ids as long as the store makes them, chosen so that the prefixes the tests type are
    // known: `zz` is shared by all, `zzr` is the root's alone.
    let len = ExecutionId::generate().as_str().len();
    let id = |c: &str| ExecutionId::from_string(format!("zz{c}{}", "0".repeat(len - 3)));
    let ids = Ids {
        root: id("r"),
        child: id("c"),
        failed: id("f"),
        dead: id("d"),
        old: id("0"),
    };
    let now = now_ms();
    let list = Type::List(Box::new(Type::Int));
    let module = ModuleRecord {
        digest: DIGEST.into(),
        bytes: b"\0asm\x01\0\0\0".to_vec(),
        entities: vec![
            entity(
                "wf",
                "workflow",
                iface(&[("n", Type::Int)], Some(list.clone())),
            ),
            entity("lp", "launch plan", iface(&[("n", Type::Int)], Some(list))),
            entity("add", "task", iface(&[("x", Type::Int)], Some(Type::Int))),
            entity("sq", "task", iface(&[("x", Type::Int)], Some(Type::Int))),
            entity("other", "workflow", iface(&[("s", Type::Str)], None)),
        ],
    };
    let (r, c) = (&ids.root, &ids.child);
    use NodeStatus::Succeeded as Ok_;
    let mut ops = vec![
        WriteOp::PutModule(module),
        new_exec(r, None, "wf", ints(&[3]), now - 5_000),
        new_exec(c, Some(r), "lp", ints(&[3]), now - 4_000),
        node(
            r,
            1,
            "wf",
            ["wf", "workflow"],
            (Ok_, 0, false),
            Some(ints(&[5, 7])),
        ),
        node(
            r,
            2,
            "wf/add[0]",
            ["add", "task"],
            (Ok_, 2, false),
            Some(Value::Int(5)),
        ),
        node(
            r,
            3,
            "wf/add[1]",
            ["add", "task"],
            (Ok_, 0, true),
            Some(Value::Int(5)),
        ),
        node(
            r,
            4,
            "wf/sq[2]",
            ["sq", "map"],
            (Ok_, 0, false),
            Some(ints(&[0, 1, 4])),
        ),
        node(
            r,
            5,
            "wf/lp[3]",
            ["lp", "launch plan"],
            (Ok_, 0, false),
            Some(ints(&[7])),
        ),
        node(
            c,
            9,
            "wf/lp[3]/add[0]",
            ["add", "task"],
            (Ok_, 1, false),
            Some(Value::Int(7)),
        ),
    ];
    for (i, key) in [(0u64, 10u64), (1, 11), (2, 12)] {
        let path = format!("wf/sq[2][{i}]");
        let out = Some(Value::Int((i * i) as i64));
        ops.push(node(r, key, &path, ["sq", "task"], (Ok_, 1, false), out));
    }
    ops.extend(attempt(r, 2, 1, AttemptOutcome::User, "try 1\n", ""));
    ops.extend(attempt(r, 2, 2, AttemptOutcome::Ok, "x=5\n", "warn\n"));
    ops.extend(attempt(r, 10, 1, AttemptOutcome::Ok, "", ""));
    ops.extend(attempt(c, 9, 1, AttemptOutcome::Ok, "child says hi\n", ""));
    ops.push(end(c, ExecStatus::Succeeded, now - 3_000, Some(ints(&[7]))));
    ops.push(end(
        r,
        ExecStatus::Succeeded,
        now - 2_500,
        Some(ints(&[5, 7])),
    ));

    let f = &ids.failed;
    ops.push(new_exec(
        f,
        None,
        "other",
        Value::List(vec![Value::Str("hi".into())]),
        now - 2_000,
    ));
    ops.push(node(
        f,
        1,
        "other/t[0]",
        ["add", "task"],
        (NodeStatus::Failed, 1, false),
        None,
    ));
    ops.extend(attempt(f, 1, 1, AttemptOutcome::User, "", "panicked\n"));
    ops.push(end(f, ExecStatus::Failed, now - 1_500, None));

    // Recorded as running by a process that has exited since.
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = gone.id();
    gone.wait().expect("wait for true");
    ops.push(WriteOp::StartExecution(NewExecution {
        id: ids.dead.clone(),
        parent: None,
        root: ids.dead.clone(),
        entity: "wf".into(),
        module: DIGEST.into(),
        inputs: ints(&[1]),
        started_ms: now - 1_000,
        owner: Owner {
            pid,
            ..Owner::current()
        },
        recovered_from: None,
    }));

    let o = &ids.old;
    ops.push(new_exec(o, None, "wf", ints(&[0]), OLD_MS));
    ops.push(node(
        o,
        1,
        "wf",
        ["wf", "workflow"],
        (Ok_, 0, false),
        Some(ints(&[])),
    ));
    ops.push(end(
        o,
        ExecStatus::Succeeded,
        OLD_MS + 123_000,
        Some(ints(&[])),
    ));

    for (k, task) in [(1u8, "add"), (2, "add"), (3, "sq")] {
        ops.push(WriteOp::CachePut(CacheRecord {
            key: vec![k; 32],
            task: task.into(),
            cache_version: "1".into(),
            output: Value::Int(k as i64),
            created_ms: now - 1_000,
            execution: r.clone(),
            node: 2,
        }));
    }
    store.write_batch(ops);
    store.finish().expect("commit the fixture");
    ids
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("x.db");
    (dir, db)
}

/// The ids in the first column of `executions`' table, in order.
fn listed(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn executions_lists_newest_first_and_filters() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let (r, c, f, d, o) = (
        ids.root.as_str(),
        ids.child.as_str(),
        ids.failed.as_str(),
        ids.dead.as_str(),
        ids.old.as_str(),
    );
    let text = ok(&db, &["executions"]);
    assert!(text.starts_with("ID "), "{text}");
    assert_eq!(listed(&text), [d, f, r, o], "{text}");
    let old = text.lines().find(|l| l.starts_with(o)).expect("old row");
    assert!(
        old.contains("succeeded") && old.contains("2023-11-14 22:13:20"),
        "{old}"
    );
    assert!(old.contains("2m03s"), "{old}");
    let root = text.lines().find(|l| l.starts_with(r)).expect("root row");
    // 5 tasks succeeded (one of them cached), none running or failed.
    assert!(root.contains(" 5/0/0/1"), "{root}");
    let dead = text.lines().find(|l| l.starts_with(d)).expect("dead row");
    assert!(dead.contains("interrupted"), "{dead}");

    let all = ok(&db, &["executions", "--all"]);
    assert_eq!(listed(&all), [d, f, c, r, o], "{all}");
    let child = all.lines().find(|l| l.starts_with(c)).expect("child row");
    assert!(
        child.trim_end().ends_with(r),
        "the parent id ends the row: {child}"
    );

    assert_eq!(listed(&ok(&db, &["executions", "--status", "failed"])), [f]);
    assert_eq!(
        listed(&ok(&db, &["executions", "--status", "interrupted"])),
        [d]
    );
    assert_eq!(
        listed(&ok(&db, &["executions", "--entity", "wf"])),
        [d, r, o]
    );
    assert_eq!(
        listed(&ok(&db, &["executions", "--entity", "wf", "--limit", "2"])),
        [d, r]
    );

    let json: Json = serde_json::from_str(&ok(&db, &["executions", "--json", "--all"]))
        .expect("executions --json is JSON");
    let rows = json.as_array().expect("an array");
    assert_eq!(rows.len(), 5);
    let child = rows.iter().find(|x| x["id"] == c).expect("child in JSON");
    assert_eq!(child["parent"], r);
    assert_eq!(child["status"], "succeeded");
    assert_eq!(child["duration_ms"], 1_000);
    let root = rows.iter().find(|x| x["id"] == r).expect("root in JSON");
    assert_eq!(root["tasks"]["succeeded"], 5);
    assert_eq!(root["tasks"]["cached"], 1);

    let bad = sf(&db, &["executions", "--status", "sleeping"]);
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("expected one of running, succeeded"),
        "{}",
        bad.stderr
    );
}

#[test]
fn the_store_is_found_by_sandflow_db_when_no_db_is_given() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let out = sandflow_command()
        .args(["executions"])
        .env("SANDFLOW_DB", &db)
        .output()
        .expect("sandflow runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(ids.root.as_str()), "{text}");
}

#[test]
fn show_prints_an_execution_with_its_tree_and_child_executions() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let (r, c) = (ids.root.as_str(), ids.child.as_str());
    let text = ok(&db, &["show", r]);
    for want in [
        format!("execution  {r}"),
        "entity     wf".into(),
        "status     succeeded".into(),
        "duration   2.5s".into(),
        "tasks      5 (5 succeeded, 0 running, 0 failed, 1 cached)".into(),
        r#"inputs     {"n":3}"#.into(),
        "output     [5,7]".into(),
        "child executions (1)".into(),
        format!("#1   {c}  lp"),
        "at wf/lp[3]".into(),
        "tree".into(),
    ] {
        assert!(text.contains(&want), "expected {want:?} in\n{text}");
    }
    let tree: Vec<&str> = text.lines().skip_while(|l| *l != "tree").skip(1).collect();
    let line = |name: &str| {
        *tree
            .iter()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} in the tree:\n{}", tree.join("\n")))
    };
    assert!(
        tree[0].starts_with("wf ") && tree[0].contains("workflow"),
        "{}",
        tree[0]
    );
    assert!(line("add[0]").contains("attempts=2"), "{text}");
    assert!(line("! attempt 1 (1.5ms): boom").starts_with("│"), "{text}");
    let cached = line("add[1]");
    assert!(
        cached.contains("SUCCEEDED") && cached.ends_with("  cached"),
        "{text}"
    );
    assert!(line("sq[2]").contains("map"), "{text}");
    assert!(
        line("─ [2]").contains("task"),
        "map elements are named by index: {text}"
    );
    assert!(line("lp[3]").contains("child execution #1"), "{text}");
    // The child execution's node hangs under the launch plan node, one level deeper.
    // In graph order, by ordinal.
    let at = |name: &str| tree.iter().position(|l| l.contains(name)).unwrap();
    assert!(
        at("add[1]") < at("sq[2]") && at("sq[2]") < at("lp[3]"),
        "{text}"
    );
    let lp = at("lp[3]");
    assert!(tree[lp + 1].contains("└─ add[0]"), "{}", tree.join("\n"));
    assert!(tree[lp + 1].starts_with("   "), "{}", tree.join("\n"));

    let elided = ok(&db, &["show", r, "--map-elements", "1"]);
    assert!(elided.contains("… 2 more elements"), "{elided}");

    // One level below the top: each cut says how many nodes it hides.
    let cut = ok(&db, &["show", r, "--depth", "1"]);
    let cut = cut.split_once("\ntree\n").expect("a tree").1;
    assert_eq!(
        cut.lines().count(),
        1 + 4 + 1 + 2,
        "the top, its nodes, a failed attempt, two cuts: {cut}"
    );
    assert!(cut.contains("│  └─ … 3 nodes below (--depth)"), "{cut}");
    assert!(cut.contains("   └─ … 1 node below (--depth)"), "{cut}");
    let top = ok(&db, &["show", r, "--depth", "0"]);
    let top = top.split_once("\ntree\n").expect("a tree").1;
    assert_eq!(top.lines().count(), 2, "{top}");
    assert!(top.contains("└─ … 8 nodes below (--depth)"), "{top}");
}

#[test]
fn show_json_has_the_execution_its_children_and_typed_nodes() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let (r, c) = (ids.root.as_str(), ids.child.as_str());
    let json: Json =
        serde_json::from_str(&ok(&db, &["show", r, "--json"])).expect("show --json is JSON");
    assert_eq!(json["id"], r);
    assert_eq!(json["status"], "succeeded");
    assert_eq!(json["inputs"], serde_json::json!({"n": 3}));
    assert_eq!(json["output"], serde_json::json!([5, 7]));
    assert_eq!(json["children"][0]["id"], c);
    assert_eq!(json["children"][0]["entity"], "lp");
    let nodes = json["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 9);
    let at = |p: &str| {
        nodes
            .iter()
            .find(|n| n["path"] == p)
            .unwrap_or_else(|| panic!("no node {p} in {json}"))
    };
    assert_eq!(at("wf/add[0]")["attempts"], 2);
    assert_eq!(at("wf/add[0]")["output"], 5);
    assert_eq!(at("wf/add[1]")["cached"], true);
    assert_eq!(at("wf/sq[2]")["kind"], "map");
    assert_eq!(at("wf/sq[2]")["output"], serde_json::json!([0, 1, 4]));
    assert_eq!(at("wf/sq[2]")["start_us"], 4_000);
    assert_eq!(at("wf/sq[2]")["end_us"], 6_500);
    assert_eq!(at("wf/lp[3]/add[0]")["execution"], c);
    assert_eq!(at("wf/lp[3]/add[0]")["status"], "succeeded");
}

#[test]
fn a_child_execution_is_shown_alone_with_its_own_nodes() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let (r, c) = (ids.root.as_str(), ids.child.as_str());
    let text = ok(&db, &["show", c]);
    assert!(
        text.contains(&format!("parent     {r} (root {r})")),
        "{text}"
    );
    assert!(text.contains("entity     lp"), "{text}");
    assert!(text.contains("output     [7]"), "{text}");
    assert!(!text.contains("child executions"), "{text}");
    assert!(text.contains("add[0]"), "{text}");
    assert!(
        !text.contains("sq[2]"),
        "only the child's own nodes: {text}"
    );
    let json: Json =
        serde_json::from_str(&ok(&db, &["show", c, "--json"])).expect("show --json is JSON");
    assert_eq!(json["parent"], r);
    let paths: Vec<&str> = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["path"].as_str())
        .collect();
    assert_eq!(paths, ["wf/lp[3]/add[0]"]);
}

#[test]
fn ids_are_taken_by_unique_prefix_and_unknown_or_ambiguous_ones_exit_2() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let r = ids.root.as_str();
    assert!(ok(&db, &["show", "zzr"]).contains(&format!("execution  {r}")));
    let shared = "zz";
    let out = sf(&db, &["show", shared]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("execution id prefix \"{shared}\" matches"))
            && out.stderr.contains("type more of the id"),
        "{}",
        out.stderr
    );
    for unknown in ["0000", "NOT-AN-ID"] {
        for cmd in ["show", "logs"] {
            let out = sf(&db, &[cmd, unknown]);
            assert_eq!(out.code, Some(2), "{cmd} {unknown}: {}", out.stderr);
            assert!(
                out.stderr
                    .contains(&format!("no execution {unknown} in the execution store"))
                    && out.stderr.contains("x.db"),
                "{cmd} {unknown}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn logs_prints_every_attempt_of_a_node_or_of_all() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let r = ids.root.as_str();
    let one = ok(&db, &["logs", r, "wf/add[0]"]);
    assert_eq!(
        one,
        "[wf/add[0] attempt 1 stdout] try 1\n\
         [wf/add[0] attempt 2 stdout] x=5\n\
         [wf/add[0] attempt 2 stderr] warn\n"
    );
    let all = ok(&db, &["logs", r]);
    assert_eq!(
        all,
        format!("{one}[wf/lp[3]/add[0] attempt 1 stdout] child says hi\n"),
        "the child execution's attempts are part of the tree"
    );
    let child = ok(&db, &["logs", ids.child.as_str()]);
    assert_eq!(child, "[wf/lp[3]/add[0] attempt 1 stdout] child says hi\n");

    let quiet = sf(&db, &["logs", r, "wf/sq[2][0]"]);
    assert_eq!(quiet.code, Some(0));
    assert!(quiet.stdout.is_empty() && quiet.stderr.contains("wrote anything"));

    let out = sf(&db, &["logs", r, "wf/nope"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains(&format!("execution {r} has no node \"wf/nope\"")),
        "{}",
        out.stderr
    );
}

#[test]
fn prune_removes_old_executions_and_keeps_new_ones() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let text = ok(&db, &["executions", "prune", "--older-than", "7d"]);
    assert!(
        text.starts_with("removed 1 executions (1 nodes, 0 attempts, 0 logs)"),
        "{text}"
    );
    let left = listed(&ok(&db, &["executions", "--all"]));
    assert!(!left.contains(&ids.old.to_string()), "{left:?}");
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(ok(&db, &["show", ids.root.as_str()]).contains("output     [5,7]"));

    for bad in ["7", "7w", "d", "-1d"] {
        let arg = format!("--older-than={bad}");
        let out = sf(&db, &["executions", "prune", &arg]);
        assert_eq!(out.code, Some(2), "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("is not a duration"),
            "{bad}: {}",
            out.stderr
        );
    }
}

#[test]
fn cache_lists_and_clears_by_task() {
    let (_dir, db) = temp_db();
    let ids = fixture(&db);
    let text = ok(&db, &["cache", "list"]);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows[0].starts_with("add ") && rows[2].starts_with("sq "),
        "{text}"
    );
    assert!(rows[0].contains(ids.root.as_str()) && rows[0].contains("0101010101010101"));
    let sq = ok(&db, &["cache", "list", "--task", "sq"]);
    assert_eq!(sq.lines().count(), 2, "{sq}");
    let json: Json = serde_json::from_str(&ok(&db, &["cache", "list", "--json"])).unwrap();
    assert_eq!(json[2]["task"], "sq");
    assert_eq!(json[2]["key"], "03".repeat(32));
    assert_eq!(json[2]["execution"], ids.root.as_str());

    assert!(ok(&db, &["cache", "clear", "--task", "add"])
        .starts_with("removed 2 cache entries of task add"));
    let left = ok(&db, &["cache", "list"]);
    assert_eq!(left.lines().count(), 2, "{left}");
    assert!(ok(&db, &["cache", "clear"]).starts_with("removed 1 cache entries"));
    assert!(ok(&db, &["cache", "list"]).starts_with("no cache entries"));
}

/// The id `sandflow run` printed: `(execution <id>)` on its first line.
fn run_id(stderr: &str) -> String {
    let at = stderr
        .find("(execution ")
        .unwrap_or_else(|| panic!("no execution id in {stderr}"));
    stderr[at + "(execution ".len()..]
        .split(')')
        .next()
        .expect("an id")
        .to_string()
}

#[test]
fn a_recorded_run_is_listed_shown_with_its_child_executions_and_its_logs_printed() {
    let (_dir, db) = temp_db();
    let m = module("nested_dynamics");
    let run = |chunk: &str| {
        let out = sandflow_command()
            .args(["run", "--db"])
            .arg(&db)
            .arg(&m)
            .args(["multi_wf", "--l", "[1,2,3,4,5,6]", "--chunk", chunk])
            .output()
            .expect("sandflow runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("2");
    assert_eq!(code, Some(0), "{err}");
    let ok_id = run_id(&err);
    let (code, err) = run("0");
    assert_eq!(code, Some(1), "{err}");
    let failed_id = run_id(&err);

    let list = ok(&db, &["executions"]);
    assert_eq!(
        listed(&list),
        [failed_id.as_str(), ok_id.as_str()],
        "{list}"
    );
    assert!(
        list.contains("failed") && list.contains("multi_wf"),
        "{list}"
    );
    let all = listed(&ok(&db, &["executions", "--all"]));
    assert_eq!(all.len(), 2 + 6, "six child executions: {all:?}");

    let text = ok(&db, &["show", &ok_id]);
    assert!(text.contains("status     succeeded"), "{text}");
    assert!(
        text.contains(r#"inputs     {"l":[1,2,3,4,5,6],"chunk":2}"#),
        "{text}"
    );
    assert!(text.contains("output     [4,5,6,7,8,9]"), "{text}");
    assert!(text.contains("child executions (6)"), "{text}");
    let tree = text.split_once("\ntree\n").expect("a tree").1;
    assert_eq!(tree.matches("core_wf_lp[").count(), 6, "{text}");
    // Child executions are numbered in tree order, in the list and in the tree.
    assert!(
        text.contains("succeeded") && text.contains("at multi_wf/level1/level2[2]/core_wf_lp[1]"),
        "{text}"
    );
    let first = text.lines().find(|l| l.contains("#1 ")).expect("#1 listed");
    assert!(
        first.ends_with("at multi_wf/level1/level2[0]/core_wf_lp[0]"),
        "{text}"
    );
    let lp0 = tree
        .lines()
        .find(|l| l.contains("core_wf_lp[0]"))
        .expect("a tree line");
    assert!(lp0.ends_with("child execution #1"), "{text}");
    assert!(text.contains("child execution #6"), "{text}");
    // A child execution, shown alone: its own two tasks.
    let child = all
        .iter()
        .find(|id| **id != ok_id && **id != failed_id)
        .expect("a child execution");
    let alone = ok(&db, &["show", child]);
    assert!(alone.contains(&format!("parent     {ok_id}")), "{alone}");
    assert!(
        alone.contains("step1") && alone.contains("step2"),
        "{alone}"
    );
    assert_eq!(alone.matches("core_wf_lp[").count(), 1, "{alone}");
    assert!(!alone.contains("reduce"), "{alone}");

    let show = ok(&db, &["show", &failed_id]);
    assert!(show.contains("error      multi_wf/level1"), "{show}");
    let logs = ok(&db, &["logs", &failed_id, "multi_wf/level1"]);
    assert!(
        logs.starts_with(
            "[multi_wf/level1 attempt 1 stderr] panicked: chunk must be positive, got 0"
        ),
        "{logs}"
    );
    assert_eq!(ok(&db, &["logs", &failed_id]), logs);
}

#[test]
fn reading_a_store_that_does_not_exist_is_an_error_and_creates_nothing() {
    let (dir, _) = temp_db();
    let missing = dir.path().join("typo.db");
    for args in [
        &["executions"][..],
        &["show", "zzr"],
        &["logs", "zzr"],
        &["cache", "list"],
        &["cache", "clear"],
        &["executions", "prune", "--older-than", "1d"],
    ] {
        let out = sf(&missing, args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "no execution store at {}: nothing was recorded there",
                missing.display()
            )),
            "{args:?}: {}",
            out.stderr
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
