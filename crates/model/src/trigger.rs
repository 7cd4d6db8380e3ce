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
    /// Checks that each delivery is signed by the sender (over the raw body). Composes with
    /// `auth`: both must pass. Default: none.
    #[serde(default)]
    pub verify: Option<WebhookVerify>,
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
        if let Some(verify) = &self.verify {
            verify.check(&path.key("verify"), diags);
        }
    }
}

/// Signature verification of a webhook's deliveries: exactly one scheme. Secrets may be
/// `{{ $config.name }}` templates; `secrets` (a list) accepts any of several while rotating.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields, extend("minProperties" = 1, "maxProperties" = 1))]
pub struct WebhookVerify {
    /// Standard Webhooks (<https://www.standardwebhooks.com>): `webhook-id`,
    /// `webhook-timestamp` and `webhook-signature` (`v1,<base64>` …) headers.
    #[serde(default)]
    pub standard_webhooks: Option<StandardWebhooksVerify>,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`.
    #[serde(default)]
    pub github: Option<GithubVerify>,
    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`.
    #[serde(default)]
    pub stripe: Option<StripeVerify>,
    /// Any HMAC of the body (and optionally a timestamp) in a header.
    #[serde(default)]
    pub hmac: Option<HmacVerify>,
}

/// The scheme a `verify` block sets.
#[derive(Debug, Clone, Copy)]
pub enum VerifyScheme<'a> {
    /// Standard Webhooks.
    StandardWebhooks(&'a StandardWebhooksVerify),
    /// GitHub.
    Github(&'a GithubVerify),
    /// Stripe.
    Stripe(&'a StripeVerify),
    /// Generic HMAC.
    Hmac(&'a HmacVerify),
}

impl VerifyScheme<'_> {
    /// The scheme's key (`standardWebhooks`, `github`, `stripe`, `hmac`).
    pub fn name(&self) -> &'static str {
        match self {
            VerifyScheme::StandardWebhooks(_) => "standardWebhooks",
            VerifyScheme::Github(_) => "github",
            VerifyScheme::Stripe(_) => "stripe",
            VerifyScheme::Hmac(_) => "hmac",
        }
    }

    /// The `secret` and `secrets` fields.
    fn secret_fields(&self) -> (&Option<String>, &Option<Vec<String>>) {
        match self {
            VerifyScheme::StandardWebhooks(s) => (&s.secret, &s.secrets),
            VerifyScheme::Github(s) => (&s.secret, &s.secrets),
            VerifyScheme::Stripe(s) => (&s.secret, &s.secrets),
            VerifyScheme::Hmac(s) => (&s.secret, &s.secrets),
        }
    }

    /// The secrets as written, each with where it is (`<at>.secret` or `<at>.secrets[i]`).
    pub fn secrets(&self, at: &Path) -> Vec<(Path, &str)> {
        let (secret, secrets) = self.secret_fields();
        let mut out: Vec<(Path, &str)> = secret.iter().map(|s| (at.key("secret"), s.as_str())).collect();
        for (i, s) in secrets.iter().flatten().enumerate() {
            out.push((at.key("secrets").index(i), s.as_str()));
        }
        out
    }

    /// The timestamp tolerance as written (`None`: the scheme's default, or no timestamp).
    pub fn tolerance(&self) -> Option<Dur> {
        match self {
            VerifyScheme::StandardWebhooks(s) => s.tolerance,
            VerifyScheme::Github(_) => None,
            VerifyScheme::Stripe(s) => s.tolerance,
            VerifyScheme::Hmac(s) => s.tolerance,
        }
    }
}

/// Default timestamp tolerance of Standard Webhooks and generic HMAC (5 minutes).
pub const DEFAULT_SIGNATURE_TOLERANCE: Dur = Dur::secs(300);
/// Default timestamp tolerance of Stripe (300 seconds).
pub const DEFAULT_STRIPE_TOLERANCE: Dur = Dur::secs(300);

/// Standard Webhooks signatures.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct StandardWebhooksVerify {
    /// The signing secret (`whsec_<base64>`; the prefix is optional).
    #[serde(default)]
    pub secret: Option<String>,
    /// Several signing secrets, any of which may sign (rotation). Instead of `secret`.
    #[serde(default)]
    pub secrets: Option<Vec<String>>,
    /// Largest difference between `webhook-timestamp` and now, either way. Default 5m.
    #[serde(default)]
    pub tolerance: Option<Dur>,
}

/// GitHub signatures (`X-Hub-Signature-256`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct GithubVerify {
    /// The webhook's secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// Several secrets, any of which may sign (rotation). Instead of `secret`.
    #[serde(default)]
    pub secrets: Option<Vec<String>>,
}

/// Stripe signatures (`Stripe-Signature`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct StripeVerify {
    /// The endpoint's signing secret (`whsec_…`, used as written).
    #[serde(default)]
    pub secret: Option<String>,
    /// Several signing secrets, any of which may sign (rotation). Instead of `secret`.
    #[serde(default)]
    pub secrets: Option<Vec<String>>,
    /// Largest difference between the signature's `t` and now, either way. Default 300s.
    #[serde(default)]
    pub tolerance: Option<Dur>,
}

/// HMAC algorithms of generic signatures.
pub const HMAC_ALGORITHMS: [&str; 3] = ["sha256", "sha1", "sha512"];
/// Encodings of generic signatures.
pub const SIGNATURE_ENCODINGS: [&str; 2] = ["hex", "base64"];

fn default_algorithm() -> String {
    "sha256".into()
}

fn default_encoding() -> String {
    "hex".into()
}

/// A generic HMAC signature in a header.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct HmacVerify {
    /// The shared secret (its bytes are the key).
    #[serde(default)]
    pub secret: Option<String>,
    /// Several secrets, any of which may sign (rotation). Instead of `secret`.
    #[serde(default)]
    pub secrets: Option<Vec<String>>,
    /// The header carrying the signature, e.g. `X-Signature`.
    pub header: String,
    /// `sha256` (default), `sha1` or `sha512`.
    #[serde(default = "default_algorithm")]
    #[schemars(extend("enum" = ["sha256", "sha1", "sha512"]))]
    pub algorithm: String,
    /// How the signature is written: `hex` (default) or `base64`.
    #[serde(default = "default_encoding")]
    #[schemars(extend("enum" = ["hex", "base64"]))]
    pub encoding: String,
    /// Text before the signature in the header (`sha256=`), removed before decoding.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A header with the delivery's time (Unix seconds), checked against `tolerance`.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Largest difference between the timestamp and now, either way. Default 5m; needs
    /// `timestampHeader`.
    #[serde(default)]
    pub tolerance: Option<Dur>,
    /// What is signed: text with `{body}` (the raw body) and `{timestamp}` (the timestamp
    /// header's value). Default `{body}`, or `{timestamp}.{body}` with a `timestampHeader`.
    #[serde(default)]
    pub payload: Option<String>,
}

impl HmacVerify {
    /// The signed payload's template, defaults applied.
    pub fn payload_template(&self) -> &str {
        match (&self.payload, &self.timestamp_header) {
            (Some(p), _) => p,
            (None, Some(_)) => "{timestamp}.{body}",
            (None, None) => "{body}",
        }
    }
}

/// One piece of a generic signature's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadPart {
    /// Literal text.
    Text(String),
    /// The timestamp header's value.
    Timestamp,
    /// The raw body.
    Body,
}

/// Parses a payload template (`{timestamp}.{body}`).
///
/// # Errors
/// An unknown placeholder, or no `{body}`.
pub fn parse_payload(template: &str) -> Result<Vec<PayloadPart>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else { break };
        text.push_str(&rest[..open]);
        let part = match &rest[open + 1..close] {
            "body" => PayloadPart::Body,
            "timestamp" => PayloadPart::Timestamp,
            other => return Err(format!("unknown placeholder `{{{other}}}`: expected `{{body}}` or `{{timestamp}}`")),
        };
        if !text.is_empty() {
            parts.push(PayloadPart::Text(std::mem::take(&mut text)));
        }
        parts.push(part);
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(PayloadPart::Text(text));
    }
    if !parts.contains(&PayloadPart::Body) {
        return Err(
            "the payload must include `{body}`: a signature that does not cover the body proves nothing about it"
                .into(),
        );
    }
    Ok(parts)
}

impl WebhookVerify {
    /// The schemes set, in declaration order (exactly one in a valid document).
    pub fn schemes(&self) -> Vec<VerifyScheme<'_>> {
        let mut out = Vec::new();
        if let Some(s) = &self.standard_webhooks {
            out.push(VerifyScheme::StandardWebhooks(s));
        }
        if let Some(s) = &self.github {
            out.push(VerifyScheme::Github(s));
        }
        if let Some(s) = &self.stripe {
            out.push(VerifyScheme::Stripe(s));
        }
        if let Some(s) = &self.hmac {
            out.push(VerifyScheme::Hmac(s));
        }
        out
    }

    /// The scheme, when exactly one is set.
    pub fn scheme(&self) -> Option<VerifyScheme<'_>> {
        match self.schemes().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    pub(crate) fn check(&self, path: &Path, diags: &mut Diags) {
        let schemes = self.schemes();
        match schemes.len() {
            0 => diags.error(path, "set one scheme: `standardWebhooks`, `github`, `stripe` or `hmac`"),
            1 => {}
            _ => {
                let names: Vec<String> = schemes.iter().map(|s| format!("`{}`", s.name())).collect();
                diags.error(path, format!("set only one scheme (found {})", names.join(", ")));
            }
        }
        for scheme in &schemes {
            let at = path.key(scheme.name());
            match scheme.secret_fields() {
                (Some(_), Some(_)) => diags.error(&at, "set `secret` or `secrets`, not both"),
                (None, None) => diags.error(
                    &at.key("secret"),
                    "a secret is needed (`secret`, or `secrets` to accept several while rotating)",
                ),
                (None, Some(list)) if list.is_empty() => {
                    diags.error(&at.key("secrets"), "at least one secret is needed")
                }
                _ => {}
            }
            for (p, s) in scheme.secrets(&at) {
                if s.trim().is_empty() {
                    diags.error(&p, "the secret is empty");
                }
            }
            if let Some(t) = scheme.tolerance()
                && t.0 < std::time::Duration::from_secs(1)
            {
                diags.error(&at.key("tolerance"), "tolerance must be at least 1s (timestamps are in seconds)");
            }
            if let VerifyScheme::Hmac(h) = scheme {
                check_hmac(h, &at, diags);
            }
        }
    }
}

fn check_hmac(h: &HmacVerify, at: &Path, diags: &mut Diags) {
    if http_header_name_invalid(&h.header) {
        diags.error(&at.key("header"), format!("invalid header name `{}`", h.header));
    }
    if !HMAC_ALGORITHMS.contains(&h.algorithm.as_str()) {
        diags.error(
            &at.key("algorithm"),
            format!("unknown algorithm `{}`: expected sha256, sha1 or sha512", h.algorithm),
        );
    }
    if !SIGNATURE_ENCODINGS.contains(&h.encoding.as_str()) {
        diags.error(&at.key("encoding"), format!("unknown encoding `{}`: expected hex or base64", h.encoding));
    }
    if let Some(t) = &h.timestamp_header
        && http_header_name_invalid(t)
    {
        diags.error(&at.key("timestampHeader"), format!("invalid header name `{t}`"));
    }
    if h.tolerance.is_some() && h.timestamp_header.is_none() {
        diags.error(&at.key("tolerance"), "a tolerance needs `timestampHeader` (the header with the delivery's time)");
    }
    match parse_payload(h.payload_template()) {
        Ok(parts) if parts.contains(&PayloadPart::Timestamp) && h.timestamp_header.is_none() => {
            diags.error(&at.key("payload"), "`{timestamp}` needs `timestampHeader`");
        }
        Ok(_) => {}
        Err(e) => diags.error(&at.key("payload"), e),
    }
}

fn http_header_name_invalid(name: &str) -> bool {
    name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
