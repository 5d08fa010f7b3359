//! [`NodeQuery`] as each store answers it: the same nodes, in the same order, as the
//! reference ([`NodeQuery::select`] over every node), for a tree with a map whose elements
//! nest, failed and expanded rows, calls repeated in a graph and paths that only look alike.

use super::*;

/// Writes the tree, then checks every query against the reference.
pub(crate) fn queries_answer_as_the_reference(store: &dyn Store) {
    let id = ExecutionId::generate();
    let mut ops = vec![
        WriteOp::PutModule(module()),
        WriteOp::StartExecution(new_execution(&id, 1_000, Owner::current())),
    ];
    let mut key = 0u64;
    let mut row = |path: &str, status: NodeStatus, kind: &str, out: Option<Value>| {
        key += 1;
        let mut n = node(key_of(path), path, status, out);
        n.kind = kind.into();
        n.start_us = Some(1_000 - key);
        WriteOp::Node {
            execution: id.clone(),
            node: n,
        }
    };
    ops.push(row("wf", NodeStatus::Expanded, "workflow", None));
    ops.push(row("wf/m", NodeStatus::Expanded, "map", None));
    for i in (0..25).rev() {
        let path = format!("wf/m[{i}]");
        if i % 5 == 3 {
            // A dynamic element: expanded, its nodes, then ended.
            ops.push(row(&path, NodeStatus::Expanded, "dynamic", None));
            ops.push(row(
                &format!("{path}/t"),
                NodeStatus::Succeeded,
                "task",
                None,
            ));
            ops.push(row(
                &format!("{path}/u[0]"),
                NodeStatus::Failed,
                "task",
                None,
            ));
        }
        let status = if i % 7 == 2 {
            NodeStatus::Failed
        } else {
            NodeStatus::Succeeded
        };
        ops.push(row(&path, status, "task", Some(Value::Int(i))));
    }
    for i in 0..12 {
        ops.push(row(
            &format!("wf/t[{i}]"),
            NodeStatus::Succeeded,
            "task",
            None,
        ));
    }
    ops.push(row("wf/tt", NodeStatus::Succeeded, "task", None));
    ops.push(row("wf/m2[1]", NodeStatus::Succeeded, "task", None));
    ops.push(row("wf/m", NodeStatus::Succeeded, "map", None));
    ops.push(row("wf", NodeStatus::Succeeded, "workflow", None));
    store.write_batch(ops);
    store.flush().unwrap();

    let span = store.row_span(&id).unwrap();
    let all = NodeQuery::default();
    let m = |failed| NodeQuery {
        members: Some("wf/m".into()),
        failed,
        ..all.clone()
    };
    let mut queries = vec![
        all.clone(),
        NodeQuery {
            outputs: true,
            ..all.clone()
        },
        NodeQuery {
            under: Some("wf/m".into()),
            ..all.clone()
        },
        NodeQuery {
            under: Some("wf/m[3]".into()),
            outputs: true,
            ..all.clone()
        },
        NodeQuery {
            except: vec!["wf/m".into(), "wf/t".into()],
            ..all.clone()
        },
        m(None),
        m(Some(true)),
        m(Some(false)),
        NodeQuery {
            limit: Some(4),
            offset: 3,
            ..m(Some(false))
        },
        NodeQuery {
            limit: Some(100),
            offset: 20,
            ..m(Some(false))
        },
        NodeQuery {
            members: Some("wf/t".into()),
            limit: Some(3),
            offset: 9,
            ..all.clone()
        },
        NodeQuery {
            path: Some("wf/m[13]".into()),
            outputs: true,
            ..all.clone()
        },
        NodeQuery {
            paths: Some(vec!["wf/m[13]".into(), "wf/m[2]".into(), "nope".into()]),
            failed: Some(false),
            ..all.clone()
        },
        NodeQuery {
            paths: Some(vec![]),
            ..all.clone()
        },
        NodeQuery {
            tasks_by_start: true,
            limit: Some(7),
            ..all.clone()
        },
        NodeQuery {
            offset: 40,
            ..all.clone()
        },
    ];
    if let Some(span) = span {
        // A window with every row answers as no window.
        queries.push(NodeQuery {
            rows: Some(span),
            ..m(Some(false))
        });
    }
    let every = store.nodes(&id).unwrap();
    for q in &queries {
        let got = store.nodes_where(&id, q).unwrap();
        assert_eq!(got, q.select(every.clone()), "{q:?}");
    }
    // A window is a restriction: the rows outside it are not read.
    if let Some((lo, hi)) = span {
        let q = NodeQuery {
            rows: Some((lo, lo + (hi - lo) / 4)),
            ..m(None)
        };
        let got = store.nodes_where(&id, &q).unwrap();
        assert!(!got.is_empty() && got.len() < q.select(every.clone()).len());
    }
}

/// A node key from its path (keys are hashes of paths in a run).
fn key_of(path: &str) -> u64 {
    path.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    }) % 1_000_000_007
}

#[test]
fn node_queries_answer_as_the_reference_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    queries_answer_as_the_reference(&store);
}
