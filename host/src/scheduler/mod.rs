//! The scheduler: a pure state machine that turns events (a task attempt returned or failed,
//! cancel) into commands (run this task attempt, the execution finished). It knows nothing of
//! wasm, threads or clocks: timings arrive inside events, and every decision follows from the
//! events alone, so a test or a durable store can replay them.
//!
//! State is a flat arena of nodes. A workflow or dynamic node owns a *scope* (one instance of a
//! graph); a launch plan node owns a child *execution* with its own `max_parallelism`; a map
//! node owns its element nodes. Only task and dynamic attempts run in a sandbox: they wait in
//! their execution's queue until it has a free slot.
//!
//! This file holds the arena and the event loop; `protocol` what goes in and out, `expansion`
//! how nodes start and complete (scopes, maps), `attempt` what an ended attempt leads to,
//! `failure` the failure policy (fail fast, run all, cancel, retries), `logs` and `budget` the
//! run's two memory bounds, and `tree` the execution tree built from the arena.

mod attempt;
mod budget;
mod conditional;
mod expansion;
mod failure;
mod failure_handler;
mod journal;
mod logs;
mod protocol;
mod tree;

use crate::compile::CompiledGraph;
use crate::module::ModuleDecl;
use logs::{AttemptLog, LogBudget, Logs};
use sandflow_contract::{EntityKind, TaskConfig, Value};
use std::collections::VecDeque;
use std::sync::Arc;

pub use budget::DEFAULT_MAX_RUN_MEMORY_BYTES;
pub use journal::{Change, NodeView, Origin, RecordedGraph, RecordedOutput, Recovered};
pub use protocol::{
    AttemptFailure, Command, Event, ExecId, Failure, NodeId, Options, Outcome, Placement, RunTask,
    StartError, TaskOverrides, Timing, DEFAULT_MAX_LOG_BYTES, DEFAULT_MAX_PARALLELISM,
};
pub use tree::{fmt_us, render_tree, AttemptOutput, TreeNode, TreeOptions};

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for the outputs it reads.
    Waiting,
    /// In its execution's queue for a sandbox slot.
    Queued,
    Running,
    /// Its children (scope, child execution or map elements) are running.
    Expanded,
    Succeeded,
    Failed,
    /// Never ran: the run failed or was cancelled first.
    Skipped,
    /// Was running when its scope failed or the run was cancelled; its answer, when it comes,
    /// is ignored (and the state becomes `Aborted`).
    Aborting,
    /// Was aborted, and its attempt has ended.
    Aborted,
}

/// A scope's place in the run's arena of scopes. Like a `NodeId`, it follows from the events
/// alone: replaying a run's events gives every scope the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ScopeId(u32);

impl ScopeId {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a node sits: the root, graph node `j` of a scope, or element `i` of a map.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Parent {
    Root,
    Scope(ScopeId, u32),
    Map(NodeId, u32),
}

/// What a node, once expanded, owns.
#[derive(Debug)]
enum Child {
    None,
    Scope(ScopeId),
    /// A child execution and its root scope.
    Exec(ExecId, ScopeId),
    Map(Box<MapState>),
}

#[derive(Debug)]
struct MapState {
    /// Inputs in interface order; mapped ones hold the lists.
    inputs: Vec<Value>,
    mapped: Vec<bool>,
    elements: Vec<NodeId>,
    next: usize,
    running: u32,
    concurrency: u32,
    ok: usize,
    failed: usize,
    /// Failures tolerated; `None` without a min success ratio.
    allowed_failures: Option<usize>,
    over: bool,
}

/// One node of the run: a task, workflow, dynamic or launch plan call, a conditional, or a
/// map element.
/// The run's unit of memory (a million-element map is a million of them): keep it small.
#[derive(Debug)]
struct Node {
    entity: u32,
    parent: Parent,
    exec: ExecId,
    /// Index among same-entity siblings, `u32::MAX` when the entity occurs once.
    ordinal: u32,
    state: State,
    /// How it got its result (ran, cached, recovered).
    origin: journal::Origin,
    deps_left: u32,
    attempts: u32,
    /// The worker that ran the latest attempt, `u16::MAX` if none did (it fits in the
    /// padding after `origin`: a node stays 144 bytes).
    worker: u16,
    timing: Option<Timing>,
    output: Option<Value>,
    /// While queued or retryable (a boxed slice: 16 bytes, not a Vec's 24).
    inputs: Option<Box<[Value]>>,
    child: Child,
    /// Boxed (like `logs`): most nodes never fail, and a node is the run's unit of memory.
    // A thin pointer: `Option<Vec>` is 24 bytes and `Option<Box<[_]>>` 16.
    #[allow(clippy::box_collection)]
    failed_attempts: Option<Box<Vec<AttemptLog>>>,
    /// What the latest attempt wrote.
    logs: Option<Box<Logs>>,
}

/// One instance of a graph: a workflow's, a launch plan's or one a dynamic returned.
#[derive(Debug)]
struct Scope {
    graph: Arc<CompiledGraph>,
    /// Workflow inputs in interface order (empty for a dynamic's graph).
    inputs: Vec<Value>,
    /// The scope the graph's bindings read: itself, or for a conditional's branches, the
    /// scope the conditional is in.
    reads: ScopeId,
    owner: NodeId,
    /// The scope's nodes are `first..first + len`, in graph order: `create_scope` makes them
    /// one after another, so a range stands in for a list of ids.
    first: NodeId,
    len: u32,
    remaining: usize,
    depth: u32,
    over: bool,
    /// The first failure, held until the rest has run (`FailurePolicy::RunAll`).
    /// Boxed: a scope is created per workflow, dynamic and launch plan call, and almost all
    /// of them succeed (112 bytes inline against 8).
    failure: Option<Box<Failure>>,
}

impl Scope {
    /// The scope's nodes, in graph order.
    fn nodes(&self) -> std::ops::Range<NodeId> {
        self.first..self.first + self.len
    }

    /// Graph node `j`'s node, if the graph has one.
    fn node(&self, j: u32) -> Option<NodeId> {
        (j < self.len).then(|| self.first + j)
    }

    /// Graph node `j`'s node; `j` comes from the compiled graph, so it is in range.
    fn at(&self, j: u32) -> NodeId {
        assert!(j < self.len, "node n{j} of a {}-node scope", self.len);
        self.first + j
    }
}

/// An execution (the run's own, or a launch plan's child): its parallelism and its queue.
#[derive(Debug)]
struct Exec {
    max_parallelism: u32,
    running: u32,
    queue: VecDeque<NodeId>,
}

/// One run's state machine: see the module's documentation.
pub struct Scheduler {
    decl: Arc<ModuleDecl>,
    opts: Options,
    nodes: Vec<Node>,
    scopes: Vec<Scope>,
    execs: Vec<Exec>,
    out: Vec<Command>,
    finished: bool,
    /// Executions whose queue may have work and room.
    to_dispatch: Vec<ExecId>,
    /// Delegated launch plan calls to hand to the driver (`Options::delegate_launch_plans`).
    delegated: VecDeque<NodeId>,
    /// Their attempts handed over so far.
    delegated_calls: u64,
    /// Nodes whose inputs became available, and maps with an element that ended: worked
    /// through in `flush` rather than by recursion, so a long run of nodes that end as they
    /// start (empty graphs, maps over nothing) cannot exhaust the stack.
    to_ready: VecDeque<(ScopeId, u32)>,
    to_advance: VecDeque<NodeId>,
    logs: LogBudget,
    budget: budget::Budget,
    /// Changes kept for a durable store, when it asked for them (`journal`).
    journal: Option<Vec<journal::Change>>,
    /// The cache keys of the cached tasks running now.
    cache_keys: std::collections::HashMap<NodeId, [u8; 32]>,
    /// Each entity's task configuration with the run's overrides applied, and the hash of
    /// its interface when it is cached: worked out once, not for every attempt.
    configs: Vec<(TaskConfig, Option<[u8; 32]>)>,
}

impl Scheduler {
    /// A run of `entity` on `inputs` (in its interface order, already type-checked: see
    /// `json::inputs_from_json`). Call [`Scheduler::start`] next.
    pub fn new(
        decl: Arc<ModuleDecl>,
        entity: &str,
        inputs: Vec<Value>,
        opts: Options,
    ) -> Result<Self, StartError> {
        let Some(idx) = decl.index(entity) else {
            return Err(StartError::UnknownEntity {
                name: entity.to_string(),
                available: decl.names(),
            });
        };
        let e = &decl.entities[idx];
        if e.interface.inputs.len() != inputs.len() {
            return Err(StartError::Arity {
                entity: entity.into(),
                expected: e.interface.inputs.len(),
                got: inputs.len(),
            });
        }
        let maxp = match &e.kind {
            EntityKind::LaunchPlan(_) => decl
                .plan(idx)
                .and_then(|p| p.max_parallelism)
                .unwrap_or(opts.max_parallelism),
            _ => opts.max_parallelism,
        };
        let budget = budget::Budget::new(opts.max_run_memory_bytes);
        let configs = (0..decl.entities.len() as u32)
            .map(|i| {
                let c = task_config(&decl, &opts.overrides, i);
                let iface = c
                    .cache
                    .as_ref()
                    .map(|_| journal::interface_hash(&decl.entities[i as usize]));
                (c, iface)
            })
            .collect();
        let mut s = Scheduler {
            decl,
            opts,
            nodes: Vec::new(),
            scopes: Vec::new(),
            execs: vec![Exec {
                max_parallelism: maxp.max(1),
                running: 0,
                queue: VecDeque::new(),
            }],
            out: Vec::new(),
            finished: false,
            to_dispatch: Vec::new(),
            delegated: VecDeque::new(),
            delegated_calls: 0,
            to_ready: VecDeque::new(),
            to_advance: VecDeque::new(),
            logs: LogBudget::default(),
            budget,
            journal: None,
            cache_keys: Default::default(),
            configs,
        };
        s.nodes
            .push(Node::new(idx as u32, Parent::Root, 0, u32::MAX));
        s.nodes[0].inputs = Some(inputs.into_boxed_slice());
        Ok(s)
    }

    /// Starts the run; returns the first commands.
    pub fn start(&mut self) -> Vec<Command> {
        let inputs = self.nodes[0]
            .inputs
            .take()
            .map(Vec::from)
            .unwrap_or_default();
        self.start_node(0, inputs, 0);
        self.flush()
    }

    /// Feeds one event; returns the commands it causes. Events about unknown nodes or stale
    /// attempts are ignored.
    pub fn on_event(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Cancel => {
                if !self.finished {
                    self.cancel_subtree(0);
                    self.finish(Err(Failure::cancelled(self.path(0))));
                }
            }
            Event::Attempted {
                node,
                attempt,
                outcome,
                timing,
                worker,
                stdout,
                stderr,
            } => self.on_attempt(node, attempt, outcome, (timing, worker), stdout, stderr),
        }
        self.flush()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The module this run executes.
    pub fn decl(&self) -> &ModuleDecl {
        &self.decl
    }

    /// Task executions (attempts) started so far, over all nodes.
    pub fn attempts_started(&self) -> u64 {
        let all: u64 = self.nodes.iter().map(|n| n.attempts as u64).sum();
        // A delegated launch plan call's attempt is a child execution, not a task's.
        all - self.delegated_calls
    }

    /// Launch plan calls handed to the driver to run elsewhere
    /// ([`Options::delegate_launch_plans`]): child executions this run did not expand.
    pub fn delegated_calls(&self) -> u64 {
        self.delegated_calls
    }

    /// Bytes of task output not kept in memory because the run's log budget
    /// ([`Options::max_log_bytes`]) was spent.
    pub fn logs_dropped(&self) -> u64 {
        self.logs.dropped()
    }

    /// Host memory the run holds now, as its budget counts it (`Options::max_run_memory_bytes`).
    pub fn memory_used(&self) -> u64 {
        self.budget.used()
    }

    /// The number of child executions (launch plan runs) started.
    pub fn child_executions(&self) -> usize {
        self.execs.len() - 1
    }

    fn flush(&mut self) -> Vec<Command> {
        loop {
            if let Some((s, j)) = self.to_ready.pop_front() {
                let scope = &self.scopes[s.index()];
                if !scope.over && self.nodes[scope.at(j) as usize].state == State::Waiting {
                    self.ready(s, j);
                }
            } else if let Some(m) = self.to_advance.pop_front() {
                let depth = self.depth_of(m);
                self.advance_map(m, depth);
            } else if let Some(e) = self.to_dispatch.pop() {
                self.dispatch(e);
            } else {
                return std::mem::take(&mut self.out);
            }
        }
    }

    fn finish(&mut self, result: Result<Option<Value>, Failure>) {
        if !self.finished {
            self.finished = true;
            self.out.push(Command::Finished(result));
        }
    }

    /// Hands the queued attempts of execution `exec` to the driver while it has free slots.
    fn dispatch(&mut self, exec: ExecId) {
        // Delegated launch plan calls take no slot (`Options::delegate_launch_plans`).
        while let Some(id) = self.delegated.pop_front() {
            let n = &mut self.nodes[id as usize];
            if self.finished || n.state != State::Queued {
                continue;
            }
            n.attempts += 1;
            n.state = State::Running;
            self.delegated_calls += 1;
            // Kept while another attempt may need them (a call made again).
            let inputs = if n.attempts > DELEGATED_CALL_RETRIES {
                let inputs = n.inputs.take().map(Vec::from).unwrap_or_default();
                self.budget.release(budget::values_bytes(&inputs));
                inputs
            } else {
                n.inputs
                    .as_deref()
                    .map(<[Value]>::to_vec)
                    .unwrap_or_default()
            };
            self.out.push(Command::Launch(RunTask {
                node: id,
                attempt: n.attempts,
                entity: n.entity,
                inputs,
                timeout_ms: None,
                max_memory_mb: None,
                fuel: None,
                cache_key: None,
            }));
        }
        loop {
            let ex = &mut self.execs[exec as usize];
            if self.finished || ex.running >= ex.max_parallelism {
                return;
            }
            let Some(id) = ex.queue.pop_front() else {
                return;
            };
            let n = &mut self.nodes[id as usize];
            if n.state != State::Queued {
                continue;
            }
            let (cfg, iface) = &self.configs[n.entity as usize];
            let retries = cfg.retries;
            n.attempts += 1;
            n.state = State::Running;
            // Keep the inputs only while another attempt may need them.
            let inputs = if n.attempts > retries {
                let inputs = n.inputs.take().map(Vec::from).unwrap_or_default();
                // Handed over to the attempt, which the sandbox bounds.
                self.budget.release(budget::values_bytes(&inputs));
                inputs
            } else {
                n.inputs
                    .as_deref()
                    .map(<[Value]>::to_vec)
                    .unwrap_or_default()
            };
            self.execs[exec as usize].running += 1;
            let entity = &self.decl.entities[n.entity as usize];
            let cache_key = cfg
                .cache
                .as_ref()
                .zip(iface.as_ref())
                .map(|(c, iface)| journal::cache_key(entity, c, iface, &inputs));
            if let Some(k) = cache_key {
                self.cache_keys.insert(id, k);
            }
            self.out.push(Command::Run(RunTask {
                node: id,
                attempt: n.attempts,
                entity: n.entity,
                inputs,
                timeout_ms: cfg.timeout_ms,
                max_memory_mb: cfg.max_memory_mb,
                fuel: cfg.fuel,
                cache_key,
            }));
        }
    }

    /// How deep the graph holding `id` nests (the root is at 0).
    fn depth_of(&self, id: NodeId) -> u32 {
        match self.nodes[id as usize].parent {
            Parent::Root => 0,
            Parent::Scope(s, _) => self.scopes[s.index()].depth,
            Parent::Map(m, _) => self.depth_of(m),
        }
    }

    /// The node's path: entity names from the root, with `[i]` for repeated siblings and map
    /// elements.
    pub fn path(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            let n = &self.nodes[c as usize];
            let name = self.node_name(c);
            match n.parent {
                Parent::Map(m, i) => {
                    parts.push(format!("[{i}]"));
                    cur = Some(m);
                    continue;
                }
                Parent::Root => {
                    if let Some(p) = &self.opts.placed {
                        parts.push(p.path.clone());
                        break;
                    }
                    cur = None
                }
                Parent::Scope(s, _) => cur = Some(self.scopes[s.index()].owner),
            }
            let seg = if n.ordinal == u32::MAX {
                name.to_string()
            } else {
                format!("{name}[{}]", n.ordinal)
            };
            parts.push(seg);
        }
        let mut out = String::new();
        for p in parts.iter().rev() {
            if !out.is_empty() && !p.starts_with('[') {
                out.push('/');
            }
            out.push_str(p);
        }
        out
    }
}

impl Node {
    fn new(entity: u32, parent: Parent, exec: ExecId, ordinal: u32) -> Node {
        Node {
            entity,
            parent,
            exec,
            ordinal,
            state: State::Waiting,
            origin: journal::Origin::Ran,
            deps_left: 0,
            attempts: 0,
            worker: u16::MAX,
            timing: None,
            output: None,
            inputs: None,
            child: Child::None,
            failed_attempts: None,
            logs: None,
        }
    }
}

/// What a task or dynamic declares, with the run's overrides applied.
/// How many times a delegated launch plan call is made again after a fault of the system.
const DELEGATED_CALL_RETRIES: u32 = 2;

fn task_config(decl: &ModuleDecl, o: &TaskOverrides, entity: u32) -> TaskConfig {
    let mut c = match &decl.entities[entity as usize].kind {
        EntityKind::Task(c) | EntityKind::Dynamic(c) => c.clone(),
        // A delegated launch plan call's attempt is its child execution: the overrides apply
        // to the tasks in it, not to it. Its own retries are for the system's faults only (a
        // worker that ended its row of calls without their results): a child execution that
        // failed has already retried its tasks as they declare.
        EntityKind::LaunchPlan(_) => {
            return TaskConfig {
                retries: DELEGATED_CALL_RETRIES,
                retry_on: sandflow_contract::RetryOn::SystemErrors,
                ..TaskConfig::default()
            }
        }
        _ => return TaskConfig::default(),
    };
    c.retries = o.retries.unwrap_or(c.retries);
    c.timeout_ms = o.timeout_ms.or(c.timeout_ms);
    c.max_memory_mb = o.max_memory_mb.or(c.max_memory_mb);
    c.fuel = o.fuel.or(c.fuel);
    c
}

#[cfg(test)]
mod tests;
