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
    /// Named rate limits shared by all the integration's flows and executions, on every node;
    /// an `http` step opts in with `limit: <name>`.
    #[serde(default)]
    pub limits: IndexMap<String, RateLimit>,
    /// Named connections (credentials for external systems) the flows and steps use by name.
    #[serde(default)]
    pub connections: IndexMap<String, crate::connection::Connection>,
    /// The flows.
    pub flows: Vec<F>,
    /// Test cases of the flows (`flowgate test`): a trigger event, mocked step outputs and
    /// what to expect.
    #[serde(default)]
    pub tests: Vec<crate::tests_def::FlowTest>,
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
    /// The flow's primary connection: connector steps use it unless they name another.
    #[serde(default)]
    pub connection: Option<String>,
    /// The flow's secondary connection (e.g. the system the data goes to).
    #[serde(default)]
    pub connection2: Option<String>,
    /// What starts the flow.
    pub trigger: T,
    /// The pipeline.
    pub steps: Vec<St>,
    /// Default retry policy of the flow's steps.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// Longest an execution may take from its event to its end, retries and waits included.
    /// Default: no limit.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Run executions one at a time, strictly in arrival order.
    #[serde(default)]
    pub ordered: bool,
    /// jq expression giving each event's key: strict arrival order within a key, keys in
    /// parallel (e.g. `$trigger.body.customerId`).
    #[serde(default)]
    pub order_by: Option<String>,
    /// When an ordered execution fails for good: `block` (default) holds its key until someone
    /// retries or skips it; `skip` lets the next one run.
    #[serde(default)]
    pub on_exhausted: OnExhausted,
    /// At most this many executions of the flow run at once, on all nodes together (more are
    /// queued, never dropped).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// How much step data successful runs keep: `full` (default), `errors` (steps and logs,
    /// without inputs and outputs), `minimal` (no step data). Failed runs keep everything.
    #[serde(default)]
    pub diagnostics: Diagnostics,
    /// How long and how many finished executions of this flow are kept (beside the global
    /// retention).
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Comma-separated addresses told by e-mail when an execution fails for good.
    #[serde(default)]
    pub notify_emails: Option<String>,
    /// Also tell them when the flow succeeds again after a failure.
    #[serde(default)]
    pub notify_on_recovery: bool,
    /// The tenant's log source (`PUT /v1/log-sources/{name}`) this flow's events stream to.
    #[serde(default)]
    pub log_source: Option<String>,
}

/// What happens to an ordered key when its head fails for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnExhausted {
    /// The key waits until the failed execution is retried or skipped.
    #[default]
    Block,
    /// The next execution of the key runs.
    Skip,
}

/// How much step data a successful run keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Diagnostics {
    /// Every step attempt with its input and output.
    #[default]
    Full,
    /// Step attempts and logs, without inputs and outputs.
    Errors,
    /// Nothing but the execution's status and result.
    Minimal,
}

/// Retention of finished executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Retention {
    /// Delete finished executions older than this.
    #[serde(default)]
    pub age: Option<Dur>,
    /// Keep at most this many finished executions (the newest).
    #[serde(default)]
    pub count: Option<u64>,
}

/// A rate limit: `rate` requests per unit of time, with bursts up to `burst`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained rate: `5/s`, `300/min`, `1000/h`.
    pub rate: String,
    /// Requests allowed at once after a quiet period. Default: one second's worth (at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// Requests per second, from `rate`.
    ///
    /// # Errors
    /// A message saying what was expected.
    pub fn per_second(&self) -> Result<f64, String> {
        let bad = || format!("invalid rate `{}`: expected requests per unit, like 5/s, 300/min or 1000/h", self.rate);
        let (n, unit) = self.rate.split_once('/').ok_or_else(bad)?;
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hr" | "hour" => 3600.0,
            "d" | "day" => 86400.0,
            _ => return Err(bad()),
        };
        if !(n > 0.0 && n.is_finite()) {
            return Err(bad());
        }
        Ok(n / per)
    }

    /// The burst, defaulting to one second's worth of the rate (at least 1).
    pub fn burst_or_default(&self) -> u32 {
        self.burst.unwrap_or_else(|| self.per_second().map_or(1, |r| r.ceil().max(1.0) as u32))
    }
}

/// A flow with its trigger and steps typed.
pub type Flow<S> = FlowDoc<Trigger, StepDef<S>>;

fn yes() -> bool {
    true
}

fn type_name(t: ConfigType) -> &'static str {
    match t {
        ConfigType::String => "string",
        ConfigType::Number => "number",
        ConfigType::Boolean => "boolean",
        ConfigType::Json => "JSON value",
        ConfigType::Secret => "string (secret)",
    }
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
    /// The only values it may take.
    #[serde(default)]
    pub allowed: Option<Vec<Value>>,
}

impl ConfigVar {
    /// Checks a value for this variable: its type and, when set, the allowed values.
    ///
    /// # Errors
    /// What is wrong (never the value itself: it may be a secret).
    pub fn check_value(&self, v: &Value) -> Result<(), String> {
        if !self.accepts(v) {
            return Err(format!("expected a {}", type_name(self.kind)));
        }
        if let Some(allowed) = &self.allowed
            && !allowed.contains(v)
        {
            let shown: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(format!("not one of the allowed values ({})", shown.join(", ")));
        }
        Ok(())
    }

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

/// Records a problem at `at` unless `name` is one of the integration's connections.
pub fn check_connection_name(name: &str, declared: &[&str], at: &Path, diags: &mut Diags) {
    if !declared.contains(&name) {
        let known = if declared.is_empty() {
            "the integration declares none".to_owned()
        } else {
            format!("declared: {}", declared.join(", "))
        };
        diags.error(at, format!("unknown connection `{name}` ({known} under `connections:`)"));
    }
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
        } else if let Some(d) = &var.default
            && let Err(m) = var.check_value(d)
        {
            diags.error(&at.key("default"), format!("default is {m}"));
        }
        for (j, a) in var.allowed.iter().flatten().enumerate() {
            if !var.accepts(a) {
                diags.error(
                    &at.key("allowed").index(j),
                    format!("allowed value does not match the type {}", type_name(var.kind)),
                );
            }
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
    for (name, limit) in &head.limits {
        let at = root.key("limits").key(name.clone());
        if let Err(m) = limit.per_second() {
            diags.error(&at.key("rate"), m);
        }
        if limit.burst == Some(0) {
            diags.error(&at.key("burst"), "burst must be at least 1");
        }
    }
    for (name, connection) in &head.connections {
        let at = root.key("connections").key(name.clone());
        if !is_slug(name) {
            diags.error(
                &at,
                format!("invalid connection name `{name}`: expected 1–64 lower-case letters, digits, `-` or `_`"),
            );
        }
        connection.check(&at, diags);
    }
    let connection_names: Vec<&str> = head.connections.keys().map(String::as_str).collect();
    let connection_kinds: Vec<(&str, &str)> = head.connections.iter().map(|(n, c)| (n.as_str(), c.kind())).collect();
    if head.flows.is_empty() {
        diags.error(&root.key("flows"), "an integration needs at least one flow");
    }
    let mut flows = Vec::with_capacity(head.flows.len());
    let mut slugs: HashMap<String, usize> = HashMap::new();
    let mut hook_paths: HashMap<String, usize> = HashMap::new();
    let mut mail_addresses: HashMap<String, usize> = HashMap::new();
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
        if fhead.ordered && fhead.order_by.is_some() {
            diags.error(
                &at.key("orderBy"),
                "set `ordered: true` (one order for the whole flow) or `orderBy` (an order per key), not both",
            );
        }
        if let Some(list) = &fhead.notify_emails {
            for a in list.split([',', ';', '\n']).map(str::trim).filter(|a| !a.is_empty()) {
                let addr = a.rsplit_once('<').map_or(a, |(_, r)| r.trim_end_matches('>'));
                if !crate::trigger::is_mail_address(addr) {
                    diags.error(&at.key("notifyEmails"), format!("invalid e-mail address `{a}`"));
                }
            }
        }
        if let Some(ls) = &fhead.log_source
            && !is_slug(ls)
        {
            diags.error(&at.key("logSource"), format!("invalid log source name `{ls}`: expected a slug"));
        }
        for (key, named) in [("connection", &fhead.connection), ("connection2", &fhead.connection2)] {
            if let Some(name) = named {
                check_connection_name(name, &connection_names, &at.key(key), diags);
            }
        }
        if fhead.concurrency == Some(0) {
            diags.error(&at.key("concurrency"), "concurrency must be at least 1");
        }
        let trigger: Option<Trigger> = decode(&fhead.trigger, &at.key("trigger"), diags);
        match &trigger {
            Some(Trigger::Schedule(t)) => t.check(&at.key("trigger").key("schedule"), diags),
            Some(Trigger::Email(t)) => {
                t.check(&at.key("trigger").key("email"), diags);
                if let Some(a) = &t.address
                    && let Some(first) = mail_addresses.insert(a.to_ascii_lowercase(), i)
                {
                    diags.error(
                        &at.key("trigger").key("email").key("address"),
                        format!("e-mail address `{a}` is already used by flows[{first}]"),
                    );
                }
            }
            Some(Trigger::Poll(t)) => t.check(&at.key("trigger").key("poll"), diags),
            Some(Trigger::Amqp(t)) => t.check(&connection_kinds, &at.key("trigger").key("amqp"), diags),
            Some(Trigger::Nats(t)) => t.check(&connection_kinds, &at.key("trigger").key("nats"), diags),
            Some(Trigger::Mqtt(t)) => t.check(&connection_kinds, &at.key("trigger").key("mqtt"), diags),
            _ => {}
        }
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
                connection: fhead.connection,
                connection2: fhead.connection2,
                trigger,
                steps,
                retry: fhead.retry,
                timeout: fhead.timeout,
                ordered: fhead.ordered,
                order_by: fhead.order_by,
                on_exhausted: fhead.on_exhausted,
                concurrency: fhead.concurrency,
                diagnostics: fhead.diagnostics,
                retention: fhead.retention,
                notify_emails: fhead.notify_emails,
                notify_on_recovery: fhead.notify_on_recovery,
                log_source: fhead.log_source,
            });
        }
    }
    let steps_of: Vec<(&str, &[StepDef<S>])> = flows.iter().map(|f| (f.flow.as_str(), f.steps.as_slice())).collect();
    for (i, t) in head.tests.iter().enumerate() {
        t.check(&root.key("tests").index(i), &steps_of, diags);
    }
    Some(Integration {
        integration: head.integration,
        name: head.name,
        description: head.description,
        config: head.config,
        limits: head.limits,
        connections: head.connections,
        flows,
        tests: head.tests,
    })
}
