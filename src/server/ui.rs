//! The web UI's files, embedded: `cargo build` alone gives a working product. One
//! table names each file, its route and its type; the page loads its scripts as ES
//! modules (relative imports), so every module is a row here.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::ServerState;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Log text is untrusted: nothing but our own scripts (and workers), no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `(route, Content-Type, body)`.
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../web/index.html")),
    ("/style.css", CSS, include_str!("../../web/style.css")),
    ("/app.js", JS, include_str!("../../web/app.js")),
    (
        "/connection.js",
        JS,
        include_str!("../../web/connection.js"),
    ),
    ("/context.js", JS, include_str!("../../web/context.js")),
    ("/fields.js", JS, include_str!("../../web/fields.js")),
    ("/format.js", JS, include_str!("../../web/format.js")),
    ("/graph.js", JS, include_str!("../../web/graph.js")),
    (
        "/highlight-worker.js",
        JS,
        include_str!("../../web/highlight-worker.js"),
    ),
    ("/highlight.js", JS, include_str!("../../web/highlight.js")),
    ("/picker.js", JS, include_str!("../../web/picker.js")),
    ("/render.js", JS, include_str!("../../web/render.js")),
    ("/state.js", JS, include_str!("../../web/state.js")),
    ("/text.js", JS, include_str!("../../web/text.js")),
];

/// The routes of the UI's files.
pub fn routes() -> Router<Arc<ServerState>> {
    FILES
        .iter()
        .fold(Router::new(), |router, &(route, kind, body)| {
            router.route(route, get(move || async move { serve(kind, body) }))
        })
}

fn serve(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    /// A file added to `web/` and not to the table would be a 404 for the page.
    #[test]
    fn every_file_of_the_ui_is_served() -> anyhow::Result<()> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let route = if name == "index.html" {
                "/".to_owned()
            } else {
                format!("/{name}")
            };
            assert!(
                super::FILES.iter().any(|&(r, _, _)| r == route),
                "web/{name} is not in FILES"
            );
        }
        Ok(())
    }
}
