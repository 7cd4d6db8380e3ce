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

use crate::{Kind, Outcome, PlanCx, Step, StepConfig, StepCx, StepDef, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::{Diags, Dur, Path, StepKind, is_slug};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
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

impl Kind for CallConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, _: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        if !is_slug(&self.flow) {
            diags.error(&path.key("flow"), format!("invalid flow slug `{}`", self.flow));
        }
        if let Some(i) = &self.integration
            && !is_slug(i)
        {
            diags.error(&path.key("integration"), format!("invalid integration slug `{i}`"));
        }
        let input = util::template(&self.input.clone().unwrap_or_else(|| json!("{{ . }}")), &path.key("input"), diags)?;
        Some(Box::new(Call { integration: self.integration.clone(), flow: self.flow.clone(), input }))
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.wait())
    }
}

impl CallConfig {
    /// How long an attempt waits.
    pub fn wait(&self) -> Duration {
        self.timeout.map_or(DEFAULT_CALL_TIMEOUT, |t| t.0)
    }
}

/// A compiled `call`: the child is the engine's to start ([`crate::Calls`]).
struct Call {
    integration: Option<String>,
    flow: String,
    input: Arc<Template>,
}

#[async_trait]
impl Step for Call {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        cx.calls.admit().await?;
        let body = cx.evaluator.eval(&self.input, input, &cx.scope).await?;
        cx.calls.call(self.integration.as_deref(), &self.flow, body, cx.timeout).await.map(Outcome::Output)
    }

    /// Starting a child is visible outside: the journal is durable first.
    fn side_effects(&self) -> bool {
        true
    }
}

/// Each `call` of the same integration (`steps`, found at `path`, nested ones too) names one
/// of its `flows`; a flow of another integration is looked up when the step runs (that one
/// may be applied later, and changes on its own).
pub fn check_targets(steps: &[StepDef], flows: &[String], path: &Path, diags: &mut Diags) {
    for s in steps {
        let at = path.index(s.index);
        if let StepConfig::Call(c) = &s.kind
            && c.integration.is_none()
            && !flows.contains(&c.flow)
        {
            diags.error(
                &at.key("call").key("flow"),
                format!("no flow `{}` in this integration (flows: {})", c.flow, flows.join(", ")),
            );
        }
        for (branch, nested) in s.kind.children() {
            check_targets(nested, flows, &at.key(s.kind.kind()).join(branch.0), diags);
        }
    }
}

#[cfg(test)]
mod tests;
