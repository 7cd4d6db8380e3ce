//! `email`: sends an e-mail through the server's SMTP relay, durably and retried.
//!
//! ```yaml
//! - id: mail
//!   email:
//!     to: "ops@progix.example, {{ $config.owner }}"
//!     subject: "Synced {{ .name }}"
//!     text: "Customer {{ .name }} is in Progix."
//!     attachments: [ { filename: report.csv, contentType: text/csv, text: "{{ $steps.csv }}" } ]
//! ```
//! Every field may embed `{{ expr }}`; `to`, `cc`, `bcc` take a list or a comma-separated
//! text. Attachments take `content` (base64 bytes, e.g. an inbound mail's attachment) or
//! `text`. Output: `{deliveryId, status: queued}`; the delivery loop sends it.

use crate::{Kind, Outbound, Outcome, PlanCx, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_model::{Diags, Dur, Path};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// An e-mail to send.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients: a list, or addresses separated by commas.
    pub to: Value,
    /// Copied recipients.
    #[serde(default)]
    pub cc: Option<Value>,
    /// Blind-copied recipients.
    #[serde(default)]
    pub bcc: Option<Value>,
    /// Sender; default: the relay's.
    #[serde(default)]
    pub from: Option<String>,
    /// Where replies go.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    #[serde(default)]
    pub text: Option<String>,
    /// HTML body.
    #[serde(default)]
    pub html: Option<String>,
    /// Files: `{filename, contentType, content (base64) | text}`.
    #[serde(default)]
    pub attachments: Option<Value>,
    /// Delays between attempts. Default: at once, 30s, 5min, 30min, 2h, 5h.
    #[serde(default)]
    pub schedule: Option<Vec<Dur>>,
}

/// A compiled `email` step.
#[derive(Debug)]
pub struct EmailStep {
    /// The whole message as a template.
    pub message: Arc<Template>,
    /// Delays before each attempt.
    pub delays: Vec<Duration>,
}

use flowgate_expr::Template;

const DEFAULT_DELAYS: [u64; 6] = [0, 30, 300, 1800, 7200, 18000];

impl Kind for EmailConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, _: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        if self.text.is_none() && self.html.is_none() {
            diags.error(path, "an e-mail needs `text`, `html` or both");
        }
        let spec = json!({
            "to": self.to,
            "cc": self.cc,
            "bcc": self.bcc,
            "from": self.from,
            "replyTo": self.reply_to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "attachments": self.attachments.clone().unwrap_or_else(|| json!([])),
        });
        let message = util::template(&spec, path, diags)?;
        let delays = match &self.schedule {
            Some(s) => s.iter().map(|d| d.0).collect(),
            None => DEFAULT_DELAYS.iter().map(|s| Duration::from_secs(*s)).collect(),
        };
        Some(Box::new(EmailStep { message, delays }))
    }
}

#[async_trait]
impl Step for EmailStep {
    /// The message evaluated and checked, then handed to the engine's e-mail deliveries.
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let message = cx.evaluator.eval(&self.message, input, &cx.scope).await?;
        let has_recipients = match &message["to"] {
            Value::String(s) => !s.trim().is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        };
        if !has_recipients {
            return Err(StepError::fatal("email_request", "the e-mail has no recipient (`to`)"));
        }
        Ok(Outcome::Send(Outbound {
            kind: "email",
            name: message["subject"].as_str().unwrap_or("").to_owned(),
            message,
            delays: self.delays.clone(),
            wait: false,
            show_message_id: false,
        }))
    }
}

#[cfg(test)]
mod tests;
