//! `switch`: runs the steps of the first case whose condition holds, else the `default`.
//! Its output is the last output of the branch it took (its input when no branch ran).
//!
//! ```yaml
//! - id: route
//!   switch:
//!     - when: '.total > 100'
//!       steps: [ { id: big, respond: { status: 201 } } ]
//!     - default:
//!         - { id: small, respond: { status: 200 } }
//! ```
//! Step ids inside branches share the flow's namespace (`$steps` is flat).

use crate::plan::{CompiledStep, PlanCx, compile_steps};
use crate::{Kind, Outcome, Step, StepConfig, StepCx, StepDef, StepError, util};
use async_trait::async_trait;
use flowgate_expr::{Template, truthy};
use flowgate_model::step::decode_steps;
use flowgate_model::{Diags, Path, StepDef as ModelStepDef};
use serde_json::Value;
use std::sync::Arc;

/// One case.
#[derive(Debug, Clone)]
pub struct Case {
    /// jq condition.
    pub when: String,
    /// Steps run when it holds.
    pub steps: Vec<StepDef>,
}

/// The cases, in order, and the default.
#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// Cases, first match wins.
    pub cases: Vec<Case>,
    /// Steps run when no case holds.
    pub default: Option<Vec<StepDef>>,
}

impl Kind for SwitchConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        let Some(items) = value.as_array() else {
            diags.error(path, "expected a list of cases: `- when: <jq>` with `steps: [...]`, and optionally a last `- default: [...]`");
            return None;
        };
        let mut cases = Vec::new();
        let mut default = None;
        for (i, item) in items.iter().enumerate() {
            let at = path.index(i);
            let Some(obj) = item.as_object() else {
                diags.error(&at, "expected a case: an object with `when` and `steps`, or `default`");
                continue;
            };
            if let Some(d) = obj.get("default") {
                if obj.len() > 1 {
                    diags.error(&at, "a `default` case has no other keys");
                }
                if i + 1 != items.len() {
                    diags.error(&at.key("default"), "`default` must be the last case");
                }
                default = Some(decode_steps(d, &at.key("default"), diags));
                continue;
            }
            for k in obj.keys() {
                if !["when", "steps", "name"].contains(&k.as_str()) {
                    diags.error(
                        &at.key(k.clone()),
                        format!("unknown key `{k}` (expected one of: when, steps, name; or default)"),
                    );
                }
            }
            let when = match obj.get("when") {
                Some(Value::String(w)) => Some(w.clone()),
                Some(_) => {
                    diags.error(&at.key("when"), "expected a jq condition (a string)");
                    None
                }
                None => {
                    diags.error(&at, "a case needs `when` (or use `default`)");
                    None
                }
            };
            let steps = match obj.get("steps") {
                Some(s) => decode_steps(s, &at.key("steps"), diags),
                None => {
                    diags.error(&at, "a case needs `steps`");
                    Vec::new()
                }
            };
            if let Some(when) = when {
                cases.push(Case { when, steps });
            }
        }
        Some(SwitchConfig { cases, default })
    }

    fn children(&self) -> Vec<(Path, &[ModelStepDef<StepConfig>])> {
        let mut out: Vec<(Path, &[StepDef])> = self
            .cases
            .iter()
            .enumerate()
            .map(|(i, c)| (Path::root().index(i).key("steps"), c.steps.as_slice()))
            .collect();
        if let Some(d) = &self.default {
            out.push((Path::root().index(self.cases.len()).key("default"), d.as_slice()));
        }
        out
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let steps = g.subschema_for::<Vec<StepDef>>();
        schemars::json_schema!({
            "type": "array",
            "description": "Cases in order (first match wins), optionally ending with a default.",
            "items": { "oneOf": [
                { "type": "object", "additionalProperties": false, "required": ["when", "steps"],
                  "properties": { "when": { "type": "string", "description": "jq condition" }, "name": { "type": "string" }, "steps": steps } },
                { "type": "object", "additionalProperties": false, "required": ["default"],
                  "properties": { "default": steps } }
            ] }
        })
    }

    fn compile(&self, cx: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        let mut cases = Vec::new();
        let mut ok = true;
        for (i, c) in self.cases.iter().enumerate() {
            let at = path.index(i);
            let when = util::expr(&c.when, &at.key("when"), diags);
            let steps = compile_steps(&c.steps, cx, &at.key("steps"), diags);
            match when {
                Some(w) => cases.push((w, steps)),
                None => ok = false,
            }
        }
        let default =
            self.default.as_ref().map(|d| compile_steps(d, cx, &path.index(self.cases.len()).key("default"), diags));
        ok.then(|| Box::new(Switch { cases, default }) as Box<dyn Step>)
    }
}

/// A compiled `switch`: its cases' conditions and steps, and the default's steps.
pub struct Switch {
    /// Conditions and their steps, in order.
    pub cases: Vec<(Arc<Template>, Vec<CompiledStep>)>,
    /// Steps when no case holds.
    pub default: Option<Vec<CompiledStep>>,
}

#[async_trait]
impl Step for Switch {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        for (condition, steps) in &self.cases {
            if truthy(&cx.evaluator.eval(condition, input, &cx.scope).await?) {
                return Ok(Outcome::Branch(Some(steps)));
            }
        }
        Ok(Outcome::Branch(self.default.as_deref()))
    }
}

#[cfg(test)]
mod tests;
