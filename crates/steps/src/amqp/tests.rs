//! The `amqp` step: its compile-time checks, and publishes against the real RabbitMQ
//! (`FLOWGATE_TEST_AMQP_URL`) read back with lapin: body, headers, properties, publisher
//! confirms (a missing exchange, an unroutable mandatory message), the outbound policy and
//! unreachable brokers. A test without its broker says it is skipped, and fails instead when
//! `FLOWGATE_REQUIRE_SERVICES=1`. Each test uses queues of its own and deletes them.

use crate::StepError;
use crate::broker::testing::{self, service, unique};
use crate::connection::Credentials;
use crate::outbound::OutboundPolicy;
use crate::test_support::{Harness, Ran, compile_in, has_problem};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use std::time::Duration;

/// The broker's URL with a fragment of its own (ignored when connecting), so the test gets a
/// connection of its own: each test has its own runtime, and a connection's I/O runs on the
/// runtime that opened it.
fn broker() -> Option<String> {
    service("FLOWGATE_TEST_AMQP_URL").map(|u| format!("{u}#{}", unique("test")))
}

fn harness(url: &str) -> Harness {
    testing::harness("mq", json!({ "broker": "amqp", "url": url }))
}

/// Runs an `amqp` step (`config`, on connection `mq`) on `input` with `harness`.
async fn publish(harness: &Harness, config: Value, input: Value) -> Result<Value, StepError> {
    let compiled = compile_in(json!([{ "id": "pub", "amqp": config }]), &[("mq", "amqp")], &["mq"]);
    assert!(compiled.diags.is_empty(), "{:#?}", compiled.diags);
    match harness.run(&compiled.steps[0], input).await.result? {
        Ran::Output(v) => Ok(v),
        other => panic!("an amqp step outputs a value, got {other:?}"),
    }
}

/// A queue of the test's own on the broker, read with lapin.
struct Queue {
    conn: Connection,
    channel: lapin::Channel,
    name: String,
}

impl Queue {
    async fn declare(url: &str) -> Queue {
        let conn = Connection::connect(url, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.expect("channel");
        let name = unique("fg-test");
        let options = QueueDeclareOptions { auto_delete: true, ..QueueDeclareOptions::default() };
        channel.queue_declare(name.as_str().into(), options, FieldTable::default()).await.expect("declare");
        Queue { conn, channel, name }
    }

    /// The next message, waiting a little for it.
    async fn get(&self) -> lapin::message::BasicGetMessage {
        for _ in 0..50 {
            let got =
                self.channel.basic_get(self.name.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("get");
            if let Some(m) = got {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no message arrived in queue {}", self.name)
    }

    async fn delete(self) {
        let _ = self.channel.queue_delete(self.name.as_str().into(), QueueDeleteOptions::default()).await;
        let _ = self.conn.close(200, "done".into()).await;
    }
}

fn header<'a>(m: &'a lapin::message::BasicGetMessage, name: &str) -> Option<&'a AMQPValue> {
    m.delivery.properties.headers().as_ref()?.inner().get(&ShortString::from(name))
}

#[tokio::test]
async fn publishes_with_a_confirm_and_the_consumer_gets_body_headers_and_id() {
    let Some(url) = broker() else { return };
    let q = Queue::declare(&url).await;
    let h = harness(&url);
    let out = publish(
        &h,
        json!({
            "routingKey": q.name,
            "body": { "id": "{{ .id }}", "total": "{{ .total }}" },
            "headers": { "x-tenant": "{{ .tenant }}", "x-count": 3, "x-ok": true, "x-tags": ["a", "b"] },
        }),
        json!({ "id": 7, "total": 12.5, "tenant": "acme" }),
    )
    .await
    .unwrap();
    assert_eq!(out, json!({ "exchange": "", "routingKey": q.name, "messageId": "exec-1:pub", "confirmed": true }));
    let m = q.get().await;
    let body: Value = serde_json::from_slice(&m.delivery.data).unwrap();
    assert_eq!(body, json!({ "id": 7, "total": 12.5 }));
    let props = &m.delivery.properties;
    assert_eq!(props.message_id().as_ref().map(ShortString::as_str), Some("exec-1:pub"), "the idempotency key");
    assert_eq!(props.content_type().as_ref().map(ShortString::as_str), Some("application/json"));
    assert_eq!(*props.delivery_mode(), Some(2), "persistent by default");
    assert_eq!(header(&m, "x-tenant"), Some(&AMQPValue::LongString("acme".into())));
    assert_eq!(header(&m, "x-count"), Some(&AMQPValue::LongLongInt(3)));
    assert_eq!(header(&m, "x-ok"), Some(&AMQPValue::Boolean(true)));
    assert_eq!(header(&m, "x-tags"), Some(&AMQPValue::LongString("[\"a\",\"b\"]".into())));

    // A text body is sent as text; the id and the type may be set; transient on request.
    let out = publish(
        &h,
        json!({ "routingKey": q.name, "body": "hello {{ .name }}", "persistent": false,
                "messageId": "order-{{ .id }}", "contentType": "text/csv" }),
        json!({ "name": "world", "id": 9 }),
    )
    .await
    .unwrap();
    assert_eq!(out["messageId"], "order-9");
    let m = q.get().await;
    assert_eq!(m.delivery.data, b"hello world");
    assert_eq!(m.delivery.properties.content_type().as_ref().map(ShortString::as_str), Some("text/csv"));
    assert_eq!(*m.delivery.properties.delivery_mode(), Some(1));

    // No body: the step's input, as JSON.
    publish(&h, json!({ "routingKey": q.name }), json!({ "whole": ["input"] })).await.unwrap();
    let m = q.get().await;
    assert_eq!(serde_json::from_slice::<Value>(&m.delivery.data).unwrap(), json!({ "whole": ["input"] }));
    q.delete().await;
}

#[tokio::test]
async fn publisher_confirms_fail_a_missing_exchange_and_an_unroutable_mandatory_message() {
    let Some(url) = broker() else { return };
    let h = harness(&url);
    let missing = unique("fg-missing");
    let err = publish(&h, json!({ "exchange": missing, "routingKey": "x" }), json!({})).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("amqp_not_found", false), "{err:?}");
    assert!(err.message.contains(&missing) && err.message.contains("NOT_FOUND"), "{err:?}");
    assert_eq!(err.details.as_ref().unwrap()["replyCode"], 404, "{err:?}");

    // The broker closed that channel only: the next publish on the connection goes through.
    let q = Queue::declare(&url).await;
    publish(&h, json!({ "routingKey": q.name, "body": "after" }), Value::Null).await.unwrap();
    assert_eq!(q.get().await.delivery.data, b"after");

    // Unroutable: dropped silently unless mandatory.
    let nowhere = unique("fg-nowhere");
    publish(&h, json!({ "exchange": "amq.direct", "routingKey": nowhere }), json!({})).await.unwrap();
    let err = publish(&h, json!({ "exchange": "amq.direct", "routingKey": nowhere, "mandatory": true }), json!({}))
        .await
        .unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("amqp_unroutable", false), "{err:?}");
    assert!(err.message.contains("amq.direct") && err.message.contains("NO_ROUTE"), "{err:?}");
    q.delete().await;
}

#[tokio::test]
async fn refusals_and_unreachable_brokers_are_classified_without_the_password() {
    let Some(url) = broker() else { return };
    // The outbound policy: a loopback broker is refused on a server that denies internal
    // addresses (and allowed by name).
    let strict = OutboundPolicy { deny_private: true, allow: Vec::new() };
    let err = publish(&harness(&url).outbound(strict), json!({ "routingKey": "x" }), json!({})).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("amqp_refused", false), "{err:?}");
    let allowed = OutboundPolicy { deny_private: true, allow: vec!["127.0.0.1".into()] };
    let q = Queue::declare(&url).await;
    publish(&harness(&url).outbound(allowed), json!({ "routingKey": q.name }), json!({})).await.unwrap();
    q.delete().await;

    // A wrong password: refused for good, and the password never shown.
    let parsed = url::Url::parse(&url).unwrap();
    let mut wrong = parsed.clone();
    wrong.set_password(Some("not-the-s3cret")).unwrap();
    let err = publish(&harness(wrong.as_str()), json!({ "routingKey": "x" }), json!({})).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("amqp_access_refused", false), "{err:?}");
    assert!(!format!("{err:?}").contains("not-the-s3cret"), "{err:?}");

    // Nothing listens: retried.
    let down = format!("amqp://guest:pw-s3cret@127.0.0.1:1/%2f#{}", unique("down"));
    let err = publish(&harness(&down), json!({ "routingKey": "x" }), json!({})).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("amqp_unavailable", true), "{err:?}");
    assert!(!format!("{err:?}").contains("pw-s3cret"), "{err:?}");
}

#[tokio::test]
async fn a_connection_of_another_kind_is_refused_at_run_time() {
    let h = testing::harness("mq", json!({ "database": "postgres", "url": "postgres://x" }));
    let err = publish(&h, json!({ "routingKey": "x" }), json!({})).await.unwrap_err();
    assert_eq!(err.code, "amqp_connection");
}

#[tokio::test]
async fn a_connection_test_opens_a_channel_and_says_why_it_cannot() {
    let Some(url) = broker() else { return };
    let amqp = |url: &str| Credentials { extras: json!({ "broker": "amqp", "url": url }), ..Default::default() };
    let down = "amqp://guest:pw-s3cret@127.0.0.1:1/%2f";
    testing::check_probe(
        "amqp",
        &url,
        down,
        amqp,
        |c, p| async move { super::probe(&c, &p, Duration::from_secs(5)).await },
    )
    .await;
}

#[test]
fn problems_are_located() {
    let compile = |config: Value, connections: &[(&str, &str)], flow: &[&str]| {
        let c = compile_in(json!([{ "id": "pub", "amqp": config }]), connections, flow);
        c.diags.into_iter().map(|d| (d.path, d.message)).collect::<Vec<_>>()
    };
    let mq = &[("mq", "amqp"), ("db", "postgres")][..];
    let p = compile(
        json!({ "exchange": "bad name!", "routingKey": "k".repeat(256), "headers": { "": 1 }, "contentType": " ",
                "body": "{{ .x | }}" }),
        mq,
        &["mq"],
    );
    assert!(has_problem(&p, "steps[0].amqp.exchange", "invalid exchange name `bad name!`"), "{p:?}");
    assert!(has_problem(&p, "steps[0].amqp.routingKey", "at most 255"), "{p:?}");
    assert!(has_problem(&p, "steps[0].amqp.headers[\"\"]", "header name"), "{p:?}");
    assert!(has_problem(&p, "steps[0].amqp.contentType", "1 to 255"), "{p:?}");
    assert!(has_problem(&p, "steps[0].amqp.body", "does not compile"), "{p:?}");
    let p = compile(json!({ "routingKey": "x", "persistant": true }), mq, &["mq"]);
    assert!(has_problem(&p, "steps[0].amqp.persistant", "unknown key"), "{p:?}");

    let p = compile(json!({ "connection": "db", "routingKey": "x" }), mq, &[]);
    assert!(
        has_problem(&p, "steps[0].amqp.connection", "a `postgres` connection; this step needs a `amqp` one"),
        "{p:?}"
    );
    let p = compile(json!({ "routingKey": "x" }), mq, &[]);
    assert!(has_problem(&p, "steps[0].amqp", "no `amqp` connection"), "{p:?}");
    // Templates are checked once evaluated; the flow's connection is the default.
    assert!(compile(json!({ "exchange": "{{ .ex }}", "routingKey": "{{ .k }}" }), mq, &["mq"]).is_empty());
}

#[tokio::test]
async fn a_templated_exchange_is_checked_once_evaluated() {
    let h = harness("amqp://guest:guest@127.0.0.1:1/%2f");
    let err = publish(&h, json!({ "exchange": "{{ .ex }}" }), json!({ "ex": "no spaces allowed" })).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("amqp_message", false), "{err:?}");
    let err = publish(&h, json!({ "routingKey": "{{ .k }}" }), json!({ "k": { "an": "object" } })).await.unwrap_err();
    assert!(err.message.contains("not a text"), "{err:?}");
}

#[test]
fn the_step_has_side_effects() {
    let c = compile_in(json!([{ "id": "pub", "amqp": { "routingKey": "x" } }]), &[("mq", "amqp")], &["mq"]);
    assert!(c.steps[0].body.side_effects());
}
