//! One step's attempts: its rate-limit token, the run under the step's timeout, the bounded
//! output, retries with backoff (inline while short, parked in the queue when long), and
//! what a final failure does (`onError`). The kind is opaque here: an attempt gives an
//! [`Outcome`], which this module follows (an output, the input passed on, the end as
//! `filtered`, nested steps, a durable message), so a new kind needs no change here.

use super::*;

impl Execution {
    /// Runs the step's kind, attempt after attempt, and follows what it comes to.
    pub(super) async fn run_action(&mut self, step: &CompiledStep, input: Input) -> Result<Input, Flow> {
        let action = step.body.as_ref();
        // Only a step with side effects sends a key; the others need no string made for it.
        let step_key = self.key(step).into_owned();
        let key = if action.side_effects() { format!("{}:{}", self.id, step_key) } else { String::new() };
        let mut attempt = self.attempts.get(&step_key).copied().unwrap_or(0);
        loop {
            attempt += 1;
            if action.side_effects() && !self.flush().await {
                return Err(Flow::Interrupted);
            }
            if let Some(limit) = step.limit.as_ref().filter(|_| self.dry.is_none()) {
                self.take_token(limit).await;
            }
            let started = self.inner.clock.now_ms();
            let clock = Instant::now();
            let mut span = self.attempt_span(step, &step_key, attempt);
            // Requests of a step that calls out carry the attempt's place in the trace.
            let traceparent = if action.side_effects() {
                span.as_ref().map(|s| s.parent()).or(self.trace).map(|p| p.header())
            } else {
                None
            };
            let (result, logs, response) = {
                let calls = crate::call::ChildCalls {
                    inner: &self.inner,
                    parent: &self.id,
                    parent_flow: &self.flow.slug,
                    tenant: &self.flow.tenant,
                    integration: &self.flow.integration,
                    step: &step_key,
                    round: self.round,
                    version_id: self.flow.version_id,
                    depth: self.depth,
                    root: &self.call_root,
                };
                let mut cx = StepCx {
                    scope: self.scope(),
                    evaluator: self.evaluator(),
                    http: &self.inner.http,
                    idempotency_key: &key,
                    timeout: step.timeout,
                    logs: Vec::new(),
                    response: None,
                    outbound: &self.inner.settings.outbound,
                    calls: &calls,
                    connections: &crate::connections::ExecutionConnections {
                        inner: &self.inner,
                        tenant: &self.flow.tenant,
                        integration: &self.flow.integration,
                        specs: &self.flow.connections,
                        handed: &self.handed,
                    },
                    traceparent: traceparent.as_deref(),
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
            if let Some(mut s) = span.take() {
                s.set("flowgate.step.outcome", outcome);
                if let Err(e) = &result {
                    s.set("flowgate.error.code", e.code.clone());
                    s.fail(self.redact_text(self.flow.redactor.redact_text(&e.message).into_owned()));
                }
                s.end();
            }
            if self.dry.is_none() {
                metrics::histogram!("flowgate_step_duration_seconds", "step_kind" => step.kind, "outcome" => outcome)
                    .record(clock.elapsed().as_secs_f64());
            }
            self.add_logs(&step_key, logs, started);
            let result = match result {
                Ok(Outcome::Output(out)) => Ok(out),
                Ok(other) => return self.follow(step, attempt, other, input, started).await,
                Err(e) => Err(e),
            };
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
                        if self.dry.is_none() {
                            self.inner.waiters.answer(&self.id, SyncOutcome::Responded(r.clone()));
                        }
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
                    tracing::debug!(step_id = %step_key, attempt, error_code = %error.code, error = %self.flow.redactor.redact_text(&error.message), "Step attempt failed.");
                    if let (Some(limit), Some(after)) = (&step.limit, error.retry_after) {
                        // The target asked to slow down: the whole limit waits, not just this request.
                        self.pause_limit(limit, after).await;
                    }
                    // A dry run's steps are pure: another attempt would give the same.
                    if error.retryable && attempt < step.retry.attempts && self.dry.is_none() {
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

    /// Follows an attempt that gave something other than an output.
    async fn follow<'s>(
        &mut self,
        step: &'s CompiledStep,
        attempt: u32,
        outcome: Outcome<'s>,
        input: Input,
        started: i64,
    ) -> Result<Input, Flow> {
        match outcome {
            Outcome::Output(out) => {
                self.record(step, attempt, "succeeded", &input, Some(&out), None, started);
                Ok(self.output(step, out))
            }
            Outcome::Pass | Outcome::Filtered => {
                self.record(step, attempt, "succeeded", &input, Some(&input), None, started);
                self.outputs.insert(step.id.clone(), (*input).clone());
                match outcome {
                    Outcome::Filtered => Err(Flow::Filtered(Arc::unwrap_or_clone(input))),
                    _ => Ok(input),
                }
            }
            Outcome::Branch(steps) => {
                let out = match steps {
                    Some(steps) => match self.run_steps(steps, input.clone()).await {
                        Flow::Done(out) => Arc::new(out),
                        end => return Err(end),
                    },
                    None => input.clone(),
                };
                // The branch's entries came after this step's input: store it explicitly.
                self.input_is_last_output = false;
                self.record(step, attempt, "succeeded", &input, Some(&out), None, started);
                self.outputs.insert(step.id.clone(), (*out).clone());
                Ok(out)
            }
            Outcome::Send(message) => self.send(step, attempt, message, input, started).await,
            Outcome::Each(each) => self.run_each(step, attempt, each, input, started).await,
            Outcome::Parallel(branches) => self.run_branches(step, attempt, branches, input, started).await,
            Outcome::Wait(timeout) => self.wait_for_call(step, attempt, timeout, input, started).await,
            Outcome::Delay(delay) => {
                let now = self.inner.clock.now_ms();
                // Fixed by the first attempt: a resume finds the time in the journal.
                let key = self.key(step).into_owned();
                let until = match self.waiting.get(&key) {
                    Some(t) => *t,
                    None => match delay {
                        flowgate_steps::delay::Delay::For(d) => now.saturating_add(d.as_millis() as i64),
                        flowgate_steps::delay::Delay::Until(t) => t,
                    },
                };
                if until > now {
                    let left = std::time::Duration::from_millis((until - now) as u64);
                    if left <= self.inner.settings.inline_backoff_max {
                        tokio::time::sleep(left).await;
                    } else {
                        // Parked without a worker; whichever node is up at `until` resumes it.
                        let waiting = serde_json::json!({ "until": crate::clock::rfc3339(until), "untilMs": until });
                        self.record(step, attempt, "waiting", &input, Some(&waiting), None, started);
                        self.waiting.insert(key, until);
                        return Err(Flow::Parked { run_after: self.deadline().map_or(until, |d| until.min(d)) });
                    }
                }
                let out = serde_json::json!({ "until": crate::clock::rfc3339(until) });
                self.record(step, attempt, "succeeded", &input, Some(&out), None, started);
                Ok(self.output(step, out))
            }
        }
    }

    /// A step failed for good: continue with `{error}` or end the execution.
    pub(super) fn fail(
        &mut self,
        step: &CompiledStep,
        attempt: u32,
        input: &Value,
        error: StepError,
        started: i64,
    ) -> Result<Input, Flow> {
        let key = self.key(step).into_owned();
        self.emit(crate::logs::Emit {
            flow: &self.flow,
            execution: &self.id,
            step: Some(&key),
            event: "step.failed",
            level: if step.on_error == OnError::Continue {
                flowgate_sinks::Level::Warn
            } else {
                flowgate_sinks::Level::Error
            },
            message: format!("step {key} failed: {}", error.message),
            duration_ms: Some((self.inner.clock.now_ms() - started).max(0) as u64),
            fields: crate::logs::error_fields(&error.code, Some(attempt)),
        });
        if step.on_error == OnError::Continue {
            let out = error.to_output();
            self.record(step, attempt, "continued", input, Some(&out), Some(&error), started);
            return Ok(self.output(step, out));
        }
        self.record(step, attempt, "failed", input, None, Some(&error), started);
        Err(Flow::Failed { step: key, error })
    }

    /// The span of one attempt of `step` (journal key `key`), under the run's; none when the
    /// node does not export traces.
    fn attempt_span(&self, step: &CompiledStep, key: &str, attempt: u32) -> Option<crate::traces::Span> {
        let traces = &self.inner.settings.traces;
        if !traces.on() || self.dry.is_some() {
            return None;
        }
        let kind = if step.body.side_effects() {
            opentelemetry::trace::SpanKind::Client
        } else {
            opentelemetry::trace::SpanKind::Internal
        };
        traces.start(
            self.trace,
            format!("step {key}"),
            kind,
            vec![
                opentelemetry::KeyValue::new("flowgate.step.id", key.to_owned()),
                opentelemetry::KeyValue::new("flowgate.step.kind", step.kind),
                opentelemetry::KeyValue::new("flowgate.step.attempt", i64::from(attempt)),
                opentelemetry::KeyValue::new("flowgate.step.retry", i64::from(attempt.saturating_sub(1))),
            ],
        )
    }

    /// Waits for a token of the integration's rate limit `name` (shared by every node).
    pub(super) async fn take_token(&self, name: &str) {
        let Some(spec) = self.flow.limits.get(name).copied() else { return };
        let f = &self.flow;
        loop {
            let now = self.inner.clock.now_ms();
            match self.inner.store.take_token(f.key().integration(), name, spec.per_second, spec.burst, now).await {
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
    pub(super) async fn pause_limit(&self, name: &str, after: Duration) {
        let f = &self.flow;
        let until = self.inner.clock.now_ms() + after.min(crate::backoff::MAX_RETRY_AFTER).as_millis() as i64;
        if let Err(e) = self.inner.store.pause_limit(f.key().integration(), name, until).await {
            tracing::warn!(error = %e, limit = name, "Could not pause the rate limit.");
        }
    }
}
