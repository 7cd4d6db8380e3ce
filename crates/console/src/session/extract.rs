//! The [`Session`] extractor (a signed, unexpired cookie whose token still exists), the
//! CSRF check of POSTs, and the `Set-Cookie` values.

use super::cookie::{COOKIE, LIFETIME_MS, csrf_token, verify};
use crate::Console;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use subtle::ConstantTimeEq;

/// A signed-in request: who it acts for.
pub(crate) struct Session {
    /// The tenant.
    pub(crate) tenant: String,
    /// The session's CSRF token, for the forms of the page.
    pub(crate) csrf: String,
    /// The cookie's value (a live stream checks it again on every tick).
    pub(crate) cookie: String,
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

impl Session {
    /// The session of a cookie value, if it is valid now and its token still exists.
    pub(crate) async fn check(console: &Console, value: &str) -> Option<Session> {
        let key = console.host.session_key();
        let now = console.engine().clock().now_ms();
        let (claims, id) = verify(key, value, now)?;
        let tokens = match console.engine().store().tokens(&claims.tenant).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, tenant = %claims.tenant, "Cannot check a console session's token.");
                return None;
            }
        };
        // A revoked token (or a deleted tenant) ends its sessions.
        tokens.iter().any(|t| t.id == claims.token_id && t.revoked_at.is_none()).then(|| Session {
            tenant: claims.tenant,
            csrf: csrf_token(key, &id),
            cookie: value.to_owned(),
        })
    }
}

impl FromRequestParts<Console> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let signin = || Redirect::to("/console/signin").into_response();
        let value = cookie(parts, COOKIE).ok_or_else(signin)?;
        Session::check(console, value).await.ok_or_else(signin)
    }
}

/// The refusal (403) of a state-changing request whose CSRF token (form field `csrf`) is not
/// the session's, compared in constant time; `None` when it is.
pub(crate) fn check_csrf(session: &Session, given: Option<&str>) -> Option<Response> {
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(session.csrf.as_bytes())));
    if ok {
        None
    } else {
        Some(crate::layout::error_page(
            http::StatusCode::FORBIDDEN,
            "Forbidden",
            "This form is out of date or did not come from the console. Reload the page and try again.",
        ))
    }
}

/// The `Set-Cookie` value opening a session.
pub(crate) fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LIFETIME_MS / 1000)
}

/// The `Set-Cookie` value ending a session.
pub(crate) fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}
