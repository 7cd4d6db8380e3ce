//! `filter`: ends the execution as `filtered` unless a jq condition holds.
//!
//! ```yaml
//! - id: only-active
//!   filter: '$steps.customer.body.active'
//! ```
//! The step passes its input through. jq truthiness: only `false` and `null` are false; an
//! expression with no output counts as false.

use crate::{Kind, Outcome, PlanCx, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_expr::{Template, truthy};
use flowgate_model::{Diags, Path};
use serde_json::Value;
use std::sync::Arc;

/// The condition.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    /// jq expression; the execution goes on only when it is true.
    pub expr: String,
}

impl Kind for FilterConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        match value {
            Value::String(s) => Some(FilterConfig { expr: s.clone() }),
            _ => {
                diags.error(path, "expected a jq condition (a string)");
                None
            }
        }
    }

    fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "jq condition; when false (or null, or no output) the execution ends as `filtered`." })
    }

    fn compile(&self, _: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        util::expr(&self.expr, path, diags).map(|condition| Box::new(Filter { condition }) as Box<dyn Step>)
    }
}

struct Filter {
    condition: Arc<Template>,
}

#[async_trait]
impl Step for Filter {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let v = cx.evaluator.eval(&self.condition, input, &cx.scope).await?;
        Ok(if truthy(&v) { Outcome::Pass } else { Outcome::Filtered })
    }
}

#[cfg(test)]
mod tests;
