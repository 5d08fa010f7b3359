//! What the console's forms are generated from (documented in README.md, "Console"): the
//! modules in the store, each module's entities with their interfaces (types rendered as
//! `sandflow describe` renders them, defaults, a launch plan's fixed inputs), and an
//! execution's entity with its current inputs.
//!
//! Defaults and fixed inputs are the guest's to declare: reading them runs the module's
//! describe exports, so a `sandflow describe --stored --json` child process does it, never
//! the server. Its answer is kept by digest: a module never changes under its digest.

use super::actions::{blocking, lookup_error, Shared};
use super::api::ApiError;
use crate::cli::executions::summary_json;
use crate::cli::launch::resolve_module;
use crate::cli::store::inputs_json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sandflow_host::store::StoreRead;
use serde_json::{json, Value as JsonValue};
use std::sync::Arc;

pub async fn modules(State(a): State<Shared>) -> Result<Json<JsonValue>, ApiError> {
    blocking(move || {
        let list: Vec<JsonValue> = a
            .store
            .modules()?
            .into_iter()
            .map(|m| {
                let entities: Vec<JsonValue> = m
                    .entities
                    .iter()
                    .map(|(name, kind)| json!({ "name": name, "kind": kind }))
                    .collect();
                json!({
                    "digest": m.digest,
                    "size": m.size,
                    "executions": m.executions,
                    "last_started_ms": m.last_started_ms,
                    "entities": entities,
                })
            })
            .collect();
        Ok(Json(json!({ "modules": list })))
    })
    .await
}

/// `sandflow describe --stored --json` of module `digest` (a full digest), from the cache
/// or a child process.
fn described(a: &Shared, digest: &str) -> Result<Arc<JsonValue>, ApiError> {
    let cached = a
        .described
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(digest)
        .cloned();
    if let Some(d) = cached {
        return Ok(d);
    }
    let out = std::process::Command::new(&a.exe)
        .args(["describe", "--stored", "--json"])
        .env("SANDFLOW_DB", a.store.child_location())
        .arg(digest)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("starting {} describe: {e}", a.exe.display()),
            )
        })?;
    let err = || {
        let said = String::from_utf8_lossy(&out.stderr);
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "describing module {digest} failed: {}",
                said.trim().trim_start_matches("error: ")
            ),
        )
    };
    if !out.status.success() {
        return Err(err());
    }
    let j: JsonValue = serde_json::from_slice(&out.stdout).map_err(|_| err())?;
    let j = Arc::new(json!({ "digest": digest, "entities": j["entities"] }));
    a.described
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(digest.to_string(), j.clone());
    Ok(j)
}

pub async fn module(
    State(a): State<Shared>,
    Path(prefix): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(move || {
        let digest = resolve_module(&a.store, &prefix).map_err(lookup_error)?;
        Ok(Json((*described(&a, &digest)?).clone()))
    })
    .await
}

/// The execution's entity (its interface as `GET /api/modules/{digest}` gives it) with each
/// input's current value: what a relaunch form starts from.
pub async fn interface(
    State(a): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(move || {
        let exec = a.store.execution(&id)?;
        let s = &exec.summary;
        let module = described(&a, &s.module)?;
        let Some(entity) = module["entities"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["name"] == s.entity.as_str()))
        else {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "execution {} ran {}, which its recorded module {} does not declare",
                    s.id, s.entity, s.module
                ),
            ));
        };
        let stored = crate::cli::store::interfaces(&a.store, &s.module)?;
        let values = inputs_json(&exec.inputs, stored.get(&s.entity).map(|e| &e.interface));
        let mut entity = entity.clone();
        if let (Some(inputs), JsonValue::Object(values)) =
            (entity["inputs"].as_array_mut(), &values)
        {
            for input in inputs {
                let name = input["name"].as_str().unwrap_or_default().to_string();
                input["value"] = values.get(&name).cloned().unwrap_or(JsonValue::Null);
            }
        }
        let mut out = summary_json(s);
        out["entity"] = entity;
        // Relaunch and recover act on the run's top execution (`root`).
        out["relaunches"] = json!(s.root.as_str());
        Ok(Json(out))
    })
    .await
}
