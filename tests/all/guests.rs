//! Building the guest crates once per test process, and running their entities.

use sandflow_host::cache::CacheLocation;
use sandflow_host::guest_build::{self, BuildOptions};
use sandflow_host::json::inputs_from_json;
use sandflow_host::module::ModuleError;
use sandflow_host::runner::{Host, Report};
use sandflow_host::sandbox::Sandbox;
use sandflow_host::scheduler::{Failure, Options};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the repository")
        .to_path_buf()
}

/// The guests' own target directory, so their wasm build never fights the host build's lock.
pub fn guest_target_dir() -> PathBuf {
    std::env::var_os("SANDFLOW_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("examples/target"))
}

/// Path of the built module of guest crate `name` (e.g. "nested_dynamics").
pub fn module(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let opts = BuildOptions {
            target_dir: Some(guest_target_dir()),
            ..BuildOptions::default()
        };
        if let Err(e) = guest_build::build(&repo().join("examples"), &opts) {
            panic!("building the guest crates for wasm32-wasip1 failed: {e}");
        }
    });
    guest_target_dir()
        .join("wasm32-wasip1/release")
        .join(format!("{name}.wasm"))
}

/// The compiled-module cache of the tests, in cargo's scratch directory for them: never the
/// user's real cache.
pub fn module_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sandflow-module-cache")
}

pub fn module_cache() -> CacheLocation {
    CacheLocation::Dir(module_cache_dir())
}

/// The `sandflow` binary, run with the tests' module cache.
pub fn sandflow_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandflow"));
    cmd.env("SANDFLOW_CACHE_DIR", module_cache_dir());
    // Runs record their executions: in the tests' own store, never the user's.
    cmd.env("SANDFLOW_DB", test_store());
    cmd
}

/// The execution store of the CLI runs that give no `--db`: one file for the whole suite
/// (runs share it as users' runs do), under the test target's temporary directory.
pub fn test_store() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sandflow-tests.db")
}

pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        Host::new(2)
            .expect("host starts")
            .with_module_cache(module_cache())
    })
}

/// Loads a module written in WAT, as if read from `origin`.
pub fn load_wat(origin: &str, wat: &str) -> Result<Arc<Sandbox>, ModuleError> {
    let bytes = wat::parse_str(wat).expect("test module parses");
    host().load_bytes(&bytes, Path::new(origin))
}

/// Why a module written in WAT does not load.
pub fn load_err(origin: &str, wat: &str) -> ModuleError {
    match load_wat(origin, wat) {
        Ok(_) => panic!("the module should not load"),
        Err(e) => e,
    }
}

pub fn load(name: &str) -> Arc<Sandbox> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<Sandbox>>>> = OnceLock::new();
    let map = LOADED.get_or_init(Default::default);
    if let Some(s) = map.lock().unwrap().get(name) {
        return s.clone();
    }
    let s = host()
        .load(&module(name))
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    map.lock().unwrap().insert(name.to_string(), s.clone());
    s
}

/// Runs `entity` of guest `guest` on JSON `inputs` (an object) with `opts`.
pub fn run_with(guest: &str, entity: &str, inputs: Json, opts: Options) -> Report {
    let sandbox = load(guest);
    // The short name, as on the command line, while it is unique.
    let decl = sandbox
        .decl
        .find(entity)
        .unwrap_or_else(|e| panic!("{guest}: {e}"));
    let given: Vec<(String, Json)> = inputs
        .as_object()
        .expect("inputs are an object")
        .clone()
        .into_iter()
        .collect();
    let values =
        inputs_from_json(&sandbox.decl, decl, &given).unwrap_or_else(|e| panic!("inputs: {e}"));
    host()
        .run_blocking(&sandbox, &decl.name, values, opts)
        .expect("the run starts")
}

/// Runs and returns the output as JSON, or the failure.
pub fn run(guest: &str, entity: &str, inputs: Json) -> Result<Json, Failure> {
    output(
        guest,
        entity,
        run_with(guest, entity, inputs, Options::default()),
    )
}

pub fn output(guest: &str, entity: &str, report: Report) -> Result<Json, Failure> {
    let ty = load(guest)
        .decl
        .find(entity)
        .ok()
        .and_then(|e| e.interface.output.clone());
    report.result.map(|v| match (v, ty) {
        (Some(v), Some(t)) => sandflow_host::json::to_json(&v, &t),
        _ => Json::Null,
    })
}

unsafe extern "C" {
    /// kill(2), from the C library every test binary links.
    #[link_name = "kill"]
    fn kill_process(pid: i32, signal: i32) -> i32;
}
const SIGCONT: i32 = 18;
const SIGSTOP: i32 = 19;

/// Freezes process `pid` (SIGSTOP) every few milliseconds to ask `ready` whether it has
/// recorded enough, and leaves it frozen when it has: a kill that follows lands at that point
/// and nowhere later, however fast the run or slow the machine (a run polled while it ran
/// could end between the look and the kill). `ready` answers `None` while the run should go
/// on, `Some(true)` to stop it there, `Some(false)` when it already ended (the caller's test
/// then proves nothing and says so). Panics after `limit`.
pub fn freeze_when(pid: u32, limit: std::time::Duration, mut ready: impl FnMut() -> Option<bool>) {
    let t0 = std::time::Instant::now();
    loop {
        // SAFETY: kill(2) with a pid this test started and a valid signal number.
        assert_eq!(
            unsafe { kill_process(pid as i32, SIGSTOP) },
            0,
            "SIGSTOP {pid}"
        );
        // The signal is sent, not yet taken: wait for the process to show stopped.
        while !matches!(state(pid), Some('T' | 'Z') | None) {
            assert!(t0.elapsed() < limit, "{pid} never stopped");
            std::thread::yield_now();
        }
        match ready() {
            Some(true) => return,
            Some(false) => panic!("the run ended before it was killed: the test proves nothing"),
            None => {}
        }
        // SAFETY: as above.
        assert_eq!(
            unsafe { kill_process(pid as i32, SIGCONT) },
            0,
            "SIGCONT {pid}"
        );
        assert!(t0.elapsed() < limit, "nothing recorded in {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The state letter of process `pid` in /proc/<pid>/stat (`T` stopped, `Z` ended), if any.
fn state(pid: u32) -> Option<char> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    st.rsplit_once(')')?.1.trim_start().chars().next()
}

/// SIGKILLs the `sandflow run` process `child` while its execution `id` is still running in
/// the SQLite store `db` (frozen first, so the kill cannot come after its end).
pub fn kill_while_running(child: &mut std::process::Child, db: &Path, id: &str) {
    let conn = rusqlite::Connection::open(db).expect("the store opens");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("timeout");
    freeze_when(child.id(), std::time::Duration::from_secs(60), || {
        let status: Option<String> = conn
            .query_row("SELECT status FROM executions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .ok();
        status.map(|s| s == "running")
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

/// Stops process `pid` (SIGSTOP) until [`resume`]: a run held still while a test looks.
pub fn pause(pid: u32) {
    // SAFETY: kill(2) with a pid the test started and a valid signal number.
    assert_eq!(
        unsafe { kill_process(pid as i32, SIGSTOP) },
        0,
        "SIGSTOP {pid}"
    );
}

/// Lets a [`pause`]d process go on (SIGCONT).
pub fn resume(pid: u32) {
    // SAFETY: as in `pause`.
    assert_eq!(
        unsafe { kill_process(pid as i32, SIGCONT) },
        0,
        "SIGCONT {pid}"
    );
}
