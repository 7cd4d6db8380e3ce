//! Helpers shared by the step kinds: compiling templates with located errors, and the HTTP
//! client.

use flowgate_expr::{PathSeg, Template};
use flowgate_model::{Diags, Path, Seg};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Compiles a value template found at `path`, recording each bad expression.
pub fn template(value: &Value, path: &Path, diags: &mut Diags) -> Option<Arc<Template>> {
    match Template::compile(value) {
        Ok(t) => Some(Arc::new(t)),
        Err(errors) => {
            for e in errors {
                let at = path.join(e.path.into_iter().map(|s| match s {
                    PathSeg::Key(k) => Seg::Key(k),
                    PathSeg::Index(i) => Seg::Index(i),
                }));
                diags.error(&at, expression_message(&e.error));
            }
            None
        }
    }
}

/// Compiles a bare jq expression found at `path`.
pub fn expr(src: &str, path: &Path, diags: &mut Diags) -> Option<Arc<Template>> {
    match Template::expr(src) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            diags.error(path, expression_message(&e));
            None
        }
    }
}

fn expression_message(e: &flowgate_expr::CompileError) -> String {
    match e.offset {
        Some(o) => format!("expression does not compile: {} (at character {})", e.message, o + 1),
        None => format!("expression does not compile: {}", e.message),
    }
}

/// Installs the process-wide TLS provider (ring). Installing twice is harmless.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the HTTP client steps share: rustls with the ring provider, pooled connections.
///
/// # Panics
/// When the TLS backend cannot be set up (a build problem, not a run-time one).
pub fn http_client() -> reqwest::Client {
    http_client_with(&crate::outbound::OutboundPolicy::default())
}

/// Most redirects an outbound request follows.
pub const MAX_REDIRECTS: usize = 10;

/// Like [`http_client`], resolving names through `policy` (internal addresses dropped when
/// it says so) and checking every redirect against it.
///
/// # Panics
/// When the TLS backend cannot be set up (a build problem, not a run-time one).
pub fn http_client_with(policy: &crate::outbound::OutboundPolicy) -> reqwest::Client {
    install_tls();
    let mut builder = reqwest::Client::builder();
    if policy.deny_private {
        builder = builder.dns_resolver(policy.resolver());
    }
    // Every hop of a redirect is checked like the first URL (issue 13: a redirect to
    // `http://127.0.0.1/` from an allowed host used to be followed); names are checked by the
    // resolver above as each hop connects. At most 10 hops.
    let guard = policy.clone();
    builder = builder.redirect(reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match guard.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    }));
    builder
        .user_agent(concat!("flowgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .expect("HTTP client")
}

/// What went wrong with a request, from its error's causes: reqwest's own message repeats
/// the full URL (its query may hold secrets), so only the causes are named.
pub fn error_causes(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        parts.push(inner.to_string());
        src = inner.source();
    }
    if parts.is_empty() { "the request failed".to_owned() } else { parts.join(": ") }
}

/// A URL as messages show it: no user info, no query (it may hold secrets; `?…` says there
/// was one), no fragment.
pub fn shown_url(u: &reqwest::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let had_query = u.query().is_some();
    u.set_query(None);
    u.set_fragment(None);
    if had_query { format!("{u}?…") } else { u.to_string() }
}

/// `%XX` escapes decoded (a URL's user, password or path); None when the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
