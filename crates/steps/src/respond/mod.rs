//! `respond`: answers the webhook's caller (request-response flows) and passes its input on.
//!
//! ```yaml
//! - id: reply
//!   respond: { status: 201, headers: { X-Id: "{{ .id }}" }, body: { id: "{{ $steps.push.body.id }}" } }
//! ```
//! A sync webhook is answered as soon as this step runs; the execution goes on. Without
//! `body`, the step's input is sent. A string body is sent as text, anything else as JSON.

use crate::{Kind, Outcome, PlanCx, Response, Step, StepCx, StepError, util};
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
    /// HTTP status (200–599: a final answer), or a `{{ expr }}` yielding one. Default 200.
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

/// Statuses a `respond` step may answer with: a final answer (1xx ones are interim and
/// would leave the caller waiting for another; issue 13).
const STATUSES: std::ops::RangeInclusive<u64> = 200..=599;

/// Headers the server writes itself, from the body it sends and the connection it holds: a
/// flow setting them would break the answer's framing (issue 13).
const FRAMING_HEADERS: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "http2-settings",
];

/// Whether a flow may set header `name` on its answer.
fn settable(name: &str) -> bool {
    !FRAMING_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
}

impl Kind for RespondConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, _: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        if let Some(n) = self.status.as_u64() {
            if !STATUSES.contains(&n) {
                diags.error(&path.key("status"), "status must be a final HTTP status, between 200 and 599");
            }
        } else if !self.status.is_string() {
            diags.error(&path.key("status"), "expected an HTTP status (a number) or a {{ expr }}");
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                diags.error(&path.key("headers").key(name.clone()), format!("invalid header name `{name}`"));
            } else if !settable(name) {
                diags.error(
                    &path.key("headers").key(name.clone()),
                    format!("`{name}` is set by the server from the answer it sends; a flow cannot set it"),
                );
            }
        }
        let spec = json!({
            "status": self.status,
            "headers": Value::Object(self.headers.clone().into_iter().collect()),
            "body": self.body.clone().unwrap_or_else(|| json!("{{ . }}")),
        });
        let spec = util::template(&spec, path, diags)?;
        Some(Box::new(Respond { spec }))
    }
}

struct Respond {
    spec: Arc<Template>,
}

#[async_trait]
impl Step for Respond {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let Value::Object(mut spec) = cx.evaluator.eval(&self.spec, input, &cx.scope).await? else {
            return Err(StepError::fatal("respond_invalid", "response spec is not an object"));
        };
        let status = match spec.get("status") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|s| STATUSES.contains(s))
        .ok_or_else(|| {
            StepError::fatal(
                "respond_status",
                format!("status {} is not a final HTTP status (200–599)", spec["status"]),
            )
        })?;
        let mut headers = Map::new();
        if let Some(Value::Object(h)) = spec.remove("headers") {
            for (k, v) in h {
                // Names were checked when the flow was compiled; values are known only now, and
                // one that is not header text (a line break, say) would split the answer.
                if v.is_null() || !settable(&k) {
                    continue;
                }
                let text = flowgate_expr::to_text(&v);
                if http::HeaderValue::from_str(&text).is_err() {
                    return Err(StepError::fatal(
                        "respond_header",
                        format!("header `{k}` has a value that is not valid header text (control characters?)"),
                    ));
                }
                headers.insert(k, Value::String(text));
            }
        }
        let body = spec.remove("body").unwrap_or(Value::Null);
        cx.response = Some(Response { status: status as u16, headers, body });
        Ok(Outcome::Output(input.clone()))
    }
}

#[cfg(test)]
mod tests;
