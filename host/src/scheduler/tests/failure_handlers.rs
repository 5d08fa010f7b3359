//! A workflow's failure handler: run once with the workflow's inputs and the error when the
//! workflow fails (at the root, as a sub-workflow, behind a launch plan, inside a dynamic's
//! graph), skipped when it succeeds; the workflow still fails, with the handler's outcome.

use super::support::*;
use sandflow_contract::failure_handler::error_type;

/// `wf(a)`: `t1(a)` then `t2(t1)`, with `clean_up(a, err)` as its failure handler.
fn entities() -> Vec<EntityDecl> {
    let mut wf = workflow(
        "wf",
        &[("a", Type::Int)],
        Some(Type::Int),
        vec![
            call("t1", &[("a", input("a"))]),
            call("t2", &[("a", node(0))]),
        ],
        Some(node(1)),
    );
    if let EntityKind::Workflow(g) = &mut wf.kind {
        g.failure_handler = Some("clean_up".into());
    }
    vec![
        task("t1", &[("a", Type::Int)], Some(Type::Int)),
        task("t2", &[("a", Type::Int)], Some(Type::Int)),
        task("clean_up", &[("err", error_type()), ("a", Type::Int)], None),
        wf,
        workflow(
            "outer",
            &[("a", Type::Int)],
            Some(Type::Int),
            vec![call("wf", &[("a", input("a"))])],
            Some(node(0)),
        ),
        launch_plan("wf_lp", &[("a", Type::Int)], Some(Type::Int), plan("wf")),
        workflow(
            "via_lp",
            &[("a", Type::Int)],
            Some(Type::Int),
            vec![call("wf_lp", &[("a", input("a"))])],
            Some(node(0)),
        ),
        dynamic("dyn", &[("a", Type::Int)], Some(Type::Int)),
    ]
}

/// Plays `entity` on 5 with `t2` failing (or not); the handler's inputs, one per run of it.
fn run(entity: &str, t2_fails: bool, handler_fails: bool) -> (Played, Vec<Vec<Value>>) {
    let mut handled = Vec::new();
    let p = play(
        module(entities()),
        entity,
        vec![Value::Int(5)],
        Options::default(),
        |name, inputs, _| match name {
            "t2" if t2_fails => fail("t2 broke"),
            "clean_up" => {
                handled.push(inputs.to_vec());
                if handler_fails {
                    fail("clean_up broke")
                } else {
                    Outcome::Returned(CallResult::Output(None))
                }
            }
            "dyn" => graph(
                vec![call("wf", &[("a", lit(inputs[0].clone()))])],
                Some(node(0)),
            ),
            _ => output(Value::Int(int_of(&inputs[0]) + 1)),
        },
    );
    (p, handled)
}

fn find<'a>(t: &'a TreeNode, entity: &str) -> Option<&'a TreeNode> {
    if t.entity == entity {
        return Some(t);
    }
    t.children.iter().find_map(|c| find(c, entity))
}

#[test]
fn a_failed_workflow_runs_its_handler_once_with_its_inputs_and_the_error() {
    let (p, handled) = run("wf", true, false);
    let err = Value::Record(vec![
        Value::Str("t2 broke".into()),
        Value::Str("wf/t2".into()),
        Value::Str("user".into()),
    ]);
    // In the handler's interface order: the error first, then the workflow's input.
    assert_eq!(handled, vec![vec![err, Value::Int(5)]]);
    let f = p.failure();
    assert_eq!(
        f.path, "wf/t2",
        "the workflow is reported failed where it failed"
    );
    assert_eq!(
        f.message,
        "t2 broke (failure handler clean_up ran and succeeded)"
    );
    let tree = p.sched.tree(&TreeOptions::default());
    let h = find(&tree, "clean_up").expect("the handler is a node of the tree");
    assert_eq!(
        (h.path.as_str(), h.state.as_str()),
        ("wf/clean_up", "SUCCEEDED")
    );
}

#[test]
fn a_handler_may_leave_the_error_out_or_take_it_as_an_optional() {
    let err = Value::Record(vec![
        Value::Str("t2 broke".into()),
        Value::Str("wf/t2".into()),
        Value::Str("user".into()),
    ]);
    let optional = Type::Optional(Box::new(error_type()));
    /// The handler's inputs, and what it is called with.
    type Case = (Vec<(&'static str, Type)>, Vec<Value>);
    let cases: [Case; 2] = [
        (vec![("a", Type::Int)], vec![Value::Int(5)]),
        (
            vec![("a", Type::Int), ("err", optional)],
            vec![Value::Int(5), Value::Optional(Some(Box::new(err)))],
        ),
    ];
    for (inputs, expected) in cases {
        let mut es = entities();
        es[2] = task("clean_up", &inputs, None);
        let mut handled = Vec::new();
        let p = play(
            module(es),
            "wf",
            vec![Value::Int(5)],
            Options::default(),
            |name, i, _| match name {
                "t2" => fail("t2 broke"),
                "clean_up" => {
                    handled.push(i.to_vec());
                    Outcome::Returned(CallResult::Output(None))
                }
                _ => output(Value::Int(1)),
            },
        );
        assert_eq!(handled, vec![expected]);
        assert_eq!(p.failure().path, "wf/t2");
    }
}

#[test]
fn a_workflow_that_succeeds_skips_its_handler() {
    let (p, handled) = run("wf", false, false);
    assert_eq!(p.value(), &Value::Int(7));
    assert!(handled.is_empty());
    let tree = p.sched.tree(&TreeOptions::default());
    assert_eq!(
        find(&tree, "clean_up").map(|h| h.state.as_str()),
        Some("SKIPPED")
    );
}

#[test]
fn a_failing_handler_is_reported_beside_the_workflow_failure() {
    let (p, handled) = run("wf", true, true);
    assert_eq!(
        handled.len(),
        1,
        "a failed handler is not retried by the workflow"
    );
    assert_eq!(
        p.failure().message,
        "t2 broke (failure handler clean_up failed too, at wf/clean_up: clean_up broke)"
    );
}

#[test]
fn the_handler_runs_once_in_a_sub_workflow_a_launch_plan_and_a_dynamic_graph() {
    for (entity, failed_node) in [
        ("outer", "outer/wf/t2"),
        ("via_lp", "via_lp/wf_lp/t2"),
        ("wf_lp", "wf_lp/t2"),
        ("dyn", "dyn/wf/t2"),
    ] {
        let (p, handled) = run(entity, true, false);
        assert_eq!(handled.len(), 1, "{entity}: {handled:?}");
        assert_eq!(
            handled[0][0],
            Value::Record(vec![
                Value::Str("t2 broke".into()),
                Value::Str(failed_node.into()),
                Value::Str("user".into()),
            ]),
            "{entity}"
        );
        assert_eq!(p.failure().path, failed_node, "{entity}");
        assert!(
            p.failure()
                .message
                .ends_with("(failure handler clean_up ran and succeeded)"),
            "{entity}: {}",
            p.failure().message
        );
    }
}

#[test]
fn a_handler_of_the_wrong_interface_is_refused_at_load() {
    let cases: &[(&[(&str, Type)], &str)] = &[
        (
            &[("err", error_type())],
            "wf: failure handler `clean_up`: has no input `a`; a handler takes the workflow's inputs and may take the error, optional or not: (a: i64, err: WorkflowError { message: string, failed_node: string, kind: string })",
        ),
        (
            &[("err", Type::Str), ("a", Type::Int)],
            "input `err` is string, expected WorkflowError { message: string, failed_node: string, kind: string }",
        ),
        (
            &[("err", error_type()), ("a", Type::Str)],
            "input `a` is string, the workflow's is i64",
        ),
        (
            &[("err", error_type()), ("a", Type::Int), ("b", Type::Int)],
            "has input `b`, which the workflow does not have",
        ),
    ];
    for (inputs, expected) in cases {
        let mut es = entities();
        es[2] = task("clean_up", inputs, None);
        let Err(e) = ModuleDecl::new(es) else {
            panic!("the module is refused")
        };
        assert!(e.to_string().contains(expected), "{inputs:?}: {e}");
    }
    let mut es = entities();
    if let EntityKind::Workflow(g) = &mut es[3].kind {
        g.failure_handler = Some("nope".into());
    }
    let Err(e) = ModuleDecl::new(es) else {
        panic!("the module is refused")
    };
    assert!(
        e.to_string()
            .contains("wf: failure handler `nope`: unknown entity"),
        "{e}"
    );
}

#[test]
fn a_dynamic_graph_may_not_have_a_failure_handler() {
    let p = play(
        module(entities()),
        "dyn",
        vec![Value::Int(5)],
        Options::default(),
        |name, inputs, _| match name {
            "dyn" => Outcome::Returned(CallResult::Graph(GraphSpec {
                nodes: vec![call("t1", &[("a", lit(Value::Int(1)))])],
                output: Some(node(0)),
                failure_handler: Some("clean_up".into()),
                ..GraphSpec::default()
            })),
            _ => output(Value::Int(int_of(&inputs[0]) + 1)),
        },
    );
    assert!(
        p.failure()
            .message
            .contains("failure handler `clean_up`: only a workflow may have a failure handler"),
        "{}",
        p.failure().message
    );
}
