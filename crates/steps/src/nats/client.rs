//! The node's NATS clients: one per server URL, connected on first use and shared by every
//! execution (a client multiplexes any number of publishes), each with its JetStream
//! context. A client whose connection is not up, or whose publish broke or timed out, is
//! dropped and connected anew on next use; one unused for [`IDLE`] is closed.
//!
//! The client is told to ignore the servers a cluster advertises (`connect_urls`): it only
//! ever connects to the address the outbound policy checked.
//! A connection test ([`probe`]) connects a client of its own the same way.

use crate::StepError;
use crate::broker;
use crate::connection::Credentials;
use crate::outbound::OutboundPolicy;
use async_nats::connection::State;
use async_nats::jetstream::Context;
use async_nats::{ConnectErrorKind, ConnectOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Longest connecting (TCP, TLS, the handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A client no attempt used for this long is closed.
const IDLE: Duration = Duration::from_secs(10 * 60);

/// A connected client and its JetStream context.
struct Server {
    client: async_nats::Client,
    context: Context,
    /// False once the runtime the client was connected on is gone.
    alive: Arc<AtomicBool>,
    last_used: Mutex<Instant>,
}

impl Server {
    fn usable(&self) -> bool {
        self.alive.load(Ordering::Relaxed) && self.client.connection_state() == State::Connected
    }
}

/// One client per key (the URL, and the address it was pinned to); the slot's lock makes
/// connecting single-flight.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Server>>>>;
static SERVERS: LazyLock<Mutex<HashMap<String, Slot>>> = LazyLock::new(Default::default);

/// The URL of a `nats` connection's credentials.
///
/// # Errors
/// `nats_connection` when the connection is of another kind.
pub(super) fn url_of(extras: &Value) -> Result<&str, StepError> {
    match (extras["broker"].as_str(), extras["url"].as_str()) {
        (Some("nats"), Some(url)) => Ok(url),
        _ => Err(StepError::fatal("nats_connection", "the connection is not a `nats` connection")),
    }
}

/// A JetStream context on a client connected to `url`, whose host is checked against
/// `policy` first; connecting takes at most `within` (and at most 10s).
///
/// # Errors
/// `nats_refused` (the policy), `nats_connection` (a URL the step cannot use),
/// `nats_access_refused` (credentials), `nats_unavailable` (the server cannot be reached).
pub(super) async fn context(url: &str, policy: &OutboundPolicy, within: Duration) -> Result<Context, StepError> {
    let key = url.to_owned();
    let slot = {
        let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
        close_idle(&mut servers, &key);
        servers.entry(key).or_default().clone()
    };
    let mut held = slot.lock().await;
    if let Some(s) = held.as_ref()
        && s.usable()
    {
        *s.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        return Ok(s.context.clone());
    }
    *held = None;
    let client = connect(url, policy, within).await?;
    let alive = broker::runtime_alive();
    let context = async_nats::jetstream::new(client.clone());
    let server = Arc::new(Server { client, context: context.clone(), alive, last_used: Mutex::new(Instant::now()) });
    *held = Some(server);
    Ok(context)
}

/// A client of its own connected to `url` (a trigger's consumer holds one), whose host is
/// checked against `policy` first; connecting takes at most `within` (and at most 10s).
///
/// # Errors
/// `nats_refused` (the policy), `nats_connection` (a URL the step cannot use),
/// `nats_access_refused` (credentials), `nats_unavailable` (the server cannot be reached).
pub async fn connect(url: &str, policy: &OutboundPolicy, within: Duration) -> Result<async_nats::Client, StepError> {
    let bad = |m: &str| StepError::fatal("nats_connection", m.to_owned());
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("invalid NATS URL ({e})")))?;
    let tls = match parsed.scheme() {
        "nats" => false,
        "tls" => true,
        _ => return Err(bad("a NATS URL starts with nats:// or tls://")),
    };
    let host = broker::host(&parsed).ok_or_else(|| bad("the NATS URL names no host"))?;
    let port = parsed.port().unwrap_or(4222);
    // Without TLS the client connects to the address checked (a second lookup could answer
    // differently); with TLS to the name, which the server's certificate must match.
    let pinned = policy
        .resolve_checked(&host, port)
        .await
        .map_err(|m| StepError::fatal("nats_refused", format!("NATS: {m}")))?;
    let connect_to = match pinned {
        Some(ip) if !tls => ip.to_string(),
        _ => host,
    };
    let decode = |s: &str| broker::percent_decode(s).ok_or_else(|| bad("the URL's user or password is not UTF-8"));
    let user = decode(parsed.username())?;
    let password = parsed.password().map(decode).transpose()?;
    let mut options = ConnectOptions::new()
        .name("flowgate")
        .connection_timeout(within.min(CONNECT_TIMEOUT))
        .ignore_discovered_servers()
        .max_reconnects(Some(3));
    options = match (user.is_empty(), password) {
        (false, Some(p)) => options.user_and_password(user, p),
        // A user without a password is a token (`nats://s3cr3t@host`), as NATS tools read it.
        (false, None) => options.token(user),
        (true, _) => options,
    };
    if tls {
        crate::util::install_tls();
        options = options.require_tls(true);
    }
    let scheme = if tls { "tls" } else { "nats" };
    let address = match connect_to.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => format!("{scheme}://[{v6}]:{port}"),
        Err(_) => format!("{scheme}://{connect_to}:{port}"),
    };
    let connecting = options.connect(address.as_str());
    match tokio::time::timeout(within.min(CONNECT_TIMEOUT) + Duration::from_secs(1), connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => {
            let said = broker::scrub(&e.to_string(), url);
            Err(match e.kind() {
                ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => StepError::fatal(
                    "nats_access_refused",
                    format!("NATS: the server refused the credentials ({said})"),
                ),
                ConnectErrorKind::ServerParse => StepError::fatal("nats_connection", format!("NATS: {said}")),
                _ => StepError::retryable("nats_unavailable", format!("NATS: cannot connect ({said})")),
            })
        }
        Err(_) => Err(StepError::retryable("nats_unavailable", "NATS: the server did not answer in time")),
    }
}

/// Checks that the server of a `nats` connection's credentials answers (a connection test):
/// a client of its own, connected as a step's would be (the outbound policy, the address
/// pinned, the credentials checked by the handshake's `PING`), then a message sent to an
/// inbox subject and received back through the server — the round trip a JetStream
/// acknowledgement also takes. Takes at most `within` (and at most 10s per stage).
///
/// # Errors
/// As [`connect`]'s; `nats_unavailable` when the message does not come back in time (the
/// user may not subscribe to `_INBOX.>`?). Never with the URL's credentials.
pub async fn probe(credentials: &Credentials, policy: &OutboundPolicy, within: Duration) -> Result<(), StepError> {
    let url = url_of(&credentials.extras)?;
    let client = connect(url, policy, within).await?;
    let within = within.min(CONNECT_TIMEOUT);
    let round_trip = async {
        let inbox = client.new_inbox();
        let mut echo = client.subscribe(inbox.clone()).await.map_err(|e| e.to_string())?;
        client.publish(inbox, "test".into()).await.map_err(|e| e.to_string())?;
        client.flush().await.map_err(|e| e.to_string())?;
        futures::StreamExt::next(&mut echo).await.map(|_| ()).ok_or_else(|| "the subscription ended".to_owned())
    };
    let answered = match tokio::time::timeout(within, round_trip).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StepError::retryable(
            "nats_unavailable",
            format!("NATS: the round trip failed ({})", broker::scrub(&e, url)),
        )),
        Err(_) => Err(StepError::retryable(
            "nats_unavailable",
            "NATS: a message to an inbox subject did not come back in time (may the user subscribe to `_INBOX.>`?)",
        )),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), client.drain()).await;
    answered
}

/// Drops the clients of `url` (its connection broke, or a publish timed out): the next
/// attempt connects anew.
pub(super) fn forget(url: &str) {
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    servers.retain(|key, _| key != url && !key.starts_with(&format!("{url}\n")));
}

/// Drops clients no attempt used for [`IDLE`] (the last reference closes the connection),
/// except `keep`'s.
fn close_idle(servers: &mut HashMap<String, Slot>, keep: &str) {
    servers.retain(|key, slot| {
        if key == keep {
            return true;
        }
        let Ok(held) = slot.try_lock() else { return true };
        held.as_ref()
            .is_some_and(|s| s.usable() && s.last_used.lock().unwrap_or_else(|e| e.into_inner()).elapsed() <= IDLE)
    });
}
