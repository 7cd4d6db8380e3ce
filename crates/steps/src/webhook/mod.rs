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

use crate::util;
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

impl OutboundWebhookStep {
    pub(crate) fn compile(&self, path: &Path, diags: &mut Diags) -> Option<Arc<WebhookStep>> {
        compile(&self.0, path, diags).map(Arc::new)
    }
}

/// The `webhook` step's config.
#[derive(Debug, Clone)]
pub struct OutboundWebhookStep(pub OutboundWebhook);
