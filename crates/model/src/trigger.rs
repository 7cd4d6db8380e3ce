//! Triggers: what starts a flow's executions. Exactly one per flow.

use crate::diag::{Diags, Path};
use crate::duration::Dur;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What starts the flow.
#[allow(clippy::large_enum_variant)] // parsed once per apply, never on a hot path
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// An HTTP request to `/hooks/<tenant>/<path>`.
    Webhook(WebhookTrigger),
    /// Only runs started through the API or CLI (`POST …/flows/<flow>/run`).
    Manual(ManualTrigger),
    /// On a schedule: a preset (`every: 15min`) or a cron expression in a time zone.
    Schedule(ScheduleTrigger),
    /// A mail received by the built-in SMTP receiver (`flowgate serve --smtp-listen`).
    Email(EmailTrigger),
    /// On a schedule, an HTTP request whose new items each start an execution.
    Poll(PollTrigger),
    /// When the integration is deployed, upgraded or its config changes.
    Deploy(ManualTrigger),
    /// When the integration is undeployed or deleted.
    Undeploy(ManualTrigger),
}

impl Trigger {
    /// The trigger's key (`webhook`, `manual`).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Webhook(_) => "webhook",
            Trigger::Manual(_) => "manual",
            Trigger::Schedule(_) => "schedule",
            Trigger::Email(_) => "email",
            Trigger::Poll(_) => "poll",
            Trigger::Deploy(_) => "deploy",
            Trigger::Undeploy(_) => "undeploy",
        }
    }
}

/// What a schedule does about slots that passed while the server was down (or the flow was
/// being applied): `skip` (default) runs none of them, `last` runs the latest once, `all`
/// runs each (at most `maxMissed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Missed {
    /// Run none of the missed slots; wait for the next one.
    #[default]
    Skip,
    /// Run once, for the latest missed slot.
    Last,
    /// Run every missed slot, oldest first (at most `maxMissed`).
    All,
}

/// Most missed slots `missed: all` runs by default.
pub const DEFAULT_MAX_MISSED: u32 = 100;

/// When a schedule fires. Exactly one of `every` and `cron`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ScheduleTrigger {
    /// A preset aligned to the wall clock in `timezone`: `1min`, `5min`, `15min`, `1hr`,
    /// `12hr`, `daily` (00:00), `weekly` (Monday 00:00), `monthly` (the 1st, 00:00); also any
    /// number of minutes that divides an hour or of hours that divides a day (`10min`, `6hr`).
    #[serde(default)]
    pub every: Option<String>,
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with
    /// seconds first. Names (`MON-FRI`, `JAN`), ranges, lists and steps are allowed.
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone the schedule is read in (`Europe/Oslo`). Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Slots missed while the server was down: `skip` (default), `last` or `all`.
    #[serde(default)]
    pub missed: Missed,
    /// Most missed slots `missed: all` runs (default 100).
    #[serde(default)]
    pub max_missed: Option<u32>,
}

impl ScheduleTrigger {
    pub(crate) fn check(&self, path: &Path, diags: &mut Diags) {
        check_timing(self.every.as_deref(), self.cron.as_deref(), self.timezone.as_deref(), path, diags);
        if self.max_missed == Some(0) {
            diags.error(&path.key("maxMissed"), "maxMissed must be at least 1");
        }
    }

    /// The compiled schedule (`None` when the trigger does not check).
    pub fn schedule(&self) -> Option<crate::schedule::Schedule> {
        crate::schedule::Schedule::parse(self.every.as_deref(), self.cron.as_deref(), self.timezone.as_deref()).ok()
    }
}

/// Reports a timing (`every` / `cron` / `timezone`) that does not parse, at the field at fault.
fn check_timing(every: Option<&str>, cron: Option<&str>, timezone: Option<&str>, path: &Path, diags: &mut Diags) {
    if let Err(e) = crate::schedule::Schedule::parse(every, cron, timezone) {
        let at = if e.field.is_empty() { path.clone() } else { path.key(e.field) };
        diags.error(&at, e.message);
    }
}

/// A flow started by inbound e-mail.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct EmailTrigger {
    /// The address mail for this flow is sent to, unique across all tenants. Default:
    /// `<flow>.<integration>.<tenant>@<smtp-domain>`.
    #[serde(default)]
    pub address: Option<String>,
    /// Senders accepted (`*` matches any run of characters: `*@acme.example`). Default: all.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// jq expression giving a message's identity (e.g. `$trigger.body.messageId`): a repeat
    /// within `dedupWindow` starts nothing. Default: none (every message runs).
    #[serde(default)]
    pub dedup_key: Option<String>,
    /// How long an identity is remembered. Default 24h.
    #[serde(default)]
    pub dedup_window: Option<Dur>,
}

impl EmailTrigger {
    pub(crate) fn check(&self, path: &Path, diags: &mut Diags) {
        if let Some(a) = &self.address
            && !is_mail_address(a)
        {
            diags.error(&path.key("address"), format!("invalid e-mail address `{a}`: expected local@domain"));
        }
        for (i, p) in self.allow_from.iter().enumerate() {
            if p.trim().is_empty() {
                diags.error(&path.key("allowFrom").index(i), "empty sender pattern");
            }
        }
    }
}

/// True for `local@domain` with a plausible local part and domain (no spaces, one `@`).
pub fn is_mail_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    let ok =
        |s: &str| !s.is_empty() && s.len() <= 200 && !s.chars().any(|c| c.is_whitespace() || "<>@,;\"\\".contains(c));
    ok(local) && ok(domain) && (domain.contains('.') || domain == "localhost")
}

/// What a poll does on its first run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FirstRun {
    /// Every item of the first poll starts an execution.
    #[default]
    All,
    /// The first poll only records what is there; later items start executions.
    Now,
}

/// How a poll follows pages.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Paginate {
    /// jq expression on the response giving the next page's URL (null or empty: last page).
    #[serde(default)]
    pub next_url: Option<String>,
    /// Follow the `Link` header's `rel="next"`.
    #[serde(default)]
    pub link_header: bool,
    /// A page-number query parameter (`page`), counting from `start` (default 1).
    #[serde(default)]
    pub page_param: Option<String>,
    /// An offset query parameter (`offset`), advanced by the number of items received.
    #[serde(default)]
    pub offset_param: Option<String>,
    /// First page number (`pageParam`) or offset (`offsetParam`). Default 1 for pages, 0 for offsets.
    #[serde(default)]
    pub start: Option<u64>,
    /// Most pages one poll fetches. Default 10.
    #[serde(default)]
    pub max_pages: Option<u32>,
}

/// Most pages a poll fetches by default.
pub const DEFAULT_MAX_PAGES: u32 = 10;

/// Polls an HTTP source at intervals and starts one execution per new item.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct PollTrigger {
    /// How often: a preset or interval as for schedules (`5min`). Or `cron`.
    #[serde(default)]
    pub every: Option<String>,
    /// A cron expression instead of `every`.
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone of `every`/`cron`. Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The request, with the options of the `http` step; templates see `$config` and the poll
    /// state as `$state` (`$state.cursor`).
    pub request: serde_json::Value,
    /// jq expression on the response (`{status, headers, body}`) giving the list of items.
    pub items: String,
    /// jq expression on an item giving its identity: items seen before start nothing.
    #[serde(default)]
    pub id: Option<String>,
    /// jq expression on an item giving a value that grows (`.updatedAt`): only items with a
    /// greater value than the greatest seen start executions; the greatest is `$state.cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Follow pagination.
    #[serde(default)]
    pub paginate: Option<Paginate>,
    /// `all` (default): the first poll's items run; `now`: they are only recorded.
    #[serde(default)]
    pub first_run: FirstRun,
    /// How many item ids are remembered (most recent first). Default 10000.
    #[serde(default)]
    pub remember: Option<u32>,
}

/// Item ids a poll remembers by default.
pub const DEFAULT_REMEMBER: u32 = 10_000;

impl PollTrigger {
    pub(crate) fn check(&self, path: &Path, diags: &mut Diags) {
        check_timing(self.every.as_deref(), self.cron.as_deref(), self.timezone.as_deref(), path, diags);
        if self.id.is_none() && self.cursor.is_none() {
            diags.error(path, "a poll needs `id` (dedupe by item identity) or `cursor` (only items past the last seen value), or both");
        }
        if !self.request.is_object() {
            diags.error(&path.key("request"), "expected a request: { method, url, headers, query, … }");
        }
        if self.remember == Some(0) {
            diags.error(&path.key("remember"), "remember must be at least 1");
        }
        if let Some(p) = &self.paginate {
            let at = path.key("paginate");
            let set = [p.next_url.is_some(), p.link_header, p.page_param.is_some(), p.offset_param.is_some()];
            match set.iter().filter(|b| **b).count() {
                0 => diags.error(&at, "set one of `nextUrl`, `linkHeader`, `pageParam` or `offsetParam`"),
                1 => {}
                _ => diags.error(&at, "set only one of `nextUrl`, `linkHeader`, `pageParam` or `offsetParam`"),
            }
            if p.max_pages == Some(0) {
                diags.error(&at.key("maxPages"), "maxPages must be at least 1");
            }
        }
    }

    /// The compiled schedule (`None` when the trigger does not check).
    pub fn schedule(&self) -> Option<crate::schedule::Schedule> {
        crate::schedule::Schedule::parse(self.every.as_deref(), self.cron.as_deref(), self.timezone.as_deref()).ok()
    }
}

/// A manual trigger has no settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ManualTrigger {}

/// HTTP methods a webhook may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    #[serde(alias = "get")]
    Get,
    /// POST
    #[serde(alias = "post")]
    Post,
    /// PUT
    #[serde(alias = "put")]
    Put,
    /// PATCH
    #[serde(alias = "patch")]
    Patch,
    /// DELETE
    #[serde(alias = "delete")]
    Delete,
}

impl Method {
    /// The method's name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

fn default_methods() -> Vec<Method> {
    vec![Method::Post]
}

/// A webhook trigger.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct WebhookTrigger {
    /// Path under `/hooks/<tenant>/`, unique within the tenant: segments of letters, digits,
    /// `-`, `_`, `.` and `~`, separated by `/`.
    pub path: String,
    /// Methods accepted. Default `[POST]`.
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    /// How callers authenticate. Default: none.
    #[serde(default)]
    pub auth: Option<WebhookAuth>,
    /// Declared query parameters, with defaults; undeclared ones are still passed on.
    #[serde(default)]
    pub query: IndexMap<String, QueryParam>,
    /// How the caller is answered. Default: `async`.
    #[serde(default)]
    pub respond: Respond,
    /// jq expression giving each delivery's identity: a repeat within `dedupWindow` returns
    /// the first execution instead of starting another. Default: the `Idempotency-Key`
    /// header, when the request has one. Bodies alike without a key are not deduplicated.
    #[serde(default)]
    pub dedup_key: Option<String>,
    /// How long a delivery's identity is remembered. Default 24h.
    #[serde(default)]
    pub dedup_window: Option<Dur>,
}

/// Caller authentication for a webhook. Secrets may be `{{ $config.name }}` templates.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WebhookAuth {
    /// No authentication.
    None {},
    /// A custom header with a fixed value.
    Header {
        /// Header name, e.g. `X-App`.
        name: String,
        /// Expected value.
        value: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// Expected token.
        token: String,
    },
    /// `Authorization: Basic …`.
    Basic {
        /// Expected user name.
        username: String,
        /// Expected password.
        password: String,
    },
    /// One of several labelled keys, in a header (default `X-Api-Key`) or a query parameter.
    /// The label of the key used is recorded on the execution.
    #[serde(rename_all = "camelCase")]
    ApiKey {
        /// Header carrying the key. Default `X-Api-Key` unless `query` is set.
        #[serde(default)]
        header: Option<String>,
        /// Query parameter carrying the key, instead of a header.
        #[serde(default)]
        query: Option<String>,
        /// The accepted keys.
        keys: Vec<ApiKey>,
    },
}

impl WebhookAuth {
    /// The mode's name (`none`, `header`, `bearer`, `basic`, `apiKey`).
    pub fn mode(&self) -> &'static str {
        match self {
            WebhookAuth::None {} => "none",
            WebhookAuth::Header { .. } => "header",
            WebhookAuth::Bearer { .. } => "bearer",
            WebhookAuth::Basic { .. } => "basic",
            WebhookAuth::ApiKey { .. } => "apiKey",
        }
    }
}

/// A labelled API key.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ApiKey {
    /// Who uses this key (recorded on each execution it starts).
    pub label: String,
    /// The key itself (`flowgate keys generate` makes a strong one).
    pub secret: String,
}

/// A declared query parameter.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct QueryParam {
    /// Value used when the caller does not send the parameter.
    #[serde(default)]
    pub default: Option<String>,
    /// Refuse requests without it (400).
    #[serde(default)]
    pub required: bool,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// When the caller gets its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RespondMode {
    /// 202 with the execution id as soon as the event is committed (default).
    #[default]
    Async,
    /// Wait for the `respond` step (or the end) up to `timeout`.
    Sync,
}

/// How a webhook's caller is answered.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Respond {
    /// `async` (default) or `sync`.
    #[serde(default)]
    pub mode: RespondMode,
    /// How long a `sync` caller waits before getting 202 and a status URL. Default 30s, at most 5min.
    #[serde(default = "default_respond_timeout")]
    pub timeout: Dur,
}

impl Default for Respond {
    fn default() -> Self {
        Respond { mode: RespondMode::Async, timeout: default_respond_timeout() }
    }
}

fn default_respond_timeout() -> Dur {
    Dur::secs(30)
}

/// Longest sync wait accepted.
pub const MAX_RESPOND_TIMEOUT: Dur = Dur::secs(300);

impl WebhookTrigger {
    /// The path without leading or trailing slashes.
    pub fn normalized_path(&self) -> String {
        self.path.trim_matches('/').to_owned()
    }

    pub(crate) fn check(&self, path: &Path, diags: &mut Diags) {
        let p = self.normalized_path();
        let valid_segment = |s: &str| {
            !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
        };
        if p.is_empty() || p.len() > 200 || !p.split('/').all(valid_segment) {
            diags.error(&path.key("path"), format!(
                "invalid webhook path `{}`: expected segments of letters, digits, `-`, `_`, `.`, `~` separated by `/` (at most 200 characters)",
                self.path
            ));
        }
        if self.methods.is_empty() {
            diags.error(&path.key("methods"), "at least one method is needed");
        }
        if self.respond.timeout > MAX_RESPOND_TIMEOUT || self.respond.timeout.0.is_zero() {
            diags.error(&path.key("respond").key("timeout"), "timeout must be between 1ms and 5min");
        }
        if let Some(auth) = &self.auth {
            let at = path.key("auth").key(auth.mode());
            match auth {
                WebhookAuth::ApiKey { header, query, keys } => {
                    if header.is_some() && query.is_some() {
                        diags.error(&at, "set `header` or `query`, not both");
                    }
                    if keys.is_empty() {
                        diags.error(&at.key("keys"), "at least one key is needed");
                    }
                    let mut labels = std::collections::HashSet::new();
                    for (i, k) in keys.iter().enumerate() {
                        if k.secret.len() < 8 && !k.secret.contains("{{") {
                            diags.error(
                                &at.key("keys").index(i).key("secret"),
                                "keys must be at least 8 characters (`flowgate keys generate` makes a strong one)",
                            );
                        }
                        if !labels.insert(&k.label) {
                            diags.error(
                                &at.key("keys").index(i).key("label"),
                                format!("duplicate key label `{}`", k.label),
                            );
                        }
                    }
                }
                WebhookAuth::Header { name, .. } if http_header_name_invalid(name) => {
                    diags.error(&at.key("name"), format!("invalid header name `{name}`"));
                }
                _ => {}
            }
        }
    }
}

fn http_header_name_invalid(name: &str) -> bool {
    name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
