//! The YAML editor of an integration (inline validation at line and column, Apply as a new
//! version) and *Try it* (run a flow as a test run and watch its steps).
//!
//! - `edit`: `/console/integrations/{slug}/edit` and `/console/integrations/new`. Validate
//!   calls the engine's [`check`](flowgate_engine::Engine::check) (what Apply checks before
//!   storing anything), Apply calls [`apply`](flowgate_engine::Engine::apply) exactly as
//!   `PUT /v1/integrations/{slug}` does, with the same refusal of a document naming another
//!   integration than the URL.
//! - `try_it`: `/console/integrations/{slug}/flows/{flow}/try`. Run calls
//!   [`run_by_hand`](flowgate_engine::Engine::run_by_hand), as
//!   `POST /v1/integrations/{slug}/flows/{flow}/run` does (a `test` execution of any flow but a
//!   manual one); `…/try/{id}` renders the execution's steps so far for the page to poll.
//!
//! Both pages work as plain forms (CSRF-checked POSTs); with the script, Validate and Run
//! use `fetch` with `Accept: application/json` to the same URLs and the page does not reload.

mod edit;
mod try_it;

use crate::Console;
use crate::layout;
use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/integrations/new", get(edit::new_page).post(edit::new_submit))
        .route("/integrations/{slug}/edit", get(edit::edit_page).post(edit::edit_submit))
        .route("/integrations/{slug}/flows/{flow}/try", get(try_it::page).post(try_it::run))
        .route("/integrations/{slug}/flows/{flow}/try/{id}", get(try_it::steps))
}

/// The request asks for JSON (the page's script), not a page.
fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"))
}

/// A form body of at most about `limit` bytes of text (percent-encoding may triple it),
/// decoded; a refusal page when it is too large, too slow or not a form. The bytes are
/// counted in the node's memory budget (what its `Content-Length` says, else the most it
/// may be) for as long as the caller holds the reservation returned, as the API's bodies are.
async fn read_form<T: DeserializeOwned>(
    c: &Console,
    headers: &HeaderMap,
    body: Body,
) -> Result<(T, flowgate_engine::budget::Reservation), Response> {
    let limit = c.host.max_body_bytes();
    let most = limit.saturating_mul(3).saturating_add(4096);
    let too_large = || {
        layout::error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            &format!("The form is larger than the API takes ({limit} bytes)."),
        )
    };
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > most) {
        return Err(too_large());
    }
    let Some(room) = c.engine().reserve(declared.unwrap_or(most)).await else {
        return Err(layout::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "The server is holding as much as it may in memory; try again in a moment.",
        ));
    };
    let raw = match tokio::time::timeout(READ_DEADLINE, axum::body::to_bytes(body, most)).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(_)) => return Err(too_large()),
        Err(_) => {
            return Err(layout::error_page(
                StatusCode::REQUEST_TIMEOUT,
                "Too slow",
                "The form did not arrive in time; try again.",
            ));
        }
    };
    let form = serde_urlencoded::from_bytes(&raw).map_err(|_| {
        layout::error_page(StatusCode::BAD_REQUEST, "Bad request", "The form could not be read; reload the page.")
    })?;
    Ok((form, room))
}

/// How long a form may take to arrive whole: a caller trickling bytes holds no memory and
/// no task past it.
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|q| q[1..].replace('+', "%20")).unwrap_or_default()
}

/// A JSON answer with a status.
fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// The 503 of a store that did not answer.
fn unavailable(e: &dyn std::fmt::Display, what: &str) -> Response {
    tracing::error!(error = %e, "Console editor: {what}.");
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The database did not answer; try again.")
}
