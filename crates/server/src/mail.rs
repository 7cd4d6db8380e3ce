//! Inbound e-mail: Flowgate's side of the SMTP receiver (`flowgate-smtp`). A recipient is
//! accepted when it is the address of an active e-mail flow (any tenant: addresses are unique
//! across tenants) whose sender allow-list admits the sender; a message becomes one execution
//! per flow it is addressed to, committed before the receiver answers `250`.

use crate::AppState;
use flowgate_engine::{FlowTrigger, Submission, SubmitError, Wait};
use flowgate_smtp::{Envelope, MailHandler, Reject, SmtpSettings};
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves SMTP on `listener` until `stop` is cancelled.
pub async fn serve(state: AppState, listener: TcpListener, stop: CancellationToken) {
    let settings = SmtpSettings {
        hostname: state.engine.registry().mail_domain().to_owned(),
        max_message_bytes: state.settings.max_email_bytes,
        ..SmtpSettings::default()
    };
    let handler: Arc<dyn MailHandler> = Arc::new(Mail { state });
    if let Err(e) = flowgate_smtp::serve(listener, handler, settings, stop).await {
        tracing::error!(error = %e, "The SMTP receiver stopped.");
    }
}

/// Routes mail to e-mail flows.
struct Mail {
    state: AppState,
}

#[async_trait::async_trait]
impl MailHandler for Mail {
    async fn recipient(&self, from: &str, recipient: &str) -> Result<(), Reject> {
        let flow = self.state.engine.registry().email_route(recipient).ok_or_else(Reject::unknown_recipient)?;
        match &flow.trigger {
            FlowTrigger::Email(spec) if spec.allows(from) => Ok(()),
            FlowTrigger::Email(_) => Err(Reject::sender_refused("the sender is not allowed to write to this address")),
            _ => Err(Reject::unknown_recipient()),
        }
    }

    async fn deliver(&self, envelope: &Envelope, message: bytes::Bytes) -> Result<(), Reject> {
        // MIME parsing of a large message takes milliseconds to seconds: off the async threads.
        let parsed = tokio::task::spawn_blocking(move || flowgate_smtp::parse_message(&message))
            .await
            .map_err(|_| Reject { code: 451, enhanced: "4.3.0", message: "the message could not be read".into() })?
            .map_err(|e| Reject {
                code: 554,
                enhanced: "5.6.0",
                message: format!("the message cannot be parsed: {e}"),
            })?;
        let engine = &self.state.engine;
        let received = flowgate_engine::clock::rfc3339(engine.clock().now_ms());
        // One execution per flow, with the recipients that led to it.
        let mut flows: Vec<(Arc<flowgate_engine::CompiledFlow>, Vec<String>)> = Vec::new();
        for rcpt in &envelope.recipients {
            let Some(flow) = engine.registry().email_route(rcpt) else { continue };
            match flows.iter_mut().find(|(f, _)| Arc::ptr_eq(f, &flow)) {
                Some((_, rcpts)) => rcpts.push(rcpt.clone()),
                None => flows.push((flow, vec![rcpt.clone()])),
            }
        }
        if flows.is_empty() {
            // Every flow was switched off or removed since RCPT.
            return Err(Reject::unknown_recipient());
        }
        for (flow, rcpts) in flows {
            let trigger = json!({
                "body": parsed,
                "envelope": { "from": envelope.from, "to": rcpts, "helo": envelope.helo, "client": envelope.client.ip().to_string() },
                "receivedAt": received,
            });
            let submitted = engine
                .submit(Submission {
                    flow,
                    trigger,
                    kind: "email",
                    auth_label: None,
                    replay_of: None,
                    wait: Wait::No,
                    options: Default::default(),
                })
                .await;
            match submitted {
                Ok(s) => tracing::debug!(execution_id = %s.id, duplicate = s.duplicate, "Mail accepted."),
                Err(SubmitError::Expression(m)) => {
                    // The sender never sees an evaluation's message (it may quote config values).
                    tracing::warn!(error = %m, "A message was refused: its delivery key could not be computed.");
                    return Err(Reject {
                        code: 554,
                        enhanced: "5.6.0",
                        message: "the message was refused: the flow cannot compute its delivery key".into(),
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot store an inbound message; the sender will retry.");
                    return Err(Reject::temporary("the message cannot be stored now; try again later"));
                }
            }
        }
        Ok(())
    }
}
