//! The record a log source receives: one event of a flow's execution, and its JSON form.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

/// One event of a flow, as a log source receives it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    /// When it happened, in milliseconds since the Unix epoch. Serialized as `timestamp`,
    /// RFC 3339 in UTC with milliseconds (`null` outside the years 0000–9999).
    #[serde(rename = "timestamp", serialize_with = "serialize_timestamp")]
    pub timestamp_ms: i64,
    /// The tenant owning the integration.
    pub tenant: String,
    /// The integration the flow belongs to.
    pub integration: String,
    /// The flow that ran.
    pub flow: String,
    /// The execution this event belongs to.
    pub execution_id: String,
    /// The step the event is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What happened: `execution.started`, `log`, `step.failed`, `execution.succeeded`,
    /// `execution.failed`, `execution.filtered`…
    pub event: String,
    /// How much it matters.
    pub level: Level,
    /// Human-readable text.
    pub message: String,
    /// How long the step or execution took, when the event ends one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Extra data: an error code, an HTTP status…
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
}

/// The level of a [`LogEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Detail for whoever debugs a flow.
    Debug,
    /// Normal operation.
    Info,
    /// Something unusual that did not fail the execution.
    Warn,
    /// A failure.
    Error,
}

impl Level {
    /// Its name, as in JSON records (`debug`, `info`, `warn`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The RFC 5424 severity: error 3, warning 4, informational 6, debug 7.
    pub fn severity(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

impl LogEvent {
    /// Passes the message and every string in `fields` (nested ones included) through `redact`.
    pub(crate) fn redact(&mut self, redact: &(dyn Fn(&str) -> String + Send + Sync)) {
        self.message = redact(&self.message);
        for value in self.fields.values_mut() {
            redact_value(value, redact);
        }
    }
}

fn redact_value(value: &mut Value, redact: &(dyn Fn(&str) -> String + Send + Sync)) {
    match value {
        Value::String(s) => *s = redact(s),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, redact)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_value(v, redact)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

const RFC3339_MS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `2024-05-01T12:00:00.123Z`, or `None` when the instant has no four-digit year (RFC 3339
/// allows no other).
pub(crate) fn rfc3339_ms(timestamp_ms: i64) -> Option<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000).ok()?;
    if !(0..=9999).contains(&at.year()) {
        return None;
    }
    at.format(RFC3339_MS).ok()
}

fn serialize_timestamp<S: Serializer>(timestamp_ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    match rfc3339_ms(*timestamp_ms) {
        Some(text) => serializer.serialize_str(&text),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> LogEvent {
        LogEvent {
            timestamp_ms: 1_714_564_800_123,
            tenant: "acme".into(),
            integration: "erp".into(),
            flow: "orders".into(),
            execution_id: "ex1".into(),
            step: None,
            event: "log".into(),
            level: Level::Warn,
            message: "hello".into(),
            duration_ms: None,
            fields: Map::new(),
        }
    }

    #[test]
    fn serializes_camel_case_with_an_rfc3339_timestamp() {
        let mut e = event();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"timestamp": "2024-05-01T12:00:00.123Z", "tenant": "acme", "integration": "erp",
                   "flow": "orders", "executionId": "ex1", "event": "log", "level": "warn", "message": "hello"})
        );
        e.step = Some("fetch".into());
        e.duration_ms = Some(12);
        e.fields.insert("code".into(), json!("E1"));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["step"], "fetch");
        assert_eq!(v["durationMs"], 12);
        assert_eq!(v["fields"], json!({"code": "E1"}));
    }

    #[test]
    fn timestamps_outside_rfc3339_are_null() {
        assert_eq!(rfc3339_ms(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(rfc3339_ms(-1).as_deref(), Some("1969-12-31T23:59:59.999Z"));
        assert_eq!(rfc3339_ms(i64::MAX), None);
        assert_eq!(rfc3339_ms(-62_167_219_200_001), None);
    }

    #[test]
    fn redaction_reaches_nested_strings_only() {
        let mut e = event();
        e.message = "token=abc".into();
        e.fields.insert("nested".into(), json!({"a": ["token=abc", 3, true, null]}));
        e.redact(&|s: &str| s.replace("abc", "***"));
        assert_eq!(e.message, "token=***");
        assert_eq!(e.fields["nested"], json!({"a": ["token=***", 3, true, null]}));
    }
}
