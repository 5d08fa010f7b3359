//! The console's JSON API over the execution store (documented in README.md, "Console").
//! Store reads are blocking SQLite calls: each runs on tokio's blocking pool.

use super::tree::{levels, members_page, part_for, with_output, Found, Grouped};
use crate::cli::executions::summary_json;
use crate::cli::store::{
    descendants, inputs_json, interfaces, natural_cmp, node_record_json, value_json,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sandflow_host::store::{
    AnyStore, ExecStatus, ExecutionFilter, NodeStatus, StoreError, StoreRead,
};
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Store = Arc<AnyStore>;

/// An error as the API answers it: a status and `{"error": "..."}`.
pub struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        let status = match e.downcast_ref::<StoreError>() {
            Some(StoreError::UnknownExecution { .. } | StoreError::UnknownNode { .. }) => {
                StatusCode::NOT_FOUND
            }
            Some(StoreError::AmbiguousPrefix { .. }) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, crate::cli::render_error(&e))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        anyhow::Error::new(e).into()
    }
}

/// Runs a store read on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: Store,
    f: impl FnOnce(&AnyStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the store failed: {e}"),
            )
        })?
}

/// Page sizes: the default and the most one request may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

/// `limit=0` asks for a level's counts alone (a map node's phases).
fn page(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    entity: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    /// Include child executions (launch plan calls); top-level ones only by default.
    #[serde(default)]
    children: bool,
}

pub async fn executions(
    State(store): State<Store>,
    Query(q): Query<ListQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(ExecStatus::parse(s).ok_or_else(|| {
            let names: Vec<&str> = ExecStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("status {s:?} is not one of {}", names.join(", ")),
            )
        })?),
    };
    let (limit, offset) = (page(q.limit), q.offset.unwrap_or(0));
    let entity = q.entity.filter(|e| !e.is_empty());
    let rows = blocking(store, move |s| {
        Ok(s.executions(&ExecutionFilter {
            status,
            entity,
            limit: Some(offset.saturating_add(limit)),
            roots_only: !q.children,
        })?)
    })
    .await?;
    let list: Vec<JsonValue> = rows.iter().skip(offset).map(summary_json).collect();
    Ok(Json(
        json!({ "offset": offset, "limit": limit, "executions": list }),
    ))
}

pub async fn execution(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(store, move |store| {
        let exec = store.execution(&id)?;
        let s = &exec.summary;
        let ifaces = interfaces(store, &s.module)?;
        let iface = ifaces.get(&s.entity).map(|e| &e.interface);
        let mut out = summary_json(s);
        out["inputs"] = inputs_json(&exec.inputs, iface);
        out["output"] = exec
            .output
            .as_ref()
            .map(|v| value_json(v, iface.and_then(|i| i.output.as_ref())))
            .unwrap_or(JsonValue::Null);
        let below = descendants(store, &s.id)?;
        out["children"] = JsonValue::Array(below.iter().map(summary_json).collect());
        Ok(Json(out))
    })
    .await
}

#[derive(Deserialize)]
pub struct NodesQuery {
    /// The node whose direct children are wanted; the top nodes when absent or empty.
    parent: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    /// `outputs=false` leaves the outputs out (the page's tree shows none; a map's output
    /// can hold a million items).
    outputs: Option<bool>,
}

pub async fn nodes(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<NodesQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(store, move |store| {
        let tree = levels(store, &id)?;
        let parent = q.parent.filter(|p| !p.is_empty());
        let key = parent.clone().unwrap_or_default();
        let lv = part_for(store, &tree, &key)?;
        let exec = &tree.exec;
        let under: &[usize] = lv.children.get(&key).map_or(&[], |l| l.as_slice());
        let groups: Vec<&Grouped> = lv
            .groups_at
            .get(&key)
            .map(|l| l.iter().map(|&i| &lv.groups[i]).collect())
            .unwrap_or_default();
        if parent.is_some() && under.is_empty() && groups.is_empty() && lv.get(&key).is_none() {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("execution {} has no node {key:?}", exec.id),
            ));
        }
        // Counts per phase of the level, so a map's node shows them without paging through.
        let phases = lv.phases.get(&key).cloned().unwrap_or_default();
        let (limit, offset) = (page(q.limit), q.offset.unwrap_or(0));
        let outputs = q.outputs != Some(false);
        // The level in display order: failed first, then the rest by index. A group's
        // members are paged in the store, in its place in that order.
        let small_failed = under
            .iter()
            .take_while(|&&i| lv.all[i].record.status == NodeStatus::Failed)
            .count();
        let mut segments: Vec<Segment> = vec![Segment::Small(0, small_failed)];
        segments.extend(groups.iter().map(|g| Segment::Members(g, true, g.failed())));
        segments.push(Segment::Small(small_failed, under.len() - small_failed));
        segments.extend(
            groups
                .iter()
                .map(|g| Segment::Members(g, false, g.listed_ok())),
        );
        let mut picked: Vec<(Found, bool)> = Vec::new();
        let mut skip = offset as u64;
        let mut want = limit as u64;
        for seg in &segments {
            let len = seg.len();
            if want == 0 {
                break;
            }
            if skip >= len {
                skip -= len;
                continue;
            }
            let take = want.min(len - skip);
            match seg {
                Segment::Small(from, _) => {
                    for &i in &under[from + skip as usize..from + (skip + take) as usize] {
                        let n = &lv.all[i];
                        let mut n = n.clone();
                        if outputs && !lv.has_outputs() {
                            n.record = with_output(store, &n, false)?;
                        }
                        let nested = lv.has_children(&n.record.path);
                        picked.push((n, nested));
                    }
                }
                Segment::Members(g, failed, _) => {
                    let rows = members_page(store, g, *failed, skip, take, outputs)?;
                    let nest = g.members_nest();
                    picked.extend(rows.into_iter().map(|record| {
                        let n = Found {
                            exec: g.exec.clone(),
                            record,
                        };
                        (n, nest)
                    }));
                }
            }
            want -= take;
            skip = 0;
        }
        let total = under.len() as u64 + groups.iter().map(|g| g.group.total).sum::<u64>();
        let mut ifaces: HashMap<String, HashMap<String, _>> = HashMap::new();
        let mut list = Vec::new();
        for (n, nested) in picked {
            let module = &n.exec.module;
            if !ifaces.contains_key(module) {
                ifaces.insert(module.clone(), interfaces(store, module)?);
            }
            let mut r = n.record;
            if !outputs {
                r.output = None;
            }
            let mut j = node_record_json(&r, n.exec.id.as_str(), &ifaces[module]);
            if !outputs {
                if let Some(o) = j.as_object_mut() {
                    o.remove("output");
                }
            }
            j["has_children"] = json!(nested);
            list.push(j);
        }
        Ok(Json(json!({
            "execution": exec.id.as_str(),
            "parent": parent,
            "total": total,
            "phases": phases,
            "offset": offset,
            "limit": limit,
            "nodes": list,
        })))
    })
    .await
}

/// A stretch of a level in display order: `Small(from, len)` of the level's read children,
/// or a group's failed (`true`) or other members.
enum Segment<'a> {
    Small(usize, usize),
    Members(&'a Grouped, bool, u64),
}

impl Segment<'_> {
    fn len(&self) -> u64 {
        match self {
            Segment::Small(_, n) => *n as u64,
            Segment::Members(_, _, n) => *n,
        }
    }
}

#[derive(Deserialize)]
pub struct LogsQuery {
    /// Only this node's attempts.
    path: Option<String>,
}

pub async fn logs(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(store, move |store| {
        let id = store.execution(&id)?.summary.id;
        let path = q.path.filter(|p| !p.is_empty());
        let mut ids = vec![id.clone()];
        ids.extend(descendants(store, &id)?.into_iter().map(|c| c.id));
        let mut attempts = Vec::new();
        let mut found = false;
        for x in &ids {
            match store.logs(x, path.as_deref()) {
                Ok(a) => {
                    found = true;
                    attempts.extend(a.into_iter().map(|a| (x.clone(), a)));
                }
                Err(StoreError::UnknownNode { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !found {
            // No execution of the tree has that node: the store's error names it.
            store.logs(&id, path.as_deref())?;
        }
        attempts.sort_by(|(_, a), (_, b)| {
            natural_cmp(&a.path, &b.path).then(a.record.attempt.cmp(&b.record.attempt))
        });
        let list: Vec<JsonValue> = attempts
            .iter()
            .map(|(x, a)| {
                let r = &a.record;
                json!({
                    "path": a.path,
                    "execution": x.as_str(),
                    "attempt": r.attempt,
                    "outcome": r.outcome.as_str(),
                    "message": r.message,
                    "start_us": r.start_us,
                    "end_us": r.end_us,
                    "worker": r.worker,
                    "stdout": String::from_utf8_lossy(&a.stdout),
                    "stderr": String::from_utf8_lossy(&a.stderr),
                })
            })
            .collect();
        Ok(Json(json!({ "execution": id.as_str(), "attempts": list })))
    })
    .await
}

/// How often the event stream polls the store, and how many of the newest executions it
/// watches.
const POLL: Duration = Duration::from_millis(500);
const WATCHED: usize = 200;

/// Server-sent events: an `executions` event with the summaries of the executions that
/// changed since the last poll (all watched ones first), or a `store-error` event when the store
/// cannot be read.
pub async fn events(State(store): State<Store>) -> impl IntoResponse {
    let seen: HashMap<String, JsonValue> = HashMap::new();
    let stream =
        futures_util::stream::unfold((store, seen, true), |(store, mut seen, first)| async move {
            if !first {
                tokio::time::sleep(POLL).await;
            }
            let read = blocking(store.clone(), |s| {
                Ok(s.executions(&ExecutionFilter {
                    limit: Some(WATCHED),
                    ..ExecutionFilter::default()
                })?)
            })
            .await;
            let event = match read {
                Ok(rows) => {
                    let changed: Vec<JsonValue> = rows
                        .iter()
                        .map(summary_json)
                        .filter(|j| {
                            let id = j["id"].as_str().unwrap_or_default().to_string();
                            seen.insert(id, j.clone()).as_ref() != Some(j)
                        })
                        .collect();
                    if changed.is_empty() && !first {
                        // Nothing new: a comment keeps the connection and the loop going.
                        Event::default().comment("")
                    } else {
                        Event::default()
                            .event("executions")
                            .data(JsonValue::Array(changed).to_string())
                    }
                }
                Err(ApiError(_, why)) => Event::default().event("store-error").data(why),
            };
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (store, seen, false),
            ))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
