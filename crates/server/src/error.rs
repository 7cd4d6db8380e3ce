//! The one error type of the HTTP surface: `{"error": {"code", "message", "details"}}`.
//!
//! `code` comes from a closed list (below); 5xx answers say "internal error" and the cause
//! is logged once, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_model::Diagnostic;
use serde_json::{Value, json};

/// An error answered to an HTTP caller.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code: `not_found`, `validation_failed`, `unauthorized`, `forbidden`, `conflict`,
    /// `invalid_body`, `bad_request`, `payload_too_large`, `method_not_allowed`,
    /// `unsupported_media_type`, `unavailable`, `execution_failed`, `connection_failed`, `internal`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Where and what exactly, for programs.
    pub details: Value,
    /// Extra headers (`Retry-After`, `Allow`, `WWW-Authenticate`).
    pub headers: Vec<(http::HeaderName, String)>,
}

/// Results of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Value::Null, headers: Vec::new() }
    }

    /// Adds details.
    pub fn details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: http::HeaderName, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 without saying which part failed.
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "authentication failed")
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422 listing every problem of a definition.
    pub fn invalid_definition(problems: Vec<Diagnostic>) -> ApiError {
        let n = problems.len();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("the definition has {n} problem{}", if n == 1 { "" } else { "s" }),
        )
        .details(json!({ "problems": problems }))
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).header(http::header::RETRY_AFTER, "1")
    }

    /// 500; the cause is logged, not returned.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "Internal error.");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "details": self.details } });
        let mut resp = (self.status, Json(body)).into_response();
        for (k, v) in self.headers {
            if let Ok(v) = http::HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}

impl From<flowgate_store::Error> for ApiError {
    fn from(e: flowgate_store::Error) -> Self {
        match e {
            flowgate_store::Error::NotFound => ApiError::not_found("not found"),
            flowgate_store::Error::Conflict(m) => ApiError::conflict(m),
            other => ApiError::internal(other),
        }
    }
}

/// Parses a JSON request body, reporting where it is malformed.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|e| invalid_body(&e));
    }
    serde_json::from_slice(body).map_err(|e| invalid_body(&e))
}

fn invalid_body(e: &serde_json::Error) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("the request body is not valid: {e}"))
        .details(json!({ "line": e.line(), "column": e.column() }))
}

/// A query string decoded into `T`; malformed queries get a JSON 400.
pub struct ApiQuery<T>(pub T);

/// Path parameters, whose rejections (a parameter that is not valid UTF-8 once decoded, or
/// not a number where one is expected) answer in the API's error shape, not axum's plain
/// text (issue 13).
pub struct ApiPath<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::bad_request(format!("invalid path: {}", e.body_text()))),
        }
    }
}

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }
}
