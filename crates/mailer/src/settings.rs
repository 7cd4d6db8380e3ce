//! SMTP settings as people give them (the body of `PUT /v1/smtp`, the console's SMTP form):
//! either one URL or the fields, with the defaults filled in to make an [`SmtpConfig`].

use crate::config::{Security, SmtpConfig};
use serde::Deserialize;

/// SMTP settings as given: `url`, or the fields (`host`, `port`, `security`, …). No `Debug`:
/// it holds a password.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmtpSettings {
    /// `smtp+starttls://user:pass@host:587?from=…` (see [`SmtpConfig::from_url`]).
    pub url: Option<String>,
    /// Host name or address of the server.
    pub host: Option<String>,
    /// Port (default: the security's usual port).
    pub port: Option<u16>,
    /// Transport security (default STARTTLS).
    pub security: Option<Security>,
    /// User name to log in with.
    pub username: Option<String>,
    /// Password to log in with.
    pub password: Option<String>,
    /// The default sender (default: a user name that is an address).
    pub from: Option<String>,
    /// Most time one send may take.
    pub timeout_ms: Option<u64>,
}

impl SmtpSettings {
    /// The configuration these settings make.
    ///
    /// # Errors
    /// Both a URL and fields, a bad URL, no host, no sender.
    pub fn config(self) -> Result<SmtpConfig, String> {
        if let Some(url) = &self.url {
            if self.host.is_some()
                || self.port.is_some()
                || self.security.is_some()
                || self.username.is_some()
                || self.password.is_some()
            {
                return Err("give either `url` or the fields (`host`, `port`, `security`, …), not both".into());
            }
            let mut c = SmtpConfig::from_url(url)?;
            if let Some(from) = self.from {
                c.from = from;
            }
            if self.timeout_ms.is_some() {
                c.timeout_ms = self.timeout_ms;
            }
            return Ok(c);
        }
        let host = self.host.filter(|h| !h.trim().is_empty()).ok_or("`host` (or `url`) is required")?;
        let security = self.security.unwrap_or(Security::StartTls);
        let from = self
            .from
            .or_else(|| self.username.clone().filter(|u| u.contains('@')))
            .ok_or("`from` is required (the sender address)")?;
        Ok(SmtpConfig {
            host,
            port: self.port.unwrap_or(security.default_port()),
            security,
            username: self.username,
            password: self.password,
            from,
            timeout_ms: self.timeout_ms,
        })
    }
}
