//! From a definition document to runnable flows: decode and check the document, compile
//! every expression and template once, resolve webhook credentials against the config.
//!
//! The same function validates (`POST /v1/validate`, `flowgate validate`) and prepares what
//! the registry serves, so a document that validates is exactly one that runs.

use flowgate_expr::{Budget, Scope, Template};
use flowgate_model::schedule::Schedule;
use flowgate_model::trigger::{DEFAULT_MAX_MISSED, DEFAULT_MAX_PAGES, DEFAULT_REMEMBER, QueryParam, Respond};
use flowgate_model::{
    Diagnostic, Diagnostics, Diags, FirstRun, Format, Method, Missed, OnExhausted, Path, Retention, Trigger,
    WebhookAuth, decode_integration, source,
};
use flowgate_steps::{CompiledStep, Integration, PlanCx, compile_steps};
use flowgate_store::VersionRecord;
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

/// What starts a compiled flow.
#[allow(clippy::large_enum_variant)] // one per flow, built once
pub enum FlowTrigger {
    /// A webhook.
    Webhook(InboundWebhook),
    /// Only API/CLI runs.
    Manual,
    /// A schedule.
    Schedule(ScheduleSpec),
    /// Inbound e-mail.
    Email(InboundEmail),
    /// An HTTP source polled on a schedule.
    Poll(Box<PollSpec>),
    /// Runs when the integration is deployed, upgraded or reconfigured.
    Deploy,
    /// Runs when the integration is undeployed or deleted.
    Undeploy,
}

impl FlowTrigger {
    /// The trigger's key (`webhook`, `manual`, `schedule`, `email`, `poll`).
    pub fn kind(&self) -> &'static str {
        match self {
            FlowTrigger::Webhook(_) => "webhook",
            FlowTrigger::Manual => "manual",
            FlowTrigger::Schedule(_) => "schedule",
            FlowTrigger::Email(_) => "email",
            FlowTrigger::Poll(_) => "poll",
            FlowTrigger::Deploy => "deploy",
            FlowTrigger::Undeploy => "undeploy",
        }
    }

    /// When it fires, for schedules and polls.
    pub fn schedule(&self) -> Option<&Schedule> {
        match self {
            FlowTrigger::Schedule(s) => Some(&s.schedule),
            FlowTrigger::Poll(p) => Some(&p.schedule),
            _ => None,
        }
    }
}

/// A schedule trigger.
pub struct ScheduleSpec {
    /// When it fires.
    pub schedule: Schedule,
    /// What happens to slots missed while the server was down.
    pub missed: Missed,
    /// Most missed slots `missed: all` runs.
    pub max_missed: u32,
}

/// An inbound e-mail trigger.
pub struct InboundEmail {
    /// The explicit address (lower case); else one is derived from flow, integration and tenant.
    pub address: Option<String>,
    /// Accepted senders (`*` wildcards, case-insensitive); empty: all.
    pub allow_from: Vec<String>,
}

impl InboundEmail {
    /// True when `sender` may start this flow.
    pub fn allows(&self, sender: &str) -> bool {
        self.allow_from.is_empty()
            || self.allow_from.iter().any(|p| glob_match(&p.to_ascii_lowercase(), &sender.to_ascii_lowercase()))
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A poll trigger.
pub struct PollSpec {
    /// When it polls.
    pub schedule: Schedule,
    /// The request (templates see `$config` and `$state`).
    pub request: flowgate_steps::http::Request,
    /// The list of items in one response.
    pub items: Arc<Template>,
    /// An item's identity.
    pub id: Option<Arc<Template>>,
    /// An item's growing value.
    pub cursor: Option<Arc<Template>>,
    /// How pages are followed.
    pub paginate: Option<PaginateSpec>,
    /// Most pages one poll fetches.
    pub max_pages: u32,
    /// What the first poll does with its items.
    pub first_run: FirstRun,
    /// Item ids remembered.
    pub remember: usize,
}

/// How a poll finds its next page.
pub enum PaginateSpec {
    /// A URL read from the response.
    NextUrl(Arc<Template>),
    /// The `Link` header's `rel="next"`.
    LinkHeader,
    /// A page-number query parameter, from `start`.
    Page {
        /// Parameter name.
        param: String,
        /// First page.
        start: u64,
    },
    /// An offset query parameter advanced by the items received, from `start`.
    Offset {
        /// Parameter name.
        param: String,
        /// First offset.
        start: u64,
    },
}

/// A webhook trigger with its credentials resolved.
pub struct InboundWebhook {
    /// Path under `/hooks/<tenant>/`.
    pub path: String,
    /// Methods accepted.
    pub methods: Vec<Method>,
    /// Caller authentication.
    pub auth: AuthSpec,
    /// Signature verification of each delivery (with `auth`: both must pass).
    pub verify: Option<crate::verify::VerifySpec>,
    /// Declared query parameters.
    pub query: IndexMap<String, QueryParam>,
    /// How the caller is answered.
    pub respond: Respond,
}

/// Caller authentication with literal credentials.
pub enum AuthSpec {
    /// None.
    None,
    /// A header with a fixed value.
    Header {
        /// Header name.
        name: http::HeaderName,
        /// Expected value.
        value: String,
    },
    /// `Authorization: Bearer`.
    Bearer {
        /// Expected token.
        token: String,
    },
    /// `Authorization: Basic`.
    Basic {
        /// Expected `user:password`.
        credentials: String,
    },
    /// Labelled keys.
    ApiKey {
        /// Where the key is read from.
        location: KeyLocation,
        /// (label, key) pairs.
        keys: Vec<(String, String)>,
    },
}

/// Where an API key is carried.
pub enum KeyLocation {
    /// A header.
    Header(http::HeaderName),
    /// A query parameter.
    Query(String),
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
    let mut flows = Vec::with_capacity(definition.flows.len());
    for (i, f) in definition.flows.iter().enumerate() {
        let at = Path::root().key("flows").index(i);
        let cx = PlanCx { retry: f.retry.as_ref(), limits: &limit_names };
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
            _ => None,
        };
        let policy = ExecutionPolicy {
            order,
            concurrency: f.concurrency,
            dedup,
            diagnostics: f.diagnostics,
            retention: f.retention,
        };
        let trigger = match &f.trigger {
            Trigger::Webhook(w) => {
                let auth = resolve_auth(
                    w.auth.as_ref(),
                    &config,
                    !missing.is_empty(),
                    &at.key("trigger").key("webhook").key("auth"),
                    &mut diags,
                );
                FlowTrigger::Webhook(InboundWebhook {
                    path: w.normalized_path(),
                    methods: w.methods.clone(),
                    auth,
                    verify: crate::verify::compile(
                        w.verify.as_ref(),
                        &config,
                        !missing.is_empty(),
                        &at.key("trigger").key("webhook").key("verify"),
                        &mut diags,
                    ),
                    query: w.query.clone(),
                    respond: w.respond.clone(),
                })
            }
            Trigger::Manual(_) => FlowTrigger::Manual,
            Trigger::Deploy(_) => FlowTrigger::Deploy,
            Trigger::Undeploy(_) => FlowTrigger::Undeploy,
            Trigger::Schedule(t) => match t.schedule() {
                Some(schedule) => FlowTrigger::Schedule(ScheduleSpec {
                    schedule,
                    missed: t.missed,
                    max_missed: t.max_missed.unwrap_or(DEFAULT_MAX_MISSED),
                }),
                None => FlowTrigger::Manual, // reported by the model's checks
            },
            Trigger::Email(e) => FlowTrigger::Email(InboundEmail {
                address: e.address.as_deref().map(str::to_ascii_lowercase),
                allow_from: e.allow_from.clone(),
            }),
            Trigger::Poll(p) => {
                let at = at.key("trigger").key("poll");
                let request = flowgate_steps::http::Request::compile(&p.request, &at.key("request"), &mut diags);
                let items = flowgate_steps::util::expr(&p.items, &at.key("items"), &mut diags);
                let id = p.id.as_deref().and_then(|src| flowgate_steps::util::expr(src, &at.key("id"), &mut diags));
                let cursor =
                    p.cursor.as_deref().and_then(|src| flowgate_steps::util::expr(src, &at.key("cursor"), &mut diags));
                let paginate = p.paginate.as_ref().and_then(|pg| {
                    if let Some(src) = &pg.next_url {
                        flowgate_steps::util::expr(src, &at.key("paginate").key("nextUrl"), &mut diags)
                            .map(PaginateSpec::NextUrl)
                    } else if pg.link_header {
                        Some(PaginateSpec::LinkHeader)
                    } else if let Some(param) = &pg.page_param {
                        Some(PaginateSpec::Page { param: param.clone(), start: pg.start.unwrap_or(1) })
                    } else {
                        pg.offset_param
                            .as_ref()
                            .map(|param| PaginateSpec::Offset { param: param.clone(), start: pg.start.unwrap_or(0) })
                    }
                });
                match (p.schedule(), request, items) {
                    (Some(schedule), Some(request), Some(items)) => FlowTrigger::Poll(Box::new(PollSpec {
                        schedule,
                        request,
                        items,
                        id,
                        cursor,
                        paginate,
                        max_pages: p.paginate.as_ref().and_then(|pg| pg.max_pages).unwrap_or(DEFAULT_MAX_PAGES),
                        first_run: p.first_run,
                        remember: p.remember.unwrap_or(DEFAULT_REMEMBER) as usize,
                    })),
                    _ => FlowTrigger::Manual, // the problems are recorded
                }
            }
        };
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
    Ok(Draft { definition, document: doc.value, hash, flows, config, missing })
}

/// Resolves `{{ $config.x }}` in credentials now: they are fixed per deployment.
fn resolve_auth(
    auth: Option<&WebhookAuth>,
    config: &Value,
    values_missing: bool,
    path: &Path,
    diags: &mut Diags,
) -> AuthSpec {
    let mut resolve = |s: &str, at: Path| -> String {
        if !s.contains("{{") {
            return s.to_owned();
        }
        let empty = Map::new();
        let scope = Scope {
            trigger: &Value::Null,
            steps: &empty,
            config,
            flow: &Value::Null,
            execution: &Value::Null,
            item: None,
            state: None,
        };
        match Template::compile(&Value::String(s.to_owned()))
            .map_err(|e| e[0].error.message.clone())
            .and_then(|t| t.eval(&Value::Null, &scope, Budget::DEFAULT).map_err(|e| e.to_string()))
        {
            Ok(Value::String(v)) if !v.is_empty() => v,
            Ok(Value::Null) | Ok(Value::String(_)) => {
                // Unset config values keep the integration from going live; only a
                // deployment with every value set must give a credential.
                if !values_missing {
                    diags.error(&at, "the credential is empty (is the config value set?)");
                }
                String::new()
            }
            Ok(other) => flowgate_expr::to_text(&other),
            Err(e) => {
                diags.error(&at, format!("expression does not compile or fails: {e}"));
                String::new()
            }
        }
    };
    match auth {
        None | Some(WebhookAuth::None {}) => AuthSpec::None,
        Some(WebhookAuth::Header { name, value }) => {
            let at = path.key("header");
            let value = resolve(value, at.key("value"));
            match http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => AuthSpec::Header { name, value },
                Err(_) => AuthSpec::None, // reported by the model's checks
            }
        }
        Some(WebhookAuth::Bearer { token }) => {
            AuthSpec::Bearer { token: resolve(token, path.key("bearer").key("token")) }
        }
        Some(WebhookAuth::Basic { username, password }) => {
            let at = path.key("basic");
            let u = resolve(username, at.key("username"));
            let p = resolve(password, at.key("password"));
            AuthSpec::Basic { credentials: format!("{u}:{p}") }
        }
        Some(WebhookAuth::ApiKey { header, query, keys }) => {
            let at = path.key("apiKey");
            let location = match (header, query) {
                (_, Some(q)) => KeyLocation::Query(q.clone()),
                (Some(h), None) => match http::HeaderName::from_bytes(h.as_bytes()) {
                    Ok(h) => KeyLocation::Header(h),
                    // Invalid names are reported by the model's checks.
                    Err(_) => KeyLocation::Header(http::HeaderName::from_static("x-api-key")),
                },
                (None, None) => KeyLocation::Header(http::HeaderName::from_static("x-api-key")),
            };
            let keys = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.label.clone(), resolve(&k.secret, at.key("keys").index(i).key("secret"))))
                .collect();
            AuthSpec::ApiKey { location, keys }
        }
    }
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
                    live,
                    redactor: redactor.clone(),
                    log_source: f.log_source,
                    notify_emails: f.notify_emails,
                    notify_on_recovery: f.notify_on_recovery,
                };
                (f.slug, Arc::new(compiled))
            })
            .collect();
        CompiledIntegration { record, definition: self.definition, flows, deployed, missing: self.missing, stamp: 0 }
    }
}
