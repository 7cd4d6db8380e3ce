//! `http`: calls an HTTP endpoint.
//!
//! ```yaml
//! - id: customer
//!   http:
//!     method: GET
//!     url: "{{ $config.acmeBaseUrl }}/customers/{{ $trigger.body.id | @uri }}"
//!     headers: { Accept: application/json }
//!     timeout: 10s
//!   retry: { attempts: 5, backoff: { initial: 100ms, max: 10s } }
//! ```
//! Output: `{status, headers, body}`, the body parsed as JSON when the response says it is
//! JSON, else text (base64 when it is not UTF-8). Every request carries
//! `Idempotency-Key: <execution>:<step>` unless `idempotencyKey: false`.
//!
//! Failures are classified for the engine: connection errors, timeouts, 408, 429 and 5xx are
//! retryable (`Retry-After` is honoured); other statuses outside `success` fail at once.

mod config;
mod run;
#[cfg(test)]
mod tests;

pub use config::{HttpConfig, IdempotencyKey, StatusSet};
pub(crate) use run::parse_retry_after;
pub use run::{PageOverride, Request};
