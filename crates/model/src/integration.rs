//! Integrations and flows: the top of a definition document (DESIGN §2).

use crate::decode::decode;
use crate::diag::{Diags, Path};
use crate::duration::Dur;
use crate::source::Document;
use crate::step::{RetryPolicy, StepDef, StepKind, decode_step_list};
use crate::trigger::Trigger;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// An integration: flows that belong together and the config they share.
///
/// Generic over how flows are held so the same type describes the document (for the JSON
/// Schema and the typed result) and the first decoding pass (`IntegrationDoc<Value>`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Integration", deny_unknown_fields, bound = "F: JsonSchema")]
pub struct IntegrationDoc<F> {
    /// Slug, unique within the tenant: lower-case letters, digits, `-` and `_`.
    pub integration: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// What the integration does.
    #[serde(default)]
    pub description: Option<String>,
    /// Config variables shared by the flows, read as `$config.<name>`.
    #[serde(default)]
    pub config: IndexMap<String, ConfigVar>,
    /// The flows.
    pub flows: Vec<F>,
}

/// An integration with typed flows.
pub type Integration<S> = IntegrationDoc<Flow<S>>;

/// A flow: one trigger and a pipeline of steps.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Flow", deny_unknown_fields, bound = "T: JsonSchema, St: JsonSchema")]
pub struct FlowDoc<T, St> {
    /// Slug, unique within the integration: lower-case letters, digits, `-` and `_`.
    pub flow: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// What the flow does.
    #[serde(default)]
    pub description: Option<String>,
    /// Inactive flows do not run (their webhooks answer 404). Default true.
    #[serde(default = "yes")]
    pub active: bool,
    /// What starts the flow.
    pub trigger: T,
    /// The pipeline.
    pub steps: Vec<St>,
    /// Default retry policy of the flow's steps.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// Longest an execution may run in all, retries included. Default: no limit.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// A flow with its trigger and steps typed.
pub type Flow<S> = FlowDoc<Trigger, StepDef<S>>;

fn yes() -> bool {
    true
}

/// Types of config variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConfigType {
    /// Text.
    String,
    /// A number.
    Number,
    /// true or false.
    Boolean,
    /// Any JSON value.
    Json,
    /// Text that is never shown back.
    Secret,
}

/// A config variable.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ConfigVar {
    /// The variable's type.
    #[serde(rename = "type")]
    pub kind: ConfigType,
    /// Value used when the deployment sets none.
    #[serde(default)]
    pub default: Option<Value>,
    /// A value must be set before the integration goes live.
    #[serde(default)]
    pub required: bool,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

impl ConfigVar {
    fn accepts(&self, v: &Value) -> bool {
        match self.kind {
            ConfigType::String | ConfigType::Secret => v.is_string(),
            ConfigType::Number => v.is_number(),
            ConfigType::Boolean => v.is_boolean(),
            ConfigType::Json => true,
        }
    }
}

impl<S> Integration<S> {
    /// The config values of a deployment that sets nothing: each variable's default.
    pub fn default_config(&self) -> serde_json::Map<String, Value> {
        self.config.iter().filter_map(|(k, v)| v.default.clone().map(|d| (k.clone(), d))).collect()
    }

    /// The flow named `slug`.
    pub fn flow(&self, slug: &str) -> Option<&Flow<S>> {
        self.flows.iter().find(|f| f.flow == slug)
    }
}

/// True for slugs of lower-case letters, digits, `-` and `_`, 1–64 long, starting with a
/// letter or digit.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Decodes and checks a document, collecting every structural problem in `diags`.
/// Returns the typed integration when nothing stopped decoding (there may still be problems
/// recorded; the caller decides).
pub fn decode_integration<S: StepKind>(doc: &Document, diags: &mut Diags) -> Option<Integration<S>> {
    let root = Path::root();
    if !doc.value.is_object() {
        diags.error(&root, "expected an integration (an object with `integration` and `flows`)");
        return None;
    }
    let head: IntegrationDoc<Value> = decode(&doc.value, &root, diags)?;
    if !is_slug(&head.integration) {
        diags.error(
            &root.key("integration"),
            format!("invalid slug `{}`: expected 1–64 lower-case letters, digits, `-` or `_`", head.integration),
        );
    }
    for (name, var) in &head.config {
        let at = root.key("config").key(name.clone());
        if let Some(d) = &var.default
            && !var.accepts(d)
        {
            diags.error(&at.key("default"), format!("default does not match the type {:?}", var.kind).to_lowercase());
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            diags.error(
                &at,
                format!(
                    "invalid config name `{name}`: expected letters, digits and `_` (it is read as $config.{name})"
                ),
            );
        }
    }
    if head.flows.is_empty() {
        diags.error(&root.key("flows"), "an integration needs at least one flow");
    }
    let mut flows = Vec::with_capacity(head.flows.len());
    let mut slugs: HashMap<String, usize> = HashMap::new();
    let mut hook_paths: HashMap<String, usize> = HashMap::new();
    for (i, fv) in head.flows.iter().enumerate() {
        let at = root.key("flows").index(i);
        if !fv.is_object() {
            diags.error(&at, "expected a flow (an object with `flow`, `trigger` and `steps`)");
            continue;
        }
        let Some(fhead) = decode::<FlowDoc<Value, Value>>(fv, &at, diags) else { continue };
        if !is_slug(&fhead.flow) {
            diags.error(
                &at.key("flow"),
                format!("invalid slug `{}`: expected 1–64 lower-case letters, digits, `-` or `_`", fhead.flow),
            );
        }
        if let Some(first) = slugs.insert(fhead.flow.clone(), i) {
            diags.error(&at.key("flow"), format!("duplicate flow `{}` (also flows[{first}])", fhead.flow));
        }
        if let Some(r) = &fhead.retry {
            r.check(&at.key("retry"), diags);
        }
        let trigger: Option<Trigger> = decode(&fhead.trigger, &at.key("trigger"), diags);
        if let Some(Trigger::Webhook(w)) = &trigger {
            w.check(&at.key("trigger").key("webhook"), diags);
            if let Some(first) = hook_paths.insert(w.normalized_path(), i) {
                diags.error(
                    &at.key("trigger").key("webhook").key("path"),
                    format!("webhook path `{}` is already used by flows[{first}]", w.normalized_path()),
                );
            }
        }
        diags.step_ids.clear();
        let steps = decode_step_list::<S>(&fhead.steps, &at.key("steps"), diags);
        if let Some(trigger) = trigger {
            flows.push(Flow {
                flow: fhead.flow,
                name: fhead.name,
                description: fhead.description,
                active: fhead.active,
                trigger,
                steps,
                retry: fhead.retry,
                timeout: fhead.timeout,
            });
        }
    }
    Some(Integration {
        integration: head.integration,
        name: head.name,
        description: head.description,
        config: head.config,
        flows,
    })
}
