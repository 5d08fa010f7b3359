//! The sandflow host: load a guest module, compile its graphs, schedule and execute every
//! task in its own wasm sandbox. The `sandflow` binary is a thin front end over this library.
//!
//! - [`sandbox`]: wasmtime engines, module checking and describing, one fresh instance per
//!   task execution;
//! - [`module`]: the module model (its entities) and load errors; [`compile`]: the graph
//!   compiler; [`load`]: a module loaded, described and modelled;
//! - [`scheduler`]: the pure state machine; [`runner`]: drives it with a worker pool;
//! - [`json`]: JSON inputs and outputs, typed by the interfaces;
//! - [`store`]: the durable record of executions (SQLite), read back by recovery and the CLI;
//!   [`remote_cancel`]: a run stopped from another process through it.
//! - [`guest_build`]: building guest crates for wasm32-wasip1 (the CLI, tests and bench).

pub mod cache;
pub mod compile;
mod compile_conditional;
mod compile_failure_handler;
pub mod guest_build;
pub mod json;
pub mod load;
pub mod module;
pub mod record;
pub mod remote_cancel;
pub mod runner;
pub mod sandbox;
pub mod scheduler;
pub mod store;
