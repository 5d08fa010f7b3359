//! The console's reads for the execution page beyond the tree: the graphs (a workflow's from
//! its module's declaration, a dynamic's as the store recorded it), the timeline of attempts,
//! and one node with its inputs. Node inputs are not recorded (a run pays nothing for a
//! console nobody opens): they are resolved here from the graph's bindings, the execution's
//! inputs and the upstream nodes' recorded outputs.

use super::api::ApiError;
use super::tree::{levels, lookup, lookup_or_404, part_for, Found, Levels, NodeRef};
use crate::cli::store::{interfaces, natural_cmp, node_record_json, value_json};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use sandflow_contract::{Binding, EntityDecl, EntityKind, GraphSpec, Value};
use sandflow_host::compile;
use sandflow_host::module::ModuleDecl;
use sandflow_host::runner::Host;
use sandflow_host::store::{
    AnyStore, ExecutionId, ExecutionSummary, NodeQuery as Select, StoreRead,
};
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

type Store = Arc<AnyStore>;

fn bad(status: StatusCode, why: String) -> ApiError {
    ApiError(status, why)
}

async fn blocking<T: Send + 'static>(
    store: Store,
    f: impl FnOnce(&AnyStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| {
            bad(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the store failed: {e}"),
            )
        })?
}

/// Every node of the execution tree (child executions' nodes included), by path: the
/// nodes API's read, shared (and kept for a settled tree).
type Tree = Arc<Levels>;
/// The console's own host, started on first need, only to read modules' declarations (a
/// workflow's graph is declared by its module, not recorded per run).
fn host() -> Result<&'static Host, ApiError> {
    static HOST: OnceLock<Result<Host, String>> = OnceLock::new();
    HOST.get_or_init(|| Host::new(1).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| {
            bad(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start a sandbox to read module declarations: {e}"),
            )
        })
}

/// The declaration of the stored module `digest`, loaded once per console process.
fn decl(store: &AnyStore, digest: &str) -> Result<Arc<ModuleDecl>, ApiError> {
    static DECLS: OnceLock<Mutex<HashMap<String, Arc<ModuleDecl>>>> = OnceLock::new();
    let cache = DECLS.get_or_init(Default::default);
    if let Some(d) = cache.lock().ok().and_then(|c| c.get(digest).cloned()) {
        return Ok(d);
    }
    let bytes = store.module(digest)?;
    let origin = std::path::PathBuf::from(format!("<stored module {digest}>"));
    let sandbox = host()?.load_bytes(&bytes, &origin).map_err(|e| {
        bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("loading stored module {digest}: {e}"),
        )
    })?;
    let d = sandbox.decl.clone();
    if let Ok(mut c) = cache.lock() {
        c.insert(digest.to_string(), d.clone());
    }
    Ok(d)
}

/// The graph a recorded node owns: its workflow's (a launch plan's is its workflow's), or the
/// graph its dynamic returned, as recorded. `None` for a task or a map.
fn graph_of(
    store: &AnyStore,
    n: &Found,
    dynamics: &HashMap<u64, GraphSpec>,
) -> Result<Option<GraphSpec>, ApiError> {
    match n.record.kind.as_str() {
        "dynamic" => Ok(dynamics.get(&n.record.key).cloned()),
        "workflow" | "launch plan" => {
            let d = decl(store, &n.exec.module)?;
            let mut name = n.record.entity.as_str();
            if let Some(EntityDecl {
                kind: EntityKind::LaunchPlan(lp),
                ..
            }) = d.get(name)
            {
                name = lp.workflow.as_str();
            }
            Ok(match d.get(name).map(|e| &e.kind) {
                Some(EntityKind::Workflow(g)) => Some(g.clone()),
                _ => None,
            })
        }
        _ => Ok(None),
    }
}

/// The path node `i` of `g` gets under its owner `owner` (as the scheduler names it: the
/// entity, with `[k]` when the entity is called more than once in the graph).
fn child_paths(owner: &str, g: &GraphSpec) -> Vec<String> {
    let mut count: HashMap<&str, u32> = HashMap::new();
    for n in &g.nodes {
        *count.entry(n.entity.as_str()).or_default() += 1;
    }
    let mut next: HashMap<&str, u32> = HashMap::new();
    g.nodes
        .iter()
        .map(|n| {
            if count[n.entity.as_str()] == 1 {
                format!("{owner}/{}", n.entity)
            } else {
                let k = next.entry(n.entity.as_str()).or_default();
                *k += 1;
                format!("{owner}/{}[{}]", n.entity, *k - 1)
            }
        })
        .collect()
}

/// The nodes `b` reads the outputs of.
fn upstream(b: &Binding, out: &mut Vec<u32>) {
    match b {
        Binding::Node(j) => out.push(*j),
        Binding::List(items) => items.iter().for_each(|i| upstream(i, out)),
        Binding::Map(pairs) => pairs.iter().for_each(|(_, i)| upstream(i, out)),
        Binding::Record(items) => items.iter().for_each(|i| upstream(i, out)),
        Binding::Field { of, .. } | Binding::Index { of, .. } | Binding::Key { of, .. } => {
            upstream(of, out)
        }
        Binding::Literal(_) | Binding::Input(_) => {}
    }
}

#[derive(Deserialize)]
pub struct GraphsQuery {
    /// The node whose graph is wanted; without it, the list of nodes that own a graph.
    owner: Option<String>,
}

/// How many graph owners one listing names (a map of dynamics owns one graph per element).
const MAX_OWNERS: usize = 500;

pub async fn graphs(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<GraphsQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(store, move |store| {
        let tree = levels(store, &id)?;
        let dynamics = store.graphs(&tree.exec.id)?;
        let Some(owner) = q.owner.filter(|o| !o.is_empty()) else {
            let owns = |n: &Found| match n.record.kind.as_str() {
                "dynamic" => dynamics.contains_key(&n.record.key),
                "workflow" | "launch plan" => true,
                _ => false,
            };
            let mut owners: Vec<Found> = tree.all.iter().filter(|n| owns(n)).cloned().collect();
            owners.sort_by(|a, b| natural_cmp(&a.record.path, &b.record.path));
            let mut total = owners.len() as u64;
            // A group of dynamics, workflows or launch plan calls owns a graph per member:
            // the first members are listed, all are counted.
            for g in &tree.groups {
                if !matches!(g.group.kind.as_str(), "dynamic" | "workflow" | "launch plan") {
                    continue;
                }
                total += g.group.total;
                let room = MAX_OWNERS.saturating_sub(owners.len()) as u64;
                if room == 0 {
                    continue;
                }
                let members = store.nodes_where(
                    &g.exec.id,
                    &Select {
                        members: Some(g.group.prefix.clone()),
                        limit: Some(room),
                        ..Select::default()
                    },
                )?;
                owners.extend(
                    members
                        .into_iter()
                        .map(|record| Found { exec: g.exec.clone(), record })
                        .filter(|n| owns(n)),
                );
            }
            let list: Vec<JsonValue> = owners
                .iter()
                .take(MAX_OWNERS)
                .map(|n| json!({ "path": n.record.path, "kind": n.record.kind, "entity": n.record.entity }))
                .collect();
            return Ok(Json(json!({ "execution": tree.exec.id.as_str(), "total": total, "owners": list })));
        };
        let n = lookup_or_404(store, &tree, &owner)?;
        let g = graph_of(store, &n, &dynamics)?.ok_or_else(|| {
            bad(
                StatusCode::NOT_FOUND,
                format!(
                    "node {owner:?} ({} {}) has no graph: only workflows, launch plans and \
                     expanded dynamics do",
                    n.record.kind, n.record.entity
                ),
            )
        })?;
        let paths = child_paths(&owner, &g);
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for (i, (spec, path)) in g.nodes.iter().zip(&paths).enumerate() {
            let rec = lookup(store, &tree, path)?;
            let rec = rec.as_ref().map(|f| &f.record);
            nodes.push(json!({
                "index": i,
                "entity": spec.entity,
                "path": path,
                "map": spec.map.is_some(),
                "status": rec.map(|r| r.status.as_str()),
                "kind": rec.map(|r| r.kind.as_str()),
            }));
            for (input, b) in &spec.inputs {
                let mut from = Vec::new();
                upstream(b, &mut from);
                for j in from {
                    edges.push(json!({ "from": j, "to": i, "input": input, "kind": "data" }));
                }
            }
            for j in &spec.after {
                edges.push(json!({ "from": j, "to": i, "input": null, "kind": "after" }));
            }
        }
        let mut out_nodes = Vec::new();
        if let Some(b) = &g.output {
            upstream(b, &mut out_nodes);
        }
        Ok(Json(json!({
            "execution": tree.exec.id.as_str(),
            "owner": owner,
            "kind": n.record.kind,
            "entity": n.record.entity,
            "nodes": nodes,
            "edges": edges,
            "output_from": out_nodes,
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct TimelineQuery {
    limit: Option<usize>,
}

const TIMELINE_DEFAULT: usize = 2_000;
const TIMELINE_MAX: usize = 20_000;

/// The attempts of the execution tree's tasks in start order, each with the worker it ran
/// on: the attempts the store kept (those that failed or printed) and, for a task whose
/// attempt was not kept, one span from its node's times and worker.
pub async fn timeline(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(store, move |store| {
        let tree = levels(store, &id)?;
        let mut spans: Vec<JsonValue> = Vec::new();
        let mut kept: HashSet<String> = HashSet::new();
        let execs: Vec<ExecutionId> = tree.execs.iter().map(|x| x.id.clone()).collect();
        for x in &execs {
            for a in store.logs(x, None)? {
                let r = &a.record;
                kept.insert(a.path.clone());
                spans.push(json!({
                    "path": a.path, "execution": x.as_str(), "attempt": r.attempt,
                    "outcome": r.outcome.as_str(), "start_us": r.start_us, "end_us": r.end_us,
                    "worker": r.worker,
                }));
            }
        }
        let limit = q.limit.unwrap_or(TIMELINE_DEFAULT).clamp(1, TIMELINE_MAX);
        // A tree read in parts: the first tasks by start, of each execution, from the store;
        // the rest counted from the executions' counts.
        let grouped: Vec<Found>;
        let mut total_tasks = None;
        let source: &[Found] = if tree.groups.is_empty() {
            &tree.all
        } else {
            let mut found = Vec::new();
            let mut ran = 0u64;
            for x in &tree.execs {
                ran += x.counts.total.saturating_sub(x.counts.cached);
                let q = Select {
                    tasks_by_start: true,
                    limit: Some((limit + kept.len()) as u64),
                    ..Select::default()
                };
                found.extend(
                    store
                        .nodes_where(&x.id, &q)?
                        .into_iter()
                        .map(|record| Found {
                            exec: x.clone(),
                            record,
                        }),
                );
            }
            grouped = found;
            total_tasks = Some(ran.saturating_sub(kept.len() as u64) as usize);
            &grouped
        };
        // Only the first `limit` tasks by start become JSON: a big map has a million.
        let mut tasks: Vec<(u64, &Found)> = source
            .iter()
            .filter(|n| {
                let r = &n.record;
                r.kind == "task" && !r.cached && !kept.contains(&r.path)
            })
            .filter_map(|n| Some((n.record.start_us?, n)))
            .collect();
        let total = spans.len() + total_tasks.unwrap_or(tasks.len());
        if tasks.len() > limit {
            tasks.select_nth_unstable_by_key(limit, |(start, _)| *start);
            tasks.truncate(limit);
        }
        for (start, n) in tasks {
            let r = &n.record;
            spans.push(json!({
                "path": r.path, "execution": n.exec.id.as_str(), "attempt": r.attempts.max(1),
                "outcome": r.status.as_str(), "start_us": start, "end_us": r.end_us,
                "worker": r.worker,
            }));
        }
        spans.sort_by_key(|s| s["start_us"].as_u64().unwrap_or(0));
        spans.truncate(limit);
        Ok(Json(json!({
            "execution": tree.exec.id.as_str(),
            "total": total,
            "spans": spans,
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct NodeQuery {
    path: String,
}

/// One node: its record, and its inputs resolved from its graph's bindings (or why not).
pub async fn node(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<NodeQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    blocking(store, move |store| {
        let tree = levels(store, &id)?;
        let n = lookup_or_404(store, &tree, &q.path)?;
        let ifaces = interfaces(store, &n.exec.module)?;
        let record = n.with_output(store)?;
        let mut out = node_record_json(&record, n.exec.id.as_str(), &ifaces);
        let mut r = Resolver {
            store,
            tree: tree.clone(),
            dynamics: store.graphs(&tree.exec.id)?,
            depth: 0,
        };
        match r.inputs(&q.path) {
            Ok(vals) => {
                let iface = ifaces.get(&n.record.entity).map(|e| &e.interface);
                let obj: serde_json::Map<String, JsonValue> = vals
                    .iter()
                    .map(|(name, v)| {
                        let ty = iface.and_then(|i| i.input(name)).map(|p| &p.ty);
                        let ty = match (ty, n.record.kind.as_str()) {
                            // A map node takes lists of its entity's inputs.
                            (Some(_), "map") => None,
                            (t, _) => t,
                        };
                        (name.clone(), value_json(v, ty))
                    })
                    .collect();
                out["inputs"] = JsonValue::Object(obj);
            }
            Err(why) => out["inputs_unavailable"] = json!(why),
        }
        Ok(Json(out))
    })
    .await
}

/// Resolves nodes' inputs from what the store holds.
struct Resolver<'a> {
    store: &'a AnyStore,
    tree: Tree,
    dynamics: HashMap<u64, GraphSpec>,
    depth: u32,
}

type Inputs = Vec<(String, Value)>;

impl Resolver<'_> {
    /// The node at `path`, from the part of the tree that holds it.
    fn get(&self, path: &str) -> Option<NodeRef> {
        lookup(self.store, &self.tree, path).ok().flatten()
    }

    fn inputs(&mut self, path: &str) -> Result<Inputs, String> {
        self.depth += 1;
        if self.depth > 200 {
            return Err(format!("{path}: the tree nests too deep to resolve"));
        }
        let r = self.inputs_inner(path);
        self.depth -= 1;
        r
    }

    fn inputs_inner(&mut self, path: &str) -> Result<Inputs, String> {
        let n = self
            .get(path)
            .ok_or_else(|| format!("node {path:?} is not recorded"))?;
        // The top of the execution: its recorded inputs.
        if n.exec.id == self.tree.exec.id && !path.contains('/') && !path.contains('[') {
            return self.exec_inputs(&self.tree.exec.clone());
        }
        // A map element: the map's inputs, its mapped lists at the element's index.
        if let Some((map_path, idx)) = path
            .strip_suffix(']')
            .and_then(|p| p.rsplit_once('['))
            .and_then(|(m, i)| Some((m, i.parse::<usize>().ok()?)))
        {
            if let Some(m) = self.get(map_path) {
                if m.record.kind == "map" {
                    let mapped = self.map_spec(map_path)?;
                    let mut vals = self.inputs(map_path)?;
                    for (name, v) in vals.iter_mut() {
                        if mapped.contains(name) {
                            *v = match v {
                                Value::List(items) => items.get(idx).cloned().ok_or_else(|| {
                                    format!("map {map_path}'s input {name} has no item {idx}")
                                })?,
                                _ => {
                                    return Err(format!(
                                        "map {map_path}'s input {name} is not a list"
                                    ))
                                }
                            };
                        }
                    }
                    return Ok(vals);
                }
            }
        }
        let (owner, i, g) = self.place(path)?;
        let spec = &g.nodes[i];
        let paths = child_paths(&owner, &g);
        let mut vals: Inputs = Vec::new();
        for (name, b) in &spec.inputs {
            vals.push((name.clone(), self.bind(&owner, &paths, b)?));
        }
        // Unbound inputs take the callee's defaults.
        if let Ok(ifaces) = interfaces(self.store, &n.exec.module) {
            if let Some(e) = ifaces.get(&spec.entity) {
                for p in &e.interface.inputs {
                    if !vals.iter().any(|(k, _)| *k == p.name) {
                        if let Some(d) = &p.default {
                            vals.push((p.name.clone(), d.clone()));
                        }
                    }
                }
            }
        }
        Ok(vals)
    }

    /// The graph that holds `path`, its owner's path and the node's index in it.
    fn place(&mut self, path: &str) -> Result<(String, usize, GraphSpec), String> {
        let owner = path
            .rsplit_once('/')
            .map(|(o, _)| o.to_string())
            .ok_or_else(|| format!("node {path:?} has no enclosing graph"))?;
        let o = self
            .get(&owner)
            .ok_or_else(|| format!("the node that holds {path:?} ({owner:?}) is not recorded"))?;
        let g = graph_of(self.store, &o, &self.dynamics)
            .map_err(|e| e.1)?
            .ok_or_else(|| {
                format!(
                    "the graph of {owner:?} ({} {}) is not recorded",
                    o.record.kind, o.record.entity
                )
            })?;
        let i = child_paths(&owner, &g)
            .iter()
            .position(|p| p == path)
            .ok_or_else(|| format!("node {path:?} is not in the graph of {owner:?}"))?;
        Ok((owner, i, g))
    }

    fn map_spec(&mut self, map_path: &str) -> Result<Vec<String>, String> {
        let (_, i, g) = self.place(map_path)?;
        Ok(g.nodes[i]
            .map
            .as_ref()
            .map(|m| m.mapped.clone())
            .unwrap_or_default())
    }

    fn bind(&mut self, owner: &str, paths: &[String], b: &Binding) -> Result<Value, String> {
        Ok(match b {
            Binding::Literal(v) => v.clone(),
            Binding::Input(name) => {
                let vals = self.owner_inputs(owner)?;
                vals.into_iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| format!("{owner:?} has no input {name:?}"))?
            }
            Binding::Node(j) => {
                let p = paths
                    .get(*j as usize)
                    .ok_or_else(|| format!("{owner:?}'s graph has no node {j}"))?;
                let up = self
                    .get(p)
                    .ok_or_else(|| format!("upstream node {p:?} is not recorded"))?;
                let record = up.with_output(self.store).map_err(|e| e.1)?;
                record.output.ok_or_else(|| {
                    format!(
                        "upstream node {p:?} has no recorded output (it is {})",
                        up.record.status.as_str()
                    )
                })?
            }
            Binding::List(items) => Value::List(
                items
                    .iter()
                    .map(|i| self.bind(owner, paths, i))
                    .collect::<Result<_, _>>()?,
            ),
            Binding::Map(pairs) => Value::Map(
                pairs
                    .iter()
                    .map(|(k, i)| Ok((k.clone(), self.bind(owner, paths, i)?)))
                    .collect::<Result<_, String>>()?,
            ),
            Binding::Record(items) => Value::Record(
                items
                    .iter()
                    .map(|i| self.bind(owner, paths, i))
                    .collect::<Result<_, _>>()?,
            ),
            // A part of an upstream output, read as the scheduler reads it.
            Binding::Field { of, index, .. } => match self.bind(owner, paths, of)? {
                Value::Record(mut fields) if (*index as usize) < fields.len() => {
                    fields.swap_remove(*index as usize)
                }
                _ => return Err(format!("{} cannot be read", compile::place(b))),
            },
            Binding::Index { of, index } => match self.bind(owner, paths, of)? {
                Value::List(mut items) if (*index as usize) < items.len() => {
                    items.swap_remove(*index as usize)
                }
                _ => return Err(format!("{} cannot be read", compile::place(b))),
            },
            Binding::Key { of, key } => match self.bind(owner, paths, of)? {
                Value::Map(mut entries) => entries
                    .remove(key)
                    .ok_or_else(|| format!("{} cannot be read", compile::place(b)))?,
                _ => return Err(format!("{} cannot be read", compile::place(b))),
            },
        })
    }

    /// The inputs a graph's `Input` bindings read: a launch plan's child execution's
    /// recorded inputs, else the owner's own (resolved) inputs.
    fn owner_inputs(&mut self, owner: &str) -> Result<Inputs, String> {
        let o = self
            .get(owner)
            .ok_or_else(|| format!("{owner:?} is not recorded"))?;
        if o.record.kind == "launch plan" {
            let part = part_for(self.store, &self.tree, owner).map_err(|e| e.1)?;
            let child = part
                .all
                .iter()
                .find(|n| {
                    n.exec.id != o.exec.id
                        && n.record.path.starts_with(owner)
                        && n.record.path[owner.len()..].starts_with('/')
                })
                .map(|n| (*n.exec).clone())
                .ok_or_else(|| format!("the child execution of {owner:?} is not recorded"))?;
            return self.exec_inputs(&child);
        }
        self.inputs(owner)
    }

    /// An execution's recorded inputs, named by its workflow's interface.
    fn exec_inputs(&self, s: &ExecutionSummary) -> Result<Inputs, String> {
        let exec = self
            .store
            .execution(s.id.as_str())
            .map_err(|e| e.to_string())?;
        let d = decl(self.store, &s.module).map_err(|e| e.1)?;
        let mut name = s.entity.as_str();
        if let Some(EntityDecl {
            kind: EntityKind::LaunchPlan(lp),
            ..
        }) = d.get(name)
        {
            // A child execution holds its workflow's inputs, fixed ones included.
            if s.parent.is_some() {
                name = lp.workflow.as_str();
            }
        }
        let params: Vec<String> = match d.get(name) {
            Some(e) => e.interface.inputs.iter().map(|p| p.name.clone()).collect(),
            None => return Err(format!("the module does not declare {name:?}")),
        };
        match exec.inputs {
            Value::List(vals) if vals.len() == params.len() => {
                Ok(params.into_iter().zip(vals).collect())
            }
            _ => Err(format!(
                "execution {}'s recorded inputs do not match {name}'s interface",
                s.id
            )),
        }
    }
}
