//! Waiting for a call: the `wait` step parks its execution in `waiting` (holding no worker)
//! behind a `callback` row of the deliveries table, due at its timeout; a `POST` to the
//! execution's signed resume URL ends that row with the call's body (and queues the
//! execution), or the delivery loop ends it as timed out when it comes due. Either way the
//! step reads the row on resume: the body is its output, a timeout its error.

use crate::{Engine, EngineSettings};
use base64::Engine as _;
use flowgate_store::{AttemptOutcome, DeliveryAttempt, StoreEvent};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::atomic::Ordering;

/// The delivery kind of a wait.
pub(crate) const KIND: &str = "callback";

/// The signature of an execution's resume URL.
pub fn resume_signature(settings: &EngineSettings, id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&settings.resume_key).expect("HMAC takes any key length");
    mac.update(b"resume:");
    mac.update(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..24])
}

/// `$execution.resumeUrl`.
pub(crate) fn resume_url(settings: &EngineSettings, id: &str) -> String {
    format!("{}/resume/{id}?sig={}", settings.public_url.trim_end_matches('/'), resume_signature(settings, id))
}

/// What a resume call came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resumed {
    /// The waiting step has the body; the execution goes on.
    Resumed,
    /// Nothing of this execution waits for a call (never did, already called, timed out).
    NotWaiting,
}

impl Engine {
    /// The signature an execution's resume URL carries (the server checks it in constant
    /// time).
    pub fn resume_signature(&self, id: &str) -> String {
        resume_signature(&self.inner.settings, id)
    }

    /// Delivers `body` to the `wait` step execution `id` is waiting in (or about to wait
    /// in: the row exists before the execution parks).
    ///
    /// # Errors
    /// The store.
    pub async fn resume(&self, id: &str, body: &Value) -> Result<Resumed, flowgate_store::Error> {
        let now = self.inner.clock.now_ms();
        let waiting =
            self.inner.store.deliveries_of(id).await?.into_iter().find(|d| d.kind == KIND && d.status == "pending");
        let Some(d) = waiting else { return Ok(Resumed::NotWaiting) };
        let outcome = AttemptOutcome {
            attempt: DeliveryAttempt {
                delivery_id: d.id.clone(),
                attempt: d.attempts + 1,
                at: now,
                status_code: Some(200),
                latency_ms: 0,
                excerpt: None,
                error: None,
            },
            status: "delivered".into(),
            next_at: now,
            response: Some(body.to_string()),
        };
        // Only a pending row: of a call and the timeout (or two calls), one wins.
        match self.inner.store.finish_attempt_if_pending(&d.id, &outcome, now).await? {
            None => Ok(Resumed::NotWaiting),
            Some(woken) => {
                if woken.is_some() {
                    self.inner.backlog.store(true, Ordering::Relaxed);
                    self.inner.wake.notify_one();
                    let _ = self.inner.store.notify(&[StoreEvent::Work]).await;
                }
                Ok(Resumed::Resumed)
            }
        }
    }
}
