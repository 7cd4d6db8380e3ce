//! `log`: writes a line into the execution's log (shown with the execution, and as the flow's
//! `lastRunLog`). Passes its input through.
//!
//! ```yaml
//! - id: note
//!   log: "customer {{ .id }} synced"          # level info
//! - id: warn
//!   log: { level: warn, message: "no email for {{ .id }}" }
//! ```

use crate::{Kind, LogEntry, Outcome, PlanCx, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::{Diags, Path};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Log levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Detail.
    Debug,
    /// Normal (default).
    #[default]
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `{ level, message }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LogObject {
    /// Level. Default info.
    #[serde(default)]
    pub level: LogLevel,
    /// The text; may embed `{{ expr }}`.
    pub message: Value,
}

/// A log line to write.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Level.
    pub level: LogLevel,
    /// Message template.
    pub message: Value,
    /// Written as `{ level, message }` (so the message sits under `message`).
    pub object_form: bool,
}

impl Kind for LogConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        if value.is_string() {
            return Some(LogConfig { level: LogLevel::Info, message: value.clone(), object_form: false });
        }
        let o: LogObject = flowgate_model::decode::decode(value, path, diags)?;
        Some(LogConfig { level: o.level, message: o.message, object_form: true })
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let obj = g.subschema_for::<LogObject>();
        schemars::json_schema!({ "oneOf": [ { "type": "string", "description": "The message (level info); may embed {{ expr }}." }, obj ] })
    }

    fn compile(&self, _: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        let at = if self.object_form { path.key("message") } else { path.clone() };
        let message = util::template(&self.message, &at, diags)?;
        Some(Box::new(Log { level: self.level, message }))
    }
}

struct Log {
    level: LogLevel,
    message: Arc<Template>,
}

#[async_trait]
impl Step for Log {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let message = cx.evaluator.eval(&self.message, input, &cx.scope).await?;
        cx.logs.push(LogEntry { level: self.level.as_str().to_owned(), message: flowgate_expr::to_text(&message) });
        Ok(Outcome::Output(input.clone()))
    }
}

#[cfg(test)]
mod tests;
