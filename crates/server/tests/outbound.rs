//! Outbound webhooks (issue 7): the `webhook` step with each authentication type, checked by
//! a local receiver (the Standard Webhooks signature verified by code written here, apart
//! from the signing code); durable delivery retried on a (compressed) schedule with the same
//! `webhook-id`, `Retry-After` and `410 Gone`; a waiting flow parked without a worker; every
//! attempt recorded; resend through the API; step hooks; and the private-address guard.

#[macro_use]
mod common;

use base64::Engine as _;
use common::{MockResponse, MockUpstream, TestServer, eventually, send};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::{Duration, Instant};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn start() -> TestServer {
    TestServer::start_with(|s| s.trigger_tick = Duration::from_millis(20)).await
}

/// Verifies a Standard Webhooks signature as a receiver would (independent of the sender).
fn standard_webhooks_valid(id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(WHSEC.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

fn doc(base: &str) -> String {
    r#"
integration: partners
config:
  base: { type: string, default: "BASE" }
  clientSecret: { type: secret, default: "cs-0123456789" }
flows:
  - flow: tell
    trigger: { webhook: { path: partners/tell } }
    steps:
      - id: shape
        transform: '{ id: $trigger.body.id, name: $trigger.body.name }'
      - id: none
        webhook: { name: Plain, endpoint: "{{ $config.base }}/none" }
      - id: client
        webhook:
          name: With client secret
          endpoint: "{{ $config.base }}/client"
          body: "{{ $steps.shape }}"
          auth: { clientSecret: { secret: "{{ $config.clientSecret }}", field: clientSecret } }
      - id: basic
        webhook:
          name: Basic
          endpoint: "{{ $config.base }}/basic"
          body: { customer: "{{ $steps.shape }}" }
          auth: { basic: { username: partner, password: "p@ss:word" } }
      - id: signed
        webhook:
          name: Signed
          endpoint: "{{ $config.base }}/signed"
          headers: { X-Tenant: "{{ $flow.tenant }}" }
          body: "{{ $steps.shape }}"
          auth: { standardWebhooks: { secret: WHSEC } }
  - flow: retried
    trigger: { webhook: { path: partners/retried } }
    steps:
      - id: push
        webhook: { name: Flaky, endpoint: "{{ $config.base }}/flaky", schedule: [0s, 100ms, 200ms, 300ms], wait: true }
      - id: after
        transform: '{ delivered: $steps.push.status, attempts: $steps.push.attempts }'
  - flow: parked
    trigger: { webhook: { path: partners/parked } }
    steps:
      - id: push
        webhook: { name: Slow partner, endpoint: "{{ $config.base }}/slow", schedule: [0s, 2500ms], wait: true }
  - flow: gone
    trigger: { webhook: { path: partners/gone } }
    steps:
      - id: push
        webhook: { name: Gone, endpoint: "{{ $config.base }}/gone", schedule: [0s, 50ms, 50ms, 50ms], wait: true }
  - flow: hooked
    trigger: { webhook: { path: partners/hooked } }
    steps:
      - id: total
        transform: '{ total: ($trigger.body.qty * 2) }'
        hooks:
          onStart: { name: Started, endpoint: "{{ $config.base }}/hooks" }
          onComplete: { name: Completed, endpoint: "{{ $config.base }}/hooks", auth: { standardWebhooks: { secret: WHSEC } } }
"#
    .replace("BASE", base)
    .replace("WHSEC", WHSEC)
}

async fn hook(s: &TestServer, path: &str, body: Value) -> String {
    let (status, _, v) = send(s.post_hook(path).json(&body)).await;
    assert_eq!(status, 202, "{v}");
    v["executionId"].as_str().unwrap().to_owned()
}

backends!(each_auth_type_reaches_the_receiver);
/// One execution sends four webhooks: no auth, a client secret (header and field), basic
/// credentials and a Standard Webhooks signature that the receiver verifies. Each carries a
/// `webhook-id`; the step outputs say they were queued; the execution shows each delivery.
async fn each_auth_type_reaches_the_receiver() {
    let s = start().await;
    let up = MockUpstream::start().await;
    for p in ["/none", "/client", "/basic", "/signed"] {
        up.on(p, MockResponse::json(200, json!({ "ok": true })));
    }
    s.apply(&doc(&up.url)).await;
    let id = hook(&s, "partners/tell", json!({ "id": 7, "name": "Ann" })).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["steps"][1]["output"]["status"], "queued", "{ex:#}");
    for p in ["/none", "/client", "/basic", "/signed"] {
        up.wait_hits(p, 1).await;
    }
    let none = &up.requests("/none")[0];
    assert_eq!(none.json(), json!({ "id": 7, "name": "Ann" }), "the step's data by default");
    assert!(none.header("authorization").is_none() && none.header("x-client-secret").is_none());
    assert!(none.header("webhook-id").is_some_and(|h| h.starts_with("msg_")));
    let client = &up.requests("/client")[0];
    assert_eq!(client.header("x-client-secret"), Some("cs-0123456789"));
    assert_eq!(client.json(), json!({ "id": 7, "name": "Ann", "clientSecret": "cs-0123456789" }));
    let basic = &up.requests("/basic")[0];
    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("partner:p@ss:word"));
    assert_eq!(basic.header("authorization"), Some(want.as_str()));
    assert_eq!(basic.json(), json!({ "customer": { "id": 7, "name": "Ann" } }));
    let signed = &up.requests("/signed")[0];
    let (wid, ts, sig) = (
        signed.header("webhook-id").unwrap(),
        signed.header("webhook-timestamp").unwrap(),
        signed.header("webhook-signature").unwrap(),
    );
    assert!(standard_webhooks_valid(wid, ts, &signed.body, sig), "signature {sig} does not verify");
    assert!(!standard_webhooks_valid(wid, ts, b"{\"id\":8}", sig), "a tampered body does not verify");
    let age = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
        - ts.parse::<i64>().unwrap();
    assert!(age.abs() < 60, "timestamp is now: {ts}");
    assert_eq!(signed.header("x-tenant"), Some("default"));
    // Visible on the execution, without credentials.
    let ex = eventually("the deliveries to be delivered", || async {
        let ex = s.execution(&id).await;
        ex["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 4 && d.iter().all(|x| x["status"] == "delivered"))
            .then_some(ex)
    })
    .await;
    let text = ex.to_string();
    assert!(!text.contains("cs-0123456789") && !text.contains("p@ss:word") && !text.contains(WHSEC), "{text}");
    let d = &ex["deliveries"][3];
    assert_eq!((d["name"].clone(), d["attempts"].clone()), (json!("Signed"), json!(1)));
    assert_eq!(d["history"][0]["status"], 200);
    assert!(d["history"][0]["latencyMs"].as_i64().is_some());
}

backends!(deliveries_are_retried_on_their_schedule_and_can_be_resent);
/// A receiver that fails twice (500, then 503 with `Retry-After: 1`) then accepts: the
/// delivery is attempted at once, then on its schedule (the `Retry-After` second honoured),
/// always with the same `webhook-id`; the waiting step then goes on with the attempts. A
/// receiver answering `410 Gone` stops the retries. A delivered message can be resent.
async fn deliveries_are_retried_on_their_schedule_and_can_be_resent() {
    let s = start().await;
    let up = MockUpstream::start().await;
    up.queue("/flaky", [MockResponse::text(500, "boom"), MockResponse::status(503).header("retry-after", "1")]);
    up.on("/flaky", MockResponse::json(200, json!({ "thanks": true })));
    up.on("/gone", MockResponse::status(410));
    s.apply(&doc(&up.url)).await;
    let started = Instant::now();
    let id = hook(&s, "partners/retried", json!({})).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["output"], json!({ "delivered": "delivered", "attempts": 3 }), "{ex:#}");
    let reqs = up.requests("/flaky");
    assert_eq!(reqs.len(), 3);
    let ids: Vec<&str> = reqs.iter().map(|r| r.header("webhook-id").unwrap()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one webhook-id across retries: {ids:?}");
    assert!(started.elapsed() >= Duration::from_millis(1000), "Retry-After: 1 was honoured ({:?})", started.elapsed());
    let d = &ex["deliveries"][0];
    let codes: Vec<Value> = d["history"].as_array().unwrap().iter().map(|a| a["status"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(503), json!(200)], "{d:#}");
    assert_eq!(d["history"][0]["excerpt"], "boom");

    // 410 Gone: no more attempts; the waiting step fails.
    let gone = hook(&s, "partners/gone", json!({})).await;
    let ex = s.wait_for(&gone, "failed").await;
    assert_eq!(ex["error"]["code"], "webhook_failed", "{ex:#}");
    assert_eq!(up.hits("/gone"), 1, "410 stops the schedule");

    // Resend: one more attempt, same id.
    let delivery = d["id"].as_str().unwrap();
    let (status, _, v) = send(s.api(Method::POST, &format!("/v1/deliveries/{delivery}/resend"))).await;
    assert_eq!(status, 202, "{v}");
    up.wait_hits("/flaky", 4).await;
    assert_eq!(up.requests("/flaky")[3].header("webhook-id"), Some(ids[0]));
    let v = eventually("the resend to be recorded", || async {
        let v = s.get_json(&format!("/v1/deliveries/{delivery}")).await;
        (v["attempts"] == 4 && v["status"] == "delivered").then_some(v)
    })
    .await;
    assert_eq!(v["history"].as_array().unwrap().len(), 4);
    let (status, _, _) = send(s.api(Method::POST, "/v1/deliveries/nope/resend")).await;
    assert_eq!(status, 404);
}

backends!(a_flow_waiting_on_a_long_retry_holds_no_worker);
/// A `wait: true` webhook whose receiver is down and whose next attempt is seconds away: the
/// execution is `waiting` (not running, no worker) until the delivery succeeds, then goes on.
async fn a_flow_waiting_on_a_long_retry_holds_no_worker() {
    let s = start().await;
    let up = MockUpstream::start().await;
    up.queue("/slow", [MockResponse::status(502)]);
    up.on("/slow", MockResponse::json(202, json!({ "queued": true })));
    s.apply(&doc(&up.url)).await;
    let id = hook(&s, "partners/parked", json!({})).await;
    let waiting = eventually("the execution to wait", || async {
        let ex = s.execution(&id).await;
        (ex["status"] == "waiting").then_some(ex)
    })
    .await;
    assert_eq!(waiting["deliveries"][0]["status"], "pending");
    let metrics = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    let running: f64 = metrics
        .lines()
        .find(|l| l.starts_with("flowgate_queue_depth{status=\"running\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(running, 0.0, "a waiting execution holds no worker");
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["output"]["status"], "delivered");
    assert_eq!(ex["output"]["response"], json!({ "status": 202, "body": { "queued": true } }));
}

backends!(step_hooks_fire_when_a_step_starts_and_completes);
/// `hooks.onStart` sends the step's input when it starts, `hooks.onComplete` its output when
/// it completes (signed here), each once.
async fn step_hooks_fire_when_a_step_starts_and_completes() {
    let s = start().await;
    let up = MockUpstream::start().await;
    up.on("/hooks", MockResponse::status(204));
    s.apply(&doc(&up.url)).await;
    let id = hook(&s, "partners/hooked", json!({ "qty": 4 })).await;
    s.wait_for(&id, "succeeded").await;
    up.wait_hits("/hooks", 2).await;
    let mut got: Vec<Value> = up.requests("/hooks").iter().map(|r| r.json()).collect();
    got.sort_by_key(|v| v["event"].as_str().unwrap_or("").to_owned());
    assert_eq!(got[0]["event"], "step.completed");
    assert_eq!(got[0]["data"], json!({ "total": 8 }));
    assert_eq!(got[1]["event"], "step.started");
    assert_eq!(got[1]["data"]["body"], json!({ "qty": 4 }), "the step's input: the trigger");
    assert_eq!((got[1]["step"].clone(), got[1]["flow"].clone()), (json!("total"), json!("hooked")));
    let signed = up.requests("/hooks").into_iter().find(|r| r.json()["event"] == "step.completed").unwrap();
    assert!(standard_webhooks_valid(
        signed.header("webhook-id").unwrap(),
        signed.header("webhook-timestamp").unwrap(),
        &signed.body,
        signed.header("webhook-signature").unwrap()
    ));
    // The server is done with both: recorded delivered, at the first attempt.
    let ex = eventually("both hooks' deliveries to be delivered", || async {
        let ex = s.execution(&id).await;
        ex["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() >= 2 && d.iter().all(|x| x["status"] == "delivered"))
            .then_some(ex)
    })
    .await;
    let deliveries = ex["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "one delivery per hook: {ex:#}");
    assert!(deliveries.iter().all(|d| d["attempts"] == 1), "{ex:#}");
    // Negative check (nothing to poll for): no hook is sent again in the next 200 ms.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(up.hits("/hooks"), 2, "each hook once");
}

const GUARDED: &str = r#"
integration: guarded
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: out
    trigger: { webhook: { path: guarded/out } }
    steps:
      - id: fetch
        http: { url: "{{ $config.base }}/x" }
        onError: continue
      - id: tell
        webhook: { name: Internal, endpoint: "{{ $config.base }}/y", wait: true, schedule: [0s] }
"#;

backends!(internal_addresses_can_be_refused);
/// With `deny_private`, http steps and webhooks to loopback are refused (and nothing reaches
/// the target); with the address on the allow-list they go through.
async fn internal_addresses_can_be_refused() {
    let up = MockUpstream::start().await;
    up.on("/x", MockResponse::json(200, json!({})));
    up.on("/y", MockResponse::json(200, json!({})));
    let guarded = TestServer::start_with(|s| {
        s.trigger_tick = Duration::from_millis(20);
        s.outbound = flowgate_steps::outbound::OutboundPolicy { deny_private: true, allow: Vec::new() };
    })
    .await;
    guarded.apply(&GUARDED.replace("BASE", &up.url)).await;
    let id = hook(&guarded, "guarded/out", json!({})).await;
    let ex = guarded.wait_for(&id, "failed").await;
    assert_eq!(ex["steps"][0]["output"]["error"]["code"], "http_refused", "{ex:#}");
    assert_eq!(ex["error"]["code"], "webhook_failed", "{ex:#}");
    assert!(ex["deliveries"][0]["lastError"].as_str().unwrap().contains("internal addresses are refused"), "{ex:#}");
    assert_eq!(up.hits("/x") + up.hits("/y"), 0);
    // Log sources too: a syslog or HTTP collector on an internal address is refused.
    for config in
        [json!({ "syslog": { "url": "udp://127.0.0.1:514" } }), json!({ "http": { "url": "http://localhost:9/in" } })]
    {
        let (status, _, v) = send(guarded.api(reqwest::Method::PUT, "/v1/log-sources/siem").json(&config)).await;
        assert_eq!(status, 422, "{config}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("internal addresses are refused"), "{v}");
    }

    let allowed = TestServer::start_with(|s| {
        s.trigger_tick = Duration::from_millis(20);
        s.outbound = flowgate_steps::outbound::OutboundPolicy { deny_private: true, allow: vec!["127.0.0.1".into()] };
    })
    .await;
    allowed.apply(&GUARDED.replace("BASE", &up.url)).await;
    let id = hook(&allowed, "guarded/out", json!({})).await;
    allowed.wait_for(&id, "succeeded").await;
    assert_eq!((up.hits("/x"), up.hits("/y")), (1, 1));
    let (status, _, v) = send(
        allowed
            .api(reqwest::Method::PUT, "/v1/log-sources/siem")
            .json(&json!({ "syslog": { "url": "udp://127.0.0.1:514" } })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}
