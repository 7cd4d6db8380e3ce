//! What sends messages out: a step's `Outcome::Send` (the `webhook` and `email` kinds;
//! waiting for the answer when asked), step hooks (webhooks when a step starts or ends) and
//! failure notifications. Each becomes a durable delivery committed with the journal; the senders in
//! `crate::deliveries` deliver it.

use super::*;

impl Execution {
    /// A step's message (`webhook`, `email`): queued as a durable delivery, committed with
    /// the journal before the step succeeds; with `wait`, waited for (inline a little, then
    /// parked in `waiting`, holding no worker) and its outcome is the step's output.
    pub(super) async fn send(
        &mut self,
        step: &CompiledStep,
        attempt: u32,
        message: flowgate_steps::Outbound,
        input: Input,
        started: i64,
    ) -> Result<Input, Flow> {
        let key = self.key(step).into_owned();
        let id = format!("{}:{}:{}", self.id, key, self.round);
        let d = crate::deliveries::new_delivery(
            &self.inner,
            &self.flow,
            id.clone(),
            Some(&self.id),
            Some(&key),
            message.kind,
            &message.name,
            &message.message,
            &message.delays,
        );
        let message_id = d.message_id.clone();
        // A resumed step finds its delivery there: the insert is ignored.
        self.pending.deliveries.push(d);
        if !self.flush().await {
            return Err(Flow::Interrupted);
        }
        self.inner.delivery_wake.notify_one();
        if !message.wait {
            let out = if message.show_message_id {
                json!({ "deliveryId": id, "webhookId": message_id, "status": "queued" })
            } else {
                json!({ "deliveryId": id, "status": "queued" })
            };
            self.record(step, attempt, "succeeded", &input, Some(&out), None, started);
            return Ok(self.output(step, out));
        }
        let inline_until = Instant::now() + self.inner.settings.inline_backoff_max;
        loop {
            let d = match self.inner.store.delivery(&self.flow.tenant, &id).await {
                Ok(Some(d)) => d,
                Ok(None) => {
                    let error = StepError::fatal(format!("{}_lost", message.kind), "the delivery is gone");
                    return self.fail(step, attempt, &input, error, started);
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match d.status.as_str() {
                "delivered" => {
                    let response = d.response.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok());
                    let out = json!({ "deliveryId": id, "webhookId": message_id, "status": "delivered", "attempts": d.attempts, "response": response });
                    self.record(step, attempt, "succeeded", &input, Some(&out), None, started);
                    return Ok(self.output(step, out));
                }
                "failed" => {
                    let error = StepError {
                        details: Some(json!({ "deliveryId": id, "attempts": d.attempts, "lastStatus": d.last_status })),
                        ..StepError::fatal(
                            format!("{}_failed", message.kind),
                            format!(
                                "`{}` was not delivered after {} attempts: {}",
                                message.name,
                                d.attempts,
                                d.last_error.unwrap_or_default()
                            ),
                        )
                    };
                    return self.fail(step, attempt, &input, error, started);
                }
                _ if Instant::now() < inline_until => tokio::time::sleep(Duration::from_millis(25)).await,
                // Beside its siblings it cannot park the whole execution: it holds the
                // worker and looks again now and then.
                _ if self.concurrent => tokio::time::sleep(Duration::from_millis(500)).await,
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

    /// A `wait` step: its `callback` row (made durable with the journal on the first
    /// attempt, due at the timeout), then parked in `waiting` until a call to the resume URL
    /// or the timeout ends the row; on resume the row says which (`crate::waits`).
    pub(super) async fn wait_for_call(
        &mut self,
        step: &CompiledStep,
        attempt: u32,
        timeout: Duration,
        input: Input,
        started: i64,
    ) -> Result<Input, Flow> {
        let key = self.key(step).into_owned();
        let id = format!("{}:{}:{}:callback", self.id, key, self.round);
        loop {
            let row = match self.inner.store.delivery(&self.flow.tenant, &id).await {
                Ok(row) => row,
                Err(_) => return Err(Flow::Interrupted),
            };
            let Some(d) = row else {
                let d = crate::deliveries::new_delivery(
                    &self.inner,
                    &self.flow,
                    id.clone(),
                    Some(&self.id),
                    Some(&key),
                    crate::waits::KIND,
                    &key,
                    &json!({}),
                    &[timeout],
                );
                self.pending.deliveries.push(d);
                if !self.flush().await {
                    return Err(Flow::Interrupted);
                }
                self.inner.delivery_wake.notify_one();
                continue;
            };
            match d.status.as_str() {
                "delivered" => {
                    let out = d
                        .response
                        .as_deref()
                        .and_then(|r| serde_json::from_str::<Value>(r).ok())
                        .unwrap_or(Value::Null);
                    self.record(step, attempt, "succeeded", &input, Some(&out), None, started);
                    return Ok(self.output(step, out));
                }
                "failed" => {
                    let error = StepError::fatal(
                        "wait_timeout",
                        format!("no call to the execution's resume URL within {}", flowgate_model::Dur(timeout)),
                    );
                    return self.fail(step, attempt, &input, error, started);
                }
                _ => {
                    let owner = self.inner.settings.node_id.clone();
                    match self.inner.store.wait_for_delivery(&self.id, &owner, &id).await {
                        Ok(true) => return Err(Flow::Waiting),
                        Ok(false) => continue, // called (or timed out) meanwhile
                        Err(_) => return Err(Flow::Interrupted),
                    }
                }
            }
        }
    }

    /// Queues a step hook's webhook (with the journal: durable, once per round).
    pub(super) async fn hook(
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
            "step": self.key(step),
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
        let id = format!("{}:{}:{}:{event}", self.id, self.key(step), self.round);
        let d = crate::deliveries::new_delivery(
            &self.inner,
            &self.flow,
            id,
            Some(&self.id),
            Some(&self.key(step)),
            "webhook",
            &spec.name,
            &request,
            &spec.delays,
        );
        self.pending.deliveries.push(d);
        self.inner.delivery_wake.notify_one();
    }

    /// Queues the flow's e-mail notification (with the finish: durable) when it failed for
    /// good, or succeeded again after a failure (`notifyOnRecovery`).
    pub(super) async fn notify(&mut self, status: Status, error: Option<&Value>, failed_step: Option<String>) {
        let f = self.flow.clone();
        if f.notify_emails.is_empty() {
            return;
        }
        let event = match status {
            Status::Failed => "failed",
            Status::Succeeded if f.notify_on_recovery => {
                // A recovery: the flow's previous run ended badly.
                match self.inner.store.last_run(f.key()).await {
                    Ok(Some(prev)) if prev.id != self.id && prev.status == "failed" => "recovered",
                    _ => return,
                }
            }
            _ => return,
        };
        let link = format!("{}/v1/executions/{}", self.inner.settings.public_url, self.id);
        let message = error.and_then(|e| e["message"].as_str()).unwrap_or("").to_owned();
        let code = error.and_then(|e| e["code"].as_str()).unwrap_or("").to_owned();
        // A connection whose grant was revoked needs a person, not a retry: say so first.
        let reconnect = code == "connection_needs_reconnect";
        let subject = match event {
            "failed" if reconnect => {
                format!("[Flowgate] {} / {}: a connection needs to be authorized again", f.integration, f.slug)
            }
            "failed" => format!("[Flowgate] {} / {} failed", f.integration, f.slug),
            _ => format!("[Flowgate] {} / {} succeeds again", f.integration, f.slug),
        };
        let text = match event {
            "failed" if reconnect => format!(
                "Flow {} (integration {}, tenant {}) cannot run: {}\n\nAuthorize the connection again: GET {}/v1/integrations/{}/connections/<name>/authorize gives the provider's page (or `flowgate connections authorize {} <name>`).\n\nExecution: {}\nFailed step: {}\n\n{}\n",
                f.slug,
                f.integration,
                f.tenant,
                message,
                self.inner.settings.public_url,
                f.integration,
                f.integration,
                self.id,
                failed_step.as_deref().unwrap_or("-"),
                link
            ),
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
}
