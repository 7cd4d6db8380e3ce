//! Outbound webhooks as written: the `webhook` step and the step hooks (`hooks: { onStart,
//! onComplete }`) share this config. Delivery (durable, retried on a schedule) is the
//! engine's; this module only defines and checks it.
//!
//! ```yaml
//! - id: tell-partner
//!   webhook:
//!     name: Send customer data
//!     endpoint: "https://partner.example/hook"
//!     body: "{{ . }}"
//!     auth: { standardWebhooks: { secret: "{{ $config.partnerSecret }}" } }
//!     wait: false
//! ```

use crate::diag::{Diags, Path};
use crate::duration::Dur;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// An outbound webhook.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct OutboundWebhook {
    /// What it is (shown with its deliveries).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Off: nothing is sent (the step passes its input on). Default on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where it is POSTed; may embed `{{ expr }}`.
    pub endpoint: String,
    /// The JSON body; may embed `{{ expr }}`. Default: the step's data.
    #[serde(default)]
    pub body: Option<Value>,
    /// Extra headers; values may embed `{{ expr }}`.
    #[serde(default)]
    pub headers: IndexMap<String, Value>,
    /// How the receiver authenticates the message. Default: none.
    #[serde(default)]
    pub auth: OutboundAuth,
    /// Wait for the delivery (retried over hours, the execution waits without holding a
    /// worker) before the flow goes on. Default false: the delivery is durable either way.
    #[serde(default)]
    pub wait: bool,
    /// Delays between attempts. Default: at once, then 5s, 5min, 30min, 2h, 5h, 10h, 10h
    /// (±20 % jitter).
    #[serde(default)]
    pub schedule: Option<Vec<Dur>>,
}

fn yes() -> bool {
    true
}

/// Authentication of an outbound webhook.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OutboundAuth {
    /// None.
    #[default]
    #[serde(rename = "none")]
    NoAuth,
    /// A client secret (up to 250 characters) in `X-Client-Secret` and/or a body field.
    #[serde(rename_all = "camelCase")]
    ClientSecret {
        /// The secret; may be `{{ $config.x }}`.
        secret: String,
        /// Send it as `X-Client-Secret`. Default true.
        #[serde(default = "yes")]
        header: bool,
        /// Also put it in this top-level field of the body (`clientSecret`), when set.
        #[serde(default)]
        field: Option<String>,
    },
    /// `Authorization: Basic base64(username:password)` (up to 100 characters each).
    Basic {
        /// User name.
        username: String,
        /// Password; may be `{{ $config.x }}`.
        password: String,
    },
    /// Standard Webhooks signing: `webhook-id`, `webhook-timestamp`, `webhook-signature:
    /// v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    StandardWebhooks {
        /// The signing secret, `whsec_…`; may be `{{ $config.x }}`.
        secret: String,
    },
}

/// Hooks of a step: webhooks sent when it starts (with its input, the previous step's data)
/// and when it completes (with its output).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct StepHooks {
    /// When the step starts.
    #[serde(default)]
    pub on_start: Option<OutboundWebhook>,
    /// When the step completes.
    #[serde(default)]
    pub on_complete: Option<OutboundWebhook>,
}

/// The default delivery schedule: delays before each attempt after a failure.
pub const DEFAULT_SCHEDULE_SECS: [u64; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];

impl OutboundWebhook {
    /// Checks what types cannot say.
    pub fn check(&self, path: &Path, diags: &mut Diags) {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            diags.error(&path.key("name"), "a name of 1–200 characters is needed");
        }
        if !(self.endpoint.contains("{{")
            || self.endpoint.starts_with("http://")
            || self.endpoint.starts_with("https://"))
        {
            diags.error(
                &path.key("endpoint"),
                format!("invalid endpoint `{}`: expected an http:// or https:// URL", self.endpoint),
            );
        }
        let literal_len = |s: &str| if s.contains("{{") { 0 } else { s.chars().count() };
        match &self.auth {
            OutboundAuth::ClientSecret { secret, header, field } => {
                let at = path.key("auth").key("clientSecret");
                if literal_len(secret) > 250 {
                    diags.error(&at.key("secret"), "a client secret has at most 250 characters");
                }
                if secret.is_empty() {
                    diags.error(&at.key("secret"), "the client secret is empty");
                }
                if !header && field.is_none() {
                    diags.error(&at, "send the secret as a header, a field, or both (`header: true` or `field: …`)");
                }
            }
            OutboundAuth::Basic { username, password } => {
                let at = path.key("auth").key("basic");
                if literal_len(username) > 100 || username.contains(':') {
                    diags.error(&at.key("username"), "a user name has at most 100 characters and no `:`");
                }
                if literal_len(password) > 100 {
                    diags.error(&at.key("password"), "a password has at most 100 characters");
                }
            }
            OutboundAuth::StandardWebhooks { secret } => {
                if !secret.contains("{{") && crate::outbound::whsec_key(secret).is_none() {
                    diags.error(
                        &path.key("auth").key("standardWebhooks").key("secret"),
                        "expected a signing secret `whsec_<base64>` (or base64 of at least 16 bytes)",
                    );
                }
            }
            OutboundAuth::NoAuth => {}
        }
        if let Some(s) = &self.schedule {
            if s.is_empty() || s.len() > 30 {
                diags.error(&path.key("schedule"), "a schedule has 1–30 delays");
            }
            if s.iter().any(|d| d.0 > std::time::Duration::from_secs(7 * 86_400)) {
                diags.error(&path.key("schedule"), "delays are at most 7 days");
            }
        }
    }

    /// The delays before each attempt (the first is usually 0).
    pub fn delays(&self) -> Vec<std::time::Duration> {
        match &self.schedule {
            Some(s) => s.iter().map(|d| d.0).collect(),
            None => DEFAULT_SCHEDULE_SECS.iter().map(|s| std::time::Duration::from_secs(*s)).collect(),
        }
    }
}

/// The HMAC key of a Standard Webhooks secret (`whsec_` + base64), if it is one.
pub fn whsec_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let bytes = base64_decode(b64)?;
    (bytes.len() >= 16).then_some(bytes)
}

/// Standard base64 (padding optional), without pulling a crate into the model.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_whsec() {
        assert_eq!(super::whsec_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").map(|k| k.len()), Some(24));
        assert!(super::whsec_key("whsec_short").is_none());
        assert!(super::whsec_key("not base64 !").is_none());
    }
}
