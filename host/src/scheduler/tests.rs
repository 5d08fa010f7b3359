//! The scheduler's unit tests: hand-built modules, canned events in, commands out. No wasm
//! runs here; a fake executor ([`drive`]) answers every `Run` command with a closure, so whole
//! programs (the seed's nested one among them) run deterministically.

use super::*;
use sandflow_contract::GraphSpec;
use sandflow_contract::{
    EntityDecl, Interface, LaunchPlanSpec, NodeSpec, Param, RetryOn, TaskConfig, Type,
};
use std::collections::HashSet;

// ---- building modules ----------------------------------------------------------------------

fn list(t: Type) -> Type {
    Type::List(Box::new(t))
}

fn optional(t: Type) -> Type {
    Type::Optional(Box::new(t))
}

fn entity(
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
                })
                .collect(),
            output,
        },
        kind,
    }
}

fn task(name: &str, inputs: &[(&str, Type)], output: Option<Type>) -> EntityDecl {
    entity(
        name,
        inputs,
        output,
        EntityKind::Task(TaskConfig::default()),
    )
}

fn task_with_retries(
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

fn dynamic(name: &str, inputs: &[(&str, Type)], output: Option<Type>) -> EntityDecl {
    entity(
        name,
        inputs,
        output,
        EntityKind::Dynamic(TaskConfig::default()),
    )
}

fn workflow(
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

fn launch_plan(
    name: &str,
    inputs: &[(&str, Type)],
    output: Option<Type>,
    spec: LaunchPlanSpec,
) -> EntityDecl {
    entity(name, inputs, output, EntityKind::LaunchPlan(spec))
}

fn plan(workflow: &str) -> LaunchPlanSpec {
    LaunchPlanSpec {
        workflow: workflow.into(),
        defaults: Vec::new(),
        fixed: Vec::new(),
        max_parallelism: None,
    }
}

fn call(entity: &str, inputs: &[(&str, Binding)]) -> NodeSpec {
    NodeSpec {
        entity: entity.into(),
        inputs: inputs
            .iter()
            .map(|(n, b)| ((*n).to_string(), b.clone()))
            .collect(),
        map: None,
    }
}

fn map_call(
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

fn input(name: &str) -> Binding {
    Binding::Input(name.into())
}

fn node(j: usize) -> Binding {
    Binding::Node(j as u32)
}

fn lit(v: Value) -> Binding {
    Binding::Literal(v)
}

fn module(entities: Vec<EntityDecl>) -> Arc<ModuleDecl> {
    Arc::new(ModuleDecl::new(entities).expect("the test module compiles"))
}

// ---- values --------------------------------------------------------------------------------

fn ints(xs: impl IntoIterator<Item = i64>) -> Value {
    Value::List(xs.into_iter().map(Value::Int).collect())
}

fn int_of(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn list_of(v: &Value) -> &[Value] {
    match v {
        Value::List(items) => items,
        other => panic!("expected a list, got {other:?}"),
    }
}

fn ints_of(v: &Value) -> Vec<i64> {
    list_of(v).iter().map(int_of).collect()
}

// ---- events and commands -------------------------------------------------------------------

fn output(v: Value) -> Outcome {
    Outcome::Returned(CallResult::Output(Some(v)))
}

fn graph(nodes: Vec<NodeSpec>, out: Option<Binding>) -> Outcome {
    Outcome::Returned(CallResult::Graph(GraphSpec {
        nodes,
        output: out,
        ..GraphSpec::default()
    }))
}

fn fail(message: &str) -> Outcome {
    Outcome::Failed {
        user: true,
        message: message.into(),
        backtrace: None,
    }
}

fn attempted(node: NodeId, attempt: u32, outcome: Outcome) -> Event {
    Event::Attempted {
        node,
        attempt,
        outcome,
        timing: Timing::default(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

fn answer(run: &RunTask, outcome: Outcome) -> Event {
    attempted(run.node, run.attempt, outcome)
}

fn runs(cmds: &[Command]) -> Vec<RunTask> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Run(r) => Some(r.clone()),
            Command::Abort { .. } | Command::Finished(_) => None,
        })
        .collect()
}

fn aborts(cmds: &[Command]) -> usize {
    cmds.iter()
        .filter(|c| matches!(c, Command::Abort { .. }))
        .count()
}

/// The one `Finished` command of `cmds`, which must be their last.
fn finished(cmds: &[Command]) -> Result<Option<Value>, Failure> {
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

fn paths(s: &Scheduler, runs: &[RunTask]) -> Vec<String> {
    runs.iter().map(|r| s.path(r.node)).collect()
}

fn options(max_parallelism: u32) -> Options {
    Options {
        max_parallelism,
        ..Options::default()
    }
}

// ---- the fake executor ---------------------------------------------------------------------

/// What a whole run did under the fake executor.
struct Played {
    sched: Scheduler,
    result: Result<Option<Value>, Failure>,
    /// Every Run command, with its node path, in the order the scheduler issued them.
    runs: Vec<(String, RunTask)>,
    /// The most Run commands unanswered at once.
    max_outstanding: usize,
}

impl Played {
    fn value(&self) -> &Value {
        match &self.result {
            Ok(Some(v)) => v,
            other => panic!("expected a value, got {other:?}"),
        }
    }

    fn failure(&self) -> &Failure {
        match &self.result {
            Err(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// Attempts the run started of `entity`.
    fn count(&self, entity: &str) -> usize {
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
fn drive(
    mut sched: Scheduler,
    first: Vec<Command>,
    mut answer: impl FnMut(&str, &[Value], u32) -> Outcome,
) -> Played {
    let mut pending = VecDeque::new();
    let mut log = Vec::new();
    let mut result = None;
    let mut max_outstanding = 0;
    let mut clock = 0;
    let mut absorb = |sched: &Scheduler,
                      cmds: Vec<Command>,
                      pending: &mut VecDeque<RunTask>,
                      result: &mut Option<Result<Option<Value>, Failure>>| {
        for c in cmds {
            assert!(result.is_none(), "a command after Finished: {c:?}");
            match c {
                Command::Run(r) => {
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
        let cmds = sched.on_event(Event::Attempted {
            node: run.node,
            attempt: run.attempt,
            outcome,
            timing,
            stdout: Vec::new(),
            stderr: Vec::new(),
        });
        absorb(&sched, cmds, &mut pending, &mut result);
    }
    assert!(sched.is_finished());
    Played {
        sched,
        result: result.expect("the run finished once every attempt was answered"),
        runs: log,
        max_outstanding,
    }
}

fn play(
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
fn seed() -> Vec<EntityDecl> {
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
fn seed_answer(entity: &str, inputs: &[Value], _attempt: u32) -> Outcome {
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

fn play_seed(l: Vec<i64>, chunk: i64, opts: Options) -> Played {
    let inputs = vec![ints(l), Value::Int(chunk)];
    play(module(seed()), "multi_wf", inputs, opts, seed_answer)
}

#[test]
fn seed_program_runs_end_to_end() {
    let p = play_seed((1..=6).collect(), 2, Options::default());
    assert_eq!(p.value(), &ints([4, 5, 6, 7, 8, 9]));
    assert_eq!(p.count("level1"), 1);
    assert_eq!(p.count("level2"), 3);
    assert_eq!(p.count("step1"), 6);
    assert_eq!(p.count("step2"), 6);
    assert_eq!(p.count("reduce"), 1);
    assert_eq!(p.sched.attempts_started(), 17);
    assert_eq!(p.sched.child_executions(), 6);
    let chunks: Vec<Vec<i64>> = p
        .runs
        .iter()
        .filter(|(path, _)| path.contains("level2") && !path.contains("core_wf_lp"))
        .map(|(_, r)| ints_of(&r.inputs[0]))
        .collect();
    assert_eq!(chunks, [vec![1, 2], vec![3, 4], vec![5, 6]]);
}

#[test]
fn seed_program_tree_has_one_child_execution_per_launch_plan_call() {
    let p = play_seed((1..=6).collect(), 2, Options::default());
    let root = p.sched.tree(&TreeOptions::default());
    assert_eq!(
        (root.name.as_str(), root.kind.as_str()),
        ("multi_wf", "workflow")
    );
    assert_eq!(root.state, "SUCCEEDED");
    assert_eq!(root.children.len(), 1);
    let level1 = &root.children[0];
    assert_eq!(
        (level1.path.as_str(), level1.kind.as_str()),
        ("multi_wf/level1", "dynamic")
    );
    let names: Vec<&str> = level1.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["level2[0]", "level2[1]", "level2[2]", "reduce"]);
    let mut executions = HashSet::new();
    let mut launch_plans = 0;
    for level2 in &level1.children[..3] {
        assert_eq!(level2.kind, "dynamic");
        assert_eq!(
            level2.execution, None,
            "a dynamic runs in its caller's execution"
        );
        let names: Vec<&str> = level2.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["core_wf_lp[0]", "core_wf_lp[1]"]);
        for lp in &level2.children {
            launch_plans += 1;
            assert_eq!(lp.kind, "launch plan");
            assert_eq!(lp.state, "SUCCEEDED");
            let x = lp
                .execution
                .expect("a launch plan node starts a child execution");
            assert!(x > 0, "execution 0 is the top one");
            assert!(executions.insert(x), "child execution {x} is shared");
            let steps: Vec<(&str, u32, &str)> = lp
                .children
                .iter()
                .map(|c| (c.name.as_str(), c.attempts, c.state.as_str()))
                .collect();
            assert_eq!(
                steps,
                [("step1", 1, "SUCCEEDED"), ("step2", 1, "SUCCEEDED")]
            );
        }
    }
    assert_eq!(launch_plans, 6);
    let text = render_tree(&root);
    assert_eq!(text.lines().count(), 1 + 1 + 3 + 6 * 3 + 1, "{text}");
}

#[test]
fn seed_program_adds_three_for_any_chunking() {
    let cases: &[(i64, i64, u32)] = &[
        (0, 2, 25),
        (1, 1, 25),
        (5, 2, 25),
        (6, 4, 1),
        (7, 10, 2),
        (12, 5, 3),
    ];
    for &(n, chunk, maxp) in cases {
        let l: Vec<i64> = (1..=n).collect();
        let p = play_seed(l.clone(), chunk, options(maxp));
        let expected = ints(l.iter().map(|a| a + 3));
        assert_eq!(
            p.value(),
            &expected,
            "n={n} chunk={chunk} max_parallelism={maxp}"
        );
        let level2s = (n as usize).div_ceil(chunk as usize);
        assert_eq!(p.count("level2"), level2s, "n={n} chunk={chunk}");
        assert_eq!(p.sched.child_executions(), n as usize);
    }
}

#[test]
fn empty_list_gives_an_empty_list() {
    let p = play_seed(Vec::new(), 2, Options::default());
    assert_eq!(p.value(), &ints([]));
    assert_eq!((p.count("level2"), p.count("reduce")), (0, 1));

    let decl = module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "wide",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            vec![map_call("step1", &[("a", input("l"))], &["a"], None, None)],
            Some(node(0)),
        ),
    ]);
    let p = play(
        decl,
        "wide",
        vec![ints([])],
        Options::default(),
        seed_answer,
    );
    assert_eq!(p.value(), &ints([]));
    assert!(p.runs.is_empty());
}

#[test]
fn an_empty_map_starts_its_dependents_once() {
    // The map over [] ends as it starts, which readies n1 while n1's scope is still being
    // created: n1 must not start a second time.
    let decl = module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        task("sum", &[("l", list(Type::Int))], Some(Type::Int)),
        workflow(
            "sum_wf",
            &[("l", list(Type::Int))],
            Some(Type::Int),
            vec![call("sum", &[("l", input("l"))])],
            Some(node(0)),
        ),
        workflow(
            "after_empty",
            &[("l", list(Type::Int))],
            Some(Type::Int),
            vec![
                map_call("step1", &[("a", input("l"))], &["a"], None, None),
                call("sum_wf", &[("l", node(0))]),
            ],
            Some(node(1)),
        ),
    ]);
    let p = play(
        decl,
        "after_empty",
        vec![ints([])],
        Options::default(),
        |e, inputs, _| {
            assert_eq!(e, "sum");
            output(Value::Int(ints_of(&inputs[0]).iter().sum()))
        },
    );
    assert_eq!(p.value(), &Value::Int(0));
    assert_eq!(p.count("sum"), 1, "runs: {:?}", p.runs);
    let root = p.sched.tree(&TreeOptions::default());
    assert_eq!(root.children[1].children.len(), 1);
}

// ---- ordering and expansion ----------------------------------------------------------------

#[test]
fn workflow_nodes_run_in_dependency_order() {
    // Listed against their order: n0 reads n1 and n2, n1 reads n2.
    let decl = module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        task("step2", &[("a", Type::Int)], Some(Type::Int)),
        task(
            "add",
            &[("a", Type::Int), ("b", Type::Int)],
            Some(Type::Int),
        ),
        workflow(
            "diamond",
            &[("a", Type::Int)],
            Some(Type::Int),
            vec![
                call("add", &[("a", node(1)), ("b", node(2))]),
                call("step1", &[("a", node(2))]),
                call("step2", &[("a", input("a"))]),
            ],
            Some(node(0)),
        ),
    ]);
    let mut s = Scheduler::new(decl, "diamond", vec![Value::Int(5)], Options::default())
        .expect("the run starts");
    let first = runs(&s.start());
    assert_eq!(paths(&s, &first), ["diamond/step2"]);
    assert_eq!(first[0].inputs, [Value::Int(5)]);
    assert_eq!(first[0].attempt, 1);

    let second = runs(&s.on_event(answer(&first[0], output(Value::Int(7)))));
    assert_eq!(paths(&s, &second), ["diamond/step1"]);
    assert_eq!(second[0].inputs, [Value::Int(7)]);

    let third = runs(&s.on_event(answer(&second[0], output(Value::Int(8)))));
    assert_eq!(paths(&s, &third), ["diamond/add"]);
    assert_eq!(third[0].inputs, [Value::Int(8), Value::Int(7)]);

    let last = s.on_event(answer(&third[0], output(Value::Int(15))));
    assert_eq!(finished(&last), Ok(Some(Value::Int(15))));
    assert!(s.is_finished());
}

#[test]
fn a_dynamic_graph_expands_as_its_children() {
    let decl = module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        dynamic("fanout", &[("n", Type::Int)], Some(list(Type::Int))),
    ]);
    let mut s = Scheduler::new(decl, "fanout", vec![Value::Int(3)], Options::default())
        .expect("the run starts");
    let first = runs(&s.start());
    assert_eq!(paths(&s, &first), ["fanout"]);
    let nodes = (0..3)
        .map(|i| call("step1", &[("a", lit(Value::Int(10 * i)))]))
        .collect();
    let out = Binding::List((0..3).map(node).collect());
    let children = runs(&s.on_event(answer(&first[0], graph(nodes, Some(out)))));
    assert_eq!(
        paths(&s, &children),
        ["fanout/step1[0]", "fanout/step1[1]", "fanout/step1[2]"]
    );
    let inputs: Vec<&[Value]> = children.iter().map(|r| r.inputs.as_slice()).collect();
    assert_eq!(
        inputs,
        [[Value::Int(0)], [Value::Int(10)], [Value::Int(20)]]
    );
    // Answered out of order, the list keeps the graph's order.
    assert!(s
        .on_event(answer(&children[2], output(Value::Int(21))))
        .is_empty());
    assert!(s
        .on_event(answer(&children[0], output(Value::Int(1))))
        .is_empty());
    let last = s.on_event(answer(&children[1], output(Value::Int(11))));
    assert_eq!(finished(&last), Ok(Some(ints([1, 11, 21]))));
    let tree = s.tree(&TreeOptions::default());
    assert_eq!(tree.state, "SUCCEEDED");
    assert_eq!(tree.children.len(), 3);
}

#[test]
fn launch_plan_inputs_come_from_caller_defaults_and_fixed() {
    let decl = module(vec![
        task(
            "mul",
            &[("a", Type::Int), ("b", Type::Int)],
            Some(Type::Int),
        ),
        workflow(
            "scale",
            &[("a", Type::Int), ("k", Type::Int)],
            Some(Type::Int),
            vec![call("mul", &[("a", input("a")), ("b", input("k"))])],
            Some(node(0)),
        ),
        launch_plan(
            "scale_lp",
            &[("a", Type::Int), ("k", Type::Int)],
            Some(Type::Int),
            LaunchPlanSpec {
                defaults: vec![("k".into(), Value::Int(10))],
                ..plan("scale")
            },
        ),
        launch_plan(
            "scale_fixed",
            &[("a", Type::Int)],
            Some(Type::Int),
            LaunchPlanSpec {
                fixed: vec![("k".into(), Value::Int(100))],
                ..plan("scale")
            },
        ),
        workflow(
            "uses_lps",
            &[("x", Type::Int)],
            Some(list(Type::Int)),
            vec![
                call("scale_lp", &[("a", input("x"))]),
                call("scale_lp", &[("a", input("x")), ("k", lit(Value::Int(2)))]),
                call("scale_fixed", &[("a", input("x"))]),
            ],
            Some(Binding::List(vec![node(0), node(1), node(2)])),
        ),
    ]);
    let p = play(
        decl,
        "uses_lps",
        vec![Value::Int(3)],
        Options::default(),
        |_, inputs, _| output(Value::Int(int_of(&inputs[0]) * int_of(&inputs[1]))),
    );
    assert_eq!(p.value(), &ints([30, 6, 300]));
}

// ---- parallelism ---------------------------------------------------------------------------

fn wide(concurrency: Option<u32>) -> Arc<ModuleDecl> {
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

#[test]
fn max_parallelism_caps_runs_outstanding_in_an_execution() {
    let mut s =
        Scheduler::new(wide(None), "wide", vec![ints(0..10)], options(3)).expect("the run starts");
    let first = runs(&s.start());
    assert_eq!(
        paths(&s, &first),
        ["wide/step1[0]", "wide/step1[1]", "wide/step1[2]"]
    );
    let next = runs(&s.on_event(answer(&first[1], output(Value::Int(2)))));
    assert_eq!(paths(&s, &next), ["wide/step1[3]"]);
    let outstanding = first
        .iter()
        .chain(&next)
        .filter(|r| r.node != first[1].node)
        .cloned()
        .map(Command::Run)
        .collect();
    let p = drive(s, outstanding, seed_answer);
    assert_eq!(p.value(), &ints(1..=10));
    assert_eq!(p.max_outstanding, 3);
}

#[test]
fn map_concurrency_and_max_parallelism_both_cap_elements() {
    // (elements, map concurrency, max_parallelism, most runs outstanding)
    let cases: &[(i64, Option<u32>, u32, usize)] = &[
        (10, None, 3, 3),
        (10, Some(2), 25, 2),
        (10, Some(4), 3, 3),
        (2, Some(5), 25, 2),
        (30, None, 25, 25),
    ];
    for &(n, concurrency, maxp, most) in cases {
        let p = play(
            wide(concurrency),
            "wide",
            vec![ints(0..n)],
            options(maxp),
            seed_answer,
        );
        let case = format!("n={n} concurrency={concurrency:?} max_parallelism={maxp}");
        assert_eq!(p.value(), &ints(1..=n), "{case}");
        assert_eq!(p.max_outstanding, most, "{case}");
        assert_eq!(p.count("step1"), n as usize, "{case}");
    }
}

#[test]
fn map_concurrency_starts_the_next_element_when_one_ends() {
    let mut s = Scheduler::new(wide(Some(2)), "wide", vec![ints(0..5)], Options::default())
        .expect("the run starts");
    let first = runs(&s.start());
    assert_eq!(paths(&s, &first), ["wide/step1[0]", "wide/step1[1]"]);
    let next = runs(&s.on_event(answer(&first[0], output(Value::Int(1)))));
    assert_eq!(paths(&s, &next), ["wide/step1[2]"]);
    assert_eq!(next[0].inputs, [Value::Int(2)]);
}

#[test]
fn a_launch_plan_child_execution_has_its_own_limit() {
    let decl = module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "fan",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            vec![map_call("step1", &[("a", input("l"))], &["a"], None, None)],
            Some(node(0)),
        ),
        launch_plan(
            "fan_lp",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            LaunchPlanSpec {
                max_parallelism: Some(2),
                ..plan("fan")
            },
        ),
        workflow(
            "two_fans",
            &[("l", list(Type::Int))],
            Some(list(list(Type::Int))),
            vec![
                call("fan_lp", &[("l", input("l"))]),
                call("fan_lp", &[("l", input("l"))]),
                map_call("step1", &[("a", input("l"))], &["a"], None, None),
            ],
            Some(Binding::List(vec![node(0), node(1), node(2)])),
        ),
    ]);
    let mut s = Scheduler::new(decl.clone(), "two_fans", vec![ints(0..5)], options(1))
        .expect("the run starts");
    let first = runs(&s.start());
    let mut got = paths(&s, &first);
    got.sort();
    assert_eq!(
        got,
        [
            "two_fans/fan_lp[0]/step1[0]",
            "two_fans/fan_lp[0]/step1[1]",
            "two_fans/fan_lp[1]/step1[0]",
            "two_fans/fan_lp[1]/step1[1]",
            "two_fans/step1[0]",
        ]
    );
    // A slot freed in one child execution goes to that execution only.
    let in_lp1 = first
        .iter()
        .find(|r| s.path(r.node) == "two_fans/fan_lp[1]/step1[0]")
        .expect("listed above");
    let next = runs(&s.on_event(answer(in_lp1, output(Value::Int(1)))));
    assert_eq!(paths(&s, &next), ["two_fans/fan_lp[1]/step1[2]"]);

    let p = play(decl, "two_fans", vec![ints(0..5)], options(1), seed_answer);
    assert_eq!(
        p.value(),
        &Value::List(vec![ints(1..=5), ints(1..=5), ints(1..=5)])
    );
    assert_eq!(p.max_outstanding, 5);
    assert_eq!(p.sched.child_executions(), 2);
}

#[test]
fn a_top_level_launch_plan_uses_its_own_max_parallelism() {
    let decl = module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "fan",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            vec![map_call("step1", &[("a", input("l"))], &["a"], None, None)],
            Some(node(0)),
        ),
        launch_plan(
            "fan_lp",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            LaunchPlanSpec {
                max_parallelism: Some(4),
                ..plan("fan")
            },
        ),
    ]);
    let p = play(decl, "fan_lp", vec![ints(0..10)], options(1), seed_answer);
    assert_eq!(p.value(), &ints(1..=10));
    assert_eq!(p.max_outstanding, 4);
    assert_eq!(p.sched.child_executions(), 0);
}

// ---- maps with a min success ratio ---------------------------------------------------------

/// A workflow mapping `odd_fails` (a * 10, fails on odd a) over `l`.
fn tolerant(ratio: Option<f64>) -> Arc<ModuleDecl> {
    let out = match ratio {
        Some(_) => list(optional(Type::Int)),
        None => list(Type::Int),
    };
    module(vec![
        task("odd_fails", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "tolerant",
            &[("l", list(Type::Int))],
            Some(out),
            vec![map_call(
                "odd_fails",
                &[("a", input("l"))],
                &["a"],
                None,
                ratio,
            )],
            Some(node(0)),
        ),
    ])
}

fn odd_fails(_: &str, inputs: &[Value], _: u32) -> Outcome {
    let a = int_of(&inputs[0]);
    if a % 2 == 1 {
        fail(&format!("odd input {a}"))
    } else {
        output(Value::Int(a * 10))
    }
}

fn some(v: i64) -> Value {
    Value::Optional(Some(Box::new(Value::Int(v))))
}

fn none() -> Value {
    Value::Optional(None)
}

#[test]
fn map_failures_within_min_success_ratio_become_none() {
    let cases: Vec<(Vec<i64>, f64, Value)> = vec![
        (
            vec![0, 1, 2, 3, 4],
            0.6,
            Value::List(vec![some(0), none(), some(20), none(), some(40)]),
        ),
        (vec![1, 2], 0.5, Value::List(vec![none(), some(20)])),
        (vec![1, 3], 0.0, Value::List(vec![none(), none()])),
        (vec![2, 4], 1.0, Value::List(vec![some(20), some(40)])),
        (vec![], 0.5, Value::List(vec![])),
    ];
    for (l, ratio, expected) in cases {
        let p = play(
            tolerant(Some(ratio)),
            "tolerant",
            vec![ints(l.clone())],
            Options::default(),
            odd_fails,
        );
        assert_eq!(p.value(), &expected, "l={l:?} ratio={ratio}");
        let tree = p.sched.tree(&TreeOptions::default());
        let map = &tree.children[0];
        assert_eq!(
            (map.kind.as_str(), map.state.as_str()),
            ("map", "SUCCEEDED")
        );
        let failed = map.children.iter().filter(|c| c.state == "FAILED").count();
        assert_eq!(failed, l.iter().filter(|a| *a % 2 == 1).count(), "l={l:?}");
    }
}

#[test]
fn map_failures_beyond_min_success_ratio_fail_the_map() {
    // (list, ratio, failed element's path, "k of n")
    let cases: &[(&[i64], f64, &str, &str)] = &[
        (&[1, 3, 5, 2, 4], 0.6, "tolerant/odd_fails[2]", "3 of 5"),
        (&[0, 1], 1.0, "tolerant/odd_fails[1]", "1 of 2"),
        (&[2, 1, 3, 5], 0.5, "tolerant/odd_fails[3]", "3 of 4"),
    ];
    for &(l, ratio, path, count) in cases {
        let p = play(
            tolerant(Some(ratio)),
            "tolerant",
            vec![ints(l.iter().copied())],
            Options::default(),
            odd_fails,
        );
        let f = p.failure();
        assert_eq!(f.path, path, "l={l:?} ratio={ratio}");
        assert!(f.message.starts_with("odd input"), "{f}");
        assert!(
            f.message.contains(&format!(
                "{count} elements failed, more than min_success allows"
            )),
            "{f}"
        );
        let tree = p.sched.tree(&TreeOptions::default());
        assert_eq!(tree.state, "FAILED");
        assert_eq!(tree.children[0].state, "FAILED");
    }
}

#[test]
fn a_map_without_a_ratio_fails_on_its_first_failed_element() {
    let p = play(
        tolerant(None),
        "tolerant",
        vec![ints([0, 2, 3, 4])],
        Options::default(),
        odd_fails,
    );
    let f = p.failure();
    assert_eq!(f.path, "tolerant/odd_fails[2]");
    assert_eq!(f.message, "odd input 3");
}

#[test]
fn a_map_over_lists_of_different_lengths_fails_fast_as_it_starts() {
    let decl = module(vec![
        task(
            "add",
            &[("a", Type::Int), ("b", Type::Int)],
            Some(Type::Int),
        ),
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "zip_add",
            &[("xs", list(Type::Int)), ("ys", list(Type::Int))],
            Some(list(Type::Int)),
            vec![
                map_call(
                    "add",
                    &[("a", input("xs")), ("b", input("ys"))],
                    &["a", "b"],
                    None,
                    None,
                ),
                call("step1", &[("a", lit(Value::Int(1)))]),
            ],
            Some(node(0)),
        ),
    ]);
    let mut s = Scheduler::new(
        decl,
        "zip_add",
        vec![ints([1, 2]), ints([1, 2, 3])],
        Options::default(),
    )
    .expect("the run starts");
    let cmds = s.start();
    let f = finished(&cmds).expect_err("the lists differ in length");
    assert_eq!(f.path, "zip_add/add");
    assert!(f.message.contains("different lengths (2 and 3)"), "{f}");
    assert!(runs(&cmds).is_empty());
    let tree = s.tree(&TreeOptions::default());
    let states: Vec<&str> = tree.children.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["FAILED", "SKIPPED"]);
}

// ---- failures, retries, cancel -------------------------------------------------------------

#[test]
fn retries_rerun_a_failed_attempt_then_give_up() {
    // (failing attempts, retries, outcome: Ok(output) or Err(attempt of attempts))
    /// The output, or the failure's (attempt, attempts).
    type Expected = Result<i64, (u32, u32)>;
    let cases: &[(u32, u32, Expected)] = &[
        (0, 2, Ok(2)),
        (1, 2, Ok(2)),
        (2, 2, Ok(2)),
        (3, 2, Err((3, 3))),
        (1, 0, Err((1, 1))),
    ];
    for &(failing, retries, expected) in cases {
        let decl = module(vec![task_with_retries(
            "flaky",
            &[("a", Type::Int)],
            Some(Type::Int),
            retries,
        )]);
        let p = play(
            decl,
            "flaky",
            vec![Value::Int(1)],
            Options::default(),
            |_, inputs, attempt| {
                assert_eq!(inputs, [Value::Int(1)], "every attempt gets the inputs");
                if attempt <= failing {
                    fail(&format!("attempt {attempt} failed"))
                } else {
                    output(Value::Int(int_of(&inputs[0]) + 1))
                }
            },
        );
        let case = format!("failing={failing} retries={retries}");
        let attempts: Vec<u32> = p.runs.iter().map(|(_, r)| r.attempt).collect();
        let tree = p.sched.tree(&TreeOptions::default());
        match expected {
            Ok(v) => {
                assert_eq!(p.value(), &Value::Int(v), "{case}");
                assert_eq!(attempts, (1..=failing + 1).collect::<Vec<_>>(), "{case}");
            }
            Err((attempt, of)) => {
                let f = p.failure();
                assert_eq!((f.attempt, f.attempts), (attempt, of), "{case}");
                assert_eq!(f.path, "flaky");
                assert_eq!(
                    f.to_string(),
                    format!("flaky (attempt {attempt} of {of}): attempt {attempt} failed")
                );
                assert_eq!(attempts, (1..=retries + 1).collect::<Vec<_>>(), "{case}");
            }
        }
        let failed = (1..=failing.min(retries + 1)).map(|a| format!("attempt {a} failed"));
        // Each failed attempt is listed with its duration after the message.
        let listed: Vec<&str> = tree
            .failed_attempts
            .iter()
            .map(|m| m.rsplit_once(" (").map_or(m.as_str(), |(msg, _)| msg))
            .collect();
        assert_eq!(listed, failed.collect::<Vec<_>>(), "{case}");
    }
}

#[test]
fn fail_fast_never_dispatches_queued_siblings() {
    let decl = module(vec![
        task("step1", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "fan",
            &[],
            None,
            (1..=3)
                .map(|a| call("step1", &[("a", lit(Value::Int(a)))]))
                .collect(),
            None,
        ),
    ]);
    let boom = |_: &str, inputs: &[Value], _: u32| match int_of(&inputs[0]) {
        1 => fail("boom"),
        a => output(Value::Int(a + 1)),
    };
    // One slot: the failing node is the only one ever dispatched.
    let p = play(decl.clone(), "fan", vec![], options(1), boom);
    assert_eq!(p.failure().path, "fan/step1[0]");
    assert_eq!(p.runs.len(), 1);
    let tree = p.sched.tree(&TreeOptions::default());
    let states: Vec<&str> = tree.children.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["FAILED", "SKIPPED", "SKIPPED"]);
    assert_eq!(tree.state, "FAILED");

    // Two slots: the running sibling is aborted and its answer ignored (drive checks that no
    // command follows Finished).
    let p = play(decl, "fan", vec![], options(2), boom);
    assert_eq!(p.runs.len(), 2);
    let tree = p.sched.tree(&TreeOptions::default());
    let states: Vec<&str> = tree.children.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["FAILED", "ABORTED", "SKIPPED"]);
}

#[test]
fn a_failure_is_named_by_its_node_path() {
    let inputs = vec![ints(1..=6), Value::Int(2)];
    let p = play(
        module(seed()),
        "multi_wf",
        inputs,
        Options::default(),
        |e, inputs, a| {
            // step2 of item 3 (chunk [3, 4], first launch plan) reads step1's 4.
            if e == "step2" && inputs == [Value::Int(4)] {
                fail("step2 refuses 4")
            } else {
                seed_answer(e, inputs, a)
            }
        },
    );
    let f = p.failure();
    assert_eq!(f.path, "multi_wf/level1/level2[1]/core_wf_lp[0]/step2");
    assert_eq!((f.attempt, f.attempts, f.user), (1, 1, true));
    assert_eq!(
        f.to_string(),
        "multi_wf/level1/level2[1]/core_wf_lp[0]/step2 (attempt 1 of 1): step2 refuses 4"
    );
    assert_eq!(p.count("reduce"), 0);
    let tree = p.sched.tree(&TreeOptions::default());
    assert_eq!(tree.state, "FAILED");
    assert_eq!(tree.children[0].children[1].state, "FAILED");
    assert_eq!(
        tree.children[0].children[3].state, "SKIPPED",
        "reduce never ran"
    );
}

#[test]
fn a_failed_attempt_reports_stderr_tail_backtrace_and_system_errors() {
    let decl = module(vec![task("step1", &[("a", Type::Int)], Some(Type::Int))]);
    let mut s = Scheduler::new(decl, "step1", vec![Value::Int(1)], Options::default())
        .expect("the run starts");
    let run = runs(&s.start()).remove(0);
    let stderr: String = (1..=15).map(|i| format!("line {i}\n")).collect();
    let cmds = s.on_event(Event::Attempted {
        node: run.node,
        attempt: run.attempt,
        outcome: Outcome::Failed {
            user: false,
            message: "out of fuel".into(),
            backtrace: Some("0: step1".into()),
        },
        timing: Timing::default(),
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    });
    let f = finished(&cmds).expect_err("the attempt failed");
    assert!(!f.user);
    assert_eq!(f.backtrace.as_deref(), Some("0: step1"));
    let tail: Vec<String> = (6..=15).map(|i| format!("line {i}")).collect();
    assert_eq!(f.stderr_tail, Some(tail.join("\n")));
    let text = f.to_string();
    assert!(text.starts_with("step1 (attempt 1 of 1): out of fuel [system error]\nwasm backtrace:\n0: step1\nstderr (tail):\nline 6\n"), "{text}");
}

#[test]
fn a_stderr_flood_on_one_line_leaves_a_bounded_tail() {
    let decl = module(vec![task("step1", &[("a", Type::Int)], Some(Type::Int))]);
    let mut s = Scheduler::new(decl, "step1", vec![Value::Int(1)], Options::default())
        .expect("the run starts");
    let run = runs(&s.start()).remove(0);
    let mut stderr = "é".repeat(300_000).into_bytes();
    stderr.extend_from_slice(b"\npanicked: boom");
    let cmds = s.on_event(Event::Attempted {
        node: run.node,
        attempt: run.attempt,
        outcome: Outcome::Failed {
            user: true,
            message: "panicked: boom".into(),
            backtrace: None,
        },
        timing: Timing::default(),
        stdout: Vec::new(),
        stderr,
    });
    let f = finished(&cmds).expect_err("the attempt failed");
    let tail = f.stderr_tail.expect("stderr was written");
    assert!(tail.len() <= 4096 + "…".len(), "{}", tail.len());
    assert!(
        tail.starts_with("…é") && tail.ends_with("éé\npanicked: boom"),
        "{tail}"
    );
}

#[test]
fn a_task_returning_the_wrong_type_fails_naming_the_type() {
    let cases: Vec<(Outcome, &str)> = vec![
        (
            output(Value::Str("x".into())),
            "returned a value that does not match its output type: expected i64, found a string",
        ),
        (output(ints([1])), "expected i64, found a list"),
        (
            Outcome::Returned(CallResult::Output(None)),
            "returned nothing, expected i64",
        ),
        (graph(Vec::new(), None), "is a task but returned a graph"),
        (
            Outcome::Returned(CallResult::Error("bad input".into())),
            "bad input",
        ),
    ];
    for (outcome, message) in cases {
        let mut s = Scheduler::new(
            module(seed()),
            "core_wf",
            vec![Value::Int(1)],
            Options::default(),
        )
        .expect("the run starts");
        let run = runs(&s.start()).remove(0);
        let f = finished(&s.on_event(answer(&run, outcome))).expect_err("ill-typed output");
        assert_eq!(f.path, "core_wf/step1");
        assert!(f.message.contains(message), "{f} does not say {message}");
    }
}

#[test]
fn a_dynamic_returning_an_ill_typed_graph_fails_with_a_compile_message() {
    let lp = |a: Value| call("core_wf_lp", &[("a", lit(a))]);
    let cases: Vec<(Outcome, &str)> = vec![
        (
            graph(
                vec![lp(Value::Str("x".into()))],
                Some(Binding::List(vec![node(0)])),
            ),
            "input `a`: literal expected i64, found a string",
        ),
        (
            graph(vec![call("nope", &[])], None),
            "unknown entity `nope`",
        ),
        (
            graph(vec![lp(Value::Int(1))], Some(node(0))),
            "the output of node n0 has type i64, expected list<i64>",
        ),
        (
            graph(vec![lp(Value::Int(1))], None),
            "returns nothing, but its interface declares output list<i64>",
        ),
        (
            graph(
                vec![call("core_wf_lp", &[("a", input("l"))])],
                Some(Binding::List(vec![node(0)])),
            ),
            "a dynamic's graph has no inputs",
        ),
        (
            graph(
                vec![call("core_wf_lp", &[("a", node(0))])],
                Some(Binding::List(vec![node(0)])),
            ),
            "refers to its own output",
        ),
        (output(ints([1])), "is a dynamic but returned a task output"),
    ];
    for (bad, message) in cases {
        let mut bad = Some(bad);
        let p = play_seed_with((1..=4).collect(), 2, move |e, inputs, a| {
            match bad.take_if(|_| e == "level2") {
                Some(outcome) => outcome,
                None => seed_answer(e, inputs, a),
            }
        });
        let f = p.failure();
        assert_eq!(f.path, "multi_wf/level1/level2[0]");
        assert!(f.message.contains(message), "{f} does not say {message}");
        if !message.contains("task output") {
            assert!(
                f.message
                    .starts_with("returned a graph that does not compile: "),
                "{f}"
            );
        }
    }
}

fn play_seed_with(
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

#[test]
fn events_for_unknown_nodes_and_stale_attempts_are_ignored() {
    let mut entities = seed();
    entities[0] = task_with_retries("step1", &[("a", Type::Int)], Some(Type::Int), 1);
    let mut s = Scheduler::new(
        module(entities),
        "core_wf",
        vec![Value::Int(1)],
        Options::default(),
    )
    .expect("the run starts");
    let first = runs(&s.start());
    assert_eq!(first.len(), 1);
    let step1 = first[0].clone();
    let ignored = [
        attempted(999, 1, output(Value::Int(0))),
        attempted(u32::MAX, 1, fail("x")),
        attempted(0, 1, output(Value::Int(0))),
        attempted(step1.node, 0, output(Value::Int(0))),
        attempted(step1.node, 2, output(Value::Int(0))),
    ];
    for e in &ignored {
        assert!(s.on_event(e.clone()).is_empty(), "{e:?}");
    }
    // Attempt 1 fails; its late duplicate and a guess at attempt 3 are stale.
    let retry = runs(&s.on_event(answer(&step1, fail("flake"))));
    assert_eq!((retry[0].node, retry[0].attempt), (step1.node, 2));
    assert!(s.on_event(answer(&step1, output(Value::Int(2)))).is_empty());
    assert!(s
        .on_event(attempted(step1.node, 3, output(Value::Int(2))))
        .is_empty());
    let step2 = runs(&s.on_event(answer(&retry[0], output(Value::Int(2)))));
    assert_eq!(paths(&s, &step2), ["core_wf/step2"]);
    // A duplicate of a successful attempt changes nothing; step2 is not dispatched again.
    assert!(s
        .on_event(answer(&retry[0], output(Value::Int(99))))
        .is_empty());
    // An attempt that was never started is stale too.
    assert!(s
        .on_event(attempted(step2[0].node, 2, output(Value::Int(4))))
        .is_empty());
    let last = s.on_event(answer(&step2[0], output(Value::Int(4))));
    assert_eq!(finished(&last), Ok(Some(Value::Int(4))));
    // After the end nothing reacts.
    assert!(s
        .on_event(answer(&step2[0], output(Value::Int(4))))
        .is_empty());
    assert!(s.on_event(Event::Cancel).is_empty());
}

#[test]
fn cancel_finishes_the_run_as_cancelled() {
    let mut s = Scheduler::new(
        module(seed()),
        "multi_wf",
        vec![ints(1..=6), Value::Int(2)],
        options(2),
    )
    .expect("the run starts");
    let level1 = runs(&s.start()).remove(0);
    let level2s = runs(&s.on_event(answer(&level1, seed_answer("level1", &level1.inputs, 1))));
    assert_eq!(level2s.len(), 2, "two slots");
    let cmds = s.on_event(Event::Cancel);
    let f = finished(&cmds).expect_err("cancelled");
    assert_eq!(
        (f.path.as_str(), f.message.as_str()),
        ("multi_wf", "cancelled")
    );
    assert!(s.is_finished());
    // The running attempts' answers are ignored; nothing else starts.
    for r in &level2s {
        assert!(s
            .on_event(answer(r, seed_answer("level2", &r.inputs, 1)))
            .is_empty());
    }
    assert!(s.on_event(Event::Cancel).is_empty(), "one Finished only");
    let tree = s.tree(&TreeOptions::default());
    let states: Vec<&str> = tree.children[0]
        .children
        .iter()
        .map(|c| c.state.as_str())
        .collect();
    assert_eq!(states, ["ABORTED", "ABORTED", "SKIPPED", "SKIPPED"]);
    assert_eq!(tree.children[0].state, "ABORTED");

    // Cancelled before anything returned.
    let mut s = Scheduler::new(
        module(seed()),
        "step1",
        vec![Value::Int(1)],
        Options::default(),
    )
    .expect("the run starts");
    let run = runs(&s.start()).remove(0);
    let f = finished(&s.on_event(Event::Cancel)).expect_err("cancelled");
    assert_eq!(
        (f.path.as_str(), f.message.as_str()),
        ("step1", "cancelled")
    );
    assert!(s.on_event(answer(&run, output(Value::Int(2)))).is_empty());
}

#[test]
fn max_depth_stops_a_dynamic_that_calls_itself() {
    let decl = module(vec![dynamic("rec", &[("n", Type::Int)], Some(Type::Int))]);
    let opts = Options {
        max_depth: 3,
        ..Options::default()
    };
    let p = play(decl, "rec", vec![Value::Int(0)], opts, |_, inputs, _| {
        let n = int_of(&inputs[0]);
        graph(
            vec![call("rec", &[("n", lit(Value::Int(n + 1)))])],
            Some(node(0)),
        )
    });
    let f = p.failure();
    assert_eq!(f.path, "rec/rec/rec/rec");
    assert!(
        f.message.contains("deeper than 3 levels (max_depth)"),
        "{f}"
    );
    let ns: Vec<i64> = p.runs.iter().map(|(_, r)| int_of(&r.inputs[0])).collect();
    assert_eq!(ns, [0, 1, 2, 3]);
}

#[test]
fn max_nodes_stops_a_run_that_grows_too_large() {
    let opts = Options {
        max_nodes: 10,
        ..Options::default()
    };
    let p = play(wide(None), "wide", vec![ints(0..20)], opts, seed_answer);
    assert!(
        p.failure()
            .message
            .contains("more than 10 nodes (max_nodes)"),
        "{}",
        p.failure()
    );
    assert!(p.runs.is_empty());
}

#[test]
fn new_rejects_unknown_entities_and_wrong_arity() {
    let err = Scheduler::new(module(seed()), "nope", vec![], Options::default())
        .err()
        .expect("no such entity");
    assert!(
        err.to_string()
            .starts_with("unknown entity `nope`; the module has: step1, step2"),
        "{err}"
    );
    let err = Scheduler::new(
        module(seed()),
        "multi_wf",
        vec![ints([1])],
        Options::default(),
    )
    .err()
    .expect("one input short");
    assert_eq!(err.to_string(), "multi_wf takes 2 inputs, got 1");
}

/// Nodes that end as they start (a workflow that returns its input has no node to run) used
/// to finish each other by recursion: a long map of them overflowed the host's stack.
#[test]
fn a_long_map_of_nodes_that_end_at_once_does_not_recurse() {
    let decl = module(vec![
        workflow(
            "same",
            &[("a", Type::Int)],
            Some(Type::Int),
            vec![],
            Some(input("a")),
        ),
        workflow(
            "many",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            vec![map_call("same", &[("a", input("l"))], &["a"], None, None)],
            Some(node(0)),
        ),
    ]);
    let n = 200_000;
    let mut s = Scheduler::new(decl, "many", vec![ints(0..n)], Options::default()).unwrap();
    let commands = s.start();
    let Some(Command::Finished(Ok(Some(v)))) = commands.last() else {
        panic!(
            "finishes at once, without running anything: {:?}",
            commands.len()
        );
    };
    assert_eq!(ints_of(v), (0..n).collect::<Vec<_>>());
}

/// An event store may deliver an event twice; a second answer for an aborted attempt must not
/// count its execution's running attempts down again.
#[test]
fn a_duplicate_answer_for_an_aborted_attempt_is_ignored() {
    let decl = module(vec![
        task("t", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "two",
            &[("a", Type::Int)],
            Some(Type::Int),
            vec![
                call("t", &[("a", input("a"))]),
                call("t", &[("a", input("a"))]),
            ],
            Some(node(0)),
        ),
    ]);
    let mut s = Scheduler::new(decl, "two", vec![Value::Int(1)], Options::default()).unwrap();
    let runs: Vec<RunTask> = s
        .start()
        .into_iter()
        .filter_map(|c| match c {
            Command::Run(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 2);
    // The first fails: the second is aborted while it runs.
    let out = s.on_event(attempted(runs[0].node, 1, fail("boom")));
    assert!(matches!(out.last(), Some(Command::Finished(Err(_)))));
    for _ in 0..2 {
        assert!(s
            .on_event(attempted(runs[1].node, 1, output(Value::Int(2))))
            .is_empty());
    }
    let tree = s.tree(&TreeOptions::default());
    assert_eq!(tree.children[1].state, "ABORTED");
}
/// A run holds a node per task call and map element and a scope per workflow, dynamic and
/// launch plan call (a million-element map is a million nodes): keep them from growing back.
#[test]
fn nodes_and_scopes_stay_small() {
    let (node, scope) = (std::mem::size_of::<Node>(), std::mem::size_of::<Scope>());
    assert!(node <= 144, "a node takes {node} bytes");
    assert!(scope <= 88, "a scope takes {scope} bytes");
    assert_eq!(std::mem::size_of::<Value>(), 32);
}

// ---- logs: per attempt, and bounded per run ------------------------------------------------

/// A failed attempt of `run` that wrote `stdout`.
fn failed_writing(run: &RunTask, user: bool, stdout: &str) -> Event {
    Event::Attempted {
        node: run.node,
        attempt: run.attempt,
        outcome: Outcome::Failed {
            user,
            message: format!("attempt {} failed", run.attempt),
            backtrace: None,
        },
        timing: Timing::default(),
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
    }
}

#[test]
fn every_attempt_of_a_retried_task_keeps_its_own_output() {
    let decl = module(vec![task_with_retries(
        "step1",
        &[("a", Type::Int)],
        Some(Type::Int),
        2,
    )]);
    let mut s = Scheduler::new(decl, "step1", vec![Value::Int(1)], Options::default())
        .expect("the run starts");
    let first = runs(&s.start()).remove(0);
    let second = runs(&s.on_event(failed_writing(&first, true, "one\n"))).remove(0);
    let third = runs(&s.on_event(failed_writing(&second, true, "two\n"))).remove(0);
    let cmds = s.on_event(Event::Attempted {
        node: third.node,
        attempt: third.attempt,
        outcome: output(Value::Int(2)),
        timing: Timing::default(),
        stdout: b"three\n".to_vec(),
        stderr: Vec::new(),
    });
    assert_eq!(finished(&cmds), Ok(Some(Value::Int(2))));
    let tree = s.tree(&TreeOptions::default());
    assert_eq!(tree.attempts, 3);
    assert_eq!(tree.stdout.as_deref(), Some("three\n"));
    let earlier: Vec<(u32, Option<&str>)> = tree
        .earlier_attempts
        .iter()
        .map(|a| (a.attempt, a.stdout.as_deref()))
        .collect();
    assert_eq!(earlier, vec![(1, Some("one\n")), (2, Some("two\n"))]);
}

#[test]
fn a_run_keeps_task_output_only_up_to_its_log_budget() {
    let decl = module(vec![
        task("t", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "wf",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            vec![map_call("t", &[("a", input("l"))], &["a"], None, None)],
            Some(node(0)),
        ),
    ]);
    let opts = Options {
        max_log_bytes: 250,
        ..Options::default()
    };
    let mut s = Scheduler::new(decl, "wf", vec![ints([1, 2, 3, 4, 5])], opts).expect("starts");
    let mut pending = runs(&s.start());
    let mut result = None;
    while let Some(run) = pending.pop() {
        let cmds = s.on_event(Event::Attempted {
            node: run.node,
            attempt: run.attempt,
            outcome: output(Value::Int(0)),
            timing: Timing::default(),
            stdout: vec![b'x'; 100],
            stderr: Vec::new(),
        });
        pending.extend(runs(&cmds));
        if matches!(cmds.last(), Some(Command::Finished(_))) {
            result = finished(&cmds).ok();
        }
    }
    assert!(result.is_some(), "the run succeeded");
    // Two attempts' 100 bytes fit in 250; the other three are counted, not kept.
    assert_eq!(s.logs_dropped(), 300);
    let tree = s.tree(&TreeOptions::default());
    let map = &tree.children[0];
    let kept: usize = map
        .children
        .iter()
        .filter_map(|c| c.stdout.as_ref())
        .map(|t| t.len())
        .sum();
    assert_eq!(kept, 200);
    let dropped: u64 = map.children.iter().map(|c| c.logs_dropped).sum();
    assert_eq!(dropped, 300);
}

#[test]
fn a_failure_its_retry_policy_does_not_retry_says_so() {
    let config = TaskConfig {
        retries: 2,
        retry_on: RetryOn::SystemErrors,
        ..TaskConfig::default()
    };
    let decl = module(vec![entity(
        "step1",
        &[("a", Type::Int)],
        Some(Type::Int),
        EntityKind::Task(config),
    )]);
    let mut s = Scheduler::new(decl, "step1", vec![Value::Int(1)], Options::default())
        .expect("the run starts");
    let run = runs(&s.start()).remove(0);
    let f = finished(&s.on_event(failed_writing(&run, true, ""))).expect_err("failed");
    assert_eq!((f.attempt, f.attempts), (1, 1));
    assert_eq!(
        f.to_string(),
        "step1 (attempt 1 of 1): attempt 1 failed (not retried: user errors are not retried, the task retries only system errors)"
    );
}

// ---- the run's memory budget ---------------------------------------------------------------

fn with_budget(bytes: u64) -> Options {
    Options {
        max_run_memory_bytes: bytes,
        ..Options::default()
    }
}

/// `fan(n, len)`: a dynamic whose graph makes `n` strings of `len` bytes and counts them.
fn fan_module() -> Arc<ModuleDecl> {
    module(vec![
        task("make", &[("len", Type::Int)], Some(Type::Str)),
        task("count", &[("l", list(Type::Str))], Some(Type::Int)),
        dynamic(
            "fan",
            &[("n", Type::Int), ("len", Type::Int)],
            Some(Type::Int),
        ),
    ])
}

fn fan_answer(entity: &str, inputs: &[Value], _: u32) -> Outcome {
    match entity {
        "fan" => {
            let n = int_of(&inputs[0]) as usize;
            let mut nodes: Vec<NodeSpec> = (0..n)
                .map(|_| call("make", &[("len", lit(inputs[1].clone()))]))
                .collect();
            let all = Binding::List((0..n).map(node).collect());
            nodes.push(call("count", &[("l", all)]));
            graph(nodes, Some(node(n)))
        }
        "make" => output(Value::Str("x".repeat(int_of(&inputs[0]) as usize))),
        "count" => output(Value::Int(list_of(&inputs[0]).len() as i64)),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_dynamic_graph_past_the_run_memory_budget_fails_naming_the_option() {
    let big = Value::List(vec![Value::Int(7); 100_000]);
    let decl = module(vec![
        task("sum", &[("l", list(Type::Int))], Some(Type::Int)),
        dynamic("big", &[("n", Type::Int)], Some(Type::Int)),
    ]);
    let p = play(
        decl,
        "big",
        vec![Value::Int(0)],
        with_budget(1 << 20),
        |entity, _, _| match entity {
            // 100 000 values: about 3 MiB in memory.
            "big" => graph(vec![call("sum", &[("l", lit(big.clone()))])], Some(node(0))),
            other => panic!("{other} must not run"),
        },
    );
    let f = p.failure();
    assert_eq!(f.path, "big");
    assert!(
        f.message.starts_with("the graph big returned needs 3.")
            && f.message.contains(
                "past the run's memory budget of 1.0 MiB with 0 bytes held \
             (max_run_memory_bytes; raise it with --max-run-memory-mb)"
            ),
        "{f}"
    );
    assert_eq!(p.count("sum"), 0);
    assert_eq!(p.sched.memory_used(), 0, "the refused graph holds nothing");
}

#[test]
fn outputs_are_given_back_to_the_budget_when_their_scope_completes() {
    // The same run with tiny and with large strings ends holding the same memory: the
    // strings were freed with the dynamic's scope.
    let small = play(
        fan_module(),
        "fan",
        vec![Value::Int(50), Value::Int(1)],
        Options::default(),
        fan_answer,
    );
    assert_eq!(small.value(), &Value::Int(50));
    let large = play(
        fan_module(),
        "fan",
        vec![Value::Int(50), Value::Int(100_000)],
        Options::default(),
        fan_answer,
    );
    assert_eq!(large.value(), &Value::Int(50));
    assert!(small.sched.memory_used() > 0);
    assert_eq!(large.sched.memory_used(), small.sched.memory_used());
    // 5 MB of strings held at once (the outputs count will read) do not fit a 4 MiB budget:
    // the output that would go past it fails...
    let p = play(
        fan_module(),
        "fan",
        vec![Value::Int(50), Value::Int(100_000)],
        with_budget(4 << 20),
        fan_answer,
    );
    let f = p.failure();
    assert!(f.path.starts_with("fan/make["), "{f}");
    assert!(f.message.starts_with("the output of fan/make["), "{f}");
    assert!(f.message.contains("memory budget of 4.0 MiB"), "{f}");
    // ...and 1 MB does.
    let p = play(
        fan_module(),
        "fan",
        vec![Value::Int(10), Value::Int(100_000)],
        with_budget(4 << 20),
        fan_answer,
    );
    assert_eq!(p.value(), &Value::Int(10));
}

#[test]
fn a_tree_of_dynamics_within_max_nodes_stops_at_the_memory_budget() {
    // Each dynamic expands into two more: 2^depth nodes, far below max_nodes, but each holds
    // its node, its scope and its graph.
    let decl = module(vec![dynamic("tree", &[("d", Type::Int)], Some(Type::Int))]);
    let p = play(
        decl,
        "tree",
        vec![Value::Int(0)],
        with_budget(1 << 20),
        |_, inputs, _| {
            let d = int_of(&inputs[0]);
            graph(
                vec![
                    call("tree", &[("d", lit(Value::Int(d + 1)))]),
                    call("tree", &[("d", lit(Value::Int(d + 1)))]),
                ],
                Some(node(0)),
            )
        },
    );
    let f = p.failure();
    assert!(
        f.message
            .contains("past the run's memory budget of 1.0 MiB"),
        "{f}"
    );
    assert!(p.sched.memory_used() <= 1 << 20);
    assert!(
        p.runs.len() > 500,
        "the tree grew until the budget: {}",
        p.runs.len()
    );
}

#[test]
fn a_map_stops_at_the_run_memory_budget() {
    let decl = module(vec![
        task("inc", &[("a", Type::Int)], Some(Type::Int)),
        workflow(
            "wide",
            &[("l", list(Type::Int))],
            Some(list(Type::Int)),
            vec![map_call("inc", &[("a", input("l"))], &["a"], None, None)],
            Some(node(0)),
        ),
    ]);
    let p = play(
        decl,
        "wide",
        vec![ints(0..100_000)],
        with_budget(4 << 20),
        |_, _, _| output(Value::Int(0)),
    );
    let f = p.failure();
    assert_eq!(f.path, "wide/inc");
    assert!(
        f.message.starts_with("a map of 100000 elements needs"),
        "{f}"
    );
    assert!(p.runs.is_empty());
}
