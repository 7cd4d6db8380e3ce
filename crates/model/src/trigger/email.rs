//! E-mail triggers: flows started by mail to the built-in SMTP receiver, with who may send
//! and how repeats are recognised.

use crate::diag::{Diags, Path};
use crate::duration::Dur;

use schemars::JsonSchema;
use serde::Deserialize;

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
