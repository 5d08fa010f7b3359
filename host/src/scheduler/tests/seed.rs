//! The seed's nested program (workflow, dynamics, launch plans, a reduce) under the fake
//! executor: its results, its tree and its child executions.

use super::support::*;

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

/// With `delegate_launch_plans`, each launch plan call of the top execution is one `Run` of
/// the launch plan entity that the driver answers with its child execution's output; a run
/// `placed` at such a call gives its nodes the paths and keys the expanded call gives them.
#[test]
fn delegated_launch_plan_calls_are_answered_by_placed_child_runs_with_the_same_keys() {
    let here = play_seed((1..=6).collect(), 2, Options::default());
    let decl = module(seed());
    // Each delegated call is run as a placed run of its own, as another worker would.
    let mut placed_keys: Vec<(String, u64)> = Vec::new();
    let opts = Options {
        delegate_launch_plans: true,
        max_parallelism: 2,
        ..Options::default()
    };
    let mut sched = Scheduler::new(
        decl.clone(),
        "multi_wf",
        vec![ints(1..=6), Value::Int(2)],
        opts,
    )
    .unwrap();
    let first = sched.start();
    let mut calls = Vec::new();
    let p = drive(sched, first, |entity, inputs, attempt| {
        if entity != "core_wf_lp" {
            return seed_answer(entity, inputs, attempt);
        }
        calls.push(inputs[0].clone());
        output(Value::Int(int_of(&inputs[0]) + 3))
    });
    assert_eq!(p.value(), &ints([4, 5, 6, 7, 8, 9]));
    assert_eq!(calls, (1..=6).map(Value::Int).collect::<Vec<_>>());
    assert_eq!(p.sched.child_executions(), 0, "none expanded here");
    // Two level2 at most, and the calls beside them: as expanded calls, they take no slot of
    // the caller (their tasks count against their own execution's limit).
    assert!(p.max_outstanding > 2, "{}", p.max_outstanding);
    // The placed runs: the same paths and keys as the calls' nodes where they expanded.
    for (path, run) in p
        .runs
        .iter()
        .filter(|(path, _)| path.ends_with(']') && path.contains("core_wf_lp"))
    {
        let key = p.sched.node_key(run.node);
        let opts = Options {
            placed: Some(Placement {
                path: path.clone(),
                key,
            }),
            ..Options::default()
        };
        let child = play(
            decl.clone(),
            "core_wf_lp",
            run.inputs.clone(),
            opts,
            seed_answer,
        );
        assert_eq!(child.value(), &Value::Int(int_of(&run.inputs[0]) + 3));
        for (cpath, crun) in &child.runs {
            placed_keys.push((cpath.clone(), child.sched.node_key(crun.node)));
        }
    }
    let mut expanded: Vec<(String, u64)> = here
        .runs
        .iter()
        .filter(|(path, _)| path.contains("/step"))
        .map(|(path, r)| (path.clone(), here.sched.node_key(r.node)))
        .collect();
    expanded.sort();
    placed_keys.sort();
    assert_eq!(placed_keys.len(), 12);
    assert_eq!(placed_keys, expanded);
}

/// Calls inside a child execution still expand: only the top execution delegates.
#[test]
fn a_placed_run_expands_its_own_launch_plan_calls() {
    let opts = Options {
        delegate_launch_plans: true,
        ..Options::default()
    };
    let p = play(
        module(seed()),
        "core_wf_lp",
        vec![Value::Int(1)],
        opts,
        seed_answer,
    );
    assert_eq!(p.value(), &Value::Int(4));
    assert_eq!(
        p.count("core_wf_lp"),
        0,
        "the top node itself is never delegated"
    );
}

/// A delegated call whose worker lost it (a fault of the system) is made again, with the same
/// inputs; one whose child execution failed (the user's fault) is not: the child already
/// retried its tasks.
#[test]
fn a_delegated_call_is_made_again_after_a_system_fault_and_never_after_a_user_one() {
    let opts = || Options {
        delegate_launch_plans: true,
        ..Options::default()
    };
    let mut launches: Vec<(i64, u32)> = Vec::new();
    let p = play(
        module(seed()),
        "multi_wf",
        vec![ints([1, 2]), Value::Int(2)],
        opts(),
        |entity, inputs, attempt| {
            if entity != "core_wf_lp" {
                return seed_answer(entity, inputs, attempt);
            }
            launches.push((int_of(&inputs[0]), attempt));
            if int_of(&inputs[0]) == 2 && attempt < 3 {
                return Outcome::Failed(AttemptFailure::host("the row ended without its result"));
            }
            output(Value::Int(int_of(&inputs[0]) + 3))
        },
    );
    assert_eq!(p.value(), &ints([4, 5]));
    launches.sort();
    assert_eq!(launches, [(1, 1), (2, 1), (2, 2), (2, 3)]);
    // level1, one level2 and reduce: the calls' four attempts are child executions.
    assert_eq!(p.sched.attempts_started(), 3);
    assert_eq!(p.sched.delegated_calls(), 4);

    let mut calls = 0;
    let p = play(
        module(seed()),
        "multi_wf",
        vec![ints([1]), Value::Int(1)],
        opts(),
        |entity, inputs, attempt| {
            if entity != "core_wf_lp" {
                return seed_answer(entity, inputs, attempt);
            }
            calls += 1;
            fail("child execution x failed: step1: boom")
        },
    );
    assert_eq!(calls, 1, "a user's fault is not retried");
    assert!(p.failure().message.contains("boom"), "{}", p.failure());
}
