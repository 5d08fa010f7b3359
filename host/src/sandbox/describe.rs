//! Loading a module: compile it into every engine (or take it from the on-disk cache), check
//! its imports and ABI, and describe its entities from one instance. What the entities mean
//! together (the module model) is built by the caller, from [`Described::entities`] (see [`crate::load`]).

use super::lane::Lane;
use super::trap::trap_failure;
use super::{CallLimits, Ctx, SandboxConfig};
use crate::cache;
use crate::module::ModuleError;
use sandflow_contract::{abi, codec, EntityDecl, EntityKind};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use wasmtime::{Engine, Instance, ModuleExport, Store};

const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Time the describe instance gets for the ABI version and all the declarations.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// A module compiled into every engine, checked, and described: its entities, and the lanes
/// that run it once [`super::Sandbox::new`] has bound them to the module model.
pub struct Described {
    /// The module's entities as its decl exports declare them, sorted by name.
    pub entities: Vec<EntityDecl>,
    /// One lane per engine, in the engines' order.
    pub lanes: Lanes,
}

/// A module's lanes, not yet bound to a module model, and the call export of each entity
/// that runs (by entity name).
pub struct Lanes(pub(super) Vec<Lane>, pub(super) HashMap<String, String>);

/// Loads `bytes` (a wasm module) from `origin` (for messages) into each of `engines`,
/// compiling it or taking the compiled form from the on-disk cache, checks its imports and
/// ABI, and reads its entities.
pub fn describe(
    engines: &[Engine],
    config: SandboxConfig,
    bytes: &[u8],
    origin: &Path,
) -> Result<Described, ModuleError> {
    let lanes = compile_lanes(engines, config, bytes, origin)?;
    let (entities, calls) = describe_entities(&lanes[0], origin)?;
    Ok(Described {
        entities,
        lanes: Lanes(lanes, calls),
    })
}

/// Compiles `bytes` for every engine and links each copy: one lane per engine.
fn compile_lanes(
    engines: &[Engine],
    config: SandboxConfig,
    bytes: &[u8],
    origin: &Path,
) -> Result<Vec<Lane>, ModuleError> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(ModuleError::NotWasm {
            path: origin.to_path_buf(),
        });
    }
    if engines.is_empty() {
        return Err(ModuleError::Invalid {
            path: origin.to_path_buf(),
            reason: "no engine to load it into".into(),
        });
    }
    let modules =
        cache::compile(engines, bytes, &config.module_cache).map_err(|e| ModuleError::Invalid {
            path: origin.to_path_buf(),
            reason: format!("{e:#}"),
        })?;
    for import in modules[0].imports() {
        if import.module() != WASI_MODULE {
            return Err(ModuleError::ForbiddenImport {
                path: origin.to_path_buf(),
                import: format!("{}::{}", import.module(), import.name()),
            });
        }
    }
    engines
        .iter()
        .zip(&modules)
        .map(|(engine, module)| Lane::new(engine, module, config.clone(), origin))
        .collect()
}

/// Reads the ABI version and every entity's declaration from one instance in `lane`, and
/// checks that every entity that runs has a call export; returns the entities and the call
/// export of each that runs, by entity name.
type Calls = HashMap<String, String>;

fn describe_entities(lane: &Lane, origin: &Path) -> Result<(Vec<EntityDecl>, Calls), ModuleError> {
    let (mut store, instance) = lane
        .instantiate(&CallLimits {
            timeout: Some(DESCRIBE_TIMEOUT),
            ..CallLimits::default()
        })
        .map_err(|f| invalid(origin, f.message))?;
    check_abi_version(lane, &mut store, &instance, origin)?;
    let mut entities = Vec::new();
    // The symbol each entity was declared under, by name: its call export has the same one.
    let mut symbols: HashMap<String, String> = HashMap::new();
    let mut declared = 0u64;
    for (symbol, export) in decl_exports(lane.module()) {
        match describe_entity(lane, &mut store, &instance, &export, &mut declared) {
            Ok(d) => {
                if let Some(first) = symbols.insert(d.name.clone(), symbol.clone()) {
                    return Err(invalid(
                        origin,
                        format!(
                            "two exports declare the entity `{}`: `{}{first}` and `{}{symbol}`",
                            d.name,
                            abi::DECL_PREFIX,
                            abi::DECL_PREFIX
                        ),
                    ));
                }
                entities.push(d)
            }
            Err(reason) => {
                return Err(ModuleError::Describe {
                    path: origin.to_path_buf(),
                    entity: symbol,
                    reason,
                })
            }
        }
    }
    entities.sort_by(|a, b| a.name.cmp(&b.name));
    let calls = check_call_exports(lane.module(), &entities, &symbols, origin)?;
    Ok((entities, calls))
}

fn invalid(origin: &Path, reason: String) -> ModuleError {
    ModuleError::Invalid {
        path: origin.to_path_buf(),
        reason,
    }
}

fn missing(origin: &Path, name: &str) -> ModuleError {
    ModuleError::MissingExport {
        path: origin.to_path_buf(),
        export: name.to_string(),
    }
}

/// Calls the module's ABI version export and refuses a version this host does not speak.
fn check_abi_version(
    lane: &Lane,
    store: &mut Store<Ctx>,
    instance: &Instance,
    origin: &Path,
) -> Result<(), ModuleError> {
    let v = instance
        .get_module_export(&mut *store, &lane.version)
        .and_then(|e| e.into_func())
        .ok_or_else(|| missing(origin, abi::ABI_VERSION_EXPORT))?
        .typed::<(), i32>(&*store)
        .map_err(|e| {
            invalid(
                origin,
                format!("{} has the wrong signature: {e}", abi::ABI_VERSION_EXPORT),
            )
        })?
        .call(&mut *store, ())
        .map_err(|e| {
            let failure = trap_failure(e, store.data(), None);
            invalid(
                origin,
                format!("{} failed: {}", abi::ABI_VERSION_EXPORT, failure.message),
            )
        })?;
    if v != abi::ABI_VERSION {
        return Err(ModuleError::AbiVersion {
            path: origin.to_path_buf(),
            found: v,
            expected: abi::ABI_VERSION,
        });
    }
    Ok(())
}

/// Each decl export of `module`, in the module's export order, with its symbol (the export
/// name less the prefix).
fn decl_exports(module: &wasmtime::Module) -> Vec<(String, ModuleExport)> {
    module
        .exports()
        .filter_map(|e| {
            let name = e.name().strip_prefix(abi::DECL_PREFIX)?;
            let export = module.get_export_index(e.name()).expect("listed export");
            Some((name.to_string(), export))
        })
        .collect()
}

/// Calls one decl export and decodes the declaration it returns, adding its decoded size to
/// `declared` (the module's declarations so far) and refusing it past the module's budget.
fn describe_entity(
    lane: &Lane,
    store: &mut Store<Ctx>,
    instance: &Instance,
    export: &ModuleExport,
    declared: &mut u64,
) -> Result<EntityDecl, String> {
    let f = instance
        .get_module_export(&mut *store, export)
        .and_then(|e| e.into_func())
        .ok_or("not a function")?
        .typed::<(), i64>(&*store)
        .map_err(|e| format!("wrong signature: {e}"))?;
    let packed = match f.call(&mut *store, ()) {
        Ok(p) => p,
        Err(e) => {
            let panic = lane.panic_message(store, instance);
            return Err(trap_failure(e, store.data(), panic).message);
        }
    };
    let bytes = lane.read(store, instance, packed, lane.config.max_output_bytes)?;
    let d = codec::decode::<EntityDecl>(&bytes).map_err(|e| e.to_string())?;
    *declared += sandflow_contract::depth::last_decode_bytes();
    check_declared(*declared, lane.config.max_declaration_bytes)?;
    Ok(d)
}

/// Refuses a module in which an entity that runs (a task or a dynamic) has no call export
/// under the symbol it was declared under; returns those call exports by entity name.
fn check_call_exports(
    module: &wasmtime::Module,
    entities: &[EntityDecl],
    symbols: &HashMap<String, String>,
    origin: &Path,
) -> Result<Calls, ModuleError> {
    let mut calls = HashMap::new();
    for d in entities {
        if !matches!(d.kind, EntityKind::Task(_) | EntityKind::Dynamic(_)) {
            continue;
        }
        let symbol = symbols
            .get(&d.name)
            .expect("every entity was declared under a symbol");
        let export = format!("{}{symbol}", abi::CALL_PREFIX);
        if module.get_export_index(&export).is_none() {
            return Err(missing(origin, &export));
        }
        calls.insert(d.name.clone(), export);
    }
    Ok(calls)
}

/// Fails once a module's declarations, `declared` bytes so far, take more than `limit`.
fn check_declared(declared: u64, limit: u64) -> Result<(), String> {
    if declared <= limit {
        return Ok(());
    }
    let size = |b: u64| match b {
        0..0x10_0000 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
    };
    Err(format!(
        "the module's declarations take {} in memory up to this one, more than the {} a \
         module may declare (SandboxConfig::max_declaration_bytes)",
        size(declared),
        size(limit)
    ))
}
