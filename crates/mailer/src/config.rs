//! How to reach an SMTP server: host, port, transport security, login and default sender.
//!
//! A configuration comes either from structured settings (serde) or from one URL, which is
//! handier in an environment variable:
//!
//! | URL                                  | security            | default port |
//! | ------------------------------------ | ------------------- | ------------ |
//! | `smtp://[user[:pass]@]host[:port]`   | [`Security::None`]     | 25           |
//! | `smtp+starttls://…`                  | [`Security::StartTls`] | 587          |
//! | `smtps://…`                          | [`Security::Tls`]      | 465          |
//!
//! The scheme alone decides the security: `smtp://` never upgrades, and `smtp+starttls://`
//! refuses to go on when the server does not offer STARTTLS (no silent fallback to plain text,
//! which would hand the password to whoever is in the middle).
//!
//! Query parameters: `from=` (the default sender, e.g. `Flowgate <flows@example.com>`;
//! when absent, a user name that is an address is used) and `timeout_ms=`. Any other parameter
//! is an error, so a typo is not silently ignored. User and password are percent-decoded.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How to reach an SMTP server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpConfig {
    /// Host name or IP address of the server.
    pub host: String,
    /// TCP port: usually 25 (relay), 587 (submission with STARTTLS) or 465 (submission over TLS).
    pub port: u16,
    /// Whether and how the connection is encrypted.
    pub security: Security,
    /// User name to log in with (AUTH PLAIN or LOGIN); no login when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// Password to log in with; never printed by `Debug`.
    #[serde(default)]
    pub password: Option<String>,
    /// Default sender address, e.g. `Flowgate <flows@example.com>`; an [`Email`](crate::Email)
    /// may name another.
    pub from: String,
    /// Most time one send may take, from connecting to the server's last reply (default:
    /// [`DEFAULT_TIMEOUT_MS`]).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Time one send may take when [`SmtpConfig::timeout_ms`] is not set.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// Transport security of the connection to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain text throughout: only for a relay on the same host or a trusted network.
    None,
    /// Plain text first, then STARTTLS before anything else is said; the send fails when the
    /// server does not offer it.
    StartTls,
    /// TLS from the first byte ("implicit TLS", SMTPS).
    Tls,
}

impl Security {
    /// The port this security usually goes with.
    pub fn default_port(self) -> u16 {
        match self {
            Security::None => 25,
            Security::StartTls => 587,
            Security::Tls => 465,
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            // Configurations end up in logs and error reports: say whether there is a
            // password, never what it is.
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl SmtpConfig {
    /// Reads a configuration from a URL (see the [module documentation](self) for the scheme)
    /// and validates it.
    ///
    /// Error messages never repeat the URL: it may hold the password.
    pub fn from_url(url: &str) -> Result<SmtpConfig, String> {
        let parsed = url::Url::parse(url.trim()).map_err(|e| format!("not a valid SMTP URL: {e}"))?;
        let security = match parsed.scheme() {
            "smtp" => Security::None,
            "smtp+starttls" => Security::StartTls,
            "smtps" => Security::Tls,
            other => {
                return Err(format!("unsupported SMTP URL scheme `{other}` (expected smtp, smtp+starttls or smtps)"));
            }
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            // Bare addresses, without the brackets an IPv6 literal has in a URL: they are
            // handed to the resolver and to the TLS name check as they are.
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err("the SMTP URL names no host".to_string()),
        };
        if !matches!(parsed.path(), "" | "/") {
            return Err("the SMTP URL has a path; only host, port, login and ?from= are understood".to_string());
        }
        if parsed.fragment().is_some() {
            return Err("the SMTP URL has a #fragment, which means nothing here".to_string());
        }
        let username = match parsed.username() {
            "" => None,
            u => Some(percent_decode(u, "user name")?),
        };
        let password = parsed.password().map(|p| percent_decode(p, "password")).transpose()?;
        let mut from = None;
        let mut timeout_ms = None;
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "from" => from = Some(value.into_owned()),
                "timeout_ms" => {
                    timeout_ms = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("timeout_ms must be a number of milliseconds, not `{value}`"))?,
                    )
                }
                other => {
                    return Err(format!("unknown SMTP URL parameter `{other}` (known: from, timeout_ms)"));
                }
            }
        }
        // Most providers log in with the mailbox address itself, which is then also the
        // natural sender.
        let from = match from.or_else(|| username.clone().filter(|u| u.contains('@'))) {
            Some(f) => f,
            None => return Err("the SMTP URL names no sender: add ?from=<address>".to_string()),
        };
        let config = SmtpConfig {
            host,
            port: parsed.port().unwrap_or(security.default_port()),
            security,
            username,
            password,
            from,
            timeout_ms,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what can be checked without a server: a host, a port, a well-formed sender, a
    /// password only together with a user name, a timeout above zero.
    pub fn validate(&self) -> Result<(), String> {
        if self.host.trim().is_empty() {
            return Err("SMTP host is empty".to_string());
        }
        if self.host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("SMTP host `{}` is not a host name or address", self.host));
        }
        if self.port == 0 {
            return Err("SMTP port must be between 1 and 65535".to_string());
        }
        crate::message::parse_mailbox(&self.from)
            .map_err(|e| format!("invalid sender address `{}`: {e}", self.from))?;
        if self.password.is_some() && self.username.is_none() {
            return Err("an SMTP password is set without a user name".to_string());
        }
        if self.username.as_deref() == Some("") {
            return Err("the SMTP user name is empty".to_string());
        }
        if self.timeout_ms == Some(0) {
            return Err("timeout_ms must be above zero".to_string());
        }
        Ok(())
    }

    /// The time one send may take: [`SmtpConfig::timeout_ms`] or [`DEFAULT_TIMEOUT_MS`].
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }
}

fn percent_decode(s: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("the SMTP {what} is not UTF-8 once percent-decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_defaults_to_port_25_without_login() {
        let c = SmtpConfig::from_url("smtp://mail.example.com?from=flows@example.com").unwrap();
        assert_eq!(c.host, "mail.example.com");
        assert_eq!(c.port, 25);
        assert_eq!(c.security, Security::None);
        assert_eq!(c.username, None);
        assert_eq!(c.password, None);
        assert_eq!(c.from, "flows@example.com");
        assert_eq!(c.timeout_ms, None);
    }

    #[test]
    fn starttls_and_tls_schemes_have_their_ports() {
        let c = SmtpConfig::from_url("smtp+starttls://u%40x.com:p@smtp.example.com").unwrap();
        assert_eq!((c.security, c.port), (Security::StartTls, 587));
        let c = SmtpConfig::from_url("smtps://u%40x.com:p@smtp.example.com").unwrap();
        assert_eq!((c.security, c.port), (Security::Tls, 465));
        let c = SmtpConfig::from_url("smtps://u%40x.com:p@smtp.example.com:2465/").unwrap();
        assert_eq!(c.port, 2465);
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let c =
            SmtpConfig::from_url("smtp+starttls://flows%40example.com:p%3Ass%2Fw%40rd%20%C3%A9@smtp.example.com:2525")
                .unwrap();
        assert_eq!(c.username.as_deref(), Some("flows@example.com"));
        assert_eq!(c.password.as_deref(), Some("p:ss/w@rd é"));
        assert_eq!(c.port, 2525);
        // No `from=`: the user name is an address, so it is the sender.
        assert_eq!(c.from, "flows@example.com");
    }

    #[test]
    fn an_unescaped_at_in_the_password_still_splits_at_the_last_one() {
        let c = SmtpConfig::from_url("smtp://bob:p@ss@mail.example.com?from=bob@example.com").unwrap();
        assert_eq!(c.username.as_deref(), Some("bob"));
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert_eq!(c.host, "mail.example.com");
    }

    #[test]
    fn query_sets_sender_and_timeout() {
        let c =
            SmtpConfig::from_url("smtp://bob@127.0.0.1:2525?from=Flowgate%20%3Cflows%40example.com%3E&timeout_ms=1500")
                .unwrap();
        assert_eq!(c.from, "Flowgate <flows@example.com>");
        assert_eq!(c.timeout_ms, Some(1500));
        assert_eq!(c.username.as_deref(), Some("bob"));
        assert_eq!(c.password, None);
        assert_eq!(c.host, "127.0.0.1");
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        let c = SmtpConfig::from_url("smtp://[::1]:2525?from=a@b.c").unwrap();
        assert_eq!(c.host, "::1");
        assert_eq!(c.port, 2525);
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_the_password() {
        for (url, expected) in [
            ("http://mail.example.com?from=a@b.c", "unsupported SMTP URL scheme `http`"),
            ("mail.example.com", "not a valid SMTP URL"),
            ("smtp://", "names no host"),
            ("smtp://mail.example.com", "names no sender"),
            ("smtp://mail.example.com/inbox?from=a@b.c", "has a path"),
            ("smtp://mail.example.com?from=a@b.c&tls=required", "unknown SMTP URL parameter `tls`"),
            ("smtp://mail.example.com?from=a@b.c&timeout_ms=soon", "timeout_ms must be a number"),
            ("smtp://mail.example.com?from=a@b.c&timeout_ms=0", "above zero"),
            ("smtp://mail.example.com:0?from=a@b.c", "port"),
            ("smtp://mail.example.com:99999?from=a@b.c", "not a valid SMTP URL"),
            ("smtp://mail.example.com?from=not%20an%20address", "invalid sender address"),
            ("smtp://user:s3cr3t@mail.example.com?from=nope", "invalid sender address"),
            ("smtp://user:%FF@mail.example.com?from=a@b.c", "not UTF-8"),
            ("smtp://:s3cr3t@mail.example.com?from=a@b.c", "without a user name"),
        ] {
            let err = SmtpConfig::from_url(url).expect_err(url);
            assert!(err.contains(expected), "{url}: {err}");
            assert!(!err.contains("s3cr3t"), "{url}: {err}");
        }
    }

    #[test]
    fn validate_checks_each_field() {
        let good = SmtpConfig {
            host: "smtp.example.com".into(),
            port: 587,
            security: Security::StartTls,
            username: Some("u".into()),
            password: Some("p".into()),
            from: "Flowgate <flows@example.com>".into(),
            timeout_ms: Some(5000),
        };
        good.validate().unwrap();
        let bad = |f: &dyn Fn(&mut SmtpConfig)| {
            let mut c = good.clone();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(&|c| c.host = " ".into()).contains("host is empty"));
        assert!(bad(&|c| c.host = "a b".into()).contains("not a host"));
        assert!(bad(&|c| c.port = 0).contains("port"));
        assert!(bad(&|c| c.from = "flows".into()).contains("invalid sender"));
        assert!(bad(&|c| c.username = None).contains("without a user name"));
        assert!(bad(&|c| c.username = Some(String::new())).contains("user name is empty"));
        assert!(bad(&|c| c.timeout_ms = Some(0)).contains("above zero"));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = SmtpConfig::from_url("smtps://bob:hunter2@mail.example.com?from=bob@example.com").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("bob"), "{shown}");
    }

    #[test]
    fn serde_uses_lowercase_security_and_optional_fields() {
        let c: SmtpConfig =
            serde_json::from_str(r#"{"host":"h.example.com","port":465,"security":"tls","from":"a@b.c"}"#).unwrap();
        assert_eq!(c.security, Security::Tls);
        assert_eq!(c.username, None);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["security"], "tls");
        let s: Security = serde_json::from_str(r#""starttls""#).unwrap();
        assert_eq!(s, Security::StartTls);
    }
}
