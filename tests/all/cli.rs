//! The `sandflow` binary: outputs on stdout, errors on stderr, exit codes 0 / 1 / 2.

use crate::guests::{module, repo, sandflow_command};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};

fn sandflow(args: &[&str]) -> Output {
    sandflow_command()
        .args(args)
        .current_dir(repo())
        .output()
        .expect("sandflow runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_prints_the_bare_output_as_json() {
    let m = module("nested_dynamics");
    let out = sandflow(&[
        "run",
        m.to_str().unwrap(),
        "multi_wf",
        "--l",
        "[1,2,3,4,5,6]",
        "--chunk",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "[4,5,6,7,8,9]\n");
}

#[test]
fn run_builds_a_guest_crate_directory() {
    module("nested_dynamics");
    let out = sandflow(&[
        "run",
        "examples/nested-dynamics",
        "multi_wf",
        "--l",
        "[1,2,3,4,5,6]",
        "--chunk",
        "2",
        "--tree",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "[4,5,6,7,8,9]\n");
    let err = text(&out.stderr);
    assert_eq!(err.matches("core_wf_lp[").count(), 6, "{err}");
    assert!(err.contains("child execution #6"), "{err}");
}

#[test]
fn inputs_file_works_like_flags() {
    let m = module("mixed_parallelism");
    let file = std::env::temp_dir().join(format!("sandflow-inputs-{}.json", std::process::id()));
    std::fs::write(&file, r#"{"l": [1, 2, 3], "chunk": 2}"#).unwrap();
    let out = sandflow(&[
        "run",
        m.to_str().unwrap(),
        "multi_wf",
        "--inputs",
        file.to_str().unwrap(),
    ]);
    assert_eq!(text(&out.stdout), "[3,4,5]\n", "{}", text(&out.stderr));
}

#[test]
fn a_failed_execution_exits_1_naming_the_node_and_the_panic() {
    let m = module("nested_dynamics");
    let out = sandflow(&[
        "run",
        m.to_str().unwrap(),
        "multi_wf",
        "--l",
        "[1,2]",
        "--chunk",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("multi_wf/level1") && err.contains("chunk must be positive, got 0"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_and_input_errors_exit_2() {
    let m = module("nested_dynamics");
    let m = m.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["run", m, "multi_wf", "--l", "[1,\"x\"]", "--chunk", "2"],
            "input `l` at [1]: expected i64",
        ),
        (
            vec!["run", m, "multi_wf", "--l", "[1]"],
            "missing input `chunk`",
        ),
        (vec!["run", m, "nope", "--a", "1"], "unknown entity `nope`"),
        (
            vec!["run", m, "multi_wf", "--l", "[1", "--chunk", "2"],
            "--l [1: not valid JSON",
        ),
        (
            vec!["run", "Cargo.toml", "multi_wf"],
            "not a WebAssembly module",
        ),
        (
            vec!["run", "no/such/file.wasm", "multi_wf"],
            "no such file or directory",
        ),
        (
            vec![
                "run",
                m,
                "multi_wf",
                "--l",
                "[1]",
                "--chunk",
                "1",
                "--max-parallelism",
                "0",
            ],
            "at least 1",
        ),
        (vec!["run"], "Usage"),
    ] {
        let out = sandflow(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
    }
}

#[test]
fn describe_lists_entities_with_interfaces() {
    let m = module("nested_dynamics");
    let out = sandflow(&["describe", m.to_str().unwrap()]);
    let s = text(&out.stdout);
    assert!(
        s.contains("multi_wf") && s.contains("(l: list<i64>, chunk: i64) -> list<i64>"),
        "{s}"
    );
    assert!(
        s.contains("launch plan") && s.contains("runs core_wf"),
        "{s}"
    );
}

#[test]
fn ctrl_c_cancels_the_run_prints_the_tree_and_exits_130() {
    let m = module("fixtures");
    let mut child = sandflow_command()
        .args([
            "run",
            m.to_str().unwrap(),
            "spin",
            "--a",
            "1",
            "--task-timeout-ms",
            "60000",
            "--tree",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sandflow starts");
    // Wait until the run has started, then interrupt it as a terminal would.
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut err = String::new();
    loop {
        let before = err.len();
        let n = stderr.read_line(&mut err).expect("stderr reads");
        assert!(n > 0, "sandflow ended before the run started: {err}");
        if err[before..].starts_with("sandflow: running spin") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    stderr.read_to_string(&mut err).expect("stderr reads");
    let status = child.wait().expect("sandflow exits");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    assert!(err.contains("spin") && err.contains("ABORTED"), "{err}");
    // The store says so too, and names the command that finishes it.
    let id = err
        .split("(execution ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the run names its execution");
    assert!(
        err.contains(&format!("`sandflow recover {id}` finishes it")),
        "{err}"
    );
    let out = sandflow(&["show", id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(shown["status"], "cancelled", "{shown}");
}

#[test]
fn per_run_limits_come_from_the_command_line() {
    let m = module("fixtures");
    let out = sandflow(&[
        "run",
        m.to_str().unwrap(),
        "spin",
        "--a",
        "1",
        "--task-timeout-ms",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("timed out after 20 ms"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let m = module("nested_dynamics");
    let dir = std::env::temp_dir().join(format!("sandflow-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cached = || -> Vec<PathBuf> {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect()
    };
    // A miss writes the entry anew (a new file renamed into place); a hit reads it and
    // leaves the file as it is.
    let mut first = None;
    for _ in 0..2 {
        let out = sandflow_command()
            .args(["run", m.to_str().unwrap(), "core_wf", "--a", "1"])
            .env("SANDFLOW_CACHE_DIR", &dir)
            .output()
            .unwrap();
        assert_eq!(text(&out.stdout), "4\n", "{}", text(&out.stderr));
        let entries = cached();
        assert_eq!(
            entries.len(),
            1,
            "one compiled module, keyed by module and engine"
        );
        let inode = std::fs::metadata(&entries[0]).unwrap().ino();
        assert_eq!(
            *first.get_or_insert(inode),
            inode,
            "the second run read the entry the first wrote instead of compiling again"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn describe_shows_launch_plan_defaults_and_fixed_inputs_as_json() {
    let m = module("album_lyrics");
    let out = sandflow(&["describe", m.to_str().unwrap()]);
    let s = text(&out.stdout);
    assert!(
        s.contains("defaults(min_len=3)") && s.contains("fixed(lowercase=true)"),
        "{s}"
    );
    assert!(
        s.contains("album_lp") && s.contains("(album: Album, min_len: i64 = 3) -> AlbumSummary"),
        "{s}"
    );
}

#[test]
fn logs_prints_each_task_executions_output_by_node_path() {
    let m = module("fixtures");
    let out = sandflow(&[
        "run",
        m.to_str().unwrap(),
        "greet",
        "--name",
        "Ada",
        "--logs",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        text(&out.stdout),
        "\"hello, Ada\"\n",
        "a bare word is a string input"
    );
    assert!(err.contains("[greet stdout] hello, Ada"), "{err}");
    assert!(err.contains("[greet stderr] greeted Ada"), "{err}");
}

#[test]
fn limits_that_cannot_work_are_usage_errors_naming_the_flag() {
    let m = module("nested_dynamics");
    let m = m.to_str().unwrap();
    let base = ["run", m, "multi_wf", "--l", "[1]", "--chunk", "1"];
    let cases: [(&[&str], &str); 3] = [
        (
            &["--task-memory-mb", "0"],
            "--task-memory-mb 0: a task needs at least 1 MiB of memory",
        ),
        (
            &["--task-memory-mb", "300"],
            "--task-memory-mb 300: at most 256",
        ),
        (
            &["--task-timeout-ms", "0"],
            "--task-timeout-ms 0: a task needs at least 1 ms",
        ),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = sandflow(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expected),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn too_many_workers_is_an_error_naming_workers() {
    let m = module("nested_dynamics");
    let out = sandflow(&[
        "run",
        m.to_str().unwrap(),
        "multi_wf",
        "--l",
        "[1]",
        "--chunk",
        "1",
        "--workers",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: --workers 1000: could not start the sandbox workers"),
        "{err}"
    );
    assert!(err.contains("try fewer"), "{err}");
}

#[test]
fn an_argument_error_quotes_the_input_not_all_of_it() {
    let m = module("nested_dynamics");
    // 120 KB of nested JSON lists, one bracket short of valid.
    let deep = format!("{}{}", "[".repeat(60_000), "]".repeat(59_999));
    let out = sandflow(&[
        "run",
        m.to_str().unwrap(),
        "multi_wf",
        "--l",
        &deep,
        "--chunk",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.len() < 1_000, "{} bytes of error", err.len());
    assert!(err.contains("--l [[[["), "{err}");
    assert!(err.contains("(119999 bytes in all)"), "{err}");
}

#[test]
fn integer_overflow_fails_the_task_naming_it_and_the_node() {
    module("nested_dynamics");
    let out = sandflow(&[
        "run",
        "examples/nested-dynamics",
        "multi_wf",
        "--l",
        "[9223372036854775807]",
        "--chunk",
        "1",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "no wrapped answer: {}",
        text(&out.stdout)
    );
    assert!(err.contains("attempt to add with overflow"), "{err}");
    assert!(
        err.contains("multi_wf/level1/level2/core_wf_lp/step1 (attempt 1 of 1)"),
        "{err}"
    );
}

#[test]
fn non_finite_floats_print_as_strings_and_are_read_back() {
    let m = module("fixtures");
    let m = m.to_str().unwrap();
    for (a, b, expect) in [
        ("0", "0", "\"NaN\"\n"),
        ("1", "0", "\"Infinity\"\n"),
        ("\"-Infinity\"", "2", "\"-Infinity\"\n"),
        ("1", "\"Infinity\"", "0.0\n"),
    ] {
        let out = sandflow(&["run", m, "divide", "--a", a, "--b", b]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expect, "{a} / {b}");
    }
    let out = sandflow(&["run", m, "divide", "--a", "\"nan\"", "--b", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("input `a`: expected f64, found the string \"nan\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_input_flag_given_twice_is_a_usage_error() {
    let m = module("fixtures");
    let out = sandflow(&[
        "run",
        m.to_str().unwrap(),
        "increment",
        "--a",
        "1",
        "--a",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--a is given twice"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn describe_shows_the_fields_of_records() {
    let m = module("album_lyrics");
    let out = sandflow(&["describe", m.to_str().unwrap()]);
    let s = text(&out.stdout);
    assert!(
        s.contains("record       Song { title: string, lyrics: string }"),
        "{s}"
    );
    assert!(
        s.contains("SongStats { title: string, words: i64, counts: map<string, i64> }"),
        "{s}"
    );
}

#[test]
fn a_launch_plan_may_name_its_workflow_by_path() {
    let m = module("fixtures");
    let out = sandflow(&["run", m.to_str().unwrap(), "inc_lp", "--a", "1"]);
    assert_eq!(text(&out.stdout), "2\n", "{}", text(&out.stderr));
}

#[test]
fn a_map_fixed_typo_fails_naming_the_typo_and_the_inputs() {
    let m = module("fixtures");
    let out = sandflow(&["run", m.to_str().unwrap(), "map_fixed_typo", "--l", "[1]"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "map(add).fixed(\"bb\", ..): add has no input `bb`; its inputs are: a, b (at "
        ),
        "{}",
        text(&out.stderr)
    );
}
