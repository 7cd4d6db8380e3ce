//! Webhook triggers: the path and methods a flow answers on `/hooks/…`, caller
//! authentication, declared query parameters, how the caller is answered, deduplication.
//! Signature verification (`verify`) is in `verify`.

use super::verify::{WebhookVerify, http_header_name_invalid};
use crate::diag::{Diags, Path};
use crate::duration::Dur;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
