//! Broker publish steps end to end (`amqp`, `nats`, `mqtt`): an integration with a broker
//! connection (its URL a literal, sealed at rest) and a flow that publishes, run through the
//! API, the message then read with the broker's own client — body, headers, message id —
//! and the failures a flow sees: a missing exchange (publisher confirms), a subject no stream
//! captures. JetStream drops a re-send under the engine's idempotency key, and an MQTT
//! subscriber gets a QoS 1 message. The brokers are the real ones of `.ci/run`
//! (`FLOWGATE_TEST_AMQP_URL`, `FLOWGATE_TEST_NATS_URL`, `FLOWGATE_TEST_MQTT_URL`); a test
//! without its broker says it is skipped, and fails instead when
//! `FLOWGATE_REQUIRE_SERVICES=1`. Names (queues, streams, topics) are unique per run and
//! cleaned up.

#[macro_use]
mod common;

use common::TestServer;
use serde_json::{Value, json};
use std::time::Duration;

/// The URL in `var`, or None when the test is to be skipped (a failure when services are
/// required).
fn service(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(url) => Some(url),
        None => {
            common::skip_or_fail(&format!("{var} is unset"));
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// `url` with a fragment of its own (ignored when connecting): each test's server runs on
/// its own runtime, and a broker connection's I/O runs on the runtime that opened it, so two
/// tests at once must not share one.
fn own(url: &str) -> String {
    format!("{url}#{}", unique("t"))
}

/// The execution's record, as text: where the URL must not appear.
async fn record(s: &TestServer, run: &Value) -> String {
    s.execution(run["executionId"].as_str().unwrap()).await.to_string()
}

backends!(amqp_publishes_with_a_confirm_and_a_missing_exchange_fails);
async fn amqp_publishes_with_a_confirm_and_a_missing_exchange_fails() {
    let Some(url) = service("FLOWGATE_TEST_AMQP_URL") else { return };
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await.expect("RabbitMQ");
    let channel = conn.create_channel().await.unwrap();
    let queue = unique("fg-e2e");
    let options = lapin::options::QueueDeclareOptions { auto_delete: true, ..Default::default() };
    channel.queue_declare(queue.as_str().into(), options, lapin::types::FieldTable::default()).await.unwrap();
    let missing = unique("fg-missing");
    let broker_url = own(&url);

    let s = TestServer::start().await;
    s.apply(&format!(
        r#"
integration: orders-out
connections:
  mq: {{ amqp: {{ url: "{broker_url}" }} }}
flows:
  - flow: publish
    connection: mq
    trigger: {{ manual: {{}} }}
    steps:
      - id: publish
        amqp:
          routingKey: {queue}
          body: {{ order: "{{{{ $trigger.body.id }}}}", lines: "{{{{ $trigger.body.lines }}}}" }}
          headers: {{ x-source: flowgate, x-order: "{{{{ $trigger.body.id }}}}" }}
  - flow: nowhere
    connection: mq
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: publish, amqp: {{ exchange: {missing}, routingKey: x }} }}
"#
    ))
    .await;
    let run = s.run_flow("orders-out", "publish", json!({ "id": 42, "lines": [1, 2] })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["executionId"].as_str().unwrap();
    let message_id = format!("{id}:publish");
    assert_eq!(
        run["output"],
        json!({ "exchange": "", "routingKey": queue, "messageId": message_id, "confirmed": true }),
        "{run}"
    );
    assert!(!record(&s, &run).await.contains(&url), "the connection's URL is never recorded");

    let got = async {
        loop {
            let options = lapin::options::BasicGetOptions { no_ack: true };
            if let Some(m) = channel.basic_get(queue.as_str().into(), options).await.unwrap() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let m = tokio::time::timeout(Duration::from_secs(5), got).await.expect("the message is in the queue");
    assert_eq!(serde_json::from_slice::<Value>(&m.delivery.data).unwrap(), json!({ "order": 42, "lines": [1, 2] }));
    let props = &m.delivery.properties;
    assert_eq!(props.message_id().as_ref().map(|i| i.as_str()), Some(message_id.as_str()));
    assert_eq!(props.content_type().as_ref().map(|t| t.as_str()), Some("application/json"));
    assert_eq!(*props.delivery_mode(), Some(2));
    let headers = props.headers().as_ref().unwrap().inner();
    let header = |n: &str| headers.get(&lapin::types::ShortString::from(n)).cloned();
    assert_eq!(header("x-source"), Some(lapin::types::AMQPValue::LongString("flowgate".into())));
    assert_eq!(header("x-order"), Some(lapin::types::AMQPValue::LongLongInt(42)));

    // Publisher confirms: the broker refuses a publish to an exchange that does not exist,
    // and the execution fails at once (not retried) saying so.
    let run = s.run_flow("orders-out", "nowhere", json!({})).await;
    assert_eq!(run["status"], "failed", "{run}");
    let ex = s.execution(run["executionId"].as_str().unwrap()).await;
    let step = ex["steps"].as_array().unwrap().iter().find(|st| st["stepId"] == "publish").unwrap().clone();
    assert_eq!(step["error"]["code"], "amqp_not_found", "{step}");
    assert!(step["error"]["message"].as_str().unwrap().contains(&missing), "{step}");
    assert_eq!(ex["steps"].as_array().unwrap().len(), 1, "not retried: {ex}");

    let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
    let _ = conn.close(200, "done".into()).await;
}

backends!(nats_publishes_to_jetstream_and_the_engine_key_dedupes);
async fn nats_publishes_to_jetstream_and_the_engine_key_dedupes() {
    let Some(url) = service("FLOWGATE_TEST_NATS_URL") else { return };
    let client = async_nats::connect(url.as_str()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let stream = unique("FG_E2E").replace('-', "_");
    let prefix = stream.to_lowercase().replace('_', "-");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    })
    .await
    .expect("create the stream");
    let broker_url = own(&url);

    let s = TestServer::start().await;
    s.apply(&format!(
        r#"
integration: events-out
connections:
  js: {{ nats: {{ url: "{broker_url}" }} }}
flows:
  - flow: publish
    connection: js
    trigger: {{ manual: {{}} }}
    steps:
      - id: publish
        nats:
          subject: "{prefix}.orders.{{{{ $trigger.body.region }}}}"
          body: {{ order: "{{{{ $trigger.body.id }}}}" }}
          headers: {{ X-Order: "{{{{ $trigger.body.id }}}}" }}
  - flow: unbound
    connection: js
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: publish, nats: {{ subject: "{prefix}-nothing.here" }} }}
"#
    ))
    .await;
    let run = s.run_flow("events-out", "publish", json!({ "id": 7, "region": "eu" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let subject = format!("{prefix}.orders.eu");
    assert_eq!(run["output"], json!({ "subject": subject, "stream": stream, "sequence": 1, "duplicate": false }));
    assert!(!record(&s, &run).await.contains(&broker_url), "the connection's URL is never recorded");
    let message_id = format!("{}:publish", run["executionId"].as_str().unwrap());

    let stored = js.get_stream(&stream).await.unwrap().get_raw_message(1).await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&stored.payload).unwrap(), json!({ "order": 7 }));
    assert_eq!(stored.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some(message_id.as_str()));
    assert_eq!(stored.headers.get("X-Order").map(|v| v.as_str()), Some("7"));

    // A re-send under the engine's key (as a retried or resumed attempt sends it) is dropped.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", message_id.as_str());
    let ack = js.publish_with_headers(subject, headers, "again".into()).await.unwrap().await.unwrap();
    assert!(ack.duplicate, "{ack:?}");
    assert_eq!(ack.sequence, 1);

    let run = s.run_flow("events-out", "unbound", json!({})).await;
    assert_eq!(run["status"], "failed", "{run}");
    let ex = s.execution(run["executionId"].as_str().unwrap()).await;
    let step = ex["steps"].as_array().unwrap().iter().find(|st| st["stepId"] == "publish").unwrap().clone();
    assert_eq!(step["error"]["code"], "nats_no_stream", "{step}");

    let _ = js.delete_stream(&stream).await;
}

backends!(mqtt_publishes_at_qos_1_to_a_subscriber);
async fn mqtt_publishes_at_qos_1_to_a_subscriber() {
    let Some(url) = service("FLOWGATE_TEST_MQTT_URL") else { return };
    let topic = unique("fg/e2e");
    let parsed = reqwest::Url::parse(&url).unwrap();
    let options =
        rumqttc::MqttOptions::new(unique("fg-sub"), parsed.host_str().unwrap(), parsed.port().unwrap_or(1883));
    let (sub, mut events) = rumqttc::AsyncClient::new(options, 10);
    sub.subscribe(format!("{topic}/#"), rumqttc::QoS::AtLeastOnce).await.unwrap();
    // The SUBACK first, so the publish cannot come before the subscription.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = events.poll().await.expect("subscriber") {
                break;
            }
        }
    })
    .await
    .expect("subscribed");
    let broker_url = own(&url);

    let s = TestServer::start().await;
    s.apply(&format!(
        r#"
integration: plant-out
connections:
  iot: {{ mqtt: {{ url: "{broker_url}" }} }}
flows:
  - flow: setpoint
    connection: iot
    trigger: {{ manual: {{}} }}
    steps:
      - id: publish
        mqtt: {{ topic: "{topic}/{{{{ $trigger.body.plant }}}}", body: {{ celsius: "{{{{ $trigger.body.c }}}}" }} }}
"#
    ))
    .await;
    let run = s.run_flow("plant-out", "setpoint", json!({ "plant": "p7", "c": 21.5 })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], json!({ "topic": format!("{topic}/p7"), "qos": 1, "retain": false }));
    let p = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = events.poll().await.expect("subscriber") {
                return p;
            }
        }
    })
    .await
    .expect("the subscriber gets the message");
    assert_eq!(p.topic, format!("{topic}/p7"));
    assert_eq!(p.qos, rumqttc::QoS::AtLeastOnce);
    assert_eq!(serde_json::from_slice::<Value>(&p.payload).unwrap(), json!({ "celsius": 21.5 }));
    let _ = sub.disconnect().await;
}

/// The executions of `flow` (newest first), waiting until there are `n`.
async fn executions_of(s: &TestServer, flow: &str, n: usize) -> Vec<Value> {
    common::eventually(&format!("{n} execution(s) of {flow}"), || async {
        let v = s.get_json(&format!("/v1/executions?flow={flow}&limit=100")).await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= n && items.iter().all(|i| i["status"] == "succeeded")).then_some(items)
    })
    .await
}

/// The outputs of executions, sorted by their text (the order of consumption is not asserted
/// where several commit at once).
async fn outputs(s: &TestServer, items: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for i in items {
        out.push(s.execution(i["id"].as_str().unwrap()).await["output"].clone());
    }
    out.sort_by_key(|v| v.to_string());
    out
}

backends!(an_amqp_trigger_commits_each_message_then_acks_and_a_repeat_runs_once);
async fn an_amqp_trigger_commits_each_message_then_acks_and_a_repeat_runs_once() {
    let Some(url) = service("FLOWGATE_TEST_AMQP_URL") else { return };
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await.expect("RabbitMQ");
    let channel = conn.create_channel().await.unwrap();
    let queue = unique("fg-in");
    let s = TestServer::start_with(|st| st.trigger_tick = Duration::from_millis(50)).await;
    let broker_url = own(&url);
    s.apply(&format!(
        r#"
integration: orders-in
connections:
  mq: {{ amqp: {{ url: "{broker_url}" }} }}
flows:
  - flow: take
    trigger: {{ amqp: {{ connection: mq, queue: {queue}, prefetch: 8, declare: true }} }}
    steps:
      - {{ id: seen, transform: '{{ n: .body.n, id: $trigger.properties.messageId, h: $trigger.headers["x-n"], rk: $trigger.routingKey, enc: $trigger.encoding }}' }}
"#
    ))
    .await;
    // A passive declare of a missing queue closes its channel: a channel of its own each time.
    let declared = || async {
        let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let probe = conn.create_channel().await.ok()?;
        let q = probe.queue_declare(queue.as_str().into(), options, lapin::types::FieldTable::default()).await.ok();
        let _ = probe.close(200, "probe".into()).await;
        q
    };
    common::eventually("the trigger to declare its queue", || async { declared().await.map(|_| ()) }).await;
    let publish = |n: i64, id: &str| {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("x-n".into(), lapin::types::AMQPValue::LongLongInt(n));
        let props = lapin::BasicProperties::default()
            .with_message_id(id.into())
            .with_headers(lapin::types::FieldTable::from(headers));
        let body = serde_json::to_vec(&json!({ "n": n })).unwrap();
        let channel = channel.clone();
        let queue = queue.clone();
        async move {
            channel
                .basic_publish("".into(), queue.as_str().into(), Default::default(), &body, props)
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    for n in 1..=3 {
        publish(n, &format!("m-{n}")).await;
    }
    // The same message id again (a publisher's retry): it starts nothing new.
    publish(1, "m-1").await;
    let items = executions_of(&s, "take", 3).await;
    assert_eq!(items.len(), 3, "{items:#?}");
    let want: Vec<Value> =
        (1..=3).map(|n| json!({ "n": n, "id": format!("m-{n}"), "h": n, "rk": queue, "enc": "json" })).collect();
    assert_eq!(outputs(&s, &items).await, want);
    // Every message was acknowledged: nothing is left in the queue or unacknowledged.
    common::eventually("the queue to be empty", || async { declared().await.filter(|q| q.message_count() == 0) }).await;
    // Every message was taken, the repeat included: still one execution per message id.
    let v = s.get_json("/v1/executions?flow=take&limit=100").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 3, "{v:#}");
    s.stop().await;
    let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
}

backends!(a_nats_trigger_consumes_a_durable_consumer_and_acks_after_the_commit);
async fn a_nats_trigger_consumes_a_durable_consumer_and_acks_after_the_commit() {
    let Some(url) = service("FLOWGATE_TEST_NATS_URL") else { return };
    let client = async_nats::connect(url.as_str()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let stream = unique("FG_IN").replace('-', "_");
    let prefix = stream.to_lowercase().replace('_', "-");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    })
    .await
    .expect("create the stream");
    for n in 1..=3 {
        js.publish(format!("{prefix}.orders"), serde_json::to_vec(&json!({ "n": n })).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Not on the consumer's subject: never delivered to it.
    js.publish(format!("{prefix}.other"), "x".into()).await.unwrap().await.unwrap();
    let s = TestServer::start_with(|st| st.trigger_tick = Duration::from_millis(50)).await;
    let broker_url = own(&url);
    s.apply(&format!(
        r#"
integration: events-in
connections:
  bus: {{ nats: {{ url: "{broker_url}" }} }}
flows:
  - flow: take
    trigger: {{ nats: {{ connection: bus, stream: {stream}, consumer: fg-take, subject: "{prefix}.orders" }} }}
    steps:
      - {{ id: seen, transform: '{{ n: .body.n, seq: $trigger.sequence, subject: $trigger.subject }}' }}
"#
    ))
    .await;
    let items = executions_of(&s, "take", 3).await;
    let want: Vec<Value> =
        (1..=3).map(|n| json!({ "n": n, "seq": n, "subject": format!("{prefix}.orders") })).collect();
    assert_eq!(outputs(&s, &items).await, want);
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        js.get_stream(&stream).await.unwrap().get_consumer("fg-take").await.unwrap();
    common::eventually("every message acknowledged", || async {
        let mut c = consumer.clone();
        let info = c.info().await.ok()?;
        (info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
    })
    .await;
    s.stop().await;
    let _ = js.delete_stream(&stream).await;
}

backends!(an_mqtt_trigger_subscribes_with_a_persistent_session);
async fn an_mqtt_trigger_subscribes_with_a_persistent_session() {
    let Some(url) = service("FLOWGATE_TEST_MQTT_URL") else { return };
    let topic = unique("fg/in");
    let s = TestServer::start_with(|st| st.trigger_tick = Duration::from_millis(50)).await;
    let broker_url = own(&url);
    let client_id = unique("fg-trigger");
    s.apply(&format!(
        r#"
integration: plant-in
connections:
  plant: {{ mqtt: {{ url: "{broker_url}", clientId: {client_id} }} }}
flows:
  - flow: take
    trigger: {{ mqtt: {{ connection: plant, topic: "{topic}/+/temp", dedupKey: '$trigger.topic + "=" + ($trigger.body.c | tostring)' }} }}
    steps:
      - {{ id: seen, transform: '{{ c: .body.c, topic: $trigger.topic, qos: $trigger.qos }}' }}
"#
    ))
    .await;
    let parsed = reqwest::Url::parse(&url).unwrap();
    let options =
        rumqttc::MqttOptions::new(unique("fg-pub"), parsed.host_str().unwrap(), parsed.port().unwrap_or(1883));
    let (publisher, mut events) = rumqttc::AsyncClient::new(options, 10);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    // Until the trigger's subscription is in place, a QoS 1 message to nobody is lost: keep
    // publishing the first until it arrives.
    common::eventually("the trigger to subscribe", || async {
        publisher
            .publish(format!("{topic}/p1/temp"), rumqttc::QoS::AtLeastOnce, false, b"{\"c\": 20}".to_vec())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let v = s.get_json("/v1/executions?flow=take&limit=1").await;
        (!v["items"].as_array().unwrap().is_empty()).then_some(())
    })
    .await;
    // Twice: the trigger's `dedupKey` makes the repeat start nothing. Then a last reading,
    // taken after them (one session, in order): when it is there, the repeat was handled.
    for _ in 0..2 {
        publisher
            .publish(format!("{topic}/p2/temp"), rumqttc::QoS::AtLeastOnce, false, b"{\"c\": 21.5}".to_vec())
            .await
            .unwrap();
    }
    publisher.publish(format!("{topic}/p2/pressure"), rumqttc::QoS::AtLeastOnce, false, b"1".to_vec()).await.unwrap();
    publisher
        .publish(format!("{topic}/p3/temp"), rumqttc::QoS::AtLeastOnce, false, b"{\"c\": 22}".to_vec())
        .await
        .unwrap();
    let items = common::eventually("the last reading", || async {
        let v = s.get_json("/v1/executions?flow=take&limit=100").await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let mut found = None;
        for i in &items {
            if s.execution(i["id"].as_str().unwrap()).await["output"]["c"] == 22 {
                found = Some(items.clone());
            }
        }
        found
    })
    .await;
    let outs = outputs(&s, &items).await;
    assert!(outs.contains(&json!({ "c": 21.5, "topic": format!("{topic}/p2/temp"), "qos": 1 })), "{outs:#?}");
    assert!(!outs.iter().any(|o| o["topic"].as_str().is_some_and(|t| t.ends_with("pressure"))), "{outs:#?}");
    // The first reading was published until the subscription took it, the second twice: one
    // execution each.
    assert_eq!(outs.len(), 3, "{outs:#?}");
    let _ = publisher.disconnect().await;
    s.stop().await;
}
