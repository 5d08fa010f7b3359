//! Ordering and expansion: dependency order, dynamics' graphs, launch plan inputs, empty
//! graphs and maps.

use super::support::*;

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
