//! The console's page, embedded in the binary. Only the paths listed here are served: no
//! path is ever mapped to a file, so none can reach outside them.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Path, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("index.html")),
    (
        "/assets/console.js",
        "text/javascript; charset=utf-8",
        include_str!("console.js"),
    ),
    (
        "/assets/actions.js",
        "text/javascript; charset=utf-8",
        include_str!("actions.js"),
    ),
    (
        "/assets/console.css",
        "text/css; charset=utf-8",
        include_str!("console.css"),
    ),
];

/// The page needs nothing from elsewhere and runs no inline script: a value that got into
/// the markup anyway could not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The embedded asset at exactly `path`, else 404.
pub fn serve(path: &str) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such page: {path}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::serve;
    use axum::http::StatusCode;

    #[test]
    fn only_listed_paths_are_served() {
        assert_eq!(serve("/").status(), StatusCode::OK);
        assert_eq!(serve("/assets/console.js").status(), StatusCode::OK);
        assert_eq!(serve("/assets/actions.js").status(), StatusCode::OK);
        for bad in [
            "/assets/../Cargo.toml",
            "/../../etc/passwd",
            "/assets/",
            "/index.html",
        ] {
            assert_eq!(serve(bad).status(), StatusCode::NOT_FOUND, "{bad}");
        }
    }
}
