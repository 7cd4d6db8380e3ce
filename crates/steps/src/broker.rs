//! What the broker kinds (`amqp`, `nats`, `mqtt`) share, written once: reading a broker URL
//! (its host, its percent-encoded user and password), keeping its credentials out of every
//! message, the flag that tells a connection kept per URL that the runtime it was opened on
//! is gone, and (tests only) the helpers their tests use to reach the real brokers.
//!
//! A leaf: the three kinds' folders use it; it uses none of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The host `url` names (an IPv6 address without its brackets), if any.
pub(crate) fn host(url: &url::Url) -> Option<String> {
    match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => Some(d.to_owned()),
        Some(url::Host::Ipv4(ip)) => Some(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => Some(ip.to_string()),
        _ => None,
    }
}

pub(crate) use crate::util::percent_decode;

/// `text` without the URL itself or its secret, as written and percent-decoded: the
/// password, or the user when there is no password (a token, as NATS reads
/// `nats://s3cr3t@host`). A secret of one or two characters is left: replacing it would
/// garble the message without hiding anything.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, "<the connection's URL>");
    if let Ok(u) = url::Url::parse(url) {
        let secret = u.password().unwrap_or(u.username());
        if secret.len() > 2 {
            out = out.replace(secret, "***");
            if let Some(decoded) = percent_decode(secret).filter(|d| d.len() > 2) {
                out = out.replace(&decoded, "***");
            }
        }
    }
    out
}

/// A flag that turns false when the runtime this is called on shuts down: a connection's
/// I/O runs on the runtime that opened it, so one kept past it (a process with several
/// runtimes, such as a test binary) must be replaced rather than handed out.
pub(crate) fn runtime_alive() -> Arc<AtomicBool> {
    let alive = Arc::new(AtomicBool::new(true));
    let guard = Alive(alive.clone());
    tokio::spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
    alive
}

/// Marks its flag false when dropped: it sits in a task of the runtime, which drops it when
/// the runtime shuts down.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Helpers of the broker kinds' tests, which run against the real brokers of `.ci/run`.
#[cfg(test)]
pub(crate) mod testing {
    use crate::StepError;
    use crate::connection::Credentials;
    use crate::outbound::OutboundPolicy;
    use crate::test_support::{Harness, TestConnections};
    use serde_json::Value;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The URL in `var`; None (the test is skipped) when unset, a failure when services are
    /// required (`FLOWGATE_REQUIRE_SERVICES=1`, as `.ci/run` sets).
    pub(crate) fn service(var: &str) -> Option<String> {
        match std::env::var(var).ok().filter(|v| !v.is_empty()) {
            Some(url) => Some(url),
            None if std::env::var("FLOWGATE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
                panic!("FLOWGATE_REQUIRE_SERVICES=1, but {var} is unset")
            }
            None => {
                eprintln!("skipped: {var} is unset");
                None
            }
        }
    }

    /// A name no other test (of this run or another) uses: `prefix-<pid>-<n>-<nanos>`.
    pub(crate) fn unique(prefix: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
    }

    /// Checks a kind's connection test, `probe` (the kind's, on credentials made by
    /// `credentials` from a URL): it passes against the real broker at `url`, is refused by
    /// a policy that denies private addresses (`<kind>_refused`), and fails against `down` (a
    /// closed port; its password `pw-s3cret`) as `<kind>_unavailable`, without the password.
    pub(crate) async fn check_probe<F>(
        kind: &str,
        url: &str,
        down: &str,
        credentials: impl Fn(&str) -> Credentials,
        probe: impl Fn(Credentials, OutboundPolicy) -> F,
    ) where
        F: Future<Output = Result<(), StepError>>,
    {
        probe(credentials(url), OutboundPolicy::default()).await.unwrap();
        let strict = OutboundPolicy { deny_private: true, allow: Vec::new() };
        let err = probe(credentials(url), strict).await.unwrap_err();
        assert_eq!(err.code, format!("{kind}_refused"), "{err:?}");
        let err = probe(credentials(down), OutboundPolicy::default()).await.unwrap_err();
        assert_eq!(err.code, format!("{kind}_unavailable"), "{err:?}");
        assert!(!format!("{err:?}").contains("pw-s3cret"), "{err:?}");
    }

    /// A harness whose one connection, `name`, has these `extras` (`{broker, url, …}`).
    pub(crate) fn harness(name: &str, extras: Value) -> Harness {
        let c = Credentials { version: 1, extras, ..Default::default() };
        Harness::new().connections(Arc::new(TestConnections {
            credentials: [(name.to_owned(), c)].into_iter().collect(),
            refreshed: std::sync::Mutex::new(None),
            refusals: Default::default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let url = "amqp://app:s3cr%2Fet@mq.example/prod";
        let said = format!("failed at {url}: login s3cr%2Fet / s3cr/et refused");
        assert_eq!(scrub(&said, url), "failed at <the connection's URL>: login *** / *** refused");
        // A user without a password is a token.
        assert_eq!(scrub("token tok-123 refused", "nats://tok-123@host"), "token *** refused");
        // A user beside a password is not a secret.
        assert_eq!(scrub("user app refused", "mqtt://app:pw-1@host"), "user app refused");
    }

    #[test]
    fn urls_are_read_as_written() {
        assert_eq!(percent_decode("a%20b%2F%zz"), Some("a b/%zz".to_owned()));
        assert_eq!(percent_decode("%ff"), None);
        let host = |u: &str| host(&url::Url::parse(u).unwrap());
        assert_eq!(host("nats://[::1]:4222"), Some("::1".to_owned()));
        assert_eq!(host("mqtt://broker.example"), Some("broker.example".to_owned()));
    }
}
