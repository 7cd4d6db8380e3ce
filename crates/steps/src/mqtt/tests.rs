//! The `mqtt` step: its compile-time checks, and publishes against the real Mosquitto
//! (`FLOWGATE_TEST_MQTT_URL`) received by a rumqttc subscriber: QoS 1 and 0, retained
//! messages, the outbound policy and unreachable brokers. A test without its broker says it
//! is skipped, and fails instead when `FLOWGATE_REQUIRE_SERVICES=1`. Each test uses topics of
//! its own (and clears what it retained).

use crate::StepError;
use crate::broker::testing::{self, service, unique};
use crate::connection::Credentials;
use crate::outbound::OutboundPolicy;
use crate::test_support::{Harness, Ran, compile_in, has_problem};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::time::Duration;

/// The broker's URL; `client_id` names a connection of the test's own (a connection's
/// tasks run on the runtime that made it).
fn broker() -> Option<String> {
    service("FLOWGATE_TEST_MQTT_URL")
}

fn harness(url: &str, client_id: Option<&str>) -> Harness {
    let mut extras = json!({ "broker": "mqtt", "url": url });
    if let Some(id) = client_id {
        extras["clientId"] = json!(id);
    }
    testing::harness("iot", extras)
}

/// Runs an `mqtt` step (`config`, on connection `iot`) on `input`.
async fn publish(harness: &Harness, config: Value, input: Value) -> Result<Value, StepError> {
    let compiled = compile_in(json!([{ "id": "pub", "mqtt": config }]), &[("iot", "mqtt")], &["iot"]);
    assert!(compiled.diags.is_empty(), "{:#?}", compiled.diags);
    match harness.run(&compiled.steps[0], input).await.result? {
        Ran::Output(v) => Ok(v),
        other => panic!("an mqtt step outputs a value, got {other:?}"),
    }
}

/// A subscriber to `topic` at QoS 1, its SUBACK received.
async fn subscribe(url: &str, topic: &str) -> (AsyncClient, EventLoop) {
    let u = url::Url::parse(url).unwrap();
    let options = MqttOptions::new(unique("fg-sub"), u.host_str().unwrap(), u.port().unwrap_or(1883));
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    next(&mut events, |p| matches!(p, Packet::SubAck(_))).await;
    (client, events)
}

/// The next incoming packet that `wanted` picks, within 5s.
async fn next(events: &mut EventLoop, wanted: impl Fn(&Packet) -> bool) -> Packet {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(p) = events.poll().await.expect("subscriber connection")
                && wanted(&p)
            {
                return p;
            }
        }
    })
    .await
    .expect("the packet arrives in time")
}

fn a_publish(p: &Packet) -> bool {
    matches!(p, Packet::Publish(_))
}

#[tokio::test]
async fn publishes_at_qos_1_and_0_to_a_subscriber() {
    let Some(url) = broker() else { return };
    let base = unique("fg/test");
    let (_sub, mut events) = subscribe(&url, &format!("{base}/#")).await;
    let h = harness(&url, Some(&unique("fg-pub")));
    let out = publish(
        &h,
        json!({ "topic": format!("{base}/{{{{ .plant }}}}/setpoint"), "body": { "celsius": "{{ .c }}" } }),
        json!({ "plant": "p7", "c": 21.5 }),
    )
    .await
    .unwrap();
    let topic = format!("{base}/p7/setpoint");
    assert_eq!(out, json!({ "topic": topic, "qos": 1, "retain": false }));
    let Packet::Publish(p) = next(&mut events, a_publish).await else { unreachable!() };
    assert_eq!((p.topic.as_str(), p.qos), (topic.as_str(), QoS::AtLeastOnce));
    assert_eq!(serde_json::from_slice::<Value>(&p.payload).unwrap(), json!({ "celsius": 21.5 }));

    // QoS 0 and a text body; several at once on the one connection, each told its outcome.
    let runs = (0..5).map(|i| {
        publish(&h, json!({ "topic": format!("{base}/n"), "qos": 0, "body": "m{{ .i }}" }), json!({ "i": i }))
    });
    for out in futures::future::join_all(runs).await {
        assert_eq!(out.unwrap()["qos"], 0);
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        let Packet::Publish(p) = next(&mut events, a_publish).await else { unreachable!() };
        got.push(String::from_utf8(p.payload.to_vec()).unwrap());
    }
    got.sort();
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
}

#[tokio::test]
async fn a_retained_message_reaches_a_later_subscriber() {
    let Some(url) = broker() else { return };
    let topic = unique("fg/retained");
    let h = harness(&url, Some(&unique("fg-pub")));
    let out = publish(&h, json!({ "topic": topic, "retain": true, "body": "last" }), Value::Null).await.unwrap();
    assert_eq!(out["retain"], true);
    let (_sub, mut events) = subscribe(&url, &topic).await;
    let Packet::Publish(p) = next(&mut events, a_publish).await else { unreachable!() };
    assert!(p.retain, "{p:?}");
    assert_eq!(&p.payload[..], b"last");
    // An empty retained message clears it.
    publish(&h, json!({ "topic": topic, "retain": true, "body": "" }), Value::Null).await.unwrap();
}

#[tokio::test]
async fn refusals_and_unreachable_brokers_are_classified_without_the_password() {
    let Some(url) = broker() else { return };
    let strict = OutboundPolicy { deny_private: true, allow: Vec::new() };
    let err = publish(&harness(&url, None).outbound(strict), json!({ "topic": "a" }), json!({})).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("mqtt_refused", false), "{err:?}");
    let allowed = OutboundPolicy { deny_private: true, allow: vec!["127.0.0.1".into()] };
    let topic = unique("fg/allowed");
    publish(&harness(&url, Some(&unique("fg-pub"))).outbound(allowed), json!({ "topic": topic }), json!({}))
        .await
        .unwrap();

    let err = publish(&harness("mqtt://fg:pw-s3cret@127.0.0.1:1", None), json!({ "topic": "a" }), json!({}))
        .await
        .unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("mqtt_unavailable", true), "{err:?}");
    assert!(!format!("{err:?}").contains("pw-s3cret"), "{err:?}");
}

#[tokio::test]
async fn a_connection_test_waits_for_the_connack_and_says_why_it_cannot() {
    let Some(url) = broker() else { return };
    // The probe connects under a random client id, never this one (a session in use).
    let mqtt = |url: &str| Credentials {
        extras: json!({ "broker": "mqtt", "url": url, "clientId": "fg-in-use" }),
        ..Default::default()
    };
    let down = "mqtt://fg:pw-s3cret@127.0.0.1:1";
    testing::check_probe(
        "mqtt",
        &url,
        down,
        mqtt,
        |c, p| async move { super::probe(&c, &p, Duration::from_secs(5)).await },
    )
    .await;
}

#[test]
fn problems_are_located() {
    let compile = |config: Value| {
        let c = compile_in(json!([{ "id": "pub", "mqtt": config }]), &[("iot", "mqtt"), ("js", "nats")], &["iot"]);
        c.diags.into_iter().map(|d| (d.path, d.message)).collect::<Vec<_>>()
    };
    let p = compile(json!({ "topic": "a/+/b", "qos": 2 }));
    assert!(has_problem(&p, "steps[0].mqtt.topic", "without wildcards"), "{p:?}");
    assert!(has_problem(&p, "steps[0].mqtt.qos", "QoS 2 is not supported"), "{p:?}");
    let p = compile(json!({ "topic": "" }));
    assert!(has_problem(&p, "steps[0].mqtt.topic", "empty"), "{p:?}");
    let p = compile(json!({ "topic": "a", "connection": "js" }));
    assert!(has_problem(&p, "steps[0].mqtt.connection", "this step needs a `mqtt` one"), "{p:?}");
    let p = compile(json!({ "topic": "a", "qos": "one" }));
    assert!(has_problem(&p, "steps[0].mqtt.qos", ""), "{p:?}");
    let p = compile(json!({ "topic": "a", "retained": true }));
    assert!(has_problem(&p, "steps[0].mqtt.retained", "unknown key"), "{p:?}");
    assert!(compile(json!({ "topic": "plants/{{ .id }}/x", "qos": 0 })).is_empty());
}

#[tokio::test]
async fn a_templated_topic_is_checked_once_evaluated() {
    let h = harness("mqtt://127.0.0.1:1", None);
    let err = publish(&h, json!({ "topic": "a/{{ .t }}" }), json!({ "t": "#" })).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("mqtt_message", false), "{err:?}");
}
