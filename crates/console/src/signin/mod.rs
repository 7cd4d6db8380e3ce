//! Signing in with a tenant API token (checked exactly as the API's bearer check does: its
//! hash looked up in the store) or the server's admin token (checked as the API's admin
//! routes check it, in constant time; it opens an admin session that sees the tenants page
//! only), and signing out.
//!
//! The sign-in form has no session yet to derive a CSRF token from; a cross-site post of it
//! could at worst sign the victim into the attacker's tenant ("login CSRF"), so it is refused
//! when the browser says it came from another origin (`Origin` / `Sec-Fetch-Site`).

use crate::layout::{self, Nav};
use crate::session::{self, AnySession, Claims};
use crate::{Console, session::sign};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{HeaderMap, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

fn form(error: Option<&str>) -> Markup {
    let body = html! {
        section.signin {
            h1 { "Sign in" }
            p { "Sign in with one of your tenant's API tokens (" code { "flowgate tokens create" } ", or the "
                code { "bootstrap-token" } " file of a new server)." }
            p.sub { "The server's admin token (" code { "FLOWGATE_ADMIN_TOKEN" } " or the " code { "admin-token" }
                " file) opens the tenants page." }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form method="post" action="/console/signin" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        }
    };
    layout::page("Sign in", Nav::None, None, body)
}

/// `GET /console/signin`.
pub(crate) async fn page() -> Html<String> {
    Html(form(None).into_string())
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
}

/// True when the browser says the request came from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some("null"), _) => true,
        (Some(o), Some(h)) => o.split_once("://").map(|(_, rest)| rest) != Some(h),
        _ => false,
    }
}

/// `POST /console/signin`: a good token opens a session; a bad one shows the form again.
pub(crate) async fn submit(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    if cross_site(&headers) {
        return layout::error_page(StatusCode::FORBIDDEN, "Forbidden", "Sign in from the console's own page.");
    }
    let token = serde_urlencoded::from_bytes::<SignIn>(&body).map(|f| f.token).unwrap_or_default();
    let token = token.trim();
    match open(&c, token).await {
        Ok(Some((claims, to))) => {
            let value = sign(c.host.session_key(), &claims);
            if claims.admin {
                tracing::info!("Console admin session opened.");
            } else {
                tracing::info!(tenant = %claims.tenant, "Console session opened.");
            }
            let mut res = Redirect::to(to).into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(&value, c.secure).parse().expect("cookie value is ASCII"),
            );
            res
        }
        Ok(None) => {
            (StatusCode::UNAUTHORIZED, Html(form(Some("That token is not valid.")).into_string())).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "Console sign-in: the store failed.");
            layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database did not answer; try again.",
            )
        }
    }
}

/// The claims of a session opened with `token` and where it starts: a tenant's API token
/// (looked up by its hash, as the API's bearer check does), else the server's admin token
/// (compared as the API's admin check does, in constant time); `None` for neither.
async fn open(c: &Console, token: &str) -> Result<Option<(Claims, &'static str)>, flowgate_store::Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let expires_at = c.engine().clock().now_ms() + session::LIFETIME_MS;
    if let Some(info) = c.engine().store().token_by_hash(&c.host.token_hash(token)).await? {
        let claims = Claims { tenant: info.tenant_id, token_id: info.id, expires_at, admin: false };
        return Ok(Some((claims, "/console/executions")));
    }
    if c.engine().is_admin_token(token).await?
        && let Some(hash) = c.engine().admin_token_hash().await?
    {
        let token_id = session::admin_fingerprint(c.host.session_key(), &hash);
        return Ok(Some((Claims { tenant: String::new(), token_id, expires_at, admin: true }, "/console/tenants")));
    }
    Ok(None)
}

#[derive(Deserialize)]
struct Csrf {
    csrf: Option<String>,
}

/// `POST /console/signout`: clears the cookie.
pub(crate) async fn signout(State(c): State<Console>, s: AnySession, body: Bytes) -> Response {
    let given = serde_urlencoded::from_bytes::<Csrf>(&body).ok().and_then(|f| f.csrf);
    if let Some(refused) = session::check_csrf_of(s.csrf(), given.as_deref()) {
        return refused;
    }
    let mut res = Redirect::to("/console/signin").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie(c.secure).parse().expect("cookie value is ASCII"));
    res
}
