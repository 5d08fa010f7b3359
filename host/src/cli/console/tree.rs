//! An execution tree as the console reads it: every node of the execution and of its child
//! executions, each level's children in display order, read in one pass and kept while the
//! tree is settled.
//!
//! A tree with a group of many nodes (a map's elements, one entity called many times: see
//! [`NodeGroup`]) is read in parts. Its groups come from the summaries its runs wrote when
//! they ended; the tree is read without their members (one filtered pass, no index), each
//! level counts a group by its summary, a page of members is a query of its own, and a
//! member's own nodes are a part read when someone opens it. So a million-element map costs
//! its page a few queries, not a million rows.

use super::api::ApiError;
use crate::cli::store::descendants;
use axum::http::StatusCode;
use sandflow_host::store::{
    AnyStore, ExecStatus, ExecutionSummary, NodeGroup, NodeQuery, NodeRecord, NodeStatus, StoreRead,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A node of the execution's tree and the execution that recorded it (the execution itself
/// or one of its child executions: their nodes hang under the launch plan node that called
/// them, as `sandflow show` draws them).
#[derive(Clone)]
pub(super) struct Found {
    pub(super) exec: Arc<ExecutionSummary>,
    pub(super) record: NodeRecord,
}

/// A group of the tree and the execution that recorded its members.
#[derive(Clone)]
pub(super) struct Grouped {
    pub(super) exec: Arc<ExecutionSummary>,
    pub(super) group: NodeGroup,
}

impl Grouped {
    /// Its members that did not fail nor stay expanded: those a page lists after the failed.
    pub(super) fn listed_ok(&self) -> u64 {
        let n = |s: NodeStatus| self.group.phases.get(s.as_str()).copied().unwrap_or(0);
        self.group
            .total
            .saturating_sub(n(NodeStatus::Failed) + n(NodeStatus::Expanded))
    }

    pub(super) fn failed(&self) -> u64 {
        let failed = NodeStatus::Failed.as_str();
        self.group.phases.get(failed).copied().unwrap_or(0)
    }

    /// The member `path` is in (itself or a node below it), if any.
    fn member_of<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.group.prefix.as_str())?;
        let rest = rest.strip_prefix('[')?;
        let end = rest.find(']')?;
        rest[..end]
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then_some(())?;
        Some(&path[..self.group.prefix.len() + end + 2])
    }

    /// Whether its members may have nodes below them (a task has none).
    pub(super) fn members_nest(&self) -> bool {
        self.group.nested && self.group.kind != "task"
    }
}

/// A page of `g`'s failed members (`failed`) or of the others, in index order, as the
/// level lists them: `skip` of them, then up to `take`.
pub(super) fn members_page(
    store: &AnyStore,
    g: &Grouped,
    failed: bool,
    skip: u64,
    take: u64,
    outputs: bool,
) -> Result<Vec<NodeRecord>, ApiError> {
    let (Some(failed_at), true) = (&g.group.failed, g.group.contiguous) else {
        // Found by their order in the store: a pass over the execution's rows.
        let q = NodeQuery {
            members: Some(g.group.prefix.clone()),
            failed: Some(failed),
            limit: Some(take),
            offset: skip,
            outputs,
            ..NodeQuery::default()
        };
        return Ok(store.nodes_where(&g.exec.id, &q)?);
    };
    let indices: Vec<u64> = if failed {
        failed_at
            .iter()
            .skip(skip as usize)
            .take(take as usize)
            .copied()
            .collect()
    } else {
        ok_indices(failed_at, skip, take, g.group.total)
    };
    fetch_by_index(store, g, &indices, Some(failed), outputs)
}

/// The indices, in `0..total`, of the `skip`-th member not in `failed` (sorted) and of the
/// ones after it: `take` at most.
fn ok_indices(failed: &[u64], skip: u64, take: u64, total: u64) -> Vec<u64> {
    let (mut i, mut f) = (skip, 0);
    while f < failed.len() && failed[f] <= i {
        i += 1;
        f += 1;
    }
    let mut out = Vec::new();
    while (out.len() as u64) < take && i < total {
        if f < failed.len() && failed[f] == i {
            f += 1;
        } else {
            out.push(i);
        }
        i += 1;
    }
    out
}

/// `g`'s members at `indices` (ascending), those that failed or not as `failed` says, by
/// their paths. Looked for first where their rows should be (a group's members are written
/// about in index order), then in a window 8 times as wide, until all are found or the window
/// holds every row of the execution: a page costs a few thousand rows, not a pass.
fn fetch_by_index(
    store: &AnyStore,
    g: &Grouped,
    indices: &[u64],
    failed: Option<bool>,
    outputs: bool,
) -> Result<Vec<NodeRecord>, ApiError> {
    let (Some(&first), Some(&last)) = (indices.first(), indices.last()) else {
        return Ok(Vec::new());
    };
    let prefix = &g.group.prefix;
    let mut q = NodeQuery {
        paths: Some(indices.iter().map(|i| format!("{prefix}[{i}]")).collect()),
        failed,
        outputs,
        ..NodeQuery::default()
    };
    let mut rows = match store.row_span(&g.exec.id)? {
        None => store.nodes_where(&g.exec.id, &q)?,
        Some((lo, hi)) => {
            let at = (first + last) as f64 / 2.0 / g.group.total.max(1) as f64;
            let center = lo + ((hi - lo) as f64 * at) as i64;
            let mut half = (4 * indices.len() as i64).max(2_000);
            loop {
                let window = (center.saturating_sub(half), center.saturating_add(half));
                q.rows = Some(window);
                let rows = store.nodes_where(&g.exec.id, &q)?;
                if rows.len() >= indices.len() || (window.0 <= lo && window.1 >= hi) {
                    break rows;
                }
                half = half.saturating_mul(8);
            }
        }
    };
    rows.sort_by(|a, b| (a.path.len(), &a.path).cmp(&(b.path.len(), &b.path)));
    Ok(rows)
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

/// An execution tree's nodes (or a part of them: the nodes of one group member) with each
/// level's children in display order: failed first (what one opens the console for), then as
/// people count (`t[2]` before `t[10]`). Built in one pass, so a level of many nodes is a
/// slice, not a sort per request.
pub(super) struct Levels {
    pub(super) exec: ExecutionSummary,
    /// The executions of the tree: the top one, then its descendants.
    pub(super) execs: Vec<Arc<ExecutionSummary>>,
    pub(super) all: Vec<Found>,
    /// Path -> index into `all`.
    pub(super) by_path: HashMap<String, usize>,
    /// Parent path ("" for the top) -> indices into `all`.
    pub(super) children: HashMap<String, Vec<usize>>,
    /// Parent path -> its children's count per status (its groups' included), so a map's
    /// counts cost no pass.
    pub(super) phases: HashMap<String, BTreeMap<String, u64>>,
    /// Every group of the tree (a part keeps the whole tree's list).
    every_group: Arc<Vec<Grouped>>,
    /// The groups whose members this part leaves out: those not inside another's member.
    pub(super) groups: Vec<Grouped>,
    /// Parent path -> indices into `groups`: the groups among that level's children.
    pub(super) groups_at: HashMap<String, Vec<usize>>,
    /// The group member this part holds, `None` for the tree without its groups' members.
    base: Option<String>,
    /// Whether `all` holds the nodes' outputs: a tree read in parts reads them per node
    /// when asked (its map node's output alone can be a million items).
    outputs: bool,
}

impl Levels {
    fn read(store: &AnyStore, id: &str) -> Result<Levels, ApiError> {
        let exec = store.execution(id)?.summary;
        let mut execs = vec![Arc::new(exec.clone())];
        execs.extend(descendants(store, &exec.id)?.into_iter().map(Arc::new));
        let mut groups = Vec::new();
        for s in &execs {
            if s.status == ExecStatus::Running {
                continue;
            }
            if let Some(t) = store.tree_summary(&s.id)? {
                groups.extend(t.groups.into_iter().map(|group| Grouped {
                    exec: s.clone(),
                    group,
                }));
            }
        }
        Levels::assemble(store, exec, execs, Arc::new(groups), None)
    }

    /// Reads the part of the tree at `base` (a group member; the whole tree if `None`),
    /// leaving out the members of the groups in it.
    fn assemble(
        store: &AnyStore,
        exec: ExecutionSummary,
        execs: Vec<Arc<ExecutionSummary>>,
        every_group: Arc<Vec<Grouped>>,
        base: Option<String>,
    ) -> Result<Levels, ApiError> {
        let inside = |p: &str| {
            base.as_deref().is_none_or(|b| {
                p.strip_prefix(b)
                    .is_some_and(|rest| rest.starts_with(['/', '[']))
            })
        };
        let here: Vec<&Grouped> = every_group
            .iter()
            .filter(|g| inside(&g.group.prefix))
            .collect();
        let groups: Vec<Grouped> = here
            .iter()
            .filter(|g| !here.iter().any(|o| o.member_of(&g.group.prefix).is_some()))
            .map(|g| (*g).clone())
            .collect();
        let except: Vec<String> = groups.iter().map(|g| g.group.prefix.clone()).collect();
        // A member that is a task is one row: found by its path where it should be.
        if let Some(b) = &base {
            let single = every_group
                .iter()
                .find(|g| g.member_of(b) == Some(b.as_str()) && g.group.kind == "task");
            if let (Some(g), true) = (single, groups.is_empty()) {
                let index = b[g.group.prefix.len() + 1..b.len() - 1].parse::<u64>().ok();
                if let Some(index) = index {
                    let rows = fetch_by_index(store, g, &[index], None, true)?;
                    let all = rows
                        .into_iter()
                        .map(|record| Found {
                            exec: g.exec.clone(),
                            record,
                        })
                        .collect();
                    return Ok(Levels::build(
                        exec,
                        execs,
                        every_group.clone(),
                        Vec::new(),
                        base,
                        all,
                        true,
                    ));
                }
            }
        }
        let mut all: Vec<Found> = Vec::new();
        let whole = except.is_empty() && base.is_none();
        for s in &execs {
            let nodes = if whole {
                store.nodes(&s.id)?
            } else {
                store.nodes_where(
                    &s.id,
                    &NodeQuery {
                        under: base.clone(),
                        except: except.clone(),
                        ..NodeQuery::default()
                    },
                )?
            };
            all.extend(nodes.into_iter().map(|record| Found {
                exec: s.clone(),
                record,
            }));
        }
        Ok(Levels::build(
            exec,
            execs,
            every_group,
            groups,
            base,
            all,
            whole,
        ))
    }

    /// The levels of `all` (and of `groups`, left out of it).
    fn build(
        exec: ExecutionSummary,
        execs: Vec<Arc<ExecutionSummary>>,
        every_group: Arc<Vec<Grouped>>,
        groups: Vec<Grouped>,
        base: Option<String>,
        all: Vec<Found>,
        outputs: bool,
    ) -> Levels {
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
        let mut phases: HashMap<String, BTreeMap<String, u64>> = children
            .iter()
            .map(|(parent, list)| {
                let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                for &i in list {
                    *counts
                        .entry(all[i].record.status.as_str().to_string())
                        .or_default() += 1;
                }
                (parent.clone(), counts)
            })
            .collect();
        let mut groups_at: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            // A map's elements hang under the map; one entity's calls under their graph's
            // owner (the longest recorded prefix, as for any node).
            let prefix = g.group.prefix.as_str();
            let up = if by_path.contains_key(prefix) {
                prefix
            } else {
                parent_of(prefix, |p| by_path.contains_key(p)).unwrap_or("")
            };
            groups_at.entry(up.to_string()).or_default().push(i);
            let counts = phases.entry(up.to_string()).or_default();
            for (status, n) in &g.group.phases {
                *counts.entry(status.clone()).or_default() += n;
            }
        }
        for list in groups_at.values_mut() {
            list.sort_by_cached_key(|&i| natural_key(&groups[i].group.prefix));
        }
        Levels {
            exec,
            execs,
            all,
            by_path,
            children,
            phases,
            every_group,
            groups,
            groups_at,
            base,
            outputs,
        }
    }

    /// Whether `all` holds outputs (see [`with_output`]).
    pub(super) fn has_outputs(&self) -> bool {
        self.outputs
    }

    pub(super) fn get(&self, path: &str) -> Option<&Found> {
        self.by_path.get(path).map(|&i| &self.all[i])
    }

    /// Whether the node at `path` has nodes below it.
    pub(super) fn has_children(&self, path: &str) -> bool {
        self.children.contains_key(path) || self.groups_at.contains_key(path)
    }

    /// The member of one of this part's groups that `path` is in, with the group.
    fn member_holding<'p>(&self, path: &'p str) -> Option<&'p str> {
        self.groups.iter().find_map(|g| g.member_of(path))
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
pub(super) enum Chunk<'a> {
    Num(u128),
    Text(&'a str),
}

pub(super) fn natural_key(path: &str) -> Vec<Chunk<'_>> {
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

/// The parts last asked for, settled ones only (a running tree is read on every request: it
/// changes): paging through a big level, or opening its members one after another, reads
/// the store once per part.
static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());
/// A kept part: the execution id it was asked by, its base, and the part.
type Kept = (String, Option<String>, Arc<Levels>);
const KEPT_PARTS: usize = 8;

fn kept(id: &str, base: Option<&str>) -> Option<Arc<Levels>> {
    let kept = KEPT.lock().ok()?;
    kept.iter()
        .find(|(i, b, _)| i == id && b.as_deref() == base)
        .map(|(_, _, l)| l.clone())
}

fn keep(id: &str, base: Option<&str>, l: &Arc<Levels>) {
    if !l.settled() {
        return;
    }
    if let Ok(mut kept) = KEPT.lock() {
        kept.retain(|(i, b, _)| !(i == id && b.as_deref() == base));
        kept.insert(0, (id.to_string(), base.map(str::to_string), l.clone()));
        kept.truncate(KEPT_PARTS);
    }
}

/// The tree of execution `id` (id or prefix), without its groups' members.
pub(super) fn levels(store: &AnyStore, id: &str) -> Result<Arc<Levels>, ApiError> {
    if let Some(l) = kept(id, None) {
        return Ok(l);
    }
    let l = Arc::new(Levels::read(store, id)?);
    // Kept under its full id: a later request by another prefix reads it again, once.
    keep(l.exec.id.as_str(), None, &l);
    if l.exec.id.as_str() != id {
        keep(id, None, &l);
    }
    Ok(l)
}

/// The part of `tree` that holds the node at `path`: `tree` itself, or the part of the
/// group member `path` is in (or below), read on first need.
pub(super) fn part_for(
    store: &AnyStore,
    tree: &Arc<Levels>,
    path: &str,
) -> Result<Arc<Levels>, ApiError> {
    let mut part = tree.clone();
    // A member of a group inside another group's member is found part by part.
    while let Some(member) = part.member_holding(path) {
        let id = part.exec.id.as_str().to_string();
        let next = match kept(&id, Some(member)) {
            Some(l) => l,
            None => {
                let l = Arc::new(Levels::assemble(
                    store,
                    part.exec.clone(),
                    part.execs.clone(),
                    part.every_group.clone(),
                    Some(member.to_string()),
                )?);
                keep(&id, Some(member), &l);
                l
            }
        };
        if next.base.as_deref() == part.base.as_deref() {
            break;
        }
        part = next;
    }
    Ok(part)
}

/// A node of a tree, wherever it is: in the tree itself or in a part.
pub(super) struct NodeRef {
    part: Arc<Levels>,
    at: usize,
}

impl NodeRef {
    /// Its record with its output, read now if its part was read without outputs.
    pub(super) fn with_output(&self, store: &AnyStore) -> Result<NodeRecord, ApiError> {
        with_output(store, self, self.part.outputs)
    }
}

/// `n`'s record with its output: `n`'s own if `read` (its part was read with outputs), else
/// read from the store.
pub(super) fn with_output(store: &AnyStore, n: &Found, read: bool) -> Result<NodeRecord, ApiError> {
    if read {
        return Ok(n.record.clone());
    }
    let q = NodeQuery {
        path: Some(n.record.path.clone()),
        outputs: true,
        ..NodeQuery::default()
    };
    let mut rows = store.nodes_where(&n.exec.id, &q)?;
    Ok(rows.pop().unwrap_or_else(|| n.record.clone()))
}

impl std::ops::Deref for NodeRef {
    type Target = Found;
    fn deref(&self) -> &Found {
        &self.part.all[self.at]
    }
}

/// The node at `path` in `tree`, read from its part if it is a group's member or below one.
pub(super) fn lookup(
    store: &AnyStore,
    tree: &Arc<Levels>,
    path: &str,
) -> Result<Option<NodeRef>, ApiError> {
    let part = part_for(store, tree, path)?;
    Ok(part.by_path.get(path).map(|&at| NodeRef {
        part: part.clone(),
        at,
    }))
}

/// `lookup`, with a 404 naming the node when it is not there.
pub(super) fn lookup_or_404(
    store: &AnyStore,
    tree: &Arc<Levels>,
    path: &str,
) -> Result<NodeRef, ApiError> {
    lookup(store, tree, path)?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("execution {} has no node {path:?}", tree.exec.id),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{natural_key, ok_indices, parent_of};
    use std::collections::HashSet;

    #[test]
    fn the_kth_member_that_did_not_fail_skips_those_that_did() {
        assert_eq!(ok_indices(&[], 0, 3, 10), [0, 1, 2]);
        assert_eq!(ok_indices(&[0], 0, 3, 10), [1, 2, 3]);
        assert_eq!(ok_indices(&[1, 2], 1, 3, 10), [3, 4, 5]);
        assert_eq!(ok_indices(&[1, 2, 9], 5, 10, 10), [7, 8]);
        assert_eq!(ok_indices(&[3], 2, 2, 10), [2, 4]);
        assert_eq!(ok_indices(&[0, 1], 8, 2, 10), Vec::<u64>::new());
        // The reference: every index not failed, in order.
        let failed = [2, 3, 7, 11, 12, 13];
        let ok: Vec<u64> = (0..20).filter(|i| !failed.contains(i)).collect();
        for skip in 0..16 {
            for take in 0..5 {
                let want: Vec<u64> = ok.iter().skip(skip).take(take).copied().collect();
                assert_eq!(ok_indices(&failed, skip as u64, take as u64, 20), want);
            }
        }
    }

    #[test]
    fn map_elements_order_by_their_index() {
        let mut paths = vec!["m[10]", "m[2]", "m[1]/t", "m[1]", "a[0]"];
        paths.sort_by_cached_key(|p| natural_key(p));
        assert_eq!(paths, ["a[0]", "m[1]", "m[1]/t", "m[2]", "m[10]"]);
    }

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
