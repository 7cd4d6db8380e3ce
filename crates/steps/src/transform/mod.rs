//! `transform`: computes the step's output with a jq expression.
//!
//! ```yaml
//! - id: mapped
//!   transform: '{ name: .body.name, email: (.body.email | ascii_downcase) }'
//! ```
//! Several outputs are collected into an array; none is `null`.

use crate::{Kind, Outcome, PlanCx, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::{Diags, Path};
use serde_json::Value;
use std::sync::Arc;

/// The jq expression.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    /// jq expression; `.` is the previous step's output.
    pub expr: String,
}

impl Kind for TransformConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        match value {
            Value::String(s) => Some(TransformConfig { expr: s.clone() }),
            _ => {
                diags.error(path, "expected a jq expression (a string)");
                None
            }
        }
    }

    fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "jq expression whose value is the step's output; `.` is the previous step's output." })
    }

    fn compile(&self, _: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        let expr = util::expr(&self.expr, path, diags)?;
        Some(Box::new(Transform { expr }))
    }
}

struct Transform {
    expr: Arc<Template>,
}

#[async_trait]
impl Step for Transform {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        Ok(Outcome::Output(cx.evaluator.eval(&self.expr, input, &cx.scope).await?))
    }
}

#[cfg(test)]
mod tests;
