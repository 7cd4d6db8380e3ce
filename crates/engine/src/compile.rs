//! From a definition document to runnable flows: decode and check the document, compile
//! every expression and template once, resolve webhook credentials against the config.
//!
//! The same function validates (`POST /v1/validate`, `flowgate validate`) and prepares what
//! the registry serves, so a document that validates is exactly one that runs.

use flowgate_expr::Template;

pub use crate::triggers::{
    AuthSpec, FlowTrigger, InboundEmail, InboundWebhook, KeyLocation, PaginateSpec, PollSpec, ScheduleSpec,
};
use flowgate_model::{
    Diagnostic, Diagnostics, Diags, Format, OnExhausted, Path, Retention, Trigger, decode_integration, source,
};
use flowgate_steps::{CompiledStep, Integration, PlanCx, compile_steps};
use flowgate_store::{FlowKey, VersionRecord};
use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A checked definition, compiled but not yet stored.
pub struct Draft {
    /// The typed definition.
    pub definition: Integration,
    /// The document as JSON (what is stored and hashed).
    pub document: Value,
    /// SHA-256 of the format and the text as applied.
    pub hash: String,
    flows: Vec<DraftFlow>,
    config: Value,
    /// Required config variables without a value: the integration cannot be live.
    pub missing: Vec<String>,
    /// The connections, resolved for the deployment.
    connections: crate::connections::ConnectionSpecs,
}

struct DraftFlow {
    slug: String,
    name: Option<String>,
    active: bool,
    trigger: FlowTrigger,
    steps: Vec<CompiledStep>,
    timeout: Option<Duration>,
    policy: ExecutionPolicy,
    log_source: Option<String>,
    notify_emails: Vec<String>,
    notify_on_recovery: bool,
}

/// How a flow's executions run: order, concurrency, deduplication of events, what is kept
/// ("delivery" is only ever an outbound message).
#[derive(Clone)]
pub struct ExecutionPolicy {
    /// Ordered delivery, if the flow is ordered.
    pub order: Option<Order>,
    /// At most this many running at once, across nodes.
    pub concurrency: Option<u32>,
    /// Idempotent ingress (webhooks).
    pub dedup: Option<DedupSpec>,
    /// What successful runs keep.
    pub diagnostics: Diagnostics,
    /// Retention of finished executions of this flow.
    pub retention: Option<Retention>,
}

impl ExecutionPolicy {
    /// True when executions must go through the queue (an order or a cap to respect).
    pub fn gated(&self) -> bool {
        self.order.is_some() || self.concurrency.is_some()
    }
}

/// Ordered delivery.
#[derive(Clone)]
pub struct Order {
    /// The key expression (`orderBy`); `None` orders the whole flow (`ordered: true`).
    pub by: Option<Arc<Template>>,
    /// What a failed head does to its key.
    pub on_exhausted: OnExhausted,
}

/// Idempotent ingress of a webhook flow.
#[derive(Clone)]
pub struct DedupSpec {
    /// The identity expression (`dedupKey`); `None`: the `Idempotency-Key` header if present.
    pub key: Option<Arc<Template>>,
    /// How long an identity is remembered.
    pub window: Duration,
}

/// Default window of delivery identities.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A named rate limit of an integration.
#[derive(Debug, Clone, Copy)]
pub struct LimitSpec {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// One runnable flow of one integration version.
pub struct CompiledFlow {
    /// Owner.
    pub tenant: String,
    /// Integration slug.
    pub integration: String,
    /// Flow slug.
    pub slug: String,
    /// Display name.
    pub name: Option<String>,
    /// The version it belongs to.
    pub version_id: i64,
    /// The version's number.
    pub version: i64,
    /// Inactive flows do not run.
    pub active: bool,
    /// What starts it.
    pub trigger: FlowTrigger,
    /// The plan.
    pub steps: Vec<CompiledStep>,
    /// `$config`.
    pub config: Value,
    /// `$flow`.
    pub flow_var: Value,
    /// Longest an execution may take from its event to its end.
    pub timeout: Option<Duration>,
    /// Order, concurrency, deduplication, diagnostics.
    pub policy: ExecutionPolicy,
    /// The integration's rate limits.
    pub limits: Arc<HashMap<String, LimitSpec>>,
    /// The integration's connections, resolved for the deployment.
    pub connections: crate::connections::ConnectionSpecs,
    /// The integration is live: deployed, every required config value set. Only live
    /// flows are triggered (webhooks, e-mail, schedules, polls).
    pub live: bool,
    /// Replaces the integration's secret values (secret config values, literal
    /// credentials) in everything an execution records.
    pub redactor: Arc<flowgate_secrets::Redactor>,
    /// The log source its events stream to.
    pub log_source: Option<String>,
    /// Who is told by e-mail when an execution fails for good.
    pub notify_emails: Vec<String>,
    /// Tell them too when it succeeds again after a failure.
    pub notify_on_recovery: bool,
}

impl CompiledFlow {
    /// Which flow of which tenant's integration this is.
    pub fn key(&self) -> FlowKey<'_> {
        FlowKey { tenant: &self.tenant, integration: &self.integration, flow: &self.slug }
    }

    /// The stored row of this flow's trigger state.
    pub(crate) fn state_row(&self, state: &Value, now: i64) -> flowgate_store::TriggerState {
        flowgate_store::TriggerState {
            tenant_id: self.tenant.clone(),
            integration: self.integration.clone(),
            flow: self.slug.clone(),
            state: state.to_string(),
            updated_at: now,
        }
    }

    /// The webhook spec, for webhook flows.
    pub fn webhook(&self) -> Option<&InboundWebhook> {
        match &self.trigger {
            FlowTrigger::Webhook(w) => Some(w),
            _ => None,
        }
    }

    /// The inbound e-mail address of an e-mail flow: its own, or
    /// `<flow>.<integration>.<tenant>@<domain>` (unique: slugs hold no dots).
    pub fn email_address(&self, domain: &str) -> Option<String> {
        match &self.trigger {
            // Addresses are matched without regard to case (`email_route` lowercases).
            FlowTrigger::Email(e) => Some(
                e.address
                    .clone()
                    .unwrap_or_else(|| format!("{}.{}.{}@{}", self.slug, self.integration, self.tenant, domain))
                    .to_ascii_lowercase(),
            ),
            _ => None,
        }
    }
}

/// A stored integration version with its flows compiled.
pub struct CompiledIntegration {
    /// The stored version.
    pub record: VersionRecord,
    /// The typed definition.
    pub definition: Integration,
    /// Flows by slug, in document order.
    pub flows: IndexMap<String, Arc<CompiledFlow>>,
    /// Deployed (else stored but undeployed).
    pub deployed: bool,
    /// Required config variables without a value.
    pub missing: Vec<String>,
    /// The connections, resolved for the deployment.
    pub connections: crate::connections::ConnectionSpecs,
    /// Which state of the deployment it was built from (its `updated_at`): of two builds of
    /// one version, the registry keeps the later.
    pub stamp: i64,
}

impl CompiledIntegration {
    /// Live: deployed and every required value set.
    pub fn live(&self) -> bool {
        self.deployed && self.missing.is_empty()
    }
}

/// The webhook URL of a path in a tenant.
pub fn webhook_url(public_url: &str, tenant: &str, path: &str) -> String {
    format!("{}/hooks/{tenant}/{path}", public_url.trim_end_matches('/'))
}

/// Checks and compiles a document.
///
/// # Errors
/// Every problem found, located.
pub fn compile(text: &str, format: Format) -> Result<Draft, Vec<Diagnostic>> {
    compile_in(text, format, &Map::new())
}

/// Checks and compiles a document for a deployment whose config values are `values`
/// (plaintext; each overrides the variable's default). Credentials that come from config
/// values still unset do not make it invalid: the integration is not live until they are.
///
/// # Errors
/// Every problem found, located.
pub fn compile_in(text: &str, format: Format, values: &Map<String, Value>) -> Result<Draft, Vec<Diagnostic>> {
    let doc = source::parse(text, format).map_err(|d| vec![d])?;
    let mut diags = Diags::new(doc.locations.clone());
    let definition = decode_integration::<flowgate_steps::StepConfig>(&doc, &mut diags);
    let Some(definition) = definition else { return Err(diags.into_vec()) };
    let mut config_map = definition.default_config();
    for (k, v) in values {
        if definition.config.contains_key(k) && !v.is_null() {
            config_map.insert(k.clone(), v.clone());
        }
    }
    let missing: Vec<String> = definition
        .config
        .iter()
        .filter(|(name, var)| var.required && !config_map.contains_key(*name))
        .map(|(name, _)| name.clone())
        .collect();
    let config = Value::Object(config_map);
    let flow_names: Vec<String> = definition.flows.iter().map(|f| f.flow.clone()).collect();
    let limit_names: Vec<String> = definition.limits.keys().cloned().collect();
    let connection_kinds: Vec<(&str, &str)> =
        definition.connections.iter().map(|(name, c)| (name.as_str(), c.kind())).collect();
    let connections = crate::connections::compile(&definition.connections, &config, !missing.is_empty(), &mut diags);
    let mut flows = Vec::with_capacity(definition.flows.len());
    for (i, f) in definition.flows.iter().enumerate() {
        let at = Path::root().key("flows").index(i);
        let flow_connections: Vec<&str> =
            [&f.connection, &f.connection2].into_iter().flatten().map(String::as_str).collect();
        let cx = PlanCx {
            retry: f.retry.as_ref(),
            limits: &limit_names,
            connections: &connection_kinds,
            flow_connections: &flow_connections,
            concurrent: false,
        };
        let steps = compile_steps(&f.steps, &cx, &at.key("steps"), &mut diags);
        flowgate_steps::call::check_targets(&f.steps, &flow_names, &at.key("steps"), &mut diags);
        let order = if f.ordered {
            Some(Order { by: None, on_exhausted: f.on_exhausted })
        } else {
            f.order_by.as_deref().map(|src| Order {
                by: flowgate_steps::util::expr(src, &at.key("orderBy"), &mut diags),
                on_exhausted: f.on_exhausted,
            })
        };
        let dedup = match &f.trigger {
            Trigger::Webhook(w) => Some(DedupSpec {
                key: w.dedup_key.as_deref().and_then(|src| {
                    flowgate_steps::util::expr(src, &at.key("trigger").key("webhook").key("dedupKey"), &mut diags)
                }),
                window: w.dedup_window.map_or(DEFAULT_DEDUP_WINDOW, |d| d.0),
            }),
            // E-mail has no default identity: the same message twice is two runs unless asked.
            Trigger::Email(e) => e.dedup_key.as_deref().map(|src| DedupSpec {
                key: flowgate_steps::util::expr(src, &at.key("trigger").key("email").key("dedupKey"), &mut diags),
                window: e.dedup_window.map_or(DEFAULT_DEDUP_WINDOW, |d| d.0),
            }),
            // A broker's message has its own identity (see `triggers::brokers`); a `dedupKey`
            // replaces it.
            Trigger::Amqp(_) | Trigger::Nats(_) | Trigger::Mqtt(_) => {
                let (kind, key, window) = match &f.trigger {
                    Trigger::Amqp(t) => ("amqp", &t.dedup_key, t.dedup_window),
                    Trigger::Nats(t) => ("nats", &t.dedup_key, t.dedup_window),
                    Trigger::Mqtt(t) => ("mqtt", &t.dedup_key, t.dedup_window),
                    _ => unreachable!("matched above"),
                };
                key.as_deref().map(|src| DedupSpec {
                    key: flowgate_steps::util::expr(src, &at.key("trigger").key(kind).key("dedupKey"), &mut diags),
                    window: window.map_or(DEFAULT_DEDUP_WINDOW, |d| d.0),
                })
            }
            _ => None,
        };
        let policy = ExecutionPolicy {
            order,
            concurrency: f.concurrency,
            dedup,
            diagnostics: f.diagnostics,
            retention: f.retention,
        };
        let trigger = crate::triggers::compile(&f.trigger, &config, !missing.is_empty(), &at, &mut diags);
        flows.push(DraftFlow {
            slug: f.flow.clone(),
            name: f.name.clone(),
            active: f.active,
            trigger,
            steps,
            timeout: f.timeout.map(|d| d.0),
            policy,
            log_source: f.log_source.clone(),
            notify_emails: f
                .notify_emails
                .as_deref()
                .map(|l| {
                    l.split([',', ';', '\n']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect()
                })
                .unwrap_or_default(),
            notify_on_recovery: f.notify_on_recovery,
        });
    }
    if !diags.is_empty() {
        return Err(diags.into_vec());
    }
    // Every change to the text is a new version (comments included), as users expect.
    let mut hasher = Sha256::new();
    hasher.update(match format {
        Format::Yaml => b"yaml\n".as_slice(),
        Format::Json => b"json\n".as_slice(),
    });
    hasher.update(text.as_bytes());
    let hash = hex::encode(hasher.finalize());
    Ok(Draft { definition, document: doc.value, hash, flows, config, missing, connections })
}

impl Draft {
    /// The routes of the draft's active webhook flows.
    pub fn routes(&self) -> Vec<flowgate_store::Route> {
        self.flows
            .iter()
            .filter(|f| f.active)
            .filter_map(|f| match &f.trigger {
                FlowTrigger::Webhook(w) => Some(flowgate_store::Route { path: w.path.clone(), flow: f.slug.clone() }),
                _ => None,
            })
            .collect()
    }

    /// The explicit inbound e-mail addresses of the draft's flows (active or not: an address
    /// stays reserved while its flow is switched off).
    pub fn emails(&self) -> Vec<flowgate_store::EmailRoute> {
        self.flows
            .iter()
            .filter_map(|f| match &f.trigger {
                FlowTrigger::Email(InboundEmail { address: Some(a), .. }) => {
                    Some(flowgate_store::EmailRoute { address: a.clone(), flow: f.slug.clone() })
                }
                _ => None,
            })
            .collect()
    }

    /// Binds the draft to its stored version.
    pub fn into_compiled(
        self,
        record: VersionRecord,
        public_url: &str,
        deployed: bool,
        redactor: Arc<flowgate_secrets::Redactor>,
    ) -> CompiledIntegration {
        let tenant = record.tenant_id.clone();
        let live = deployed && self.missing.is_empty();
        let limits: Arc<HashMap<String, LimitSpec>> = Arc::new(
            self.definition
                .limits
                .iter()
                .filter_map(|(name, l)| {
                    l.per_second()
                        .ok()
                        .map(|per_second| (name.clone(), LimitSpec { per_second, burst: l.burst_or_default() }))
                })
                .collect(),
        );
        let urls: Map<String, Value> = self
            .flows
            .iter()
            .filter_map(|f| match &f.trigger {
                FlowTrigger::Webhook(w) => Some((f.slug.clone(), json!(webhook_url(public_url, &tenant, &w.path)))),
                _ => None,
            })
            .collect();
        let flows = self
            .flows
            .into_iter()
            .map(|f| {
                let flow_var = json!({
                    "integration": record.slug,
                    "flow": f.slug,
                    "name": f.name,
                    "version": record.version,
                    "webhookUrl": urls.get(&f.slug).cloned().unwrap_or(Value::Null),
                    "webhookUrls": urls,
                    "tenant": tenant,
                });
                let compiled = CompiledFlow {
                    tenant: tenant.clone(),
                    integration: record.slug.clone(),
                    slug: f.slug.clone(),
                    name: f.name,
                    version_id: record.id,
                    version: record.version,
                    active: f.active,
                    trigger: f.trigger,
                    steps: f.steps,
                    config: self.config.clone(),
                    flow_var,
                    timeout: f.timeout,
                    policy: f.policy,
                    limits: limits.clone(),
                    connections: self.connections.clone(),
                    live,
                    redactor: redactor.clone(),
                    log_source: f.log_source,
                    notify_emails: f.notify_emails,
                    notify_on_recovery: f.notify_on_recovery,
                };
                (f.slug, Arc::new(compiled))
            })
            .collect();
        CompiledIntegration {
            record,
            definition: self.definition,
            flows,
            deployed,
            missing: self.missing,
            connections: self.connections,
            stamp: 0,
        }
    }
}
