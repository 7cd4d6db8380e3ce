//! What operators touch besides flows, at `/console/settings`: the tenant's API tokens
//! (created — shown once — listed, revoked), its SMTP settings (the password write-only),
//! and its log sources with their counters; and, for an admin session (the server's admin
//! token), the tenants page at `/console/tenants`.
//!
//! Every form calls what its REST twin calls: `Engine::create_token` and the store's
//! `tokens` / `revoke_token` (`/v1/tokens`), `SmtpSettings::config` and
//! `Engine::put_tenant_smtp` (`PUT /v1/smtp`), `Engine::log_sources` / `put_log_source` /
//! `delete_log_source` (`/v1/log-sources`), `Engine::create_tenant` and the store's
//! `tenants` (`/v1/tenants`).
//!
//! # Layout
//! - `settings`: the settings page (its three sections) and what the forms share.
//! - `tokens`, `smtp`, `logs`: each section's forms.
//! - `tenants`: the admin's tenants page.

mod logs;
mod settings;
mod smtp;
mod tenants;
mod tokens;

use crate::Console;
use axum::Router;
use axum::routing::{get, post};

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/settings", get(settings::page))
        .route("/settings/tokens", post(tokens::create))
        .route("/settings/tokens/{id}/revoke", post(tokens::revoke))
        .route("/settings/smtp", post(smtp::save))
        .route("/settings/smtp/remove", post(smtp::remove))
        .route("/settings/log-sources", post(logs::save))
        .route("/settings/log-sources/{name}/delete", post(logs::delete))
        .route("/tenants", get(tenants::page).post(tenants::create))
}
