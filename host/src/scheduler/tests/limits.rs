//! The run's limits: max_depth, max_nodes, the memory budget, what `Scheduler::new`
//! refuses, deep chains without recursion, and the size of a node and a scope.

use super::support::*;

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

/// A run holds a node per task call and map element and a scope per workflow, dynamic and
/// launch plan call (a million-element map is a million nodes): keep them from growing back.
#[test]
fn nodes_and_scopes_stay_small() {
    let (node, scope) = (std::mem::size_of::<Node>(), std::mem::size_of::<Scope>());
    assert!(node <= 144, "a node takes {node} bytes");
    assert!(scope <= 88, "a scope takes {scope} bytes");
    assert_eq!(std::mem::size_of::<Value>(), 32);
}

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
