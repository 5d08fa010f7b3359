//! `sandflow show <id>`: one recorded execution: its inputs, output, status, error, task
//! counts, child executions, and its tree as `sandflow run --tree` prints it, rebuilt from
//! the store's node records. `--json` for scripts.

use super::executions::{duration, summary_json};
use super::store::{
    descendants, fmt_us, inputs_json, interfaces, local_time, natural_cmp, node_record_json,
    open_existing_store, value_json,
};
use clap::Args;
use sandflow_host::scheduler::{render_tree, TreeNode};
use sandflow_host::store::{
    AnyStore, AttemptOutcome, AttemptRecord, EntityRecord, ExecutionSummary, NodeRecord,
    NodeStatus, StoreRead,
};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Args)]
/// Show a recorded execution: inputs, output, status, error, child executions and its tree
pub struct ShowArgs {
    /// The execution id, or a prefix of it that no other id has
    id: String,
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long)]
    db: Option<PathBuf>,
    /// One JSON object with everything, nodes as a flat list
    #[arg(long)]
    json: bool,
    /// Map elements listed per map in the tree (failed ones are always listed)
    #[arg(long, default_value_t = 8)]
    map_elements: usize,
    /// Levels of the tree shown below its top (a line says how many nodes each cut hides)
    #[arg(long)]
    depth: Option<usize>,
}

/// Child executions listed by number in the text; the tree marks every launch plan node
/// with its number anyway, and a nested run has thousands.
const MAX_CHILDREN_LISTED: usize = 20;

/// A node of the execution or of one of its child executions (`exec` 0 is the execution
/// itself, `k` its `k`-th child execution in start order).
struct Node {
    exec: usize,
    record: NodeRecord,
}

pub fn show(args: ShowArgs) -> anyhow::Result<u8> {
    let store = open_existing_store(args.db)?;
    let exec = store.execution(&args.id)?;
    let s = &exec.summary;
    let ifaces = interfaces(&store, &s.module)?;
    let iface = ifaces.get(&s.entity).map(|e| &e.interface);
    let inputs = inputs_json(&exec.inputs, iface);
    let output = exec
        .output
        .as_ref()
        .map(|v| value_json(v, iface.and_then(|i| i.output.as_ref())));
    let below = descendants(&store, &s.id)?;
    let mut nodes: Vec<Node> = Vec::new();
    for (exec, id) in std::iter::once(&s.id)
        .chain(below.iter().map(|c| &c.id))
        .enumerate()
    {
        nodes.extend(
            store
                .nodes(id)?
                .into_iter()
                .map(|record| Node { exec, record }),
        );
    }
    nodes.sort_by(|a, b| natural_cmp(&a.record.path, &b.record.path));
    let below = in_tree_order(below, &mut nodes);
    if args.json {
        let mut all = summary_json(s);
        let execs: Vec<&ExecutionSummary> = std::iter::once(s).chain(&below).collect();
        all["inputs"] = inputs;
        all["output"] = output.unwrap_or(Json::Null);
        all["children"] = Json::Array(below.iter().map(summary_json).collect());
        all["nodes"] = Json::Array(
            nodes
                .iter()
                .map(|n| node_json(n, execs[n.exec], &ifaces))
                .collect(),
        );
        super::print_stdout(&serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    let failures = failed_attempts(&store, s, &below)?;
    let mut text = vec![
        format!("execution  {}", s.id),
        format!("entity     {}", s.entity),
        format!("status     {}", s.status),
        format!("started    {}", local_time(s.started_ms)),
        format!("duration   {}", duration(s)),
    ];
    text.push(format!(
        "driven by  process {} on {}",
        s.owner.pid, s.owner.host
    ));
    if let Some(p) = &s.parent {
        text.push(format!("parent     {p} (root {})", s.root));
    }
    if let Some(r) = &s.recovered_from {
        text.push(format!("recovers   {r}"));
    }
    if let Some(e) = &s.error {
        // A guest's error spans lines (backtrace, stderr tail): indented under the first.
        text.push(format!("error      {}", e.replace('\n', "\n           ")));
    }
    let c = &s.counts;
    text.push(format!(
        "tasks      {} ({} succeeded, {} running, {} failed, {} cached)",
        c.total, c.succeeded, c.running, c.failed, c.cached
    ));
    text.push(format!(
        "inputs     {}",
        clip(serde_json::to_string(&inputs)?)
    ));
    if let Some(o) = &output {
        text.push(format!("output     {}", clip(serde_json::to_string(o)?)));
    }
    if !below.is_empty() {
        text.push(format!("child executions ({})", below.len()));
        // Where each was called: the path above its first node (its launch plan node's).
        let mut at = vec![""; below.len() + 1];
        for n in nodes.iter().rev() {
            at[n.exec] = n.record.path.rsplit_once('/').map_or("", |(p, _)| p);
        }
        for (k, b) in below.iter().enumerate().take(MAX_CHILDREN_LISTED) {
            let mut via = String::new();
            if !at[k + 1].is_empty() {
                via.push_str(&format!("  at {}", at[k + 1]));
            }
            if let Some(p) = b.parent.as_ref().filter(|p| **p != s.id) {
                via.push_str(&format!("  (called by {p})"));
            }
            // A child execution another worker drove (delegated through the queue).
            if b.owner.pid != s.owner.pid || b.owner.host != s.owner.host {
                via.push_str(&format!(
                    "  driven by process {} on {}",
                    b.owner.pid, b.owner.host
                ));
            }
            text.push(format!(
                "  #{:<3} {}  {:<24} {:<11} {:>8}{via}",
                k + 1,
                b.id,
                b.entity,
                b.status,
                duration(b)
            ));
        }
    }
    if below.len() > MAX_CHILDREN_LISTED {
        text.push(format!(
            "  … {} more (all of them: sandflow executions --all, or show --json)",
            below.len() - MAX_CHILDREN_LISTED
        ));
    }
    let mut out = text.join("\n");
    out.push('\n');
    match build_tree(s, &nodes, &failures, (args.map_elements, args.depth)) {
        Some(tree) => {
            out.push_str("tree\n");
            out.push_str(&render_tree(&tree));
        }
        None => out.push_str("tree       (no nodes recorded)\n"),
    }
    super::print_stdout(out.trim_end());
    Ok(0)
}

/// Child executions numbered as their launch plan nodes come in the tree (the order of
/// their first node's path), not as they started: many start in the same millisecond.
/// Renumbers `nodes`' executions to match; executions without nodes come last.
fn in_tree_order(below: Vec<ExecutionSummary>, nodes: &mut [Node]) -> Vec<ExecutionSummary> {
    let mut first = vec![usize::MAX; below.len() + 1];
    for (i, n) in nodes.iter().enumerate() {
        first[n.exec] = first[n.exec].min(i);
    }
    let mut order: Vec<usize> = (1..=below.len()).collect();
    order.sort_by_key(|&k| first[k]);
    let mut renumber = vec![0; below.len() + 1];
    for (new, &old) in order.iter().enumerate() {
        renumber[old] = new + 1;
    }
    for n in nodes.iter_mut() {
        n.exec = renumber[n.exec];
    }
    let mut slots: Vec<Option<ExecutionSummary>> = below.into_iter().map(Some).collect();
    order.iter().filter_map(|&k| slots[k - 1].take()).collect()
}

/// A value's JSON on one line, cut for the terminal when long (`--json` has all of it).
fn clip(text: String) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!(
            "{}… ({} bytes in all; show --json prints everything)",
            &text[..cut],
            text.len()
        ),
        None => text,
    }
}

fn node_json(n: &Node, exec: &ExecutionSummary, ifaces: &HashMap<String, EntityRecord>) -> Json {
    node_record_json(&n.record, exec.id.as_str(), ifaces)
}

/// Failed attempts by (execution, node key), oldest first: the tree lists their messages.
fn failed_attempts(
    store: &AnyStore,
    s: &ExecutionSummary,
    below: &[ExecutionSummary],
) -> anyhow::Result<HashMap<(usize, u64), Vec<AttemptRecord>>> {
    let mut out: HashMap<(usize, u64), Vec<AttemptRecord>> = HashMap::new();
    for (exec, id) in std::iter::once(&s.id)
        .chain(below.iter().map(|c| &c.id))
        .enumerate()
    {
        for a in store.logs(id, None)? {
            if a.record.outcome != AttemptOutcome::Ok {
                out.entry((exec, a.record.node)).or_default().push(a.record);
            }
        }
    }
    Ok(out)
}

/// The tree of `nodes` (sorted by path): a node's parent is the node whose path is the
/// longest prefix of its own that ends where a path segment or a map index starts. Nodes
/// with no parent are the roots; more than one (a child execution shown alone holds the
/// nodes under its launch plan node, not that node) hang under one made for the execution.
fn build_tree(
    s: &ExecutionSummary,
    nodes: &[Node],
    failures: &HashMap<(usize, u64), Vec<AttemptRecord>>,
    (max_map_elements, depth): (usize, Option<usize>),
) -> Option<TreeNode> {
    let by_path: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .rev()
        .map(|(i, n)| (n.record.path.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut parents: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut roots = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let path = n.record.path.as_str();
        let parent = path
            .char_indices()
            .rev()
            .filter(|&(at, c)| at > 0 && (c == '/' || c == '['))
            .find_map(|(at, _)| by_path.get(&path[..at]).copied())
            .filter(|&p| p != i);
        parents[i] = parent;
        match parent {
            Some(p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    // Siblings in their graph's order (the ordinal or map index ending their name), as
    // `run --tree` lists them.
    for (p, kids) in children.iter_mut().enumerate() {
        let parent = nodes[p].record.path.as_str();
        kids.sort_by_cached_key(|&k| {
            let name = &nodes[k].record.path[parent.len()..];
            (ordinal(name), nodes[k].record.path.clone())
        });
    }
    // The launch plan node that started each child execution: the parent of its first node.
    let mut started: HashMap<usize, u32> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Some(p) = parents[i].filter(|&p| nodes[p].exec != n.exec) {
            started.entry(p).or_insert(n.exec as u32);
        }
    }
    let ctx = Ctx {
        nodes,
        children: &children,
        started: &started,
        failures,
        max_map_elements,
        depth: depth.unwrap_or(usize::MAX),
    };
    match roots.as_slice() {
        [] => None,
        [one] => Some(ctx.tree(*one, "", 0)),
        many => {
            // The common parent path of the roots names the execution's place in its root's
            // tree.
            let first = nodes[many[0]].record.path.as_str();
            let at = first.rfind('/').unwrap_or(0);
            let kids: Vec<TreeNode> = if ctx.depth == 0 {
                let hidden = many.iter().map(|&r| 1 + ctx.below(r)).sum();
                vec![hidden_marker(hidden)]
            } else {
                many.iter().map(|&r| ctx.tree(r, &first[..at], 1)).collect()
            };
            let span = many.iter().fold(None, |acc, &r| merge(acc, ctx.span(r)));
            let mut root = blank(
                if at == 0 {
                    s.entity.clone()
                } else {
                    first[..at].to_string()
                },
                "execution",
                s.status.as_str().to_uppercase(),
            );
            root.path = first[..at].to_string();
            root.entity = s.entity.clone();
            root.start_us = span.map(|(a, _)| a);
            root.end_us = span.map(|(_, b)| b);
            root.children = kids;
            Some(root)
        }
    }
}

struct Ctx<'a> {
    nodes: &'a [Node],
    children: &'a [Vec<usize>],
    started: &'a HashMap<usize, u32>,
    failures: &'a HashMap<(usize, u64), Vec<AttemptRecord>>,
    max_map_elements: usize,
    /// Levels shown below the top.
    depth: usize,
}

impl Ctx<'_> {
    /// When node `i` and everything under it ran.
    fn span(&self, i: usize) -> Option<(u64, u64)> {
        let r = &self.nodes[i].record;
        let own = r.start_us.zip(r.end_us);
        self.children[i]
            .iter()
            .fold(own, |acc, &c| merge(acc, self.span(c)))
    }

    /// How many nodes are under node `i`.
    fn below(&self, i: usize) -> usize {
        self.children[i].iter().map(|&c| 1 + self.below(c)).sum()
    }

    fn tree(&self, i: usize, parent_path: &str, level: usize) -> TreeNode {
        let n = &self.nodes[i];
        let r = &n.record;
        let name = r
            .path
            .strip_prefix(parent_path)
            .unwrap_or(&r.path)
            .trim_start_matches('/')
            .to_string();
        // A cached node is marked by the renderer, from `cached`.
        let mut kids = Vec::new();
        let mut elided = 0;
        let mut span = r.start_us.zip(r.end_us);
        for (k, &c) in self.children[i].iter().enumerate() {
            if level >= self.depth {
                span = merge(span, self.span(c));
                continue;
            }
            let failed = self.nodes[c].record.status == NodeStatus::Failed;
            if r.kind == "map" && k >= self.max_map_elements && !failed {
                elided += 1;
                span = merge(span, self.span(c));
                continue;
            }
            let t = self.tree(c, &r.path, level + 1);
            span = merge(span, t.start_us.zip(t.end_us));
            kids.push(t);
        }
        if level >= self.depth && !self.children[i].is_empty() {
            kids.push(hidden_marker(self.below(i)));
        }
        TreeNode {
            name,
            path: r.path.clone(),
            entity: r.entity.clone(),
            kind: r.kind.clone(),
            state: r.status.as_str().to_uppercase(),
            attempts: r.attempts,
            failed_attempts: self
                .failures
                .get(&(n.exec, r.key))
                .into_iter()
                .flatten()
                .map(|a| {
                    let dur = fmt_us(a.end_us.saturating_sub(a.start_us));
                    let msg = a.message.as_deref().unwrap_or(a.outcome.as_str());
                    format!("attempt {} ({dur}): {msg}", a.attempt)
                })
                .collect(),
            execution: self.started.get(&i).copied(),
            start_us: span.map(|(a, _)| a),
            end_us: span.map(|(_, b)| b),
            children: kids,
            elided,
            cached: r.cached,
            recovered: false,
            stdout: None,
            stderr: None,
            logs_dropped: 0,
            earlier_attempts: Vec::new(),
        }
    }
}

/// A line of the tree that is no node: the execution above a child execution's nodes, or
/// where `--depth` cut the tree.
fn blank(name: String, kind: &str, state: String) -> TreeNode {
    TreeNode {
        name,
        path: String::new(),
        entity: String::new(),
        kind: kind.to_string(),
        state,
        attempts: 0,
        failed_attempts: Vec::new(),
        execution: None,
        start_us: None,
        end_us: None,
        children: Vec::new(),
        elided: 0,
        cached: false,
        recovered: false,
        stdout: None,
        stderr: None,
        logs_dropped: 0,
        earlier_attempts: Vec::new(),
    }
}

fn hidden_marker(nodes: usize) -> TreeNode {
    let s = if nodes == 1 { "" } else { "s" };
    blank(
        format!("… {nodes} node{s} below (--depth)"),
        "",
        String::new(),
    )
}

/// The number ending a node's name, `add[3]` -> 3, `[7]` -> 7; names without one last.
fn ordinal(name: &str) -> u64 {
    name.strip_suffix(']')
        .and_then(|n| n.rsplit_once('['))
        .and_then(|(_, i)| i.parse().ok())
        .unwrap_or(u64::MAX)
}

fn merge(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary_and_say_so() {
        assert_eq!(clip("[1,2]".into()), "[1,2]");
        let long = format!("\"{}\"", "é".repeat(400));
        let cut = clip(long.clone());
        assert!(cut.starts_with(&long[..301]), "{cut}");
        assert!(cut.ends_with(&format!(
            "… ({} bytes in all; show --json prints everything)",
            long.len()
        )));
        assert_eq!(ordinal("add[3]"), 3);
        assert_eq!(ordinal("[7]"), 7);
        assert_eq!(ordinal("reduce"), u64::MAX);
    }
}
