//! The console's CSS and JavaScript, embedded in the binary with `include_str!` (no CDN, no
//! bundler, nothing for `cargo build` to run). Their URLs carry a version so a new binary's
//! files are fetched at once, and may be cached until then.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

/// The shared stylesheet, then each area's own (beside its code).
const CSS: &str = concat!(
    include_str!("console.css"),
    include_str!("../integrations/integrations.css"),
    include_str!("../executions/executions.css"),
    include_str!("../flows/flows.css"),
    include_str!("../editor/editor.css"),
    include_str!("../dashboard/dashboard.css"),
    include_str!("../admin/admin.css"),
);
/// The shared script, then each area's own (each wraps itself in its own scope).
const JS: &str = concat!(
    include_str!("console.js"),
    include_str!("../integrations/integrations.js"),
    include_str!("../executions/executions.js"),
    include_str!("../flows/flows.js"),
    include_str!("../editor/editor.js"),
    include_str!("../dashboard/dashboard.js"),
    include_str!("../admin/admin.js"),
);

/// Where pages load the stylesheet from.
pub(crate) const CSS_PATH: &str = concat!("/console/assets/console.css?v=", env!("CARGO_PKG_VERSION"));
/// Where pages load the script from.
pub(crate) const JS_PATH: &str = concat!("/console/assets/console.js?v=", env!("CARGO_PKG_VERSION"));

/// `GET /console/assets/{file}`.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return crate::layout::not_found("No such file."),
    };
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    res
}
