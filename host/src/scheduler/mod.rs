//! The scheduler: a pure state machine that turns events (a task attempt returned or failed,
//! cancel) into commands (run this task attempt, the execution finished). It knows nothing of
//! wasm, threads or clocks: timings arrive inside events, and every decision follows from the
//! events alone, so a test or a durable store can replay them.
//!
//! State is a flat arena of nodes. A workflow or dynamic node owns a *scope* (one instance of a
//! graph); a launch plan node owns a child *execution* with its own `max_parallelism`; a map
//! node owns its element nodes. Only task and dynamic attempts run in a sandbox: they wait in
//! their execution's queue until it has a free slot.

mod budget;
mod tree;

use crate::compile::{self, CompiledGraph};
use crate::module::ModuleDecl;
use sandflow_contract::{
    Binding, CallResult, EntityKind, FailurePolicy, MapSpec, TaskConfig, Value,
};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

pub use budget::DEFAULT_MAX_RUN_MEMORY_BYTES;
pub use tree::{render_tree, AttemptOutput, TreeNode, TreeOptions};

pub type NodeId = u32;
pub type ExecId = u32;

/// Flyte's default: running task executions allowed at once in one execution.
pub const DEFAULT_MAX_PARALLELISM: u32 = 25;

#[derive(Clone, Debug)]
pub struct Options {
    /// Running task executions at once in the top execution (a launch plan sets its own).
    pub max_parallelism: u32,
    /// Graphs nested inside graphs, counting workflows, dynamics and launch plans.
    pub max_depth: u32,
    /// Nodes one run may create in all, counting map elements.
    pub max_nodes: usize,
    /// Host memory one run may hold, estimated: its nodes, scopes, dynamics' graphs and the
    /// values it keeps (see `budget.rs`). A node that would go past it fails.
    pub max_run_memory_bytes: u64,
    /// Per-run overrides of what tasks declare (the CLI's `--task-*` options).
    pub overrides: TaskOverrides,
    /// Bytes of task output the run keeps in memory over all its attempts (each attempt's
    /// stdout and stderr are also bounded by the sandbox). Output past it is counted in
    /// [`Scheduler::logs_dropped`], not kept.
    pub max_log_bytes: u64,
}

/// The default [`Options::max_log_bytes`]: 64 MiB.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 64 << 20;

/// Replaces, for every task and dynamic of a run, what they declare in the SDK.
#[derive(Clone, Debug, Default)]
pub struct TaskOverrides {
    pub retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_memory_mb: Option<u64>,
    pub fuel: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            max_depth: 64,
            max_nodes: 20_000_000,
            max_run_memory_bytes: DEFAULT_MAX_RUN_MEMORY_BYTES,
            overrides: TaskOverrides::default(),
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
        }
    }
}

/// When an attempt ran, in microseconds since the run started (the driver's clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub start_us: u64,
    pub end_us: u64,
}

/// What a sandbox did with one attempt: its answer, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Returned(CallResult),
    /// No answer: trap, panic, timeout, garbage, or a host fault (`user == false`).
    Failed {
        user: bool,
        message: String,
        backtrace: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// An attempt of a task or dynamic ended.
    Attempted {
        node: NodeId,
        attempt: u32,
        outcome: Outcome,
        timing: Timing,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// Stop: nothing new starts, the run fails as cancelled.
    Cancel,
}

/// Run attempt `attempt` of a task or dynamic in a fresh sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct RunTask {
    pub node: NodeId,
    pub attempt: u32,
    /// Index into the module's entities.
    pub entity: u32,
    /// In interface order.
    pub inputs: Vec<Value>,
    pub timeout_ms: Option<u64>,
    pub max_memory_mb: Option<u64>,
    pub fuel: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Run(RunTask),
    /// Stop attempt `attempt` of `node` if it still runs: its result is no longer wanted
    /// (a sibling failed its scope, or the run was cancelled).
    Abort {
        node: NodeId,
        attempt: u32,
    },
    /// The run ended; no command follows.
    Finished(Result<Option<Value>, Failure>),
}

/// Why a node, and so the run, failed: the first failure, named where it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Node path, e.g. `multi_wf/level1/level2[1]/core_wf_lp[0]/step2`.
    pub path: String,
    pub attempt: u32,
    pub attempts: u32,
    /// A fault of the guest rather than of the host.
    pub user: bool,
    pub message: String,
    pub backtrace: Option<String>,
    pub stderr_tail: Option<String>,
    /// The run was cancelled (Ctrl-C, or its cancel flag), not failed.
    #[serde(default)]
    pub cancelled: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path)?;
        if self.attempt > 0 {
            write!(f, " (attempt {} of {})", self.attempt, self.attempts)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.user {
            write!(f, " [system error]")?;
        }
        if let Some(bt) = &self.backtrace {
            write!(f, "\nwasm backtrace:\n{bt}")?;
        }
        if let Some(tail) = &self.stderr_tail {
            write!(f, "\nstderr (tail):\n{tail}")?;
        }
        Ok(())
    }
}

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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Parent {
    Root,
    Scope(u32, u32),
    Map(NodeId, u32),
}

#[derive(Debug)]
enum Child {
    None,
    Scope(u32),
    /// A child execution and its root scope.
    Exec(ExecId, u32),
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

/// Failed attempts of a node, kept for the tree.
#[derive(Clone, Debug)]
struct AttemptLog {
    timing: Timing,
    message: String,
    /// What this attempt wrote, when another attempt followed it (the last attempt's output
    /// is the node's own `logs`).
    logs: Option<Box<Logs>>,
}

/// What one attempt wrote to stdout and stderr, as far as the run's log budget kept it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Logs {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    /// Bytes the attempt wrote that were not kept: the run's log budget was spent.
    pub(crate) dropped: u64,
}

/// The bytes of task output (and of failed attempts' messages) a run keeps in memory, over
/// all its attempts: each attempt's capture is bounded by the sandbox, but a map of 200 000
/// chatty elements would otherwise keep 200 000 of them. Past the budget, an attempt's output
/// is counted, not kept.
#[derive(Debug, Default)]
struct LogBudget {
    kept: u64,
    dropped: u64,
}

impl LogBudget {
    /// Whether `stdout` and `stderr` would be kept.
    fn fits(&self, max: u64, stdout: &[u8], stderr: &[u8]) -> bool {
        self.kept + (stdout.len() + stderr.len()) as u64 <= max
    }

    /// Keeps `stdout` and `stderr` while the budget `max` allows, else counts them.
    fn keep(&mut self, max: u64, stdout: Vec<u8>, stderr: Vec<u8>) -> Option<Box<Logs>> {
        let len = (stdout.len() + stderr.len()) as u64;
        if len == 0 {
            return None;
        }
        if self.kept + len <= max {
            self.kept += len;
            return Some(Box::new(Logs {
                stdout,
                stderr,
                dropped: 0,
            }));
        }
        self.dropped += len;
        Some(Box::new(Logs {
            dropped: len,
            ..Logs::default()
        }))
    }

    /// A failed attempt's message, whole while the budget allows, else its first
    /// [`CLIPPED_MESSAGE`] bytes.
    fn message(&mut self, max: u64, message: &str) -> String {
        let len = message.len() as u64;
        if self.kept + len <= max {
            self.kept += len;
            return message.to_string();
        }
        let mut cut = CLIPPED_MESSAGE.min(message.len());
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        self.dropped += (message.len() - cut) as u64;
        format!("{}…", &message[..cut])
    }
}

/// Bytes of a failed attempt's message kept once the run's log budget is spent.
const CLIPPED_MESSAGE: usize = 256;

#[derive(Debug)]
struct Node {
    entity: u32,
    parent: Parent,
    exec: ExecId,
    /// Index among same-entity siblings, `u32::MAX` when the entity occurs once.
    ordinal: u32,
    state: State,
    deps_left: u32,
    attempts: u32,
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

#[derive(Debug)]
struct Scope {
    graph: Arc<CompiledGraph>,
    /// Workflow inputs in interface order (empty for a dynamic's graph).
    inputs: Vec<Value>,
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

#[derive(Debug)]
struct Exec {
    max_parallelism: u32,
    running: u32,
    queue: VecDeque<NodeId>,
}

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
    /// Nodes whose inputs became available, and maps with an element that ended: worked
    /// through in `flush` rather than by recursion, so a long run of nodes that end as they
    /// start (empty graphs, maps over nothing) cannot exhaust the stack.
    to_ready: VecDeque<(u32, u32)>,
    to_advance: VecDeque<NodeId>,
    logs: LogBudget,
    budget: budget::Budget,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("unknown entity `{name}`; the module has: {available}")]
    UnknownEntity { name: String, available: String },
    #[error("{entity} takes {expected} inputs, got {got}")]
    Arity {
        entity: String,
        expected: usize,
        got: usize,
    },
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
            to_ready: VecDeque::new(),
            to_advance: VecDeque::new(),
            logs: LogBudget::default(),
            budget,
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
                    self.finish(Err(Failure {
                        path: self.path(0),
                        attempt: 0,
                        attempts: 0,
                        user: true,
                        message: "cancelled".into(),
                        backtrace: None,
                        stderr_tail: None,
                        cancelled: true,
                    }));
                }
            }
            Event::Attempted {
                node,
                attempt,
                outcome,
                timing,
                stdout,
                stderr,
            } => self.on_attempt(node, attempt, outcome, timing, stdout, stderr),
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
        self.nodes.iter().map(|n| n.attempts as u64).sum()
    }

    /// Bytes of task output not kept in memory because the run's log budget
    /// ([`Options::max_log_bytes`]) was spent.
    pub fn logs_dropped(&self) -> u64 {
        self.logs.dropped
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
                let id = self.scopes[s as usize].at(j);
                if !self.scopes[s as usize].over && self.nodes[id as usize].state == State::Waiting
                {
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

    fn new_node(
        &mut self,
        entity: u32,
        parent: Parent,
        exec: ExecId,
        ordinal: u32,
    ) -> Result<NodeId, String> {
        if self.nodes.len() >= self.opts.max_nodes {
            return Err(format!(
                "the run would create more than {} nodes (max_nodes)",
                self.opts.max_nodes
            ));
        }
        self.nodes.push(Node::new(entity, parent, exec, ordinal));
        Ok((self.nodes.len() - 1) as NodeId)
    }

    /// A node has its inputs: run it (task, dynamic) or expand it (workflow, launch plan).
    fn start_node(&mut self, id: NodeId, inputs: Vec<Value>, depth: u32) {
        let decl = self.decl.clone();
        let e = &decl.entities[self.nodes[id as usize].entity as usize];
        match &e.kind {
            EntityKind::Task(_) | EntityKind::Dynamic(_) => {
                let bytes = budget::values_bytes(&inputs);
                if let Err(o) = self.budget.charge(bytes) {
                    let m = o.message(&format!("{}'s inputs", e.name));
                    return self.fail_node(id, self.internal_failure(id, m));
                }
                let n = &mut self.nodes[id as usize];
                n.inputs = Some(inputs.into_boxed_slice());
                n.state = State::Queued;
                let exec = n.exec;
                self.execs[exec as usize].queue.push_back(id);
                self.to_dispatch.push(exec);
            }
            EntityKind::Workflow(_) => {
                let exec = self.nodes[id as usize].exec;
                self.nodes[id as usize].state = State::Expanded;
                let entity = self.nodes[id as usize].entity as usize;
                let Some(graph) = decl.graph(entity).cloned() else {
                    let m = format!("workflow {} has no compiled graph", e.name);
                    return self.fail_node(id, self.internal_failure(id, m));
                };
                if let Err(m) = self.create_scope(id, exec, graph, inputs, depth + 1) {
                    self.fail_node(id, self.internal_failure(id, m));
                }
            }
            EntityKind::LaunchPlan(_) => {
                let entity = self.nodes[id as usize].entity as usize;
                // Resolved when the module loaded: the workflow, and where each of its inputs
                // comes from (the caller, a default, or a fixed value).
                let Some(plan) = decl.plan(entity) else {
                    let m = format!("launch plan {} was not resolved", e.name);
                    return self.fail_node(id, self.internal_failure(id, m));
                };
                let wf_index = plan.workflow;
                let wf_inputs = plan.workflow_inputs(inputs);
                let exec = if self.nodes[id as usize].parent == Parent::Root {
                    0
                } else {
                    self.execs.push(Exec {
                        max_parallelism: plan
                            .max_parallelism
                            .unwrap_or(self.opts.max_parallelism)
                            .max(1),
                        running: 0,
                        queue: VecDeque::new(),
                    });
                    (self.execs.len() - 1) as ExecId
                };
                self.nodes[id as usize].state = State::Expanded;
                let Some(graph) = decl.graph(wf_index).cloned() else {
                    let m = format!(
                        "workflow {} has no compiled graph",
                        decl.entities[wf_index].name
                    );
                    return self.fail_node(id, self.internal_failure(id, m));
                };
                if let Err(m) = self.create_scope(id, exec, graph, wf_inputs, depth + 1) {
                    self.fail_node(id, self.internal_failure(id, m));
                }
            }
        }
    }

    /// A failure the graph itself causes (it cannot be compiled or resolved, or outgrows a
    /// limit): the user's to fix, with no attempt to name.
    fn internal_failure(&self, id: NodeId, message: String) -> Failure {
        Failure {
            path: self.path(id),
            attempt: 0,
            attempts: 0,
            user: true,
            message,
            backtrace: None,
            stderr_tail: None,
            cancelled: false,
        }
    }

    /// Instantiates `graph` as the children of `owner`.
    fn create_scope(
        &mut self,
        owner: NodeId,
        exec: ExecId,
        graph: Arc<CompiledGraph>,
        inputs: Vec<Value>,
        depth: u32,
    ) -> Result<(), String> {
        if depth > self.opts.max_depth {
            return Err(format!(
                "graphs nest deeper than {} levels (max_depth): is a dynamic expanding itself without end?",
                self.opts.max_depth
            ));
        }
        let n = graph.spec.nodes.len();
        if self.nodes.len() + n > self.opts.max_nodes {
            return Err(format!(
                "the run would create more than {} nodes (max_nodes)",
                self.opts.max_nodes
            ));
        }
        let bytes = budget::nodes_bytes(n)
            + std::mem::size_of::<Scope>() as u64
            + budget::values_bytes(&inputs);
        self.budget
            .charge(bytes)
            .map_err(|o| o.message(&format!("a graph of {n} nodes")))?;
        let s = self.scopes.len() as u32;
        let first = self.nodes.len() as NodeId;
        for j in 0..n {
            let id = self.new_node(
                graph.entities[j],
                Parent::Scope(s, j as u32),
                exec,
                graph.ordinals[j],
            )?;
            debug_assert_eq!(id, first + j as NodeId);
            self.nodes[id as usize].deps_left = graph.deps[j];
        }
        self.scopes.push(Scope {
            graph: graph.clone(),
            inputs,
            owner,
            first,
            len: n as u32,
            remaining: n,
            depth,
            over: false,
            failure: None,
        });
        self.nodes[owner as usize].child = match self.nodes[owner as usize].child {
            Child::None if exec != self.nodes[owner as usize].exec => Child::Exec(exec, s),
            _ => Child::Scope(s),
        };
        if n == 0 {
            self.complete_scope(s);
            return Ok(());
        }
        for j in 0..n as u32 {
            // A node that ends as it starts may already have readied a later one, or failed
            // the scope and skipped the rest: start only nodes still waiting.
            let node = &self.nodes[(first + j) as usize];
            if node.deps_left == 0 && node.state == State::Waiting {
                self.ready(s, j);
            }
        }
        Ok(())
    }

    fn resolve(&self, s: u32, b: &Binding) -> Result<Value, String> {
        let scope = &self.scopes[s as usize];
        Ok(match b {
            Binding::Literal(v) => v.clone(),
            Binding::Input(name) => {
                let owner = self.nodes[scope.owner as usize].entity as usize;
                let wf = &self.decl.entities[self.decl.launch_target(owner).unwrap_or(owner)];
                let pos = wf
                    .interface
                    .inputs
                    .iter()
                    .position(|p| &p.name == name)
                    .ok_or_else(|| format!("no input {name}"))?;
                scope
                    .inputs
                    .get(pos)
                    .cloned()
                    .ok_or_else(|| format!("no input {name}"))?
            }
            Binding::Node(j) => {
                let id = scope.node(*j).ok_or_else(|| format!("no node n{j}"))?;
                self.nodes[id as usize]
                    .output
                    .clone()
                    .ok_or_else(|| format!("node n{j} has no output"))?
            }
            Binding::List(items) => Value::List(
                items
                    .iter()
                    .map(|b| self.resolve(s, b))
                    .collect::<Result<_, _>>()?,
            ),
            Binding::Map(items) => Value::Map(
                items
                    .iter()
                    .map(|(k, b)| Ok((k.clone(), self.resolve(s, b)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// Node `j` of scope `s` has all it reads: resolve its inputs and start it.
    fn ready(&mut self, s: u32, j: u32) {
        let scope = &self.scopes[s as usize];
        let graph = scope.graph.clone();
        let depth = scope.depth;
        let id = scope.at(j);
        let spec = &graph.spec.nodes[j as usize];
        let decl = self.decl.clone();
        let entity = self.nodes[id as usize].entity as usize;
        let target = &decl.entities[entity];
        let mut inputs = Vec::with_capacity(target.interface.inputs.len());
        let mut mapped = Vec::with_capacity(target.interface.inputs.len());
        for (i, name) in target.interface.inputs.iter().map(|p| &p.name).enumerate() {
            let Some((_, b)) = spec.inputs.iter().find(|(n, _)| n == name) else {
                // Only a launch plan's defaulted inputs may be unbound (compiled): fill in the
                // default so the inputs stay in interface order.
                let Some(v) = decl.default_input(entity, i) else {
                    let m = format!("no value for input `{name}`");
                    return self.fail_node(id, self.internal_failure(id, m));
                };
                inputs.push(v.clone());
                mapped.push(false);
                continue;
            };
            match self.resolve(s, b) {
                Ok(v) => inputs.push(v),
                Err(m) => return self.fail_node(id, self.internal_failure(id, m)),
            }
            mapped.push(
                spec.map
                    .as_ref()
                    .is_some_and(|m| m.mapped.iter().any(|n| n == name)),
            );
        }
        match &spec.map {
            Some(m) => self.start_map(id, m, inputs, mapped, depth),
            None => self.start_node(id, inputs, depth),
        }
    }

    fn start_map(
        &mut self,
        id: NodeId,
        spec: &MapSpec,
        inputs: Vec<Value>,
        mapped: Vec<bool>,
        depth: u32,
    ) {
        let mut len = None;
        for (v, &m) in inputs.iter().zip(&mapped) {
            if let (true, Value::List(items)) = (m, v) {
                match len {
                    None => len = Some(items.len()),
                    Some(l) if l != items.len() => {
                        let f = self.internal_failure(
                            id,
                            format!(
                                "mapped lists have different lengths ({l} and {})",
                                items.len()
                            ),
                        );
                        return self.fail_node(id, f);
                    }
                    _ => {}
                }
            }
        }
        let n = len.unwrap_or(0);
        if self.nodes.len() + n > self.opts.max_nodes {
            let f = self.internal_failure(
                id,
                format!(
                    "the run would create more than {} nodes (max_nodes)",
                    self.opts.max_nodes
                ),
            );
            return self.fail_node(id, f);
        }
        let bytes = budget::nodes_bytes(n)
            + (n * std::mem::size_of::<NodeId>()) as u64
            + budget::values_bytes(&inputs);
        if let Err(o) = self.budget.charge(bytes) {
            let m = o.message(&format!("a map of {n} elements"));
            return self.fail_node(id, self.internal_failure(id, m));
        }
        let (entity, exec) = (self.nodes[id as usize].entity, self.nodes[id as usize].exec);
        let mut elements = Vec::with_capacity(n);
        for i in 0..n {
            self.nodes
                .push(Node::new(entity, Parent::Map(id, i as u32), exec, i as u32));
            elements.push((self.nodes.len() - 1) as NodeId);
        }
        if let Some(k) = spec.min_success.filter(|&k| k as usize > n) {
            let f = self.internal_failure(
                id,
                format!("min_success is {k}, but the map has only {n} elements"),
            );
            return self.fail_node(id, f);
        }
        let allowed_failures = match (spec.min_success, spec.min_success_ratio) {
            (Some(k), _) => Some(n - k as usize),
            (None, Some(r)) => Some(n - ((r * n as f64).ceil() as usize).min(n)),
            (None, None) => None,
        };
        self.nodes[id as usize].state = State::Expanded;
        self.nodes[id as usize].child = Child::Map(Box::new(MapState {
            inputs,
            mapped,
            elements,
            next: 0,
            running: 0,
            concurrency: spec.concurrency.unwrap_or(u32::MAX),
            ok: 0,
            failed: 0,
            allowed_failures,
            over: false,
        }));
        self.advance_map(id, depth);
    }

    /// Starts elements while the map's concurrency allows; completes the map when all ended.
    fn advance_map(&mut self, id: NodeId, depth: u32) {
        loop {
            let Child::Map(m) = &mut self.nodes[id as usize].child else {
                return;
            };
            if m.over {
                return;
            }
            if m.ok + m.failed == m.elements.len() {
                m.over = true;
                let ratio = m.allowed_failures.is_some();
                let elements = std::mem::take(&mut m.elements);
                let inputs = std::mem::take(&mut m.inputs);
                self.budget.release(budget::values_bytes(&inputs));
                let mut out = Vec::with_capacity(elements.len());
                for e in &elements {
                    let v = self.nodes[*e as usize].output.take();
                    // Moved into the map's output, which is charged again as a whole.
                    self.budget.release(budget::output_bytes(&v));
                    out.push(if ratio {
                        Value::Optional(v.map(Box::new))
                    } else {
                        v.unwrap_or(Value::Optional(None))
                    });
                }
                if let Child::Map(m) = &mut self.nodes[id as usize].child {
                    m.elements = elements;
                }
                return self.succeed_node(id, Some(Value::List(out)));
            }
            if m.running >= m.concurrency || m.next >= m.elements.len() {
                return;
            }
            let i = m.next;
            m.next += 1;
            m.running += 1;
            let el = m.elements[i];
            let inputs: Vec<Value> = m
                .inputs
                .iter()
                .zip(&m.mapped)
                .map(|(v, &mapped)| match (mapped, v) {
                    (true, Value::List(items)) => items[i].clone(),
                    _ => v.clone(),
                })
                .collect();
            self.start_node(el, inputs, depth);
        }
    }

    fn dispatch(&mut self, exec: ExecId) {
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
            let cfg = task_config(&self.decl, &self.opts.overrides, n.entity);
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
            self.out.push(Command::Run(RunTask {
                node: id,
                attempt: n.attempts,
                entity: n.entity,
                inputs,
                timeout_ms: cfg.timeout_ms,
                max_memory_mb: cfg.max_memory_mb,
                fuel: cfg.fuel,
            }));
        }
    }

    fn on_attempt(
        &mut self,
        id: NodeId,
        attempt: u32,
        outcome: Outcome,
        timing: Timing,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) {
        let Some(n) = self.nodes.get_mut(id as usize) else {
            return;
        };
        if attempt != n.attempts || !matches!(n.state, State::Running | State::Aborting) {
            return;
        }
        let exec = n.exec;
        self.execs[exec as usize].running -= 1;
        self.to_dispatch.push(exec);
        n.timing = Some(match n.timing {
            Some(t) => Timing {
                start_us: t.start_us,
                end_us: timing.end_us,
            },
            None => timing,
        });
        // The stderr tail a failure of this attempt reports: taken here only when the budget
        // is about to drop the output, else from the kept output if the attempt fails.
        let dropped_tail = (!self.logs.fits(self.opts.max_log_bytes, &stdout, &stderr))
            .then(|| tail(&stderr))
            .flatten();
        n.logs = self.logs.keep(self.opts.max_log_bytes, stdout, stderr);
        if n.state == State::Aborting {
            n.state = State::Aborted;
            return;
        }
        let decl = self.decl.clone();
        let e = &decl.entities[n.entity as usize];
        let cfg = task_config(&decl, &self.opts.overrides, n.entity);
        let retries = cfg.retries;
        let failure =
            |message: String, user: bool, backtrace: Option<String>| (message, user, backtrace);
        let result: Result<(), (String, bool, Option<String>)> = match (outcome, &e.kind) {
            (Outcome::Returned(CallResult::Output(v)), EntityKind::Task(_)) => {
                match (v, &e.interface.output) {
                    (Some(v), Some(t)) => match v.check(t) {
                        Ok(()) => return self.succeed_node(id, Some(v)),
                        Err(m) => Err(failure(
                            format!("returned a value that does not match its output type: {m}"),
                            true,
                            None,
                        )),
                    },
                    (None, None) => return self.succeed_node(id, None),
                    (Some(_), None) => Err(failure(
                        "returned a value but declares no output".into(),
                        true,
                        None,
                    )),
                    (None, Some(t)) => Err(failure(
                        format!("returned nothing, expected {t}"),
                        true,
                        None,
                    )),
                }
            }
            (Outcome::Returned(CallResult::Graph(g)), EntityKind::Dynamic(_)) => {
                let path = self.path(id);
                // Charged before it is compiled: a graph past the budget goes no further.
                let spec_bytes = g.memory_bytes();
                let what = |o: budget::Over| o.message(&format!("the graph {path} returned"));
                if let Err(o) = self.budget.charge(spec_bytes) {
                    return self.fail_node(id, self.internal_failure(id, what(o)));
                }
                let compiled =
                    compile::check_graph(&decl, &g, None, e.interface.output.as_ref(), &path)
                        .and_then(|()| CompiledGraph::new(&decl, g));
                match compiled {
                    Ok(graph) => {
                        let depth = self.depth_of(id);
                        self.nodes[id as usize].state = State::Expanded;
                        let index_bytes = budget::index_bytes(&graph);
                        let expanded = self
                            .budget
                            .charge(index_bytes)
                            .map_err(|o| (what(o), spec_bytes))
                            .and_then(|()| {
                                self.create_scope(id, exec, Arc::new(graph), Vec::new(), depth + 1)
                                    .map_err(|m| (m, spec_bytes + index_bytes))
                            });
                        if let Err((m, charged)) = expanded {
                            self.budget.release(charged);
                            self.fail_node(id, self.internal_failure(id, m));
                        }
                        return;
                    }
                    Err(c) => Err(failure(
                        {
                            self.budget.release(spec_bytes);
                            format!("returned a graph that does not compile: {c}")
                        },
                        true,
                        None,
                    )),
                }
            }
            (Outcome::Returned(CallResult::Error(m)), _) => Err(failure(m, true, None)),
            (Outcome::Returned(CallResult::Output(_)), _) => Err(failure(
                format!("is a {} but returned a task output", e.kind.name()),
                true,
                None,
            )),
            (Outcome::Returned(CallResult::Graph(_)), _) => Err(failure(
                format!("is a {} but returned a graph", e.kind.name()),
                true,
                None,
            )),
            (
                Outcome::Failed {
                    user,
                    message,
                    backtrace,
                },
                _,
            ) => Err(failure(message, user, backtrace)),
        };
        let Err((message, user, backtrace)) = result else {
            return;
        };
        let kept = self.logs.message(self.opts.max_log_bytes, &message);
        let n = &mut self.nodes[id as usize];
        let retry = n.attempts <= retries && cfg.retry_on.retries(user);
        n.failed_attempts.get_or_insert_default().push(AttemptLog {
            timing,
            message: kept,
            // The next attempt's output becomes the node's; this one's stays with it.
            logs: if retry { n.logs.take() } else { None },
        });
        if retry {
            n.state = State::Queued;
            self.execs[exec as usize].queue.push_back(id);
            return;
        }
        // Retries left, but not for this kind of failure: say so, rather than "attempt 1 of 3"
        // as if two more had been tried.
        let (attempts, message) = if n.attempts <= retries {
            let kind = if user { "user" } else { "system" };
            let only = if user { "system" } else { "user" };
            (
                attempt,
                format!("{message} (not retried: {kind} errors are not retried, the task retries only {only} errors)"),
            )
        } else {
            (retries.saturating_add(1), message)
        };
        let f = Failure {
            path: self.path(id),
            attempt,
            attempts,
            user,
            message,
            backtrace,
            stderr_tail: dropped_tail.or_else(|| {
                self.nodes[id as usize]
                    .logs
                    .as_ref()
                    .and_then(|l| tail(&l.stderr))
            }),
            cancelled: false,
        };
        self.fail_node(id, f);
    }

    fn depth_of(&self, id: NodeId) -> u32 {
        match self.nodes[id as usize].parent {
            Parent::Root => 0,
            Parent::Scope(s, _) => self.scopes[s as usize].depth,
            Parent::Map(m, _) => self.depth_of(m),
        }
    }

    fn succeed_node(&mut self, id: NodeId, output: Option<Value>) {
        let bytes = budget::output_bytes(&output);
        if let Err(o) = self.budget.charge(bytes) {
            let m = o.message(&format!("the output of {}", self.path(id)));
            return self.fail_node(id, self.internal_failure(id, m));
        }
        self.drop_inputs(id);
        let n = &mut self.nodes[id as usize];
        n.state = State::Succeeded;
        n.output = output;
        match n.parent {
            Parent::Root => {
                let out = self.nodes[0].output.take();
                self.finish(Ok(out));
            }
            Parent::Scope(s, j) => {
                if self.scopes[s as usize].over {
                    return;
                }
                let graph = self.scopes[s as usize].graph.clone();
                for &k in &graph.dependents[j as usize] {
                    let kid = self.scopes[s as usize].at(k);
                    let kn = &mut self.nodes[kid as usize];
                    kn.deps_left -= 1;
                    if kn.deps_left == 0 && kn.state == State::Waiting {
                        self.to_ready.push_back((s, k));
                    }
                }
                let scope = &mut self.scopes[s as usize];
                scope.remaining -= 1;
                if scope.remaining == 0 {
                    self.complete_scope(s);
                }
            }
            Parent::Map(m, _) => {
                if let Child::Map(ms) = &mut self.nodes[m as usize].child {
                    if ms.over {
                        return;
                    }
                    ms.running -= 1;
                    ms.ok += 1;
                }
                self.to_advance.push_back(m);
            }
        }
    }

    fn complete_scope(&mut self, s: u32) {
        let scope = &mut self.scopes[s as usize];
        let owner = scope.owner;
        if let Some(f) = scope.failure.take() {
            scope.over = true;
            return self.fail_node(owner, *f);
        }
        let scope = &self.scopes[s as usize];
        let out = match scope.graph.spec.output.clone() {
            Some(b) => match self.resolve(s, &b) {
                Ok(v) => Some(v),
                Err(m) => return self.fail_node(owner, self.internal_failure(owner, m)),
            },
            None => None,
        };
        let scope = &mut self.scopes[s as usize];
        scope.over = true;
        // Outputs inside a finished scope are not read again: free them.
        for id in scope.nodes() {
            let freed = self.nodes[id as usize].output.take();
            self.budget.release(budget::output_bytes(&freed));
        }
        self.succeed_node(owner, out);
    }

    fn fail_node(&mut self, id: NodeId, failure: Failure) {
        let n = &mut self.nodes[id as usize];
        if matches!(
            n.state,
            State::Failed | State::Succeeded | State::Skipped | State::Aborting | State::Aborted
        ) {
            return;
        }
        n.state = State::Failed;
        self.drop_inputs(id);
        self.cancel_children(id);
        match self.nodes[id as usize].parent {
            Parent::Root => self.finish(Err(failure)),
            Parent::Scope(s, _) => {
                if self.scopes[s as usize].over {
                    return;
                }
                if self.scopes[s as usize].graph.spec.on_failure == FailurePolicy::RunAll {
                    return self.fail_and_run_the_rest(s, id, failure);
                }
                // Fail fast: the rest of the scope will not be needed.
                self.scopes[s as usize].over = true;
                for sib in self.scopes[s as usize].nodes() {
                    if sib != id {
                        self.cancel_subtree(sib);
                    }
                }
                let owner = self.scopes[s as usize].owner;
                self.fail_node(owner, failure);
            }
            Parent::Map(m, _) => {
                let give_up = match &mut self.nodes[m as usize].child {
                    Child::Map(ms) if !ms.over => {
                        ms.running -= 1;
                        ms.failed += 1;
                        ms.allowed_failures.is_none_or(|a| ms.failed > a)
                    }
                    _ => return,
                };
                if give_up {
                    let (failed, total, ratio) = match &self.nodes[m as usize].child {
                        Child::Map(ms) => {
                            (ms.failed, ms.elements.len(), ms.allowed_failures.is_some())
                        }
                        _ => (0, 0, false),
                    };
                    let mut f = failure;
                    if ratio {
                        f.message = format!("{} (map: {failed} of {total} elements failed, more than min_success allows)", f.message);
                    }
                    self.fail_node(m, f);
                } else {
                    self.to_advance.push_back(m);
                }
            }
        }
    }

    /// `FailurePolicy::RunAll`: skip what depends on the failed node, let everything else
    /// run, and fail the scope's owner with the first failure once nothing is left.
    fn fail_and_run_the_rest(&mut self, s: u32, id: NodeId, failure: Failure) {
        let scope = &mut self.scopes[s as usize];
        scope.failure.get_or_insert_with(|| Box::new(failure));
        let mut finished = 1;
        let graph = scope.graph.clone();
        let Parent::Scope(_, j) = self.nodes[id as usize].parent else {
            return;
        };
        let mut stack = graph.dependents[j as usize].clone();
        while let Some(k) = stack.pop() {
            let kid = self.scopes[s as usize].at(k);
            let kn = &mut self.nodes[kid as usize];
            if kn.state == State::Waiting {
                kn.state = State::Skipped;
                finished += 1;
                stack.extend_from_slice(&graph.dependents[k as usize]);
            }
        }
        let scope = &mut self.scopes[s as usize];
        scope.remaining -= finished;
        if scope.remaining == 0 {
            self.complete_scope(s);
        }
    }

    /// Stops a node and everything under it: queued and waiting nodes are skipped, running
    /// ones aborted (their answers will be ignored).
    fn cancel_subtree(&mut self, id: NodeId) {
        let n = &mut self.nodes[id as usize];
        match n.state {
            State::Waiting | State::Queued => {
                n.state = State::Skipped;
                self.drop_inputs(id);
            }
            State::Running => {
                n.state = State::Aborting;
                let attempt = n.attempts;
                self.out.push(Command::Abort { node: id, attempt });
            }
            State::Expanded => {
                n.state = State::Aborted;
                self.cancel_children(id);
            }
            _ => {}
        }
    }

    /// Frees a node's kept inputs (charged when it was queued).
    fn drop_inputs(&mut self, id: NodeId) {
        if let Some(inputs) = self.nodes[id as usize].inputs.take() {
            self.budget.release(budget::values_bytes(&inputs));
        }
    }

    fn cancel_children(&mut self, id: NodeId) {
        let kids: Vec<NodeId> = match &mut self.nodes[id as usize].child {
            Child::Scope(s) | Child::Exec(_, s) => {
                let s = *s as usize;
                self.scopes[s].over = true;
                self.scopes[s].nodes().collect()
            }
            Child::Map(m) => {
                m.over = true;
                m.elements.clone()
            }
            Child::None => Vec::new(),
        };
        for k in kids {
            self.cancel_subtree(k);
        }
    }

    /// The node's path: entity names from the root, with `[i]` for repeated siblings and map
    /// elements.
    pub fn path(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            let n = &self.nodes[c as usize];
            let name = &self.decl.entities[n.entity as usize].name;
            match n.parent {
                Parent::Map(m, i) => {
                    parts.push(format!("[{i}]"));
                    cur = Some(m);
                    continue;
                }
                Parent::Root => cur = None,
                Parent::Scope(s, _) => cur = Some(self.scopes[s as usize].owner),
            }
            let seg = if n.ordinal == u32::MAX {
                name.clone()
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
            deps_left: 0,
            attempts: 0,
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
fn task_config(decl: &ModuleDecl, o: &TaskOverrides, entity: u32) -> TaskConfig {
    let mut c = match &decl.entities[entity as usize].kind {
        EntityKind::Task(c) | EntityKind::Dynamic(c) => c.clone(),
        _ => TaskConfig::default(),
    };
    c.retries = o.retries.unwrap_or(c.retries);
    c.timeout_ms = o.timeout_ms.or(c.timeout_ms);
    c.max_memory_mb = o.max_memory_mb.or(c.max_memory_mb);
    c.fuel = o.fuel.or(c.fuel);
    c
}

/// Bytes of stderr a failure carries at most: a flood without newlines is one long line.
const MAX_TAIL_BYTES: usize = 4096;

/// The last lines of a guest's stderr, for failure messages: at most 10 lines and
/// [`MAX_TAIL_BYTES`], cut at the front with `…`.
fn tail(stderr: &[u8]) -> Option<String> {
    if stderr.is_empty() {
        return None;
    }
    let s = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(10);
    let tail = lines[start..].join("\n");
    if tail.len() <= MAX_TAIL_BYTES {
        return Some(tail);
    }
    let mut cut = tail.len() - MAX_TAIL_BYTES;
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    Some(format!("…{}", &tail[cut..]))
}

#[cfg(test)]
mod tests;
