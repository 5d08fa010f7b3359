//! The host–guest contract of sandflow: everything both sides of the sandbox must agree on.
//!
//! - [`value`]: the runtime value model ([`Value`]) and the static type model ([`Type`]);
//! - [`interface`]: typed interfaces and entity declarations a guest module exports;
//! - [`graph`]: the graph specs that workflows and dynamics build, [`conditional`] their
//!   conditional nodes, [`failure_handler`] what a workflow's failure handler receives;
//! - [`abi`]: export names and the ABI version;
//! - [`codec`]: the one place bytes are encoded and decoded (bincode 2);
//! - [`depth`], [`memory`]: what one decode may build, and what a value or graph takes in
//!   host memory;
//! - [`wire`]: the serde names and tags of `Value` and `CallResult`, for typed fast paths.
//!
//! This crate has no wasmtime and no tokio in it: guests compile it to wasm32-wasip1.

pub mod abi;
pub mod codec;
pub mod conditional;
pub mod depth;
pub mod failure_handler;
pub mod graph;
pub mod interface;
pub mod memory;
pub mod value;
pub mod wire;

pub use conditional::{Branch, Case, Comparison, Condition, ConditionalSpec};
pub use graph::{Binding, FailurePolicy, GraphSpec, MapSpec, NodeSpec};
pub use interface::{
    CacheConfig, CallResult, EntityDecl, EntityKind, Interface, LaunchPlanSpec, Param, RetryOn,
    TaskConfig,
};
pub use value::{EnumType, RecordType, Type, TypeMismatch, UnionType, Value};
