//! Building the guest crates once per test process, and running their entities.

use sandflow_host::json::inputs_from_json;
use sandflow_host::runner::{Host, Report};
use sandflow_host::sandbox::Sandbox;
use sandflow_host::scheduler::{Failure, Options};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::PathBuf;
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
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "--manifest-path",
            ])
            .arg(repo().join("examples/Cargo.toml"))
            .env("CARGO_TARGET_DIR", guest_target_dir())
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building the guest crates for wasm32-wasip1 failed"
        );
    });
    guest_target_dir()
        .join("wasm32-wasip1/release")
        .join(format!("{name}.wasm"))
}

pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new(2).expect("host starts"))
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
    let decl = sandbox
        .decl
        .get(entity)
        .unwrap_or_else(|| panic!("{guest} has no {entity}"));
    let given: Vec<(String, Json)> = inputs
        .as_object()
        .expect("inputs are an object")
        .clone()
        .into_iter()
        .collect();
    let values =
        inputs_from_json(&sandbox.decl, decl, &given).unwrap_or_else(|e| panic!("inputs: {e}"));
    host()
        .run_blocking(&sandbox, entity, values, opts)
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
        .get(entity)
        .and_then(|e| e.interface.output.clone());
    report.result.map(|v| match (v, ty) {
        (Some(v), Some(t)) => sandflow_host::json::to_json(&v, &t),
        _ => Json::Null,
    })
}
