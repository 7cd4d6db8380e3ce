//! JSON shapes of stored records as the API shows them (camelCase, RFC 3339 times, stored
//! JSON text turned back into values).

use flowgate_engine::clock::rfc3339;
use flowgate_store::{ExecutionRow, LogRecord, StepRecord};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

fn parse(text: &Option<String>) -> Value {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |t| json!(rfc3339(t)))
}

/// An execution in listings.
pub fn summary(r: &ExecutionRow) -> Value {
    json!({
        "id": r.id,
        "integration": r.integration,
        "flow": r.flow,
        "version": r.version,
        "status": r.status,
        "triggerKind": r.trigger_kind,
        "attempt": r.attempt,
        "authLabel": r.auth_label,
        "createdAt": rfc3339(r.created_at),
        "startedAt": time(r.started_at),
        "finishedAt": time(r.finished_at),
        "failedStep": r.failed_step,
        "replayOf": r.replay_of,
        "parentExecutionId": r.parent_id,
        // The execution's trace (OpenTelemetry; the caller's when its webhook sent one).
        "traceId": r.traceparent.as_deref().and_then(flowgate_engine::traces::Parent::parse).map(|p| p.trace_hex()),
        "cancelRequested": r.cancel_requested,
        "orderKey": r.order_key,
        // A failed execution still holding its order key blocks the executions after it.
        "blocksOrder": r.holds_order && r.status == "failed",
    })
}

/// Stored JSON text as it is, without building its tree (it may be megabytes).
fn raw(text: Option<&str>) -> Option<&RawValue> {
    text.and_then(|t| serde_json::from_str::<&RawValue>(t).ok())
}

/// The API's view of an execution: its summary, the stored texts (event, result, journal)
/// embedded as they are, and what the route adds.
#[derive(Serialize)]
pub struct Detail<'a> {
    #[serde(flatten)]
    summary: Value,
    trigger: Option<&'a RawValue>,
    output: Option<&'a RawValue>,
    response: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
    steps: Vec<StepView<'a>>,
    logs: Vec<Value>,
    /// Executions it started (`call` steps).
    pub children: Vec<Value>,
    /// Its outbound deliveries.
    pub deliveries: Vec<Value>,
    /// Its status URL.
    #[serde(rename = "statusUrl")]
    pub status_url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepView<'a> {
    step_id: &'a str,
    round: i64,
    attempt: i64,
    status: &'a str,
    input: Option<&'a RawValue>,
    output: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
    started_at: String,
    finished_at: String,
    duration_ms: i64,
}

/// An execution with its trigger, journal and log, serialised straight from the stored
/// texts: an execution of a 10 MB event costs its texts, not their trees (issue 12).
pub fn detail_view<'a>(r: &'a ExecutionRow, steps: &'a [StepRecord], logs: &[LogRecord]) -> Detail<'a> {
    Detail {
        summary: summary(r),
        trigger: raw(Some(&r.trigger)),
        output: raw(r.output.as_deref()),
        response: raw(r.response.as_deref()),
        error: raw(r.error.as_deref()),
        steps: steps
            .iter()
            .map(|s| StepView {
                step_id: &s.step_id,
                round: s.round,
                attempt: s.attempt,
                status: &s.status,
                input: raw(s.input.as_deref()),
                output: raw(s.output.as_deref()),
                error: raw(s.error.as_deref()),
                started_at: rfc3339(s.started_at),
                finished_at: rfc3339(s.finished_at),
                duration_ms: s.finished_at - s.started_at,
            })
            .collect(),
        logs: logs.iter().map(log).collect(),
        children: Vec::new(),
        deliveries: Vec::new(),
        status_url: String::new(),
    }
}

/// A log line.
pub fn log(l: &LogRecord) -> Value {
    json!({ "at": rfc3339(l.at), "level": l.level, "stepId": l.step_id, "message": l.message })
}

/// What a webhook caller sees at its status URL: no trigger input, no journal.
pub fn status(r: &ExecutionRow) -> Value {
    let response = parse(&r.response);
    let result = if response.is_null() { parse(&r.output) } else { response["body"].clone() };
    json!({
        "executionId": r.id,
        "status": r.status,
        "createdAt": rfc3339(r.created_at),
        "finishedAt": time(r.finished_at),
        "response": response,
        "result": result,
        // Only where and how it failed: messages may carry secrets (see hooks::sync_answer).
        "error": parse(&r.error).as_object().map(|e| json!({ "code": e.get("code"), "step": e.get("step") })),
    })
}
