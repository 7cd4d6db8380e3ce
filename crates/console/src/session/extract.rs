//! The [`Session`] extractor (a signed, unexpired cookie whose token still exists), the
//! admin's [`AdminSession`], the CSRF check of POSTs, and the `Set-Cookie` values.

use super::cookie::{COOKIE, LIFETIME_MS, admin_fingerprint, csrf_token, verify};
use crate::Console;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use subtle::ConstantTimeEq;

/// A signed-in request: who it acts for.
pub(crate) struct Session {
    /// The tenant.
    pub(crate) tenant: String,
    /// The id of the API token the session was opened with (revoking it ends the session).
    pub(crate) token_id: String,
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

/// A signed-in request of the server administrator (the admin token): the tenants page only.
pub(crate) struct AdminSession {
    /// The session's CSRF token, for the forms of the page.
    pub(crate) csrf: String,
}

/// Either kind of session (signing out works for both).
pub(crate) enum AnySession {
    /// A tenant's.
    Tenant(Session),
    /// The administrator's.
    Admin(AdminSession),
}

impl AnySession {
    /// The session's CSRF token.
    pub(crate) fn csrf(&self) -> &str {
        match self {
            AnySession::Tenant(s) => &s.csrf,
            AnySession::Admin(a) => &a.csrf,
        }
    }

    /// The session of a cookie value, if it is valid now and what it was opened with still
    /// holds: the tenant's token exists and is not revoked, or the admin token is unchanged.
    pub(crate) async fn check(console: &Console, value: &str) -> Option<AnySession> {
        let key = console.host.session_key();
        let now = console.engine().clock().now_ms();
        let (claims, id) = verify(key, value, now)?;
        let csrf = csrf_token(key, &id);
        if claims.admin {
            let hash = match console.engine().admin_token_hash().await {
                Ok(h) => h?,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot check a console admin session.");
                    return None;
                }
            };
            let current = admin_fingerprint(key, &hash);
            let same: bool = current.as_bytes().ct_eq(claims.token_id.as_bytes()).into();
            return (same && claims.tenant.is_empty()).then_some(AnySession::Admin(AdminSession { csrf }));
        }
        let tokens = match console.engine().store().tokens(&claims.tenant).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, tenant = %claims.tenant, "Cannot check a console session's token.");
                return None;
            }
        };
        // A revoked token (or a deleted tenant) ends its sessions.
        tokens.iter().any(|t| t.id == claims.token_id && t.revoked_at.is_none()).then(|| {
            AnySession::Tenant(Session {
                tenant: claims.tenant,
                token_id: claims.token_id.clone(),
                csrf,
                cookie: value.to_owned(),
            })
        })
    }
}

impl Session {
    /// The tenant session of a cookie value, if it is valid now and its token still exists
    /// (an admin session is not one).
    pub(crate) async fn check(console: &Console, value: &str) -> Option<Session> {
        match AnySession::check(console, value).await? {
            AnySession::Tenant(s) => Some(s),
            AnySession::Admin(_) => None,
        }
    }
}

fn to_signin() -> Response {
    Redirect::to("/console/signin").into_response()
}

impl FromRequestParts<Console> for AnySession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let value = cookie(parts, COOKIE).ok_or_else(to_signin)?;
        AnySession::check(console, value).await.ok_or_else(to_signin)
    }
}

/// A tenant page: an admin session is sent to the tenants page (it sees nothing inside a
/// tenant), no session to the sign-in page.
impl FromRequestParts<Console> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        match AnySession::from_request_parts(parts, console).await? {
            AnySession::Tenant(s) => Ok(s),
            AnySession::Admin(_) => Err(Redirect::to("/console/tenants").into_response()),
        }
    }
}

/// An admin page: a tenant session gets a 404 (the page does not exist for it).
impl FromRequestParts<Console> for AdminSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        match AnySession::from_request_parts(parts, console).await? {
            AnySession::Admin(a) => Ok(a),
            AnySession::Tenant(_) => Err(crate::layout::not_found("There is no such page in the console.")),
        }
    }
}

/// The refusal (403) of a state-changing request whose CSRF token (form field `csrf`) is not
/// the session's, compared in constant time; `None` when it is.
pub(crate) fn check_csrf(session: &Session, given: Option<&str>) -> Option<Response> {
    check_csrf_of(&session.csrf, given)
}

/// [`check_csrf`] against a session's CSRF token `expected` (either kind of session).
pub(crate) fn check_csrf_of(expected: &str, given: Option<&str>) -> Option<Response> {
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())));
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
