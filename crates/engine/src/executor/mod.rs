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
use flowgate_steps::{CompiledStep, LogEntry, Outcome, Response, StepCx, StepError};
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
    /// It never started before: no journal to read.
    pub fresh: bool,
    /// The store says it was cancelled (while it ran on a node that died).
    pub cancel_requested: bool,
    /// Its worker slot (none for a dry run, which runs under the dry runs' own share).
    pub permit: Option<OwnedSemaphorePermit>,
    /// Outputs of steps that are not run (flow tests).
    pub mocks: Option<Arc<crate::answers::Answers>>,
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
    /// The W3C `traceparent` of the span that accepted it: its runs join that trace.
    pub traceparent: Option<String>,
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

/// One line of steps being run: the flow's own, or (forked from it) a loop's item or a
/// `parallel` branch, which share the execution and its journal but keep their own `$steps`
/// and pending entries (`nested.rs`).
struct Execution {
    /// Where these steps sit: empty for the flow's own, `each[3].` in a loop's item,
    /// `both[a].` in a branch. Journal entries, idempotency keys and deliveries are keyed by
    /// the prefix and the step's id; `$steps` by the id alone.
    prefix: String,
    /// Outputs of the steps around an item or branch (outermost first), seen by `$steps`
    /// after `outputs`.
    outer: Vec<Arc<Map<String, Value>>>,
    /// `$item` in a loop's item.
    item: Option<Arc<Value>>,
    /// Where its spans go in the execution's trace: the run's `execution` span (the stored
    /// ingress span when the node does not export).
    trace: Option<crate::traces::Parent>,
    /// The run's `execution` span (the flow's line only).
    span: Option<crate::traces::Span>,
    /// Lines (loop items, branches) of this execution in flight, all loops together: nested
    /// loops' concurrencies multiply, so this bounds them (see `nested::MAX_LINES`).
    lines: Arc<std::sync::atomic::AtomicUsize>,
    /// Runs beside siblings (a branch, a loop's item with concurrency): each entry keeps its
    /// input (the previous entry may be a sibling's), and a waited delivery holds the worker
    /// rather than parking the whole execution.
    concurrent: bool,
    /// `delay` steps of this round parked until a time (from the journal on a resume): the
    /// time is fixed by the first attempt.
    waiting: HashMap<String, i64>,
    /// Credentials its steps were given (tokens, keys): redacted from what is recorded, as
    /// the flow's secrets are.
    handed: Arc<crate::connections::Handed>,
    inner: Arc<Inner>,
    id: String,
    flow: Arc<CompiledFlow>,
    trigger: Arc<Value>,
    round: i64,
    execution_var: Value,
    /// `$steps`: outputs so far.
    outputs: Map<String, Value>,
    /// Outputs recorded by earlier runs of this execution, by journal key.
    completed: Arc<HashMap<String, Value>>,
    /// Loop items a `filter` stopped in earlier runs (they add nothing to the loop's output).
    skipped_items: Arc<std::collections::HashSet<String>>,
    /// Attempts already made in this round, by journal key.
    attempts: Arc<HashMap<String, u32>>,
    /// Journal order, shared by an execution's lines.
    seq: Arc<std::sync::atomic::AtomicI64>,
    /// Journal entries and logs not yet handed to the committer.
    pending: WriteBatch,
    /// Entries of the lines around this one (finished items and branches) that are not
    /// durable yet: made durable with this line's own before a side effect, as the flow's
    /// earlier entries are before any step's.
    around: Vec<Arc<std::sync::Mutex<WriteBatch>>>,
    response: Option<Response>,
    /// The JSON text of the current input, when known (reused as the next entry's input).
    /// Claimed from the queue rather than started where its event arrived: whoever waits for
    /// it may be on another node, so its answer and its end are stored and announced.
    claimed: bool,
    /// The current input equals the output of the last completed journal entry (or the
    /// trigger, before any): its entry then stores no input (see `StepRecord::input`).
    input_is_last_output: bool,
    /// Outputs of steps that are not run (flow tests).
    mocks: Option<Arc<crate::answers::Answers>>,
    /// How deep in a chain of `call` steps this execution is (0: not called).
    depth: u64,
    /// The execution at the top of this one's chain of calls (itself when no call started it).
    call_root: String,
    /// When this round began (epoch ms): the event for the first round, the first journal
    /// entry of a later one (a manual retry); the flow's timeout counts from here.
    round_began: i64,
    /// A write to the store failed: the execution stops here and is handed back.
    lost_store: bool,
    /// The worker slot it runs in, given back when it ends (held by the flow's line).
    _permit: Option<OwnedSemaphorePermit>,
    /// A dry run (issue 20): nothing is stored, sent or announced; steps that are not pure
    /// are answered from the recording (`mocks`) or reported unanswered (`dry.rs`).
    dry: Option<Arc<dry::DryLine>>,
}

pub(crate) async fn run(inner: Arc<Inner>, job: Job) {
    let span =
        tracing::debug_span!("execution", tenant = %job.flow.tenant, flow = %job.flow.slug, execution_id = %job.id);
    let id = job.id.clone();
    let cancel = CancellationToken::new();
    // A cancel that came before this (the execution was committed first), by the API or in
    // the store while it was queued or ran elsewhere.
    if inner.running.register(&id, job.round, cancel.clone()) || job.cancel_requested {
        cancel.cancel();
    }
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
    inner.running.remove(&id);
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
    let (resumed, fresh) = (job.resumed, job.fresh);
    let trigger_kind = job.trigger_kind.clone();
    let crashes = job.crashes;
    let mut ex = Execution::new(&inner, job);
    // This run's span, under the one that accepted the event (a resume is a run of its own);
    // `finish` says how it ended, and it ends when the run's state is dropped.
    ex.span = inner.settings.traces.start(
        ex.trace,
        "execution",
        opentelemetry::trace::SpanKind::Internal,
        vec![
            opentelemetry::KeyValue::new("flowgate.execution.id", ex.id.clone()),
            opentelemetry::KeyValue::new("flowgate.flow", ex.flow.slug.clone()),
            opentelemetry::KeyValue::new("flowgate.integration", ex.flow.integration.clone()),
            opentelemetry::KeyValue::new("flowgate.tenant", ex.flow.tenant.clone()),
            opentelemetry::KeyValue::new("flowgate.execution.round", ex.round),
            opentelemetry::KeyValue::new("flowgate.execution.resumed", resumed),
        ],
    );
    if let Some(s) = &ex.span {
        ex.trace = Some(s.parent());
    }
    // A claimed execution that ran before goes on from its journal.
    if resumed
        && !fresh
        && let Err(e) = ex.load_journal().await
    {
        tracing::error!(error = %e, "Cannot load the journal; the execution will be resumed later.");
        return true;
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

mod attempts;
pub(crate) mod dry;
mod journal;
mod nested;
mod outbound;

impl Execution {
    /// The state of a job about to run (its worker permit is held by the job's task).
    fn new(inner: &Arc<Inner>, job: Job) -> Execution {
        let depth = job.trigger["call"]["depth"].as_u64().unwrap_or(0);
        let call_root = job.trigger["call"]["root"].as_str().unwrap_or(&job.id).to_owned();
        Execution {
            prefix: String::new(),
            outer: Vec::new(),
            item: None,
            trace: job.traceparent.as_deref().and_then(crate::traces::Parent::parse),
            span: None,
            lines: Default::default(),
            concurrent: false,
            waiting: HashMap::new(),
            handed: Default::default(),
            depth,
            call_root,
            execution_var: json!({
                "id": job.id,
                "attempt": job.round,
                "trigger": job.trigger_kind,
                "createdAt": crate::clock::rfc3339(job.created_at),
                "resumeUrl": crate::waits::resume_url(&inner.settings, &job.id),
            }),
            inner: inner.clone(),
            id: job.id,
            flow: job.flow,
            trigger: job.trigger,
            round: job.round,
            outputs: Map::new(),
            completed: Default::default(),
            skipped_items: Default::default(),
            attempts: Default::default(),
            seq: Default::default(),
            pending: WriteBatch::default(),
            around: Vec::new(),
            response: None,
            input_is_last_output: true,
            claimed: job.resumed,
            round_began: if job.round <= 1 { job.created_at } else { inner.clock.now_ms() },
            mocks: job.mocks,
            lost_store: false,
            _permit: job.permit,
            dry: None,
        }
    }

    /// Records a step's output for `$steps` and passes it on as the next step's input.
    fn output(&mut self, step: &CompiledStep, out: Value) -> Input {
        self.outputs.insert(step.id.clone(), out.clone());
        Arc::new(out)
    }

    /// The step's journal key: its id, after the prefix of the item or branch it runs in.
    fn key<'k>(&self, step: &'k CompiledStep) -> std::borrow::Cow<'k, str> {
        if self.prefix.is_empty() {
            std::borrow::Cow::Borrowed(&step.id)
        } else {
            std::borrow::Cow::Owned(format!("{}{}", self.prefix, step.id))
        }
    }

    /// The first step (depth first, branches included) the journal does not show completed:
    /// where a resumed run goes on.
    fn next_step(&self, steps: &[CompiledStep]) -> Option<String> {
        steps.iter().find(|s| !self.completed.contains_key(&s.id)).map(|s| s.id.clone())
    }

    /// JSON text as it may be recorded: secret values replaced by markers.
    fn redact(&self, json: String) -> String {
        let json = match self.flow.redactor.redact_json_text(&json) {
            std::borrow::Cow::Borrowed(_) => json,
            std::borrow::Cow::Owned(r) => r,
        };
        match self.handed_redactor() {
            Some(tokens) => match tokens.redact_json_text(&json) {
                std::borrow::Cow::Borrowed(_) => json,
                std::borrow::Cow::Owned(r) => r,
            },
            None => json,
        }
    }

    /// Text (a log line) without the credentials handed to steps.
    fn redact_text(&self, text: String) -> String {
        match self.handed_redactor() {
            Some(tokens) => match tokens.redact_text(&text) {
                std::borrow::Cow::Borrowed(_) => text,
                std::borrow::Cow::Owned(r) => r,
            },
            None => text,
        }
    }

    /// The credentials handed to this execution's steps, as a redactor.
    fn handed_redactor(&self) -> Option<flowgate_secrets::Redactor> {
        self.handed.redactor()
    }

    /// When the flow's timeout ends this execution (epoch ms), if it has one.
    fn deadline(&self) -> Option<i64> {
        self.flow.timeout.map(|t| self.round_began.saturating_add(t.as_millis() as i64))
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            trigger: &self.trigger,
            steps: &self.outputs,
            outer: &self.outer,
            config: &self.flow.config,
            flow: &self.flow.flow_var,
            execution: &self.execution_var,
            item: self.item.as_deref(),
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
        let hooks = (!self.completed.contains_key(&*self.key(step)) && self.dry.is_none())
            .then(|| step.hooks.clone())
            .flatten();
        if let Some(spec) = hooks.as_ref().and_then(|h| h.on_start.as_ref()) {
            self.hook(step, spec, "start", &input).await;
        }
        let out = self.run_step_body(step, input).await?;
        if let Some(spec) = hooks.as_ref().and_then(|h| h.on_complete.as_ref()) {
            self.hook(step, spec, "complete", &out).await;
        }
        Ok(out)
    }

    /// Runs one step; `Ok` carries its output, `Err` how the execution ends here.
    async fn run_step_body(&mut self, step: &CompiledStep, input: Input) -> Result<Input, Flow> {
        // A loop or `parallel` step puts its output together again from its items' entries.
        if let Some(out) = self.completed.get(&*self.key(step)).filter(|_| !step.body.rebuilds_output()) {
            let out = out.clone();
            self.input_is_last_output = true;
            return Ok(self.output(step, out));
        }
        let started = self.inner.clock.now_ms();
        if let Some(when) = &step.when {
            match self.evaluator().eval(when, &input, &self.scope()).await {
                Ok(v) if truthy(&v) => {}
                Ok(_) => {
                    self.record(step, 1, "skipped", &input, Some(&input), None, started);
                    self.outputs.insert(step.id.clone(), (*input).clone());
                    return Ok(input);
                }
                Err(e) => return self.fail(step, 1, &input, StepError::from(e), started),
            }
        }
        // A dry run runs pure steps for real, whatever the recording holds at their key (a step
        // that was an `http` step in the recorded version may be a `transform` now).
        let answerable = self.dry.is_none() || !crate::answers::is_pure(step.kind);
        if let Some(answer) =
            self.mocks.as_ref().filter(|_| answerable).and_then(|m| m.get(&self.key(step), &step.id)).cloned()
        {
            // A test's mock (or a dry run's recording) stands in for the step: no attempt, no
            // side effect.
            return match answer {
                crate::answers::Answer::Output(out) => {
                    self.record(step, 1, "succeeded", &input, Some(&out), None, started);
                    Ok(self.output(step, out))
                }
                crate::answers::Answer::Error(error) => self.fail(step, 1, &input, error, started),
            };
        }
        if answerable && let Some(dry) = &self.dry {
            // New in this version (or not reached when recorded): its effect is not performed.
            return Err(dry.unanswered(self.key(step).into_owned()));
        }
        self.run_action(step, input).await
    }
}
