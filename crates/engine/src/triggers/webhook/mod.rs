//! The webhook trigger: the inbound spec (path, methods, declared query parameters, how the
//! caller is answered), caller authentication with its credentials resolved against the
//! deployment's config (`auth`: checked in constant time) and signature schemes (`verify`).
//! The server routes a request to its flow and reads the body; everything about who may
//! call and what the call means is here.

pub mod auth;
pub(crate) mod credential;
pub mod verify;

use flowgate_model::trigger::{Method, QueryParam, Respond, WebhookAuth, WebhookTrigger};
use flowgate_model::{Diags, Path};
use indexmap::IndexMap;
use serde_json::Value;

/// A webhook trigger with its credentials resolved.
pub struct InboundWebhook {
    /// Path under `/hooks/<tenant>/`.
    pub path: String,
    /// Methods accepted.
    pub methods: Vec<Method>,
    /// Caller authentication.
    pub auth: AuthSpec,
    /// Signature verification of each delivery (with `auth`: both must pass).
    pub verify: Option<verify::VerifySpec>,
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

/// Compiles a webhook trigger (found at `at`), resolving `{{ $config.x }}` in credentials.
pub(crate) fn compile(
    w: &WebhookTrigger,
    config: &Value,
    missing: bool,
    at: &Path,
    diags: &mut Diags,
) -> InboundWebhook {
    let auth = resolve_auth(w.auth.as_ref(), config, missing, &at.key("auth"), diags);
    InboundWebhook {
        path: w.normalized_path(),
        methods: w.methods.clone(),
        auth,
        verify: verify::compile(w.verify.as_ref(), config, missing, &at.key("verify"), diags),
        query: w.query.clone(),
        respond: w.respond.clone(),
    }
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
        credential::resolve(s, config, values_missing, "credential", &at, diags).unwrap_or_default()
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
