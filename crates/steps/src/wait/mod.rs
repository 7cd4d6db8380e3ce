//! `wait`: parks the execution until someone calls it back — the approval pattern.
//!
//! ```yaml
//! - id: ask
//!   email: { to: boss@acme.example, subject: "Approve order {{ .id }}?", text: "POST to {{ $execution.resumeUrl }}" }
//! - id: approval
//!   wait: { timeout: 72h }
//! - id: go-on
//!   filter: '.approved'
//! ```
//! The execution waits without a worker ([`crate::Outcome::Wait`]) until a `POST` to its
//! signed `$execution.resumeUrl` delivers a JSON body, which becomes the step's output; with
//! no call within `timeout` the step fails with `wait_timeout` (its `onError` applies). The
//! wait is a row in the store, so restarts and other nodes change nothing.

use crate::{Outcome, Step, StepCx, StepError};
use async_trait::async_trait;
use flowgate_model::{Diags, Dur, Path};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Waiting for a callback.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct WaitConfig {
    /// How long to wait for the call (`30min`, `72h`, `7d`). Default 7 days.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// Waits at most this long when `timeout` is not set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

impl crate::Kind for WaitConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, cx: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        if cx.concurrent {
            // The execution parks as a whole until the call; a sibling running beside it
            // would have nowhere to go on.
            diags.error(
                path,
                "a `wait` step cannot run side by side with other steps: not inside a `parallel` branch or a `foreach` with `concurrency` over 1",
            );
            return None;
        }
        let timeout = self.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        if timeout.is_zero() {
            diags.error(&path.key("timeout"), "the timeout must be longer than zero");
            return None;
        }
        Some(Box::new(WaitStep(timeout)))
    }

    // The step's own attempt timeout does not bound the wait: it parks in the store.
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

struct WaitStep(Duration);

#[async_trait]
impl Step for WaitStep {
    async fn run<'s>(&'s self, _: &Value, _: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        Ok(Outcome::Wait(self.0))
    }
}
