//! The deployment form: one field per `config` declaration (its type, default, `allowed`
//! values as a select, required marked), and its POST, which calls
//! [`Engine::put_deployment`](flowgate_engine::Engine::put_deployment) exactly as
//! `PUT /v1/integrations/{slug}/deployment` does. Problems come back beside their fields.
//!
//! Secrets are write-only: the form shows whether one is set, never its value; an empty
//! secret field keeps the stored value, a value replaces it, and "Remove" unsets it. A
//! refused form is shown again with what was typed, except secrets, which are never echoed.

use super::page::{self, Extra};
use super::path_part;
use crate::Console;
use crate::layout;
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use flowgate_engine::CompiledIntegration;
use flowgate_engine::deploy::DeployError;
use flowgate_model::{ConfigType, ConfigVar};
use http::StatusCode;
use maud::{Markup, html};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A refused form: what was typed (secrets left out) and each field's problem.
#[derive(Default)]
pub(crate) struct Refused {
    /// Raw text of the non-secret fields, by variable name.
    pub(crate) typed: HashMap<String, String>,
    /// Problems by variable name.
    pub(crate) errors: HashMap<String, String>,
    /// Problems that belong to no field (an unknown variable).
    pub(crate) general: Vec<String>,
    /// A secret was typed (and not kept, since nothing was stored).
    pub(crate) secret_typed: bool,
}

/// The type's name as the documents spell it.
pub(crate) fn type_word(k: ConfigType) -> &'static str {
    match k {
        ConfigType::String => "string",
        ConfigType::Number => "number",
        ConfigType::Boolean => "boolean",
        ConfigType::Json => "json",
        ConfigType::Secret => "secret",
    }
}

/// A value as a person types it: strings bare, the rest as JSON.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An `allowed` value as an option's value (JSON, so its type survives the round trip).
fn option_value(v: &Value) -> String {
    v.to_string()
}

/// The form. `view` is the engine's deployment view (as `GET …/deployment` answers).
pub(crate) fn form(ci: &CompiledIntegration, view: &Value, refused: Option<&Refused>, csrf: &str) -> Markup {
    let slug = &ci.record.slug;
    let vars = &ci.definition.config;
    let config = &view["config"];
    html! {
        @if vars.is_empty() {
            p.empty { "This integration declares no config values." }
        }
        @if let Some(r) = refused {
            div.form-problems role="alert" #deploy-problems {
                p { strong { "The deployment was not saved." } " Nothing was changed; fix the fields marked below." }
                @if !r.general.is_empty() { ul { @for g in &r.general { li { (g) } } } }
                @if r.secret_typed { p { "Secrets you typed were not kept: enter them again." } }
            }
        }
        form.deploy #deploy-form method="post" action=(format!("/console/integrations/{}/deployment", path_part(slug))) novalidate {
            input type="hidden" name="csrf" value=(csrf);
            @for (i, (name, var)) in vars.iter().enumerate() {
                (field(i, name, var, &config[name.as_str()], refused))
            }
            div.field.actions { button type="submit" { "Save and deploy" } }
        }
    }
}

fn field(i: usize, name: &str, var: &ConfigVar, current: &Value, refused: Option<&Refused>) -> Markup {
    let id = format!("cfg-{i}");
    let help = format!("{id}-help");
    let err_id = format!("{id}-error");
    let error = refused.and_then(|r| r.errors.get(name));
    let described = if error.is_some() { format!("{help} {err_id}") } else { help.clone() };
    let input_name = format!("cfg.{name}");
    let source = current["source"].as_str().unwrap_or("unset");
    // What the field holds: what was typed in a refused form, else the deployment's value.
    let typed = refused.and_then(|r| r.typed.get(name)).cloned();
    let stored = (source == "deployment").then(|| current.get("value").map(shown)).flatten();
    let value = typed.or(stored).unwrap_or_default();
    let secret = var.kind == ConfigType::Secret;
    let default_shown = var.default.as_ref().map(shown).filter(|_| !secret);
    html! {
        div.field.cfg data-var=(name) data-type=(type_word(var.kind)) .invalid[error.is_some()] {
            label for=(id) {
                code { (name) } " "
                span.type { "(" (type_word(var.kind)) ")" }
                @if var.required { " " span.required { "required" } }
            }
            @if secret {
                @let set = current["set"].as_bool().unwrap_or(false);
                input #(id) type="password" name=(input_name) value="" autocomplete="new-password"
                    aria-describedby=(described) aria-invalid=[error.map(|_| "true")]
                    placeholder=(if set { "set — leave empty to keep" } else { "not set" });
            } @else if let Some(allowed) = &var.allowed {
                select #(id) name=(input_name) aria-describedby=(described) aria-invalid=[error.map(|_| "true")] {
                    option value="" { @match &default_shown { Some(d) => { "(default: " (d) ")" }, None => "(not set)" } }
                    @for a in allowed {
                        @let v = option_value(a);
                        option value=(v) selected[value == shown(a) || value == v] { (shown(a)) }
                    }
                }
            } @else {
                @match var.kind {
                    ConfigType::Boolean => select #(id) name=(input_name) aria-describedby=(described) aria-invalid=[error.map(|_| "true")] {
                        option value="" { @match &default_shown { Some(d) => { "(default: " (d) ")" }, None => "(not set)" } }
                        option value="true" selected[value == "true"] { "true" }
                        option value="false" selected[value == "false"] { "false" }
                    },
                    ConfigType::Json => textarea #(id) name=(input_name) rows="4" spellcheck="false"
                        aria-describedby=(described) aria-invalid=[error.map(|_| "true")]
                        placeholder=[default_shown.as_deref()] { (value) },
                    ConfigType::Number => input #(id) type="text" inputmode="decimal" name=(input_name) value=(value)
                        aria-describedby=(described) aria-invalid=[error.map(|_| "true")]
                        placeholder=[default_shown.as_deref()];,
                    _ => input #(id) type="text" name=(input_name) value=(value)
                        aria-describedby=(described) aria-invalid=[error.map(|_| "true")]
                        placeholder=[default_shown.as_deref()];,
                }
            }
            div.help #(help) {
                @if secret {
                    @let set = current["set"].as_bool().unwrap_or(false);
                    span class=(if set { "badge st-succeeded" } else { "badge st-other" }) data-secret-state=(if set { "set" } else { "not set" }) {
                        span.icon aria-hidden="true" { (if set { "●" } else { "○" }) } " " (if set { "set" } else { "not set" })
                    }
                    " Write-only: never shown. An empty field keeps the stored value."
                    @if var.default.is_some() { " Has a default." }
                }
                @if let Some(d) = &default_shown { span.default { "Default: " code { (d) } ". " } }
                @if !secret { span.source { "Value from: " (source_word(source)) "." } }
                @if let Some(desc) = &var.description { " " span.desc { (desc) } }
            }
            @if secret && current["set"].as_bool().unwrap_or(false) && current["source"] == "deployment" {
                label.inline {
                    input type="checkbox" name=(format!("clear.{name}")) value="1";
                    " Remove the stored value"
                }
            }
            @if let Some(e) = error {
                p.field-error #(err_id) { span aria-hidden="true" { "✗ " } (e) }
            }
        }
    }
}

fn source_word(source: &str) -> &'static str {
    match source {
        "deployment" => "the deployment",
        "default" => "the default",
        _ => "nowhere (not set)",
    }
}

/// The form's fields as the values `put_deployment` takes, or the fields that could not be
/// read (JSON that does not parse).
fn values(ci: &CompiledIntegration, view: &Value, pairs: &[(String, String)]) -> (Map<String, Value>, Refused) {
    let vars = &ci.definition.config;
    let mut out = Map::new();
    let mut refused = Refused::default();
    let clear: Vec<&str> = pairs.iter().filter_map(|(k, _)| k.strip_prefix("clear.")).collect();
    for (key, raw) in pairs {
        let Some(name) = key.strip_prefix("cfg.") else { continue };
        let Some(var) = vars.get(name) else {
            // Unknown: the engine says so, as the API would.
            out.insert(name.to_owned(), Value::String(raw.clone()));
            continue;
        };
        let secret = var.kind == ConfigType::Secret;
        if secret {
            if !raw.is_empty() {
                refused.secret_typed = true;
                out.insert(name.to_owned(), Value::String(raw.clone()));
            }
            continue;
        }
        refused.typed.insert(name.to_owned(), raw.clone());
        let text = raw.trim();
        if text.is_empty() {
            // Empty: unset (the default applies), if the deployment has a value.
            if view["config"][name]["source"] == "deployment" {
                out.insert(name.to_owned(), Value::Null);
            }
            continue;
        }
        let v = if var.allowed.is_some() {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(raw.clone()))
        } else {
            match var.kind {
                ConfigType::Number => serde_json::from_str::<serde_json::Number>(text)
                    .map(Value::Number)
                    .unwrap_or_else(|_| Value::String(raw.clone())),
                ConfigType::Boolean => match text {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::String(raw.clone()),
                },
                ConfigType::Json => match serde_json::from_str(text) {
                    Ok(v) => v,
                    Err(e) => {
                        refused.errors.insert(name.to_owned(), format!("not valid JSON: {e}"));
                        continue;
                    }
                },
                _ => Value::String(raw.clone()),
            }
        };
        out.insert(name.to_owned(), v);
    }
    for name in clear {
        if vars.get(name).is_some_and(|v| v.kind == ConfigType::Secret) && !out.contains_key(name) {
            out.insert(name.to_owned(), Value::Null);
        }
    }
    (out, refused)
}

/// `POST /console/integrations/{slug}/deployment`.
pub(crate) async fn save(State(c): State<Console>, s: Session, Path(slug): Path<String>, body: Bytes) -> Response {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let csrf = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    if let Some(refused) = session::check_csrf(&s, csrf) {
        return refused;
    }
    let engine = c.engine();
    let ci = match engine.integration(&s.tenant, &slug).await {
        Ok(Some(ci)) => ci,
        Ok(None) => return layout::not_found("There is no such integration."),
        Err(e) => return page::store_failed(e),
    };
    let view = match engine.deployment_view(&s.tenant, &slug).await {
        Ok(v) => v,
        Err(e) => return deploy_failed(e),
    };
    let (values, mut refused) = values(&ci, &view, &pairs);
    if !refused.errors.is_empty() {
        // Nothing goes to the engine with a field that could not be read; the other fields
        // are still checked (with the model's check, the one the engine applies) so every
        // problem shows at once.
        for (name, v) in &values {
            match ci.definition.config.get(name) {
                Some(var) if !v.is_null() => {
                    if let Err(m) = var.check_value(v) {
                        refused.errors.entry(name.clone()).or_insert(m);
                    }
                }
                Some(_) => {}
                None => refused.general.push(format!("config.{name}: unknown config variable")),
            }
        }
    } else {
        match engine.put_deployment(&s.tenant, &slug, &values).await {
            Ok(_) => {
                return Redirect::to(&format!("/console/integrations/{}?saved=1#deployment", path_part(&slug)))
                    .into_response();
            }
            Err(DeployError::Invalid { problems, missing }) => {
                for (path, message) in problems {
                    let name = path.strip_prefix("config.").unwrap_or(&path).to_owned();
                    if ci.definition.config.contains_key(&name) {
                        refused.errors.insert(name, message);
                    } else {
                        refused.general.push(format!("{path}: {message}"));
                    }
                }
                for m in missing {
                    refused.errors.entry(m).or_insert_with(|| "required, and not set".to_owned());
                }
            }
            Err(e) => return deploy_failed(e),
        }
    }
    let extra = Extra { refused: Some(refused), ..Extra::default() };
    page::respond(&c, &s, &slug, extra, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// A deployment change that failed for another reason than its values.
pub(crate) fn deploy_failed(e: DeployError) -> Response {
    match e {
        DeployError::NotFound => layout::not_found("There is no such integration."),
        DeployError::Store(e) => page::store_failed(e),
        other => {
            tracing::error!(error = %other, "Console: a deployment failed.");
            layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Not deployed", &other.to_string())
        }
    }
}
