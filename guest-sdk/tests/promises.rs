//! The bindings promises stand for: parts of a node's output are read by the host; parts of a
//! constant or of a value built from promises are known while the graph is built.

use sandflow::__private::{contract::GraphSpec, Binding, Value};
use sandflow::{dynamic, task, Promise, SfType};

#[derive(SfType)]
pub struct Pair {
    pub left: i64,
    pub right: i64,
}

#[task]
pub fn make(a: i64) -> Pair {
    Pair { left: a, right: -a }
}

#[task]
pub fn div_mod(a: i64, b: i64) -> (i64, i64) {
    (a / b, a % b)
}

#[task]
pub fn show(n: i64) -> i64 {
    n
}

/// What `show` (the `k`th node after the `first` ones) is bound to.
fn shown(g: &GraphSpec, k: usize) -> &Binding {
    let shows: Vec<&Binding> = g
        .nodes
        .iter()
        .filter(|n| n.entity == show::NAME)
        .map(|n| &n.inputs[0].1)
        .collect();
    shows[k]
}

#[dynamic]
pub fn parts(a: i64) -> Pair {
    let made = make::call(a);
    show::call(made.right());
    let (q, r) = div_mod::call(a, 3).split();
    show::call(r);
    // A record built from promises, and a field of it: the promise it was built from.
    let built: Promise<Pair> = PairPromises { left: q, right: r }.into();
    show::call(built.left());
    // Parts of constants are constants.
    show::call(Promise::value(vec![5, 6, 7]).at(1));
    show::call(Promise::value(Pair { left: 8, right: 9 }).right());
    PairPromises {
        left: made.left(),
        right: Promise::value(0),
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
fn parts_of_node_outputs_are_fields_the_host_reads() {
    let g = parts::graph(7);
    assert_eq!(shown(&g, 0), &field(Binding::Node(0), "right", 1));
    assert_eq!(shown(&g, 1), &field(Binding::Node(2), "1", 1));
}

#[test]
fn parts_of_built_values_and_constants_are_known_while_the_graph_is_built() {
    let g = parts::graph(7);
    assert_eq!(shown(&g, 2), &field(Binding::Node(2), "0", 0));
    assert_eq!(shown(&g, 3), &Binding::Literal(Value::Int(6)));
    assert_eq!(shown(&g, 4), &Binding::Literal(Value::Int(9)));
    assert_eq!(
        g.output,
        Some(Binding::Record(vec![
            field(Binding::Node(0), "left", 0),
            Binding::Literal(Value::Int(0)),
        ]))
    );
    // Only calls are nodes: make, show, div_mod and four more shows.
    assert_eq!(g.nodes.len(), 7);
}

#[test]
fn entities_are_named_by_module_path_less_the_crate() {
    // An integration test is a crate of its own: its root entities keep their plain names.
    assert_eq!(make::NAME, "make");
    assert_eq!(make::entity().name, "make");
}
