//! `sandflow ui`'s web console (issue 14): an HTTP server over the execution store, read only.
//! It lives in the CLI's tree rather than the library because it is the binary's alone and
//! shows values as the other reading commands do (`super::store`'s typed JSON, `show`'s
//! summaries), which it reuses instead of moving them. One job per file: `routes` (the
//! router), `api` (the JSON endpoints and the event stream), `security` (token, Host and
//! cross-site checks), `assets` (the embedded page).

mod api;
mod assets;
mod routes;
mod security;
mod view;

pub use routes::router;
pub use security::Access;
