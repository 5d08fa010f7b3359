//! The console's page in a real headless Chromium: a recorded run of the seed browsed down
//! to a leaf, a running execution watched live, a hostile task's strings shown as text, and
//! the screenshots of README's console section (written to docs/ with
//! `SANDFLOW_SCREENSHOTS=docs`).

use crate::browser::Browser;
use crate::guests::{module, repo, sandflow_command};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// A running `sandflow ui`, killed when dropped.
pub(crate) struct Console {
    child: Child,
    pub url: String,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn console(db: &Path) -> Console {
    let mut child = sandflow_command()
        .args(["ui", "--addr", "127.0.0.1:0", "--db"])
        .arg(db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sandflow ui starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("sandflow ui prints its URL");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    Console { child, url }
}

/// Runs `entity` of guest `guest` with `args`, recorded in `db`; returns its execution id.
pub(crate) fn run(db: &Path, guest: &str, entity: &str, args: &[&str]) -> String {
    let out = sandflow_command()
        .arg("run")
        .arg(module(guest))
        .arg(entity)
        .args(args)
        .arg("--db")
        .arg(db)
        .current_dir(repo())
        .output()
        .expect("sandflow run");
    let err = String::from_utf8_lossy(&out.stderr);
    err.split("(execution ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("the run names no execution: {err}"))
        .to_string()
}

/// Clicks the toggle of the tree node at `path` once it is shown.
fn open(b: &Browser, path: &str) {
    b.click_on(&format!(
        "li.node[data-path=\"{path}\"] > .row > button.toggle"
    ));
}

/// Where the screenshots go: README's `docs/` when `SANDFLOW_SCREENSHOTS=docs` (to refresh
/// them), else the target dir, so that a test run leaves the work tree as it was.
pub(crate) fn docs() -> PathBuf {
    if std::env::var_os("SANDFLOW_SCREENSHOTS").is_some_and(|v| v == "docs") {
        return repo().join("docs");
    }
    let dir = repo().join("target/tmp/screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/tmp/screenshots");
    dir
}

#[test]
fn the_page_browses_the_seeds_run_down_to_a_step2_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("page.db");
    let id = run(
        &db,
        "nested_dynamics",
        "multi_wf",
        &["--l", "[1,2,3,4,5,6]", "--chunk", "2"],
    );
    let c = console(&db);
    let b = Browser::start();

    b.goto(&format!("{}/", c.url));
    let text = b.text_of(&format!("tr.exec[data-id=\"{id}\"]"));
    assert!(
        text.contains("succeeded") && text.contains("multi_wf"),
        "{text}"
    );
    // With child executions: the six launch plan calls, each linking to its parent.
    b.goto(&format!("{}/#/?children=1", c.url));
    let parents = b.wait_until(
        "the child executions listed",
        "const r = [...document.querySelectorAll('tr.exec')]; \
         return r.length === 7 && r.map(x => x.querySelector('td:last-child').textContent);",
        &[],
    );
    let linked = parents
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.as_str() == Some(id.as_str()))
        .count();
    assert_eq!(linked, 6, "{parents}");
    b.screenshot(&docs().join("console-executions.png"));
    b.goto(&format!("{}/#/", c.url));

    b.click_on(&format!("tr.exec[data-id=\"{id}\"] a"));
    b.wait_for("#exec-status");
    // Down the tree, one level at a time, as a person would click.
    for path in [
        "multi_wf",
        "multi_wf/level1",
        "multi_wf/level1/level2[0]",
        "multi_wf/level1/level2[0]/core_wf_lp[0]",
    ] {
        open(&b, path);
    }
    let leaf = "multi_wf/level1/level2[0]/core_wf_lp[0]/step2";
    let css = format!("li.node[data-path=\"{leaf}\"] > .row .entity");
    assert_eq!(b.text_of(&css), "step2");
    b.click_on(&css);
    let output = b.text_of("#node-output");
    // step2 adds 2 to its input (step1's output), both resolved from the store.
    let out: Json = serde_json::from_str(&output).expect("the output is JSON");
    let inputs = b.text_of("#node-inputs");
    let inp: Json = serde_json::from_str(&inputs).expect("the inputs are JSON");
    assert_eq!(out, json!(inp["a"].as_i64().unwrap() + 2), "{inp} -> {out}");
    // Its logs: the seed's tasks print nothing, so the store kept no attempt; the panel
    // says so rather than showing nothing.
    assert!(b.text_of("#node-no-attempts").contains("no attempt kept"));
    // The graph of the root workflow and the timeline drew.
    b.wait_for("svg.graph-svg g.gnode");
    b.wait_for("svg.timeline-svg rect.bar");
    // A row per worker that ran the tasks (the store keeps each node's worker, so no task
    // falls back to an anonymous lane).
    b.wait_until(
        "timeline rows per worker",
        "const t = document.querySelector('svg.timeline-svg'); \
         return t && /worker \\d/.test(t.textContent) && !/lane /.test(t.textContent);",
        &[],
    );
    b.eval("window.scrollTo(0, 0)", &[]);
    b.screenshot(&docs().join("console-execution.png"));
    // The graph of a dynamic, as recorded: level1's calls of level2 and reduce, with edges.
    b.eval(
        "const s = document.getElementById('graph-owner'); s.value = arguments[0]; \
         s.dispatchEvent(new Event('change'));",
        &[json!("multi_wf/level1")],
    );
    b.wait_until(
        "level1's graph with its data edges",
        "const g = document.querySelector('svg.graph-svg[data-owner=\"multi_wf/level1\"]'); \
         return g && g.querySelectorAll('path.edge').length > 0 && g.querySelectorAll('g.gnode').length;", &[]);
    b.eval("document.getElementById('graph').scrollIntoView()", &[]);
    b.screenshot(&docs().join("console-graph-timeline.png"));
}

#[test]
fn the_page_shows_a_running_executions_counts_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    // The browser first: starting it is the slow part on a loaded machine, and the run must
    // still be going when the page opens.
    let b = Browser::start();
    // 30 naps of 250 ms, two at a time: about 4 s of a run to watch.
    let l = json!(vec![250; 30]).to_string();
    let mut child = sandflow_command()
        .arg("run")
        .arg(module("fixtures"))
        .args(["naps", "--l", &l, "--db"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sandflow run starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while lines.read_line(&mut line).expect("reads") > 0 && !line.contains("(execution ") {
        line.clear();
    }
    let id = line
        .split("(execution ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the run names its execution")
        .to_string();
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    // Held still until the page shows it running: on a loaded machine the console and the
    // page can take longer to come up than the run takes to end.
    crate::guests::pause(child.id());

    let c = console(&db);
    b.goto(&format!("{}/#/x/{id}", c.url));
    let first = b.wait_until(
        "the running execution's counts",
        "const s = document.querySelector('#exec-status'); \
         return s && s.textContent === 'running' && document.getElementById('exec-counts').textContent;", &[]);
    crate::guests::resume(child.id());
    // Without a reload: the same page's counts move on, and it ends succeeded with all 30.
    b.eval("window.notReloaded = true", &[]);
    let later = b.wait_until(
        "the counts to change",
        &format!(
            "const t = document.getElementById('exec-counts').textContent; \
             return t !== {first} && t;"
        ),
        &[],
    );
    assert_ne!(first, later);
    b.wait_until(
        "the run to end succeeded",
        "return document.querySelector('#exec-status').textContent === 'succeeded' && \
         document.getElementById('exec-counts').textContent.startsWith('30 done');",
        &[],
    );
    assert_eq!(b.eval("return window.notReloaded", &[]), json!(true));
    let status = child.wait().expect("the run ends");
    assert!(status.success());
    // The map node shows its elements' counts per phase.
    open(&b, "naps");
    let phases = b.wait_until(
        "the map's phase counts",
        "const p = document.querySelector('li.node[data-path=\"naps/nap\"] .phases'); \
         return p && p.textContent;",
        &[],
    );
    assert_eq!(phases, json!("30 elements: 30 succeeded"));
}

#[test]
fn a_hostile_tasks_strings_run_nothing_in_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hostile.db");
    let payload = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>";
    // greet prints its input to stdout and stderr and returns it; parse fails with it.
    let greet = run(&db, "fixtures", "greet", &["--name", payload]);
    let parse = run(&db, "fixtures", "parse", &["--s", payload]);
    let c = console(&db);
    let b = Browser::start();

    b.goto(&format!("{}/#/x/{greet}", c.url));
    assert!(b.text_of("#exec-output").contains(payload));
    b.click_on("li.node[data-path=\"greet\"] > .row .entity");
    assert_eq!(
        b.text_of(".attempt pre.stdout").trim_end(),
        format!("hello, {payload}")
    );
    assert_eq!(
        b.text_of(".attempt pre.stderr").trim_end(),
        format!("greeted {payload}")
    );
    let out = b.text_of("#node-output");
    assert!(out.contains(payload), "{out}");
    let inputs = b.text_of("#node-inputs");
    assert!(inputs.contains(payload), "{inputs}");
    b.screenshot(&docs().join("console-node-panel.png"));

    b.goto(&format!("{}/#/x/{parse}", c.url));
    let err = b.text_of("#exec-error");
    assert!(err.contains("<img src=x onerror="), "{err}");
    b.click_on("li.node[data-path=\"parse\"] > .row .entity");
    let msg = b.text_of(".attempt pre.message");
    assert!(msg.contains("<script>"), "{msg}");

    // The executions page filters by status, and by entity through its form.
    b.goto(&format!("{}/#/?status=failed", c.url));
    b.text_of(&format!("tr.exec[data-id=\"{parse}\"]"));
    let ids = "return [...document.querySelectorAll('tr.exec')].map(r => r.dataset.id)";
    assert_eq!(b.eval(ids, &[]), json!([parse]));
    b.eval(
        "document.getElementById('filter-status').value = ''; \
         document.getElementById('filter-entity').value = 'greet'; \
         document.querySelector('form.filters button').click();",
        &[],
    );
    b.wait_until(
        "only greet's execution listed",
        &format!("{ids}.join() === '{greet}'"),
        &[],
    );

    // Nothing ran, and no element came from the payload.
    assert_eq!(
        b.eval("return typeof window.pwned", &[]),
        json!("undefined")
    );
    assert_eq!(
        b.eval(
            "return document.querySelectorAll('main script, main img').length",
            &[]
        ),
        json!(0)
    );
}

#[test]
fn a_maps_failed_elements_come_first_with_its_counts_per_phase() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("map.db");
    // non_negative fails on -4; the map needs only 2 successes.
    let id = run(&db, "fixtures", "min_success_map", &["--l", "[1,2,3,-4,5]"]);
    let c = console(&db);
    let b = Browser::start();
    b.goto(&format!("{}/#/x/{id}", c.url));
    open(&b, "min_success_map");
    let phases = b.wait_until(
        "the map's counts per phase",
        "const p = document.querySelector(arguments[0]); return p && p.textContent;",
        &[json!(
            "li.node[data-path=\"min_success_map/non_negative\"] .phases"
        )],
    );
    assert_eq!(phases, json!("5 elements: 1 failed, 4 succeeded"));
    open(&b, "min_success_map/non_negative");
    b.text_of("li.node[data-path=\"min_success_map/non_negative[0]\"]");
    let order = b.eval(
        "return [...document.querySelectorAll('li.node[data-path^=\"min_success_map/non_negative[\"]')]\
         .map(n => n.dataset.path + ' ' + n.dataset.status)",
        &[],
    );
    assert_eq!(
        order,
        json!([
            "min_success_map/non_negative[3] failed",
            "min_success_map/non_negative[0] succeeded",
            "min_success_map/non_negative[1] succeeded",
            "min_success_map/non_negative[2] succeeded",
            "min_success_map/non_negative[4] succeeded",
        ])
    );
    // The failed element's panel: its error, and its input resolved from the map's list.
    b.click_on("li.node[data-path=\"min_success_map/non_negative[3]\"] > .row .entity");
    let inputs: Json = serde_json::from_str(&b.text_of("#node-inputs")).expect("JSON inputs");
    assert_eq!(inputs, json!({ "a": -4 }));
    assert!(!b.text_of(".attempt pre.message").is_empty());
}
