//! The console's router: the JSON API under /api, the embedded page everywhere else, every
//! request through the security check first.

use super::security::{check, Access};
use super::{api, assets};
use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use sandflow_host::store::AnyStore;
use std::sync::Arc;

pub fn router(store: Arc<AnyStore>, access: Access) -> Router {
    Router::new()
        .route("/api/executions", get(api::executions))
        .route("/api/executions/{id}", get(api::execution))
        .route("/api/executions/{id}/nodes", get(api::nodes))
        .route("/api/executions/{id}/logs", get(api::logs))
        .route("/api/events", get(api::events))
        .with_state(store)
        // Any other path: an embedded asset or 404 (`serve` maps no path to a file).
        .fallback(|req: Request| async move { assets::serve(req.uri().path()) })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            check,
        ))
}
