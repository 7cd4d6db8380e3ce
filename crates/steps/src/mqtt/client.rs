//! The node's MQTT connections: one per broker URL and client id, connected on first use
//! (its `CONNACK` awaited, so a refusal is the step's error) and shared by every execution.
//! rumqttc's event loop must be polled for anything to move, and its events name a publish
//! only by packet id, so each connection has two tasks: [`forward`] hands the steps'
//! publishes to the client in order, noting each; [`drive`] polls the loop and matches each
//! noted publish to its packet id as the loop sends it (`Outgoing::Publish` comes in request
//! order), then to its `PUBACK`. A connection that fails fails every publish waiting on it (retryable) and is
//! replaced on next use; one unused for [`IDLE`] disconnects. A connection test ([`probe`])
//! connects once on its own, under a random client id.

use crate::StepError;
use crate::broker;
use crate::connection::Credentials;
use crate::outbound::OutboundPolicy;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Longest connecting (TCP, TLS, `CONNECT`/`CONNACK`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection no publish used for this long disconnects.
const IDLE: Duration = Duration::from_secs(10 * 60);
/// The client's request channel's size.
const IN_CLIENT: usize = 64;
/// Publishes waiting for the connection's task, at most.
const QUEUED: usize = 1024;

/// A publish a step hands to a connection's task, and where its outcome goes.
struct Publish {
    topic: String,
    qos: QoS,
    retain: bool,
    payload: Vec<u8>,
    done: oneshot::Sender<Result<(), StepError>>,
}

/// A connection, as steps see it: its task's queue.
#[derive(Clone)]
pub(super) struct Broker {
    tx: mpsc::Sender<Publish>,
}

impl Broker {
    /// Publishes one message; waits for the broker's `PUBACK` at QoS 1.
    ///
    /// # Errors
    /// `mqtt_unavailable` when the connection fails first.
    pub(super) async fn publish(
        &self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), StepError> {
        let (done, outcome) = oneshot::channel();
        self.tx
            .send(Publish { topic, qos, retain, payload, done })
            .await
            .map_err(|_| unavailable("the connection closed"))?;
        outcome.await.unwrap_or_else(|_| Err(unavailable("the connection closed before the broker acknowledged")))
    }
}

/// Connections by key (URL, client id, pinned address); the slot's lock makes connecting
/// single-flight.
type Slot = Arc<tokio::sync::Mutex<Option<Broker>>>;
static BROKERS: LazyLock<Mutex<HashMap<String, Slot>>> = LazyLock::new(Default::default);

/// The URL and client id of an `mqtt` connection's credentials.
///
/// # Errors
/// `mqtt_connection` when the connection is of another kind.
pub(super) fn url_of(extras: &Value) -> Result<(&str, Option<&str>), StepError> {
    match (extras["broker"].as_str(), extras["url"].as_str()) {
        (Some("mqtt"), Some(url)) => Ok((url, extras["clientId"].as_str())),
        _ => Err(StepError::fatal("mqtt_connection", "the connection is not an `mqtt` connection")),
    }
}

/// The options of a connection to the broker at `url` as client `id` (a trigger's consumer
/// makes its own, with a persistent session): its host checked against `policy` first and,
/// without TLS, pinned to the address checked.
///
/// # Errors
/// `mqtt_refused` (the policy), `mqtt_connection` (a URL that cannot be used).
pub async fn options(url: &str, id: String, policy: &OutboundPolicy) -> Result<MqttOptions, StepError> {
    let bad = |m: &str| StepError::fatal("mqtt_connection", m.to_owned());
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("invalid MQTT URL ({e})")))?;
    let (tls, default_port) = match parsed.scheme() {
        "mqtt" => (false, 1883),
        "mqtts" => (true, 8883),
        _ => return Err(bad("an MQTT URL starts with mqtt:// or mqtts://")),
    };
    let host = broker::host(&parsed).ok_or_else(|| bad("the MQTT URL names no host"))?;
    let port = parsed.port().unwrap_or(default_port);
    if parsed.query().is_some() || !matches!(parsed.path(), "" | "/") {
        return Err(bad("an MQTT URL has no path or parameters: mqtt://user:password@host:port"));
    }
    // Without TLS the connection goes to the address checked (a second lookup could answer
    // differently); with TLS to the name, which the broker's certificate must match.
    let pinned = policy
        .resolve_checked(&host, port)
        .await
        .map_err(|m| StepError::fatal("mqtt_refused", format!("MQTT: {m}")))?;
    let connect_to = match pinned {
        Some(ip) if !tls => ip.to_string(),
        _ => host,
    };
    let decode = |s: &str| broker::percent_decode(s).ok_or_else(|| bad("the URL's user or password is not UTF-8"));
    let mut options = MqttOptions::new(id, connect_to, port);
    options.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(64 * 1024, super::MAX_PAYLOAD + 64 * 1024 + 16);
    if !parsed.username().is_empty() {
        let password = parsed.password().map(decode).transpose()?.unwrap_or_default();
        options.set_credentials(decode(parsed.username())?, password);
    }
    if tls {
        crate::util::install_tls();
        options.set_transport(rumqttc::Transport::tls_with_default_config());
    }
    Ok(options)
}

/// The connection to the broker at `url` as `client_id` (default: `flowgate-` and a random
/// suffix), its host checked against `policy` first; connecting takes at most `within`
/// (and at most 10s).
///
/// # Errors
/// `mqtt_refused` (the policy), `mqtt_connection` (a URL the step cannot use),
/// `mqtt_access_refused` (credentials, client id), `mqtt_unavailable` (unreachable).
pub(super) async fn broker(
    url: &str,
    client_id: Option<&str>,
    policy: &OutboundPolicy,
    within: Duration,
) -> Result<Broker, StepError> {
    let key = format!("{url}\n{}", client_id.unwrap_or(""));
    let slot = {
        let mut brokers = BROKERS.lock().unwrap_or_else(|e| e.into_inner());
        // Connections whose task ended (failed, idle, or its runtime gone) are dropped.
        brokers.retain(|k, slot| {
            k == &key || slot.try_lock().map_or(true, |b| b.as_ref().is_some_and(|b| !b.tx.is_closed()))
        });
        brokers.entry(key).or_default().clone()
    };
    let mut held = slot.lock().await;
    if let Some(b) = held.as_ref()
        && !b.tx.is_closed()
    {
        return Ok(b.clone());
    }
    *held = None;

    let id = client_id.map_or_else(|| random_id("flowgate"), str::to_owned);
    let mut options = options(url, id, policy).await?;
    options.set_clean_session(true).set_request_channel_capacity(IN_CLIENT);
    let (client, mut eventloop) = AsyncClient::new(options, IN_CLIENT);
    connack(&mut eventloop, url, within).await?;
    let (tx, rx) = mpsc::channel(QUEUED);
    let shared = Arc::new(Shared { unsent: Mutex::default(), last_used: Mutex::new(Instant::now()) });
    tokio::spawn(forward(client.clone(), rx, shared.clone()));
    tokio::spawn(drive(client, eventloop, shared, url.to_owned()));
    let broker = Broker { tx };
    *held = Some(broker.clone());
    Ok(broker)
}

/// Checks that the broker of an `mqtt` connection's credentials answers (a connection test):
/// a connection of its own, made as a step's would be (the outbound policy, the address
/// pinned, the URL's credentials), its `CONNACK` awaited, then a `DISCONNECT`. Its client id
/// is a random one, never the connection's `clientId`: the broker would drop the session in
/// use under that id. Takes at most `within` (and at most 10s).
///
/// # Errors
/// As [`broker`]'s: `mqtt_refused`, `mqtt_connection`, `mqtt_access_refused`,
/// `mqtt_unavailable`; never with the URL's password.
pub async fn probe(credentials: &Credentials, policy: &OutboundPolicy, within: Duration) -> Result<(), StepError> {
    let (url, _) = url_of(&credentials.extras)?;
    let mut options = options(url, random_id("flowgate-test"), policy).await?;
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, 1);
    connack(&mut eventloop, url, within).await?;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    Ok(())
}

/// Polls a new connection's event loop until the broker's `CONNACK`, within `within` (and
/// at most 10s): a refusal or a failure is the error.
async fn connack(eventloop: &mut EventLoop, url: &str, within: Duration) -> Result<(), StepError> {
    let connecting = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(error(&e, url)),
            }
        }
    };
    match tokio::time::timeout(within.min(CONNECT_TIMEOUT), connecting).await {
        Ok(done) => done,
        Err(_) => Err(unavailable("the broker did not accept the connection in time")),
    }
}

/// `<prefix>-` and 16 random hex digits: a client id no other connection uses.
fn random_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", std::collections::hash_map::RandomState::new().build_hasher().finish())
}

/// Where a publish's outcome goes.
type Done = oneshot::Sender<Result<(), StepError>>;

/// What a connection's two tasks share.
struct Shared {
    /// Publishes handed to the client and not yet sent, in order: their QoS and outcome.
    unsent: Mutex<VecDeque<(QoS, Done)>>,
    /// When a publish last came (or the connection was made).
    last_used: Mutex<Instant>,
}

impl Shared {
    fn fail_unsent(&self, failure: &StepError) {
        let unsent: Vec<_> = self.unsent.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        for (_, done) in unsent {
            let _ = done.send(Err(failure.clone()));
        }
    }
}

/// Hands the steps' publishes to the client, in order, noting each in `unsent` first (so the
/// event loop, which sends them in the same order, finds it there). Ends when the event
/// loop is gone (the client refuses), failing what is left.
async fn forward(client: AsyncClient, mut rx: mpsc::Receiver<Publish>, shared: Arc<Shared>) {
    while let Some(p) = rx.recv().await {
        *shared.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        shared.unsent.lock().unwrap_or_else(|e| e.into_inner()).push_back((p.qos, p.done));
        if client.publish(p.topic, p.qos, p.retain, p.payload).await.is_err() {
            break;
        }
    }
    rx.close();
    let failure = unavailable("the connection closed");
    shared.fail_unsent(&failure);
    while let Ok(p) = rx.try_recv() {
        let _ = p.done.send(Err(failure.clone()));
    }
}

/// Polls the connection's event loop (never cancelled mid-poll: rumqttc's `poll` may hold a
/// request it took), telling each publish its outcome as it is sent (QoS 0) or acknowledged
/// (QoS 1). Ends when the connection fails (failing what waits) or sat unused for [`IDLE`];
/// dropping the event loop then ends [`forward`].
async fn drive(client: AsyncClient, mut eventloop: EventLoop, shared: Arc<Shared>, url: String) {
    let mut unacked: HashMap<u16, Done> = HashMap::new();
    let failure = loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let next = shared.unsent.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                if let Some((qos, done)) = next {
                    if qos == QoS::AtMostOnce {
                        let _ = done.send(Ok(()));
                    } else {
                        unacked.insert(pkid, done);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(done) = unacked.remove(&ack.pkid) {
                    let _ = done.send(Ok(()));
                }
            }
            // Pings come every keep-alive period, so an idle connection is noticed.
            Ok(_) => {
                let unused = shared.last_used.lock().unwrap_or_else(|e| e.into_inner()).elapsed() > IDLE;
                let waiting =
                    !unacked.is_empty() || !shared.unsent.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
                if unused && !waiting {
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
                    break None;
                }
            }
            Err(e) => break Some(error(&e, &url)),
        }
    };
    let failure = StepError { retryable: true, ..failure.unwrap_or_else(|| unavailable("the connection closed")) };
    for (_, done) in unacked.drain() {
        let _ = done.send(Err(failure.clone()));
    }
    shared.fail_unsent(&failure);
}

fn unavailable(message: &str) -> StepError {
    StepError::retryable("mqtt_unavailable", format!("MQTT: {message}"))
}

/// A connection error as a step error: a refusal of the credentials or client id is not
/// retried; anything else is. `url`'s password never shows.
fn error(e: &ConnectionError, url: &str) -> StepError {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
                ConnectReturnCode::NotAuthorized => "not authorized",
                ConnectReturnCode::BadClientId => "the client id was refused",
                ConnectReturnCode::RefusedProtocolVersion => "MQTT 3.1.1 is not supported",
                ConnectReturnCode::ServiceUnavailable => {
                    return unavailable("the broker is unavailable (CONNACK: server unavailable)");
                }
                ConnectReturnCode::Success => "refused",
            };
            StepError::fatal("mqtt_access_refused", format!("MQTT: the broker refused the connection: {why}"))
        }
        other => unavailable(&broker::scrub(&other.to_string(), url)),
    }
}
