//! The SMTP section: the tenant's own server for its e-mail steps and notifications, as
//! `GET/PUT/DELETE /v1/smtp` read and write it (`SmtpSettings::config`, then
//! `Engine::put_tenant_smtp`, which checks it and seals it). The password is write-only:
//! shown as "set" or "not set", kept when the field is left empty, never displayed.

use super::settings::{self, Note, Shown, confirm, filled, form, render};
use crate::Console;
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use flowgate_mailer::{Security, SmtpConfig, SmtpSettings};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

/// The form's values (never a password).
#[derive(Default, Clone)]
pub(super) struct SmtpValues {
    host: String,
    port: String,
    security: String,
    username: String,
    from: String,
}

impl SmtpValues {
    fn of(c: &SmtpConfig) -> SmtpValues {
        SmtpValues {
            host: c.host.clone(),
            port: c.port.to_string(),
            security: security_word(c.security).to_owned(),
            username: c.username.clone().unwrap_or_default(),
            from: c.from.clone(),
        }
    }
}

/// The API's word for a security.
fn security_word(s: Security) -> &'static str {
    match s {
        Security::None => "none",
        Security::StartTls => "starttls",
        Security::Tls => "tls",
    }
}

const SECURITIES: [(&str, &str); 3] = [
    ("starttls", "STARTTLS (usually port 587)"),
    ("tls", "TLS from the start (usually port 465)"),
    ("none", "none — plain text (usually port 25)"),
];

/// The section.
pub(super) fn section(s: &Session, stored: &Result<Option<SmtpConfig>, String>, relay: bool, shown: &Shown) -> Markup {
    let current = stored.as_ref().ok().and_then(Option::as_ref);
    let values = shown.smtp_values.clone().or_else(|| current.map(SmtpValues::of)).unwrap_or_default();
    let password_set = current.is_some_and(|c| c.password.is_some());
    let security = if values.security.is_empty() { "starttls" } else { values.security.as_str() };
    html! {
        section.settings #smtp aria-labelledby="smtp-title" {
            h2 #smtp-title { "SMTP" }
            p.sub { "The server the tenant's " code { "email" } " steps and notifications send through." }
            @if let Some(n) = &shown.smtp { (n.show()) }
            @match (stored, current) {
                (Err(e), _) => p.note.error role="alert" { "The stored settings cannot be read: " (e) },
                (_, Some(_)) => p #smtp-source { "Source: " strong { "this tenant's own server" } "." },
                (_, None) if relay => p #smtp-source { "Source: " strong { "the server's relay" } " (none set for this tenant)." },
                (_, None) => p #smtp-source { "Source: " strong { "none" } ": e-mail steps and notifications fail until a server is set." },
            }
            form.settings-form.grid #smtp-form method="post" action="/console/settings/smtp" autocomplete="off" {
                input type="hidden" name="csrf" value=(s.csrf);
                div.field {
                    label for="smtp-host" { "Host" }
                    input #smtp-host type="text" name="host" required value=(values.host);
                }
                div.field {
                    label for="smtp-port" { "Port" }
                    input #smtp-port type="number" name="port" min="1" max="65535" value=(values.port)
                        aria-describedby="smtp-port-help";
                    span.sub #smtp-port-help { "Empty: the security's usual port." }
                }
                div.field {
                    label for="smtp-security" { "Security (TLS)" }
                    select #smtp-security name="security" {
                        @for (word, label) in SECURITIES {
                            option value=(word) selected[word == security] { (label) }
                        }
                    }
                }
                div.field {
                    label for="smtp-username" { "User name" }
                    input #smtp-username type="text" name="username" value=(values.username) autocomplete="off";
                }
                div.field {
                    label for="smtp-password" { "Password" }
                    input #smtp-password type="password" name="password" autocomplete="new-password"
                        aria-describedby="smtp-password-state";
                    span.sub #smtp-password-state {
                        @if password_set { span.secret-set { "set" } " — leave empty to keep it, type a new one to replace it." }
                        @else { span.secret-unset { "not set" } }
                    }
                }
                @if password_set {
                    div.field.check {
                        input #smtp-clear-password type="checkbox" name="clear_password" value="yes";
                        label for="smtp-clear-password" { "Remove the password (log in without one)" }
                    }
                }
                div.field {
                    label for="smtp-from" { "From (the sender)" }
                    input #smtp-from type="text" name="from" value=(values.from) placeholder="Acme Flows <flows@acme.example>"
                        aria-describedby="smtp-from-help";
                    span.sub #smtp-from-help { "Empty: the user name, when it is an address." }
                }
                div.field.actions { button type="submit" { "Save SMTP settings" } }
            }
            @if current.is_some() {
                form.action #smtp-remove method="post" action="/console/settings/smtp/remove" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    button.secondary type="submit" { "Remove these settings…" }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct SaveForm {
    csrf: Option<String>,
    host: Option<String>,
    port: Option<String>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    clear_password: Option<String>,
    from: Option<String>,
}

/// `POST /console/settings/smtp`.
pub(crate) async fn save(State(c): State<Console>, s: Session, body: Bytes) -> Response {
    let f: SaveForm = form(&body);
    if let Some(refused) = session::check_csrf(&s, f.csrf.as_deref()) {
        return refused;
    }
    let values = SmtpValues {
        host: filled(&f.host).unwrap_or_default(),
        port: filled(&f.port).unwrap_or_default(),
        security: filled(&f.security).unwrap_or_default(),
        username: filled(&f.username).unwrap_or_default(),
        from: filled(&f.from).unwrap_or_default(),
    };
    let refused = |m: String, values: SmtpValues| Shown {
        smtp: Some(Note::Failed(m)),
        smtp_values: Some(values),
        ..Shown::default()
    };
    // Settings that no longer open (another master key) are replaced, password and all.
    let stored = c.engine().tenant_smtp(&s.tenant).await.unwrap_or_default();
    let config = match settings_of(&f, stored.as_ref()).and_then(SmtpSettings::config) {
        Ok(config) => config,
        Err(m) => return render(&c, &s, refused(m, values), StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    match c.engine().put_tenant_smtp(&s.tenant, Some(&config)).await {
        Ok(()) => {
            tracing::info!(tenant = %s.tenant, "Console: SMTP settings saved.");
            Redirect::to("/console/settings?done=smtp-saved#smtp").into_response()
        }
        Err(m) => render(&c, &s, refused(m, values), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

/// The settings the form gives, as `PUT /v1/smtp` takes them; an empty password field keeps
/// the stored password (unless asked to remove it).
fn settings_of(f: &SaveForm, stored: Option<&SmtpConfig>) -> Result<SmtpSettings, String> {
    let port = match filled(&f.port) {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or("the port must be a number from 1 to 65535")?),
    };
    let security = match filled(&f.security).as_deref() {
        None | Some("starttls") => Security::StartTls,
        Some("tls") => Security::Tls,
        Some("none") => Security::None,
        Some(_) => return Err("the security must be `starttls`, `tls` or `none`".into()),
    };
    // Passwords may have meaningful spaces: not trimmed.
    let typed = f.password.clone().filter(|p| !p.is_empty());
    let password = match typed {
        Some(p) => Some(p),
        None if f.clear_password.as_deref() == Some("yes") => None,
        None => stored.and_then(|c| c.password.clone()),
    };
    Ok(SmtpSettings {
        url: None,
        host: filled(&f.host),
        port,
        security: Some(security),
        username: filled(&f.username),
        password,
        from: filled(&f.from),
        timeout_ms: stored.and_then(|c| c.timeout_ms),
    })
}

#[derive(Deserialize, Default)]
pub(super) struct RemoveForm {
    csrf: Option<String>,
    confirmed: Option<String>,
}

/// `POST /console/settings/smtp/remove`: after a confirmation, back to the server's relay
/// (`DELETE /v1/smtp`).
pub(crate) async fn remove(State(c): State<Console>, s: Session, body: Bytes) -> Response {
    let f: RemoveForm = form(&body);
    if let Some(refused) = session::check_csrf(&s, f.csrf.as_deref()) {
        return refused;
    }
    if f.confirmed.as_deref() != Some("yes") {
        let question = html! { "Remove this tenant's SMTP settings? Its e-mails will go through the server's relay, if it has one." };
        return confirm(
            &s,
            "Remove SMTP settings",
            question,
            "/console/settings/smtp/remove",
            "Remove",
            "/console/settings#smtp",
        );
    }
    match c.engine().put_tenant_smtp(&s.tenant, None).await {
        Ok(()) => Redirect::to("/console/settings?done=smtp-removed#smtp").into_response(),
        Err(e) => settings::unavailable("remove the SMTP settings", &e),
    }
}
