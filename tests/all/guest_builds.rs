//! `sandflow run <crate dir>` on crates a user writes: what the build says when it fails, the
//! target it installs, and the stamp that spares cargo on an unchanged crate.

use crate::guests::{guest_target_dir, module, repo, sandflow_command};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A guest crate of its own in a temporary directory, depending on this repository's SDK,
/// with the examples' release profile and lock file (so it reuses their built dependencies
/// and needs no network).
fn temp_crate(name: &str, lib: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let examples = std::fs::read_to_string(repo().join("examples/Cargo.toml")).unwrap();
    let profile = &examples[examples
        .find("[profile.release]")
        .expect("examples have a release profile")..];
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
             [dependencies]\nsandflow = {{ path = {:?} }}\n\n[workspace]\n\n{profile}",
            repo().join("guest-sdk")
        ),
    )
    .unwrap();
    std::fs::copy(repo().join("examples/Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
    dir
}

/// Runs `sandflow` with the guests' target directory and extra environment.
fn sandflow(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
    sandflow_command()
        .args(args)
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", guest_target_dir())
        .env("CARGO_NET_OFFLINE", "true")
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .expect("sandflow runs")
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn age(dir: &Path, files: &[&str]) {
    let past = SystemTime::now() - Duration::from_secs(30);
    for f in files {
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join(f))
            .unwrap();
        file.set_modified(past).unwrap();
    }
}

#[test]
fn an_unchanged_crate_runs_without_cargo_and_a_touched_one_rebuilds() {
    module("fixtures"); // the SDK's dependencies, built once for the guests' target dir
    let dir = temp_crate(
        "fresh_check",
        "use sandflow::task;\n#[task]\npub fn answer() -> i64 { 41 }\n",
    );
    let d = dir.to_str().unwrap();
    let no_cargo = dir.join("no-cargo.sh");
    script(&no_cargo, "echo 'cargo must not run' >&2; exit 101");
    let first = sandflow(&["run", d, "answer"], &[]);
    assert_eq!(text(&first.stdout), "41\n", "{}", text(&first.stderr));
    // Files edited just before a build are never trusted by the stamp; age them, and let
    // cargo (which finds the build fresh) write the stamp.
    age(&dir, &["Cargo.toml", "Cargo.lock", "src/lib.rs"]);
    let second = sandflow(&["run", d, "answer"], &[]);
    assert_eq!(text(&second.stdout), "41\n", "{}", text(&second.stderr));
    let third = sandflow(&["run", d, "answer"], &[("CARGO", no_cargo.as_os_str())]);
    assert_eq!(text(&third.stdout), "41\n", "{}", text(&third.stderr));
    assert!(
        !text(&third.stderr).contains("building"),
        "{}",
        text(&third.stderr)
    );

    std::fs::write(
        dir.join("src/lib.rs"),
        "use sandflow::task;\n#[task]\npub fn answer() -> i64 { 42 }\n",
    )
    .unwrap();
    let stale = sandflow(&["run", d, "answer"], &[("CARGO", no_cargo.as_os_str())]);
    assert_eq!(
        stale.status.code(),
        Some(2),
        "a touched crate must not run its old module"
    );
    assert!(
        text(&stale.stderr).contains("cargo must not run"),
        "{}",
        text(&stale.stderr)
    );
    let rebuilt = sandflow(&["run", d, "answer"], &[]);
    assert_eq!(text(&rebuilt.stdout), "42\n", "{}", text(&rebuilt.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_entities_of_one_short_name_in_two_modules_build_and_the_short_name_lists_both() {
    module("fixtures");
    let dir = temp_crate(
        "dup_names",
        "pub mod a {\n    #[sandflow::task]\n    pub fn t1(x: i64) -> i64 { x }\n}\n\
         pub mod b {\n    #[sandflow::task]\n    pub fn t1(x: i64) -> i64 { x + 1 }\n}\n",
    );
    let d = dir.to_str().unwrap();
    let out = sandflow(&["run", d, "t1", "--x", "1"], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`t1` names more than one entity: a::t1, b::t1; give the full name"),
        "{err}"
    );
    let out = sandflow(&["run", d, "b::t1", "--x", "1"], &[]);
    assert_eq!(text(&out.stdout), "2\n", "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_ordinary_build_error_gets_no_target_hint() {
    let dir = temp_crate("rust_error", "pub fn f() -> i64 { \"no\" }\n");
    let out = sandflow(&["run", dir.to_str().unwrap(), "f"], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mismatched types"),
        "cargo's error is shown: {err}"
    );
    assert!(
        err.contains("for wasm32-wasip1 failed (see cargo's output above)"),
        "{err}"
    );
    assert!(!err.contains("rustup target add"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_wasm_target_is_added_with_rustup() {
    let dir = temp_crate("no_target", "");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sysroot = dir.join("sysroot");
    std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu")).unwrap();
    let rustc = dir.join("rustc.sh");
    script(&rustc, &format!("echo {}", sysroot.display()));
    let log = dir.join("rustup.log");
    script(
        &bin.join("rustup"),
        &format!("echo \"$@\" >> {}", log.display()),
    );
    let cargo = dir.join("cargo.sh");
    script(&cargo, "exit 0");
    let env = [
        ("RUSTC", rustc.as_os_str()),
        ("CARGO", cargo.as_os_str()),
        ("PATH", bin.as_os_str()),
    ];
    let out = sandflow(&["run", dir.to_str().unwrap(), "f"], &env);
    let err = text(&out.stderr);
    assert!(
        err.contains("has no wasm32-wasip1 target; running `rustup target add wasm32-wasip1`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "target add wasm32-wasip1\n"
    );

    // Without rustup: say what to run.
    std::fs::remove_file(bin.join("rustup")).unwrap();
    let out = sandflow(&["run", dir.to_str().unwrap(), "f"], &env);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rustup was not found to add it; install the target (with rustup: `rustup target add wasm32-wasip1`)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_module_that_fails_to_load_shows_its_error_once() {
    module("fixtures");
    let dir = temp_crate(
        "bad_graph",
        "#[sandflow::workflow]\npub fn wf(a: i64) -> i64 {\n    \
         let _ = a;\n    sandflow::__private::add_node::<i64>(\"no_such_entity\", vec![], None)\n}\n",
    );
    let out = sandflow(&["describe", dir.to_str().unwrap()], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert_eq!(line.matches("unknown entity").count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_map_fixed_typo_in_a_workflow_fails_describe_at_the_users_line() {
    module("fixtures");
    let dir = temp_crate(
        "map_typo",
        "use sandflow::{map, task, workflow};\n#[task]\npub fn scale(a: i64, factor: i64) -> i64 { a * factor }\n\
         #[workflow]\npub fn scaled(l: Vec<i64>) -> Vec<i64> {\n    map(scale::entity()).fixed(\"factr\", 2).over(l)\n}\n",
    );
    let out = sandflow(&["describe", dir.to_str().unwrap()], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "describing entity `map_typo::scaled` failed: panicked: map(scale).fixed(\"factr\", ..): scale has no input `factr`; its inputs are: a, factor (at src/lib.rs:6)"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
