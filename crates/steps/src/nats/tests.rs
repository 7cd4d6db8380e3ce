//! The `nats` step: its compile-time checks, and publishes against the real NATS server with
//! JetStream (`FLOWGATE_TEST_NATS_URL`), read back from the stream with async-nats: body,
//! headers, the stream's acknowledgement, deduplication by `Nats-Msg-Id`, a subject no
//! stream captures, the outbound policy and unreachable servers. A test without its server
//! says it is skipped, and fails instead when `FLOWGATE_REQUIRE_SERVICES=1`. Each test
//! creates streams of its own and deletes them.

use crate::StepError;
use crate::broker::testing::{self, service, unique};
use crate::connection::Credentials;
use crate::outbound::OutboundPolicy;
use crate::test_support::{Harness, Ran, compile_in, has_problem};
use async_nats::jetstream;
use serde_json::{Value, json};
use std::time::Duration;

/// The server's URL with a fragment of its own (ignored when connecting), so the test gets a
/// client of its own (a client's I/O runs on the runtime that connected it).
fn server() -> Option<String> {
    service("FLOWGATE_TEST_NATS_URL").map(|u| format!("{u}#{}", unique("test")))
}

fn harness(url: &str) -> Harness {
    testing::harness("js", json!({ "broker": "nats", "url": url }))
}

/// Runs a `nats` step (`config`, on connection `js`) with id `id` on `input`.
async fn publish(harness: &Harness, id: &str, config: Value, input: Value) -> Result<Value, StepError> {
    let compiled = compile_in(json!([{ "id": id, "nats": config }]), &[("js", "nats")], &["js"]);
    assert!(compiled.diags.is_empty(), "{:#?}", compiled.diags);
    match harness.run(&compiled.steps[0], input).await.result? {
        Ran::Output(v) => Ok(v),
        other => panic!("a nats step outputs a value, got {other:?}"),
    }
}

/// A stream of the test's own capturing `<prefix>.>`.
struct Stream {
    js: jetstream::Context,
    name: String,
    prefix: String,
}

impl Stream {
    async fn create(url: &str) -> Stream {
        let client = async_nats::connect(url.split('#').next().unwrap()).await.expect("connect to NATS");
        let js = jetstream::new(client);
        let name = unique("FG_TEST");
        let prefix = name.to_lowercase().replace('_', "-");
        js.create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await
        .expect("create the stream");
        Stream { js, name, prefix }
    }

    async fn message(&self, sequence: u64) -> jetstream::message::StreamMessage {
        let stream = self.js.get_stream(&self.name).await.expect("the stream");
        stream.get_raw_message(sequence).await.expect("the message")
    }

    async fn delete(self) {
        let _ = self.js.delete_stream(&self.name).await;
    }
}

#[tokio::test]
async fn publishes_to_jetstream_and_a_resend_is_deduplicated() {
    let Some(url) = server() else { return };
    let s = Stream::create(&url).await;
    let h = harness(&url);
    let subject = format!("{}.orders.eu", s.prefix);
    let config = json!({
        "subject": format!("{}.orders.{{{{ .region }}}}", s.prefix),
        "body": { "id": "{{ .id }}" },
        "headers": { "X-Tenant": "{{ .tenant }}", "X-Count": 2 },
    });
    let input = json!({ "region": "eu", "id": 7, "tenant": "acme" });
    let out = publish(&h, "pub", config.clone(), input.clone()).await.unwrap();
    assert_eq!(out, json!({ "subject": subject, "stream": s.name, "sequence": 1, "duplicate": false }));
    let m = s.message(1).await;
    assert_eq!(serde_json::from_slice::<Value>(&m.payload).unwrap(), json!({ "id": 7 }));
    assert_eq!(m.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("exec-1:pub"), "the idempotency key");
    assert_eq!(m.headers.get("X-Tenant").map(|v| v.as_str()), Some("acme"));
    assert_eq!(m.headers.get("X-Count").map(|v| v.as_str()), Some("2"));
    assert_eq!(m.headers.get("Content-Type").map(|v| v.as_str()), Some("application/json"));

    // The same step of the same execution again (a retry, a resume): JetStream drops it.
    let again = publish(&h, "pub", config.clone(), input.clone()).await.unwrap();
    assert_eq!(again, json!({ "subject": subject, "stream": s.name, "sequence": 1, "duplicate": true }));
    // Another step is another message; a text body is sent as text.
    let other = publish(&h, "pub2", json!({ "subject": subject, "body": "plain {{ .id }}" }), input).await.unwrap();
    assert_eq!((other["sequence"].clone(), other["duplicate"].clone()), (json!(2), json!(false)));
    let m = s.message(2).await;
    assert_eq!(&m.payload[..], b"plain 7");
    assert_eq!(m.headers.get("Content-Type").map(|v| v.as_str()), Some("text/plain"));
    s.delete().await;
}

#[tokio::test]
async fn a_subject_no_stream_captures_fails_clearly() {
    let Some(url) = server() else { return };
    let subject = format!("{}.nowhere", unique("fg-none").to_lowercase());
    let err = publish(&harness(&url), "pub", json!({ "subject": subject }), json!({})).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("nats_no_stream", false), "{err:?}");
    assert!(err.message.contains(&subject) && err.message.contains("stream"), "{err:?}");
}

#[tokio::test]
async fn refusals_and_unreachable_servers_are_classified_without_the_credentials() {
    let Some(url) = server() else { return };
    let strict = OutboundPolicy { deny_private: true, allow: Vec::new() };
    let err =
        publish(&harness(&url).outbound(strict), "pub", json!({ "subject": "a.b" }), json!({})).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("nats_refused", false), "{err:?}");
    let s = Stream::create(&url).await;
    let allowed = OutboundPolicy { deny_private: true, allow: vec!["127.0.0.0/8".into()] };
    let subject = format!("{}.allowed", s.prefix);
    publish(&harness(&url).outbound(allowed), "pub", json!({ "subject": subject }), json!({})).await.unwrap();
    s.delete().await;

    let down = format!("nats://fg:pw-s3cret@127.0.0.1:1#{}", unique("down"));
    let err = publish(&harness(&down), "pub", json!({ "subject": "a.b" }), json!({})).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("nats_unavailable", true), "{err:?}");
    assert!(!format!("{err:?}").contains("pw-s3cret"), "{err:?}");
}

#[tokio::test]
async fn a_connection_test_makes_a_round_trip_and_says_why_it_cannot() {
    let Some(url) = server() else { return };
    let nats = |url: &str| Credentials { extras: json!({ "broker": "nats", "url": url }), ..Default::default() };
    let down = "nats://fg:pw-s3cret@127.0.0.1:1";
    testing::check_probe(
        "nats",
        &url,
        down,
        nats,
        |c, p| async move { super::probe(&c, &p, Duration::from_secs(5)).await },
    )
    .await;
}

#[test]
fn problems_are_located() {
    let compile = |config: Value| {
        let c = compile_in(json!([{ "id": "pub", "nats": config }]), &[("js", "nats"), ("mq", "amqp")], &["js"]);
        c.diags.into_iter().map(|d| (d.path, d.message)).collect::<Vec<_>>()
    };
    let p = compile(json!({ "subject": "orders.*" }));
    assert!(has_problem(&p, "steps[0].nats.subject", "without wildcards"), "{p:?}");
    let p = compile(json!({ "subject": "orders..x" }));
    assert!(has_problem(&p, "steps[0].nats.subject", "none empty"), "{p:?}");
    let p = compile(json!({ "subject": "a", "headers": { "Bad Name": "x" } }));
    assert!(has_problem(&p, "steps[0].nats.headers[\"Bad Name\"]", "invalid header name"), "{p:?}");
    let p = compile(json!({ "subject": "a", "connection": "mq" }));
    assert!(has_problem(&p, "steps[0].nats.connection", "this step needs a `nats` one"), "{p:?}");
    let p = compile(json!({ "body": 1 }));
    assert!(has_problem(&p, "steps[0].nats", "missing field `subject`"), "{p:?}");
    let p = compile(json!({ "subject": "a", "stream": "S" }));
    assert!(has_problem(&p, "steps[0].nats.stream", "unknown key"), "{p:?}");
    assert!(compile(json!({ "subject": "orders.{{ .region }}" })).is_empty());
}

#[tokio::test]
async fn a_templated_subject_is_checked_once_evaluated() {
    let h = harness("nats://127.0.0.1:1");
    let err = publish(&h, "pub", json!({ "subject": "o.{{ .r }}" }), json!({ "r": "*" })).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("nats_message", false), "{err:?}");
}
