//! The `http` step's config and its validation.

use super::run::Http;
use crate::util;
use flowgate_model::{Diags, Dur, Path};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// An HTTP request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct HttpConfig {
    /// GET (default), POST, PUT, PATCH, DELETE, HEAD or OPTIONS.
    #[serde(default = "default_method")]
    pub method: String,
    /// URL (http or https); may embed `{{ expr }}`. Nothing is URL-encoded unless the
    /// expression says so (`@uri`).
    pub url: String,
    /// Request headers; values may embed `{{ expr }}`. Null values are left out.
    #[serde(default)]
    pub headers: IndexMap<String, Value>,
    /// Query parameters added to the URL; values may embed `{{ expr }}`. Lists repeat the
    /// parameter, nulls are left out.
    #[serde(default)]
    pub query: IndexMap<String, Value>,
    /// JSON body (any value; `"{{ . }}"` sends the input).
    #[serde(default)]
    pub json: Option<Value>,
    /// Raw text body. Set `Content-Type` in `headers`.
    #[serde(default)]
    pub body: Option<Value>,
    /// Form body (`application/x-www-form-urlencoded`).
    #[serde(default)]
    pub form: Option<IndexMap<String, Value>>,
    /// Longest the request may take. Default 30s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Statuses that count as success: numbers, `2xx`-style classes or `200-299` ranges.
    /// Default `[2xx]`.
    #[serde(default)]
    pub success: Option<Vec<StatusSet>>,
    /// `true` (default) sends `Idempotency-Key: <execution>:<step>`; `false` sends none; a
    /// string names another header.
    #[serde(default)]
    pub idempotency_key: IdempotencyKey,
    /// A rate limit of the integration (`limits:`) this request takes a token from; a `429` or
    /// `503` with `Retry-After` pauses the whole limit.
    #[serde(default)]
    pub limit: Option<String>,
    /// A connection of the integration (`connections:`) whose credentials the request
    /// carries; an OAuth token refused with `401` is refreshed and the request sent once more.
    #[serde(default)]
    pub connection: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}

/// Whether and how the idempotency key is sent.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IdempotencyKey {
    /// Send it as `Idempotency-Key` (true) or not at all (false).
    Enabled(bool),
    /// Send it under this header name.
    Header(String),
}

impl Default for IdempotencyKey {
    fn default() -> Self {
        IdempotencyKey::Enabled(true)
    }
}

/// A status, a class (`2xx`) or a range (`200-299`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusSet {
    /// One status.
    Code(u16),
    /// `2xx` or `200-299`.
    Pattern(String),
}

impl StatusSet {
    /// The inclusive range this stands for.
    pub fn range(&self) -> Option<(u16, u16)> {
        match self {
            StatusSet::Code(c) => (100..=599).contains(c).then_some((*c, *c)),
            StatusSet::Pattern(p) => {
                let p = p.trim().to_ascii_lowercase();
                if let Some(d) = p.strip_suffix("xx") {
                    let d: u16 = d.parse().ok().filter(|d| (1..=5).contains(d))?;
                    Some((d * 100, d * 100 + 99))
                } else if let Some((a, b)) = p.split_once('-') {
                    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                    (100 <= a && a <= b && b <= 599).then_some((a, b))
                } else {
                    let c: u16 = p.parse().ok()?;
                    (100..=599).contains(&c).then_some((c, c))
                }
            }
        }
    }
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl crate::Kind for HttpConfig {
    fn decode(value: &serde_json::Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, cx: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn crate::Step>> {
        if let Some(name) = &self.connection {
            cx.check_connection(name, &path.key("connection"), diags);
        }
        Some(Box::new(self.compile_http(path, diags)?))
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout.map(|d| d.0)
    }

    fn limit(&self) -> Option<&String> {
        self.limit.as_ref()
    }
}

impl HttpConfig {
    pub(crate) fn compile_http(&self, path: &Path, diags: &mut Diags) -> Option<Http> {
        let method = self.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            diags.error(
                &path.key("method"),
                format!("unknown method `{}` (expected one of: {})", self.method, METHODS.join(", ")),
            );
        }
        let bodies = [self.json.is_some(), self.body.is_some(), self.form.is_some()].iter().filter(|b| **b).count();
        if bodies > 1 {
            diags.error(path, "set at most one of `json`, `body` and `form`");
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                diags.error(&path.key("headers").key(name.clone()), format!("invalid header name `{name}`"));
            }
        }
        if !self.url.contains("{{") {
            match reqwest::Url::parse(&self.url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => diags.error(
                    &path.key("url"),
                    format!("invalid URL `{}`: expected an http:// or https:// URL", self.url),
                ),
            }
        }
        let mut success = Vec::new();
        for (i, s) in self.success.iter().flatten().enumerate() {
            match s.range() {
                Some(r) => success.push(r),
                None => diags.error(
                    &path.key("success").index(i),
                    "expected a status (200), a class (2xx) or a range (200-299)",
                ),
            }
        }
        if success.is_empty() {
            success.push((200, 299));
        }
        let idempotency_header = match &self.idempotency_key {
            IdempotencyKey::Enabled(true) => Some(http::HeaderName::from_static("idempotency-key")),
            IdempotencyKey::Enabled(false) => None,
            IdempotencyKey::Header(h) => match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    diags.error(&path.key("idempotencyKey"), format!("invalid header name `{h}`"));
                    None
                }
            },
        };
        // One template for the whole request: one binding of the variables per call.
        let spec = json!({
            "url": self.url,
            "headers": Value::Object(self.headers.clone().into_iter().collect()),
            "query": Value::Object(self.query.clone().into_iter().collect()),
            "json": self.json.clone().unwrap_or(Value::Null),
            "body": self.body.clone().unwrap_or(Value::Null),
            "form": self.form.clone().map(|f| Value::Object(f.into_iter().collect())).unwrap_or(Value::Null),
        });
        let spec = util::template(&spec, path, diags)?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
        let body_kind = if self.json.is_some() {
            super::run::BodyKind::Json
        } else if self.body.is_some() {
            super::run::BodyKind::Text
        } else if self.form.is_some() {
            super::run::BodyKind::Form
        } else {
            super::run::BodyKind::None
        };
        Some(Http { method, spec, body_kind, success, idempotency_header, connection: self.connection.clone() })
    }
}
