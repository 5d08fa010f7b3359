//! What a durable store needs of a run, beyond its events: a stable key per node (the same in
//! a recovery of the run, in another process), the changes since the store last looked, and
//! a way to start a run that reuses what an earlier one already finished.
//!
//! A node's key is derived from content, not from arena order: the parent's key, the node's
//! name in its graph (entity and ordinal among same-entity siblings) or its map index. A
//! dynamic's children keep their keys in a recovery because the recovery reuses the graph the
//! dynamic returned instead of running it again.

use super::{Child, NodeId, Parent, Scheduler, State};
use crate::compile::{CompiledGraph, CONDITIONAL};
use sandflow_contract::{codec, CacheConfig, CallResult, EntityDecl, GraphSpec, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// One change a journaling run reports (see [`Scheduler::take_changes`]).
#[derive(Debug)]
pub enum Change {
    /// The node reached a state worth recording: it expanded (its children run), or it ended
    /// (succeeded, failed, skipped, aborted). A succeeded node carries its output, taken when
    /// it succeeded (a finished scope frees its nodes' outputs right after).
    Node { node: NodeId, output: Option<Value> },
    /// An attempt of a task or dynamic ended, with all it wrote (the run's in-memory log
    /// budget does not apply here: the store keeps logs on disk).
    Attempt {
        node: NodeId,
        attempt: u32,
        start_us: u64,
        end_us: u64,
        worker: Option<u16>,
        /// `None` for an attempt that answered; else whether it was the guest's fault, and why.
        failure: Option<(bool, String)>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// A dynamic's graph, compiled, as it was expanded.
    Graph {
        node: NodeId,
        graph: Arc<CompiledGraph>,
    },
    /// Cached task (or dynamic) `node` ran and succeeded: its result, for the task cache.
    Cache {
        node: NodeId,
        key: [u8; 32],
        result: CallResult,
    },
    /// Launch plan node `node`, running in execution `caller`, started child execution
    /// `execution`.
    Execution {
        execution: u32,
        node: NodeId,
        caller: u32,
    },
}

/// What an earlier run of the same entity on the same inputs finished: each succeeded node's
/// output (a task's, and a workflow's, launch plan's, dynamic's or map's, which stands for
/// everything under it) and each dynamic's graph, by node key. A run started with it reuses them instead of
/// running those nodes again (see [`Options::recovered`](super::Options::recovered)).
#[derive(Debug, Default)]
pub struct Recovered {
    pub outputs: HashMap<u64, RecordedOutput>,
    pub graphs: HashMap<u64, RecordedGraph>,
}

/// A recorded node output, as read or still encoded: a recovery decodes only the results it
/// reaches (a run killed at 90% recorded thousands under nodes that succeeded whole, which
/// stand for them). One that no longer decodes is not reused: its node runs again.
#[derive(Clone, Debug)]
pub enum RecordedOutput {
    /// The node had no output (a task returning nothing).
    Nothing,
    Value(Value),
    /// A value in the contract's codec.
    Encoded(Vec<u8>),
}

impl RecordedOutput {
    /// The output, `None` if it does not decode.
    pub fn get(&self) -> Option<Option<Value>> {
        match self {
            RecordedOutput::Nothing => Some(None),
            RecordedOutput::Value(v) => Some(Some(v.clone())),
            RecordedOutput::Encoded(b) => sandflow_contract::codec::decode(b).ok().map(Some),
        }
    }
}

impl From<Option<Value>> for RecordedOutput {
    fn from(v: Option<Value>) -> Self {
        v.map_or(RecordedOutput::Nothing, RecordedOutput::Value)
    }
}

/// A dynamic's recorded graph, as read or still encoded (see [`RecordedOutput`]).
#[derive(Clone, Debug)]
pub enum RecordedGraph {
    Graph(GraphSpec),
    Encoded(Vec<u8>),
}

impl RecordedGraph {
    /// The graph, `None` if it does not decode.
    pub fn get(&self) -> Option<GraphSpec> {
        match self {
            RecordedGraph::Graph(g) => Some(g.clone()),
            RecordedGraph::Encoded(b) => sandflow_contract::codec::decode(b).ok(),
        }
    }
}

impl From<GraphSpec> for RecordedGraph {
    fn from(g: GraphSpec) -> Self {
        RecordedGraph::Graph(g)
    }
}

/// How a node got its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// It ran (or has not ended yet).
    #[default]
    Ran,
    /// Served from the task cache, without a sandbox.
    Cached,
    /// Reused from the execution this run recovers.
    Recovered,
}

/// What a store records of one node.
#[derive(Debug)]
pub struct NodeView<'a> {
    pub key: u64,
    pub path: String,
    pub entity: &'a str,
    /// `task`, `workflow`, `dynamic`, `launch plan`, `conditional`, or `map`.
    pub kind: &'static str,
    pub state: State,
    pub attempts: u32,
    pub origin: Origin,
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    /// The worker that ran its latest attempt (none for what no sandbox ran).
    pub worker: Option<u16>,
    /// The child execution a launch plan node started.
    pub child_execution: Option<u32>,
    /// The execution the node runs in (0 is the top one).
    pub execution: u32,
}

/// The task cache's key for a call of `entity` on `inputs`, formed as Flyte forms it: the
/// task's name, its cache version, a hash of its interface and a hash of its input values,
/// leaving out the inputs `cache.ignore` names.
/// `interface` is [`interface_hash`] of `entity`, which a run works out once per entity.
pub fn cache_key(
    entity: &EntityDecl,
    cache: &CacheConfig,
    interface: &[u8; 32],
    inputs: &[Value],
) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"sandflow task cache v1\0");
    h.update(entity.name.as_bytes());
    h.update([0]);
    h.update(cache.version.as_bytes());
    h.update([0]);
    h.update(interface);
    let mut values = Sha256::new();
    for (p, v) in entity.interface.inputs.iter().zip(inputs) {
        if cache.ignore.contains(&p.name) {
            continue;
        }
        values.update(p.name.as_bytes());
        values.update([0]);
        if let Ok(bytes) = codec::encode(v) {
            values.update(&bytes);
        }
    }
    h.update(values.finalize());
    h.finalize().into()
}

/// The sha256 of `entity`'s encoded interface, a part of its cache keys. The codec's bytes
/// are deterministic: the same interface, the same bytes.
pub fn interface_hash(entity: &EntityDecl) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    match codec::encode(&entity.interface) {
        Ok(bytes) => Sha256::digest(&bytes).into(),
        // An interface the codec cannot encode has nothing to key on but its entity's name
        // (never seen: it was decoded from the same codec).
        Err(_) => [0; 32],
    }
}

/// FNV-1a, 64 bits: stable across processes, platforms and versions, which a hasher of the
/// standard library does not promise. Keys only need to tell a run's nodes apart.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

impl Scheduler {
    /// Turns the journal on: from now on, changes are kept for [`Scheduler::take_changes`].
    pub fn journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The changes since the last call (empty unless [`Scheduler::journal`] was called).
    pub fn take_changes(&mut self) -> Vec<Change> {
        match &mut self.journal {
            Some(j) => std::mem::take(j),
            None => Vec::new(),
        }
    }

    pub(super) fn journaling(&self) -> bool {
        self.journal.is_some()
    }

    pub(super) fn note(&mut self, change: Change) {
        if let Some(j) = &mut self.journal {
            j.push(change);
        }
    }

    /// Notes that `id` expanded or ended (without an output).
    pub(super) fn note_node(&mut self, id: NodeId) {
        if self.journaling() {
            self.note(Change::Node {
                node: id,
                output: None,
            });
        }
    }

    /// The node's stable key: the same for the same node in a recovery of this run.
    pub fn node_key(&self, id: NodeId) -> u64 {
        let n = &self.nodes[id as usize];
        match n.parent {
            Parent::Root => match &self.opts.placed {
                Some(p) => p.key,
                None => fnv(
                    FNV_OFFSET,
                    self.decl.entities[n.entity as usize].name.as_bytes(),
                ),
            },
            Parent::Scope(s, _) => {
                let parent = self.node_key(self.scopes[s.index()].owner);
                let h = fnv(parent, b"/");
                let h = fnv(h, self.node_name(id).as_bytes());
                fnv(h, &n.ordinal.to_le_bytes())
            }
            Parent::Map(m, i) => fnv(fnv(self.node_key(m), b"["), &i.to_le_bytes()),
        }
    }

    /// Node `id` as a store records it.
    pub fn node_view(&self, id: NodeId) -> NodeView<'_> {
        let n = &self.nodes[id as usize];
        let (kind, child_execution) = match &n.child {
            Child::Map(_) => ("map", None),
            Child::Exec(x, _) => (self.node_kind(id), Some(*x)),
            _ => (self.node_kind(id), None),
        };
        NodeView {
            key: self.node_key(id),
            path: self.path(id),
            entity: self.node_name(id),
            kind,
            state: match n.state {
                State::Aborting => State::Aborted,
                s => s,
            },
            // A delegated launch plan call's attempt is its child execution, which records
            // its own tasks: the call itself counts as none, as an expanded call does.
            attempts: if self.delegated_calls > 0 && self.decl.is_launch_plan(n.entity) {
                0
            } else {
                n.attempts
            },
            origin: n.origin,
            start_us: n.timing.map(|t| t.start_us),
            worker: (n.worker != u16::MAX).then_some(n.worker),
            end_us: n.timing.map(|t| t.end_us),
            child_execution,
            execution: n.exec,
        }
    }

    /// The inputs of the child execution launch plan node `id` started (its workflow's
    /// inputs, in interface order).
    pub fn child_inputs(&self, id: NodeId) -> Option<&[Value]> {
        match self.nodes.get(id as usize)?.child {
            Child::Exec(_, s) => Some(&self.scopes[s.index()].inputs),
            _ => None,
        }
    }

    /// How many nodes the run has made.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The group node `id` is a member of, as a number: the map it is an element of, or the
    /// graph and entity of a call made more than once in one graph (named `entity[i]`);
    /// `None` for a node named once. The members of a group share a path but for their `[i]`;
    /// the index `i` comes with the group.
    pub fn node_group(&self, id: NodeId) -> Option<(u64, u32)> {
        let n = &self.nodes[id as usize];
        match n.parent {
            Parent::Map(m, i) => Some((1 << 63 | u64::from(m), i)),
            Parent::Scope(s, _) if n.ordinal != u32::MAX && n.entity != CONDITIONAL => {
                Some(((s.index() as u64) << 32 | u64::from(n.entity), n.ordinal))
            }
            _ => None,
        }
    }

    /// The node `id` hangs under: its map, or the owner of its graph (`None` for the top).
    pub fn node_parent(&self, id: NodeId) -> Option<NodeId> {
        match self.nodes[id as usize].parent {
            Parent::Root => None,
            Parent::Map(m, _) => Some(m),
            Parent::Scope(s, _) => Some(self.scopes[s.index()].owner),
        }
    }

    /// Where node `id` is in its life.
    pub fn node_state(&self, id: NodeId) -> State {
        self.nodes[id as usize].state
    }

    /// The execution node `id` runs in (0 is the top one).
    pub fn node_execution(&self, id: NodeId) -> u32 {
        self.nodes[id as usize].exec
    }

    /// Nodes reused from the execution this run recovers, and nodes served from the cache.
    pub fn reused(&self) -> (u64, u64) {
        self.nodes.iter().fold((0, 0), |(r, c), n| match n.origin {
            Origin::Recovered => (r + 1, c),
            Origin::Cached => (r, c + 1),
            Origin::Ran => (r, c),
        })
    }

    /// Node `id`, about to start: if the execution this run recovers recorded its output,
    /// it succeeds with it (origin `recovered`) and nothing under it runs. Returns whether it
    /// did.
    pub(super) fn reuse_output(&mut self, id: NodeId) -> bool {
        let Some(rec) = self.opts.recovered.clone() else {
            return false;
        };
        let Some(out) = rec.outputs.get(&self.node_key(id)).and_then(|o| o.get()) else {
            return false;
        };
        self.nodes[id as usize].origin = Origin::Recovered;
        self.succeed_node(id, out);
        true
    }

    /// A task or dynamic about to be queued: if the execution this run recovers finished it,
    /// take its result instead (a task's output, a dynamic's graph). Returns whether it did.
    pub(super) fn reuse_recorded(&mut self, id: NodeId, dynamic: bool) -> bool {
        let Some(rec) = self.opts.recovered.clone() else {
            return false;
        };
        let key = self.node_key(id);
        if dynamic {
            let Some(g) = rec.graphs.get(&key).and_then(|g| g.get()) else {
                return false;
            };
            self.nodes[id as usize].origin = Origin::Recovered;
            if self.expand_dynamic(id, g).is_err() {
                // The recorded graph no longer compiles (the module changed): run the dynamic.
                self.nodes[id as usize].origin = Origin::Ran;
                return false;
            }
            true
        } else {
            let Some(out) = rec.outputs.get(&key).and_then(|o| o.get()) else {
                return false;
            };
            self.nodes[id as usize].origin = Origin::Recovered;
            self.succeed_node(id, out);
            true
        }
    }
}
