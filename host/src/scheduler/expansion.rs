//! How nodes start and complete: a task or dynamic is queued for a sandbox, a workflow or
//! launch plan expands into a scope (a launch plan in its own child execution), a mapped call
//! into its elements; a node whose inputs are all there is resolved and started; a scope or
//! map whose nodes all succeeded completes its owner.

use super::{
    budget, Change, Child, Exec, MapState, Node, Parent, Scheduler, Scope, ScopeId, State,
};
use super::{ExecId, NodeId};
use crate::compile::CompiledGraph;
use sandflow_contract::{Binding, EntityKind, MapSpec, Value};
use std::collections::VecDeque;
use std::sync::Arc;

impl Scheduler {
    /// A node has its inputs: run it (task, dynamic) or expand it (workflow, launch plan).
    pub(super) fn start_node(&mut self, id: NodeId, inputs: Vec<Value>, depth: u32) {
        let decl = self.decl.clone();
        let e = &decl.entities[self.nodes[id as usize].entity as usize];
        // A launch plan call of the top execution that the driver runs elsewhere: one
        // attempt, its child execution. As an expanded call's would, the child's tasks count
        // against the child's parallelism, not the caller's: the call takes no slot here.
        if matches!(e.kind, EntityKind::LaunchPlan(_))
            && self.opts.delegate_launch_plans
            && self.nodes[id as usize].exec == 0
            && self.nodes[id as usize].parent != Parent::Root
        {
            if self.hold_inputs(id, inputs, &e.name) {
                self.delegated.push_back(id);
                self.to_dispatch.push(0);
            }
            return;
        }
        match &e.kind {
            EntityKind::Task(_) | EntityKind::Dynamic(_) => {
                let dynamic = matches!(e.kind, EntityKind::Dynamic(_));
                if self.opts.recovered.is_some() && self.reuse_recorded(id, dynamic) {
                    return;
                }
                if self.hold_inputs(id, inputs, &e.name) {
                    let exec = self.nodes[id as usize].exec;
                    self.execs[exec as usize].queue.push_back(id);
                    self.to_dispatch.push(exec);
                }
            }
            EntityKind::Workflow(_) => {
                let exec = self.nodes[id as usize].exec;
                self.nodes[id as usize].state = State::Expanded;
                self.note_node(id);
                let entity = self.nodes[id as usize].entity as usize;
                let Some(graph) = decl.graph(entity).cloned() else {
                    let m = format!("workflow {} has no compiled graph", e.name);
                    return self.fail_node(id, self.graph_failure(id, m));
                };
                if let Err(m) = self.create_scope(id, exec, graph, inputs, depth + 1) {
                    self.fail_node(id, self.graph_failure(id, m));
                }
            }
            EntityKind::LaunchPlan(_) => {
                let entity = self.nodes[id as usize].entity as usize;
                // Resolved when the module loaded: the workflow, and where each of its inputs
                // comes from (the caller, a default, or a fixed value).
                let Some(plan) = decl.plan(entity) else {
                    let m = format!("launch plan {} was not resolved", e.name);
                    return self.fail_node(id, self.graph_failure(id, m));
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
                    let child = (self.execs.len() - 1) as ExecId;
                    if self.journaling() {
                        let caller = self.nodes[id as usize].exec;
                        self.note(Change::Execution {
                            execution: child,
                            node: id,
                            caller,
                        });
                    }
                    child
                };
                self.nodes[id as usize].state = State::Expanded;
                self.note_node(id);
                let Some(graph) = decl.graph(wf_index).cloned() else {
                    let m = format!(
                        "workflow {} has no compiled graph",
                        decl.entities[wf_index].name
                    );
                    return self.fail_node(id, self.graph_failure(id, m));
                };
                if let Err(m) = self.create_scope(id, exec, graph, wf_inputs, depth + 1) {
                    self.fail_node(id, self.graph_failure(id, m));
                }
            }
        }
    }

    /// Keeps `inputs` for node `id`'s attempts and marks it queued, charging them to the
    /// run's memory budget; false (the node failed) when the budget has no room.
    fn hold_inputs(&mut self, id: NodeId, inputs: Vec<Value>, name: &str) -> bool {
        if let Err(o) = self.budget.charge(budget::values_bytes(&inputs)) {
            let m = o.message(&format!("{name}'s inputs"));
            self.fail_node(id, self.graph_failure(id, m));
            return false;
        }
        let n = &mut self.nodes[id as usize];
        n.inputs = Some(inputs.into_boxed_slice());
        n.state = State::Queued;
        true
    }

    /// Instantiates `graph` as the children of `owner`, and starts what can start.
    pub(super) fn create_scope(
        &mut self,
        owner: NodeId,
        exec: ExecId,
        graph: Arc<CompiledGraph>,
        inputs: Vec<Value>,
        depth: u32,
    ) -> Result<(), String> {
        let s = self.new_scope(owner, exec, graph, inputs, depth)?;
        let (first, n) = (self.scopes[s.index()].first, self.scopes[s.index()].len);
        // The failure handler, the graph's last node, starts only if the graph fails.
        let n = n - self.scopes[s.index()].graph.handler.is_some() as u32;
        if n == 0 {
            self.complete_scope(s);
            return Ok(());
        }
        for j in 0..n {
            // A node that ends as it starts may already have readied a later one, or failed
            // the scope and skipped the rest: start only nodes still waiting.
            let node = &self.nodes[(first + j) as usize];
            if node.deps_left == 0 && node.state == State::Waiting {
                self.ready(s, j);
            }
        }
        Ok(())
    }

    /// Instantiates `graph`'s nodes as the children of `owner`, all waiting.
    pub(super) fn new_scope(
        &mut self,
        owner: NodeId,
        exec: ExecId,
        graph: Arc<CompiledGraph>,
        inputs: Vec<Value>,
        depth: u32,
    ) -> Result<ScopeId, String> {
        if depth > self.opts.max_depth {
            return Err(format!(
                "graphs nest deeper than {} levels (max_depth): is a dynamic expanding itself without end?",
                self.opts.max_depth
            ));
        }
        let n = graph.spec.nodes.len();
        self.room_for(n)?;
        let bytes = budget::nodes_bytes(n)
            + std::mem::size_of::<Scope>() as u64
            + budget::values_bytes(&inputs);
        self.budget
            .charge(bytes)
            .map_err(|o| o.message(&format!("a graph of {n} nodes")))?;
        let s = ScopeId(self.scopes.len() as u32);
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
            reads: s,
            owner,
            first,
            len: n as u32,
            remaining: n - graph.handler.is_some() as usize,
            depth,
            over: false,
            failure: None,
        });
        self.nodes[owner as usize].child = match self.nodes[owner as usize].child {
            Child::None if exec != self.nodes[owner as usize].exec => Child::Exec(exec, s),
            _ => Child::Scope(s),
        };
        Ok(s)
    }

    /// The value binding `b` reads in scope `s`: a literal, a workflow input, a node's output
    /// or a part of one, or a list, map or record built from bindings.
    fn resolve(&self, s: ScopeId, b: &Binding) -> Result<Value, String> {
        Ok(match b {
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
            Binding::Record(items) => Value::Record(
                items
                    .iter()
                    .map(|b| self.resolve(s, b))
                    .collect::<Result<_, _>>()?,
            ),
            // Only the part read is cloned, not the whole output it is taken from.
            read => self.read(s, read)?.clone(),
        })
    }

    /// The value a reading binding (literal, workflow input, node output, or a field, element
    /// or entry of one) stands for in scope `s`, borrowed where it lives.
    pub(super) fn read<'a>(&'a self, s: ScopeId, b: &'a Binding) -> Result<&'a Value, String> {
        // A conditional's branch reads the graph the conditional is in.
        let scope = &self.scopes[self.scopes[s.index()].reads.index()];
        match b {
            Binding::Literal(v) => Ok(v),
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
                    .ok_or_else(|| format!("no input {name}"))
            }
            Binding::Node(j) => {
                let id = scope.node(*j).ok_or_else(|| format!("no node n{j}"))?;
                self.nodes[id as usize]
                    .output
                    .as_ref()
                    .ok_or_else(|| format!("node n{j} has no output"))
            }
            Binding::Field { of, name, index } => match self.read(s, of)? {
                Value::Record(fields) => fields.get(*index as usize).ok_or_else(|| {
                    format!(
                        "{}: the record has no field `{name}`",
                        crate::compile::place(b)
                    )
                }),
                other => Err(format!(
                    "{}: expected a record, found {}",
                    crate::compile::place(b),
                    other.kind()
                )),
            },
            Binding::Index { of, index } => match self.read(s, of)? {
                Value::List(items) => items.get(*index as usize).ok_or_else(|| {
                    format!(
                        "{}: index {index} is out of range of a list of {} elements",
                        crate::compile::place(b),
                        items.len()
                    )
                }),
                other => Err(format!(
                    "{}: expected a list, found {}",
                    crate::compile::place(b),
                    other.kind()
                )),
            },
            Binding::Key { of, key } => match self.read(s, of)? {
                Value::Map(entries) => entries.get(key).ok_or_else(|| {
                    let keys: Vec<&str> = entries.keys().map(String::as_str).take(10).collect();
                    format!(
                        "{}: the map has no key {key:?} (its keys: {})",
                        crate::compile::place(b),
                        if keys.is_empty() {
                            "none".to_string()
                        } else {
                            keys.join(", ")
                        }
                    )
                }),
                other => Err(format!(
                    "{}: expected a map, found {}",
                    crate::compile::place(b),
                    other.kind()
                )),
            },
            Binding::List(_) | Binding::Map(_) | Binding::Record(_) => {
                Err(format!("{} is built, not read", crate::compile::place(b)))
            }
        }
    }

    /// Node `j` of scope `s` has all it reads: resolve its inputs and start it.
    pub(super) fn ready(&mut self, s: ScopeId, j: u32) {
        let scope = &self.scopes[s.index()];
        let graph = scope.graph.clone();
        let depth = scope.depth;
        let id = scope.at(j);
        // A node the recovered execution finished is not started at all: its recorded
        // output stands for it and everything under it (a launch plan's child execution,
        // a map's elements, a workflow's scope).
        if self.opts.recovered.is_some() && self.reuse_output(id) {
            return;
        }
        if self.is_conditional(id) {
            return self.start_conditional(s, j, id, depth);
        }
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
                    return self.fail_node(id, self.graph_failure(id, m));
                };
                inputs.push(v.clone());
                mapped.push(false);
                continue;
            };
            match self.resolve(s, b) {
                Ok(v) => inputs.push(v),
                Err(m) => {
                    let m = format!("input `{name}`: {m}");
                    return self.fail_node(id, self.graph_failure(id, m));
                }
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

    /// Map node `id` has its inputs: one element per item of its mapped lists, started as the
    /// map's concurrency allows.
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
                        let f = self.graph_failure(
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
        if let Err(m) = self.room_for(n) {
            return self.fail_node(id, self.graph_failure(id, m));
        }
        let bytes = budget::nodes_bytes(n)
            + (n * std::mem::size_of::<NodeId>()) as u64
            + budget::values_bytes(&inputs);
        if let Err(o) = self.budget.charge(bytes) {
            let m = o.message(&format!("a map of {n} elements"));
            return self.fail_node(id, self.graph_failure(id, m));
        }
        let (entity, exec) = (self.nodes[id as usize].entity, self.nodes[id as usize].exec);
        let mut elements = Vec::with_capacity(n);
        for i in 0..n {
            self.nodes
                .push(Node::new(entity, Parent::Map(id, i as u32), exec, i as u32));
            elements.push((self.nodes.len() - 1) as NodeId);
        }
        if let Some(k) = spec.min_success.filter(|&k| k as usize > n) {
            let f = self.graph_failure(
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
        self.note_node(id);
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
    pub(super) fn advance_map(&mut self, id: NodeId, depth: u32) {
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

    /// `id` succeeded with `output`: its dependents may become ready, and its scope or map
    /// may complete.
    pub(super) fn succeed_node(&mut self, id: NodeId, output: Option<Value>) {
        let bytes = budget::output_bytes(&output);
        if let Err(o) = self.budget.charge(bytes) {
            let m = o.message(&format!("the output of {}", self.path(id)));
            return self.fail_node(id, self.graph_failure(id, m));
        }
        self.drop_inputs(id);
        let n = &mut self.nodes[id as usize];
        n.state = State::Succeeded;
        if self.journal.is_some() {
            let change = Change::Node {
                node: id,
                output: output.clone(),
            };
            self.note(change);
        }
        let n = &mut self.nodes[id as usize];
        n.output = output;
        match n.parent {
            Parent::Root => {
                let out = self.nodes[0].output.take();
                self.finish(Ok(out));
            }
            Parent::Scope(s, j) => {
                if self.scopes[s.index()].graph.handler == Some(j) {
                    return self.handler_ended(s, id, None);
                }
                if self.scopes[s.index()].over {
                    return;
                }
                let graph = self.scopes[s.index()].graph.clone();
                for &k in &graph.dependents[j as usize] {
                    let kid = self.scopes[s.index()].at(k);
                    let kn = &mut self.nodes[kid as usize];
                    kn.deps_left -= 1;
                    if kn.deps_left == 0 && kn.state == State::Waiting {
                        self.to_ready.push_back((s, k));
                    }
                }
                let scope = &mut self.scopes[s.index()];
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

    /// Every node of scope `s` has ended: its owner fails with the failure the scope held
    /// (`FailurePolicy::RunAll`), or succeeds with the scope's output.
    pub(super) fn complete_scope(&mut self, s: ScopeId) {
        let scope = &mut self.scopes[s.index()];
        let owner = scope.owner;
        if let Some(f) = scope.failure.take() {
            scope.over = true;
            return self.fail_scope(s, *f);
        }
        self.skip_handler(s);
        let scope = &self.scopes[s.index()];
        let out = match scope.graph.spec.output.clone() {
            // A conditional's branches: the output of the one that ran.
            None if self.is_conditional(owner) => self.branch_output(s),
            Some(b) => match self.resolve(s, &b) {
                Ok(v) => Some(v),
                Err(m) => return self.fail_node(owner, self.graph_failure(owner, m)),
            },
            None => None,
        };
        let scope = &mut self.scopes[s.index()];
        scope.over = true;
        // Outputs inside a finished scope are not read again: free them.
        for id in scope.nodes() {
            let freed = self.nodes[id as usize].output.take();
            self.budget.release(budget::output_bytes(&freed));
        }
        self.succeed_node(owner, out);
    }

    /// Whether the run may create `n` more nodes (`Options::max_nodes`).
    fn room_for(&self, n: usize) -> Result<(), String> {
        if self.nodes.len().saturating_add(n) > self.opts.max_nodes {
            return Err(format!(
                "the run would create more than {} nodes (max_nodes)",
                self.opts.max_nodes
            ));
        }
        Ok(())
    }

    /// A new node, if the run may have one more.
    fn new_node(
        &mut self,
        entity: u32,
        parent: Parent,
        exec: ExecId,
        ordinal: u32,
    ) -> Result<NodeId, String> {
        self.room_for(1)?;
        self.nodes.push(Node::new(entity, parent, exec, ordinal));
        Ok((self.nodes.len() - 1) as NodeId)
    }
}
