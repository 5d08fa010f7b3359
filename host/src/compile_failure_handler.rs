//! The load-time check of a workflow's failure handler (`#[workflow(on_failure = clean_up)]`).
//!
//! What a handler must be, as Flyte requires of its failure node: a task, workflow or dynamic
//! of the module whose inputs are exactly the workflow's inputs (same names, same types),
//! and may be one input `err` (optional or not) of the error record `WorkflowError { message: string, failed_node: string,
//! kind: string }`. Its output, if any, is not read.

use crate::compile::{CompileError, Entities};
use sandflow_contract::failure_handler::{error_type, ERROR_INPUT};
use sandflow_contract::{EntityKind, GraphSpec, Param, Type};

/// Checks the failure handler of `graph`, built by `owner`; `inputs` are the workflow's
/// inputs (`None` for a dynamic's graph, which may not have a handler).
pub(crate) fn check_failure_handler(
    decl: &impl Entities,
    graph: &GraphSpec,
    inputs: Option<&[Param]>,
    owner: &str,
) -> Result<(), CompileError> {
    let Some(name) = &graph.failure_handler else {
        return Ok(());
    };
    let at = || format!("{owner}: failure handler `{name}`");
    let fail = |m: String| {
        Err(CompileError {
            location: at(),
            message: m,
        })
    };
    let Some(inputs) = inputs else {
        return fail(
            "only a workflow may have a failure handler, not a graph a dynamic returns".into(),
        );
    };
    let Some(handler) = decl.get(name) else {
        return fail(format!("unknown entity; the module has: {}", decl.names()));
    };
    let required = || {
        let mut all: Vec<String> = inputs
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect();
        all.push(format!("{ERROR_INPUT}: {}", error_listing()));
        format!(
            "a handler takes the workflow's inputs and may take the error, optional or not: ({})",
            all.join(", ")
        )
    };
    match &handler.kind {
        EntityKind::Task(_) | EntityKind::Dynamic(_) => {}
        EntityKind::Workflow(g) if g.failure_handler.as_deref() == Some(name.as_str()) => {
            return fail("is a workflow whose failure handler is itself".into())
        }
        EntityKind::Workflow(_) => {}
        EntityKind::LaunchPlan(_) => {
            return fail("is a launch plan; a handler is a task, a workflow or a dynamic".into())
        }
    }
    if inputs.iter().any(|p| p.name == ERROR_INPUT) {
        return fail(format!(
            "the workflow has an input named `{ERROR_INPUT}`, the name its handler receives the error under; rename it"
        ));
    }
    for p in inputs {
        match handler.interface.input(&p.name) {
            None => return fail(format!("has no input `{}`; {}", p.name, required())),
            Some(h) if h.ty != p.ty => {
                return fail(format!(
                    "input `{}` is {}, the workflow's is {}; {}",
                    p.name,
                    h.ty,
                    p.ty,
                    required()
                ))
            }
            Some(_) => {}
        }
    }
    match handler.interface.input(ERROR_INPUT) {
        // Flyte's handlers may leave the error out, or take it as an optional.
        None => {}
        Some(h) if h.ty != error_type() && h.ty != Type::Optional(Box::new(error_type())) => {
            return fail(format!(
                "input `{ERROR_INPUT}` is {}, expected {}; {}",
                h.ty,
                error_listing(),
                required()
            ))
        }
        Some(_) => {}
    }
    if let Some(extra) = handler
        .interface
        .inputs
        .iter()
        .find(|h| h.name != ERROR_INPUT && inputs.iter().all(|p| p.name != h.name))
    {
        return fail(format!(
            "has input `{}`, which the workflow does not have; {}",
            extra.name,
            required()
        ));
    }
    Ok(())
}

/// `WorkflowError { message: string, failed_node: string, kind: string }`, for messages.
fn error_listing() -> String {
    match error_type() {
        Type::Record(r) => {
            let fields: Vec<String> = r.fields.iter().map(|(n, t)| format!("{n}: {t}")).collect();
            format!("{} {{ {} }}", r.name, fields.join(", "))
        }
        other => other.to_string(),
    }
}
