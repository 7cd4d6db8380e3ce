//! `parallel`: runs branches of steps side by side and joins their outputs into one object.
//!
//! ```yaml
//! - id: both
//!   parallel:
//!     customer: [ { id: fetch-customer, http: { url: "https://crm.example/c/{{ .id }}" } } ]
//!     orders:   [ { id: fetch-orders,   http: { url: "https://erp.example/o?c={{ .id }}" } } ]
//! # or, with options:
//! - id: both
//!   parallel:
//!     branches: { customer: [ … ], orders: [ … ] }
//!     onError: continue
//! ```
//! Each branch starts from the step's input; the output is `{customer: …, orders: …}`, each
//! its branch's last output. The first failed branch fails the step (the others are stopped);
//! with `onError: continue` (here or on the step) a failed branch's output is `{error}` and the
//! others finish. A `filter` that stops a branch ends the execution as `filtered`, as it would
//! outside.
//!
//! The engine runs the branches ([`crate::Outcome::Parallel`]), truly at once, and journals
//! each branch's steps under their own keys (`both[customer].fetch-customer`) and each
//! finished branch as one entry (`both[customer]`): a crash or a retry runs only the branches that had
//! not finished.

#[cfg(test)]
mod tests;

use crate::plan::{CompiledStep, PlanCx, compile_steps};
use crate::{Kind, Outcome, Step, StepConfig, StepCx, StepDef, StepError};
use async_trait::async_trait;
use flowgate_model::step::decode_steps;
use flowgate_model::{Diags, OnError, Path, StepDef as ModelStepDef};
use serde_json::Value;

/// The branches and what a failure does.
#[derive(Debug, Clone)]
pub struct ParallelConfig {
    /// Branches by name, in the order written.
    pub branches: Vec<(String, Vec<StepDef>)>,
    /// What a failed branch does (none: the step's `onError`).
    pub on_error: Option<OnError>,
    /// Written with `branches:` (paths of problems follow the form used).
    pub nested: bool,
}

/// A branch name: like a step id, so it reads well in `$steps.<step>.<branch>` and in keys.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Kind for ParallelConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        let Some(obj) = value.as_object() else {
            diags.error(path, "expected an object of branches: `<name>: [steps]` (or `branches:` and `onError:`)");
            return None;
        };
        let nested = obj.get("branches").is_some_and(Value::is_object);
        if nested {
            for k in obj.keys() {
                if k != "branches" && k != "onError" {
                    diags.error(&path.key(k.clone()), format!("unknown key `{k}` (expected: branches, onError)"));
                }
            }
        }
        // `onError` is a word, a branch a list: the short form takes it beside the branches too.
        let on_error = match obj.get("onError") {
            None => None,
            Some(Value::String(s)) if s == "fail" => Some(OnError::Fail),
            Some(Value::String(s)) if s == "continue" => Some(OnError::Continue),
            Some(v) => {
                diags.error(&path.key("onError"), format!("expected `fail` or `continue`, found {v}"));
                None
            }
        };
        let (map, at) = if nested {
            (obj["branches"].as_object().expect("checked"), path.key("branches"))
        } else {
            (obj, path.clone())
        };
        if map.keys().all(|k| !nested && k == "onError") {
            diags.error(&at, "a `parallel` step needs at least one branch");
        }
        let mut branches = Vec::new();
        for (name, steps) in map {
            let here = at.key(name.clone());
            if !nested && name == "onError" {
                continue;
            }
            if !valid_name(name) {
                diags.error(
                    &here,
                    format!("invalid branch name `{name}`: expected letters, digits, `_` or `-`, starting with a letter or `_`"),
                );
            }
            if !steps.is_array() {
                diags.error(&here, "expected the branch's steps: a list");
                continue;
            }
            branches.push((name.clone(), decode_steps(steps, &here, diags)));
        }
        Some(ParallelConfig { branches, on_error, nested })
    }

    fn children(&self) -> Vec<(Path, &[ModelStepDef<StepConfig>])> {
        let base = if self.nested { Path::root().key("branches") } else { Path::root() };
        self.branches.iter().map(|(name, steps)| (base.key(name.clone()), steps.as_slice())).collect()
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let steps = g.subschema_for::<Vec<StepDef>>();
        schemars::json_schema!({
            "description": "Runs branches of steps side by side; the output is an object of each branch's last output.",
            "oneOf": [
                { "type": "object", "additionalProperties": false, "required": ["branches"],
                  "properties": {
                      "branches": { "type": "object", "minProperties": 1, "additionalProperties": steps },
                      "onError": { "enum": ["fail", "continue"] } } },
                { "type": "object", "minProperties": 1,
                  "properties": { "onError": { "enum": ["fail", "continue"] } },
                  "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$" },
                  "additionalProperties": steps }
            ]
        })
    }

    fn compile(&self, cx: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        let base = if self.nested { path.key("branches") } else { path.clone() };
        let inner = PlanCx { concurrent: true, ..*cx };
        let branches = self
            .branches
            .iter()
            .map(|(name, steps)| (name.clone(), compile_steps(steps, &inner, &base.key(name.clone()), diags)))
            .collect();
        Some(Box::new(Parallel { branches, on_error: self.on_error }))
    }
}

/// A compiled `parallel` step.
pub struct Parallel {
    branches: Vec<(String, Vec<CompiledStep>)>,
    on_error: Option<OnError>,
}

/// Branches to run, as the engine receives them.
pub struct Branches<'s> {
    /// Each branch's name and steps, in the order written.
    pub branches: &'s [(String, Vec<CompiledStep>)],
    /// What a failed branch does (none: the step's `onError`).
    pub on_error: Option<OnError>,
}

#[async_trait]
impl Step for Parallel {
    async fn run<'s>(&'s self, _: &Value, _: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        Ok(Outcome::Parallel(Branches { branches: &self.branches, on_error: self.on_error }))
    }

    fn rebuilds_output(&self) -> bool {
        true
    }
}
