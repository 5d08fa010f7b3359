//! Parts of promises (a record's field, a tuple's element, a list's element, a map's entry)
//! and records built from bindings: the scheduler reads and builds them itself, with no task.

use super::support::*;
use sandflow_contract::RecordType;

fn pair() -> Type {
    Type::Record(RecordType {
        name: "Pair".into(),
        fields: vec![("left".into(), Type::Int), ("right".into(), Type::Int)],
    })
}

fn field(of: Binding, name: &str, index: u32) -> Binding {
    Binding::Field {
        of: Box::new(of),
        name: name.into(),
        index,
    }
}

fn index(of: Binding, i: u32) -> Binding {
    Binding::Index {
        of: Box::new(of),
        index: i,
    }
}

/// `make` returns a Pair; `show` takes its right field; the workflow returns a Pair built of
/// `show`'s output and the element `i` of its list input.
fn parts_module() -> Arc<ModuleDecl> {
    module(vec![
        task("make", &[("a", Type::Int)], Some(pair())),
        task("show", &[("n", Type::Int)], Some(Type::Int)),
        workflow(
            "wf",
            &[("a", Type::Int), ("l", list(Type::Int))],
            Some(pair()),
            vec![
                call("make", &[("a", input("a"))]),
                call("show", &[("n", field(node(0), "right", 1))]),
            ],
            Some(Binding::Record(vec![node(1), index(input("l"), 2)])),
        ),
    ])
}

#[test]
fn a_field_of_a_nodes_output_is_read_when_the_node_ends_and_a_record_is_built_at_the_end() {
    let l = Value::List(vec![Value::Int(7), Value::Int(8), Value::Int(9)]);
    let mut s = Scheduler::new(
        parts_module(),
        "wf",
        vec![Value::Int(1), l],
        Options::default(),
    )
    .expect("the run starts");
    let first = runs(&s.start());
    assert_eq!(paths(&s, &first), ["wf/make"]);
    let made = Value::Record(vec![Value::Int(3), Value::Int(4)]);
    let second = runs(&s.on_event(answer(&first[0], output(made))));
    // Only the field is passed on.
    assert_eq!(paths(&s, &second), ["wf/show"]);
    assert_eq!(second[0].inputs, [Value::Int(4)]);
    let last = s.on_event(answer(&second[0], output(Value::Int(40))));
    assert_eq!(
        finished(&last),
        Ok(Some(Value::Record(vec![Value::Int(40), Value::Int(9)])))
    );
}

#[test]
fn an_index_out_of_range_fails_the_run_naming_the_place() {
    let l = Value::List(vec![Value::Int(7)]);
    let mut s = Scheduler::new(
        parts_module(),
        "wf",
        vec![Value::Int(1), l],
        Options::default(),
    )
    .expect("the run starts");
    let first = runs(&s.start());
    let made = Value::Record(vec![Value::Int(3), Value::Int(4)]);
    let second = runs(&s.on_event(answer(&first[0], output(made))));
    let last = s.on_event(answer(&second[0], output(Value::Int(40))));
    let f = finished(&last).unwrap_err();
    assert!(
        format!("{f:?}").contains("l[2]: index 2 is out of range of a list of 1 elements"),
        "{f:?}"
    );
}
