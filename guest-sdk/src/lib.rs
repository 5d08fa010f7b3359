//! The sandflow guest SDK: write tasks, workflows, dynamic workflows, launch plans and map
//! tasks as plain Rust, build with `cargo build --target wasm32-wasip1`, run with `sandflow`.
//!
//! ```
//! use sandflow::{task, workflow};
//!
//! #[task]
//! pub fn step1(a: i64) -> i64 { a + 1 }
//!
//! #[task]
//! pub fn step2(a: i64) -> i64 { a + 2 }
//!
//! #[workflow]
//! pub fn core_wf(a: i64) -> i64 {
//!     step2::call(step1::call(a))
//! }
//!
//! fn main() {
//!     // Tasks stay plain functions in `cargo test`:
//!     assert_eq!(step2(step1(1)), 4);
//! }
//! ```
//!
//! Every entity `foo` gets a companion module `foo` whose `foo::call(..)` adds a call of it to
//! the graph being built (inside a workflow or a dynamic) and returns a typed [`Promise`];
//! `foo::entity()` is the handle [`map`] takes.

mod abi;
mod builder;
mod conditional;
mod failure;
mod names;
mod types;
mod wire;

pub use builder::{map, Entity, IntoBinding, MapBuilder, Promise, UseDefault};
pub use conditional::{conditional, Cases, Cond, Conditional, Else, Primitive, When};
pub use failure::WorkflowError;
pub use sandflow_macros::{dynamic, launch_plan, task, workflow, SfType};
pub use types::{Bytes, SfType};

/// Items the macros expand to. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::abi::{call_entity, decl_entity, encode_call_result, encode_output, Args};
    pub use crate::builder::{add_node, build_graph, field, input_promise, into_output, record};
    pub use crate::names::entity_name;
    pub use sandflow_contract::Binding;
    pub use sandflow_contract::{
        self as contract, EntityDecl, EntityKind, Interface, LaunchPlanSpec, Param, TaskConfig,
        Type, Value,
    };
}
