//! The sandflow host: load a guest module, compile its graphs, schedule and execute every
//! task in its own wasm sandbox. The `sandflow` binary is a thin front end over this library.
//!
//! - [`sandbox`]: wasmtime engines, module checking and describing, one fresh instance per
//!   task execution;
//! - [`module`]: the module model (its entities) and load errors; [`compile`]: the graph
//!   compiler; [`load`]: a module loaded, described and modelled;
//! - [`scheduler`]: the pure state machine; [`runner`]: drives it with a worker pool;
//! - [`json`]: JSON inputs and outputs, typed by the interfaces;
//! - [`store`]: the durable record of executions (SQLite), read back by recovery and the CLI.

pub mod cache;
pub mod compile;
pub mod json;
pub mod load;
pub mod record;
pub mod module;
pub mod runner;
pub mod sandbox;
pub mod scheduler;
pub mod store;
