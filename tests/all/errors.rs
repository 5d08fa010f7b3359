//! Every bad input gets a clear error naming what, where, and what was expected.

use crate::guests::{host, load, load_err};
use sandflow_host::json::{inputs_from_json, InputError};
use sandflow_host::module::ModuleError;
use serde_json::json;
use std::path::Path;

#[test]
fn wrong_json_type_names_the_input_and_the_element() {
    let s = load("nested_dynamics");
    let wf = s.decl.get("multi_wf").unwrap();
    let err = inputs_from_json(
        &s.decl,
        wf,
        &[("l".into(), json!([1, "x"])), ("chunk".into(), json!(2))],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input `l` at [1]: expected i64, found the string \"x\""
    );
    let err = inputs_from_json(
        &s.decl,
        wf,
        &[("l".into(), json!([1])), ("chunk".into(), json!(2.5))],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input `chunk`: expected i64, found the number 2.5"
    );
}

#[test]
fn missing_and_unknown_inputs_are_named() {
    let s = load("nested_dynamics");
    let wf = s.decl.get("multi_wf").unwrap();
    let err = inputs_from_json(&s.decl, wf, &[("l".into(), json!([1]))]).unwrap_err();
    assert_eq!(
        err,
        InputError::Missing {
            entity: "multi_wf".into(),
            input: "chunk".into(),
            ty: "i64".into()
        }
    );
    let err = inputs_from_json(
        &s.decl,
        wf,
        &[
            ("l".into(), json!([1])),
            ("chunk".into(), json!(1)),
            ("chunks".into(), json!(1)),
        ],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown input `chunks`; multi_wf takes --l <list<i64>> --chunk <i64>"
    );
}

#[test]
fn a_file_that_is_not_wasm_is_rejected() {
    let e = host()
        .load_bytes(b"#!/bin/sh\necho hi\n", Path::new("script.sh"))
        .err()
        .unwrap();
    assert!(matches!(e, ModuleError::NotWasm { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("script.sh: not a WebAssembly module"),
        "{e}"
    );
}

#[test]
fn truncated_wasm_is_rejected_as_invalid() {
    let e = host()
        .load_bytes(b"\0asm\x01\0\0\0\x01\xff\xff", Path::new("t.wasm"))
        .err()
        .unwrap();
    assert!(matches!(e, ModuleError::Invalid { .. }), "{e}");
}

#[test]
fn a_module_without_the_abi_exports_is_rejected() {
    let e = load_err("test.wasm", r#"(module (memory (export "memory") 1))"#);
    assert!(
        matches!(&e, ModuleError::MissingExport { export, .. } if export == "sandflow_alloc"),
        "{e}"
    );
}

#[test]
fn a_module_with_another_abi_version_is_rejected() {
    let e = load_err(
        "test.wasm",
        r#"(module (memory (export "memory") 1)
            (func (export "sandflow_alloc") (param i32) (result i32) i32.const 16)
            (func (export "sandflow_abi_version") (result i32) i32.const 99))"#,
    );
    assert!(
        matches!(
            e,
            ModuleError::AbiVersion {
                found: 99,
                expected: sandflow_contract::abi::ABI_VERSION,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("ABI version 99"), "{e}");
}

#[test]
fn a_module_importing_what_we_do_not_provide_is_rejected() {
    let e = load_err(
        "test.wasm",
        r#"(module (import "env" "open_socket" (func)) (memory (export "memory") 1))"#,
    );
    assert!(e.to_string().contains("env::open_socket"), "{e}");
    let e = load_err(
        "test.wasm",
        r#"(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (memory (export "memory") 1))"#,
    );
    assert!(matches!(e, ModuleError::ForbiddenImport { .. }), "{e}");
}

#[test]
fn unknown_entity_lists_the_available_ones() {
    let s = load("nested_dynamics");
    let e = sandflow_host::scheduler::Scheduler::new(
        s.decl.clone(),
        "multi",
        vec![],
        Default::default(),
    )
    .err()
    .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("unknown entity `multi`")
            && msg.contains("multi_wf")
            && msg.contains("core_wf_lp"),
        "{msg}"
    );
}

#[test]
fn an_input_given_twice_is_an_error_naming_it() {
    let s = load("nested_dynamics");
    let wf = s.decl.get("multi_wf").unwrap();
    let err = inputs_from_json(
        &s.decl,
        wf,
        &[
            ("l".into(), json!([1])),
            ("chunk".into(), json!(1)),
            ("chunk".into(), json!(2)),
        ],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input `chunk` of multi_wf is given twice (give each input once)"
    );
}

#[test]
fn a_float_input_takes_only_the_three_non_finite_names_as_strings() {
    let s = load("fixtures");
    let divide = s.decl.get("divide").unwrap();
    let ok = inputs_from_json(
        &s.decl,
        divide,
        &[("a".into(), json!("-Infinity")), ("b".into(), json!("NaN"))],
    )
    .unwrap();
    assert!(matches!(ok[0], sandflow_contract::Value::Float(f) if f == f64::NEG_INFINITY));
    assert!(matches!(ok[1], sandflow_contract::Value::Float(f) if f.is_nan()));
    let err = inputs_from_json(
        &s.decl,
        divide,
        &[("a".into(), json!("inf")), ("b".into(), json!(1))],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input `a`: expected f64, found the string \"inf\""
    );
}

#[test]
fn a_call_by_entity_index_runs_that_entity_and_refuses_what_has_no_call_export() {
    use sandflow_contract::{codec, CallResult, Value};
    use sandflow_host::sandbox::CallLimits;
    let s = load("nested_dynamics");
    let inputs = codec::encode(&vec![Value::Int(41)]).expect("inputs encode");
    let limits = CallLimits::default();
    let index = |name: &str| s.decl.index(name).expect("the guest declares it");
    // Every lane (worker) finds the same export by index; the name is no longer looked up.
    for lane in 0..host().workers() {
        match s.call_in(lane, index("step1"), &inputs, &limits).result {
            Ok(CallResult::Output(Some(Value::Int(42)))) => {}
            other => panic!("step1(41) in lane {lane}: expected 42, got {other:?}"),
        }
        let f = s
            .call_in(lane, index("step2"), &inputs, &limits)
            .result
            .expect("step2 runs");
        assert_eq!(f, CallResult::Output(Some(Value::Int(43))));
    }
    // A workflow runs in the scheduler, not in a sandbox: it has no call export.
    let f = s
        .call_in(0, index("core_wf"), &inputs, &limits)
        .result
        .unwrap_err();
    assert_eq!(f.message, "the module has no call export for `core_wf`");
    assert!(!f.user, "a host's mistake, not the guest's");
    let past = s.decl.entities.len();
    let f = s.call_in(0, past, &inputs, &limits).result.unwrap_err();
    assert_eq!(
        f.message,
        format!("the module has no entity #{past} (it has {past})")
    );
    // The name-based convenience says the same of a name the module does not have.
    let f = s.call("nope", &inputs, &limits).result.unwrap_err();
    assert_eq!(f.message, "the module has no call export for `nope`");
}
