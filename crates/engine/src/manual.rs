//! Runs started by hand: `POST /v1/integrations/{slug}/flows/{flow}/run` and the console's
//! *Try it* both start a flow here, with a body, headers and query of the caller's choosing.
//! A manual flow's run is a `manual` execution; any other flow's is a `test` execution.

use crate::{CompiledFlow, Engine, Submission, SubmitError, Submitted, Wait};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The trigger event of a manual or test run of `flow` at `now` (epoch milliseconds): header
/// names lower-cased, the webhook's query defaults filled in, and for a schedule flow what a
/// slot's event has (as if a slot were due now).
pub fn run_event(
    flow: &Arc<CompiledFlow>,
    body: Value,
    headers: Map<String, Value>,
    query: Map<String, Value>,
    now: i64,
) -> Value {
    let headers: Map<String, Value> = headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let mut query = query;
    if let Some(hook) = flow.webhook() {
        for (name, p) in &hook.query {
            if let (false, Some(d)) = (query.contains_key(name), &p.default) {
                query.insert(name.clone(), Value::String(d.clone()));
            }
        }
    }
    let mut event = json!({
        "method": "POST",
        "path": flow.webhook().map(|w| w.path.clone()),
        "headers": headers,
        "query": query,
        "body": body,
        "receivedAt": crate::clock::rfc3339(now),
    });
    // A schedule flow run by hand gets what a slot's event has, as if a slot were due now, so
    // its expressions (`$trigger.scheduledAt`) work the same; `manual` tells them apart.
    if let crate::FlowTrigger::Schedule(spec) = &flow.trigger {
        let schedule = &spec.schedule;
        let at = crate::clock::rfc3339(now);
        event["scheduledAt"] = json!(at);
        event["firedAt"] = json!(at);
        event["timezone"] = json!(schedule.timezone());
        event["schedule"] = json!(schedule.describe());
        event["missed"] = json!(false);
        event["manual"] = json!(true);
    }
    event
}

/// The execution kind of a run by hand: `manual` for a manual flow, else `test`.
pub fn run_kind(flow: &CompiledFlow) -> &'static str {
    if matches!(flow.trigger, crate::FlowTrigger::Manual) { "manual" } else { "test" }
}

impl Engine {
    /// Starts `flow` by hand with this payload (a `manual` run of a manual flow, a `test` run
    /// of any other), as the API's `…/flows/{flow}/run` and the console's *Try it* do.
    ///
    /// # Errors
    /// When the event cannot be taken (see [`SubmitError`]).
    pub async fn run_by_hand(
        &self,
        flow: Arc<CompiledFlow>,
        body: Value,
        headers: Map<String, Value>,
        query: Map<String, Value>,
        wait: Wait,
    ) -> Result<Submitted, SubmitError> {
        let event = run_event(&flow, body, headers, query, self.clock().now_ms());
        let kind = run_kind(&flow);
        self.submit(Submission {
            flow,
            trigger: event,
            kind,
            auth_label: None,
            replay_of: None,
            wait,
            options: Default::default(),
        })
        .await
    }
}
