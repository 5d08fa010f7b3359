//! Parallelism: `max_parallelism` per execution, a launch plan's own limit, and map
//! concurrency.

use super::support::*;

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
