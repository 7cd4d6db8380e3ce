//! A step as written in a flow: an id, options shared by every kind (`when`, `retry`,
//! `onError`, `timeout`) and exactly one kind key (`http: {…}`, `transform: '…'`, …).
//!
//! The model does not know the kinds: they live in the `steps` crate, which implements
//! [`StepKind`] and closes the generic `StepDef<S>` (no model↔steps cycle).

use crate::decode::{closest, decode};
use crate::diag::{Diags, Path};
use crate::duration::Dur;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The set of step kinds a flow may use.
pub trait StepKind: Sized {
    /// Every kind's key, as written in YAML.
    const KINDS: &'static [&'static str];

    /// Decodes the config of `kind` from `value`, found at `path`.
    fn decode(kind: &str, value: &Value, path: &Path, diags: &mut Diags) -> Option<Self>;

    /// This kind's key.
    fn kind(&self) -> &'static str;

    /// Steps nested in this one (a switch's branches), each with its path relative to the
    /// kind's key, for checks that span the whole flow.
    fn children(&self) -> Vec<(Path, &[StepDef<Self>])>;

    /// The schema of each kind's config.
    fn schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)>;
}

/// What to do when a step fails for good (after its retries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnError {
    /// Fail the execution (default).
    #[default]
    Fail,
    /// Go on; the step's output is `{error: {code, message}}`.
    Continue,
}

/// Retry policy of a step or a flow. `attempts` counts every try, the first included.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total tries, the first included (1 = no retry). 1–100.
    pub attempts: u32,
    /// Delay between tries.
    #[serde(default)]
    pub backoff: Backoff,
    /// Random spread of each delay, as a fraction (0.2 = ±20 %). Default 0.2.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

fn default_jitter() -> f64 {
    0.2
}

/// Exponential backoff between tries: `initial`, then ×`multiplier` per try, at most `max`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Backoff {
    /// First delay. Default 500ms.
    #[serde(default = "default_initial")]
    pub initial: Dur,
    /// Longest delay. Default 30s.
    #[serde(default = "default_max")]
    pub max: Dur,
    /// Growth per try. Default 2.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: default_initial(), max: default_max(), multiplier: default_multiplier() }
    }
}

fn default_initial() -> Dur {
    Dur::millis(500)
}
fn default_max() -> Dur {
    Dur::secs(30)
}
fn default_multiplier() -> f64 {
    2.0
}

impl RetryPolicy {
    /// The policy used when neither the step nor its flow sets `retry:` — 3 tries, 500 ms
    /// doubling up to 30 s, ±20 % jitter. Only retryable failures are retried (connection
    /// errors, timeouts, 5xx, 429); others fail at once.
    pub fn default_policy() -> RetryPolicy {
        RetryPolicy { attempts: 3, backoff: Backoff::default(), jitter: default_jitter() }
    }

    pub(crate) fn check(&self, path: &Path, diags: &mut Diags) {
        if !(1..=100).contains(&self.attempts) {
            diags.error(
                &path.key("attempts"),
                "attempts must be between 1 and 100 (it counts every try, the first included)",
            );
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            diags.error(&path.key("jitter"), "jitter must be between 0 and 1");
        }
        if self.backoff.multiplier < 1.0 || self.backoff.multiplier > 100.0 {
            diags.error(&path.key("backoff").key("multiplier"), "multiplier must be between 1 and 100");
        }
        if self.backoff.max < self.backoff.initial {
            diags.error(&path.key("backoff").key("max"), "max must not be shorter than initial");
        }
    }
}

/// The options every step kind has.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepOptions {
    /// Unique within the flow: letters, digits, `_` and `-`, starting with a letter or `_`.
    /// Referenced as `$steps.<id>` (or `$steps["<id>"]` when it has hyphens).
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
    /// What the step is for.
    #[serde(default)]
    pub description: Option<String>,
    /// jq expression: the step runs only when it is true; otherwise it is skipped and passes
    /// its input through.
    #[serde(default)]
    pub when: Option<String>,
    /// Retry policy; default: the flow's, else 3 tries (see `RetryPolicy`).
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// `fail` (default) or `continue` when the step fails for good.
    #[serde(default)]
    pub on_error: OnError,
    /// Longest one attempt may take. Default depends on the kind (http: 30s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Webhooks sent when the step starts and when it completes.
    #[serde(default)]
    pub hooks: Option<crate::outbound::StepHooks>,
}

/// The option keys, beside which a step has exactly one kind key.
pub const OPTION_KEYS: [&str; 8] = ["id", "name", "description", "when", "retry", "onError", "timeout", "hooks"];

/// One step: its options and its kind's config.
#[derive(Debug, Clone)]
pub struct StepDef<S> {
    /// Position in its list as written (steps that did not decode are left out of lists, so
    /// later checks locate problems by this, not by the position in the decoded list).
    pub index: usize,
    /// Options shared by every kind.
    pub options: StepOptions,
    /// The kind and its config.
    pub kind: S,
}

impl<S> StepDef<S> {
    /// The step's id.
    pub fn id(&self) -> &str {
        &self.options.id
    }
}

/// Decodes a list of steps found at `path`.
pub fn decode_steps<S: StepKind>(value: &Value, path: &Path, diags: &mut Diags) -> Vec<StepDef<S>> {
    let Some(items) = value.as_array() else {
        diags.error(path, "expected a list of steps");
        return Vec::new();
    };
    decode_step_list(items, path, diags)
}

/// Decodes the steps `items`, a list found at `path`.
pub fn decode_step_list<S: StepKind>(items: &[Value], path: &Path, diags: &mut Diags) -> Vec<StepDef<S>> {
    items.iter().enumerate().filter_map(|(i, v)| decode_step(v, i, &path.index(i), diags)).collect()
}

fn decode_step<S: StepKind>(value: &Value, index: usize, path: &Path, diags: &mut Diags) -> Option<StepDef<S>> {
    let Some(obj) = value.as_object() else {
        diags.error(path, format!("expected a step (an object with `id` and one of: {})", S::KINDS.join(", ")));
        return None;
    };
    let mut options = Map::new();
    let mut kinds = Vec::new();
    let mut unknown = 0;
    for (k, v) in obj {
        if OPTION_KEYS.contains(&k.as_str()) {
            options.insert(k.clone(), v.clone());
        } else if S::KINDS.contains(&k.as_str()) {
            kinds.push(k.as_str());
        } else {
            let mut msg = format!("unknown step kind or key `{k}`");
            let candidates: Vec<&str> = S::KINDS.iter().chain(OPTION_KEYS.iter()).copied().collect();
            if let Some(c) = closest(k, &candidates) {
                msg.push_str(&format!("; did you mean `{c}`?"));
            }
            msg.push_str(&format!(" (step kinds: {})", S::KINDS.join(", ")));
            diags.error(&path.key(k.clone()), msg);
            unknown += 1;
        }
    }
    let options: Option<StepOptions> = decode(&Value::Object(options), path, diags);
    if let Some(o) = &options {
        if let Some(r) = &o.retry {
            r.check(&path.key("retry"), diags);
        }
        if let Some(h) = &o.hooks {
            if let Some(w) = &h.on_start {
                w.check(&path.key("hooks").key("onStart"), diags);
            }
            if let Some(w) = &h.on_complete {
                w.check(&path.key("hooks").key("onComplete"), diags);
            }
        }
        check_id(&o.id, path, diags);
    }
    let kind = match kinds.as_slice() {
        [kind] => S::decode(kind, &obj[*kind], &path.key(*kind), diags),
        [] => {
            if unknown == 0 {
                diags.error(path, format!("the step has no kind; expected one of: {}", S::KINDS.join(", ")));
            }
            None
        }
        many => {
            diags.error(path, format!("a step has exactly one kind, found {}", many.join(" and ")));
            None
        }
    };
    Some(StepDef { index, options: options?, kind: kind? })
}

fn check_id(id: &str, path: &Path, diags: &mut Diags) {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        diags.error(
            &path.key("id"),
            format!("invalid step id `{id}`: expected letters, digits, `_` or `-`, starting with a letter or `_`"),
        );
    } else if let Some(first) = diags.step_ids.get(id).cloned() {
        diags.error(&path.key("id"), format!("duplicate step id `{id}` (also at {first})"));
    } else {
        diags.step_ids.insert(id.to_owned(), path.to_string());
    }
}

impl<S: StepKind> JsonSchema for StepDef<S> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let options = StepOptions::json_schema(generator);
        let mut properties = options.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let kinds = S::schemas(generator);
        let one_of: Vec<Value> = kinds.iter().map(|(k, _)| serde_json::json!({ "required": [k] })).collect();
        for (k, s) in kinds {
            properties.insert(k.to_owned(), s.to_value());
        }
        schemars::json_schema!({
            "description": "A step: an `id`, options, and exactly one kind key.",
            "type": "object",
            "properties": properties,
            "required": ["id"],
            "additionalProperties": false,
            "oneOf": one_of,
        })
    }
}
