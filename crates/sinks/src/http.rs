//! HTTP delivery: records POSTed as newline-delimited JSON in batches, a failed batch retried
//! with exponential backoff while new records keep queueing behind it.
//!
//! Connection errors, timeouts, 408, 429 and 5xx are retried; any other non-2xx answer means
//! the collector will never take the batch (bad token, malformed data), so it is dropped
//! rather than blocking everything behind it. Redirects are not followed: a POST turned into
//! a GET would be counted as delivered while nothing arrived.

use crate::config;
use crate::event::LogEvent;
use crate::task::{AddressGuard, Ctx, Wake};
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait for a connection to the collector.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a whole request and its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `Retry-After` honoured; a larger one is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// How much of an error answer ends up in `last_error`.
const ERROR_BODY_PREFIX: usize = 200;
/// How much of any answer is read; the rest is left unread.
const MAX_ANSWER: usize = 64 * 1024;

/// Where and how batches are posted.
pub(crate) struct Target {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
}

/// The system resolver, keeping only the addresses the guard allows.
struct GuardedResolver(AddressGuard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let kept: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| guard(&host, a.ip())).collect();
            if kept.is_empty() {
                return Err(format!("{host}: its addresses are refused on this server (internal)").into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Target {
    pub fn new(url: &str, headers: &BTreeMap<String, String>, guard: Option<AddressGuard>) -> Result<Target, String> {
        let url = config::parse_http_url(url)?;
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name:?}: {e}"))?;
            let mut value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        // reqwest is built without a default TLS provider; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if let Some(guard) = guard {
            builder = builder.dns_resolver(std::sync::Arc::new(GuardedResolver(guard)));
        }
        let client = builder
            .user_agent(concat!("flowgate/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Target { client, url, headers: map })
    }

    async fn post(&self, body: Bytes) -> Result<(), Failure> {
        let request = self.client.post(self.url.clone()).headers(self.headers.clone()).body(body);
        let response = request.send().await.map_err(|e| Failure::Retry(describe(e, &self.url_for_errors()), None))?;
        let status = response.status();
        if status.is_success() {
            // Reading the (small) answer lets the connection be reused.
            read_prefix(response, MAX_ANSWER).await;
            return Ok(());
        }
        let retry_after = retry_after(response.headers());
        let body = read_prefix(response, MAX_ANSWER).await;
        let mut error = format!("{} answered HTTP {status}", self.url_for_errors());
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        if !text.is_empty() {
            let cut: String = text.chars().take(ERROR_BODY_PREFIX).collect();
            let _ = std::fmt::Write::write_fmt(&mut error, format_args!(": {cut}"));
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
        {
            Err(Failure::Retry(error, retry_after))
        } else {
            Err(Failure::Refused(error))
        }
    }

    /// The URL without its query, which may carry an API key.
    fn url_for_errors(&self) -> String {
        let mut url = self.url.clone();
        url.set_query(None);
        let _ = url.set_password(None);
        url.to_string()
    }
}

/// Why a batch was not delivered.
enum Failure {
    /// Worth trying again, after the given wait when the collector named one.
    Retry(String, Option<Duration>),
    /// The collector will never take it.
    Refused(String),
}

/// `Retry-After` in seconds. The HTTP-date form is ignored: the regular backoff applies.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// A reqwest error with its causes, without the URL (its query may carry an API key).
fn describe(e: reqwest::Error, url: &str) -> String {
    let e = e.without_url();
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(err) = source {
        let part = err.to_string();
        // Layers often repeat their cause's text.
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = err.source();
    }
    if e.is_timeout() && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    format!("sending to the HTTP collector {url} failed: {text}")
}

async fn read_prefix(mut response: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]),
            _ => break,
        }
    }
    body
}

/// Batches records and posts them until the sink stops.
pub(crate) async fn run(mut ctx: Ctx, target: Target, batch_size: usize, flush: Duration) {
    let mut batch: Vec<LogEvent> = Vec::with_capacity(batch_size);
    // When the oldest record of the batch arrived: the batch is due `flush` later.
    let mut started = Instant::now();
    let mut closed = false;
    loop {
        if batch.len() < batch_size && !closed {
            let due = (!batch.is_empty()).then(|| started + flush);
            let was_empty = batch.is_empty();
            let room = batch_size - batch.len();
            match ctx.receive(&mut batch, room, due).await {
                Wake::Records => {
                    if was_empty {
                        started = Instant::now();
                    }
                    continue;
                }
                Wake::Flush => continue,
                Wake::Due => {}
                Wake::Closed => closed = true,
                Wake::Abort => return ctx.abandon(batch.len()),
            }
        }
        if batch.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        if !deliver(&ctx, &target, &batch).await {
            return ctx.abandon(batch.len());
        }
        batch.clear();
    }
}

/// Posts one batch until it is delivered or refused, or the sink stops retrying. False when
/// the sink was stopped, leaving the batch unsettled for [`Ctx::abandon`].
async fn deliver(ctx: &Ctx, target: &Target, batch: &[LogEvent]) -> bool {
    let mut body = Vec::with_capacity(batch.len() * 256);
    for event in batch {
        // A LogEvent always serializes: its map keys are strings.
        if serde_json::to_writer(&mut body, event).is_ok() {
            body.push(b'\n');
        }
    }
    let body = Bytes::from(body);
    let mut backoff = ctx.first_backoff();
    loop {
        let result = tokio::select! {
            _ = ctx.aborted() => return false,
            r = target.post(body.clone()) => r,
        };
        match result {
            Ok(()) => {
                ctx.shared.delivered(batch.len());
                return true;
            }
            Err(Failure::Refused(error)) => {
                ctx.shared.dropped(batch.len(), &error);
                return true;
            }
            Err(Failure::Retry(error, wait)) => {
                ctx.shared.failed_attempt(&error);
                if !ctx.pause(wait.unwrap_or(backoff)).await {
                    if ctx.is_aborted() {
                        return false;
                    }
                    // Every handle is gone: no one will wait for the collector to recover.
                    ctx.shared.dropped(batch.len(), &error);
                    return true;
                }
                backoff = ctx.next_backoff(backoff);
            }
        }
    }
}
