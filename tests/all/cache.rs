//! The on-disk module cache through the `sandflow` binary: a damaged or swapped entry is
//! noticed, said on stderr, and healed, and the run's result is still right.

use crate::guests::module;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A cache directory of the test's own; never the user's real cache.
struct CacheDir(PathBuf);

impl CacheDir {
    fn new(name: &str) -> CacheDir {
        let dir =
            std::env::temp_dir().join(format!("sandflow-cache-e2e-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        CacheDir(dir)
    }

    /// The compiled entries, by name.
    fn entries(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect();
        v.sort();
        v
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cache: &Path, guest: &str, args: &[&str]) -> Output {
    let m = module(guest);
    Command::new(env!("CARGO_BIN_EXE_sandflow"))
        .arg("run")
        .arg(&m)
        .args(args)
        .env("SANDFLOW_CACHE_DIR", cache)
        .env("SANDFLOW_DB", crate::guests::test_store())
        .output()
        .expect("sandflow runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_corrupted_cache_entry_is_reported_recompiled_and_healed() {
    let cache = CacheDir::new("corrupt");
    let args = ["core_wf", "--a", "1"];
    let first = run(&cache.0, "nested_dynamics", &args);
    assert_eq!(text(&first.stdout), "4\n", "{}", text(&first.stderr));
    let entries = cache.entries();
    assert_eq!(entries.len(), 1);
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 200] {
        *b = !*b;
    }
    std::fs::write(&entries[0], &bytes).unwrap();

    let second = run(&cache.0, "nested_dynamics", &args);
    let err = text(&second.stderr);
    assert_eq!(text(&second.stdout), "4\n", "{err}");
    assert_eq!(second.status.code(), Some(0), "{err}");
    let name = entries[0].display().to_string();
    assert!(
        err.lines()
            .any(|l| l.contains("warning") && l.contains(&name) && l.contains("MAC")),
        "{err}"
    );

    let third = run(&cache.0, "nested_dynamics", &args);
    assert_eq!(text(&third.stdout), "4\n");
    assert!(
        !text(&third.stderr).contains("warning"),
        "healed: {}",
        text(&third.stderr)
    );
}

#[test]
fn another_modules_entry_copied_under_this_key_does_not_run() {
    let cache = CacheDir::new("swap");
    let a = run(&cache.0, "nested_dynamics", &["core_wf", "--a", "1"]);
    assert_eq!(text(&a.stdout), "4\n", "{}", text(&a.stderr));
    let nested = cache.entries();
    let b = run(&cache.0, "fixtures", &["greet", "--name", "Ada"]);
    assert_eq!(b.status.code(), Some(0), "{}", text(&b.stderr));
    let fixtures: Vec<PathBuf> = cache
        .entries()
        .into_iter()
        .filter(|p| !nested.contains(p))
        .collect();
    assert_eq!((nested.len(), fixtures.len()), (1, 1));
    // The other module's valid entry, under nested_dynamics' key.
    std::fs::copy(&fixtures[0], &nested[0]).unwrap();

    let again = run(&cache.0, "nested_dynamics", &["core_wf", "--a", "1"]);
    let err = text(&again.stderr);
    assert_eq!(text(&again.stdout), "4\n", "the right module runs: {err}");
    assert!(err.contains("another module's entry"), "{err}");
}
