//! What `conditional(..)` records: one node of the enclosing graph, each branch's one call
//! apart from it, and a clear panic (which the host shows when it describes the module) for a
//! branch that makes no call or several.

use sandflow::__private::contract::{Binding, Branch, Comparison, Condition, EntityKind};
use sandflow::{conditional, task, workflow};

#[task]
pub fn inc(n: i64) -> i64 {
    n + 1
}

#[task]
pub fn double(n: i64) -> i64 {
    2 * n
}

#[workflow]
pub fn recorded(n: i64) -> i64 {
    let m = inc::call(n);
    conditional("c")
        .if_(m.gt(1) & !n.eq(5))
        .then(|| double::call(m))
        .else_()
        .fail("small")
}

#[workflow]
pub fn two_calls(n: i64) -> i64 {
    conditional("c")
        .if_(n.gt(1))
        .then(|| double::call(inc::call(n)))
        .else_()
        .then(|| inc::call(n))
}

#[workflow]
pub fn no_call(n: i64) -> i64 {
    conditional("c")
        .if_(n.gt(1))
        .then(|| n)
        .else_()
        .then(|| inc::call(n))
}

#[test]
fn a_conditional_is_one_node_whose_branch_reads_the_enclosing_graph() {
    let EntityKind::Workflow(g) = recorded::__decl().kind else {
        panic!("not a workflow");
    };
    assert_eq!(g.nodes.len(), 2, "inc, and the conditional: {g:#?}");
    assert_eq!(g.output, Some(Binding::Node(1)));
    let c = g.nodes[1].conditional.as_ref().expect("a conditional");
    assert_eq!(g.nodes[1].entity, "c");
    let Condition::And(left, right) = &c.cases[0].when else {
        panic!("an and: {:?}", c.cases[0].when);
    };
    assert_eq!(
        **left,
        Condition::Compare(
            Binding::Node(0),
            Comparison::Gt,
            Binding::Literal(sandflow::__private::Value::Int(1))
        )
    );
    assert!(matches!(**right, Condition::Not(_)));
    let Branch::Node(call) = &c.cases[0].then else {
        panic!("a call");
    };
    assert_eq!(call.entity, "double");
    assert_eq!(call.inputs, [("n".to_string(), Binding::Node(0))]);
    assert_eq!(c.otherwise, Some(Branch::Fail("small".into())));
}

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let e = std::panic::catch_unwind(f).expect_err("it panics");
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_branch_of_two_calls_or_none_is_refused_naming_the_conditional() {
    let m = panic_message(|| {
        two_calls::__decl();
    });
    assert_eq!(
        m,
        "a branch of conditional `c` makes 2 calls (inc, double); a branch is one call: make \
         the others before the conditional and pass their promises in"
    );
    let m = panic_message(|| {
        no_call::__decl();
    });
    assert!(
        m.starts_with("a branch of conditional `c` makes no call"),
        "{m}"
    );
}
