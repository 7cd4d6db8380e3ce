//! Flowgate's web console (issue 19): server-rendered pages under `/console`, mounted by the
//! server, for the people who operate integrations day to day.
//!
//! The console is a thin view over the engine: every page and button calls the same engine
//! and store functions as the REST API handler it mirrors (listing executions, reading the
//! journal, retry, replay, cancel), never a second implementation. The server hands it what
//! it needs through [`Host`], so the dependency points one way (server → console).
//!
//! Safety, in layers: HTML comes from maud, which escapes every spliced value (no
//! `PreEscaped` on data anywhere); every console response carries a Content-Security-Policy
//! without `'unsafe-inline'`, so an injected inline script could not run even if escaping
//! failed; sessions are stateless signed cookies re-checked against the token on every
//! request; every POST carries a CSRF token derived from the session.
//!
//! # Layout
//! - [`session`]: the signed session cookie, its extractor, and CSRF tokens.
//! - `signin`: the sign-in page (a tenant API token) and sign-out.
//! - `integrations`: the integrations list.
//! - `executions`: the monitor (filters, cursor paging), its server-sent events stream, the
//!   execution page and its Retry / Replay / Cancel actions.
//! - `flows`: the flow page (General and Steps panels, the pipeline diagram).
//! - `editor`: the YAML editor with inline validation, Apply, and Try it.
//! - `dashboard`: charts of the last hour/day from indexed queries.
//! - `admin`: API tokens, log sources, SMTP settings, and the admin's tenants page.
//! - `layout`: the page chrome and shared bits (status badges, times, JSON blocks).
//! - `assets`: the embedded CSS and JavaScript (no CDN, no bundler): `assets/console.css`
//!   and `console.js` plus each area's own `<area>.css` / `<area>.js` beside its code,
//!   concatenated at compile time into one file each.

#![warn(missing_docs)]

mod admin;
mod assets;
mod dashboard;
mod editor;
mod executions;
mod flows;
mod integrations;
mod layout;
pub mod session;
mod signin;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use flowgate_engine::Engine;
use http::HeaderValue;
use http::header;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the console needs from the server that mounts it.
pub trait Host: Send + Sync + 'static {
    /// The engine (and through it the store), as the API handlers use it.
    fn engine(&self) -> &Engine;
    /// The key sessions and CSRF tokens are signed with: one for the whole cluster (a shared
    /// setting), so a session made by one node is good on every node. The console separates
    /// its signatures from the key's other uses by a prefix.
    fn session_key(&self) -> &[u8];
    /// The base of URLs shown to users; `https://…` makes the session cookie `Secure`.
    fn public_url(&self) -> &str;
    /// The stored form of an API token (its hash), exactly as the API's bearer check
    /// computes it.
    fn token_hash(&self, token: &str) -> String;
    /// Cancelled when the server stops: live streams end so shutdown is not held up.
    fn stopping(&self) -> CancellationToken;
    /// The largest request body the API takes (a definition in the editor is held to it too).
    fn max_body_bytes(&self) -> usize {
        10 * 1024 * 1024
    }
}

/// The console's state: the host and what is derived from it once.
#[derive(Clone)]
pub(crate) struct Console {
    pub(crate) host: Arc<dyn Host>,
    /// Cookies get `Secure` (the public URL is https).
    pub(crate) secure: bool,
    /// The monitor's live streams open on this node, counted against their limits.
    pub(crate) streams: Arc<executions::stream::OpenStreams>,
}

impl Console {
    pub(crate) fn engine(&self) -> &Engine {
        self.host.engine()
    }
}

/// The Content-Security-Policy of every console response: only the console's own files run
/// or style the page; no inline script or style, no framing.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

/// The console's routes, to be nested at `/console`, with their state applied (so the
/// caller's router may have any state).
pub fn router<S: Clone + Send + Sync + 'static>(host: Arc<dyn Host>) -> Router<S> {
    let secure = host.public_url().starts_with("https://");
    let console = Console { host, secure, streams: Arc::default() };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/executions") }))
        .route("/signin", get(signin::page).post(signin::submit))
        .route("/signout", post(signin::signout))
        .merge(integrations::routes())
        .merge(executions::routes())
        .merge(flows::routes())
        .merge(editor::routes())
        .merge(dashboard::routes())
        .merge(admin::routes())
        .route("/assets/{file}", get(assets::serve))
        .fallback(|| async { layout::not_found("There is no such page in the console.") })
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

/// Adds the CSP and friends to every console response; pages are never cached (they show a
/// tenant's data), assets may be.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
