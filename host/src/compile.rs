//! The graph compiler: checks a graph spec against the module's interfaces before any node of
//! it runs. Every binding is type-checked; unknown entities and inputs, missing inputs, bad
//! node references and cycles are reported with the node they concern.

use sandflow_contract::failure_handler::ERROR_INPUT;
use sandflow_contract::{
    Binding, Branch, EntityDecl, EntityKind, GraphSpec, LaunchPlanSpec, NodeSpec, Param,
    TaskConfig, Type, Value,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

/// What the compiler reads of a module: its entities, found by name, and what its launch
/// plans fix or default. The module model ([`crate::module::ModuleDecl`]) implements it and
/// calls the compiler while it is built, so the compiler depends on this view and not on the
/// model.
pub trait Entities {
    /// Every entity, by index.
    fn entities(&self) -> &[EntityDecl];
    /// The index of the entity named `name`.
    fn index(&self, name: &str) -> Option<usize>;
    /// The default of input `input` (interface position) of entity `index`, if it has one.
    fn default_input(&self, index: usize, input: usize) -> Option<&Value>;
    /// Whether `name` is an input that entity `index` fixes (a launch plan's fixed input).
    fn is_fixed(&self, index: usize, name: &str) -> bool;

    /// The entity named `name`.
    fn get(&self, name: &str) -> Option<&EntityDecl> {
        self.index(name).map(|i| &self.entities()[i])
    }

    /// The names of all entities, for "unknown entity" messages.
    fn names(&self) -> String {
        self.entities()
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The scheduler holds its module behind an `Arc`.
impl<D: Entities> Entities for Arc<D> {
    fn entities(&self) -> &[EntityDecl] {
        (**self).entities()
    }
    fn index(&self, name: &str) -> Option<usize> {
        (**self).index(name)
    }
    fn default_input(&self, index: usize, input: usize) -> Option<&Value> {
        (**self).default_input(index, input)
    }
    fn is_fixed(&self, index: usize, name: &str) -> bool {
        (**self).is_fixed(index, name)
    }
    fn get(&self, name: &str) -> Option<&EntityDecl> {
        (**self).get(name)
    }
}

/// A graph that cannot run, and where (`<graph>` node `n3 (level2)`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct CompileError {
    pub location: String,
    pub message: String,
}

fn err(location: impl Into<String>, message: impl Into<String>) -> CompileError {
    CompileError {
        location: location.into(),
        message: message.into(),
    }
}

/// The entity index a conditional node has in a compiled graph: it calls no entity of the
/// module (its branches do).
pub const CONDITIONAL: u32 = u32::MAX;

/// The type a node's promise has: the entity's output, or a list of it for a map (of
/// optionals with a min success ratio); a conditional's is its first call branch's.
pub fn node_output_type(decl: &impl Entities, node: &NodeSpec) -> Option<Type> {
    if let Some(c) = &node.conditional {
        return c.branches().find_map(|b| match b {
            Branch::Node(n) => Some(node_output_type(decl, n)),
            Branch::Fail(_) => None,
        })?;
    }
    let out = decl.get(&node.entity)?.interface.output.clone()?;
    Some(match &node.map {
        None => out,
        Some(m) if m.min_success_ratio.is_some() || m.min_success.is_some() => {
            Type::List(Box::new(Type::Optional(Box::new(out))))
        }
        Some(_) => Type::List(Box::new(out)),
    })
}

/// Checks `graph`, built by `owner`. `inputs` are the inputs a workflow's bindings may name
/// (`None` for a dynamic's graph, whose inputs are already values); `output` is the type the
/// graph must return.
pub fn check_graph(
    decl: &impl Entities,
    graph: &GraphSpec,
    inputs: Option<&[Param]>,
    output: Option<&Type>,
    owner: &str,
) -> Result<(), CompileError> {
    let types: Vec<Option<Type>> = graph
        .nodes
        .iter()
        .map(|n| node_output_type(decl, n))
        .collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        // Formatted only for an error: a dynamic's graph can have thousands of nodes.
        let at = || format!("{owner}: node n{i} ({})", node.entity);
        if let Some(c) = &node.conditional {
            let at = || format!("{owner}: conditional `{}` (node n{i})", node.entity);
            crate::compile_conditional::check_conditional(decl, &types, i, node, c, inputs, &at)?;
            continue;
        }
        let Some(target) = decl.index(&node.entity) else {
            return Err(err(
                at(),
                format!(
                    "unknown entity `{}`; the module has: {}",
                    node.entity,
                    decl.names()
                ),
            ));
        };
        check_node(decl, &types, i, node, target, inputs, &at)?;
    }
    crate::compile_failure_handler::check_failure_handler(decl, graph, inputs, owner)?;
    match (&graph.output, output) {
        (None, None) => {}
        (Some(_), None) => {
            return Err(err(
                owner,
                "returns a value, but its interface declares no output",
            ))
        }
        (None, Some(t)) => {
            return Err(err(
                owner,
                format!("returns nothing, but its interface declares output {t}"),
            ))
        }
        (Some(b), Some(t)) => check_binding(&types, usize::MAX, b, t, inputs)
            .map_err(|m| err(format!("{owner}: output"), m))?,
    }
    check_acyclic(graph).map_err(|m| err(owner, m))
}

/// Checks node `i` of a graph, a call of entity `index` (or a branch of conditional node `i`).
pub(crate) fn check_node(
    decl: &impl Entities,
    types: &[Option<Type>],
    i: usize,
    node: &NodeSpec,
    index: usize,
    inputs: Option<&[Param]>,
    at: &dyn Fn() -> String,
) -> Result<(), CompileError> {
    let target = &decl.entities()[index];
    // Interfaces are short: a linear scan beats hashing, and allocates nothing.
    let mut bound: Vec<&str> = Vec::with_capacity(node.inputs.len());
    if let Some(m) = &node.map {
        if let Some(r) = m.min_success_ratio {
            if !(0.0..=1.0).contains(&r) || r.is_nan() {
                return Err(err(
                    at(),
                    format!("min_success_ratio must be within 0..=1, got {r}"),
                ));
            }
        }
        if m.concurrency == Some(0) {
            return Err(err(at(), "map concurrency must be at least 1"));
        }
        if m.mapped.is_empty() {
            return Err(err(at(), "a map needs at least one mapped input"));
        }
    }
    for (name, binding) in &node.inputs {
        if decl.is_fixed(index, name) {
            return Err(err(
                at(),
                format!(
                    "input `{name}` is fixed by launch plan {} and cannot be bound",
                    target.name
                ),
            ));
        }
        let Some(param) = target.interface.input(name) else {
            let expected_list = target
                .interface
                .inputs
                .iter()
                .map(|p| format!("{}: {}", p.name, p.ty))
                .collect::<Vec<_>>();
            return Err(err(
                at(),
                format!(
                    "unknown input `{name}`; {} takes ({})",
                    target.name,
                    expected_list.join(", ")
                ),
            ));
        };
        if bound.contains(&name.as_str()) {
            return Err(err(at(), format!("input `{name}` is bound twice")));
        }
        bound.push(name);
        let mapped = node
            .map
            .as_ref()
            .is_some_and(|m| m.mapped.iter().any(|n| n == name));
        let ty = if mapped {
            Cow::Owned(Type::List(Box::new(param.ty.clone())))
        } else {
            Cow::Borrowed(&param.ty)
        };
        check_binding(types, i, binding, &ty, inputs)
            .map_err(|m| err(at(), format!("input `{name}`: {m}")))?;
    }
    for &j in &node.after {
        if j as usize >= types.len() {
            return Err(err(
                at(),
                format!(
                    "waits for node n{j}, but the graph has {} nodes",
                    types.len()
                ),
            ));
        }
        if j as usize == i {
            return Err(err(at(), "waits for itself"));
        }
    }
    if let Some(m) = &node.map {
        for name in &m.mapped {
            if !bound.contains(&name.as_str()) {
                return Err(err(
                    at(),
                    format!("mapped input `{name}` is not bound to a list"),
                ));
            }
        }
    }
    for (k, p) in target.interface.inputs.iter().enumerate() {
        let name = p.name.as_str();
        if !bound.contains(&name) && decl.default_input(index, k).is_none() {
            return Err(err(
                at(),
                format!("missing input `{name}` ({}) of {}", p.ty, target.name),
            ));
        }
    }
    Ok(())
}

fn check_binding(
    types: &[Option<Type>],
    node: usize,
    b: &Binding,
    expected: &Type,
    inputs: Option<&[Param]>,
) -> Result<(), String> {
    match b {
        Binding::Literal(v) => v.check(expected).map_err(|e| format!("literal {e}")),
        Binding::Input(_)
        | Binding::Node(_)
        | Binding::Field { .. }
        | Binding::Index { .. }
        | Binding::Key { .. } => {
            let found = binding_type(types, node, b, inputs)?;
            same(&found, expected, || what(b))
        }
        Binding::List(items) => {
            let Type::List(elem) = expected else {
                return Err(format!("expected {expected}, found a list"));
            };
            for (k, item) in items.iter().enumerate() {
                check_binding(types, node, item, elem, inputs)
                    .map_err(|m| format!("[{k}]: {m}"))?;
            }
            Ok(())
        }
        Binding::Map(entries) => {
            let Type::Map(elem) = expected else {
                return Err(format!("expected {expected}, found a map"));
            };
            for (k, item) in entries {
                check_binding(types, node, item, elem, inputs)
                    .map_err(|m| format!("[{k:?}]: {m}"))?;
            }
            Ok(())
        }
        Binding::Record(items) => {
            let Type::Record(r) = expected else {
                return Err(format!("expected {expected}, found a record"));
            };
            if items.len() != r.fields.len() {
                return Err(format!(
                    "a record of {} fields built where {} ({} fields: {}) is expected",
                    items.len(),
                    r.name,
                    r.fields.len(),
                    field_names(r)
                ));
            }
            for (item, (name, ty)) in items.iter().zip(&r.fields) {
                check_binding(types, node, item, ty, inputs)
                    .map_err(|m| format!(".{name}: {m}"))?;
            }
            Ok(())
        }
    }
}

/// The type of what a binding reads (a workflow input, a node's output, or a field, element
/// or entry of one). Built values (literals, lists, maps, records) take the type expected
/// where they are bound, and are not read into.
pub(crate) fn binding_type(
    types: &[Option<Type>],
    node: usize,
    b: &Binding,
    inputs: Option<&[Param]>,
) -> Result<Type, String> {
    match b {
        Binding::Input(name) => {
            let Some(inputs) = inputs else {
                return Err(format!(
                    "refers to workflow input `{name}`, but a dynamic's graph has no inputs"
                ));
            };
            let p = inputs
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| format!("unknown workflow input `{name}`"))?;
            Ok(p.ty.clone())
        }
        Binding::Node(j) => {
            let j = *j as usize;
            if j >= types.len() {
                return Err(format!(
                    "refers to node n{j}, but the graph has {} nodes",
                    types.len()
                ));
            }
            if j == node {
                return Err(format!("node n{j} refers to its own output"));
            }
            types[j]
                .clone()
                .ok_or_else(|| format!("node n{j} returns nothing"))
        }
        Binding::Field { of, name, index } => match binding_type(types, node, of, inputs)? {
            Type::Record(r) => match r.fields.get(*index as usize) {
                Some((n, ty)) if n == name => Ok(ty.clone()),
                _ => Err(format!(
                    "{} has no field `{name}` (at position {index}); {} has: {}",
                    place(b),
                    r.name,
                    field_names(&r)
                )),
            },
            other => Err(format!(
                "{} reads field `{name}` of {}, which has type {other}, not a record",
                place(b),
                place(of)
            )),
        },
        Binding::Index { of, .. } => match binding_type(types, node, of, inputs)? {
            Type::List(elem) => Ok(*elem),
            other => Err(format!(
                "{} indexes {}, which has type {other}, not a list",
                place(b),
                place(of)
            )),
        },
        Binding::Key { of, .. } => match binding_type(types, node, of, inputs)? {
            Type::Map(elem) => Ok(*elem),
            other => Err(format!(
                "{} reads a key of {}, which has type {other}, not a map with string keys",
                place(b),
                place(of)
            )),
        },
        Binding::Literal(_) | Binding::List(_) | Binding::Map(_) | Binding::Record(_) => {
            Err(format!(
                "{} reads a part of a value built in the graph; field, element and key \
                 access read a node's output or a workflow input",
                place(b)
            ))
        }
    }
}

/// What a binding reads, for messages: `workflow input `x``, `the output of node n3`,
/// `n3.slope`.
fn what(b: &Binding) -> String {
    match b {
        Binding::Input(name) => format!("workflow input `{name}`"),
        Binding::Node(j) => format!("the output of node n{j}"),
        other => place(other),
    }
}

/// A binding as a path: `x`, `n3`, `n3.slope`, `n3[0]`, `n3["fruit"]`.
pub fn place(b: &Binding) -> String {
    match b {
        Binding::Input(name) => name.clone(),
        Binding::Node(j) => format!("n{j}"),
        Binding::Field { of, name, .. } => format!("{}.{name}", place(of)),
        Binding::Index { of, index } => format!("{}[{index}]", place(of)),
        Binding::Key { of, key } => format!("{}[{key:?}]", place(of)),
        Binding::Literal(_) => "a literal".into(),
        Binding::List(_) => "a list built in the graph".into(),
        Binding::Map(_) => "a map built in the graph".into(),
        Binding::Record(_) => "a record built in the graph".into(),
    }
}

fn field_names(r: &sandflow_contract::RecordType) -> String {
    r.fields
        .iter()
        .map(|(n, t)| format!("{n}: {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn same(found: &Type, expected: &Type, what: impl FnOnce() -> String) -> Result<(), String> {
    if found == expected {
        Ok(())
    } else {
        Err(format!("{} has type {found}, expected {expected}", what()))
    }
}

/// Node references and orderings form a DAG (Kahn's algorithm); names a node on a cycle
/// otherwise.
fn check_acyclic(graph: &GraphSpec) -> Result<(), String> {
    let n = graph.nodes.len();
    let mut indegree = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    each_dep(&graph.nodes, |i, d| {
        indegree[i] += 1;
        dependents[d].push(i);
    });
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = ready.pop() {
        seen += 1;
        for &k in &dependents[i] {
            indegree[k] -= 1;
            if indegree[k] == 0 {
                ready.push(k);
            }
        }
    }
    match (0..n).find(|&i| indegree[i] > 0) {
        Some(i) if seen < n => Err(format!(
            "node n{i} ({}) is on a cycle",
            graph.nodes[i].entity
        )),
        _ => Ok(()),
    }
}

/// Calls `f(i, j)` once for each distinct node `j` that node `i` reads the output of or waits
/// for (`after`; only in-range references), in a time linear in the size of the bindings: a reduce over n
/// promises has one node reading n others, and deduplicating by searching what was found
/// so far made that quadratic (400 000 promises took 48 s).
pub fn each_dep(nodes: &[NodeSpec], mut f: impl FnMut(usize, usize)) {
    fn walk(b: &Binding, i: usize, seen_by: &mut [usize], f: &mut impl FnMut(usize, usize)) {
        match b {
            Binding::Node(j) => {
                let j = *j as usize;
                // `seen_by[j]` is one more than the last node that read `j`.
                if let Some(s) = seen_by.get_mut(j) {
                    if *s != i + 1 {
                        *s = i + 1;
                        f(i, j);
                    }
                }
            }
            Binding::List(items) => items.iter().for_each(|b| walk(b, i, seen_by, f)),
            Binding::Map(items) => items.iter().for_each(|(_, b)| walk(b, i, seen_by, f)),
            Binding::Record(items) => items.iter().for_each(|b| walk(b, i, seen_by, f)),
            Binding::Field { of, .. } | Binding::Index { of, .. } | Binding::Key { of, .. } => {
                walk(of, i, seen_by, f)
            }
            Binding::Literal(_) | Binding::Input(_) => {}
        }
    }
    /// Node `node`'s reads, charged to graph node `i`: a conditional reads everything its
    /// conditions and branches read (explicit stack: conditionals nest as deep as a guest
    /// makes them).
    fn node_deps(
        node: &NodeSpec,
        i: usize,
        seen_by: &mut [usize],
        f: &mut impl FnMut(usize, usize),
    ) {
        let mut stack = vec![node];
        while let Some(node) = stack.pop() {
            node.inputs.iter().for_each(|(_, b)| walk(b, i, seen_by, f));
            // An ordering is an edge without a value: the same dependency for the scheduler.
            for &j in &node.after {
                walk(&Binding::Node(j), i, seen_by, f);
            }
            if let Some(c) = &node.conditional {
                for case in &c.cases {
                    case.when.operands(&mut |b| walk(b, i, seen_by, f));
                }
                stack.extend(c.branches().filter_map(|b| match b {
                    Branch::Node(n) => Some(n),
                    Branch::Fail(_) => None,
                }));
            }
        }
    }
    let mut seen_by = vec![0usize; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        node_deps(node, i, &mut seen_by, &mut f);
    }
}

/// A task's or dynamic's declared limits can be met: a limit of zero would fail every
/// attempt for a reason no retry changes, so it is refused when the module loads.
pub fn check_task_config(e: &EntityDecl, c: &TaskConfig) -> Result<(), CompileError> {
    let at = || format!("{} {}", e.kind.name(), e.name);
    if c.max_memory_mb == Some(0) {
        return Err(err(at(), "max_memory_mb must be at least 1"));
    }
    if c.timeout_ms == Some(0) {
        return Err(err(at(), "timeout_ms must be at least 1"));
    }
    Ok(())
}

/// Each input's declared default has the input's type: a guest whose SDK could not check it
/// (another SDK, hand-made bytes) is refused when it loads, not when the default is used.
pub fn check_defaults(e: &EntityDecl) -> Result<(), CompileError> {
    for p in &e.interface.inputs {
        if let Some(v) = &p.default {
            v.check(&p.ty).map_err(|m| {
                err(
                    format!("{} {}", e.kind.name(), e.name),
                    format!("default of input `{}`: {m}", p.name),
                )
            })?;
        }
    }
    Ok(())
}

/// A launch plan names a workflow of the module, declares a subset of its interface, and its
/// defaults and fixed inputs have the workflow's types.
pub fn check_launch_plan(
    decl: &impl Entities,
    lp: &EntityDecl,
    spec: &LaunchPlanSpec,
) -> Result<(), CompileError> {
    let at = format!("launch plan {}", lp.name);
    let Some(wf) = decl.get(&spec.workflow) else {
        return Err(err(
            at,
            format!(
                "unknown workflow `{}`; the module has: {}",
                spec.workflow,
                decl.names()
            ),
        ));
    };
    if !matches!(wf.kind, EntityKind::Workflow(_)) {
        return Err(err(
            at,
            format!(
                "`{}` is a {}, a launch plan needs a workflow",
                wf.name,
                wf.kind.name()
            ),
        ));
    }
    if spec.max_parallelism == Some(0) {
        return Err(err(at, "max_parallelism must be at least 1"));
    }
    for (kind, list) in [("default", &spec.defaults), ("fixed", &spec.fixed)] {
        for (name, value) in list {
            let p = wf.interface.input(name).ok_or_else(|| {
                err(
                    &at,
                    format!("{kind} input `{name}` is not an input of {}", wf.name),
                )
            })?;
            value
                .check(&p.ty)
                .map_err(|e| err(&at, format!("{kind} input `{name}`: {e}")))?;
        }
    }
    for p in &lp.interface.inputs {
        let w = wf.interface.input(&p.name).ok_or_else(|| {
            err(
                &at,
                format!("input `{}` is not an input of {}", p.name, wf.name),
            )
        })?;
        if w.ty != p.ty {
            return Err(err(
                &at,
                format!(
                    "input `{}` is declared {}, but {} takes {}",
                    p.name, p.ty, wf.name, w.ty
                ),
            ));
        }
        if spec.fixed.iter().any(|(n, _)| n == &p.name) {
            return Err(err(
                &at,
                format!("input `{}` is both fixed and a parameter", p.name),
            ));
        }
    }
    for w in &wf.interface.inputs {
        let covered = lp.interface.input(&w.name).is_some()
            || w.default.is_some()
            || spec
                .defaults
                .iter()
                .chain(&spec.fixed)
                .any(|(n, _)| n == &w.name);
        if !covered {
            return Err(err(
                &at,
                format!(
                    "workflow input `{}` ({}) is neither a parameter, a default nor fixed",
                    w.name, w.ty
                ),
            ));
        }
    }
    if lp.interface.output != wf.interface.output {
        let show = |t: &Option<Type>| {
            t.as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "nothing".into())
        };
        return Err(err(
            at,
            format!(
                "returns {}, but {} returns {}",
                show(&lp.interface.output),
                wf.name,
                show(&wf.interface.output)
            ),
        ));
    }
    Ok(())
}

/// A workflow that contains itself (directly, or through other workflows and launch plans)
/// would expand without end.
pub fn check_workflow_recursion(decl: &impl Entities) -> Result<(), CompileError> {
    fn children<'a>(decl: &'a impl Entities, e: &'a EntityDecl) -> Vec<&'a str> {
        match &e.kind {
            EntityKind::Workflow(g) => crate::compile_conditional::called_entities(&g.nodes),
            EntityKind::LaunchPlan(lp) => vec![lp.workflow.as_str()],
            _ => vec![],
        }
        .into_iter()
        .filter(|n| decl.get(n).is_some())
        .collect()
    }
    // Depth-first, with an explicit stack: the module decides how long a chain of workflows
    // calling workflows is, and a recursive walk would let it overflow the host's stack.
    let mut done: HashSet<&str> = HashSet::new();
    for root in decl.entities() {
        // (entity, its children, how many of them are visited)
        let mut path: Vec<(&str, Vec<&str>, usize)> = Vec::new();
        let mut on_path: HashSet<&str> = HashSet::new();
        if done.contains(root.name.as_str()) {
            continue;
        }
        path.push((&root.name, children(decl, root), 0));
        on_path.insert(&root.name);
        while let Some((name, kids, next)) = path.last_mut() {
            let Some(&child) = kids.get(*next) else {
                done.insert(name);
                on_path.remove(*name);
                path.pop();
                continue;
            };
            *next += 1;
            if done.contains(child) {
                continue;
            }
            if on_path.contains(child) {
                let pos = path.iter().position(|(n, _, _)| *n == child).unwrap_or(0);
                let mut cycle: Vec<&str> = path[pos..].iter().map(|(n, _, _)| *n).collect();
                cycle.push(child);
                return Err(err(
                    format!("workflow {}", cycle[0]),
                    format!("contains itself: {}", cycle.join(" -> ")),
                ));
            }
            let e = decl.get(child).expect("filtered to known entities");
            on_path.insert(child);
            path.push((child, children(decl, e), 0));
        }
    }
    Ok(())
}

/// A checked graph plus what the scheduler needs per node, computed once per graph (once per
/// workflow for the whole module, once per returned graph for a dynamic) rather than once per
/// scope that runs it.
#[derive(Debug)]
pub struct CompiledGraph {
    pub spec: GraphSpec,
    /// Each node's entity, as an index into the module's entities.
    pub entities: Vec<u32>,
    /// Each node's index among same-entity siblings, `u32::MAX` when its entity occurs once.
    pub ordinals: Vec<u32>,
    /// How many distinct nodes each node reads.
    pub deps: Vec<u32>,
    /// The nodes that read each node's output.
    pub dependents: Vec<Vec<u32>>,
    /// The branches of each conditional node, by node index (sorted).
    pub conditionals: Vec<(u32, Branches)>,
    /// The failure handler's node, the graph's last: it reads the workflow's inputs but is
    /// started only when the graph fails (the scheduler adds the error).
    pub handler: Option<u32>,
}

/// What a conditional node expands into.
#[derive(Debug)]
pub struct Branches {
    /// Its call and conditional branches as a graph of their own, the conditional's children.
    /// Their bindings read the enclosing graph, so no node of it waits for another.
    pub graph: Arc<CompiledGraph>,
    /// Each branch's node in `graph`, in the order the branches are tried (`otherwise`
    /// last); `None` for a failure branch.
    pub slots: Vec<Option<u32>>,
}

impl CompiledGraph {
    /// Indexes `spec`, which [`check_graph`] accepted.
    pub fn new(decl: &impl Entities, mut spec: GraphSpec) -> Result<CompiledGraph, CompileError> {
        let handler = match &spec.failure_handler {
            Some(name) => {
                let h = decl
                    .get(name)
                    .ok_or_else(|| err("failure handler", format!("unknown entity `{name}`")))?;
                // Every input but the error reads the workflow's input of its name (checked
                // by `check_failure_handler`).
                let inputs = h
                    .interface
                    .inputs
                    .iter()
                    .filter(|p| p.name != ERROR_INPUT)
                    .map(|p| (p.name.clone(), Binding::Input(p.name.clone())))
                    .collect();
                spec.nodes.push(NodeSpec {
                    entity: name.clone(),
                    inputs,
                    map: None,
                    after: Vec::new(),
                    conditional: None,
                });
                Some(spec.nodes.len() as u32 - 1)
            }
            None => None,
        };
        let mut g = Self::index(decl, spec, true)?;
        g.handler = handler;
        Ok(g)
    }

    /// The branches of conditional node `j`.
    pub fn branches(&self, j: u32) -> Option<&Branches> {
        let k = self
            .conditionals
            .binary_search_by_key(&j, |(i, _)| *i)
            .ok()?;
        Some(&self.conditionals[k].1)
    }

    /// Indexes `spec`; `deps` is false for a conditional's branches, whose bindings read the
    /// enclosing graph rather than their own.
    fn index(
        decl: &impl Entities,
        spec: GraphSpec,
        deps: bool,
    ) -> Result<CompiledGraph, CompileError> {
        let n = spec.nodes.len();
        let mut entities = Vec::with_capacity(n);
        let mut conditionals = Vec::new();
        let mut seen: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        for (i, node) in spec.nodes.iter().enumerate() {
            let e = match &node.conditional {
                Some(c) => {
                    let mut slots = Vec::new();
                    let mut nodes = Vec::new();
                    for b in c.branches() {
                        slots.push(match b {
                            Branch::Node(n) => {
                                nodes.push(n.clone());
                                Some(nodes.len() as u32 - 1)
                            }
                            Branch::Fail(_) => None,
                        });
                    }
                    let g = GraphSpec {
                        nodes,
                        ..Default::default()
                    };
                    let graph = Arc::new(Self::index(decl, g, false)?);
                    conditionals.push((i as u32, Branches { graph, slots }));
                    CONDITIONAL
                }
                None => decl.index(&node.entity).ok_or_else(|| {
                    err(
                        format!("node n{i}"),
                        format!("unknown entity `{}`", node.entity),
                    )
                })? as u32,
            };
            entities.push(e);
            *seen.entry(node.entity.as_str()).or_default() += 1;
        }
        let mut next: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let ordinals = spec
            .nodes
            .iter()
            .map(|node| {
                if seen[node.entity.as_str()] == 1 {
                    return u32::MAX;
                }
                let k = next.entry(node.entity.as_str()).or_default();
                *k += 1;
                *k - 1
            })
            .collect();
        let mut counts = vec![0u32; n];
        let mut dependents = vec![Vec::new(); n];
        if deps {
            each_dep(&spec.nodes, |i, j| {
                counts[i] += 1;
                dependents[j].push(i as u32);
            });
        }
        Ok(CompiledGraph {
            spec,
            entities,
            ordinals,
            deps: counts,
            dependents,
            conditionals,
            handler: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandflow_contract::{FailurePolicy, Interface, TaskConfig};

    /// A module of tasks only: all the compiler reads, without the module model.
    struct Tasks(Vec<EntityDecl>);

    impl Entities for Tasks {
        fn entities(&self) -> &[EntityDecl] {
            &self.0
        }
        fn index(&self, name: &str) -> Option<usize> {
            self.0.iter().position(|e| e.name == name)
        }
        fn default_input(&self, _: usize, _: usize) -> Option<&Value> {
            None
        }
        fn is_fixed(&self, _: usize, _: &str) -> bool {
            false
        }
    }

    fn task(name: &str, inputs: Vec<Param>) -> EntityDecl {
        EntityDecl {
            name: name.into(),
            interface: Interface {
                inputs,
                output: Some(Type::Int),
            },
            kind: EntityKind::Task(TaskConfig::default()),
        }
    }

    fn node(entity: &str, inputs: Vec<(String, Binding)>) -> NodeSpec {
        NodeSpec {
            entity: entity.into(),
            inputs,
            map: None,
            after: Vec::new(),
            conditional: None,
        }
    }

    #[test]
    fn a_reduce_over_400_000_promises_compiles_in_linear_time() {
        // The seed's shape: n nodes, and one node reading all of them (and the first one
        // twice, which counts once).
        let n = 400_000u32;
        let decl = Tasks(vec![
            task("one", vec![]),
            task(
                "sum",
                vec![Param {
                    name: "l".into(),
                    ty: Type::List(Box::new(Type::Int)),
                    default: None,
                }],
            ),
        ]);
        let mut nodes: Vec<NodeSpec> = (0..n).map(|_| node("one", vec![])).collect();
        let mut refs: Vec<Binding> = (0..n).map(Binding::Node).collect();
        refs.push(Binding::Node(0));
        nodes.push(node("sum", vec![("l".into(), Binding::List(refs))]));
        let spec = GraphSpec {
            nodes,
            output: Some(Binding::Node(n)),
            on_failure: FailurePolicy::FailFast,
            failure_handler: None,
        };
        check_graph(&decl, &spec, None, Some(&Type::Int), "reduce").unwrap();
        let g = CompiledGraph::new(&decl, spec).unwrap();
        let reduce = n as usize;
        assert_eq!(g.deps[reduce], n, "each promise counts once");
        assert!(g.deps[..reduce].iter().all(|&d| d == 0));
        assert!(g.dependents[..reduce].iter().all(|d| d.as_slice() == [n]));
        assert!(g.dependents[reduce].is_empty());
    }

    #[test]
    fn a_cycle_is_still_found_and_named() {
        let decl = Tasks(vec![task(
            "inc",
            vec![Param {
                name: "a".into(),
                ty: Type::Int,
                default: None,
            }],
        )]);
        let spec = GraphSpec {
            nodes: vec![
                node("inc", vec![("a".into(), Binding::Node(1))]),
                node("inc", vec![("a".into(), Binding::Node(0))]),
            ],
            output: None,
            on_failure: FailurePolicy::FailFast,
            failure_handler: None,
        };
        let e = check_graph(&decl, &spec, None, None, "loop").unwrap_err();
        assert_eq!(e.to_string(), "loop: node n0 (inc) is on a cycle");
    }

    fn after(mut n: NodeSpec, first: &[u32]) -> NodeSpec {
        n.after = first.to_vec();
        n
    }

    #[test]
    fn an_ordering_cycle_is_found_and_named() {
        // No data flows between the nodes: only `after` edges close the cycle.
        let decl = Tasks(vec![task("one", vec![])]);
        let spec = GraphSpec {
            nodes: vec![
                node("one", vec![]),
                after(node("one", vec![]), &[2]),
                after(node("one", vec![]), &[1]),
            ],
            output: None,
            on_failure: FailurePolicy::FailFast,
            failure_handler: None,
        };
        let e = check_graph(&decl, &spec, None, None, "loop").unwrap_err();
        assert_eq!(e.to_string(), "loop: node n1 (one) is on a cycle");
    }

    #[test]
    fn an_ordering_on_a_missing_node_or_itself_is_refused() {
        let decl = Tasks(vec![task("one", vec![])]);
        for (waits, expected) in [
            (
                5,
                "g: node n1 (one): waits for node n5, but the graph has 2 nodes",
            ),
            (1, "g: node n1 (one): waits for itself"),
        ] {
            let spec = GraphSpec {
                nodes: vec![node("one", vec![]), after(node("one", vec![]), &[waits])],
                output: None,
                on_failure: FailurePolicy::FailFast,
                failure_handler: None,
            };
            let e = check_graph(&decl, &spec, None, None, "g").unwrap_err();
            assert_eq!(e.to_string(), expected);
        }
    }

    #[test]
    fn an_ordering_is_a_dependency_counted_once_beside_data() {
        let decl = Tasks(vec![
            task("one", vec![]),
            task(
                "inc",
                vec![Param {
                    name: "a".into(),
                    ty: Type::Int,
                    default: None,
                }],
            ),
        ]);
        let spec = GraphSpec {
            nodes: vec![
                node("one", vec![]),
                node("one", vec![]),
                // Reads n0 and waits for n0 (again, counted once) and n1.
                after(
                    node("inc", vec![("a".into(), Binding::Node(0))]),
                    &[0, 1, 1],
                ),
            ],
            output: Some(Binding::Node(2)),
            on_failure: FailurePolicy::FailFast,
            failure_handler: None,
        };
        check_graph(&decl, &spec, None, Some(&Type::Int), "g").unwrap();
        let g = CompiledGraph::new(&decl, spec).unwrap();
        assert_eq!(g.deps, [0, 0, 2]);
        assert_eq!(g.dependents[0], [2]);
        assert_eq!(g.dependents[1], [2]);
    }

    /// A task `make` returning a `Fruit { name: string }`, and `show(message: string)`.
    fn fruit_module() -> Tasks {
        let fruit = Type::Record(sandflow_contract::RecordType {
            name: "Fruit".into(),
            fields: vec![("name".into(), Type::Str)],
        });
        let mut make = task("make", vec![]);
        make.interface.output = Some(fruit);
        let show = task(
            "show",
            vec![Param {
                name: "message".into(),
                ty: Type::Str,
                default: None,
            }],
        );
        Tasks(vec![make, show])
    }

    fn reading(b: Binding) -> GraphSpec {
        GraphSpec {
            nodes: vec![
                node("make", vec![]),
                node("show", vec![("message".into(), b)]),
            ],
            output: None,
            on_failure: FailurePolicy::FailFast,
            failure_handler: None,
        }
    }

    fn field(of: Binding, name: &str, index: u32) -> Binding {
        Binding::Field {
            of: Box::new(of),
            name: name.into(),
            index,
        }
    }

    #[test]
    fn a_field_of_a_nodes_output_type_checks_by_name_and_position() {
        let decl = fruit_module();
        let ok = reading(field(Binding::Node(0), "name", 0));
        check_graph(&decl, &ok, None, None, "wf").unwrap();
        let g = CompiledGraph::new(&decl, ok).unwrap();
        assert_eq!(g.deps, [0, 1], "reading a field of n0 waits for n0");
    }

    #[test]
    fn a_field_that_does_not_exist_is_a_load_error_naming_node_input_and_fields() {
        let decl = fruit_module();
        let e = check_graph(
            &decl,
            &reading(field(Binding::Node(0), "colour", 0)),
            None,
            None,
            "wf",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "wf: node n1 (show): input `message`: n0.colour has no field `colour` (at position \
             0); Fruit has: name: string"
        );
        let e = check_graph(
            &decl,
            &reading(field(Binding::Node(0), "name", 3)),
            None,
            None,
            "wf",
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("n0.name has no field `name` (at position 3)"),
            "{e}"
        );
    }

    #[test]
    fn reading_into_what_is_not_a_record_list_or_map_is_a_load_error() {
        let decl = fruit_module();
        let nested = field(field(Binding::Node(0), "name", 0), "x", 0);
        let e = check_graph(&decl, &reading(nested), None, None, "wf").unwrap_err();
        assert!(
            e.message.contains(
                "n0.name.x reads field `x` of n0.name, which has type string, not a record"
            ),
            "{e}"
        );
        let index = Binding::Index {
            of: Box::new(Binding::Node(0)),
            index: 0,
        };
        let e = check_graph(&decl, &reading(index), None, None, "wf").unwrap_err();
        assert!(
            e.message
                .contains("n0[0] indexes n0, which has type Fruit, not a list"),
            "{e}"
        );
        let built = field(Binding::Record(vec![]), "name", 0);
        let e = check_graph(&decl, &reading(built), None, None, "wf").unwrap_err();
        assert!(
            e.message
                .contains("reads a part of a value built in the graph"),
            "{e}"
        );
    }

    #[test]
    fn a_record_built_from_bindings_has_one_binding_of_each_fields_type() {
        let mut decl = fruit_module();
        decl.0[1].interface.inputs[0].ty = decl.0[0].interface.output.clone().unwrap();
        let ok = reading(Binding::Record(vec![Binding::Literal(Value::Str(
            "kiwi".into(),
        ))]));
        check_graph(&decl, &ok, None, None, "wf").unwrap();
        let e =
            check_graph(&decl, &reading(Binding::Record(vec![])), None, None, "wf").unwrap_err();
        assert!(
            e.message.contains(
                "a record of 0 fields built where Fruit (1 fields: name: string) is expected"
            ),
            "{e}"
        );
        let wrong = reading(Binding::Record(vec![Binding::Literal(Value::Int(1))]));
        let e = check_graph(&decl, &wrong, None, None, "wf").unwrap_err();
        assert!(
            e.message
                .contains(".name: literal expected string, found an integer"),
            "{e}"
        );
    }
}
