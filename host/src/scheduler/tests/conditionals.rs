//! Conditional nodes: the host evaluates the cases, runs the taken branch only and skips the
//! rest, in workflows, in dynamics' graphs and in maps over a workflow; and the compiler's
//! refusals of conditionals that cannot run.

use super::support::*;
use crate::scheduler::{Change, Recovered, State};
use sandflow_contract::{Branch, Case, Comparison, Condition, ConditionalSpec};

fn cmp(a: Binding, op: Comparison, b: Binding) -> Condition {
    Condition::Compare(a, op, b)
}

fn and(a: Condition, b: Condition) -> Condition {
    Condition::And(Box::new(a), Box::new(b))
}

fn float(x: f64) -> Binding {
    lit(Value::Float(x))
}

fn conditional(name: &str, cases: Vec<(Condition, Branch)>, otherwise: Option<Branch>) -> NodeSpec {
    NodeSpec {
        conditional: Some(Box::new(ConditionalSpec {
            cases: cases
                .into_iter()
                .map(|(when, then)| Case { when, then })
                .collect(),
            otherwise,
        })),
        ..call(name, &[])
    }
}

fn then(entity: &str, inputs: &[(&str, Binding)]) -> Branch {
    Branch::Node(call(entity, inputs))
}

/// Flyte's `shape_properties_with_multiple_branches`, on an int: double `n` for
/// `0 <= x < 1`, square it for `1 < x < 10`, else fail.
fn fractions() -> Vec<EntityDecl> {
    let x = || input("x");
    vec![
        task("double", &[("n", Type::Int)], Some(Type::Int)),
        task("square", &[("n", Type::Int)], Some(Type::Int)),
        workflow(
            "wf",
            &[("x", Type::Float), ("n", Type::Int)],
            Some(Type::Int),
            vec![conditional(
                "fractions",
                vec![
                    (
                        and(
                            cmp(x(), Comparison::Ge, float(0.0)),
                            cmp(x(), Comparison::Lt, float(1.0)),
                        ),
                        then("double", &[("n", input("n"))]),
                    ),
                    (
                        and(
                            cmp(x(), Comparison::Gt, float(1.0)),
                            cmp(x(), Comparison::Lt, float(10.0)),
                        ),
                        then("square", &[("n", input("n"))]),
                    ),
                ],
                Some(Branch::Fail("The input must be between 0 and 10".into())),
            )],
            Some(node(0)),
        ),
    ]
}

fn answer_arith(entity: &str, inputs: &[Value], _: u32) -> Outcome {
    let n = int_of(&inputs[0]);
    output(Value::Int(match entity {
        "double" => 2 * n,
        "square" => n * n,
        "inc" => n + 1,
        other => panic!("unexpected {other}"),
    }))
}

fn states(s: &Scheduler) -> Vec<(String, String)> {
    fn walk(t: &TreeNode, out: &mut Vec<(String, String)>) {
        out.push((t.path.clone(), format!("{} {}", t.kind, t.state)));
        t.children.iter().for_each(|c| walk(c, out));
    }
    let mut out = Vec::new();
    walk(&s.tree(&TreeOptions::default()), &mut out);
    out
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_first_case_that_holds_runs_and_the_other_branches_are_skipped() {
    let decl = module(fractions());
    for (x, entity, expected) in [(0.5, "double", 6), (5.0, "square", 9)] {
        let p = play(
            decl.clone(),
            "wf",
            vec![Value::Float(x), Value::Int(3)],
            Options::default(),
            answer_arith,
        );
        assert_eq!(p.value(), &Value::Int(expected), "x = {x}");
        assert_eq!(p.runs.len(), 1, "only the taken branch runs");
        assert_eq!(p.runs[0].0, format!("wf/fractions/{entity}"));
        let other = if entity == "double" {
            "square"
        } else {
            "double"
        };
        let mut want = vec![
            ("wf", "workflow SUCCEEDED"),
            ("wf/fractions", "conditional SUCCEEDED"),
            ("wf/fractions/double", "task SUCCEEDED"),
            ("wf/fractions/square", "task SUCCEEDED"),
        ];
        let k = if other == "double" { 2 } else { 3 };
        want[k].1 = "task SKIPPED";
        assert_eq!(states(&p.sched), pairs(&want), "x = {x}");
    }
}

#[test]
fn a_fail_branch_fails_the_conditional_with_its_message() {
    let p = play(
        module(fractions()),
        "wf",
        vec![Value::Float(1.0), Value::Int(3)],
        Options::default(),
        answer_arith,
    );
    let f = p.failure();
    assert_eq!(f.path, "wf/fractions");
    assert_eq!(f.message, "The input must be between 0 and 10");
    assert!(p.runs.is_empty(), "no branch ran");
    assert_eq!(
        states(&p.sched),
        pairs(&[
            ("wf", "workflow FAILED"),
            ("wf/fractions", "conditional FAILED"),
            ("wf/fractions/double", "task SKIPPED"),
            ("wf/fractions/square", "task SKIPPED"),
        ])
    );
}

#[test]
fn a_condition_waits_for_the_task_it_reads_and_nested_conditionals_choose_in_turn() {
    // coin = toss(); if coin { if n > 2 { square(n) } else { inc(n) } } else { double(n) }
    let decl = module(vec![
        task("toss", &[], Some(Type::Bool)),
        task("double", &[("n", Type::Int)], Some(Type::Int)),
        task("square", &[("n", Type::Int)], Some(Type::Int)),
        task("inc", &[("n", Type::Int)], Some(Type::Int)),
        workflow(
            "wf",
            &[("n", Type::Int)],
            Some(Type::Int),
            vec![
                call("toss", &[]),
                conditional(
                    "outer",
                    vec![(
                        Condition::IsTrue(node(0)),
                        Branch::Node(conditional(
                            "inner",
                            vec![(
                                cmp(input("n"), Comparison::Gt, lit(Value::Int(2))),
                                then("square", &[("n", input("n"))]),
                            )],
                            Some(then("inc", &[("n", input("n"))])),
                        )),
                    )],
                    Some(then("double", &[("n", input("n"))])),
                ),
            ],
            Some(node(1)),
        ),
    ]);
    for (coin, n, expected, ran) in [
        (true, 3, 9, "wf/outer/inner/square"),
        (true, 2, 3, "wf/outer/inner/inc"),
        (false, 3, 6, "wf/outer/double"),
    ] {
        let mut s = Scheduler::new(decl.clone(), "wf", vec![Value::Int(n)], Options::default())
            .expect("the run starts");
        let first = runs(&s.start());
        assert_eq!(paths(&s, &first), ["wf/toss"], "the conditional waits");
        let second = runs(&s.on_event(answer(&first[0], output(Value::Bool(coin)))));
        assert_eq!(paths(&s, &second), [ran]);
        let last = s.on_event(answer(
            &second[0],
            answer_arith(&ran[ran.rfind('/').unwrap() + 1..], &[Value::Int(n)], 1),
        ));
        assert_eq!(finished(&last), Ok(Some(Value::Int(expected))));
    }
}

#[test]
fn a_conditional_without_else_runs_nothing_when_no_case_holds() {
    let decl = module(vec![
        task("log", &[("n", Type::Int)], None),
        workflow(
            "wf",
            &[("n", Type::Int)],
            None,
            vec![conditional(
                "maybe",
                vec![(
                    cmp(input("n"), Comparison::Eq, lit(Value::Int(1))),
                    then("log", &[("n", input("n"))]),
                )],
                None,
            )],
            None,
        ),
    ]);
    let p = play(
        decl,
        "wf",
        vec![Value::Int(2)],
        Options::default(),
        |_, _, _| Outcome::Returned(CallResult::Output(None)),
    );
    assert_eq!(p.result, Ok(None));
    assert!(p.runs.is_empty());
    assert_eq!(
        states(&p.sched),
        pairs(&[
            ("wf", "workflow SUCCEEDED"),
            ("wf/maybe", "conditional SUCCEEDED"),
            ("wf/maybe/log", "task SKIPPED"),
        ])
    );
}

#[test]
fn each_element_of_a_map_over_a_workflow_takes_its_own_branch() {
    let mut entities = fractions();
    entities.push(workflow(
        "many",
        &[("xs", list(Type::Float))],
        Some(list(Type::Int)),
        vec![NodeSpec {
            map: Some(MapSpec {
                mapped: vec!["x".into()],
                concurrency: None,
                min_success_ratio: None,
                min_success: None,
            }),
            ..call("wf", &[("x", input("xs")), ("n", lit(Value::Int(3)))])
        }],
        Some(node(0)),
    ));
    let p = play(
        module(entities),
        "many",
        vec![Value::List(vec![
            Value::Float(0.5),
            Value::Float(2.0),
            Value::Float(0.0),
        ])],
        Options::default(),
        answer_arith,
    );
    assert_eq!(ints_of(p.value()), [6, 9, 6]);
    let ran: Vec<&str> = p.runs.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        ran,
        [
            "many/wf[0]/fractions/double",
            "many/wf[1]/fractions/square",
            "many/wf[2]/fractions/double"
        ]
    );
}

#[test]
fn a_dynamics_conditional_reads_the_dynamics_own_nodes() {
    let mut entities = fractions();
    entities.push(task("inc", &[("n", Type::Int)], Some(Type::Int)));
    entities.push(dynamic("dyn", &[("n", Type::Int)], Some(Type::Int)));
    let p = play(
        module(entities),
        "dyn",
        vec![Value::Int(4)],
        Options::default(),
        |e, inputs, _| {
            if e == "dyn" {
                return graph(
                    vec![
                        call("inc", &[("n", lit(inputs[0].clone()))]),
                        conditional(
                            "big",
                            vec![(
                                cmp(node(0), Comparison::Ge, lit(Value::Int(5))),
                                then("square", &[("n", node(0))]),
                            )],
                            Some(then("double", &[("n", node(0))])),
                        ),
                    ],
                    Some(node(1)),
                );
            }
            answer_arith(e, inputs, 1)
        },
    );
    assert_eq!(p.value(), &Value::Int(25));
    let ran: Vec<&str> = p.runs.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(ran, ["dyn", "dyn/inc", "dyn/big/square"]);
}

#[test]
fn the_journal_records_skipped_branches_and_the_conditionals_output() {
    let mut s = Scheduler::new(
        module(fractions()),
        "wf",
        vec![Value::Float(0.5), Value::Int(3)],
        Options::default(),
    )
    .expect("the run starts");
    s.journal();
    let first = runs(&s.start());
    let mut seen: Vec<(String, &'static str, State)> = Vec::new();
    let mut record = |s: &mut Scheduler| {
        for c in s.take_changes() {
            if let Change::Node { node, .. } = c {
                let v = s.node_view(node);
                seen.push((v.path, v.kind, v.state));
            }
        }
    };
    record(&mut s);
    s.on_event(answer(&first[0], output(Value::Int(6))));
    record(&mut s);
    assert!(seen.contains(&("wf/fractions/square".into(), "task", State::Skipped)));
    assert!(seen.contains(&("wf/fractions".into(), "conditional", State::Succeeded)));
    assert!(seen.contains(&("wf/fractions/double".into(), "task", State::Succeeded)));
}

/// What loading a module with workflow `wf` (inputs `x: float`, `l: list<int>`; tasks
/// `double: int -> int`, `half: int -> float`) holding `node` says.
fn load_error(n: NodeSpec, output: Option<Type>) -> String {
    let decl = ModuleDecl::new(vec![
        task("double", &[("n", Type::Int)], Some(Type::Int)),
        task("half", &[("n", Type::Int)], Some(Type::Float)),
        workflow(
            "wf",
            &[("x", Type::Float), ("l", list(Type::Int))],
            output.clone(),
            vec![n],
            output.map(|_| node(0)),
        ),
    ]);
    match decl {
        Ok(_) => panic!("the module loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_branch_of_another_type_is_refused_at_load_naming_both() {
    let e = load_error(
        conditional(
            "c",
            vec![(
                cmp(input("x"), Comparison::Lt, float(1.0)),
                then("double", &[("n", lit(Value::Int(1)))]),
            )],
            Some(then("half", &[("n", lit(Value::Int(1)))])),
        ),
        Some(Type::Int),
    );
    assert_eq!(
        e,
        "wf: conditional `c` (node n0): the else branch (calls `half`) returns f64, \
         but case 1 (calls `double`) returns i64: all branches of a conditional return one type"
    );
}

#[test]
fn a_condition_on_a_non_primitive_or_on_two_types_is_refused_at_load() {
    let branch = || then("double", &[("n", lit(Value::Int(1)))]);
    let e = load_error(
        conditional(
            "c",
            vec![(cmp(input("l"), Comparison::Eq, input("l")), branch())],
            Some(branch()),
        ),
        Some(Type::Int),
    );
    assert_eq!(
        e,
        "wf: conditional `c` (node n0): condition of case 1: `==` compares workflow \
         input `l`, of type list<i64>; a comparison takes an int, float, str or bool"
    );
    let e = load_error(
        conditional(
            "c",
            vec![(
                cmp(input("x"), Comparison::Ge, lit(Value::Int(0))),
                branch(),
            )],
            Some(branch()),
        ),
        Some(Type::Int),
    );
    assert_eq!(
        e,
        "wf: conditional `c` (node n0): condition of case 1: `>=` compares workflow \
         input `x` (f64) with the constant 0 (i64); both sides must have one type"
    );
    let e = load_error(
        conditional(
            "c",
            vec![(Condition::IsTrue(input("x")), branch())],
            Some(branch()),
        ),
        Some(Type::Int),
    );
    assert!(
        e.ends_with("is_true tests workflow input `x`, of type f64; expected bool"),
        "{e}"
    );
}

#[test]
fn a_conditional_with_an_output_and_no_else_is_refused_at_load() {
    let e = load_error(
        conditional(
            "c",
            vec![(
                cmp(input("x"), Comparison::Lt, float(1.0)),
                then("double", &[("n", lit(Value::Int(1)))]),
            )],
            None,
        ),
        Some(Type::Int),
    );
    assert!(e.contains("has no else_() branch, but returns i64"), "{e}");
}

#[test]
fn a_recovery_reuses_the_taken_branchs_output_and_evaluates_the_conditional_again() {
    // The original run: `toss` and the taken branch (`square`) ended, keyed.
    let decl = module(vec![
        task("toss", &[], Some(Type::Bool)),
        task("square", &[("n", Type::Int)], Some(Type::Int)),
        task("double", &[("n", Type::Int)], Some(Type::Int)),
        workflow(
            "wf",
            &[("n", Type::Int)],
            Some(Type::Int),
            vec![
                call("toss", &[]),
                conditional(
                    "coin",
                    vec![(
                        Condition::IsTrue(node(0)),
                        then("square", &[("n", input("n"))]),
                    )],
                    Some(then("double", &[("n", input("n"))])),
                ),
            ],
            Some(node(1)),
        ),
    ]);
    let mut s = Scheduler::new(decl.clone(), "wf", vec![Value::Int(3)], Options::default())
        .expect("the run starts");
    s.journal();
    let mut rec = Recovered::default();
    let mut keep = |s: &mut Scheduler| {
        for c in s.take_changes() {
            if let Change::Node { node, output } = c {
                let v = s.node_view(node);
                if v.state == State::Succeeded && v.kind == "task" {
                    rec.outputs.insert(v.key, output.into());
                }
            }
        }
    };
    let first = runs(&s.start());
    let second = runs(&s.on_event(answer(&first[0], output(Value::Bool(true)))));
    keep(&mut s);
    s.on_event(answer(&second[0], output(Value::Int(9))));
    keep(&mut s);
    assert_eq!(rec.outputs.len(), 2, "toss and square");

    let opts = Options {
        recovered: Some(Arc::new(rec)),
        ..Options::default()
    };
    let p = play(decl, "wf", vec![Value::Int(3)], opts, |e, _, _| {
        panic!("{e} ran again")
    });
    assert_eq!(p.value(), &Value::Int(9));
    assert_eq!(p.sched.reused(), (2, 0));
    assert_eq!(
        states(&p.sched),
        pairs(&[
            ("wf", "workflow SUCCEEDED"),
            ("wf/toss", "task SUCCEEDED"),
            ("wf/coin", "conditional SUCCEEDED"),
            ("wf/coin/square", "task SUCCEEDED"),
            ("wf/coin/double", "task SKIPPED"),
        ])
    );
}

#[test]
fn a_conditional_waiting_for_a_missing_node_is_refused_at_load() {
    let mut n = conditional(
        "c",
        vec![(
            cmp(input("x"), Comparison::Lt, float(1.0)),
            then("double", &[("n", lit(Value::Int(1)))]),
        )],
        Some(then("double", &[("n", lit(Value::Int(2)))])),
    );
    n.after = vec![7];
    assert_eq!(
        load_error(n, Some(Type::Int)),
        "wf: conditional `c` (node n0): waits for node n7, which is itself or not one of the \
         graph's 1 nodes"
    );
}
