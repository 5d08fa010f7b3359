//! sandflow's end-to-end suite: builds the guest crates in `examples/` and `tests/` for
//! wasm32-wasip1 once, runs them through the host (library and CLI), and checks outputs,
//! execution trees and errors. One binary, linked once.

mod cache;
mod cli;
mod console;
mod durable;
mod enums;
mod errors;
mod guest_builds;
mod guests;
mod hostile;
mod language;
#[path = "../../host/src/store/pg/cluster.rs"]
mod pg_cluster;
mod pg_store;
mod seed;
mod semantics;
mod store_cli;
