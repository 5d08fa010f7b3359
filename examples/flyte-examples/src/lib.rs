//! Flyte's own examples (the flytesnacks repository) ported to sandflow: one Rust module per
//! Python file, keeping Flyte's entity and input names so that the two read side by side.
//! Entities are named by their module path (`named_outputs::simple_wf`); the tests in
//! `tests/all/flyte_examples.rs` run them against flytekit's outputs.

pub mod attribute_access;
pub mod chain_entities;
pub mod conditional;
pub mod enum_type;
pub mod failure_node;
pub mod launch_plan;
pub mod named_outputs;
pub mod subworkflow;
pub mod workflow;
