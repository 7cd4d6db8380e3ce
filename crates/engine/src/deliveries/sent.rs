//! What one delivery attempt gave ([`Sent`]), and the names every kind of delivery shares:
//! the sealing context of its request and its stable message id. A leaf of `deliveries`:
//! the loop (`mod.rs`) and each kind's sender (`webhook`, `email`) use it.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// The sealing context of a delivery's request.
pub(crate) fn aad(id: &str) -> String {
    format!("delivery/{id}")
}

/// The stable message id of a delivery (`webhook-id`).
pub(crate) fn message_id(id: &str) -> String {
    format!("msg_{}", &hex::encode(Sha256::digest(id.as_bytes()))[..26])
}

/// What one attempt gave.
pub(crate) struct Sent {
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub excerpt: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    /// Stop retrying (410 Gone, a request that can never be made).
    pub give_up: bool,
    pub ok: bool,
    pub response: Option<Value>,
}

impl Sent {
    /// A delivered attempt.
    pub(crate) fn delivered(started: Instant, response: Value) -> Sent {
        Sent {
            status: None,
            latency_ms: started.elapsed().as_millis() as i64,
            excerpt: None,
            error: None,
            retry_after: None,
            give_up: false,
            ok: true,
            response: Some(response),
        }
    }

    /// An attempt that could not be made.
    /// Whether this notification was folded into a digest rather than sent.
    pub(crate) fn is_digested(&self) -> bool {
        self.response.as_ref().is_some_and(|r| r.get("digestedInto").is_some())
    }

    pub(crate) fn failed(error: impl Into<String>, give_up: bool) -> Sent {
        Sent {
            status: None,
            latency_ms: 0,
            excerpt: None,
            error: Some(error.into()),
            retry_after: None,
            give_up,
            ok: false,
            response: None,
        }
    }
}
