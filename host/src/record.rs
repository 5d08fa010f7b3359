//! Records a run in the execution store as it goes (a [`RunObserver`] of the runner): the
//! module and the execution when it starts; after each driver step, what the scheduler's
//! journal says changed (nodes, attempts with their output, dynamics' graphs, child
//! executions) and the events it was fed, in one batch the store's writer commits as one
//! transaction; and how it ended.
//!
//! Nothing here waits for the disk: the store's writer thread does. A write that fails is
//! reported when the run ends ([`Recorder::close`]); what was committed before stays.

use crate::module::ModuleDecl;
use crate::runner::RunObserver;
use crate::scheduler::{Change, Event, Failure, NodeId, Origin, Scheduler, State};
use crate::store::{
    AttemptOutcome, AttemptRecord, CacheRecord, EntityRecord, ExecStatus, ExecutionEnd,
    ExecutionId, ModuleRecord, NewExecution, NodeGroup, NodeRecord, NodeStatus, Owner, Store,
    StoreError, TaskCounts, TreeSummary, WriteOp,
};
use sandflow_contract::{codec, CallResult, EntityKind, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as the store keeps times.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The store's record of a module: its bytes (a recovery runs them even after the file moved)
/// under their sha256, and each entity's interface (to type what `show` prints).
pub fn module_record(bytes: &[u8], decl: &ModuleDecl) -> ModuleRecord {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ModuleRecord {
        digest,
        bytes: bytes.to_vec(),
        entities: decl
            .entities
            .iter()
            .map(|e| EntityRecord {
                name: e.name.clone(),
                kind: e.kind.name().to_string(),
                interface: e.interface.clone(),
            })
            .collect(),
    }
}

/// The recorder of one run (its top execution and every child execution under it).
pub struct Recorder {
    store: Arc<dyn Store>,
    /// The execution this records.
    root: ExecutionId,
    /// The top execution of its tree: itself, or its caller's for a delegated child.
    tree_root: ExecutionId,
    module: String,
    owner: Owner,
    /// Execution ids by the scheduler's execution index (0 is the top one).
    execs: Vec<Option<ExecutionId>>,
    /// The events of the current step, encoded one after another.
    events: Vec<u8>,
    /// Events recorded so far (the next one's sequence number).
    seq: u64,
    /// The sequence number of the first event in `events`.
    first: u64,
    ops: Vec<WriteOp>,
    /// Set by `finish`: how the top execution ended.
    ended: Option<ExecStatus>,
    /// A delegated child execution's run (`Options::placed`): its top node is the caller's
    /// launch plan node, which the caller records; this records what is under it.
    placed: bool,
    /// Per node, what its last row said ([`row_code`]; 0 for a node with no row): what the
    /// summaries written at the end count, a byte per node.
    recorded: Vec<u8>,
}

/// A node row as [`Recorder::recorded`] keeps it: its status's place in `NodeStatus::ALL`
/// plus one, with [`TASK`] and [`CACHED`].
fn row_code(r: &NodeRecord) -> u8 {
    let status = NodeStatus::ALL
        .iter()
        .position(|s| *s == r.status)
        .unwrap_or(0) as u8
        + 1;
    let task = if r.attempts > 0 || r.cached { TASK } else { 0 };
    status | task | if r.cached { CACHED } else { 0 }
}

/// A node that counts as a task execution (it ran in a sandbox or came from the cache).
const TASK: u8 = 0x10;
const CACHED: u8 = 0x20;

fn code_status(code: u8) -> Option<NodeStatus> {
    NodeStatus::ALL
        .get(((code & 0x0f) as usize).checked_sub(1)?)
        .copied()
}

/// One group's tally while [`Recorder::summaries`] counts.
struct Tally {
    exec: u32,
    first: NodeId,
    total: u64,
    phases: [u64; 16],
    nested: bool,
    /// The highest index seen, and whether one came twice.
    max_index: u32,
    /// The failed members' indices, while at most `NodeGroup::MAX_FAILED_LISTED`.
    failed: Option<Vec<u64>>,
}

/// Where a delegated child execution is recorded: under its caller's execution.
pub struct ChildOf {
    /// The new execution's id (chosen by the caller: see `ExecutionId::derived`).
    pub id: ExecutionId,
    /// The caller's execution, and the top execution of the caller's tree.
    pub parent: ExecutionId,
    pub root: ExecutionId,
    /// The stored module it runs (the caller recorded it).
    pub module: String,
}

impl Recorder {
    /// Records `module` and the start of a run of `entity` on `inputs` (interface order),
    /// recovering `recovered_from` if given; returns the recorder, whose
    /// [`Recorder::execution`] is the new execution's id.
    pub fn start(
        store: Arc<dyn Store>,
        module: ModuleRecord,
        entity: &str,
        inputs: &[Value],
        recovered_from: Option<ExecutionId>,
    ) -> Recorder {
        let root = ExecutionId::generate();
        let at = ChildOf {
            id: root.clone(),
            parent: root.clone(),
            root,
            module: module.digest.clone(),
        };
        Recorder::begin(store, at, Some(module), entity, inputs, recovered_from)
    }

    /// Records the start of a delegated child execution of `entity` on `inputs`, recovering
    /// `recovered_from` if given (its module is already stored).
    pub fn start_child(
        store: Arc<dyn Store>,
        at: ChildOf,
        entity: &str,
        inputs: &[Value],
        recovered_from: Option<ExecutionId>,
    ) -> Recorder {
        Recorder::begin(store, at, None, entity, inputs, recovered_from)
    }

    /// A top execution (`at.parent` is itself, and `module` is stored with its start) or a
    /// delegated child execution (placed under its caller).
    fn begin(
        store: Arc<dyn Store>,
        at: ChildOf,
        module: Option<ModuleRecord>,
        entity: &str,
        inputs: &[Value],
        recovered_from: Option<ExecutionId>,
    ) -> Recorder {
        let owner = Owner::for_run();
        let placed = at.parent != at.id;
        let start = WriteOp::StartExecution(NewExecution {
            id: at.id.clone(),
            parent: placed.then(|| at.parent.clone()),
            root: at.root.clone(),
            entity: entity.to_string(),
            module: at.module.clone(),
            inputs: Value::List(inputs.to_vec()),
            started_ms: now_ms(),
            owner: owner.clone(),
            recovered_from,
        });
        // One batch: a prune in another process cannot remove the module in between.
        match module {
            Some(m) => store.write_batch(vec![WriteOp::PutModule(m), start]),
            None => store.write(start),
        }
        Recorder {
            store,
            tree_root: at.root,
            root: at.id.clone(),
            module: at.module,
            owner,
            execs: vec![Some(at.id)],
            events: Vec::new(),
            seq: 0,
            first: 0,
            ops: Vec::new(),
            ended: None,
            placed,
            recorded: Vec::new(),
        }
    }

    /// The id of the execution being recorded.
    pub fn execution(&self) -> &ExecutionId {
        &self.root
    }

    /// The digest of the stored module it runs.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The top execution of its tree: itself, or its caller's for a delegated child.
    pub fn tree_root(&self) -> &ExecutionId {
        &self.tree_root
    }

    /// Waits until everything is committed; the store's first write error, if any.
    pub fn close(&self) -> Result<(), StoreError> {
        self.store.flush()
    }

    fn exec_id(&self, exec: u32) -> ExecutionId {
        self.execs
            .get(exec as usize)
            .cloned()
            .flatten()
            .unwrap_or_else(|| self.root.clone())
    }

    /// Turns what the scheduler's journal says changed into write operations.
    fn drain(&mut self, sched: &mut Scheduler) {
        for change in sched.take_changes() {
            match change {
                Change::Node { node, output } => self.node(sched, node, output),
                Change::Attempt {
                    node,
                    attempt,
                    start_us,
                    end_us,
                    worker,
                    failure,
                    stdout,
                    stderr,
                } => {
                    // A first attempt that answered and wrote nothing says no more than its
                    // node's row (attempts 1, its times): half the rows of a run of small
                    // tasks. Failures, retries and output are kept.
                    if failure.is_none() && attempt == 1 && stdout.is_empty() && stderr.is_empty() {
                        continue;
                    }
                    let execution = self.exec_id(sched.node_execution(node));
                    let key = sched.node_key(node);
                    let (outcome, message) = match failure {
                        None => (AttemptOutcome::Ok, None),
                        Some((_, m)) if m.starts_with("aborted") => {
                            (AttemptOutcome::Aborted, Some(m))
                        }
                        Some((true, m)) => (AttemptOutcome::User, Some(m)),
                        Some((false, m)) => (AttemptOutcome::System, Some(m)),
                    };
                    self.ops.push(WriteOp::Attempt {
                        execution: execution.clone(),
                        attempt: AttemptRecord {
                            node: key,
                            attempt,
                            start_us,
                            end_us,
                            outcome,
                            message,
                            worker: worker.map(u32::from),
                        },
                    });
                    if !stdout.is_empty() || !stderr.is_empty() {
                        self.ops.push(WriteOp::Logs {
                            execution,
                            node: key,
                            attempt,
                            stdout,
                            stderr,
                        });
                    }
                }
                Change::Cache { node, key, result } => {
                    let v = sched.node_view(node);
                    let version = match sched.decl().get(v.entity).map(|e| &e.kind) {
                        Some(EntityKind::Task(c) | EntityKind::Dynamic(c)) => {
                            c.cache.as_ref().map(|c| c.version.clone())
                        }
                        _ => None,
                    };
                    let (Some(cache_version), Ok(bytes)) = (version, codec::encode(&result)) else {
                        continue;
                    };
                    self.ops.push(WriteOp::CachePut(CacheRecord {
                        key: key.to_vec(),
                        task: v.entity.to_string(),
                        cache_version,
                        output: Value::Bytes(bytes),
                        created_ms: now_ms(),
                        execution: self.exec_id(v.execution),
                        node: v.key,
                    }));
                }
                Change::Graph { node, graph } => {
                    self.ops.push(WriteOp::Graph {
                        execution: self.exec_id(sched.node_execution(node)),
                        node: sched.node_key(node),
                        graph: graph.spec.clone(),
                    });
                }
                Change::Execution {
                    execution,
                    node,
                    caller,
                } => {
                    let id = ExecutionId::generate();
                    let index = execution as usize;
                    if self.execs.len() <= index {
                        self.execs.resize(index + 1, None);
                    }
                    self.execs[index] = Some(id.clone());
                    let inputs = sched.child_inputs(node).unwrap_or_default().to_vec();
                    let entity = sched.node_view(node).entity.to_string();
                    self.ops.push(WriteOp::StartExecution(NewExecution {
                        id,
                        parent: Some(self.exec_id(caller)),
                        root: self.tree_root.clone(),
                        entity,
                        module: self.module.clone(),
                        inputs: Value::List(inputs),
                        started_ms: now_ms(),
                        owner: self.owner.clone(),
                        recovered_from: None,
                    }));
                }
            }
        }
        // A delegated child execution (a few tasks, run whole by one worker) keeps its event
        // log until it ends and writes it as one row: a row per step was most of the rows its
        // worker wrote. Its recovery needs only its node rows, which go as they come.
        let hold = self.placed && self.ended.is_none();
        if !self.events.is_empty() && !hold {
            self.ops.push(WriteOp::Events {
                execution: self.root.clone(),
                seq: self.first,
                bytes: std::mem::take(&mut self.events),
            });
        }
        if !self.ops.is_empty() {
            self.store.write_batch(std::mem::take(&mut self.ops));
        }
    }

    /// A node expanded or ended: its row, and for a launch plan node that ended, the end of
    /// the child execution it started.
    fn node(&mut self, sched: &Scheduler, node: NodeId, output: Option<Value>) {
        if self.placed && node == 0 {
            return;
        }
        let v = sched.node_view(node);
        let status = match v.state {
            State::Waiting | State::Queued => NodeStatus::Queued,
            State::Running => NodeStatus::Running,
            State::Expanded => NodeStatus::Expanded,
            State::Succeeded => NodeStatus::Succeeded,
            State::Failed => NodeStatus::Failed,
            State::Skipped => NodeStatus::Skipped,
            State::Aborting | State::Aborted => NodeStatus::Aborted,
        };
        if let Some(child) = v.child_execution.filter(|_| status != NodeStatus::Expanded) {
            let end = ExecutionEnd {
                status: match status {
                    NodeStatus::Succeeded => ExecStatus::Succeeded,
                    NodeStatus::Failed => ExecStatus::Failed,
                    _ => ExecStatus::Cancelled,
                },
                ended_ms: now_ms(),
                error: None,
                output: output.clone(),
            };
            self.ops.push(WriteOp::FinishExecution {
                execution: self.exec_id(child),
                end,
            });
        }
        if status == NodeStatus::Expanded && v.child_execution.is_some() {
            // A launch plan call that started its child execution: that execution's own row
            // says it runs; the node's row is written when it ends (one row, not two, for
            // each of a run's thousands of launch plan calls).
            return;
        }
        let record = NodeRecord {
            key: v.key,
            path: v.path,
            entity: v.entity.to_string(),
            kind: v.kind.to_string(),
            status,
            attempts: v.attempts,
            output,
            cached: v.origin == Origin::Cached,
            start_us: v.start_us,
            end_us: v.end_us,
            worker: v.worker.map(u32::from),
        };
        let execution = self.exec_id(v.execution);
        let at = node as usize;
        if self.recorded.len() <= at {
            self.recorded.resize(at + 1, 0);
        }
        self.recorded[at] = row_code(&record);
        self.ops.push(WriteOp::Node {
            execution,
            node: record,
        });
    }

    /// What this run writes into its executions' rows when it ends: the top execution's task
    /// counts and groups (see [`NodeGroup`]), and those of each child execution with a group
    /// or at least [`NodeGroup::MIN`] task executions (a small one is counted when read: a
    /// map over a million launch plans writes no million summaries). Counted from the rows
    /// this run wrote, so a reader finds what it would have counted.
    fn summaries(&self, sched: &Scheduler) -> Vec<WriteOp> {
        let mut counts: Vec<TaskCounts> = vec![TaskCounts::default(); self.execs.len().max(1)];
        let mut rows = 0u64;
        for (id, &code) in self.recorded.iter().enumerate() {
            if code == 0 {
                continue;
            }
            rows += 1;
            if code & TASK == 0 {
                continue;
            }
            let x = sched.node_execution(id as NodeId) as usize;
            if counts.len() <= x {
                counts.resize(x + 1, TaskCounts::default());
            }
            let c = &mut counts[x];
            c.total += 1;
            match code_status(code) {
                Some(NodeStatus::Succeeded) => c.succeeded += 1,
                Some(NodeStatus::Failed) => c.failed += 1,
                Some(NodeStatus::Running) => c.running += 1,
                _ => {}
            }
            if code & CACHED != 0 {
                c.cached += 1;
            }
        }
        let mut groups: Vec<Vec<NodeGroup>> = vec![Vec::new(); counts.len()];
        if rows >= NodeGroup::MIN {
            for (x, g) in self.groups(sched) {
                if let Some(list) = groups.get_mut(x as usize) {
                    list.push(g);
                }
            }
        }
        counts
            .into_iter()
            .zip(groups)
            .enumerate()
            .filter(|(x, (c, g))| *x == 0 || !g.is_empty() || c.total >= NodeGroup::MIN)
            .map(|(x, (counts, groups))| WriteOp::Summary {
                execution: self.exec_id(x as u32),
                summary: TreeSummary { counts, groups },
            })
            .collect()
    }

    /// The groups of at least [`NodeGroup::MIN`] recorded nodes, with their executions.
    fn groups(&self, sched: &Scheduler) -> Vec<(u32, NodeGroup)> {
        let mut at: HashMap<u64, usize> = HashMap::new();
        let mut tallies: Vec<Tally> = Vec::new();
        // Members come one after another: most lookups are the previous one's.
        let mut last: Option<(u64, usize)> = None;
        for (id, &code) in self.recorded.iter().enumerate() {
            let id = id as NodeId;
            let Some((g, index)) = (code != 0).then(|| sched.node_group(id)).flatten() else {
                continue;
            };
            let i = match last {
                Some((k, i)) if k == g => i,
                _ => *at.entry(g).or_insert_with(|| {
                    tallies.push(Tally {
                        exec: sched.node_execution(id),
                        first: id,
                        total: 0,
                        phases: [0; 16],
                        nested: false,
                        max_index: 0,
                        failed: Some(Vec::new()),
                    });
                    tallies.len() - 1
                }),
            };
            last = Some((g, i));
            let t = &mut tallies[i];
            t.total += 1;
            t.phases[(code & 0x0f) as usize] += 1;
            t.max_index = t.max_index.max(index);
            if code_status(code) == Some(NodeStatus::Failed) {
                if let Some(list) = &mut t.failed {
                    if list.len() < NodeGroup::MAX_FAILED_LISTED {
                        list.push(u64::from(index));
                    } else {
                        t.failed = None;
                    }
                }
            }
        }
        at.retain(|_, i| tallies[*i].total >= NodeGroup::MIN);
        if at.is_empty() {
            return Vec::new();
        }
        // A group is nested when a recorded node hangs under one of its members.
        for (id, &code) in self.recorded.iter().enumerate() {
            if code == 0 {
                continue;
            }
            let up = sched
                .node_parent(id as NodeId)
                .and_then(|p| sched.node_group(p));
            if let Some(i) = up.and_then(|(g, _)| at.get(&g)) {
                tallies[*i].nested = true;
            }
        }
        let mut out: Vec<(u32, NodeGroup)> = at
            .values()
            .map(|&i| {
                let t = &tallies[i];
                let path = sched.path(t.first);
                let prefix = match path.rsplit_once('[') {
                    Some((p, _)) => p.to_string(),
                    None => path.clone(),
                };
                let phases = t
                    .phases
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .filter_map(|(c, n)| Some((code_status(c as u8)?.as_str().to_string(), *n)))
                    .collect();
                let failed = t.failed.clone().map(|mut l| {
                    l.sort_unstable();
                    l
                });
                let group = NodeGroup {
                    prefix,
                    total: t.total,
                    phases,
                    kind: sched.node_view(t.first).kind.to_string(),
                    nested: t.nested,
                    // Indices are distinct within a group: `total` of them below
                    // `max + 1` are all of `0..total`.
                    contiguous: u64::from(t.max_index) + 1 == t.total,
                    failed,
                };
                (t.exec, group)
            })
            .collect();
        out.sort_by(|a, b| a.1.prefix.cmp(&b.1.prefix));
        out
    }
}

impl RunObserver for Recorder {
    fn starting(&mut self, sched: &mut Scheduler) {
        sched.journal();
    }

    fn event(&mut self, event: &Event) {
        // The scheduler's input, for a replay: kept in the order it was fed. An event that
        // cannot be encoded (it always can: the types are the codec's) is left out rather
        // than failing the run.
        if self.events.is_empty() {
            self.first = self.seq;
        }
        if codec::encode_to(event, &mut self.events).is_ok() {
            self.seq += 1;
        }
    }

    fn step(&mut self, sched: &mut Scheduler) {
        self.drain(sched);
    }

    fn cache_get_many(&mut self, keys: &[[u8; 32]]) -> Vec<Option<CallResult>> {
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        match self.store.cache_outputs(&refs) {
            Ok(outputs) => outputs.into_iter().map(|o| cached_result(o?)).collect(),
            // A cache that cannot be read is all misses: the tasks run.
            Err(_) => vec![None; keys.len()],
        }
    }

    fn cache_get(&mut self, key: &[u8; 32]) -> Option<CallResult> {
        self.store
            .cache_get(key)
            .ok()
            .flatten()
            .and_then(|e| cached_result(e.output?))
    }

    fn finish(&mut self, sched: &mut Scheduler, result: &Result<Option<Value>, Failure>) {
        let (status, error, output) = match result {
            Ok(v) => (ExecStatus::Succeeded, None, v.clone()),
            Err(f) if f.cancelled => (ExecStatus::Cancelled, Some(f.to_string()), None),
            Err(f) => (ExecStatus::Failed, Some(f.to_string()), None),
        };
        // Set first: the last drain writes what a delegated child held back.
        self.ended = Some(status);
        self.drain(sched);
        // The summaries count every row, so they go after the last; in one batch with the
        // end, so that an execution that ended has one.
        let mut ops = self.summaries(sched);
        ops.push(WriteOp::FinishExecution {
            execution: self.root.clone(),
            end: ExecutionEnd {
                status,
                ended_ms: now_ms(),
                error,
                output,
            },
        });
        self.store.write_batch(ops);
    }
}

/// A cache entry's call result: the cache keeps the encoded result (a task's output or a
/// dynamic's graph). An entry that cannot be read is a miss: the task runs, and its result
/// replaces it.
fn cached_result(output: Value) -> Option<CallResult> {
    match output {
        Value::Bytes(bytes) => codec::decode::<CallResult>(&bytes).ok(),
        _ => None,
    }
}
