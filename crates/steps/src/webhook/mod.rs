//! `webhook`: POSTs JSON to an endpoint, delivered durably and retried on a schedule; and the
//! step hooks (`hooks: { onStart, onComplete }`) that send the same kind of message when any
//! step starts or completes.
//!
//! ```yaml
//! - id: tell-partner
//!   webhook:
//!     name: Send customer data
//!     endpoint: "{{ $config.partnerUrl }}/hook"
//!     body: { customer: "{{ . }}" }
//!     auth: { standardWebhooks: { secret: "{{ $config.partnerSecret }}" } }
//!     wait: false
//! ```
//! Output: `{deliveryId, webhookId, status}` (`queued`, or with `wait: true` `delivered` and
//! the receiver's `response`). Delivery — attempts, the schedule, signatures, resends — is the
//! engine's; this module compiles the request template once per flow version.

use crate::{Kind, Outbound, Outcome, PlanCx, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::outbound::{OutboundAuth, OutboundWebhook};
use flowgate_model::{Diags, Path};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A compiled outbound webhook.
#[derive(Debug)]
pub struct WebhookStep {
    /// Its name.
    pub name: String,
    /// Off: nothing is sent.
    pub enabled: bool,
    /// `{url, headers, body, auth}`: evaluated when the delivery is made.
    pub request: Arc<Template>,
    /// Wait for the delivery before going on.
    pub wait: bool,
    /// Delays before each attempt.
    pub delays: Vec<Duration>,
}

/// The hooks of a step, compiled.
#[derive(Debug, Default)]
pub struct CompiledHooks {
    /// Sent when the step starts (with its input).
    pub on_start: Option<WebhookStep>,
    /// Sent when the step completes (with its output).
    pub on_complete: Option<WebhookStep>,
}

/// Compiles an outbound webhook found at `path`.
pub fn compile(cfg: &OutboundWebhook, path: &Path, diags: &mut Diags) -> Option<WebhookStep> {
    let auth = match &cfg.auth {
        OutboundAuth::NoAuth => json!({ "kind": "none" }),
        OutboundAuth::ClientSecret { secret, header, field } => {
            json!({ "kind": "clientSecret", "secret": secret, "header": header, "field": field })
        }
        OutboundAuth::Basic { username, password } => {
            json!({ "kind": "basic", "username": username, "password": password })
        }
        OutboundAuth::StandardWebhooks { secret } => json!({ "kind": "standardWebhooks", "secret": secret }),
    };
    let spec = json!({
        "url": cfg.endpoint,
        "headers": Value::Object(cfg.headers.clone().into_iter().collect()),
        "body": cfg.body.clone().unwrap_or_else(|| json!("{{ . }}")),
        "auth": auth,
    });
    let request = util::template(&spec, path, diags)?;
    Some(WebhookStep { name: cfg.name.clone(), enabled: cfg.enabled, request, wait: cfg.wait, delays: cfg.delays() })
}

impl Kind for OutboundWebhookStep {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        let w: OutboundWebhook = flowgate_model::decode::decode(value, path, diags)?;
        w.check(path, diags);
        Some(OutboundWebhookStep(w))
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<OutboundWebhook>()
    }

    fn compile(&self, _: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        compile(&self.0, path, diags).map(|w| Box::new(w) as Box<dyn Step>)
    }
}

/// The `webhook` step's config.
#[derive(Debug, Clone)]
pub struct OutboundWebhookStep(pub OutboundWebhook);

#[async_trait]
impl Step for WebhookStep {
    /// The request evaluated and checked, then handed to the engine's webhook deliveries
    /// (`wait`: the step's output is the delivery's outcome).
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        if !self.enabled {
            return Ok(Outcome::Output(json!({ "status": "disabled" })));
        }
        let request = cx.evaluator.eval(&self.request, input, &cx.scope).await?;
        check_request(&request).map_err(|m| StepError::fatal("webhook_request", m))?;
        Ok(Outcome::Send(Outbound {
            kind: "webhook",
            name: self.name.clone(),
            message: request,
            delays: self.delays.clone(),
            wait: self.wait,
            show_message_id: true,
        }))
    }
}

/// An evaluated request is one a delivery can make: an http(s) URL, credentials of the
/// right shape (a config value left unset shows here, not at the receiver).
///
/// # Errors
/// What is wrong, for the step's error or the hook's log.
pub fn check_request(req: &Value) -> Result<(), String> {
    if req["url"].as_str().is_none_or(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
        return Err(format!("the endpoint `{}` is not an http(s) URL", flowgate_expr::to_text(&req["url"])));
    }
    let auth = &req["auth"];
    match auth["kind"].as_str() {
        Some("clientSecret") if auth["secret"].as_str().is_none_or(|s| s.is_empty() || s.chars().count() > 250) => {
            Err("the client secret must be 1–250 characters (is its config value set?)".into())
        }
        Some("basic")
            if auth["username"].as_str().is_none_or(|s| s.chars().count() > 100)
                || auth["password"].as_str().is_none_or(|s| s.chars().count() > 100) =>
        {
            Err("basic credentials must be at most 100 characters each".into())
        }
        Some("standardWebhooks") if auth["secret"].as_str().and_then(flowgate_model::outbound::whsec_key).is_none() => {
            Err("the signing secret must be a whsec_… secret (is its config value set?)".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
