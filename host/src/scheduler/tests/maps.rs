//! Maps with a min success ratio: tolerated failures become `None`, more fail the map.

use super::support::*;

/// A workflow mapping `odd_fails` (a * 10, fails on odd a) over `l`.
pub(super) fn tolerant(ratio: Option<f64>) -> Arc<ModuleDecl> {
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

pub(super) fn odd_fails(_: &str, inputs: &[Value], _: u32) -> Outcome {
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
