//! The `nats` trigger's consumer: a durable pull consumer of a JetStream stream (made, with
//! explicit acks, when it does not exist), each message committed as an execution and only
//! then acknowledged (and the acknowledgement confirmed by the server). The stream and the
//! message's sequence in it are its identity, so a message delivered again after its commit
//! (an acknowledgement lost with its node, or `ackWait` passing) starts nothing new.
//!
//! ```yaml
//! trigger:
//!   nats: { connection: bus, stream: ORDERS, consumer: flowgate-orders, subject: "orders.created" }
//! ```
//! `$trigger`: `{ body, encoding, subject, headers, stream, sequence, delivered }`.

use super::{Consumer, Delivered, body_of};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Messages a consumer has in hand, delivered and not yet acknowledged, at most.
const IN_HAND: usize = 64;

pub(super) async fn consume(
    c: &Consumer<'_>,
    stream: &str,
    name: &str,
    subject: Option<&str>,
    ack_wait: Duration,
) -> Result<(), String> {
    let url = c.url()?;
    let client = flowgate_steps::nats::client::connect(url, &c.engine.inner.settings.outbound, Duration::from_secs(10))
        .await
        .map_err(|e| e.message)?;
    let js = async_nats::jetstream::new(client);
    let source = js.get_stream(stream).await.map_err(|e| format!("no stream `{stream}`: {e}"))?;
    let config = pull::Config {
        durable_name: Some(name.to_owned()),
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        filter_subject: subject.unwrap_or_default().to_owned(),
        max_ack_pending: IN_HAND as i64,
        ..Default::default()
    };
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        source.get_or_create_consumer(name, config).await.map_err(|e| format!("consumer `{name}`: {e}"))?;
    let mut messages = consumer.messages().await.map_err(|e| format!("consumer `{name}`: {e}"))?;
    let at_once = if c.flow.policy.order.is_some() { 1 } else { IN_HAND };
    let mut settling = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            _ = c.stop.cancelled() => return Ok(()),
            Some(settled) = settling.next(), if !settling.is_empty() => settled?,
            next = messages.next(), if settling.len() < at_once => match next {
                Some(Ok(message)) => settling.push(settle(c, message)),
                Some(Err(e)) => return Err(format!("consumer `{name}` failed: {e}")),
                None => return Err(format!("the server ended consumer `{name}`")),
            },
        }
    }
}

/// One message: committed, then acknowledged.
async fn settle(c: &Consumer<'_>, message: async_nats::jetstream::Message) -> Result<(), String> {
    let (stream, sequence, delivered) = match message.info() {
        Ok(info) => (info.stream.to_owned(), info.stream_sequence, info.delivered),
        Err(e) => return Err(format!("a message without JetStream metadata: {e}")),
    };
    if c.too_large(message.payload.len()) {
        return message
            .ack_with(async_nats::jetstream::AckKind::Term)
            .await
            .map_err(|e| format!("cannot terminate: {e}"));
    }
    let (body, encoding) = body_of(&message.payload);
    let headers: Map<String, Value> = message
        .headers
        .as_ref()
        .map(|h| {
            h.iter()
                .map(|(k, vs)| {
                    let vs: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
                    let v = if vs.len() == 1 { json!(vs[0]) } else { json!(vs) };
                    (k.to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    let trigger = json!({
        "body": body,
        "encoding": encoding,
        "subject": message.subject.as_str(),
        "headers": headers,
        "stream": stream,
        "sequence": sequence,
        "delivered": delivered,
    });
    match c.deliver(trigger, Some(format!("nats:{stream}:{sequence}"))).await {
        Delivered::Committed => message.double_ack().await.map_err(|e| format!("cannot acknowledge: {e}")),
        // Never accepted: terminated, so it is not delivered again.
        Delivered::Refused => {
            message.ack_with(async_nats::jetstream::AckKind::Term).await.map_err(|e| format!("cannot terminate: {e}"))
        }
        Delivered::Stopped => Ok(()),
    }
}
