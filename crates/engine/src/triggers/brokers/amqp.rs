//! The `amqp` trigger's consumer: a queue consumed with `basic.qos(prefetch)` as
//! backpressure, each delivery committed as an execution and only then acknowledged. The
//! message's `message-id` (when the publisher set one) is its identity, so a message the
//! broker delivers again after its commit starts nothing new.
//!
//! ```yaml
//! trigger:
//!   amqp: { connection: mq, queue: orders-in, prefetch: 64 }
//! ```
//! `$trigger`: `{ body, encoding, headers, properties: {messageId, correlationId, contentType,
//! type, appId, replyTo, timestamp, priority, deliveryMode}, exchange, routingKey,
//! redelivered, queue }`.

use super::{Consumer, Delivered, body_of};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties, message::Delivery};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Longest connecting (TCP, TLS, the AMQP handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn consume(c: &Consumer<'_>, queue: &str, prefetch: u16, declare: bool) -> Result<(), String> {
    let url = c.url()?;
    let conn = connect(c, url).await?;
    let result = consume_on(c, &conn, queue, prefetch, declare).await;
    // Unacknowledged deliveries go back to the queue when the connection closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "flowgate consumer stopping".into())).await;
    result
}

/// A connection to the broker at `url`, whose host the node's outbound policy allows (as an
/// `http` step's would be): without TLS to the very address checked.
async fn connect(c: &Consumer<'_>, url: &str) -> Result<Connection, String> {
    let mut uri: AMQPUri = url.parse().map_err(|_| "the connection's AMQP URL is invalid".to_owned())?;
    let host = uri.authority.host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let pinned = c.engine.inner.settings.outbound.resolve_checked(&host, uri.authority.port).await?;
    if let (Some(ip), AMQPScheme::AMQP) = (pinned, &uri.scheme) {
        uri.authority.host = ip.to_string();
    }
    let properties = ConnectionProperties::default().with_connection_name(format!("flowgate {}", c.flow.slug).into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("cannot connect to the AMQP broker at {host}: {e}")),
        Err(_) => Err(format!("the AMQP broker at {host} did not accept a connection in time")),
    }
}

async fn consume_on(
    c: &Consumer<'_>,
    conn: &Connection,
    queue: &str,
    prefetch: u16,
    declare: bool,
) -> Result<(), String> {
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(|e| e.to_string())?;
    if declare {
        let options = QueueDeclareOptions { durable: true, ..Default::default() };
        channel.queue_declare(queue.into(), options, FieldTable::default()).await.map_err(|e| e.to_string())?;
    }
    let tag = format!("flowgate-{}-{}", c.flow.integration, c.flow.slug);
    let mut deliveries = channel
        .basic_consume(queue.into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .map_err(|e| format!("cannot consume queue `{queue}`: {e}"))?;
    // An ordered flow's executions are committed in the order received; else up to the
    // prefetch at once, so their commits share transactions.
    let at_once = if c.flow.policy.order.is_some() { 1 } else { usize::from(prefetch) };
    let mut settling = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            _ = c.stop.cancelled() => return Ok(()),
            Some(settled) = settling.next(), if !settling.is_empty() => settled?,
            next = deliveries.next(), if settling.len() < at_once => match next {
                Some(Ok(delivery)) => settling.push(settle(c, queue, delivery)),
                Some(Err(e)) => return Err(format!("the consumer of `{queue}` failed: {e}")),
                None => return Err(format!("the broker ended the consumer of `{queue}`")),
            },
        }
    }
}

/// One delivery: committed, then acknowledged.
async fn settle(c: &Consumer<'_>, queue: &str, delivery: Delivery) -> Result<(), String> {
    let p = &delivery.properties;
    let (body, encoding) =
        if delivery.data.len() > super::MAX_MESSAGE_BYTES { (Value::Null, "refused") } else { body_of(&delivery.data) };
    let text = |s: &Option<lapin::types::ShortString>| s.as_ref().map(|s| Value::String(s.as_str().to_owned()));
    let mut properties = Map::new();
    for (name, value) in [
        ("messageId", text(p.message_id())),
        ("correlationId", text(p.correlation_id())),
        ("contentType", text(p.content_type())),
        ("type", text(p.kind())),
        ("appId", text(p.app_id())),
        ("replyTo", text(p.reply_to())),
        ("timestamp", p.timestamp().map(|t| json!(t))),
        ("priority", p.priority().map(|v| json!(v))),
        ("deliveryMode", p.delivery_mode().map(|v| json!(v))),
    ] {
        if let Some(v) = value {
            properties.insert(name.to_owned(), v);
        }
    }
    let headers: Map<String, Value> = p
        .headers()
        .as_ref()
        .map(|t| t.inner().iter().map(|(k, v)| (k.as_str().to_owned(), json_of(v))).collect())
        .unwrap_or_default();
    let trigger = json!({
        "body": body,
        "encoding": encoding,
        "headers": headers,
        "properties": properties,
        "exchange": delivery.exchange.as_str(),
        "routingKey": delivery.routing_key.as_str(),
        "redelivered": delivery.redelivered,
        "queue": queue,
    });
    let identity = p.message_id().as_ref().map(|m| format!("amqp:{queue}:{}", m.as_str()));
    let delivered =
        if c.too_large(delivery.data.len()) { Delivered::Refused } else { c.deliver(trigger, identity).await };
    match delivered {
        Delivered::Committed => delivery.ack(BasicAckOptions::default()).await.map(drop).map_err(|e| e.to_string()),
        // Not requeued (it would come back forever): the queue's dead-letter exchange, when
        // it has one, keeps it.
        Delivered::Refused => {
            delivery.reject(BasicRejectOptions { requeue: false }).await.map(drop).map_err(|e| e.to_string())
        }
        Delivered::Stopped => Ok(()),
    }
}

/// A header's value as JSON.
fn json_of(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(json_of).collect()),
        AMQPValue::FieldTable(t) => {
            Value::Object(t.inner().iter().map(|(k, v)| (k.as_str().to_owned(), json_of(v))).collect())
        }
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::ByteArray(b) => {
            json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b.as_slice()))
        }
        AMQPValue::Void => Value::Null,
        other => json!(format!("{other:?}")),
    }
}
