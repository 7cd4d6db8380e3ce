//! The tenants page of an admin session (the server's admin token): the tenants, and a form
//! creating one with its first API token (shown in that answer only). The calls of
//! `GET/POST /v1/tenants`; nothing inside a tenant is shown here.

use super::settings::{filled, form};
use crate::Console;
use crate::layout::{self, Nav};
use crate::session::{self, AdminSession};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use flowgate_engine::tokens::{NewTenant, TenantError};
use http::StatusCode;
use maud::html;
use serde::Deserialize;

/// What a render shows beyond the tenants.
#[derive(Default)]
struct Shown {
    created: Option<NewTenant>,
    error: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

/// `GET /console/tenants`.
pub(crate) async fn page(State(c): State<Console>, a: AdminSession) -> Response {
    render(&c, &a, Shown::default(), StatusCode::OK).await
}

async fn render(c: &Console, a: &AdminSession, shown: Shown, status: StatusCode) -> Response {
    let tenants = match c.engine().store().tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "Console: cannot list tenants.");
            return layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database did not answer; try again.",
            );
        }
    };
    let body = html! {
        h1 { "Tenants" }
        p.sub { "Signed in with the server's admin token: tenants are created and listed here; what is inside "
            "them is seen by signing in with one of their tokens." }
        @if let Some(e) = &shown.error { p.note.error role="alert" { span aria-hidden="true" { "✗ " } (e) } }
        @if let Some(t) = &shown.created {
            (layout::shown_once(
                html! { "Tenant " strong { (t.id) } " created. Its first API token (named " code { "admin" } ") — copy it now: it is shown only this once." },
                "The new tenant's token",
                &t.token,
            ))
        }
        @if tenants.is_empty() {
            p.empty { "No tenants." }
        } @else {
            div.scroll {
                table.list #tenant-list {
                    caption.sr-only { "Tenants" }
                    thead { tr { th scope="col" { "Id" } th scope="col" { "Name" } th scope="col" { "Created" } } }
                    tbody {
                        @for t in &tenants {
                            tr data-tenant=(t.id) { td { code { (t.id) } } td { (t.name) } td { (layout::time(t.created_at)) } }
                        }
                    }
                }
            }
        }
        h2 { "Create a tenant" }
        form.settings-form.grid #tenant-form method="post" action="/console/tenants" {
            input type="hidden" name="csrf" value=(a.csrf);
            div.field {
                label for="tenant-id" { "Id" }
                input #tenant-id type="text" name="id" required pattern="[a-z0-9_-]{1,64}" value=[shown.id.as_deref()]
                    aria-describedby="tenant-id-help";
                span.sub #tenant-id-help { "Part of every webhook URL: lower-case letters, digits, " code { "-" } " and " code { "_" } "." }
            }
            div.field {
                label for="tenant-name" { "Name" }
                input #tenant-name type="text" name="name" value=[shown.name.as_deref()] aria-describedby="tenant-name-help";
                span.sub #tenant-name-help { "Empty: the id." }
            }
            div.field.actions { button type="submit" { "Create tenant" } }
        }
    };
    (status, Html(layout::page("Tenants", Nav::Tenants, Some(("admin", &a.csrf)), body).into_string())).into_response()
}

#[derive(Deserialize, Default)]
struct CreateForm {
    csrf: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

/// `POST /console/tenants`: a new tenant and its first token, shown in this answer only.
pub(crate) async fn create(State(c): State<Console>, a: AdminSession, body: Bytes) -> Response {
    let f: CreateForm = form(&body);
    if let Some(refused) = session::check_csrf_of(&a.csrf, f.csrf.as_deref()) {
        return refused;
    }
    let id = filled(&f.id).unwrap_or_default();
    let name = filled(&f.name);
    match c.engine().create_tenant(&id, name.as_deref()).await {
        Ok(t) => {
            tracing::info!(tenant = %t.id, "Console: tenant created.");
            render(&c, &a, Shown { created: Some(t), ..Shown::default() }, StatusCode::CREATED).await
        }
        Err(e) => {
            let (status, message) = match e {
                TenantError::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
                TenantError::Exists(m) => (StatusCode::CONFLICT, m),
                TenantError::Store(e) => {
                    tracing::error!(error = %e, "Console: cannot create a tenant.");
                    (StatusCode::SERVICE_UNAVAILABLE, "The database did not answer; try again.".to_owned())
                }
            };
            render(&c, &a, Shown { error: Some(message), id: f.id, name: f.name, ..Shown::default() }, status).await
        }
    }
}
