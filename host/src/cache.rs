//! On-disk cache of compiled modules, keyed by the module's hash and the engine's
//! configuration, so a second `sandflow run` skips Cranelift entirely.
//!
//! The cache directory is `$SANDFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/sandflow`, else
//! `~/.cache/sandflow`; `SANDFLOW_CACHE_DIR=off` disables it. Files are written to a temporary
//! name and renamed, so a reader never sees half a file. A directory that is not this user's,
//! or that others may write to, is not used: loading a cached module runs its code.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::{Engine, Module};

fn dir() -> Option<PathBuf> {
    match std::env::var_os("SANDFLOW_CACHE_DIR") {
        Some(v) if v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("sandflow")),
    }
}

fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{:016x}.cwasm", h.finish())
}

/// Whether `dir` may be trusted with compiled code: loading a cached module runs its native
/// code, so the directory must belong to this user and be writable by nobody else.
fn trusted(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    let (Ok(meta), Ok(me)) = (std::fs::metadata(dir), std::fs::metadata("/proc/self")) else {
        return false;
    };
    meta.is_dir() && meta.uid() == me.uid() && meta.mode() & 0o022 == 0
}

/// Compiles `bytes` once, or loads the compiled form cached by an earlier run, into each of
/// `engines` (which must share one configuration: `engines[0]` compiles for all of them).
pub fn compile(engines: &[Engine], bytes: &[u8]) -> wasmtime::Result<Vec<Module>> {
    let Some(first) = engines.first() else {
        return Ok(Vec::new());
    };
    let cached = dir()
        .filter(|d| trusted(d))
        .map(|d| d.join(key(first, bytes)));
    if let Some(path) = cached.as_ref().filter(|p| p.exists()) {
        // SAFETY: the file was written by `precompile_module` of an engine with the same
        // compatibility hash (it is in the name, and every engine here shares it), into a
        // directory `trusted` checked is this user's and writable by nobody else.
        let loaded: Result<Vec<Module>, _> = engines
            .iter()
            .map(|e| unsafe { Module::deserialize_file(e, path) })
            .collect();
        if let Ok(modules) = loaded {
            return Ok(modules);
        }
    }
    let compiled = first.precompile_module(bytes)?;
    if let Some(path) = &cached {
        // A cache that cannot be written is not an error: the run goes on with the compiled
        // module.
        let tmp = path.with_file_name(format!(
            ".{}.{}",
            std::process::id(),
            path.file_name().and_then(|n| n.to_str()).unwrap_or("m")
        ));
        if std::fs::write(&tmp, &compiled).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
    engines
        .iter()
        .map(|e| {
            // SAFETY: `compiled` was produced just above by an engine of this configuration.
            unsafe { Module::deserialize(e, &compiled) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_compile_serves_every_engine() {
        let config = crate::sandbox::SandboxConfig {
            max_instances: 4,
            ..Default::default()
        };
        let engines = crate::sandbox::engines(&config, 3).unwrap();
        let wasm =
            wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#).unwrap();
        let modules = compile(&engines, &wasm).unwrap();
        assert_eq!(modules.len(), 3);
        for (engine, module) in engines.iter().zip(&modules) {
            assert!(Engine::same(engine, module.engine()));
            let mut store = wasmtime::Store::new(engine, ());
            store.set_epoch_deadline(u64::MAX / 2);
            store.set_fuel(1 << 20).unwrap();
            let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
            let f = instance.get_typed_func::<(), i32>(&mut store, "f").unwrap();
            assert_eq!(f.call(&mut store, ()).unwrap(), 7);
        }
        // The engines are distinct: each has a pool of its own.
        assert!(!Engine::same(&engines[0], &engines[1]));
    }
}
