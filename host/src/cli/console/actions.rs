//! The console's actions (documented in README.md, "Console"): cancel a running execution,
//! recover, relaunch (inputs edited) and launch. Cancel is a row in the store (the run that
//! owns the execution polls for it); the others start a `sandflow` child process
//! ([`super::spawn`]) and answer with the new execution's id once it has started, or with
//! the child's own error (a bad input is a 400 with the CLI's message).
//!
//! A child execution (a launch plan call) runs in its top execution's run: cancelling,
//! recovering or relaunching it acts on that run, and the answer names it (`root`).

use super::api::ApiError;
use super::spawn::{start, StartError};
use crate::cli::cancel::{request, CancelError};
use crate::cli::launch::{resolve_module, ModuleLookupError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sandflow_host::store::{AnyStore, ExecStatus, StoreRead};
use serde_json::{json, Map, Value as JsonValue};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the actions need: the store, the binary to start runs with, and the modules
/// described so far (a module never changes under its digest).
pub struct Actions {
    pub store: Arc<AnyStore>,
    pub exe: PathBuf,
    pub described: Mutex<HashMap<String, Arc<JsonValue>>>,
}

pub type Shared = Arc<Actions>;

fn bad(status: StatusCode, why: impl Into<String>) -> ApiError {
    ApiError(status, why.into())
}

/// Runs blocking work (store reads, a child starting) on tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's work failed: {e}"),
        )
    })?
}

/// A request body: a JSON object, or nothing (`{}`).
fn body_object(body: &Bytes) -> Result<Map<String, JsonValue>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<JsonValue>(body) {
        Ok(JsonValue::Object(m)) => Ok(m),
        Ok(other) => Err(bad(
            StatusCode::BAD_REQUEST,
            format!(
                "expected a JSON object as the body, found {}",
                crate::cli::run::clip(&other.to_string())
            ),
        )),
        Err(e) => Err(bad(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// The body's `inputs` object (absent: none), as the bytes a child reads with `--inputs -`.
fn inputs_of(body: &Map<String, JsonValue>) -> Result<Vec<u8>, ApiError> {
    match body.get("inputs") {
        None | Some(JsonValue::Null) => Ok(b"{}".to_vec()),
        Some(v @ JsonValue::Object(_)) => Ok(v.to_string().into_bytes()),
        Some(other) => Err(bad(
            StatusCode::BAD_REQUEST,
            format!(
                "`inputs` must be a JSON object of inputs by name, found {}",
                crate::cli::run::clip(&other.to_string())
            ),
        )),
    }
}

/// Starts `sandflow <args>`, mapping a refusal to 400.
fn run_child(a: &Actions, args: Vec<OsString>, stdin: Option<Vec<u8>>) -> Result<String, ApiError> {
    start(&a.exe, &a.store.child_location(), &args, stdin).map_err(|e| match e {
        StartError::Refused(why) => bad(StatusCode::BAD_REQUEST, why),
        StartError::Failed(why) => bad(StatusCode::INTERNAL_SERVER_ERROR, why),
    })
}

/// A failed module lookup as the API answers it: 404 for no such module, 400 for a prefix
/// that is not one or names several.
pub(super) fn lookup_error(e: ModuleLookupError) -> ApiError {
    match e {
        ModuleLookupError::Store(s) => ApiError::from(s),
        ModuleLookupError::Unknown { .. } => bad(StatusCode::NOT_FOUND, e.to_string()),
        ModuleLookupError::NotADigest { .. } | ModuleLookupError::Ambiguous { .. } => {
            bad(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

pub async fn cancel(
    State(a): State<Shared>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JsonValue>), ApiError> {
    blocking(move || {
        let r = request(&*a.store, &id).map_err(|e| match e {
            CancelError::NotRunning { .. } => bad(StatusCode::CONFLICT, e.to_string()),
            CancelError::Store(s) => ApiError::from(s),
        })?;
        // 202: the request is recorded; the run stops at its next poll (the event stream
        // shows it `cancelled`).
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "execution": r.execution.as_str(),
                "root": r.root.as_str(),
                "owner": { "pid": r.owner.pid, "host": r.owner.host },
            })),
        ))
    })
    .await
}

/// The top execution of `id`'s run, checked not to be running (recover and relaunch need it
/// ended, as the CLI does).
fn ended_root(a: &Actions, id: &str, what: &str) -> Result<String, ApiError> {
    let s = a.store.execution(id)?.summary;
    let root = if s.parent.is_some() {
        a.store.execution(s.root.as_str())?.summary
    } else {
        s
    };
    if root.status == ExecStatus::Running {
        return Err(bad(
            StatusCode::CONFLICT,
            format!(
                "execution {} is still running (process {} on {}): cancel it first, or wait, \
                 before you {what} it",
                root.id, root.owner.pid, root.owner.host
            ),
        ));
    }
    Ok(root.id.to_string())
}

pub async fn recover(
    State(a): State<Shared>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JsonValue>), ApiError> {
    blocking(move || {
        let root = ended_root(&a, &id, "recover")?;
        if a.store.execution(&root)?.summary.status == ExecStatus::Succeeded {
            return Err(bad(
                StatusCode::CONFLICT,
                format!("execution {root} succeeded: there is nothing to recover (relaunch runs it again)"),
            ));
        }
        let args: Vec<OsString> = vec!["recover".into(), root.clone().into()];
        let new = run_child(&a, args, None)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "execution": new, "recovers": root })),
        ))
    })
    .await
}

pub async fn relaunch(
    State(a): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<JsonValue>), ApiError> {
    let inputs = inputs_of(&body_object(&body)?)?;
    blocking(move || {
        let root = ended_root(&a, &id, "relaunch")?;
        let mut args: Vec<OsString> = vec!["relaunch".into(), root.clone().into()];
        args.extend(["--inputs".into(), "-".into()]);
        let new = run_child(&a, args, Some(inputs))?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "execution": new, "relaunches": root })),
        ))
    })
    .await
}

pub async fn launch(
    State(a): State<Shared>,
    body: Bytes,
) -> Result<(StatusCode, Json<JsonValue>), ApiError> {
    let body = body_object(&body)?;
    let inputs = inputs_of(&body)?;
    let field = |name: &str| -> Result<String, ApiError> {
        match body.get(name) {
            Some(JsonValue::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(bad(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body needs `{name}` (a string): {{\"module\": \"<digest or prefix>\", \
                     \"entity\": \"<name>\", \"inputs\": {{...}}}}"
                ),
            )),
        }
    };
    let (module, entity) = (field("module")?, field("entity")?);
    blocking(move || {
        let digest = resolve_module(&a.store, &module).map_err(lookup_error)?;
        let names: Vec<String> = a
            .store
            .entities(&digest)?
            .into_iter()
            .map(|e| e.name)
            .collect();
        if !names.contains(&entity) {
            return Err(bad(
                StatusCode::NOT_FOUND,
                format!(
                    "module {digest} has no entity {entity:?}; it has: {}",
                    names.join(", ")
                ),
            ));
        }
        let mut args: Vec<OsString> = vec!["launch".into()];
        args.extend(["--inputs".into(), "-".into()]);
        args.extend([digest.clone().into(), entity.clone().into()]);
        let new = run_child(&a, args, Some(inputs))?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "execution": new, "module": digest, "entity": entity })),
        ))
    })
    .await
}
