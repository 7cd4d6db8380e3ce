//! The execution's journal: reading it back on resume, recording attempts and log lines
//! (pure steps ride along with the next durable write), flushing before side effects, and
//! the end of the execution committed with its last entries.

use super::*;

impl Execution {
    pub(super) async fn load_journal(&mut self) -> Result<(), flowgate_store::Error> {
        let journal = self.inner.store.journal(&self.id).await?;
        // Lines of one execution commit on their own: the order goes on after the last.
        let last = journal.iter().map(|r| r.seq).max().unwrap_or(0);
        self.seq.store(last, std::sync::atomic::Ordering::Relaxed);
        let mut completed = HashMap::new();
        let mut attempts: HashMap<String, u32> = HashMap::new();
        let mut skipped = std::collections::HashSet::new();
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
                if r.status == "skipped" && r.step_id.ends_with(']') {
                    skipped.insert(r.step_id.clone());
                }
                completed.insert(r.step_id, out);
            } else if r.round == self.round {
                if r.status == "waiting"
                    && let Some(until) = r
                        .output
                        .as_deref()
                        .and_then(|o| serde_json::from_str::<Value>(o).ok())
                        .and_then(|o| o["untilMs"].as_i64())
                {
                    self.waiting.insert(r.step_id.clone(), until);
                }
                let n = attempts.entry(r.step_id).or_default();
                *n = (*n).max(r.attempt as u32);
            }
        }
        // What ran inside a finished loop item or branch is not needed again (the item's own
        // entry holds what it gave): a long loop's resume holds one value per item.
        let finished_inside = |key: &str| {
            key.match_indices('.').any(|(i, _)| key[..i].ends_with(']') && completed.contains_key(&key[..i]))
        };
        let inside: Vec<String> = completed.keys().filter(|k| finished_inside(k)).cloned().collect();
        attempts.retain(|k, _| !finished_inside(k));
        for k in inside {
            completed.remove(&k);
        }
        self.completed = Arc::new(completed);
        self.attempts = Arc::new(attempts);
        self.skipped_items = Arc::new(skipped);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
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

    /// Like [`Execution::record_json`], for a step's journal key `key`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_json(
        &mut self,
        step: &CompiledStep,
        attempt: u32,
        status: &str,
        input: &Value,
        output_json: Option<String>,
        error: Option<&StepError>,
        started: i64,
    ) {
        let key = self.key(step).into_owned();
        self.record_entry(key, step.kind, attempt, status, input, output_json, error, started);
    }

    /// Records a journal entry under `key` (a step's, or a loop item's or branch's) for a
    /// step of `kind`, with the output already written as JSON.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_entry(
        &mut self,
        key: String,
        kind: &'static str,
        attempt: u32,
        status: &str,
        input: &Value,
        output_json: Option<String>,
        error: Option<&StepError>,
        started: i64,
    ) {
        // Most inputs are the previous step's output: not stored twice (about half the journal).
        let input_json = (self.concurrent || !self.input_is_last_output).then(|| self.redact(input.to_string()));
        let output_json = output_json.map(|o| self.redact(o));
        if COMPLETED.contains(&status) {
            // The next step's input is this step's output.
            self.input_is_last_output = true;
        }
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.pending.steps.push(StepRecord {
            execution_id: self.id.clone(),
            step_id: key,
            round: self.round,
            attempt: i64::from(attempt),
            seq,
            status: status.to_owned(),
            input: input_json,
            output: output_json,
            error: error.map(|e| self.redact(serde_json::to_string(e).unwrap_or_default())),
            response: None,
            started_at: started,
            finished_at: self.inner.clock.now_ms(),
        });
        if self.dry.is_none() {
            metrics::counter!("flowgate_step_attempts_total", "step_kind" => kind, "outcome" => status.to_owned())
                .increment(1);
        }
    }

    pub(super) fn add_logs(&mut self, step_id: &str, logs: Vec<LogEntry>, at: i64) {
        for l in logs {
            let message = self.redact_text(match self.flow.redactor.redact_text(&l.message) {
                std::borrow::Cow::Borrowed(_) => l.message,
                std::borrow::Cow::Owned(m) => m,
            });
            self.emit(crate::logs::Emit {
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

    /// Makes pending journal entries durable; false when the store failed.
    pub(super) async fn flush(&mut self) -> bool {
        for around in &self.around {
            self.pending.append(&mut around.lock().unwrap_or_else(|e| e.into_inner()));
        }
        if self.pending.is_empty() || self.dry.is_some() {
            // A dry run keeps its entries to compare them; nothing is stored.
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
    pub(super) async fn finish(mut self, outcome: Option<Flow>, started: Instant) -> bool {
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
        if let Some(span) = self.span.as_mut() {
            span.set("flowgate.execution.status", status.as_str());
            if let Some(e) = &error {
                span.set("flowgate.error.code", e["code"].as_str().unwrap_or("").to_owned());
                span.fail(format!("the execution {}", status.as_str()));
            }
        }
        self.notify(status, error.as_ref(), failed_step_of(&error)).await;
        if gated {
            // The next of its order key, or a slot under its cap, is free: claim again.
            self.pending.events.push(StoreEvent::Work);
            self.inner.backlog.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        // The commit that ends it, as a span of its own (group commit: its time includes
        // waiting for the batch it joins).
        let commit = self.inner.settings.traces.start(
            self.trace,
            "commit",
            opentelemetry::trace::SpanKind::Internal,
            vec![opentelemetry::KeyValue::new("flowgate.execution.status", status.as_str())],
        );
        let committed = self.flush().await;
        if let Some(mut c) = commit {
            if !committed {
                c.fail("the store failed");
            }
            c.end();
        }
        if !committed {
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
