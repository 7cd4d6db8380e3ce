//! The integration page's buttons besides the deployment form: Run tests
//! (`POST …/test`, the engine's test runner as `POST /v1/integrations/{slug}/test` and
//! `flowgate test` use it), a connection's Test (the probe of
//! `POST /v1/integrations/{slug}/connections/{name}/test`) and Authorize (to the provider's
//! URL as `GET …/connections/{name}/authorize` computes it). Each checks the CSRF token.

use super::page::{self, Extra};
use crate::Console;
use crate::layout;
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use flowgate_engine::connections::ConnectionError;
use http::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
struct Form {
    csrf: Option<String>,
}

fn refused(s: &Session, body: &Bytes) -> Option<Response> {
    let given = serde_urlencoded::from_bytes::<Form>(body).ok().and_then(|f| f.csrf);
    session::check_csrf(s, given.as_deref())
}

/// `POST /console/integrations/{slug}/test`: runs the integration's `tests:` and shows each
/// case's result in the page.
pub(crate) async fn run_tests(State(c): State<Console>, s: Session, Path(slug): Path<String>, body: Bytes) -> Response {
    if let Some(r) = refused(&s, &body) {
        return r;
    }
    match c.engine().test_integration(&s.tenant, &slug, None).await {
        Ok(None) => layout::not_found("There is no such integration."),
        Ok(Some(report)) => {
            page::respond(&c, &s, &slug, Extra { tests: Some(Ok(report)), ..Extra::default() }, StatusCode::OK).await
        }
        Err(problems) => {
            page::respond(
                &c,
                &s,
                &slug,
                Extra { tests: Some(Err(problems)), ..Extra::default() },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

fn failure(e: ConnectionError) -> Result<(String, String), Box<Response>> {
    match e {
        ConnectionError::NotFound(m) => Err(Box::new(layout::not_found(&m))),
        ConnectionError::Invalid(m) => Ok(("invalid".to_owned(), m)),
        ConnectionError::Failed { code, message } => Ok((code, message)),
        ConnectionError::Store(e) => Err(Box::new(page::store_failed(e))),
    }
}

/// `POST /console/integrations/{slug}/connections/{name}/{action}` (`test`, `authorize`).
pub(crate) async fn connection(
    State(c): State<Console>,
    s: Session,
    Path((slug, name, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if let Some(r) = refused(&s, &body) {
        return r;
    }
    let engine = c.engine();
    match action.as_str() {
        "test" => {
            let (result, status) = match engine.test_connection(&s.tenant, &slug, &name).await {
                Ok(st) => (Ok(st), StatusCode::OK),
                Err(e) => match failure(e) {
                    Ok(f) => (Err(f), StatusCode::BAD_GATEWAY),
                    Err(r) => return *r,
                },
            };
            page::respond(&c, &s, &slug, Extra { connection: Some((name, result)), ..Extra::default() }, status).await
        }
        "authorize" => match engine.authorize_connection(&s.tenant, &slug, &name).await {
            // The provider's page: the browser comes back to `/oauth/callback`.
            Ok(url) => Redirect::to(&url).into_response(),
            Err(e) => match failure(e) {
                Ok(f) => {
                    page::respond(
                        &c,
                        &s,
                        &slug,
                        Extra { connection: Some((name, Err(f))), ..Extra::default() },
                        StatusCode::BAD_REQUEST,
                    )
                    .await
                }
                Err(r) => *r,
            },
        },
        _ => layout::not_found("There is no such action."),
    }
}
