//! `foreach`: runs nested steps once per item of a list.
//!
//! ```yaml
//! - id: each
//!   foreach:
//!     items: '.lines'            # jq giving the list
//!     concurrency: 4             # items in flight at once (default 1: one after another, in order)
//!     collect: '{sku: $item.sku, id: .id}'   # optional: what each item adds to the output
//!     onError: continue          # fail (default: the step's onError) | continue
//!     steps:
//!       - { id: push, http: { method: POST, url: "https://erp.example/lines", body: "{{ $item }}" } }
//! ```
//! Inside, `.` and `$item` are the item, and `$steps` holds the steps before the loop and the
//! item's own steps. The output is the list of what each item gave (its last step's output,
//! or `collect` of it), in the items' order. A filtered item (a `filter` step inside) adds
//! nothing; with `onError: continue` a failed item adds `{error: {…, item: <index>}}` and the
//! others go on, else the first failed item fails the loop.
//!
//! The engine runs the items ([`crate::Outcome::Each`]) and journals each item's steps under
//! its own keys (`each[3].push`) and each finished item as one entry (`each[3]`), so a crash
//! or a retry goes on mid-loop without redoing finished items. A loop's own entry holds its
//! output only when small; on a resume the output is put together from the items' entries,
//! so no entry grows with the list.

#[cfg(test)]
mod tests;

use crate::plan::{CompiledStep, PlanCx, compile_steps};
use crate::{Kind, Outcome, Step, StepConfig, StepCx, StepDef, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::step::decode_steps;
use flowgate_model::{Diags, OnError, Path, StepDef as ModelStepDef};
use serde_json::Value;
use std::sync::Arc;

/// Most items in flight at once.
pub const MAX_CONCURRENCY: u64 = 64;

/// A loop's config.
#[derive(Debug, Clone)]
pub struct ForeachConfig {
    /// jq giving the list.
    pub items: String,
    /// Run per item.
    pub steps: Vec<StepDef>,
    /// Items in flight at once.
    pub concurrency: u64,
    /// jq: what an item adds to the output (`.` its last output, `$item` the item).
    pub collect: Option<String>,
    /// What a failed item does (none: the step's `onError`).
    pub on_error: Option<OnError>,
}

const KEYS: [&str; 5] = ["items", "steps", "concurrency", "collect", "onError"];

impl Kind for ForeachConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        let Some(obj) = value.as_object() else {
            diags.error(path, "expected an object: `items` (jq giving a list) and `steps: [...]`");
            return None;
        };
        for k in obj.keys() {
            if !KEYS.contains(&k.as_str()) {
                diags.error(&path.key(k.clone()), format!("unknown key `{k}` (expected one of: {})", KEYS.join(", ")));
            }
        }
        let items = match obj.get("items") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                diags.error(&path.key("items"), "expected jq giving a list (a string)");
                None
            }
            None => {
                diags.error(path, "a loop needs `items`: jq giving the list");
                None
            }
        };
        let steps = match obj.get("steps") {
            Some(s) => decode_steps(s, &path.key("steps"), diags),
            None => {
                diags.error(path, "a loop needs `steps`: what runs for each item");
                Vec::new()
            }
        };
        let concurrency = match obj.get("concurrency") {
            None => 1,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => n,
                _ => {
                    diags.error(
                        &path.key("concurrency"),
                        format!("expected a whole number from 1 to {MAX_CONCURRENCY}, found {v}"),
                    );
                    1
                }
            },
        };
        let collect = match obj.get("collect") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                diags.error(&path.key("collect"), "expected jq (a string): what each item adds to the output");
                None
            }
        };
        let on_error = match obj.get("onError") {
            None => None,
            Some(Value::String(s)) if s == "fail" => Some(OnError::Fail),
            Some(Value::String(s)) if s == "continue" => Some(OnError::Continue),
            Some(v) => {
                diags.error(&path.key("onError"), format!("expected `fail` or `continue`, found {v}"));
                None
            }
        };
        Some(ForeachConfig { items: items?, steps, concurrency, collect, on_error })
    }

    fn children(&self) -> Vec<(Path, &[ModelStepDef<StepConfig>])> {
        vec![(Path::root().key("steps"), self.steps.as_slice())]
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let steps = g.subschema_for::<Vec<StepDef>>();
        schemars::json_schema!({
            "type": "object",
            "description": "Runs `steps` once per item of a list; the output is the list of what each item gave.",
            "additionalProperties": false,
            "required": ["items", "steps"],
            "properties": {
                "items": { "type": "string", "description": "jq giving the list (`.` is the step's input)" },
                "steps": steps,
                "concurrency": { "type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY, "default": 1,
                                 "description": "Items in flight at once; 1 runs them one after another, in order" },
                "collect": { "type": "string", "description": "jq: what each item adds to the output (`.` is its last output, `$item` the item)" },
                "onError": { "enum": ["fail", "continue"], "description": "A failed item fails the loop, or adds `{error}` and the others go on (default: the step's onError)" }
            }
        })
    }

    fn compile(&self, cx: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        let items = util::expr(&self.items, &path.key("items"), diags);
        let collect = match &self.collect {
            Some(c) => Some(util::expr(c, &path.key("collect"), diags)?),
            None => None,
        };
        let inner = PlanCx { concurrent: cx.concurrent || self.concurrency > 1, ..*cx };
        let steps = compile_steps(&self.steps, &inner, &path.key("steps"), diags);
        Some(Box::new(Foreach {
            items: items?,
            steps,
            concurrency: self.concurrency as usize,
            collect,
            on_error: self.on_error,
        }))
    }
}

/// A compiled loop.
pub struct Foreach {
    items: Arc<Template>,
    steps: Vec<CompiledStep>,
    concurrency: usize,
    collect: Option<Arc<Template>>,
    on_error: Option<OnError>,
}

/// A loop to run, as the engine receives it.
pub struct Each<'s> {
    /// The items, in order.
    pub items: Vec<Value>,
    /// The steps each item runs.
    pub steps: &'s [CompiledStep],
    /// Items in flight at once.
    pub concurrency: usize,
    /// What an item adds to the output, evaluated on its last output with `$item`.
    pub collect: Option<&'s Arc<Template>>,
    /// What a failed item does (none: the step's `onError`).
    pub on_error: Option<OnError>,
}

#[async_trait]
impl Step for Foreach {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let items = match cx.evaluator.eval(&self.items, input, &cx.scope).await? {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => {
                return Err(StepError::fatal(
                    "foreach_items",
                    format!("`items` gave {}: expected a list", crate::connector::text(&other)),
                ));
            }
        };
        Ok(Outcome::Each(Each {
            items,
            steps: &self.steps,
            concurrency: self.concurrency,
            collect: self.collect.as_ref(),
            on_error: self.on_error,
        }))
    }

    fn rebuilds_output(&self) -> bool {
        true
    }
}
