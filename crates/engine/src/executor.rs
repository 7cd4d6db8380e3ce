//! Running one execution: step by step, journaling every attempt (DESIGN §3).
//!
//! Invariants:
//! * A step recorded as completed (`succeeded`, `skipped`, `continued`) is never run again
//!   for this execution: on resume its recorded output is used.
//! * Before a step with side effects (an HTTP call) runs, every earlier journal entry is
//!   durable, so a crash re-sends at most the step that was in flight, with the same
//!   idempotency key (`<execution>:<step>`).
//! * The end of an execution (status, output, response) commits together with its last
//!   journal entries; only then are waiting callers told it finished.
//!
//! Pure steps (transform, filter, log, …) are deterministic given the journal, so their
//! entries ride along with the next durable write instead of costing one of their own.

// `Result<Value, Flow>` carries the execution's end on the cold path.
#![allow(clippy::result_large_err)]

use crate::Inner;
use crate::backoff;
use crate::compile::CompiledFlow;
use crate::waiters::SyncOutcome;
use flowgate_expr::{Scope, truthy};
use flowgate_model::OnError;
use flowgate_model::{Diagnostics, OnExhausted};
use flowgate_steps::{Compiled, CompiledStep, LogEntry, Response, StepCx, StepError};
use flowgate_store::{Finish, LogRecord, Park, Responded, Scrub, Status, StepRecord, StoreEvent, WriteBatch};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// An execution handed to a worker.
pub(crate) struct Job {
    pub id: String,
    pub flow: Arc<CompiledFlow>,
    pub trigger: Arc<Value>,
    pub trigger_kind: String,
    pub round: i64,
    pub created_at: i64,
    /// Claimed from the store (it may have a journal), rather than just inserted.
    pub resumed: bool,
    pub permit: OwnedSemaphorePermit,
    /// Outputs of steps that are not run (flow tests).
    pub mocks: Option<Arc<Map<String, Value>>>,
    /// How many times in a row a node died while running it, without progress.
    pub crashes: i64,
    /// The claim lane it came from (`dispatch::lanes`), counted while it runs.
    pub lane: Option<usize>,
    /// Its event's share of the memory budget, when taken already (ingress).
    pub reservation: Option<crate::budget::Reservation>,
    /// The event as stored (claimed executions): parsed only once its share of the memory
    /// budget is reserved; `trigger` is a placeholder until then.
    pub stored_trigger: Option<String>,
    /// Its place in its tenant's and flow's shares of the workers.
    pub share: Option<crate::shares::Share>,
}

/// A step's input: shared, since it is often the event or an output kept in `$steps` too.
type Input = Arc<Value>;

/// How the steps ended.
#[allow(clippy::large_enum_variant)] // moved once per execution end
enum Flow {
    /// Ran to the end; the last output.
    Done(Value),
    /// A filter stopped it; its input.
    Filtered(Value),
    /// A step failed for good.
    Failed { step: String, error: StepError },
    /// Waiting for a retry far enough away that the worker is better freed.
    Parked { run_after: i64 },
    /// The journal could not be made durable; leave the lease to expire and resume later.
    Interrupted,
    /// Parked in `waiting` (for a delivery): the store holds it; nothing more to write.
    Waiting,
}

/// The failed step named in an execution's error.
fn failed_step_of(error: &Option<Value>) -> Option<String> {
    error.as_ref().and_then(|e| e["step"].as_str()).map(str::to_owned)
}

/// Journal statuses that mean "done, reuse the output".
const COMPLETED: [&str; 3] = ["succeeded", "skipped", "continued"];

struct Execution {
    inner: Arc<Inner>,
    id: String,
    flow: Arc<CompiledFlow>,
    trigger: Arc<Value>,
    round: i64,
    execution_var: Value,
    /// `$steps`: outputs so far.
    outputs: Map<String, Value>,
    /// Outputs recorded by earlier runs of this execution.
    completed: HashMap<String, Value>,
    /// Attempts already made in this round, by step.
    attempts: HashMap<String, u32>,
    /// Journal order.
    seq: i64,
    /// Journal entries and logs not yet handed to the committer.
    pending: WriteBatch,
    response: Option<Response>,
    /// The JSON text of the current input, when known (reused as the next entry's input).
    /// Claimed from the queue rather than started where its event arrived: whoever waits for
    /// it may be on another node, so its answer and its end are stored and announced.
    claimed: bool,
    /// The current input equals the output of the last completed journal entry (or the
    /// trigger, before any): its entry then stores no input (see `StepRecord::input`).
    input_is_last_output: bool,
    /// Outputs of steps that are not run (flow tests).
    mocks: Option<Arc<Map<String, Value>>>,
    /// How deep in a chain of `call` steps this execution is (0: not called).
    depth: u64,
    /// The execution at the top of this one's chain of calls (itself when no call started it).
    call_root: String,
    /// When this round began (epoch ms): the event for the first round, the first journal
    /// entry of a later one (a manual retry); the flow's timeout counts from here.
    round_began: i64,
    /// A write to the store failed: the execution stops here and is handed back.
    lost_store: bool,
    /// The worker slot it runs in, given back when it ends.
    _permit: OwnedSemaphorePermit,
}

pub(crate) async fn run(inner: Arc<Inner>, job: Job) {
    let span =
        tracing::debug_span!("execution", tenant = %job.flow.tenant, flow = %job.flow.slug, execution_id = %job.id);
    let id = job.id.clone();
    let cancel = CancellationToken::new();
    inner.running.lock().expect("running lock").insert(id.clone(), cancel.clone());
    let lane = job.lane;
    let mut job = job;
    let _share = job.share.take();
    let _memory = match job.reservation.take() {
        Some(r) => r,
        None => {
            let bytes = job.stored_trigger.as_ref().map_or(0, |t| flowgate_expr::value::json_tree_bytes(t.as_bytes()));
            inner.memory.reserve_waiting(bytes).await
        }
    };
    let mut unreadable = None;
    if let Some(text) = job.stored_trigger.take() {
        match serde_json::from_str(&text) {
            Ok(v) => job.trigger = Arc::new(v),
            // Accepted as JSON by a check that builds no tree, but not representable (a number
            // out of range): fail it, visibly, rather than run it on `null`.
            Err(e) => unreadable = Some(format!("the event cannot be read as JSON: {e}")),
        }
    }
    let lost_store = match unreadable {
        None => run_inner(inner.clone(), job, cancel).instrument(span).await,
        Some(message) => fail_at_start(&inner, job, StepError::fatal("invalid_event", message)).await,
    };
    inner.running.lock().expect("running lock").remove(&id);
    if let Some(lane) = lane {
        inner.lanes[lane].running.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if lane > 0 {
            // The next suspect may go now.
            inner.backlog.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    if lost_store && !inner.hard_stop.is_cancelled() {
        release_when_possible(inner.clone(), id);
    }
    if inner.backlog.load(std::sync::atomic::Ordering::Relaxed) {
        inner.wake.notify_one();
    }
}

/// Hands an execution this worker gave up on (the store failed under it) back to the queue
/// as soon as the store answers, so it resumes at once rather than after its lease expires
/// (which would also count as a crash).
fn release_when_possible(inner: Arc<Inner>, id: String) {
    tokio::spawn(async move {
        let until = Instant::now() + inner.settings.lease * 2;
        let mut pause = Duration::from_millis(250);
        while Instant::now() < until && !inner.hard_stop.is_cancelled() {
            match inner.store.release_lease(&inner.settings.node_id, &id).await {
                Ok(_) => {
                    inner.backlog.store(true, std::sync::atomic::Ordering::Relaxed);
                    inner.wake.notify_one();
                    return;
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    });
}

/// Ends an execution before its first step.
async fn fail_at_start(inner: &Arc<Inner>, job: Job, error: StepError) -> bool {
    let ex = Execution::new(inner, job);
    ex.finish(Some(Flow::Failed { step: String::new(), error }), Instant::now()).await
}

/// Runs one execution; true when it stopped because the store failed (its lease is then
/// held by no worker).
async fn run_inner(inner: Arc<Inner>, job: Job, cancel: CancellationToken) -> bool {
    let resumed = job.resumed;
    let trigger_kind = job.trigger_kind.clone();
    let crashes = job.crashes;
    let mut ex = Execution::new(&inner, job);
    if resumed {
        if let Err(e) = ex.load_journal().await {
            tracing::error!(error = %e, "Cannot load the journal; the execution will be resumed later.");
            return true;
        }
        // A cancel may have come while it was queued or claimed, before it was registered.
        if inner.store.cancel_requested(&ex.id).await.unwrap_or(false) {
            cancel.cancel();
        }
    }
    let started = Instant::now();
    let limit = i64::from(inner.settings.crash_limit);
    if limit > 0 && crashes >= limit {
        // A poison execution: every node that ran it died at the same point. Resuming it
        // again would take this node down too (and every restart after); a person decides.
        let flow = ex.flow.clone();
        let at = ex.next_step(&flow.steps);
        tracing::error!(crashes = crashes, step_id = ?at, "Not resuming an execution that crashed its node repeatedly.");
        metrics::counter!("flowgate_executions_crashed_total").increment(1);
        let message = format!(
            "the node running this execution stopped {} times in a row{} without it making progress, so it is \
             not resumed again automatically; find the cause (an input or step that takes the process down), then \
             retry it",
            crashes,
            at.as_deref().map(|s| format!(" at step `{s}`")).unwrap_or_default()
        );
        let error = StepError::fatal("crashed_node", message);
        return ex.finish(Some(Flow::Failed { step: at.unwrap_or_default(), error }), started).await;
    }
    inner.emit(crate::logs::Emit {
        flow: &ex.flow,
        execution: &ex.id,
        step: None,
        event: if resumed { "execution.resumed" } else { "execution.started" },
        level: flowgate_sinks::Level::Info,
        message: format!("{} {}", ex.flow.slug, if resumed { "resumed" } else { "started" }),
        duration_ms: None,
        fields: serde_json::Map::from_iter([
            ("trigger".to_owned(), json!(trigger_kind)),
            ("attempt".to_owned(), json!(ex.round)),
        ]),
    });
    let outcome = {
        let flow = ex.flow.clone();
        let ex_deadline = ex.deadline();
        // The first step's input is the event itself: shared, not copied.
        let input = ex.trigger.clone();
        let steps = ex.run_steps(&flow.steps, input);
        tokio::pin!(steps);
        // The flow's timeout counts from the event (or the manual retry), retries and waits in
        // the queue included. Checked first: a parked execution claimed at its deadline fails
        // without running a step.
        let deadline = async {
            match ex_deadline {
                Some(at) => tokio::time::sleep(Duration::from_millis((at - inner.clock.now_ms()).max(0) as u64)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = deadline => Some(Flow::Failed {
                step: String::new(),
                error: StepError::fatal("execution_timeout", format!("the execution ran longer than its flow's timeout of {:?}", flow.timeout.unwrap_or_default())),
            }),
            r = &mut steps => Some(r),
            _ = cancel.cancelled() => None,
            _ = inner.hard_stop.cancelled() => Some(Flow::Interrupted),
        }
    };
    ex.finish(outcome, started).await
}

impl Execution {
    /// The state of a job about to run (its worker permit is held by the job's task).
    fn new(inner: &Arc<Inner>, job: Job) -> Execution {
        let depth = job.trigger["call"]["depth"].as_u64().unwrap_or(0);
        let call_root = job.trigger["call"]["root"].as_str().unwrap_or(&job.id).to_owned();
        Execution {
            depth,
            call_root,
            execution_var: json!({ "id": job.id, "attempt": job.round, "trigger": job.trigger_kind, "createdAt": crate::clock::rfc3339(job.created_at) }),
            inner: inner.clone(),
            id: job.id,
            flow: job.flow,
            trigger: job.trigger,
            round: job.round,
            outputs: Map::new(),
            completed: HashMap::new(),
            attempts: HashMap::new(),
            seq: 0,
            pending: WriteBatch::default(),
            response: None,
            input_is_last_output: true,
            claimed: job.resumed,
            round_began: if job.round <= 1 { job.created_at } else { inner.clock.now_ms() },
            mocks: job.mocks,
            lost_store: false,
            _permit: job.permit,
        }
    }

    /// Records a step's output for `$steps` and passes it on as the next step's input.
    fn output(&mut self, step: &CompiledStep, out: Value) -> Input {
        self.outputs.insert(step.id.clone(), out.clone());
        Arc::new(out)
    }

    /// The first step (depth first, branches included) the journal does not show completed:
    /// where a resumed run goes on.
    fn next_step(&self, steps: &[CompiledStep]) -> Option<String> {
        steps.iter().find(|s| !self.completed.contains_key(&s.id)).map(|s| s.id.clone())
    }

    async fn load_journal(&mut self) -> Result<(), flowgate_store::Error> {
        let journal = self.inner.store.journal(&self.id).await?;
        self.seq = journal.len() as i64;
        for r in journal {
            if r.round == self.round && self.round > 1 {
                self.round_began = self.round_began.min(r.started_at);
            }
            if COMPLETED.contains(&r.status.as_str()) {
                if let Some(resp) = r
                    .response
                    .as_deref()
                    .and_then(|t| serde_json::from_str(&self.flow.redactor.restore_json_text(t)).ok())
                {
                    self.response = Some(resp);
                }
                // Recorded outputs hold markers for secrets; the run needs the values back.
                let out = r
                    .output
                    .as_deref()
                    .and_then(|o| serde_json::from_str(&self.flow.redactor.restore_json_text(o)).ok())
                    .unwrap_or(Value::Null);
                self.completed.insert(r.step_id, out);
            } else if r.round == self.round {
                let n = self.attempts.entry(r.step_id).or_default();
                *n = (*n).max(r.attempt as u32);
            }
        }
        Ok(())
    }

    /// The `webhook` step: queue the delivery durably; with `wait`, wait for it (inline a
    /// little, then parked in `waiting`, holding no worker).
    async fn run_webhook(
        &mut self,
        step: &CompiledStep,
        spec: &flowgate_steps::webhook::WebhookStep,
        input: Input,
        started: i64,
    ) -> Result<Input, Flow> {
        if !spec.enabled {
            let out = json!({ "status": "disabled" });
            self.record(step, 1, "succeeded", &input, Some(&out), None, started);
            return Ok(self.output(step, out));
        }
        let request = match self.inner.evaluator.eval(&spec.request, &input, &self.scope()).await {
            Ok(r) => r,
            Err(e) => return self.fail(step, 1, &input, StepError::from(e), started),
        };
        if let Err(m) = crate::deliveries::check_request(&request) {
            return self.fail(step, 1, &input, StepError::fatal("webhook_request", m), started);
        }
        let id = format!("{}:{}:{}", self.id, step.id, self.round);
        let d = crate::deliveries::new_delivery(
            &self.inner,
            &self.flow,
            id.clone(),
            Some(&self.id),
            Some(&step.id),
            "webhook",
            &spec.name,
            &request,
            &spec.delays,
        );
        let message = d.message_id.clone();
        // A resumed step finds its delivery there: the insert is ignored.
        self.pending.deliveries.push(d);
        if !self.flush().await {
            return Err(Flow::Interrupted);
        }
        self.inner.delivery_wake.notify_one();
        if !spec.wait {
            let out = json!({ "deliveryId": id, "webhookId": message, "status": "queued" });
            self.record(step, 1, "succeeded", &input, Some(&out), None, started);
            return Ok(self.output(step, out));
        }
        let inline_until = Instant::now() + self.inner.settings.inline_backoff_max;
        loop {
            let d = match self.inner.store.delivery(&self.flow.tenant, &id).await {
                Ok(Some(d)) => d,
                Ok(None) => {
                    return self.fail(
                        step,
                        1,
                        &input,
                        StepError::fatal("webhook_lost", "the delivery is gone"),
                        started,
                    );
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match d.status.as_str() {
                "delivered" => {
                    let response = d.response.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok());
                    let out = json!({ "deliveryId": id, "webhookId": message, "status": "delivered", "attempts": d.attempts, "response": response });
                    self.record(step, 1, "succeeded", &input, Some(&out), None, started);
                    return Ok(self.output(step, out));
                }
                "failed" => {
                    let error = StepError {
                        details: Some(json!({ "deliveryId": id, "attempts": d.attempts, "lastStatus": d.last_status })),
                        ..StepError::fatal(
                            "webhook_failed",
                            format!(
                                "`{}` was not delivered after {} attempts: {}",
                                spec.name,
                                d.attempts,
                                d.last_error.unwrap_or_default()
                            ),
                        )
                    };
                    return self.fail(step, 1, &input, error, started);
                }
                _ if Instant::now() < inline_until => tokio::time::sleep(Duration::from_millis(25)).await,
                _ => {
                    // Retried over minutes or hours: wait without a worker.
                    if !self.flush().await {
                        return Err(Flow::Interrupted);
                    }
                    let owner = self.inner.settings.node_id.clone();
                    match self.inner.store.wait_for_delivery(&self.id, &owner, &id).await {
                        Ok(true) => return Err(Flow::Waiting),
                        Ok(false) => continue, // it ended meanwhile
                        Err(_) => return Err(Flow::Interrupted),
                    }
                }
            }
        }
    }

    /// Queues the flow's e-mail notification (with the finish: durable) when it failed for
    /// good, or succeeded again after a failure (`notifyOnRecovery`).
    async fn notify(&mut self, status: Status, error: Option<&Value>, failed_step: Option<String>) {
        let f = self.flow.clone();
        if f.notify_emails.is_empty() {
            return;
        }
        let event = match status {
            Status::Failed => "failed",
            Status::Succeeded if f.notify_on_recovery => {
                // A recovery: the flow's previous run ended badly.
                match self.inner.store.last_run(&f.tenant, &f.integration, &f.slug).await {
                    Ok(Some(prev)) if prev.id != self.id && prev.status == "failed" => "recovered",
                    _ => return,
                }
            }
            _ => return,
        };
        let link = format!("{}/v1/executions/{}", self.inner.settings.public_url, self.id);
        let message = error.and_then(|e| e["message"].as_str()).unwrap_or("").to_owned();
        let code = error.and_then(|e| e["code"].as_str()).unwrap_or("").to_owned();
        let subject = match event {
            "failed" => format!("[Flowgate] {} / {} failed", f.integration, f.slug),
            _ => format!("[Flowgate] {} / {} succeeds again", f.integration, f.slug),
        };
        let text = match event {
            "failed" => format!(
                "An execution of flow {} (integration {}, tenant {}) failed after its retries.\n\nExecution: {}\nFailed step: {}\nError: {} {}\n\n{}\n",
                f.slug,
                f.integration,
                f.tenant,
                self.id,
                failed_step.as_deref().unwrap_or("-"),
                code,
                message,
                link
            ),
            _ => format!(
                "Flow {} (integration {}, tenant {}) succeeded again after a failure.\n\nExecution: {}\n{}\n",
                f.slug, f.integration, f.tenant, self.id, link
            ),
        };
        let request = json!({
            "to": f.notify_emails,
            "subject": self.flow.redactor.redact_text(&subject),
            "text": self.flow.redactor.redact_text(&text),
            "event": event,
            "executionId": self.id,
            "failedStep": failed_step,
            "error": { "code": code },
            "link": link,
        });
        let id = format!("{}:notify:{}:{event}", self.id, self.round);
        let d = crate::deliveries::new_delivery(
            &self.inner,
            &f,
            id,
            Some(&self.id),
            None,
            "notification",
            &subject,
            &request,
            &crate::deliveries::email::NOTIFY_SCHEDULE,
        );
        self.pending.deliveries.push(d);
        self.inner.delivery_wake.notify_one();
    }

    /// JSON text as it may be recorded: secret values replaced by markers.
    fn redact(&self, json: String) -> String {
        match self.flow.redactor.redact_json_text(&json) {
            std::borrow::Cow::Borrowed(_) => json,
            std::borrow::Cow::Owned(r) => r,
        }
    }

    /// When the flow's timeout ends this execution (epoch ms), if it has one.
    fn deadline(&self) -> Option<i64> {
        self.flow.timeout.map(|t| self.round_began.saturating_add(t.as_millis() as i64))
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            trigger: &self.trigger,
            steps: &self.outputs,
            config: &self.flow.config,
            flow: &self.flow.flow_var,
            execution: &self.execution_var,
            item: None,
            state: None,
        }
    }

    fn run_steps<'a>(
        &'a mut self,
        steps: &'a [CompiledStep],
        input: Input,
    ) -> Pin<Box<dyn Future<Output = Flow> + Send + 'a>> {
        Box::pin(async move {
            let mut input = input;
            for step in steps {
                match self.run_step(step, input).await {
                    Ok(out) => input = out,
                    Err(end) => return end,
                }
            }
            Flow::Done(Arc::unwrap_or_clone(input))
        })
    }

    /// Runs one step with its hooks; `Ok` carries its output, `Err` how the execution ends.
    async fn run_step(&mut self, step: &CompiledStep, input: Input) -> Result<Input, Flow> {
        let hooks = (!self.completed.contains_key(&step.id)).then(|| step.hooks.clone()).flatten();
        if let Some(spec) = hooks.as_ref().and_then(|h| h.on_start.as_ref()) {
            self.hook(step, spec, "start", &input).await;
        }
        let out = self.run_step_body(step, input).await?;
        if let Some(spec) = hooks.as_ref().and_then(|h| h.on_complete.as_ref()) {
            self.hook(step, spec, "complete", &out).await;
        }
        Ok(out)
    }

    /// Queues a step hook's webhook (with the journal: durable, once per round).
    async fn hook(
        &mut self,
        step: &CompiledStep,
        spec: &flowgate_steps::webhook::WebhookStep,
        event: &str,
        data: &Value,
    ) {
        if !spec.enabled {
            return;
        }
        let payload = json!({
            "event": format!("step.{event}ed").replace("startted", "started").replace("completeed", "completed"),
            "step": step.id,
            "execution": self.execution_var,
            "integration": self.flow.integration,
            "flow": self.flow.slug,
            "data": data,
        });
        let request = match self.inner.evaluator.eval(&spec.request, &payload, &self.scope()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(step_id = %step.id, error = %e, "A step hook's webhook cannot be made; it is not sent.");
                return;
            }
        };
        if let Err(m) = crate::deliveries::check_request(&request) {
            tracing::warn!(step_id = %step.id, error = %m, "A step hook's webhook is invalid; it is not sent.");
            return;
        }
        let id = format!("{}:{}:{}:{event}", self.id, step.id, self.round);
        let d = crate::deliveries::new_delivery(
            &self.inner,
            &self.flow,
            id,
            Some(&self.id),
            Some(&step.id),
            "webhook",
            &spec.name,
            &request,
            &spec.delays,
        );
        self.pending.deliveries.push(d);
        self.inner.delivery_wake.notify_one();
    }

    /// Runs one step; `Ok` carries its output, `Err` how the execution ends here.
    async fn run_step_body(&mut self, step: &CompiledStep, input: Input) -> Result<Input, Flow> {
        if let Some(out) = self.completed.get(&step.id) {
            let out = out.clone();
            self.input_is_last_output = true;
            return Ok(self.output(step, out));
        }
        let started = self.inner.clock.now_ms();
        if let Some(when) = &step.when {
            match self.inner.evaluator.eval(when, &input, &self.scope()).await {
                Ok(v) if truthy(&v) => {}
                Ok(_) => {
                    self.record(step, 1, "skipped", &input, Some(&input), None, started);
                    self.outputs.insert(step.id.clone(), (*input).clone());
                    return Ok(input);
                }
                Err(e) => return self.fail(step, 1, &input, StepError::from(e), started),
            }
        }
        if let Some(out) = self.mocks.as_ref().and_then(|m| m.get(&step.id)).cloned() {
            // A test's mock stands in for the step: no attempt, no side effect.
            self.record(step, 1, "succeeded", &input, Some(&out), None, started);
            return Ok(self.output(step, out));
        }
        match &step.body {
            Compiled::Webhook(spec) => self.run_webhook(step, spec, input, started).await,
            Compiled::Email(spec) => {
                let message = match self.inner.evaluator.eval(&spec.message, &input, &self.scope()).await {
                    Ok(m) => m,
                    Err(e) => return self.fail(step, 1, &input, StepError::from(e), started),
                };
                let recipients = |v: &Value| match v {
                    Value::String(s) => !s.trim().is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    _ => false,
                };
                if !recipients(&message["to"]) {
                    return self.fail(
                        step,
                        1,
                        &input,
                        StepError::fatal("email_request", "the e-mail has no recipient (`to`)"),
                        started,
                    );
                }
                let id = format!("{}:{}:{}", self.id, step.id, self.round);
                let subject = message["subject"].as_str().unwrap_or("").to_owned();
                let d = crate::deliveries::new_delivery(
                    &self.inner,
                    &self.flow,
                    id.clone(),
                    Some(&self.id),
                    Some(&step.id),
                    "email",
                    &subject,
                    &message,
                    &spec.delays,
                );
                self.pending.deliveries.push(d);
                if !self.flush().await {
                    return Err(Flow::Interrupted);
                }
                self.inner.delivery_wake.notify_one();
                let out = json!({ "deliveryId": id, "status": "queued" });
                self.record(step, 1, "succeeded", &input, Some(&out), None, started);
                Ok(self.output(step, out))
            }
            Compiled::Call { integration, flow, input: body } => {
                let action = crate::call::CallAction {
                    inner: self.inner.clone(),
                    parent: self.id.clone(),
                    parent_flow: self.flow.slug.clone(),
                    tenant: self.flow.tenant.clone(),
                    integration: integration.clone().filter(|i| *i != self.flow.integration),
                    step: step.id.clone(),
                    round: self.round,
                    version_id: self.flow.version_id,
                    flow: flow.clone(),
                    input: body.clone(),
                    depth: self.depth,
                    root: self.call_root.clone(),
                };
                self.run_action(step, &action, input).await
            }
            Compiled::Filter(cond) => match self.inner.evaluator.eval(cond, &input, &self.scope()).await {
                Ok(v) => {
                    self.record(step, 1, "succeeded", &input, Some(&input), None, started);
                    self.outputs.insert(step.id.clone(), (*input).clone());
                    if truthy(&v) { Ok(input) } else { Err(Flow::Filtered(Arc::unwrap_or_clone(input))) }
                }
                Err(e) => self.fail(step, 1, &input, StepError::from(e), started),
            },
            Compiled::Switch { cases, default } => {
                let mut branch = default.as_deref();
                for (cond, steps) in cases {
                    match self.inner.evaluator.eval(cond, &input, &self.scope()).await {
                        Ok(v) if truthy(&v) => {
                            branch = Some(steps);
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => return self.fail(step, 1, &input, StepError::from(e), started),
                    }
                }
                let out = match branch {
                    Some(steps) => match self.run_steps(steps, input.clone()).await {
                        Flow::Done(out) => Arc::new(out),
                        end => return Err(end),
                    },
                    None => input.clone(),
                };
                // The branch's entries came after the switch's input: store it explicitly.
                self.input_is_last_output = false;
                self.record(step, 1, "succeeded", &input, Some(&out), None, started);
                self.outputs.insert(step.id.clone(), (*out).clone());
                Ok(out)
            }
            Compiled::Action(action) => self.run_action(step, action.as_ref(), input).await,
        }
    }

    async fn run_action(
        &mut self,
        step: &CompiledStep,
        action: &dyn flowgate_steps::Step,
        input: Input,
    ) -> Result<Input, Flow> {
        let key = format!("{}:{}", self.id, step.id);
        let mut attempt = self.attempts.get(&step.id).copied().unwrap_or(0);
        loop {
            attempt += 1;
            if action.side_effects() && !self.flush().await {
                return Err(Flow::Interrupted);
            }
            if let Some(limit) = &step.limit {
                self.take_token(limit).await;
            }
            let started = self.inner.clock.now_ms();
            let clock = Instant::now();
            let (result, logs, response) = {
                let mut cx = StepCx {
                    scope: self.scope(),
                    evaluator: &self.inner.evaluator,
                    http: &self.inner.http,
                    idempotency_key: &key,
                    timeout: step.timeout,
                    logs: Vec::new(),
                    response: None,
                    outbound: &self.inner.settings.outbound,
                };
                let result = match tokio::time::timeout(step.timeout, action.run(&input, &mut cx)).await {
                    Ok(r) => r,
                    Err(_) => Err(StepError::retryable(
                        "step_timeout",
                        format!("the step took longer than {:?}", step.timeout),
                    )),
                };
                (result, cx.logs, cx.response)
            };
            let outcome = if result.is_ok() { "succeeded" } else { "failed" };
            metrics::histogram!("flowgate_step_duration_seconds", "step_kind" => step.kind, "outcome" => outcome)
                .record(clock.elapsed().as_secs_f64());
            self.add_logs(&step.id, logs, started);
            // What is journaled is bounded: an output over the limit fails the step (retrying
            // would make the same one).
            let (result, out_json) = match result {
                Ok(out) => {
                    let text = out.to_string();
                    let limit = self.inner.settings.max_step_output;
                    if text.len() > limit {
                        let error = StepError::fatal(
                            "output_too_large",
                            format!("the step's output is {} bytes; the limit is {limit}", text.len()),
                        );
                        (Err(error), None)
                    } else {
                        (Ok(out), Some(text))
                    }
                }
                Err(e) => (Err(e), None),
            };
            match result {
                Ok(out) => {
                    self.record_json(step, attempt, "succeeded", &input, out_json, None, started);
                    if let Some(r) = response {
                        // Stored redacted like everything recorded (the API and the status URL
                        // read it); a caller on another node gets it restored (`stored_outcome`).
                        let text = serde_json::to_string(&r).ok().map(|t| self.redact(t));
                        if let Some(last) = self.pending.steps.last_mut() {
                            last.response.clone_from(&text);
                        }
                        self.inner.waiters.answer(&self.id, SyncOutcome::Responded(r.clone()));
                        self.response = Some(r);
                        if self.claimed
                            && let Some(text) = text
                        {
                            // A caller on another node may wait: store the answer now and say so.
                            self.pending.responses.push(Responded { id: self.id.clone(), response: text });
                            self.pending.events.push(StoreEvent::Responded { id: self.id.clone() });
                            if !self.flush().await {
                                return Err(Flow::Interrupted);
                            }
                        }
                    }
                    return Ok(self.output(step, out));
                }
                Err(error) => {
                    tracing::debug!(step_id = %step.id, attempt, error_code = %error.code, error = %self.flow.redactor.redact_text(&error.message), "Step attempt failed.");
                    if let (Some(limit), Some(after)) = (&step.limit, error.retry_after) {
                        // The target asked to slow down: the whole limit waits, not just this request.
                        self.pause_limit(limit, after).await;
                    }
                    if error.retryable && attempt < step.retry.attempts {
                        self.record(step, attempt, "failed", &input, None, Some(&error), started);
                        let delay = backoff::delay(&step.retry, attempt, error.retry_after);
                        if delay <= self.inner.settings.inline_backoff_max {
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        // Back when the flow's timeout ends at the latest, to fail then.
                        let run_after = self.inner.clock.now_ms() + delay.as_millis() as i64;
                        let run_after = self.deadline().map_or(run_after, |d| run_after.min(d));
                        return Err(Flow::Parked { run_after });
                    }
                    return self.fail(step, attempt, &input, error, started);
                }
            }
        }
    }

    /// A step failed for good: continue with `{error}` or end the execution.
    fn fail(
        &mut self,
        step: &CompiledStep,
        attempt: u32,
        input: &Value,
        error: StepError,
        started: i64,
    ) -> Result<Input, Flow> {
        self.inner.emit(crate::logs::Emit {
            flow: &self.flow,
            execution: &self.id,
            step: Some(&step.id),
            event: "step.failed",
            level: if step.on_error == OnError::Continue {
                flowgate_sinks::Level::Warn
            } else {
                flowgate_sinks::Level::Error
            },
            message: format!("step {} failed: {}", step.id, error.message),
            duration_ms: Some((self.inner.clock.now_ms() - started).max(0) as u64),
            fields: crate::logs::error_fields(&error.code, Some(attempt)),
        });
        if step.on_error == OnError::Continue {
            let out = error.to_output();
            self.record(step, attempt, "continued", input, Some(&out), Some(&error), started);
            return Ok(self.output(step, out));
        }
        self.record(step, attempt, "failed", input, None, Some(&error), started);
        Err(Flow::Failed { step: step.id.clone(), error })
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        step: &CompiledStep,
        attempt: u32,
        status: &str,
        input: &Value,
        output: Option<&Value>,
        error: Option<&StepError>,
        started: i64,
    ) {
        let output_json = output.map(Value::to_string);
        self.record_json(step, attempt, status, input, output_json, error, started);
    }

    /// Like [`Execution::record`], with the output already written as JSON.
    #[allow(clippy::too_many_arguments)]
    fn record_json(
        &mut self,
        step: &CompiledStep,
        attempt: u32,
        status: &str,
        input: &Value,
        output_json: Option<String>,
        error: Option<&StepError>,
        started: i64,
    ) {
        // Most inputs are the previous step's output: not stored twice (about half the journal).
        let input_json = (!self.input_is_last_output).then(|| self.redact(input.to_string()));
        let output_json = output_json.map(|o| self.redact(o));
        if COMPLETED.contains(&status) {
            // The next step's input is this step's output.
            self.input_is_last_output = true;
        }
        self.seq += 1;
        self.pending.steps.push(StepRecord {
            execution_id: self.id.clone(),
            step_id: step.id.clone(),
            round: self.round,
            attempt: i64::from(attempt),
            seq: self.seq,
            status: status.to_owned(),
            input: input_json,
            output: output_json,
            error: error.map(|e| self.redact(serde_json::to_string(e).unwrap_or_default())),
            response: None,
            started_at: started,
            finished_at: self.inner.clock.now_ms(),
        });
        metrics::counter!("flowgate_step_attempts_total", "step_kind" => step.kind, "outcome" => status.to_owned())
            .increment(1);
    }

    fn add_logs(&mut self, step_id: &str, logs: Vec<LogEntry>, at: i64) {
        for l in logs {
            let message = match self.flow.redactor.redact_text(&l.message) {
                std::borrow::Cow::Borrowed(_) => l.message,
                std::borrow::Cow::Owned(m) => m,
            };
            self.inner.emit(crate::logs::Emit {
                flow: &self.flow,
                execution: &self.id,
                step: Some(step_id),
                event: "log",
                level: crate::logs::level(&l.level),
                message: message.clone(),
                duration_ms: None,
                fields: serde_json::Map::new(),
            });
            self.pending.logs.push(LogRecord {
                execution_id: self.id.clone(),
                at,
                level: l.level,
                step_id: Some(step_id.to_owned()),
                message,
            });
        }
    }

    /// Waits for a token of the integration's rate limit `name` (shared by every node).
    async fn take_token(&self, name: &str) {
        let Some(spec) = self.flow.limits.get(name).copied() else { return };
        let f = &self.flow;
        loop {
            let now = self.inner.clock.now_ms();
            match self.inner.store.take_token(&f.tenant, &f.integration, name, spec.per_second, spec.burst, now).await {
                Ok(None) => return,
                Ok(Some(wait_ms)) => tokio::time::sleep(Duration::from_millis(wait_ms.clamp(1, 1000) as u64)).await,
                Err(e) => {
                    tracing::warn!(error = %e, limit = name, "Rate limit unavailable; waiting.");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Pauses the integration's rate limit `name` for `after` (a `Retry-After`).
    async fn pause_limit(&self, name: &str, after: Duration) {
        let f = &self.flow;
        let until = self.inner.clock.now_ms() + after.min(crate::backoff::MAX_RETRY_AFTER).as_millis() as i64;
        if let Err(e) = self.inner.store.pause_limit(&f.tenant, &f.integration, name, until).await {
            tracing::warn!(error = %e, limit = name, "Could not pause the rate limit.");
        }
    }

    /// Makes pending journal entries durable; false when the store failed.
    async fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let batch = std::mem::take(&mut self.pending);
        match self.inner.committer.commit(batch).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "Cannot make the journal durable; the execution will be resumed later.");
                self.lost_store = true;
                false
            }
        }
    }

    /// Ends the execution (or parks it); true when the store failed and it was left to be
    /// handed back.
    async fn finish(mut self, outcome: Option<Flow>, started: Instant) -> bool {
        let now = self.inner.clock.now_ms();
        let owner = self.inner.settings.node_id.clone();
        let (status, output, error, failed_step) = match outcome {
            None => (
                Status::Cancelled,
                None,
                Some(json!({"code": "cancelled", "message": "the execution was cancelled"})),
                None,
            ),
            Some(Flow::Done(out)) => (Status::Succeeded, Some(out), None, None),
            Some(Flow::Filtered(out)) => (Status::Filtered, Some(out), None, None),
            Some(Flow::Failed { step, error }) => {
                let mut e = serde_json::to_value(&error).unwrap_or(Value::Null);
                if !step.is_empty() {
                    e["step"] = json!(step);
                }
                (Status::Failed, None, Some(e), (!step.is_empty()).then_some(step))
            }
            Some(Flow::Parked { run_after }) => {
                self.pending.parks.push(Park { id: self.id.clone(), owner, run_after });
                if self.flush().await {
                    self.inner.wake_at(run_after);
                }
                return self.lost_store;
            }
            Some(Flow::Interrupted) => {
                // Keep what can be kept; the execution is handed back and resumed.
                self.flush().await;
                return self.lost_store;
            }
            Some(Flow::Waiting) => return false,
        };
        let policy = &self.flow.policy;
        let blocks =
            status == Status::Failed && policy.order.as_ref().is_some_and(|o| o.on_exhausted == OnExhausted::Block);
        let scrub = match (status, policy.diagnostics) {
            (Status::Succeeded | Status::Filtered, Diagnostics::Errors) => Scrub::Io,
            (Status::Succeeded | Status::Filtered, Diagnostics::Minimal) => {
                // Nothing of it is kept: do not write what is still pending.
                self.pending.steps.clear();
                self.pending.logs.clear();
                Scrub::All
            }
            _ => Scrub::Keep,
        };
        self.pending.finishes.push(Finish {
            id: self.id.clone(),
            owner,
            status,
            output: output.as_ref().map(|o| self.redact(o.to_string())),
            response: self.response.as_ref().map(|r| self.redact(serde_json::to_string(r).unwrap_or_default())),
            error: error.as_ref().map(|e| self.redact(e.to_string())),
            failed_step,
            finished_at: now,
            holds_order: blocks,
            scrub,
        });
        if self.claimed {
            self.pending.events.push(StoreEvent::Finished { id: self.id.clone() });
        }
        let gated = policy.gated();
        self.notify(status, error.as_ref(), failed_step_of(&error)).await;
        if gated {
            // The next of its order key, or a slot under its cap, is free: claim again.
            self.pending.events.push(StoreEvent::Work);
            self.inner.backlog.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if !self.flush().await {
            return true;
        }
        metrics::counter!("flowgate_executions_total", "flow" => self.flow.slug.clone(), "status" => status.as_str())
            .increment(1);
        let mut fields = serde_json::Map::new();
        if let Some(e) = &error {
            fields.insert("errorCode".into(), e["code"].clone());
            fields.insert("failedStep".into(), e["step"].clone());
        }
        self.inner.emit(crate::logs::Emit {
            flow: &self.flow,
            execution: &self.id,
            step: None,
            event: match status {
                Status::Succeeded => "execution.succeeded",
                Status::Failed => "execution.failed",
                Status::Filtered => "execution.filtered",
                _ => "execution.cancelled",
            },
            level: if status == Status::Failed { flowgate_sinks::Level::Error } else { flowgate_sinks::Level::Info },
            message: match &error {
                Some(e) => format!("{} {}: {}", self.flow.slug, status.as_str(), e["message"].as_str().unwrap_or("")),
                None => format!("{} {}", self.flow.slug, status.as_str()),
            },
            duration_ms: Some(started.elapsed().as_millis() as u64),
            fields,
        });
        metrics::histogram!("flowgate_execution_duration_seconds").record(started.elapsed().as_secs_f64());
        let response = self.response.take();
        self.inner.waiters.answer(&self.id, SyncOutcome::Finished { status, output, error, response });
        false
    }
}
