//! `respond`: answers the webhook's caller (request-response flows) and passes its input on.
//!
//! ```yaml
//! - id: reply
//!   respond: { status: 201, headers: { X-Id: "{{ .id }}" }, body: { id: "{{ $steps.push.body.id }}" } }
//! ```
//! A sync webhook is answered as soon as this step runs; the execution goes on. Without
//! `body`, the step's input is sent. A string body is sent as text, anything else as JSON.

use crate::plan::Compiled;
use crate::{Response, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::{Diags, Path};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The answer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RespondConfig {
    /// HTTP status (100–599), or a `{{ expr }}` yielding one. Default 200.
    #[serde(default = "default_status")]
    #[schemars(with = "StatusSchema")]
    pub status: Value,
    /// Response headers; values may embed `{{ expr }}`.
    #[serde(default)]
    pub headers: IndexMap<String, Value>,
    /// Response body; may embed `{{ expr }}`. Default: the step's input.
    #[serde(default)]
    pub body: Option<Value>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum StatusSchema {
    Code(u16),
    Template(String),
}

fn default_status() -> Value {
    json!(200)
}

impl RespondConfig {
    pub(crate) fn compile(&self, path: &Path, diags: &mut Diags) -> Option<Compiled> {
        if let Some(n) = self.status.as_u64() {
            if !(100..=599).contains(&n) {
                diags.error(&path.key("status"), "status must be between 100 and 599");
            }
        } else if !self.status.is_string() {
            diags.error(&path.key("status"), "expected an HTTP status (a number) or a {{ expr }}");
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                diags.error(&path.key("headers").key(name.clone()), format!("invalid header name `{name}`"));
            }
        }
        let spec = json!({
            "status": self.status,
            "headers": Value::Object(self.headers.clone().into_iter().collect()),
            "body": self.body.clone().unwrap_or_else(|| json!("{{ . }}")),
        });
        let spec = util::template(&spec, path, diags)?;
        Some(Compiled::Action(Box::new(Respond { spec })))
    }
}

struct Respond {
    spec: Arc<Template>,
}

#[async_trait]
impl Step for Respond {
    async fn run(&self, input: &Value, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let Value::Object(mut spec) = cx.evaluator.eval(&self.spec, input, &cx.scope).await? else {
            return Err(StepError::fatal("respond_invalid", "response spec is not an object"));
        };
        let status = match spec.get("status") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| {
            StepError::fatal("respond_status", format!("status {} is not an HTTP status", spec["status"]))
        })?;
        let mut headers = Map::new();
        if let Some(Value::Object(h)) = spec.remove("headers") {
            for (k, v) in h {
                if !v.is_null() {
                    headers.insert(k, Value::String(flowgate_expr::to_text(&v)));
                }
            }
        }
        let body = spec.remove("body").unwrap_or(Value::Null);
        cx.response = Some(Response { status: status as u16, headers, body });
        Ok(input.clone())
    }
}
