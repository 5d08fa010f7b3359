//! sandflow's end-to-end suite: builds the guest crates in `examples/` and `tests/` for
//! wasm32-wasip1 once, runs them through the host (library and CLI), and checks outputs,
//! execution trees and errors. One binary, linked once.

mod browser;
mod cache;
mod cli;
mod conditional_field;
mod console;
mod console_actions;
mod console_actions_page;
mod console_big;
mod console_page;
mod durable;
mod enums;
mod errors;
mod flyte_conditional;
mod flyte_examples;
mod flyte_failure_node;
mod guest_builds;
mod guests;
mod hostile;
mod language;
mod outputs;
#[path = "../../host/src/store/pg/cluster.rs"]
mod pg_cluster;
mod pg_queue;
mod pg_store;
mod seed;
mod semantics;
mod store_cli;
mod store_faults;
mod unions;
