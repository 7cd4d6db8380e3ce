//! A dry run of one recorded execution (issue 20): its event runs through a flow as a real
//! run would — the same step loop, expression budgets, `onError`, loops and branches — but
//! nothing is stored, sent or announced. Pure steps run; every other step is answered from
//! the recording (the execution's `mocks`, by journal key) or, when the recording has no
//! answer, stops the run as `unanswered`, its effect not performed. No hooks, notifications,
//! log records, rate-limit tokens, retries (a pure step would fail the same way again) or
//! spans. The journal entries a real run would commit are kept, redacted as a recording's,
//! for the caller to compare.

use super::*;
use crate::answers::Answers;

/// What the lines (loop items, branches) of one dry run share.
#[derive(Default)]
pub(crate) struct DryLine {
    /// Journal keys of steps that had no recorded answer.
    unanswered: std::sync::Mutex<Vec<String>>,
}

impl DryLine {
    /// Ends the run at a step that has no recorded answer.
    pub(super) fn unanswered(&self, key: String) -> Flow {
        let error = StepError::fatal(
            "unanswered",
            format!("step `{key}` has no recorded answer (new in this version, or not reached when recorded)"),
        );
        self.unanswered.lock().unwrap_or_else(|e| e.into_inner()).push(key.clone());
        Flow::Failed { step: key, error }
    }
}

/// A recorded execution to re-run.
pub(crate) struct DryInput {
    /// The recorded execution's id (`$execution.id` is the recorded one).
    pub id: String,
    /// The flow of the version being tried.
    pub flow: Arc<CompiledFlow>,
    /// The recorded event (secrets restored).
    pub trigger: Value,
    /// How the recorded execution was started.
    pub trigger_kind: String,
    /// When it was created (epoch ms): `$execution.createdAt`.
    pub created_at: i64,
    /// The recorded answers of its steps, by journal key (secrets restored).
    pub answers: Arc<Answers>,
}

/// What a dry run of one execution came to; every text redacted as a recording's is.
pub(crate) struct DryRan {
    /// How it ended.
    pub status: Status,
    /// The sync answer a `respond` step gave, JSON.
    pub response: Option<String>,
    /// Its error `{code, message, step}`, when it failed.
    pub error: Option<Value>,
    /// The journal entries a real run would have made, in order.
    pub entries: Vec<StepRecord>,
    /// Steps without a recorded answer.
    pub unanswered: Vec<String>,
}

/// Runs `input` dry, for at most `limit`.
pub(crate) async fn run_dry(inner: &Arc<Inner>, input: DryInput, limit: Duration) -> DryRan {
    let job = Job {
        id: input.id,
        flow: input.flow,
        trigger: Arc::new(input.trigger),
        trigger_kind: input.trigger_kind,
        round: 1,
        created_at: input.created_at,
        resumed: false,
        fresh: true,
        cancel_requested: false,
        permit: None,
        mocks: Some(input.answers),
        crashes: 0,
        lane: None,
        reservation: None,
        stored_trigger: None,
        share: None,
        traceparent: None,
    };
    let mut ex = Execution::new(inner, job);
    let line = Arc::new(DryLine::default());
    ex.dry = Some(line.clone());
    ex.claimed = false;
    let flow = ex.flow.clone();
    let first = ex.trigger.clone();
    let end = match tokio::time::timeout(limit, ex.run_steps(&flow.steps, first)).await {
        Ok(end) => end,
        Err(_) => Flow::Failed {
            step: String::new(),
            error: StepError::fatal(
                "dry_run_timeout",
                format!("the dry run of this execution took longer than {limit:?}"),
            ),
        },
    };
    // Gathers what loops and branches left (a dry flush stores nothing).
    ex.flush().await;
    // The output is the last step's, compared with the steps.
    let (status, error) = match end {
        Flow::Done(_) => (Status::Succeeded, None),
        Flow::Filtered(_) => (Status::Filtered, None),
        Flow::Failed { step, error } => {
            let mut e = serde_json::to_value(&error).unwrap_or(Value::Null);
            if !step.is_empty() {
                e["step"] = json!(step);
            }
            (Status::Failed, Some(e))
        }
        // Not reachable without retries, waits or a store; said rather than hidden.
        Flow::Parked { .. } | Flow::Interrupted | Flow::Waiting => (
            Status::Failed,
            Some(json!({ "code": "dry_run_parked", "message": "the run would have waited; a dry run does not" })),
        ),
    };
    let response = ex.response.take().map(|r| ex.redact(serde_json::to_string(&r).unwrap_or_default()));
    let error = error.map(|e| serde_json::from_str(&ex.redact(e.to_string())).unwrap_or(Value::Null));
    let entries = std::mem::take(&mut ex.pending.steps);
    let unanswered = std::mem::take(&mut *line.unanswered.lock().unwrap_or_else(|e| e.into_inner()));
    DryRan { status, response, error, entries, unanswered }
}

impl Execution {
    /// Where this execution's expressions run: a dry run's on a pool of their own, so a dry
    /// run of slow expressions never queues a live execution's behind its own.
    pub(super) fn evaluator(&self) -> &flowgate_expr::Evaluator {
        if self.dry.is_some() { &self.inner.dry_evaluator } else { &self.inner.evaluator }
    }

    /// Sends a record to the flow's log source, unless this is a dry run.
    pub(super) fn emit(&self, e: crate::logs::Emit<'_>) {
        if self.dry.is_none() {
            self.inner.emit(e);
        }
    }
}
