//! The API tokens section: create (the token shown in that answer only, with a copy button),
//! list (name, prefix, created, revoked — never the token or its hash), revoke after a
//! confirmation. The calls of `POST /v1/tokens`, `GET /v1/tokens`, `DELETE /v1/tokens/{id}`.
//! Revoking the token of the session itself ends the session.

use super::settings::{self, Note, Shown, confirm, filled, form, render, segment};
use crate::Console;
use crate::layout;
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use flowgate_store::TokenInfo;
use http::{StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

/// The section.
pub(super) fn section(s: &Session, tokens: &[TokenInfo], shown: &Shown) -> Markup {
    html! {
        section.settings #tokens aria-labelledby="tokens-title" {
            h2 #tokens-title { "API tokens" }
            p.sub { "Tokens open the API (" code { "Authorization: Bearer …" } "), the CLI and this console for the tenant. "
                "Only a hash is stored: a token is shown once, when it is created." }
            @if let Some(n) = &shown.tokens { (n.show()) }
            @if let Some((name, token)) = &shown.new_token {
                (layout::shown_once(
                    html! { "Token " strong { (name) } " created. Copy it now: it is shown only this once." },
                    "The new token",
                    token,
                ))
            }
            @if tokens.is_empty() {
                p.empty { "No tokens." }
            } @else {
                div.scroll {
                    table.list #token-list {
                        caption.sr-only { "API tokens" }
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Prefix" } th scope="col" { "Created" }
                            th scope="col" { "Status" } th scope="col" { span.sr-only { "Actions" } }
                        } }
                        tbody {
                            @for t in tokens {
                                tr data-token=(t.id) {
                                    td { (t.name) @if t.id == s.token_id { " " span.sub { "(this session)" } } }
                                    td { code { (t.prefix) "…" } }
                                    td { (layout::time(t.created_at)) }
                                    td {
                                        @match t.revoked_at {
                                            Some(at) => { span.badge.st-cancelled { span.icon aria-hidden="true" { "⊘" } " revoked" } " " (layout::time(at)) },
                                            None => span.badge.st-succeeded { span.icon aria-hidden="true" { "●" } " active" },
                                        }
                                    }
                                    td {
                                        @if t.revoked_at.is_none() {
                                            form.action method="post" action=(format!("/console/settings/tokens/{}/revoke", segment(&t.id))) {
                                                input type="hidden" name="csrf" value=(s.csrf);
                                                button.danger type="submit" aria-label=(format!("Revoke token {}", t.name)) { "Revoke…" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.settings-form #token-form method="post" action="/console/settings/tokens" {
                input type="hidden" name="csrf" value=(s.csrf);
                div.field {
                    label for="token-name" { "Name (what the token is for)" }
                    input #token-name type="text" name="name" maxlength="200" required
                        value=[shown.token_name.as_deref()];
                }
                div.field.actions { button type="submit" { "Create token" } }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct CreateForm {
    csrf: Option<String>,
    name: Option<String>,
}

/// `POST /console/settings/tokens`: a new token, shown in this answer only.
pub(crate) async fn create(State(c): State<Console>, s: Session, body: Bytes) -> Response {
    let f: CreateForm = form(&body);
    if let Some(refused) = session::check_csrf(&s, f.csrf.as_deref()) {
        return refused;
    }
    let name = filled(&f.name).unwrap_or_default();
    if let Err(m) = flowgate_engine::tokens::check_token_name(&name) {
        let shown = Shown { tokens: Some(Note::Failed(m)), token_name: f.name, ..Shown::default() };
        return render(&c, &s, shown, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    match c.engine().create_token(&s.tenant, &name).await {
        Ok((token, id)) => {
            tracing::info!(tenant = %s.tenant, token_id = %id, "Console: API token created.");
            let shown = Shown { new_token: Some((name, token)), ..Shown::default() };
            render(&c, &s, shown, StatusCode::CREATED).await
        }
        Err(e) => settings::unavailable("create a token", &e.to_string()),
    }
}

#[derive(Deserialize, Default)]
pub(super) struct RevokeForm {
    csrf: Option<String>,
    confirmed: Option<String>,
}

/// `POST /console/settings/tokens/{id}/revoke`: first the confirmation, then the revocation.
pub(crate) async fn revoke(State(c): State<Console>, s: Session, Path(id): Path<String>, body: Bytes) -> Response {
    let f: RevokeForm = form(&body);
    if let Some(refused) = session::check_csrf(&s, f.csrf.as_deref()) {
        return refused;
    }
    let store = c.engine().store();
    let tokens = match store.tokens(&s.tenant).await {
        Ok(t) => t,
        Err(e) => return settings::unavailable("list the API tokens", &e.to_string()),
    };
    let Some(token) = tokens.iter().find(|t| t.id == id && t.revoked_at.is_none()) else {
        return layout::not_found("There is no such active token.");
    };
    let own = token.id == s.token_id;
    if f.confirmed.as_deref() != Some("yes") {
        let question = html! {
            "Revoke token " strong { (token.name) } " (" code { (token.prefix) "…" } ")?"
            @if own { " " span.warn { "It is the token of this session: you will be signed out." } }
        };
        let action = format!("/console/settings/tokens/{}/revoke", segment(&id));
        return confirm(&s, "Revoke token", question, &action, "Revoke", "/console/settings#tokens");
    }
    match store.revoke_token(&s.tenant, &id, c.engine().clock().now_ms()).await {
        Ok(true) => {
            tracing::info!(tenant = %s.tenant, token_id = %id, "Console: API token revoked.");
            if own {
                // The session rests on that token: it is over.
                let mut res = Redirect::to("/console/signin").into_response();
                res.headers_mut().insert(
                    header::SET_COOKIE,
                    session::clear_cookie(c.secure).parse().expect("cookie value is ASCII"),
                );
                return res;
            }
            Redirect::to("/console/settings?done=token-revoked#tokens").into_response()
        }
        Ok(false) => layout::not_found("There is no such active token."),
        Err(e) => settings::unavailable("revoke a token", &e.to_string()),
    }
}
