//! What the scheduler's tests share: hand-built modules, canned events, and a fake executor
//! ([`drive`]) that answers every `Run` command with a closure, so whole programs (the seed's
//! nested one among them) run deterministically. No wasm runs in these tests.

pub(super) use crate::module::ModuleDecl;
pub(super) use crate::scheduler::*;
pub(super) use sandflow_contract::{
    Binding, CallResult, EntityDecl, EntityKind, GraphSpec, Interface, LaunchPlanSpec, MapSpec,
    NodeSpec, Param, RetryOn, TaskConfig, Type, Value,
};
pub(super) use std::collections::{HashSet, VecDeque};
pub(super) use std::sync::Arc;

// ---- building modules ----------------------------------------------------------------------

pub(super) fn list(t: Type) -> Type {
    Type::List(Box::new(t))
}

pub(super) fn optional(t: Type) -> Type {
    Type::Optional(Box::new(t))
}

pub(super) fn entity(
    name: &str,
    inputs: &[(&str, Type)],
    output: Option<Type>,
    kind: EntityKind,
) -> EntityDecl {
    EntityDecl {
        name: name.into(),
        interface: Interface {
            inputs: inputs
                .iter()
                .map(|(n, ty)| Param {
                    name: (*n).into(),
                    ty: ty.clone(),
                    default: None,
                })
                .collect(),
            output,
        },
        kind,
    }
}

pub(super) fn task(name: &str, inputs: &[(&str, Type)], output: Option<Type>) -> EntityDecl {
    entity(
        name,
        inputs,
        output,
        EntityKind::Task(TaskConfig::default()),
    )
}

pub(super) fn task_with_retries(
    name: &str,
    inputs: &[(&str, Type)],
    output: Option<Type>,
    retries: u32,
) -> EntityDecl {
    let config = TaskConfig {
        retries,
        ..TaskConfig::default()
    };
    entity(name, inputs, output, EntityKind::Task(config))
}

pub(super) fn dynamic(name: &str, inputs: &[(&str, Type)], output: Option<Type>) -> EntityDecl {
    entity(
        name,
        inputs,
        output,
        EntityKind::Dynamic(TaskConfig::default()),
    )
}

pub(super) fn workflow(
    name: &str,
    inputs: &[(&str, Type)],
    output: Option<Type>,
    nodes: Vec<NodeSpec>,
    out: Option<Binding>,
) -> EntityDecl {
    let graph = GraphSpec {
        nodes,
        output: out,
        ..GraphSpec::default()
    };
    entity(name, inputs, output, EntityKind::Workflow(graph))
}

pub(super) fn launch_plan(
    name: &str,
    inputs: &[(&str, Type)],
    output: Option<Type>,
    spec: LaunchPlanSpec,
) -> EntityDecl {
    entity(name, inputs, output, EntityKind::LaunchPlan(spec))
}

pub(super) fn plan(workflow: &str) -> LaunchPlanSpec {
    LaunchPlanSpec {
        workflow: workflow.into(),
        defaults: Vec::new(),
        fixed: Vec::new(),
        max_parallelism: None,
    }
}

pub(super) fn call(entity: &str, inputs: &[(&str, Binding)]) -> NodeSpec {
    NodeSpec {
        entity: entity.into(),
        inputs: inputs
            .iter()
            .map(|(n, b)| ((*n).to_string(), b.clone()))
            .collect(),
        map: None,
        after: Vec::new(),
        conditional: None,
    }
}

pub(super) fn map_call(
    entity: &str,
    inputs: &[(&str, Binding)],
    mapped: &[&str],
    concurrency: Option<u32>,
    min_success_ratio: Option<f64>,
) -> NodeSpec {
    NodeSpec {
        map: Some(MapSpec {
            mapped: mapped.iter().map(|m| m.to_string()).collect(),
            concurrency,
            min_success_ratio,
            min_success: None,
        }),
        ..call(entity, inputs)
    }
}

pub(super) fn input(name: &str) -> Binding {
    Binding::Input(name.into())
}

pub(super) fn node(j: usize) -> Binding {
    Binding::Node(j as u32)
}

pub(super) fn lit(v: Value) -> Binding {
    Binding::Literal(v)
}

pub(super) fn module(entities: Vec<EntityDecl>) -> Arc<ModuleDecl> {
    Arc::new(ModuleDecl::new(entities).expect("the test module compiles"))
}

// ---- values --------------------------------------------------------------------------------

pub(super) fn ints(xs: impl IntoIterator<Item = i64>) -> Value {
    Value::List(xs.into_iter().map(Value::Int).collect())
}

pub(super) fn int_of(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

pub(super) fn list_of(v: &Value) -> &[Value] {
    match v {
        Value::List(items) => items,
        other => panic!("expected a list, got {other:?}"),
    }
}

pub(super) fn ints_of(v: &Value) -> Vec<i64> {
    list_of(v).iter().map(int_of).collect()
}

// ---- events and commands -------------------------------------------------------------------

pub(super) fn output(v: Value) -> Outcome {
    Outcome::Returned(CallResult::Output(Some(v)))
}

pub(super) fn graph(nodes: Vec<NodeSpec>, out: Option<Binding>) -> Outcome {
    Outcome::Returned(CallResult::Graph(GraphSpec {
        nodes,
        output: out,
        ..GraphSpec::default()
    }))
}

pub(super) fn fail(message: &str) -> Outcome {
    Outcome::Failed(AttemptFailure {
        user: true,
        message: message.into(),
        backtrace: None,
    })
}

pub(super) fn attempted(node: NodeId, attempt: u32, outcome: Outcome) -> Event {
    Event::Attempted {
        node,
        attempt,
        outcome,
        timing: Timing::default(),
        worker: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

pub(super) fn answer(run: &RunTask, outcome: Outcome) -> Event {
    attempted(run.node, run.attempt, outcome)
}

pub(super) fn runs(cmds: &[Command]) -> Vec<RunTask> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Run(r) | Command::Launch(r) => Some(r.clone()),
            Command::Abort { .. } | Command::Finished(_) => None,
        })
        .collect()
}

pub(super) fn aborts(cmds: &[Command]) -> usize {
    cmds.iter()
        .filter(|c| matches!(c, Command::Abort { .. }))
        .count()
}

/// The one `Finished` command of `cmds`, which must be their last.
pub(super) fn finished(cmds: &[Command]) -> Result<Option<Value>, Failure> {
    match cmds.last() {
        Some(Command::Finished(r)) => {
            assert_eq!(
                runs(cmds).len() + aborts(cmds) + 1,
                cmds.len(),
                "a Run after Finished: {cmds:?}"
            );
            r.clone()
        }
        _ => panic!("expected the run to finish, got {cmds:?}"),
    }
}

pub(super) fn paths(s: &Scheduler, runs: &[RunTask]) -> Vec<String> {
    runs.iter().map(|r| s.path(r.node)).collect()
}

pub(super) fn options(max_parallelism: u32) -> Options {
    Options {
        max_parallelism,
        ..Options::default()
    }
}

// ---- the fake executor ---------------------------------------------------------------------

/// What a whole run did under the fake executor.
pub(super) struct Played {
    pub(super) sched: Scheduler,
    pub(super) result: Result<Option<Value>, Failure>,
    /// Every Run command, with its node path, in the order the scheduler issued them.
    pub(super) runs: Vec<(String, RunTask)>,
    /// The most Run commands unanswered at once.
    pub(super) max_outstanding: usize,
    /// Every event the scheduler was fed, in order: what a durable store would keep.
    pub(super) events: Vec<Event>,
}

impl Played {
    pub(super) fn value(&self) -> &Value {
        match &self.result {
            Ok(Some(v)) => v,
            other => panic!("expected a value, got {other:?}"),
        }
    }

    pub(super) fn failure(&self) -> &Failure {
        match &self.result {
            Err(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// Attempts the run started of `entity`.
    pub(super) fn count(&self, entity: &str) -> usize {
        let decl = self.sched.decl();
        self.runs
            .iter()
            .filter(|(_, r)| decl.entities[r.entity as usize].name == entity)
            .count()
    }
}

/// Plays an executor: answers outstanding Run commands oldest first with `answer(entity,
/// inputs, attempt)` until none is left, checking that exactly one `Finished` comes and that
/// nothing follows it (answers of aborted attempts included).
pub(super) fn drive(
    mut sched: Scheduler,
    first: Vec<Command>,
    mut answer: impl FnMut(&str, &[Value], u32) -> Outcome,
) -> Played {
    let mut pending = VecDeque::new();
    let mut log = Vec::new();
    let mut result = None;
    let mut max_outstanding = 0;
    let mut clock = 0;
    let mut events = Vec::new();
    let mut absorb = |sched: &Scheduler,
                      cmds: Vec<Command>,
                      pending: &mut VecDeque<RunTask>,
                      result: &mut Option<Result<Option<Value>, Failure>>| {
        for c in cmds {
            assert!(result.is_none(), "a command after Finished: {c:?}");
            match c {
                Command::Run(r) | Command::Launch(r) => {
                    log.push((sched.path(r.node), r.clone()));
                    pending.push_back(r);
                }
                Command::Finished(r) => *result = Some(r),
                // The fake executor answers in order; an aborted attempt's answer is ignored.
                Command::Abort { .. } => {}
            }
        }
        max_outstanding = max_outstanding.max(pending.len());
    };
    absorb(&sched, first, &mut pending, &mut result);
    while let Some(run) = pending.pop_front() {
        let name = sched.decl().entities[run.entity as usize].name.clone();
        let outcome = answer(&name, &run.inputs, run.attempt);
        let timing = Timing {
            start_us: clock,
            end_us: clock + 10,
        };
        clock += 10;
        let event = Event::Attempted {
            node: run.node,
            attempt: run.attempt,
            outcome,
            timing,
            worker: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        events.push(event.clone());
        let cmds = sched.on_event(event);
        absorb(&sched, cmds, &mut pending, &mut result);
    }
    assert!(sched.is_finished());
    Played {
        sched,
        result: result.expect("the run finished once every attempt was answered"),
        runs: log,
        max_outstanding,
        events,
    }
}

pub(super) fn play(
    decl: Arc<ModuleDecl>,
    entity: &str,
    inputs: Vec<Value>,
    opts: Options,
    answer: impl FnMut(&str, &[Value], u32) -> Outcome,
) -> Played {
    let mut sched = Scheduler::new(decl, entity, inputs, opts).expect("the run starts");
    let first = sched.start();
    drive(sched, first, answer)
}

// ---- the seed's nested program -------------------------------------------------------------

/// multi_wf -> level1 -> level2 (one per chunk) -> core_wf_lp (one per item) -> step1 -> step2.
pub(super) fn seed() -> Vec<EntityDecl> {
    vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        task("step2", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "core_wf",
            &[("a", Type::Int)],
            Some(Type::Int),
            vec![
                call("step1", &[("a", input("a"))]),
                call("step2", &[("a", node(0))]),
            ],
            Some(node(1)),
        ),
        launch_plan(
            "core_wf_lp",
            &[("a", Type::Int)],
            Some(Type::Int),
            plan("core_wf"),
        ),
        dynamic("level2", &[("l", list(Type::Int))], Some(list(Type::Int))),
        task(
            "reduce",
            &[("l", list(list(Type::Int)))],
            Some(list(Type::Int)),
        ),
        dynamic(
            "level1",
            &[("l", list(Type::Int)), ("chunk", Type::Int)],
            Some(list(Type::Int)),
        ),
        workflow(
            "multi_wf",
            &[("l", list(Type::Int)), ("chunk", Type::Int)],
            Some(list(Type::Int)),
            vec![call(
                "level1",
                &[("l", input("l")), ("chunk", input("chunk"))],
            )],
            Some(node(0)),
        ),
    ]
}

/// What the seed's guest computes, graphs included.
pub(super) fn seed_answer(entity: &str, inputs: &[Value], _attempt: u32) -> Outcome {
    match entity {
        "step1" => output(Value::Int(int_of(&inputs[0]) + 1)),
        "step2" => output(Value::Int(int_of(&inputs[0]) + 2)),
        "reduce" => output(ints(list_of(&inputs[0]).iter().flat_map(ints_of))),
        "level2" => {
            let l = ints_of(&inputs[0]);
            let nodes = l
                .iter()
                .map(|&a| call("core_wf_lp", &[("a", lit(Value::Int(a)))]))
                .collect();
            graph(nodes, Some(Binding::List((0..l.len()).map(node).collect())))
        }
        "level1" => {
            let l = ints_of(&inputs[0]);
            let chunk = int_of(&inputs[1]);
            if chunk <= 0 {
                return fail(&format!("chunk must be positive, got {chunk}"));
            }
            let mut nodes: Vec<NodeSpec> = l
                .chunks(chunk as usize)
                .map(|c| call("level2", &[("l", lit(ints(c.iter().copied())))]))
                .collect();
            let k = nodes.len();
            nodes.push(call(
                "reduce",
                &[("l", Binding::List((0..k).map(node).collect()))],
            ));
            graph(nodes, Some(node(k)))
        }
        other => panic!("the seed has no task or dynamic {other}"),
    }
}

pub(super) fn play_seed(l: Vec<i64>, chunk: i64, opts: Options) -> Played {
    let inputs = vec![ints(l), Value::Int(chunk)];
    play(module(seed()), "multi_wf", inputs, opts, seed_answer)
}

pub(super) fn play_seed_with(
    l: Vec<i64>,
    chunk: i64,
    answer: impl FnMut(&str, &[Value], u32) -> Outcome,
) -> Played {
    let inputs = vec![ints(l), Value::Int(chunk)];
    play(
        module(seed()),
        "multi_wf",
        inputs,
        Options::default(),
        answer,
    )
}

// ---- modules several topics use -------------------------------------------------------------

pub(super) fn wide(concurrency: Option<u32>) -> Arc<ModuleDecl> {
    module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "wide",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            vec![map_call(
                "step1",
                &[("a", input("l"))],
                &["a"],
                concurrency,
                None,
            )],
            Some(node(0)),
        ),
    ])
}

/// A failed attempt of `run` that wrote `stdout`.
pub(super) fn failed_writing(run: &RunTask, user: bool, stdout: &str) -> Event {
    Event::Attempted {
        node: run.node,
        attempt: run.attempt,
        outcome: Outcome::Failed(AttemptFailure {
            user,
            message: format!("attempt {} failed", run.attempt),
            backtrace: None,
        }),
        timing: Timing::default(),
        worker: None,
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
    }
}
