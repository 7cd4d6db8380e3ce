//! The node's AMQP connections: one per broker URL, opened on first use and shared by every
//! execution, each with a few idle channels in confirm mode. A channel serves one attempt at
//! a time (a broker that refuses a publish closes its channel, which must not fail anyone
//! else's), goes back to the idle list when the attempt is done with it, and is closed when
//! the attempt failed or was cut short. A connection that is lost is replaced on next use;
//! one unused for [`IDLE`] is closed. A connection test ([`probe`]) opens one of its own,
//! checked and pinned the same way.

use crate::StepError;
use crate::broker;
use crate::connection::Credentials;
use crate::outbound::OutboundPolicy;
use lapin::options::ConfirmSelectOptions;
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties, ErrorKind};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Longest a connection (TCP, TLS and the AMQP handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle channels kept per connection.
const IDLE_CHANNELS: usize = 8;
/// A connection no attempt used for this long is closed.
const IDLE: Duration = Duration::from_secs(10 * 60);

/// A broker connection and its idle channels.
struct Broker {
    conn: Connection,
    idle: Mutex<Vec<Channel>>,
    /// False once the runtime the connection was opened on is gone (its I/O ran there).
    alive: Arc<AtomicBool>,
    last_used: Mutex<Instant>,
}

impl Broker {
    fn usable(&self) -> bool {
        self.alive.load(Ordering::Relaxed) && self.conn.status().connected()
    }
}

/// One connection per key (the URL, and the address it was pinned to); the slot's lock makes
/// the connecting single-flight.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Broker>>>>;
static BROKERS: LazyLock<Mutex<HashMap<String, Slot>>> = LazyLock::new(Default::default);

/// The URL of an `amqp` connection's credentials.
///
/// # Errors
/// `amqp_connection` when the connection is of another kind.
pub(super) fn url_of(extras: &Value) -> Result<&str, StepError> {
    match (extras["broker"].as_str(), extras["url"].as_str()) {
        (Some("amqp"), Some(url)) => Ok(url),
        _ => Err(StepError::fatal("amqp_connection", "the connection is not an `amqp` connection")),
    }
}

/// A channel in confirm mode to the broker at `url`, whose host is checked against `policy`
/// first; connecting takes at most `within` (and at most 10s).
///
/// # Errors
/// `amqp_refused` (the policy), `amqp_connection` (a URL the step cannot use),
/// `amqp_unavailable` (the broker cannot be reached) and the broker's own refusals.
pub(super) async fn channel(url: &str, policy: &OutboundPolicy, within: Duration) -> Result<Lease, StepError> {
    let (key, uri) = target(url, policy).await?;
    let within = within.min(CONNECT_TIMEOUT);
    let broker = broker(key, uri, url, within).await?;
    *broker.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    let idle = {
        let mut idle = broker.idle.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::from_fn(|| idle.pop()).find(|c| c.status().connected())
    };
    let channel = match idle {
        Some(c) => c,
        None => {
            let open = async {
                let c = broker.conn.create_channel().await?;
                c.confirm_select(ConfirmSelectOptions::default()).await?;
                Ok::<_, lapin::Error>(c)
            };
            match tokio::time::timeout(within, open).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(error(&e, url)),
                Err(_) => return Err(unavailable("the broker did not open a channel in time")),
            }
        }
    };
    Ok(Lease { broker, channel: Some(channel), url: url.to_owned(), finished: AtomicBool::new(false) })
}

/// Checks that the broker of an `amqp` connection's credentials answers (a connection
/// test): a connection of its own, made as a step's would be (the outbound policy, the
/// address pinned), a channel opened on it, both closed again. Takes at most `within` (and
/// at most 10s per stage).
///
/// # Errors
/// As [`channel`]'s: `amqp_refused`, `amqp_connection`, `amqp_unavailable`,
/// `amqp_access_refused`; never with the URL's password.
pub async fn probe(credentials: &Credentials, policy: &OutboundPolicy, within: Duration) -> Result<(), StepError> {
    let url = url_of(&credentials.extras)?;
    let (_, uri) = target(url, policy).await?;
    let within = within.min(CONNECT_TIMEOUT);
    let conn = open(uri, url, within).await?;
    let opened = match tokio::time::timeout(within, conn.create_channel()).await {
        Ok(Ok(channel)) => {
            let _ = channel.close(200, "test".into()).await;
            Ok(())
        }
        Ok(Err(e)) => Err(error(&e, url)),
        Err(_) => Err(unavailable("the broker did not open a channel in time")),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "test".into())).await;
    opened
}

/// The broker `url` names, its host checked against `policy`: the key its connection is
/// kept under (the URL, and the address it was pinned to) and the URI to connect to.
async fn target(url: &str, policy: &OutboundPolicy) -> Result<(String, AMQPUri), StepError> {
    let mut uri: AMQPUri = url.parse().map_err(|e: String| {
        StepError::fatal("amqp_connection", broker::scrub(&format!("invalid AMQP URL: {e}"), url))
    })?;
    let host = uri.authority.host.trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(StepError::fatal("amqp_connection", "the AMQP URL names no host"));
    }
    // The same check as an HTTP step's URL. Without TLS the connection goes to the address
    // checked (a second lookup could answer differently); with TLS to the name, which the
    // broker's certificate must match, so a name re-pointed elsewhere cannot be reached.
    let pinned = policy
        .resolve_checked(&host, uri.authority.port)
        .await
        .map_err(|m| StepError::fatal("amqp_refused", format!("AMQP: {m}")))?;
    uri.authority.host = match (pinned, &uri.scheme) {
        (Some(ip), AMQPScheme::AMQP) => ip.to_string(),
        _ => host,
    };
    let key = match pinned {
        Some(ip) => format!("{url}\n{ip}"),
        None => url.to_owned(),
    };
    Ok((key, uri))
}

/// A new connection to `uri` (`url` as written, for messages), within `within`.
async fn open(uri: AMQPUri, url: &str, within: Duration) -> Result<Connection, StepError> {
    let properties = ConnectionProperties::default().with_connection_name("flowgate".into());
    match tokio::time::timeout(within, Connection::connect_uri(uri, properties)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(error(&e, url)),
        Err(_) => Err(unavailable("the broker did not accept a connection in time")),
    }
}

/// The connection under `key`, opened when there is none (or it was lost).
async fn broker(key: String, uri: AMQPUri, url: &str, within: Duration) -> Result<Arc<Broker>, StepError> {
    let slot = {
        let mut brokers = BROKERS.lock().unwrap_or_else(|e| e.into_inner());
        close_idle(&mut brokers, &key);
        brokers.entry(key).or_default().clone()
    };
    let mut held = slot.lock().await;
    if let Some(b) = held.as_ref()
        && b.usable()
    {
        return Ok(b.clone());
    }
    *held = None;
    let conn = open(uri, url, within).await?;
    let alive = broker::runtime_alive();
    let b = Arc::new(Broker { conn, idle: Mutex::default(), alive, last_used: Mutex::new(Instant::now()) });
    *held = Some(b.clone());
    Ok(b)
}

/// Closes (in the background) connections no attempt used for [`IDLE`], except `keep`'s.
fn close_idle(brokers: &mut HashMap<String, Slot>, keep: &str) {
    brokers.retain(|key, slot| {
        if key == keep {
            return true;
        }
        let Ok(mut held) = slot.try_lock() else { return true };
        let idle = held
            .as_ref()
            .is_none_or(|b| !b.usable() || b.last_used.lock().unwrap_or_else(|e| e.into_inner()).elapsed() > IDLE);
        if idle
            && let Some(b) = held.take()
            && b.usable()
        {
            tokio::spawn(async move {
                let _ = b.conn.close(200, "idle".into()).await;
            });
        }
        !idle
    });
}

/// A channel lent to one attempt: back to the idle list when the attempt [`finish`]es with
/// it, closed otherwise (a failed or cut-short publish may leave it closed or waiting on a
/// confirm).
///
/// [`finish`]: Lease::finish
pub(super) struct Lease {
    broker: Arc<Broker>,
    channel: Option<Channel>,
    url: String,
    finished: AtomicBool,
}

impl Lease {
    pub(super) fn channel(&self) -> &Channel {
        self.channel.as_ref().expect("a lease holds its channel until dropped")
    }

    /// The attempt is done with the channel: it may serve another.
    pub(super) fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    /// `e`, as a step error.
    pub(super) fn failed(&self, e: lapin::Error) -> StepError {
        error(&e, &self.url)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(channel) = self.channel.take() else { return };
        if !channel.status().connected() {
            return;
        }
        if self.finished.load(Ordering::Relaxed) {
            let mut idle = self.broker.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_CHANNELS {
                idle.push(channel);
                return;
            }
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = channel.close(200, "done".into()).await;
            });
        }
    }
}

fn unavailable(message: &str) -> StepError {
    StepError::retryable("amqp_unavailable", format!("AMQP: {message}"))
}

/// A lapin error as a step error. The broker's refusals (a missing exchange, access refused,
/// a precondition) are not retried; a lost or failed connection is. `url`'s password never
/// shows.
fn error(e: &lapin::Error, url: &str) -> StepError {
    let said = broker::scrub(&e.to_string(), url);
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => {
            let text = broker::scrub(amqp.get_message().as_str(), url);
            let details = Some(json!({ "replyCode": amqp.get_id(), "replyText": text }));
            let (code, retryable) = match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => ("amqp_not_found", false),
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => ("amqp_access_refused", false),
                AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED)
                | AMQPErrorKind::Hard(
                    AMQPHardError::CONNECTIONFORCED | AMQPHardError::RESOURCEERROR | AMQPHardError::INTERNALERROR,
                ) => ("amqp_unavailable", true),
                _ => ("amqp_error", false),
            };
            let message = match code {
                "amqp_not_found" => format!("the broker refused the publish: {text} (declare it first)"),
                "amqp_access_refused" => format!("the broker refused access: {text}"),
                _ => format!("the broker closed the channel: {text}"),
            };
            StepError { details, retryable, ..StepError::fatal(code, format!("AMQP: {message}")) }
        }
        ErrorKind::AuthProviderError(_) => StepError::fatal("amqp_access_refused", format!("AMQP: {said}")),
        _ => unavailable(&said),
    }
}
