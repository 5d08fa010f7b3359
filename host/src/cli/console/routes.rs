//! The console's router: the JSON API under /api, the embedded page everywhere else, every
//! request through the security check first.

use super::actions::Actions;
use super::security::{check, Access};
use super::{actions, forms};
use super::{api, assets, view};
use axum::extract::Request;
use axum::routing::{get, post};
use axum::Router;
use sandflow_host::store::AnyStore;
use std::sync::Arc;

/// The router; `exe` is the `sandflow` binary the actions start runs with.
pub fn router(store: Arc<AnyStore>, access: Access, exe: std::path::PathBuf) -> Router {
    let acting = Arc::new(Actions {
        store: store.clone(),
        exe,
        described: Default::default(),
    });
    let actions = Router::new()
        .route("/api/executions/{id}/cancel", post(actions::cancel))
        .route("/api/executions/{id}/recover", post(actions::recover))
        .route("/api/executions/{id}/relaunch", post(actions::relaunch))
        .route("/api/launch", post(actions::launch))
        .route("/api/executions/{id}/interface", get(forms::interface))
        .route("/api/modules", get(forms::modules))
        .route("/api/modules/{digest}", get(forms::module))
        .with_state(acting);
    Router::new()
        .route("/api/executions", get(api::executions))
        .route("/api/executions/{id}", get(api::execution))
        .route("/api/executions/{id}/nodes", get(api::nodes))
        .route("/api/executions/{id}/logs", get(api::logs))
        .route("/api/executions/{id}/node", get(view::node))
        .route("/api/executions/{id}/graphs", get(view::graphs))
        .route("/api/executions/{id}/timeline", get(view::timeline))
        .route("/api/events", get(api::events))
        .with_state(store)
        .merge(actions)
        // Any other path: an embedded asset or 404 (`serve` maps no path to a file).
        .fallback(|req: Request| async move { assets::serve(req.uri().path()) })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            check,
        ))
}
