//! `call`: runs another flow — of the same integration, or of another (shared) integration of
//! the tenant — with a payload and waits for its result, as a linked child execution.
//!
//! ```yaml
//! - id: enriched
//!   call: { flow: enrich-customer, input: { id: "{{ .id }}" }, timeout: 5m }
//! - id: shared
//!   call: { integration: common-tools, flow: lookup-vat, input: { country: NO } }
//! ```
//! A flow of the same integration runs on the caller's version; one of another integration on
//! that integration's current version, which must be live.
//! The child's trigger is `{body: <input>}` (default input: the step's input), its kind
//! `call`, and it records this execution as its parent. Output: the child's output. A failed
//! child fails the step (`call_failed`); a child still running after `timeout` (default 10
//! min) makes the attempt fail retryably (`call_timeout`), and the next attempt waits for the
//! same child: each step of each execution starts one child, however often it is resumed.
//! Running it is the engine's (it needs the queue); this module only checks and compiles it.

use crate::plan::Compiled;
use crate::util;
use flowgate_model::{Diags, Dur, Path, is_slug};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Default wait for the child.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The flow to call.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct CallConfig {
    /// Another integration of the tenant whose flow is called (its slug). Default: this one.
    #[serde(default)]
    pub integration: Option<String>,
    /// The flow's slug.
    pub flow: String,
    /// The child's `$trigger.body`; may embed `{{ expr }}`. Default: the step's input.
    #[serde(default)]
    pub input: Option<Value>,
    /// Longest one attempt waits for the child. Default 10 min.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

impl CallConfig {
    pub(crate) fn compile(&self, path: &Path, diags: &mut Diags) -> Option<Compiled> {
        if !is_slug(&self.flow) {
            diags.error(&path.key("flow"), format!("invalid flow slug `{}`", self.flow));
        }
        if let Some(i) = &self.integration
            && !is_slug(i)
        {
            diags.error(&path.key("integration"), format!("invalid integration slug `{i}`"));
        }
        let input = util::template(&self.input.clone().unwrap_or_else(|| json!("{{ . }}")), &path.key("input"), diags)?;
        Some(Compiled::Call { integration: self.integration.clone(), flow: self.flow.clone(), input })
    }

    /// How long an attempt waits.
    pub fn wait(&self) -> Duration {
        self.timeout.map_or(DEFAULT_CALL_TIMEOUT, |t| t.0)
    }
}
