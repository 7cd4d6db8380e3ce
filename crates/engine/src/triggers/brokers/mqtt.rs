//! The `mqtt` trigger's consumer: a subscription to a topic filter in a persistent session
//! (`clean_session: false`, a client id stable per flow), with manual acknowledgements: a
//! QoS 1 message's `PUBACK` goes only once its execution is committed, so a node that dies
//! before gets it again from the broker when the session resumes. MQTT gives no message id
//! across redeliveries (a packet id is reused), so a message delivered again after its
//! commit runs again: a flow that must not see a repeat sets the trigger's `dedupKey` on
//! something in the message.
//!
//! ```yaml
//! trigger:
//!   mqtt: { connection: plant, topic: "sensors/+/temp", qos: 1 }
//! ```
//! `$trigger`: `{ body, encoding, topic, qos, retain, duplicate }`.

use super::{Consumer, Delivered, body_of};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::json;
use std::time::Duration;

/// Messages in the client's hands at once.
const IN_HAND: usize = 64;

pub(super) async fn consume(c: &Consumer<'_>, topic: &str, qos: u8) -> Result<(), String> {
    let url = c.url()?;
    // The session is the flow's: the same id after a restart or on another node resumes it.
    let id = match c.extras["clientId"].as_str() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            // FNV-1a: the same id from any build of any version (std's hasher promises none).
            let name = format!("{}/{}/{}", c.flow.tenant, c.flow.integration, c.flow.slug);
            let hash =
                name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            format!("flowgate-{hash:016x}")
        }
    };
    let mut options = flowgate_steps::mqtt::client::options(url, id, &c.engine.inner.settings.outbound)
        .await
        .map_err(|e| e.message)?;
    options.set_clean_session(false).set_manual_acks(true).set_inflight(IN_HAND as u16);
    let (client, mut events) = AsyncClient::new(options, IN_HAND);
    let qos = if qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
    client.subscribe(topic, qos).await.map_err(|e| e.to_string())?;
    // The event loop runs on its own (its `poll` must not be cut short mid-packet, and pings
    // go on while a message commits); it hands the messages over in the order received. The
    // hand-over never blocks it: acknowledgements only leave through `poll`, so a loop that
    // waited for room while the consumer waited for its acknowledgement to be taken would
    // stop both (and the keep-alive with them). What it holds is bounded by the broker: it
    // sends no more than its in-flight window and the session's queue of unacknowledged
    // messages.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<rumqttc::Publish, String>>();
    let filter = topic.to_owned();
    let driver = tokio::spawn(async move {
        loop {
            let next = match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => Ok(p),
                Ok(Event::Incoming(Packet::SubAck(ack)))
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) =>
                {
                    Err(format!("the broker refused the subscription to `{filter}`"))
                }
                Ok(_) => continue,
                Err(e) => Err(format!("MQTT: {e}")),
            };
            let failed = next.is_err();
            if tx.send(next).is_err() || failed {
                return;
            }
        }
    });
    let result = async {
        loop {
            let p = tokio::select! {
                _ = c.stop.cancelled() => return Ok(()),
                next = rx.recv() => match next {
                    Some(Ok(p)) => p,
                    Some(Err(e)) => return Err(e),
                    None => return Err("the MQTT connection ended".to_owned()),
                },
            };
            if c.too_large(p.payload.len()) {
                client.ack(&p).await.map_err(|e| e.to_string())?;
                continue;
            }
            let (body, encoding) = body_of(&p.payload);
            let trigger = json!({
                "body": body,
                "encoding": encoding,
                "topic": p.topic,
                "qos": p.qos as u8,
                "retain": p.retain,
                "duplicate": p.dup,
            });
            // One at a time, in order: a session's acknowledgements go in the order received.
            match c.deliver(trigger, None).await {
                Delivered::Committed | Delivered::Refused => client.ack(&p).await.map_err(|e| e.to_string())?,
                Delivered::Stopped => return Ok(()),
            }
        }
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), client.disconnect()).await;
    driver.abort();
    result
}
