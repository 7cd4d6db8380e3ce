//! The execution page's buttons: `POST /console/executions/{id}/retry|replay|cancel`, each
//! calling the engine function its `POST /v1/executions/{id}/…` twin calls, after checking
//! the session's CSRF token. Then back to a page (the new execution's, for a replay).

use crate::Console;
use crate::layout;
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
struct Form {
    csrf: Option<String>,
}

/// `POST /console/executions/{id}/{action}`.
pub(crate) async fn act(
    State(c): State<Console>,
    s: Session,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let given = serde_urlencoded::from_bytes::<Form>(&body).ok().and_then(|f| f.csrf);
    if let Some(refused) = session::check_csrf(&s, given.as_deref()) {
        return refused;
    }
    let engine = c.engine();
    let back = format!("/console/executions/{id}");
    let result = match action.as_str() {
        "retry" => engine.retry(&s.tenant, &id).await.map(|_| back),
        "cancel" => engine.cancel(&s.tenant, &id).await.map(|_| back),
        "replay" => match engine.replay_on(&s.tenant, &id, false).await {
            Ok(sub) => Ok(format!("/console/executions/{}", sub.id)),
            Err(flowgate_engine::ReplayError::Store(e)) => Err(e),
            Err(flowgate_engine::ReplayError::Submit(e)) => {
                return layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Not replayed", &e.to_string());
            }
        },
        _ => return layout::not_found("There is no such action."),
    };
    match result {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(flowgate_store::Error::NotFound) => layout::not_found("There is no such execution."),
        Err(flowgate_store::Error::Conflict(m)) => layout::error_page(StatusCode::CONFLICT, "Not done", &m),
        Err(e) => {
            tracing::error!(error = %e, execution_id = %id, action, "Console: an action failed.");
            layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Not done", "The action failed; try again.")
        }
    }
}
