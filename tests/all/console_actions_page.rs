//! The console's actions from its page, in a real headless Chromium: cancel a running run
//! (its process exits as on Ctrl-C), recover a killed one, relaunch with an input edited in
//! the generated form, launch an entity from the launch page, and a bad input that the form
//! refuses (in the page, or with the server's message) while nothing starts. The relaunch
//! form and the launch page are README's screenshots (written to docs/ with
//! `SANDFLOW_SCREENSHOTS=docs`).

use crate::browser::{Browser, PATIENCE};
use crate::console_page::{console, docs, run};
use crate::guests::{kill_while_running, module, sandflow_command};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::Instant;

/// Starts `sandflow run <guest> <entity> <args>` recorded in `db` in the background; the
/// process and its execution id, once it has named it.
fn start(db: &Path, guest: &str, entity: &str, args: &[&str]) -> (Child, String) {
    let mut child = sandflow_command()
        .arg("run")
        .arg(module(guest))
        .arg(entity)
        .args(args)
        .arg("--db")
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sandflow run starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("(execution ") {
        line.clear();
    }
    let id = line
        .split("(execution ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("the run never named its execution: {line:?}"))
        .to_string();
    // Keep reading, so the run never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    (child, id)
}

/// Waits ("not hanging") for `child` to exit.
fn exit_of(child: &mut Child) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waits for the run") {
            return status;
        }
        assert!(t0.elapsed() < PATIENCE, "the run did not stop");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How many executions the store holds (child executions included).
fn executions_in(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("the store opens");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("a busy timeout");
    conn.query_row("SELECT count(*) FROM executions", [], |r| r.get(0))
        .expect("counting executions")
}

/// Waits until the page shows another execution than `old` with status `status`; its id.
fn opened_other(b: &Browser, old: &str, status: &str) -> String {
    let id = b.wait_until(
        &format!("the page of a new execution, {status}"),
        "const m = location.hash.match(/^#\\/x\\/(.+)$/); \
         const s = document.querySelector('#exec-status'); \
         return m && m[1] !== arguments[0] && s && s.textContent === arguments[1] \
           && document.querySelector('h1 .id').textContent === m[1] && m[1];",
        &[json!(old), json!(status)],
    );
    id.as_str().expect("an execution id").to_string()
}

fn output_of(b: &Browser) -> Json {
    serde_json::from_str(&b.text_of("#exec-output")).expect("the output is JSON")
}

/// Sets the value of the form field for input `name` (a text area, text or number field),
/// with the `input` event typing would fire.
fn set_field(b: &Browser, form: &str, name: &str, value: &str) {
    let css = format!("#{form} [data-input=\"{name}\"]");
    b.wait_for(&css);
    b.eval(
        "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
         e.dispatchEvent(new Event('input', { bubbles: true }));",
        &[json!(css), json!(value)],
    );
}

fn field_value(b: &Browser, form: &str, name: &str) -> String {
    let css = format!("#{form} [data-input=\"{name}\"]");
    b.wait_for(&css);
    let v = b.eval(
        "return document.querySelector(arguments[0]).value;",
        &[json!(css)],
    );
    v.as_str().unwrap_or_default().to_string()
}

/// The form's error once it shows one.
fn form_error(b: &Browser) -> String {
    let v = b.wait_until(
        "the form's error",
        "const e = document.querySelector('#form-error'); \
         return e && !e.hidden && e.textContent;",
        &[],
    );
    v.as_str().unwrap_or_default().to_string()
}

#[test]
fn cancel_on_the_page_stops_the_run_as_ctrl_c_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cancel.db");
    // 40 naps of 2 s, two at a time: 40 s, far longer than the test needs to click.
    let l = json!(vec![2000; 40]).to_string();
    let (mut runner, id) = start(&db, "fixtures", "naps", &["--l", &l]);
    let c = console(&db);
    let b = Browser::start();
    b.goto(&format!("{}/#/x/{id}", c.url));
    b.wait_until(
        "the running execution",
        "const s = document.querySelector('#exec-status'); return s && s.textContent === 'running';",
        &[],
    );
    // A running execution can be cancelled, not recovered or relaunched.
    assert!(b.find("#recover").is_none() && b.find("#relaunch").is_none());
    b.click_on("#cancel");
    b.wait_for("#cancelling");
    assert_eq!(exit_of(&mut runner).code(), Some(130), "exits as on Ctrl-C");
    b.wait_until(
        "the execution shown cancelled",
        "return document.querySelector('#exec-status').textContent === 'cancelled';",
        &[],
    );
    // Now it can be recovered or relaunched, and not cancelled again.
    b.wait_for("#recover");
    b.wait_for("#relaunch");
    assert!(b.find("#cancel").is_none());
}

#[test]
fn a_killed_run_recovers_from_the_page_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("recover.db");
    let n = 2_000;
    let l = json!((0..n).collect::<Vec<i64>>()).to_string();
    let (mut runner, id) = start(
        &db,
        "nested_dynamics",
        "multi_wf",
        &["--l", &l, "--chunk", "100"],
    );
    kill_while_running(&mut runner, &db, &id);
    let c = console(&db);
    let b = Browser::start();
    b.goto(&format!("{}/#/x/{id}", c.url));
    b.wait_until(
        "the killed run shown interrupted",
        "const s = document.querySelector('#exec-status'); return s && s.textContent === 'interrupted';",
        &[],
    );
    b.click_on("#recover");
    let new = opened_other(&b, &id, "succeeded");
    assert_eq!(
        output_of(&b),
        json!((0..n).map(|a| a + 3).collect::<Vec<i64>>())
    );
    // The new execution's page links the one it recovers.
    let head = b.text_of("#exec-head");
    assert!(head.contains(&format!("recovers {id}")), "{new}: {head}");
}

#[test]
fn relaunch_with_an_input_edited_in_the_form_shows_the_new_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relaunch.db");
    let id = run(
        &db,
        "nested_dynamics",
        "multi_wf",
        &["--l", "[1,2,3,4,5,6]", "--chunk", "2"],
    );
    let c = console(&db);
    let b = Browser::start();
    b.goto(&format!("{}/#/x/{id}", c.url));
    b.click_on("#relaunch");
    // The form is the interface, prefilled with the execution's inputs: a list in a JSON
    // text area, an i64 in a number field.
    let l: Json = serde_json::from_str(&field_value(&b, "relaunch-form", "l")).expect("JSON");
    assert_eq!(l, json!([1, 2, 3, 4, 5, 6]));
    assert_eq!(field_value(&b, "relaunch-form", "chunk"), "2");
    let kinds = b.eval(
        "return [...document.querySelectorAll('#relaunch-form [data-input]')]\
         .map(e => e.dataset.input + ' ' + e.tagName.toLowerCase() + ' ' + (e.type || ''))",
        &[],
    );
    assert_eq!(kinds, json!(["l textarea textarea", "chunk input number"]));

    // On a child execution's page (a launch plan call), the form is its run's top
    // execution's, which a relaunch acts on.
    let child = b.text_of("#exec-io ul.children a");
    b.goto(&format!("{}/#/x/{child}", c.url));
    b.wait_until(
        "the child execution's page",
        "const h = document.querySelector('h1 .id'); return h && h.textContent === arguments[0];",
        &[json!(child)],
    );
    b.click_on("#relaunch");
    let title = b.text_of("#relaunch-form h3");
    assert_eq!(title, format!("Relaunch multi_wf ({id})"));
    assert!(b
        .text_of("#actions")
        .contains(&format!("top execution {id}")));
    b.goto(&format!("{}/#/x/{id}", c.url));
    b.click_on("#relaunch");
    set_field(&b, "relaunch-form", "l", "[10, 20, 30]");
    b.eval("window.scrollTo(0, 0)", &[]);
    b.screenshot(&docs().join("console-relaunch.png"));
    b.click_on("#form-submit");
    opened_other(&b, &id, "succeeded");
    assert_eq!(output_of(&b), json!([13, 23, 33]));
    let inputs: Json = serde_json::from_str(&b.text_of("#exec-inputs")).expect("JSON inputs");
    assert_eq!(inputs, json!({ "l": [10, 20, 30], "chunk": 2 }));
}

#[test]
fn an_enum_input_is_a_select_of_its_variants() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("enum.db");
    let id = run(
        &db,
        "fixtures",
        "two_coffees_on",
        &["--coffee_enum", "\"Espresso\""],
    );
    let c = console(&db);
    let b = Browser::start();
    b.goto(&format!("{}/#/x/{id}", c.url));
    assert_eq!(output_of(&b), json!("Latte"), "two steps on the menu");
    b.click_on("#relaunch");
    let select = "#relaunch-form select[data-input=\"coffee_enum\"]";
    b.wait_for(select);
    let options = b.eval(
        "const s = document.querySelector(arguments[0]); \
         return [s.value, [...s.options].map(o => o.value)];",
        &[json!(select)],
    );
    assert_eq!(
        options,
        json!(["Espresso", ["Espresso", "Americano", "Latte", "Cappuccino"]])
    );
    b.eval(
        "document.querySelector(arguments[0]).value = 'Americano'",
        &[json!(select)],
    );
    b.click_on("#form-submit");
    opened_other(&b, &id, "succeeded");
    assert_eq!(output_of(&b), json!("Cappuccino"));

    // On the launch page too.
    b.goto(&format!("{}/#/launch", c.url));
    b.click_on("#modules a[data-entity=\"next_coffee\"]");
    b.wait_for("#launch-form select[data-input=\"coffee_enum\"]");
}

#[test]
fn a_bad_input_in_the_form_shows_the_error_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let id = run(
        &db,
        "nested_dynamics",
        "multi_wf",
        &["--l", "[1,2,3]", "--chunk", "2"],
    );
    let before = executions_in(&db);
    let c = console(&db);
    let b = Browser::start();
    b.goto(&format!("{}/#/x/{id}", c.url));
    b.click_on("#relaunch");
    let form = "relaunch-form";
    let page = format!("#/x/{id}");

    // Caught in the page: not JSON, not a list, not a whole number, nothing at all.
    set_field(&b, form, "l", "[1, 2,");
    b.click_on("#form-submit");
    let e = form_error(&b);
    assert!(e.contains("input `l` (list<i64>): not valid JSON"), "{e}");
    set_field(&b, form, "l", "{\"a\": 1}");
    set_field(&b, form, "chunk", "");
    b.click_on("#form-submit");
    b.wait_until(
        "both inputs' errors",
        "const e = document.querySelector('#form-error').textContent; \
         return e.includes('expected a JSON array, found an object') && e.includes('chunk') && e;",
        &[],
    );
    let e = form_error(&b);
    assert!(
        e.contains("input `chunk` (i64): a value is required"),
        "{e}"
    );

    // Caught by the server (the CLI's check of the list's elements): its message is shown.
    set_field(&b, form, "l", "[1, \"ten\"]");
    set_field(&b, form, "chunk", "2");
    b.eval("document.querySelector('#form-error').hidden = true", &[]);
    b.click_on("#form-submit");
    let e = b.wait_until(
        "the server's refusal",
        "const e = document.querySelector('#form-error'); \
         return e && !e.hidden && e.textContent.startsWith('refused') && e.textContent;",
        &[],
    );
    let e = e.as_str().unwrap_or_default();
    assert!(e.contains("input `l` at [1]: expected i64"), "{e}");

    // Still on the same page, and the store holds no new execution.
    assert_eq!(b.eval("return location.hash", &[]), json!(page));
    assert_eq!(executions_in(&db), before);
}

#[test]
fn the_launch_page_launches_an_entity_of_a_stored_module() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("launch.db");
    // A run stores the module; the launch plan has a default (min_len = 3) and a fixed input
    // (lowercase = true).
    let album = json!({ "name": "A", "songs": [{ "title": "s0", "lyrics": "Hello hello Hi" }] });
    let first = run(
        &db,
        "album_lyrics",
        "album_lp",
        &["--album", &album.to_string()],
    );
    let c = console(&db);
    let b = Browser::start();
    b.goto(&format!("{}/", c.url));
    b.click_on("#nav-launch");
    b.click_on("#modules a[data-entity=\"album_lp\"]");
    b.wait_for("#launch-form");
    // The default prefilled, the fixed input shown but not editable, the record empty.
    assert_eq!(field_value(&b, "launch-form", "min_len"), "3");
    assert_eq!(field_value(&b, "launch-form", "album"), "");
    assert!(b.find("#launch-form [data-input=\"lowercase\"]").is_none());
    let fixed = b.text_of("#launch-form [data-fixed=\"lowercase\"]");
    assert!(
        fixed.contains("lowercase") && fixed.contains("true"),
        "{fixed}"
    );

    // The record is required: the page says so and sends nothing.
    b.click_on("#form-submit");
    let e = form_error(&b);
    assert!(
        e.contains("input `album` (Album): a value is required"),
        "{e}"
    );
    assert_eq!(executions_in(&db), 1);

    let pretty = serde_json::to_string_pretty(&album).expect("JSON");
    set_field(&b, "launch-form", "album", &pretty);
    set_field(&b, "launch-form", "min_len", "1");
    b.eval("document.querySelector('#form-error').hidden = true", &[]);
    b.screenshot(&docs().join("console-launch.png"));
    b.click_on("#form-submit");
    opened_other(&b, &first, "succeeded");
    let out = output_of(&b);
    // min_len 1 counts "hi"; lowercase (fixed) folds "Hello" into "hello".
    assert_eq!(
        out["songs"][0]["counts"],
        json!({ "hello": 2, "hi": 1 }),
        "{out}"
    );

    // The workflow itself takes `lowercase`: a bool, so a checkbox.
    b.click_on("#nav-launch");
    b.click_on("#modules a[data-entity=\"album_wf\"]");
    let t = b.wait_until(
        "album_wf's form",
        "const e = document.querySelector('#launch-form [data-input=\"lowercase\"]'); \
         return e && e.type;",
        &[],
    );
    assert_eq!(t, json!("checkbox"));
}
