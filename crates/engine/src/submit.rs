//! Accepting an event: [`Engine::submit`] turns a trigger event into a durable execution
//! (its order and dedup keys evaluated, its memory reserved, committed with the group
//! commit) and starts it or queues it; `submit_many` does the same for a batch (polls,
//! schedules); and the waits of callers that want the answer.

use crate::*;

/// Why an event could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The node is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Too much is waiting (events being committed, or the queue's backlog); try again later.
    #[error("{0}")]
    Busy(String),
    /// The order key or delivery identity expression failed on this event.
    #[error("{0}")]
    Expression(String),
    /// The store could not commit it.
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// An accepted event.
pub struct Submitted {
    /// The execution's id (the first execution's, for a repeated delivery).
    pub id: String,
    /// The answer, when the caller asked to wait (not for a repeated delivery: see
    /// [`Engine::outcome_of`]).
    pub waiter: Option<oneshot::Receiver<SyncOutcome>>,
    /// The delivery was seen before: `id` is the first execution, nothing new was started.
    pub duplicate: bool,
}

/// One event of a schedule or poll, for [`Engine::submit_many`].
pub(crate) struct TriggerEvent {
    /// `$trigger`.
    pub trigger: Value,
    /// Its identity and how long it is remembered (a second guard against firing twice).
    pub identity: Option<(String, Duration)>,
}

/// A new trigger event for a flow.
pub struct Submission {
    /// The flow to run.
    pub flow: Arc<CompiledFlow>,
    /// The trigger event (`$trigger`).
    pub trigger: Value,
    /// `webhook`, `manual`, `test` or `replay`.
    pub kind: &'static str,
    /// Label of the API key the caller used.
    pub auth_label: Option<String>,
    /// The execution this replays.
    pub replay_of: Option<String>,
    /// What the submitter waits for.
    pub wait: Wait,
    /// The less common parts.
    pub options: SubmitOptions,
}

/// The less common parts of a [`Submission`].
#[derive(Default, Clone)]
pub struct SubmitOptions {
    /// The execution whose `call` step submits this one.
    pub parent: Option<String>,
    /// The event's identity and window, in place of the flow's (a `call` step's child).
    pub identity: Option<(String, Duration)>,
    /// Step outputs used instead of running those steps (flow tests). Such executions run on
    /// this node at once, whatever the flow's ordering or cap.
    pub mocks: Option<Arc<crate::answers::Answers>>,
    /// The event's share of the memory budget, when the caller took it already (ingress,
    /// while the body arrived); else `submit` takes it.
    pub reservation: Option<budget::Reservation>,
    /// The whole event as JSON text, when the caller has it (ingress splices a JSON body
    /// into it as received, never building its tree): then `trigger` holds the event without
    /// its body, and the tree is built only where an expression needs it (a `dedupKey` or
    /// `orderBy` here, the steps in the worker).
    pub event_json: Option<String>,
    /// The caller's W3C `traceparent` (a webhook's header): the execution's trace continues it.
    pub traceparent: Option<String>,
}

impl Engine {
    /// Commits a trigger event as a new execution and starts it. Returns once the event is
    /// durable.
    ///
    /// # Errors
    /// When shutting down or when the commit fails; nothing was accepted then.
    pub async fn submit(&self, mut s: Submission) -> Result<Submitted, SubmitError> {
        let inner = &self.inner;
        if inner.stopping.load(Ordering::Relaxed) {
            return Err(SubmitError::ShuttingDown);
        }
        // Backpressure: refuse rather than queue up memory when commits or the backlog lag.
        let in_flight = inner.submitting.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&inner.submitting);
        if in_flight >= inner.settings.max_in_flight {
            return Err(SubmitError::Busy("too many events are waiting to be stored".into()));
        }
        let backlog = inner.backlog_depth.load(Ordering::Relaxed);
        if backlog >= inner.settings.max_backlog {
            return Err(SubmitError::Busy(format!("the queue holds {backlog} executions; try again later")));
        }
        let now = inner.clock.now_ms();
        let policy = &s.flow.policy;
        let event_json = s.options.event_json.take();
        // The event's tree, for key expressions: built from the text only when one needs it.
        let needs_tree = matches!(&policy.order, Some(Order { by: Some(_), .. }))
            || matches!(&policy.dedup, Some(d) if d.key.is_some());
        if let (true, Some(text)) = (needs_tree, &event_json) {
            s.trigger = serde_json::from_str(text)
                .map_err(|e| SubmitError::Expression(format!("the event is not valid JSON: {e}")))?;
        }
        let order_key = match &policy.order {
            None => None,
            Some(Order { by: None, .. }) => Some(String::new()),
            Some(Order { by: Some(expr), .. }) => Some(self.key_of(expr, &s.flow, &s.trigger).await?),
        };
        let dedup_key = match (&policy.dedup, s.kind) {
            _ if s.options.identity.is_some() => s.options.identity.clone(),
            (Some(d), "webhook" | "email" | "amqp" | "nats" | "mqtt") => match &d.key {
                Some(expr) => {
                    Some(self.key_of(expr, &s.flow, &s.trigger).await?).filter(|k| !k.is_empty() && k != "null")
                }
                None => default_delivery_id(&s.trigger["headers"]),
            }
            .map(|key| (key, d.window)),
            _ => None,
        };
        if let Some((key, _)) = &dedup_key {
            // The common repeat (a provider's retry long after the first) costs one read.
            let f = &s.flow;
            if let Some(first) = inner
                .store
                .dedup_lookup(f.key(), key, now)
                .await
                .map_err(|e| SubmitError::Commit(CommitError(e.to_string().into())))?
            {
                metrics::counter!("flowgate_events_deduplicated_total").increment(1);
                return Ok(Submitted { id: first, waiter: None, duplicate: true });
            }
        }
        let trigger_text = match &event_json {
            Some(_) if needs_tree => s.trigger.to_string(),
            Some(text) => text.clone(),
            None => s.trigger.to_string(),
        };
        let reservation = match s.options.reservation.clone() {
            Some(r) => r,
            None => inner
                .memory
                .reserve(flowgate_expr::value::json_tree_bytes(trigger_text.as_bytes()), BUDGET_WAIT)
                .await
                .ok_or_else(|| {
                    metrics::counter!("flowgate_memory_budget_refusals_total").increment(1);
                    SubmitError::Busy("too many large events are being processed; try again shortly".into())
                })?,
        };
        let id = uuid::Uuid::now_v7().to_string();
        // The event's acceptance starts the execution's trace (the caller's, when it sent one).
        let caller = s.options.traceparent.as_deref().and_then(crate::traces::Parent::parse);
        let mut ingress = inner.settings.traces.start(
            caller,
            "ingress",
            opentelemetry::trace::SpanKind::Server,
            vec![
                opentelemetry::KeyValue::new("flowgate.execution.id", id.clone()),
                opentelemetry::KeyValue::new("flowgate.flow", s.flow.slug.clone()),
                opentelemetry::KeyValue::new("flowgate.integration", s.flow.integration.clone()),
                opentelemetry::KeyValue::new("flowgate.tenant", s.flow.tenant.clone()),
                opentelemetry::KeyValue::new("flowgate.trigger", s.kind),
            ],
        );
        let trace = match &ingress {
            Some(span) => span.parent(),
            None => caller.map_or_else(crate::traces::Parent::random, |c| crate::traces::Parent {
                span_id: rand::random::<u64>().max(1),
                ..c
            }),
        };
        let traceparent = trace.header();
        // Gated flows (ordered, capped) always go through the queue, where claims enforce it.
        let flow_key = flowgate_store::ShareRoom::flow_key(s.flow.key());
        let permit = if s.options.mocks.is_some() {
            // A test run carries its mocks in memory: it must run here.
            let permit = inner.permits.clone().acquire_owned().await.ok();
            permit.map(|p| (p, inner.shares.take(&s.flow.tenant, flow_key)))
        } else if policy.gated() {
            None
        } else {
            // A free worker, and room in the tenant's and the flow's shares; else the queue.
            inner
                .permits
                .clone()
                .try_acquire_owned()
                .ok()
                .and_then(|p| inner.shares.try_take(&s.flow.tenant, flow_key).map(|share| (p, share)))
        };
        let leased = permit.is_some();
        // A worker here parses the text itself (after the commit, off the caller's path).
        let stored_trigger = (leased && event_json.is_some() && !needs_tree).then(|| trigger_text.clone());
        let new = NewExecution {
            id: id.clone(),
            tenant_id: s.flow.tenant.clone(),
            integration: s.flow.integration.clone(),
            flow: s.flow.slug.clone(),
            version_id: s.flow.version_id,
            status: if leased { Status::Running } else { Status::Queued },
            lease_owner: leased.then(|| inner.settings.node_id.clone()),
            lease_until: leased.then(|| now + inner.settings.lease.as_millis() as i64),
            trigger_kind: s.kind,
            trigger: trigger_text,
            auth_label: s.auth_label,
            run_after: now,
            created_at: now,
            replay_of: s.replay_of,
            order_key,
            max_running: policy.concurrency.map(i64::from),
            dedup: dedup_key.map(|(key, window)| Dedup { key, expires_at: now + window.as_millis() as i64 }),
            parent_id: s.options.parent.clone(),
            traceparent: Some(traceparent.clone()),
        };
        let waiter = (s.wait != Wait::No).then(|| inner.waiters.register(&id, s.wait));
        let mut batch = WriteBatch { inserts: vec![new], ..WriteBatch::default() };
        if !leased {
            // Any node with a free worker may take it.
            batch.events.push(StoreEvent::Work);
        }
        // Starting the execution is tied to the commit, not to this future: a caller that
        // hangs up after the event is durable must not leave it leased and never run.
        let start: committer::AfterCommit = {
            let (inner, id, flow, trigger) = (inner.clone(), id.clone(), s.flow, s.trigger);
            let (kind, mocks) = (s.kind, s.options.mocks);
            Box::new(move |outcome: &flowgate_store::CommitOutcome| {
                if outcome.duplicates.iter().any(|(new, _)| *new == id) {
                    return; // a repeated delivery: nothing was inserted (the permit is dropped)
                }
                match permit {
                    Some((permit, share)) => {
                        let share = share.on_room(inner.room_waker());
                        let job = executor::Job {
                            id,
                            flow,
                            trigger: Arc::new(trigger),
                            trigger_kind: kind.to_owned(),
                            round: 1,
                            created_at: now,
                            resumed: false,
                            fresh: true,
                            cancel_requested: false,
                            permit: Some(permit),
                            mocks,
                            crashes: 0,
                            lane: None,
                            reservation: Some(reservation),
                            stored_trigger,
                            share: Some(share),
                            traceparent: Some(traceparent),
                        };
                        inner.tracker.spawn(executor::run(inner.clone(), job));
                    }
                    None => {
                        inner.backlog.store(true, Ordering::Relaxed);
                        inner.wake.notify_one();
                    }
                }
            })
        };
        let outcome = inner.committer.commit_then(batch, Some(start)).await;
        if let Some(span) = ingress.as_mut()
            && let Err(e) = &outcome
        {
            span.fail(e.to_string());
        }
        if let Some(span) = ingress {
            span.end();
        }
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                drop(waiter);
                inner.waiters.remove(&id);
                return Err(e.into());
            }
        };
        if let Some((_, first)) = outcome.duplicates.iter().find(|(new, _)| *new == id) {
            drop(waiter);
            inner.waiters.remove(&id);
            metrics::counter!("flowgate_events_deduplicated_total").increment(1);
            return Ok(Submitted { id: first.clone(), waiter: None, duplicate: true });
        }
        accepted_counter(s.kind).increment(1);
        Ok(Submitted { id, waiter, duplicate: false })
    }

    /// Commits the events a schedule or poll produced as new executions, with the trigger's
    /// new state, in one transaction: either all of it is durable or none. Events whose
    /// identity was seen within its window are not inserted. Every execution is queued for any
    /// worker. Returns the ids inserted.
    ///
    /// # Errors
    /// When shutting down, an order key expression fails, or the commit fails (nothing was
    /// written then).
    pub(crate) async fn submit_many(
        &self,
        flow: &Arc<CompiledFlow>,
        kind: &'static str,
        events: Vec<TriggerEvent>,
        state: Option<flowgate_store::TriggerState>,
    ) -> Result<Vec<String>, SubmitError> {
        let inner = &self.inner;
        if inner.stopping.load(Ordering::Relaxed) {
            return Err(SubmitError::ShuttingDown);
        }
        let now = inner.clock.now_ms();
        let policy = &flow.policy;
        let mut batch = WriteBatch::default();
        for e in events {
            let order_key = match &policy.order {
                None => None,
                Some(Order { by: None, .. }) => Some(String::new()),
                Some(Order { by: Some(expr), .. }) => Some(self.key_of(expr, flow, &e.trigger).await?),
            };
            batch.inserts.push(NewExecution {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: flow.tenant.clone(),
                integration: flow.integration.clone(),
                flow: flow.slug.clone(),
                version_id: flow.version_id,
                status: Status::Queued,
                lease_owner: None,
                lease_until: None,
                trigger_kind: kind,
                trigger: e.trigger.to_string(),
                auth_label: None,
                run_after: now,
                created_at: now,
                replay_of: None,
                order_key,
                max_running: policy.concurrency.map(i64::from),
                dedup: e.identity.map(|(key, window)| Dedup { key, expires_at: now + window.as_millis() as i64 }),
                parent_id: None,
                traceparent: Some(crate::traces::Parent::random().header()),
            });
        }
        let ids: Vec<String> = batch.inserts.iter().map(|e| e.id.clone()).collect();
        if !ids.is_empty() {
            batch.events.push(StoreEvent::Work);
        }
        batch.states.extend(state);
        if batch.is_empty() {
            return Ok(ids);
        }
        let outcome = inner.committer.commit_then(batch, None).await?;
        let inserted: Vec<String> =
            ids.into_iter().filter(|id| !outcome.duplicates.iter().any(|(new, _)| new == id)).collect();
        if !inserted.is_empty() {
            accepted_counter(kind).increment(inserted.len() as u64);
            inner.backlog.store(true, Ordering::Relaxed);
            inner.wake.notify_one();
        }
        Ok(inserted)
    }

    /// Evaluates an order key or delivery identity expression on an event, as text.
    async fn key_of(
        &self,
        expr: &Arc<flowgate_expr::Template>,
        flow: &CompiledFlow,
        trigger: &Value,
    ) -> Result<String, SubmitError> {
        let empty = serde_json::Map::new();
        let scope = flowgate_expr::Scope {
            trigger,
            steps: &empty,
            outer: &[],
            config: &flow.config,
            flow: &flow.flow_var,
            execution: &Value::Null,
            item: None,
            state: None,
        };
        match self.inner.evaluator.eval(expr, trigger, &scope).await {
            Ok(v) => Ok(flowgate_expr::to_text(&v)),
            Err(e) => Err(SubmitError::Expression(format!(
                "the flow's orderBy or dedupKey expression failed on this event: {e}"
            ))),
        }
    }

    /// The answer a caller of a repeated delivery gets: the first execution's response or
    /// result once there is one, polling the store up to `timeout` (the first may run on
    /// another node); `None` when it is still running.
    pub async fn outcome_of(&self, id: &str, timeout: Duration) -> Option<SyncOutcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(row)) = self.inner.store.execution(None, id).await
                && let Some(outcome) = self.inner.stored_outcome(&row).await
            {
                return Some(outcome);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Like [`Engine::outcome_of`], but only the end counts (not a `respond` answer).
    pub(crate) async fn outcome_of_end(&self, id: &str, timeout: Duration) -> Option<SyncOutcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.outcome_of(id, deadline.saturating_duration_since(tokio::time::Instant::now())).await {
                Some(o @ SyncOutcome::Finished { .. }) => return Some(o),
                Some(SyncOutcome::Responded(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return None,
            }
        }
    }

    /// Gives up waiting for an execution's answer.
    pub fn forget_waiter(&self, id: &str) {
        self.inner.waiters.remove(id);
    }
}

/// A webhook delivery's identity when the flow names none: its `Idempotency-Key`, else — for a
/// Standard Webhooks delivery (signed, `webhook-signature`) — its `webhook-id`, which the
/// sender keeps across its retries.
fn default_delivery_id(headers: &Value) -> Option<String> {
    let header = |name: &str| headers[name].as_str().filter(|k| !k.is_empty());
    header("idempotency-key")
        .map(str::to_owned)
        .or_else(|| header("webhook-signature").and(header("webhook-id")).map(|id| format!("webhook-id:{id}")))
}

/// The accepted-events counter of a trigger kind, looked up once per kind (labelled lookups
/// on every event cost hashing on the ingress hot path).
fn accepted_counter(kind: &'static str) -> metrics::Counter {
    static COUNTERS: std::sync::OnceLock<Mutex<HashMap<&'static str, metrics::Counter>>> = std::sync::OnceLock::new();
    let mut map = COUNTERS.get_or_init(Default::default).lock().expect("counters lock");
    map.entry(kind).or_insert_with(|| metrics::counter!("flowgate_events_accepted_total", "trigger" => kind)).clone()
}

/// How long a submission waits for room in the memory budget before it is refused.
pub(crate) const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// Counts a submission in flight for as long as it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
