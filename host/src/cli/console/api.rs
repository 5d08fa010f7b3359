//! The console's JSON API over the execution store (documented in README.md, "Console").
//! Store reads are blocking SQLite calls: each runs on tokio's blocking pool.

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
    AnyStore, ExecStatus, ExecutionFilter, ExecutionSummary, NodeRecord, NodeStatus, StoreError,
    StoreRead,
};
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use std::collections::{BTreeMap, HashMap};
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

fn page(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
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

/// A node of the execution's tree and the execution that recorded it (the execution itself
/// or one of its child executions: their nodes hang under the launch plan node that called
/// them, as `sandflow show` draws them).
pub(super) struct Found {
    pub(super) exec: Arc<ExecutionSummary>,
    pub(super) record: NodeRecord,
}

/// The node whose path is the longest prefix of `path` that ends where a path segment (`/`)
/// or a map index (`[`) starts, if any.
fn parent_of(path: &str, recorded: impl Fn(&str) -> bool) -> Option<&str> {
    path.char_indices()
        .rev()
        .filter(|&(i, c)| i > 0 && (c == '/' || c == '['))
        .map(|(i, _)| &path[..i])
        .find(|p| recorded(p))
}

/// An execution tree's nodes with each level's children in display order: failed first
/// (what one opens the console for), then as people count (`t[2]` before `t[10]`). Built in
/// one pass, so a level of a 1 000 000-element map is a slice, not a sort per request.
pub(super) struct Levels {
    pub(super) exec: ExecutionSummary,
    pub(super) all: Vec<Found>,
    /// Path -> index into `all`.
    pub(super) by_path: HashMap<String, usize>,
    /// Parent path ("" for the top) -> indices into `all`.
    children: HashMap<String, Vec<usize>>,
    /// Parent path -> its children's count per status, so a map's counts cost no pass.
    phases: HashMap<String, BTreeMap<&'static str, usize>>,
}

impl Levels {
    fn read(store: &AnyStore, id: &str) -> Result<Levels, ApiError> {
        let exec = store.execution(id)?.summary;
        let mut all: Vec<Found> = Vec::new();
        for s in std::iter::once(exec.clone()).chain(descendants(store, &exec.id)?) {
            let s = Arc::new(s);
            all.extend(store.nodes(&s.id)?.into_iter().map(|record| Found {
                exec: s.clone(),
                record,
            }));
        }
        let by_path: HashMap<String, usize> = all
            .iter()
            .enumerate()
            .map(|(i, n)| (n.record.path.clone(), i))
            .collect();
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in all.iter().enumerate() {
            let up = parent_of(&n.record.path, |p| by_path.contains_key(p)).unwrap_or("");
            children.entry(up.to_string()).or_default().push(i);
        }
        for list in children.values_mut() {
            // Keys computed once per node: a million comparisons of paths chunk by chunk
            // cost seconds.
            list.sort_by_cached_key(|&i| {
                let r = &all[i].record;
                (r.status != NodeStatus::Failed, natural_key(&r.path))
            });
        }
        let phases = children
            .iter()
            .map(|(parent, list)| {
                let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
                for &i in list {
                    *counts.entry(all[i].record.status.as_str()).or_default() += 1;
                }
                (parent.clone(), counts)
            })
            .collect();
        Ok(Levels {
            exec,
            all,
            by_path,
            children,
            phases,
        })
    }

    pub(super) fn get(&self, path: &str) -> Option<&Found> {
        self.by_path.get(path).map(|&i| &self.all[i])
    }

    /// Whether every execution of the tree has ended: then its nodes no longer change.
    fn settled(&self) -> bool {
        self.exec.status != ExecStatus::Running
            && self.all.iter().all(|n| {
                !matches!(
                    n.record.status,
                    NodeStatus::Running | NodeStatus::Queued | NodeStatus::Expanded
                )
            })
    }
}

/// A path's chunks, digit runs as numbers, so keys order like `natural_cmp` (`t[2]` before
/// `t[10]`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Chunk<'a> {
    Num(u128),
    Text(&'a str),
}

fn natural_key(path: &str) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(first) = rest.chars().next() {
        let digits = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (chunk, tail) = rest.split_at(end);
        out.push(match chunk.parse::<u128>() {
            Ok(n) if digits => Chunk::Num(n),
            _ => Chunk::Text(chunk),
        });
        rest = tail;
    }
    out
}

/// The levels of the last settled tree asked for: paging through a big map reads the store
/// once. A running tree is read on every request (it changes).
pub(super) fn levels(store: &AnyStore, id: &str) -> Result<Arc<Levels>, ApiError> {
    static LAST: std::sync::Mutex<Option<Arc<Levels>>> = std::sync::Mutex::new(None);
    if let Ok(last) = LAST.lock() {
        if let Some(l) = last.as_ref().filter(|l| l.exec.id.as_str() == id) {
            return Ok(l.clone());
        }
    }
    let l = Arc::new(Levels::read(store, id)?);
    if l.settled() {
        if let Ok(mut last) = LAST.lock() {
            *last = Some(l.clone());
        }
    }
    Ok(l)
}

pub async fn nodes(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<NodesQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(store, move |store| {
        let lv = levels(store, &id)?;
        let exec = &lv.exec;
        let parent = q.parent.filter(|p| !p.is_empty());
        let key = parent.clone().unwrap_or_default();
        let under: &[usize] = match lv.children.get(&key) {
            Some(list) => list,
            None if parent.is_none() => &[],
            None if lv.by_path.contains_key(&key) => &[],
            None => {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("execution {} has no node {key:?}", exec.id),
                ))
            }
        };
        // Counts per phase of the level, so a map's node shows them without paging through.
        let phases = lv.phases.get(&key).cloned().unwrap_or_default();
        let (limit, offset) = (page(q.limit), q.offset.unwrap_or(0));
        let mut ifaces: HashMap<String, HashMap<String, _>> = HashMap::new();
        let mut list = Vec::new();
        for &i in under.iter().skip(offset).take(limit) {
            let n = &lv.all[i];
            let module = &n.exec.module;
            if !ifaces.contains_key(module) {
                ifaces.insert(module.clone(), interfaces(store, module)?);
            }
            let r = &n.record;
            let mut j = if q.outputs == Some(false) {
                // Built field by field: cloning the record would copy the output first.
                let bare = NodeRecord {
                    key: r.key,
                    path: r.path.clone(),
                    entity: r.entity.clone(),
                    kind: r.kind.clone(),
                    status: r.status,
                    attempts: r.attempts,
                    output: None,
                    cached: r.cached,
                    start_us: r.start_us,
                    end_us: r.end_us,
                    worker: r.worker,
                };
                let mut j = node_record_json(&bare, n.exec.id.as_str(), &ifaces[module]);
                if let Some(o) = j.as_object_mut() {
                    o.remove("output");
                }
                j
            } else {
                node_record_json(r, n.exec.id.as_str(), &ifaces[module])
            };
            j["has_children"] = json!(lv.children.contains_key(r.path.as_str()));
            list.push(j);
        }
        Ok(Json(json!({
            "execution": exec.id.as_str(),
            "parent": parent,
            "total": under.len(),
            "phases": phases,
            "offset": offset,
            "limit": limit,
            "nodes": list,
        })))
    })
    .await
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

#[cfg(test)]
mod tests {
    use super::{natural_key, parent_of};

    #[test]
    fn map_elements_order_by_their_index() {
        let mut paths = vec!["m[10]", "m[2]", "m[1]/t", "m[1]", "a[0]"];
        paths.sort_by_cached_key(|p| natural_key(p));
        assert_eq!(paths, ["a[0]", "m[1]", "m[1]/t", "m[2]", "m[10]"]);
    }
    use std::collections::HashSet;

    #[test]
    fn a_nodes_parent_is_the_longest_recorded_prefix() {
        let recorded: HashSet<&str> = ["wf", "wf/m", "wf/m[3]", "wf/m[3]/lp/t"].into();
        let paths = |p: &str| recorded.contains(p);
        assert_eq!(parent_of("wf/m", paths), Some("wf"));
        assert_eq!(parent_of("wf/m[3]", paths), Some("wf/m"));
        // The child execution's nodes hang under the nearest recorded node.
        assert_eq!(parent_of("wf/m[3]/lp/t", paths), Some("wf/m[3]"));
        assert_eq!(parent_of("wf", paths), None);
        assert_eq!(parent_of("wf/mm", paths), Some("wf"));
    }
}
