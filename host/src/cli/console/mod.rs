//! `sandflow ui`'s web console (issue 14): an HTTP server over the execution store.
//! It lives in the CLI's tree rather than the library because it is the binary's alone and
//! shows values as the other reading commands do (`super::store`'s typed JSON, `show`'s
//! summaries), which it reuses instead of moving them. One job per file: `routes` (the
//! router), `api` (the JSON endpoints and the event stream), `actions` (cancel, recover,
//! relaunch, launch), `forms` (modules and interfaces for the forms), `spawn` (the `sandflow`
//! child processes the actions start), `security` (token, Host and cross-site checks),
//! `assets` (the embedded page), `tree` (an execution's tree as the pages read it, in parts
//! when it holds a big map), `view` (graphs, timeline, node panel).

mod actions;
mod api;
mod assets;
mod forms;
mod routes;
mod security;
mod spawn;
mod tree;
mod view;

pub use routes::router;
pub use security::Access;
