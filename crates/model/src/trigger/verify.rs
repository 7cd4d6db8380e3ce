//! Webhook signature verification (`verify`): the schemes (Standard Webhooks, GitHub,
//! Stripe, Intuit, generic HMAC), their secrets and tolerances, and generic payload templates.

use crate::diag::{Diags, Path};
use crate::duration::Dur;

use schemars::JsonSchema;
use serde::Deserialize;

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
    /// Intuit (QuickBooks Online): `intuit-signature: <base64>`, HMAC-SHA256 of the raw body
    /// keyed with the app's verifier token.
    #[serde(default)]
    pub intuit: Option<IntuitVerify>,
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
    /// Intuit (QuickBooks Online).
    Intuit(&'a IntuitVerify),
    /// Generic HMAC.
    Hmac(&'a HmacVerify),
}

impl VerifyScheme<'_> {
    /// The scheme's key (`standardWebhooks`, `github`, `stripe`, `intuit`, `hmac`).
    pub fn name(&self) -> &'static str {
        match self {
            VerifyScheme::StandardWebhooks(_) => "standardWebhooks",
            VerifyScheme::Github(_) => "github",
            VerifyScheme::Stripe(_) => "stripe",
            VerifyScheme::Intuit(_) => "intuit",
            VerifyScheme::Hmac(_) => "hmac",
        }
    }

    /// The `secret` and `secrets` fields.
    fn secret_fields(&self) -> (&Option<String>, &Option<Vec<String>>) {
        match self {
            VerifyScheme::StandardWebhooks(s) => (&s.secret, &s.secrets),
            VerifyScheme::Github(s) => (&s.secret, &s.secrets),
            VerifyScheme::Stripe(s) => (&s.secret, &s.secrets),
            VerifyScheme::Intuit(s) => (&s.secret, &s.secrets),
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
            VerifyScheme::Intuit(_) => None,
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

/// Intuit (QuickBooks Online) signatures (`intuit-signature`). Intuit signs no timestamp:
/// a captured delivery verifies again, so flows should deduplicate on the notification.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct IntuitVerify {
    /// The app's webhook verifier token (its text is the key).
    #[serde(default)]
    pub secret: Option<String>,
    /// Several verifier tokens, any of which may sign (rotation). Instead of `secret`.
    #[serde(default)]
    pub secrets: Option<Vec<String>>,
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
        if let Some(s) = &self.intuit {
            out.push(VerifyScheme::Intuit(s));
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
            0 => diags.error(path, "set one scheme: `standardWebhooks`, `github`, `stripe`, `intuit` or `hmac`"),
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

pub(super) fn http_header_name_invalid(name: &str) -> bool {
    name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(verify: serde_json::Value) -> Vec<String> {
        let mut diags = Diags::new(Default::default());
        let at = Path::root().key("verify");
        if let Some(v) = crate::decode::decode::<WebhookVerify>(&verify, &at, &mut diags) {
            v.check(&at, &mut diags);
        }
        diags.into_vec().into_iter().map(|d| format!("{}: {}", d.path, d.message)).collect()
    }

    #[test]
    fn intuit_takes_a_secret_or_a_rotation_list() {
        use serde_json::json;
        assert!(problems(json!({ "intuit": { "secret": "{{ $config.qbVerifier }}" } })).is_empty());
        assert!(problems(json!({ "intuit": { "secrets": ["old", "{{ $config.qbVerifier }}"] } })).is_empty());
        assert_eq!(problems(json!({ "intuit": { "secret": " " } })), ["verify.intuit.secret: the secret is empty"]);
        assert_eq!(
            problems(json!({ "intuit": { "secrets": ["a", ""] } })),
            ["verify.intuit.secrets[1]: the secret is empty"]
        );
        assert!(problems(json!({ "intuit": {} }))[0].starts_with("verify.intuit.secret: a secret is needed"));
        assert!(problems(json!({ "intuit": { "secret": "a", "secrets": ["b"] } }))[0].contains("not both"));
        // Intuit signs no timestamp: there is nothing to tolerate.
        assert!(
            problems(json!({ "intuit": { "secret": "a", "tolerance": "5m" } }))[0].contains("unknown key `tolerance`")
        );
        let both = problems(json!({ "intuit": { "secret": "a" }, "github": { "secret": "a" } }));
        assert_eq!(both, ["verify: set only one scheme (found `github`, `intuit`)"]);
        let schema = serde_json::to_value(schemars::schema_for!(WebhookVerify)).unwrap();
        assert_eq!(schema["properties"]["intuit"]["anyOf"][0]["$ref"], "#/$defs/IntuitVerify", "{schema}");
        assert_eq!(schema["$defs"]["IntuitVerify"]["additionalProperties"], false);
    }
}
