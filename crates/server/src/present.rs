//! JSON shapes of stored records as the API shows them (camelCase, RFC 3339 times, stored
//! JSON text turned back into values).

use flowgate_engine::clock::rfc3339;
use flowgate_store::{ExecutionRow, LogRecord, StepRecord};
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
        "cancelRequested": r.cancel_requested,
        "orderKey": r.order_key,
        // A failed execution still holding its order key blocks the executions after it.
        "blocksOrder": r.holds_order && r.status == "failed",
    })
}

/// An execution with its trigger, journal and log.
pub fn detail(r: &ExecutionRow, steps: &[StepRecord], logs: &[LogRecord]) -> Value {
    let mut v = summary(r);
    v["trigger"] = parse(&Some(r.trigger.clone()));
    v["output"] = parse(&r.output);
    v["response"] = parse(&r.response);
    v["error"] = parse(&r.error);
    v["steps"] = steps
        .iter()
        .map(|s| {
            json!({
                "stepId": s.step_id,
                "round": s.round,
                "attempt": s.attempt,
                "status": s.status,
                "input": parse(&s.input),
                "output": parse(&s.output),
                "error": parse(&s.error),
                "startedAt": rfc3339(s.started_at),
                "finishedAt": rfc3339(s.finished_at),
                "durationMs": s.finished_at - s.started_at,
            })
        })
        .collect();
    v["logs"] = logs.iter().map(log).collect();
    v
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
