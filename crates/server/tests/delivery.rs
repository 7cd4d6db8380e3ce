//! Delivery guarantees over HTTP (issue 4): per-key ordering with keys in parallel, ordered
//! delivery through a target outage, idempotent ingress, shared rate limits (and a target's
//! `Retry-After` pausing them), concurrency caps, what a failed head of an order key does to
//! the executions behind it (block / skip / retry), bulk retry and replay, retention and
//! diagnostics levels, ingress backpressure and the flow's total timeout.
//!
//! Everything runs on loopback against the shared [`MockUpstream`], which records each
//! request with its arrival time and the number of requests in flight, and answers as the
//! test scripts it (status, latency, holding requests until released, refusing connections
//! until it listens).

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, assert_error, send};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// The target's answers
// ---------------------------------------------------------------------------------------

/// The target's answer with `status`: `{"ok": status < 400}`.
fn reply(status: u16) -> MockResponse {
    MockResponse::json(status, json!({ "ok": status < 400 }))
}

/// `200 {"ok": true}`.
fn ok() -> MockResponse {
    reply(200)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after `deadline`.
async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every execution of a flow (all pages), newest first.
async fn executions(s: &TestServer, integration: &str, flow: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/executions?integration={integration}&flow={flow}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = s.get_json(&path).await;
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// How many executions of a flow have each status.
async fn status_counts(s: &TestServer, integration: &str, flow: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in executions(s, integration, flow).await {
        *counts.entry(e["status"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

/// Waits until every one of `n` executions of a flow has `status`.
async fn wait_all(s: &TestServer, integration: &str, flow: &str, n: usize, status: &str, deadline: Duration) {
    let started = Instant::now();
    loop {
        let counts = status_counts(s, integration, flow).await;
        if counts.get(status).copied() == Some(n) && counts.values().sum::<usize>() == n {
            return;
        }
        for ended in ["succeeded", "failed", "cancelled", "filtered"] {
            if ended != status {
                assert_eq!(
                    counts.get(ended),
                    None,
                    "{integration}/{flow}: expected every execution {status}: {counts:?}"
                );
            }
        }
        assert!(
            started.elapsed() < deadline,
            "{integration}/{flow}: not all {n} executions {status} after {deadline:?}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs a webhook event; asserts 202 and returns the execution id.
async fn hook(s: &TestServer, path: &str, body: Value) -> String {
    let (status, headers, v) = send(s.post_hook(path).json(&body)).await;
    assert_eq!(status, 202, "POST /hooks/default/{path}: {v}");
    let id = v["executionId"].as_str().unwrap_or_else(|| panic!("no executionId: {v}")).to_owned();
    assert_eq!(headers["x-flowgate-execution-id"], id.as_str());
    id
}

/// Waits until an execution has ended (any final status) and returns it.
async fn ended(s: &TestServer, id: &str, deadline: Duration) -> Value {
    poll(&format!("execution {id} to end"), deadline, || async {
        let ex = s.execution(id).await;
        ["succeeded", "failed", "cancelled", "filtered"].contains(&ex["status"].as_str().unwrap()).then_some(ex)
    })
    .await
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// POST to the API with a JSON body; returns status and body.
async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let (status, _, v) = send(s.api(reqwest::Method::POST, path).json(&body)).await;
    (status, v)
}

/// Polls a bulk job until it is done; returns it.
async fn bulk_done(s: &TestServer, job: &Value) -> Value {
    let url = job["progressUrl"].as_str().unwrap_or_else(|| panic!("no progressUrl: {job}")).to_owned();
    assert_eq!(url, format!("/v1/bulk/{}", job["id"].as_str().unwrap()));
    poll(&format!("bulk job {} to finish", job["id"]), Duration::from_secs(15), || async {
        let j = s.get_json(&url).await;
        (j["status"] == "done").then_some(j)
    })
    .await
}

/// `(stepId, status)` of the journal.
fn statuses(ex: &Value) -> Vec<(String, String)> {
    ex["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stepId"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. Ordering per key, keys in parallel
// ---------------------------------------------------------------------------------------

const ORDERING: &str = r#"
integration: ordering
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: keyed
    orderBy: '$trigger.body.key'
    trigger: { webhook: { path: ordering/keyed } }
    steps:
      - id: deliver
        http: { method: POST, url: "{{ $config.base }}/keyed", json: "{{ $trigger.body }}" }
"#;

const KEYS: usize = 10;
const PER_KEY: usize = 100;

backends!(ordering_per_key_with_keys_in_parallel);
/// 1,000 events over 10 keys (`orderBy`), each an http POST to a target answering after
/// 0–20 ms: each key's sequence at the target is exactly the order the server acknowledged
/// the events in (one key's events are sent one after another, keys concurrently), every
/// event arrives exactly once, and the target had several requests in flight at some point.
async fn ordering_per_key_with_keys_in_parallel() {
    let s = TestServer::start().await;
    let target = MockUpstream::with(|_| ok().delay(Duration::from_millis(rand::random_range(0..=20)))).await;
    s.apply(&ORDERING.replace("BASE", &target.url)).await;
    let flow = s.get_json("/v1/integrations/ordering/flows/keyed").await;
    assert_eq!(flow["ordered"], true, "{flow}");
    assert_eq!(flow["blocked"], json!([]), "{flow}");

    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for k in 0..KEYS {
        let (client, url) = (s.client.clone(), s.hook("ordering/keyed"));
        senders.spawn(async move {
            let key = format!("k{k}");
            let mut acked = Vec::with_capacity(PER_KEY);
            for seq in 0..PER_KEY {
                let r = client.post(&url).json(&json!({ "key": key, "seq": seq })).send().await.expect("send");
                let status = r.status().as_u16();
                let v: Value = r.json().await.expect("JSON");
                assert_eq!(status, 202, "event {key}/{seq}: {v}");
                acked.push((seq, v["executionId"].as_str().unwrap().to_owned()));
            }
            (key, acked)
        });
    }
    let mut acked: HashMap<String, Vec<usize>> = HashMap::new();
    let mut ids = HashSet::new();
    while let Some(r) = senders.join_next().await {
        let (key, list) = r.expect("sender");
        for (_, id) in &list {
            assert!(ids.insert(id.clone()), "execution id {id} given twice");
        }
        acked.insert(key, list.into_iter().map(|(seq, _)| seq).collect());
    }
    let sent_in = started.elapsed();
    let total = KEYS * PER_KEY;
    assert_eq!(ids.len(), total);

    poll("every event to reach the target", Duration::from_secs(45), || async {
        (target.total_hits() >= total).then_some(())
    })
    .await;
    let drained_in = started.elapsed();
    wait_all(&s, "ordering", "keyed", total, "succeeded", Duration::from_secs(10)).await;

    let hits = target.all_requests();
    assert_eq!(hits.len(), total, "every event is delivered exactly once");
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for h in &hits {
        let key = h.json()["key"].as_str().unwrap().to_owned();
        seen.entry(key).or_default().push(h.json()["seq"].as_u64().unwrap() as usize);
    }
    for (key, sent) in &acked {
        assert_eq!(sent, &(0..PER_KEY).collect::<Vec<_>>(), "events of {key} were acknowledged out of order");
        assert_eq!(seen.get(key), Some(sent), "key {key} arrived out of order at the target");
    }
    let max = target.max_in_flight();
    assert!(max > 1, "keys never ran in parallel: at most {max} request in flight");
    eprintln!(
        "[delivery] ordering: {total} events / {KEYS} keys sent+acknowledged in {sent_in:?}, all delivered after \
         {drained_in:?} ({:.0} events/s), max in flight {max}, duplicates {}",
        total as f64 / drained_in.as_secs_f64(),
        hits.len() - total
    );
}

// ---------------------------------------------------------------------------------------
// 2. Target outage
// ---------------------------------------------------------------------------------------

const OUTAGE: &str = r#"
integration: outage
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: ordered
    ordered: true
    trigger: { webhook: { path: outage/ordered } }
    steps:
      - id: deliver
        http: { method: POST, url: "{{ $config.base }}/ordered", json: "{{ $trigger.body }}" }
        retry: { attempts: 100, backoff: { initial: 20ms, max: 100ms } }
  - flow: plain
    trigger: { webhook: { path: outage/plain } }
    steps:
      - id: deliver
        http: { method: POST, url: "{{ $config.base }}/plain", json: "{{ $trigger.body }}" }
        retry: { attempts: 100, backoff: { initial: 20ms, max: 100ms } }
"#;

backends!(outage_then_recovery_delivers_everything_in_order);
/// The target refuses connections for a while, then comes up: every execution completes
/// (retries with backoff), each event reaches the target exactly once, and the `ordered`
/// flow's events arrive in exactly the order they were sent; during the outage nothing
/// behind the ordered head runs.
async fn outage_then_recovery_delivers_everything_in_order() {
    let s = TestServer::start().await;
    let target = MockUpstream::down();
    target.behave(|_| ok());
    s.apply(&OUTAGE.replace("BASE", &target.url)).await;
    const N: usize = 20;
    let started = Instant::now();
    let (mut ordered, mut plain) = (Vec::new(), Vec::new());
    for i in 0..N {
        ordered.push(hook(&s, "outage/ordered", json!({ "n": i })).await);
        plain.push(hook(&s, "outage/plain", json!({ "n": i })).await);
    }

    // The heads retry against a closed port; the rest of the ordered flow waits.
    let failed_attempts = |id: String| {
        let s = &s;
        async move {
            let ex = s.execution(&id).await;
            let failed: Vec<Value> =
                ex["steps"].as_array().unwrap().iter().filter(|s| s["status"] == "failed").cloned().collect();
            (failed.len() >= 3).then_some(failed)
        }
    };
    let failed = poll("the ordered head to fail a few attempts", Duration::from_secs(10), || {
        failed_attempts(ordered[0].clone())
    })
    .await;
    assert!(failed.iter().all(|a| a["error"]["code"] == "http_connect"), "{failed:#?}");
    poll("a plain execution to fail a few attempts", Duration::from_secs(10), || failed_attempts(plain[N - 1].clone()))
        .await;
    for id in &ordered[1..] {
        assert_eq!(s.execution(id).await["status"], "queued", "nothing overtakes the ordered head");
    }
    let outage = started.elapsed();
    assert_eq!(target.total_hits(), 0);

    target.listen().await;
    let up = Instant::now();
    wait_all(&s, "outage", "ordered", N, "succeeded", Duration::from_secs(20)).await;
    wait_all(&s, "outage", "plain", N, "succeeded", Duration::from_secs(20)).await;
    let drained = up.elapsed();

    let arrived: Vec<u64> = target.requests("/ordered").iter().map(|h| h.json()["n"].as_u64().unwrap()).collect();
    assert_eq!(arrived, (0..N as u64).collect::<Vec<_>>(), "the ordered flow's events arrived out of order");
    let mut plain_arrived: Vec<u64> =
        target.requests("/plain").iter().map(|h| h.json()["n"].as_u64().unwrap()).collect();
    plain_arrived.sort_unstable();
    assert_eq!(plain_arrived, (0..N as u64).collect::<Vec<_>>(), "each plain event exactly once");
    let head = s.execution(&ordered[0]).await;
    let attempts = head["steps"].as_array().unwrap().len();
    assert!(attempts >= 4, "{head:#}");
    assert_eq!(head["steps"][attempts - 1]["status"], "succeeded");
    eprintln!(
        "[delivery] outage: {N}+{N} events, target down {outage:?} (head made {} failed attempts), everything \
         delivered {drained:?} after recovery",
        attempts - 1
    );
}

// ---------------------------------------------------------------------------------------
// 3. Idempotent ingress
// ---------------------------------------------------------------------------------------

const DEDUP: &str = r#"
integration: dedup
flows:
  - flow: by-header
    trigger: { webhook: { path: dedup/header } }
    steps: [ { id: echo, transform: '.body' } ]
  - flow: by-body
    trigger: { webhook: { path: dedup/body, dedupKey: '$trigger.body.eventId' } }
    steps: [ { id: echo, transform: '.body' } ]
  - flow: short
    trigger: { webhook: { path: dedup/short, dedupWindow: 400ms } }
    steps: [ { id: echo, transform: '.body' } ]
  - flow: sync
    trigger: { webhook: { path: dedup/sync, respond: { mode: sync, timeout: 5s } } }
    steps:
      - { id: reply, respond: { status: 201, body: { n: "{{ .body.n }}", execution: "{{ $execution.id }}" } } }
"#;

/// Sends the same request three times at once; returns `(status, execution id, duplicate?)`.
async fn three_at_once(req: impl Fn() -> reqwest::RequestBuilder) -> Vec<(u16, String, bool)> {
    let (a, b, c) = tokio::join!(send(req()), send(req()), send(req()));
    [a, b, c]
        .into_iter()
        .map(|(status, headers, v)| {
            let id = v["executionId"].as_str().unwrap_or_else(|| panic!("{status} {v}")).to_owned();
            assert_eq!(headers["x-flowgate-execution-id"], id.as_str());
            let dup = headers.get("x-flowgate-duplicate").map(|v| v.to_str().unwrap().to_owned());
            assert!(dup.is_none() || dup.as_deref() == Some("true"), "{dup:?}");
            (status, id, dup.is_some())
        })
        .collect()
}

backends!(repeated_deliveries_make_one_execution);
/// The same delivery sent three times concurrently (by `Idempotency-Key`, or by a custom
/// `dedupKey`) makes one execution and three answers with its id, two marked duplicate;
/// identical bodies without a key make separate executions; an identity is forgotten after
/// its `dedupWindow`; a sync flow's repeat gets the first execution's answer.
async fn repeated_deliveries_make_one_execution() {
    let s = TestServer::start().await;
    s.apply(DEDUP).await;

    // Idempotency-Key header.
    let answers =
        three_at_once(|| s.post_hook("dedup/header").header("Idempotency-Key", "delivery-1").json(&json!({ "n": 1 })))
            .await;
    assert!(answers.iter().all(|(st, _, _)| *st == 202), "{answers:?}");
    let first = answers[0].1.clone();
    assert!(answers.iter().all(|(_, id, _)| *id == first), "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a.2).count(), 2, "two answers are marked duplicate: {answers:?}");
    s.wait_for(&first, "succeeded").await;
    // Later repeats too; another key is another execution.
    let (status, headers, v) =
        send(s.post_hook("dedup/header").header("Idempotency-Key", "delivery-1").json(&json!({ "n": 99 }))).await;
    assert_eq!((status, v["executionId"].as_str()), (202, Some(first.as_str())), "{v}");
    assert_eq!(headers["x-flowgate-duplicate"], "true");
    let other =
        send(s.post_hook("dedup/header").header("Idempotency-Key", "delivery-2").json(&json!({ "n": 2 }))).await;
    assert_eq!(other.0, 202);
    assert!(other.1.get("x-flowgate-duplicate").is_none());
    assert_ne!(other.2["executionId"], first.as_str());
    let listed = executions(&s, "dedup", "by-header").await;
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(s.execution(&first).await["output"], json!({ "n": 1 }), "the first delivery's body runs");

    // Identical bodies without a key: separate executions.
    for _ in 0..3 {
        hook(&s, "dedup/header", json!({ "same": true })).await;
    }
    assert_eq!(executions(&s, "dedup", "by-header").await.len(), 5);

    // A Standard Webhooks delivery (signed): its `webhook-id` is its identity.
    let signed = || {
        s.post_hook("dedup/header")
            .header("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
            .header("webhook-timestamp", "1674087231")
            .header("webhook-signature", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")
            .json(&json!({ "type": "invoice.paid" }))
    };
    let answers = three_at_once(signed).await;
    let first_signed = answers[0].1.clone();
    assert!(answers.iter().all(|(st, id, _)| *st == 202 && *id == first_signed), "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a.2).count(), 2, "{answers:?}");
    // A `webhook-id` without the scheme's signature is just a header.
    for _ in 0..2 {
        let (status, headers, _) =
            send(s.post_hook("dedup/header").header("webhook-id", "plain").json(&json!({}))).await;
        assert_eq!(status, 202);
        assert!(headers.get("x-flowgate-duplicate").is_none());
    }
    assert_eq!(executions(&s, "dedup", "by-header").await.len(), 8);

    // A custom dedupKey from the body.
    let answers = three_at_once(|| s.post_hook("dedup/body").json(&json!({ "eventId": "evt-7", "n": 7 }))).await;
    let first = answers[0].1.clone();
    assert!(answers.iter().all(|(st, id, _)| *st == 202 && *id == first), "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a.2).count(), 2, "{answers:?}");
    // Same eventId with another body and another Idempotency-Key: still the same delivery.
    let (_, headers, v) =
        send(s.post_hook("dedup/body").header("Idempotency-Key", "x").json(&json!({ "eventId": "evt-7", "n": 8 })))
            .await;
    assert_eq!(v["executionId"], first.as_str());
    assert_eq!(headers["x-flowgate-duplicate"], "true");
    hook(&s, "dedup/body", json!({ "eventId": "evt-8" })).await;
    // No identity (the key evaluates to null): not deduplicated.
    hook(&s, "dedup/body", json!({ "n": 1 })).await;
    hook(&s, "dedup/body", json!({ "n": 1 })).await;
    assert_eq!(executions(&s, "dedup", "by-body").await.len(), 4);

    // dedupWindow: the identity is forgotten after 400ms.
    let sent = Instant::now();
    let first = hook_with_key(&s, "dedup/short", "k").await;
    let (_, headers, v) = send(s.post_hook("dedup/short").header("Idempotency-Key", "k").json(&json!({}))).await;
    if sent.elapsed() < Duration::from_millis(350) {
        assert_eq!(v["executionId"], first.as_str(), "a repeat within the window is a duplicate");
        assert_eq!(headers["x-flowgate-duplicate"], "true");
    }
    let again = poll("the identity to expire", Duration::from_secs(5), || async {
        let (status, headers, v) =
            send(s.post_hook("dedup/short").header("Idempotency-Key", "k").json(&json!({}))).await;
        assert_eq!(status, 202, "{v}");
        headers.get("x-flowgate-duplicate").is_none().then(|| v["executionId"].as_str().unwrap().to_owned())
    })
    .await;
    assert!(sent.elapsed() >= Duration::from_millis(400), "forgotten after {:?}", sent.elapsed());
    assert_ne!(again, first);
    assert_eq!(executions(&s, "dedup", "short").await.len(), 2);

    // Sync flow: the repeat gets the first execution's answer.
    let (status, headers, v) =
        send(s.post_hook("dedup/sync").header("Idempotency-Key", "sync-1").json(&json!({ "n": 1 }))).await;
    assert_eq!(status, 201, "{v}");
    let first = headers["x-flowgate-execution-id"].to_str().unwrap().to_owned();
    assert_eq!(v, json!({ "n": 1, "execution": first }));
    let (status, headers, again) =
        send(s.post_hook("dedup/sync").header("Idempotency-Key", "sync-1").json(&json!({ "n": 2 }))).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again, v, "the repeat gets the first's answer");
    assert_eq!(headers["x-flowgate-execution-id"], first.as_str());
    assert_eq!(executions(&s, "dedup", "sync").await.len(), 1);
}

async fn hook_with_key(s: &TestServer, path: &str, key: &str) -> String {
    let (status, _, v) = send(s.post_hook(path).header("Idempotency-Key", key).json(&json!({}))).await;
    assert_eq!(status, 202, "{v}");
    v["executionId"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------
// 4. Rate limits
// ---------------------------------------------------------------------------------------

const LIMITED: &str = r#"
integration: limited
config:
  base: { type: string, default: "BASE" }
limits:
  t: { rate: 5/s, burst: 3 }
flows:
  - flow: calls
    trigger: { webhook: { path: limited/calls } }
    steps:
      - id: call
        http: { method: POST, url: "{{ $config.base }}/limited", json: "{{ $trigger.body }}", limit: t }
"#;

backends!(rate_limit_bounds_every_window);
/// `rate: 5/s, burst: 3`, 20 executions at once: in every window between two recorded
/// arrivals the target sees at most `burst + rate × t` requests, and all complete. t is
/// stretched by 250 ms of delivery jitter between the token and the arrival (this binary's
/// other tests run beside it on two cores; 150 ms stalls were seen): 1.25 tokens at this rate,
/// so a limiter granting even two tokens too many fails, while a stalled task does not.
async fn rate_limit_bounds_every_window() {
    let s = TestServer::start().await;
    let target = MockUpstream::with(|_| ok()).await;
    s.apply(&LIMITED.replace("BASE", &target.url)).await;
    const N: usize = 20;
    const RATE: f64 = 5.0;
    const BURST: f64 = 3.0;
    const JITTER: f64 = 0.25;
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..N {
        let req = s.post_hook("limited/calls").json(&json!({ "i": i }));
        sends.spawn(async move { send(req).await.0 });
    }
    while let Some(status) = sends.join_next().await {
        assert_eq!(status.unwrap(), 202);
    }
    wait_all(&s, "limited", "calls", N, "succeeded", Duration::from_secs(15)).await;
    let took = started.elapsed();
    let at: Vec<Instant> = target.all_requests().iter().map(|h| h.at).collect();
    assert_eq!(at.len(), N);
    let (mut worst, mut worst_window) = (0.0f64, (0usize, Duration::ZERO));
    for i in 0..N {
        for j in i..N {
            let t = at[j].duration_since(at[i]).as_secs_f64();
            let n = (j - i + 1) as f64;
            let bound = BURST + RATE * (t + JITTER);
            assert!(n <= bound, "{n} requests within {:.0} ms: more than burst + rate × t = {bound:.1}", t * 1000.0);
            if n - RATE * t > worst {
                worst = n - RATE * t;
                worst_window = (j - i + 1, at[j].duration_since(at[i]));
            }
        }
    }
    let span = at[N - 1].duration_since(at[0]);
    assert!(span.as_secs_f64() >= (N as f64 - BURST) / RATE - JITTER, "{N} requests within {span:?}");
    eprintln!(
        "[delivery] rate limit 5/s burst 3: {N} calls over {span:?} (all done in {took:?}); largest excess over \
         rate × t: {worst:.2} ({} requests in {:?}), bound burst = {BURST}",
        worst_window.0, worst_window.1
    );
}

const PAUSED: &str = r#"
integration: paused
config:
  base: { type: string, default: "BASE" }
limits:
  p: { rate: 100/s, burst: 100 }
flows:
  - flow: throttled
    trigger: { webhook: { path: paused/throttled } }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/throttled", limit: p }
        retry: { attempts: 3, backoff: { initial: 10ms, max: 50ms } }
  - flow: others
    trigger: { webhook: { path: paused/others } }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/others", limit: p }
"#;

backends!(retry_after_pauses_the_whole_limit);
/// A 429 with `Retry-After: 1` on one execution's request pauses the whole limit: requests
/// of other executions started meanwhile wait until the second is over, then everything
/// completes.
async fn retry_after_pauses_the_whole_limit() {
    let s = TestServer::start().await;
    let throttled = Arc::new(AtomicBool::new(false));
    let once = throttled.clone();
    let target = MockUpstream::with(move |r| {
        if r.path == "/throttled" && !once.swap(true, Ordering::SeqCst) {
            reply(429).header("retry-after", "1")
        } else {
            ok()
        }
    })
    .await;
    s.apply(&PAUSED.replace("BASE", &target.url)).await;
    // Warm the limit: it works at full speed before the 429.
    let warm = hook(&s, "paused/others", json!({})).await;
    s.wait_for(&warm, "succeeded").await;

    let first = hook(&s, "paused/throttled", json!({})).await;
    let t429 =
        poll("the 429", Duration::from_secs(5), || async { target.requests("/throttled").first().map(|h| h.at) }).await;
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(hook(&s, "paused/others", json!({})).await);
    }
    for id in &others {
        s.wait_for(id, "succeeded").await;
    }
    s.wait_for(&first, "succeeded").await;
    let after: Vec<Duration> = target.requests("/others")[1..].iter().map(|h| h.at.duration_since(t429)).collect();
    assert_eq!(after.len(), 5);
    for d in &after {
        assert!(*d >= Duration::from_millis(950), "a request went out {d:?} after the 429 asked for 1s: {after:?}");
    }
    let retried = target.requests("/throttled");
    assert_eq!(retried.len(), 2);
    assert!(retried[1].at.duration_since(t429) >= Duration::from_millis(950));
    eprintln!(
        "[delivery] Retry-After pause: other executions' requests went out {:?}..{:?} after the 429",
        after.iter().min().unwrap(),
        after.iter().max().unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// 5. Concurrency cap
// ---------------------------------------------------------------------------------------

const CAPPED: &str = r#"
integration: capped
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: slow
    concurrency: 2
    trigger: { webhook: { path: capped/slow } }
    steps:
      - id: call
        http: { method: POST, url: "{{ $config.base }}/slow", json: "{{ $trigger.body }}" }
"#;

backends!(concurrency_cap_holds_with_a_slow_target);
/// `concurrency: 2` with a target taking 100 ms: never more than 2 requests in flight (and 2
/// at some point), and every execution completes.
async fn concurrency_cap_holds_with_a_slow_target() {
    let s = TestServer::start().await;
    let target = MockUpstream::with(|_| ok().delay(Duration::from_millis(100))).await;
    s.apply(&CAPPED.replace("BASE", &target.url)).await;
    let flow = s.get_json("/v1/integrations/capped/flows/slow").await;
    assert_eq!((flow["concurrency"].as_u64(), flow["ordered"].as_bool()), (Some(2), Some(false)), "{flow}");
    const N: usize = 12;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..N {
        let req = s.post_hook("capped/slow").json(&json!({ "i": i }));
        sends.spawn(async move { send(req).await.0 });
    }
    while let Some(status) = sends.join_next().await {
        assert_eq!(status.unwrap(), 202);
    }
    // While they run, the API never shows more than 2 running either.
    let started = Instant::now();
    let mut most_running = 0;
    loop {
        let counts = status_counts(&s, "capped", "slow").await;
        let running = counts.get("running").copied().unwrap_or(0);
        most_running = most_running.max(running);
        assert!(running <= 2, "{counts:?}");
        if counts.get("succeeded") == Some(&N) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "not done: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(target.total_hits(), N);
    assert_eq!(
        target.max_in_flight(),
        2,
        "the cap is 2: {:?}",
        target.all_requests().iter().map(|h| h.in_flight).collect::<Vec<_>>()
    );
    eprintln!(
        "[delivery] concurrency 2: {N} executions of 100 ms in {:?}, max in flight {}, most running seen {most_running}",
        started.elapsed(),
        target.max_in_flight()
    );
}

// ---------------------------------------------------------------------------------------
// 6. A failed head of an order key: block, skip, retry
// ---------------------------------------------------------------------------------------

const BLOCKING: &str = r#"
integration: blocking
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: keyed
    orderBy: '$trigger.body.key'
    trigger: { webhook: { path: blocking/keyed } }
    steps:
      - id: deliver
        http: { method: POST, url: "{{ $config.base }}/keyed", json: "{{ $trigger.body }}" }
        retry: { attempts: 1 }
  - flow: skipping
    orderBy: '$trigger.body.key'
    onExhausted: skip
    trigger: { webhook: { path: blocking/skipping } }
    steps:
      - id: deliver
        http: { method: POST, url: "{{ $config.base }}/skipping", json: "{{ $trigger.body }}" }
        retry: { attempts: 1 }
"#;

/// `(key, n)` of the requests to `path`, in arrival order, keeping only `key`.
fn arrivals(target: &MockUpstream, path: &str, key: &str) -> Vec<(u64, u16)> {
    target
        .requests(path)
        .iter()
        .filter(|h| h.json()["key"] == key)
        .map(|h| (h.json()["n"].as_u64().unwrap(), h.status))
        .collect()
}

backends!(failed_head_blocks_its_key_until_skipped_or_retried);
/// `onExhausted: block` (default): a head that failed for good holds the later events of its
/// key (the flow lists it in `blocked`, it has `blocksOrder: true`) while other keys go on;
/// skipping it releases the key; retrying another blocked head after the target is fixed
/// lets its key continue in order. `onExhausted: skip`: the next ones run at once.
async fn failed_head_blocks_its_key_until_skipped_or_retried() {
    let s = TestServer::start().await;
    let fixed = Arc::new(AtomicBool::new(false));
    let f = fixed.clone();
    let target =
        MockUpstream::with(
            move |r| {
                if r.json()["fail"] == true && !f.load(Ordering::SeqCst) { reply(500) } else { ok() }
            },
        )
        .await;
    s.apply(&BLOCKING.replace("BASE", &target.url)).await;

    let ev = |key: &str, n: u64, fail: bool| json!({ "key": key, "n": n, "fail": fail });
    let a0 = hook(&s, "blocking/keyed", ev("a", 0, true)).await;
    let a1 = hook(&s, "blocking/keyed", ev("a", 1, false)).await;
    let a2 = hook(&s, "blocking/keyed", ev("a", 2, false)).await;
    let c0 = hook(&s, "blocking/keyed", ev("c", 0, true)).await;
    let c1 = hook(&s, "blocking/keyed", ev("c", 1, false)).await;
    let mut b = Vec::new();
    for n in 0..3 {
        b.push(hook(&s, "blocking/keyed", ev("b", n, false)).await);
    }
    let ex = s.wait_for(&a0, "failed").await;
    assert_eq!((ex["orderKey"].as_str(), ex["blocksOrder"].as_bool()), (Some("a"), Some(true)), "{ex:#}");
    s.wait_for(&c0, "failed").await;
    for id in &b {
        s.wait_for(id, "succeeded").await;
    }
    // Key b was sent after a1, a2 and c1, and is done: those are held, not merely late.
    for id in [&a1, &a2, &c1] {
        let ex = s.execution(id).await;
        assert_eq!(ex["status"], "queued", "{ex:#}");
        assert_eq!(ex["blocksOrder"], false);
    }
    let flow = s.get_json("/v1/integrations/blocking/flows/keyed").await;
    let blocked: Vec<(&str, &str)> = flow["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["executionId"].as_str().unwrap(), b["orderKey"].as_str().unwrap()))
        .collect();
    assert_eq!(blocked, [(a0.as_str(), "a"), (c0.as_str(), "c")], "{flow:#}");
    assert_eq!(flow["blocked"][0]["failedStep"], "deliver");
    let listed = executions(&s, "blocking", "keyed").await;
    let a0_summary = listed.iter().find(|e| e["id"] == a0.as_str()).unwrap();
    assert_eq!(a0_summary["blocksOrder"], true, "{a0_summary}");
    assert_eq!(arrivals(&target, "/keyed", "b"), [(0, 200), (1, 200), (2, 200)]);

    // Skip: the key goes on; the failed one stays failed and no longer blocks.
    let (status, v) = post(&s, &format!("/v1/executions/{a0}/skip"), json!(null)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["status"].as_str(), v["blocksOrder"].as_bool()), (Some("failed"), Some(false)), "{v}");
    s.wait_for(&a1, "succeeded").await;
    s.wait_for(&a2, "succeeded").await;
    assert_eq!(arrivals(&target, "/keyed", "a"), [(0, 500), (1, 200), (2, 200)]);
    assert_eq!(s.execution(&a0).await["status"], "failed");
    // Skipping what does not block is refused.
    let (status, v) = post(&s, &format!("/v1/executions/{a0}/skip"), json!(null)).await;
    assert_eq!(status, 409, "{v}");
    let (status, v) = post(&s, &format!("/v1/executions/{a1}/skip"), json!(null)).await;
    assert_eq!(status, 409, "{v}");
    let (status, v) = post(&s, "/v1/executions/no-such-id/skip", json!(null)).await;
    assert_eq!(status, 404, "{v}");
    let flow = s.get_json("/v1/integrations/blocking/flows/keyed").await;
    assert_eq!(flow["blocked"].as_array().unwrap().len(), 1, "{flow:#}");
    assert_eq!(s.execution(&c1).await["status"], "queued", "skipping a does not release c");

    // Retry after fixing the target: c0 runs again first, then c1.
    fixed.store(true, Ordering::SeqCst);
    let (status, v) = post(&s, &format!("/v1/executions/{c0}/retry"), json!(null)).await;
    assert_eq!(status, 202, "{v}");
    s.wait_for(&c0, "succeeded").await;
    s.wait_for(&c1, "succeeded").await;
    assert_eq!(arrivals(&target, "/keyed", "c"), [(0, 500), (0, 200), (1, 200)]);
    let flow = s.get_json("/v1/integrations/blocking/flows/keyed").await;
    assert_eq!(flow["blocked"], json!([]), "{flow:#}");
    assert_eq!(s.execution(&c0).await["blocksOrder"], false);

    // onExhausted: skip.
    fixed.store(false, Ordering::SeqCst);
    let d0 = hook(&s, "blocking/skipping", ev("d", 0, true)).await;
    let d1 = hook(&s, "blocking/skipping", ev("d", 1, false)).await;
    let d2 = hook(&s, "blocking/skipping", ev("d", 2, false)).await;
    let ex = s.wait_for(&d0, "failed").await;
    assert_eq!(ex["blocksOrder"], false, "{ex:#}");
    s.wait_for(&d1, "succeeded").await;
    s.wait_for(&d2, "succeeded").await;
    assert_eq!(arrivals(&target, "/skipping", "d"), [(0, 500), (1, 200), (2, 200)]);
    let flow = s.get_json("/v1/integrations/blocking/flows/skipping").await;
    assert_eq!(flow["blocked"], json!([]), "{flow:#}");
}

// ---------------------------------------------------------------------------------------
// 7. Bulk retry and replay
// ---------------------------------------------------------------------------------------

const BULK: &str = r#"
integration: bulk
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: a
    trigger: { webhook: { path: bulk/a } }
    steps:
      - id: call
        http: { method: POST, url: "{{ $config.base }}/a", json: "{{ $trigger.body }}" }
        retry: { attempts: 1 }
  - flow: b
    trigger: { webhook: { path: bulk/b } }
    steps:
      - id: call
        http: { method: POST, url: "{{ $config.base }}/b", json: "{{ $trigger.body }}" }
        retry: { attempts: 1 }
"#;

backends!(bulk_retry_and_replay_after_an_outage);
/// Executions failed while the target was down; once it is up: dry runs count them (filters
/// by flow, time range and ids), a bulk retry job reaches `done == total` and its executions
/// succeed (the ones outside the filter stay failed), and a bulk replay makes new executions
/// with `replayOf`.
async fn bulk_retry_and_replay_after_an_outage() {
    let s = TestServer::start().await;
    let down = Arc::new(AtomicBool::new(true));
    let d = down.clone();
    let target = MockUpstream::with(move |_| if d.load(Ordering::SeqCst) { reply(503) } else { ok() }).await;
    s.apply(&BULK.replace("BASE", &target.url)).await;

    let mut early = Vec::new();
    for n in 0..3 {
        early.push(hook(&s, "bulk/a", json!({ "n": n })).await);
    }
    for id in &early {
        s.wait_for(id, "failed").await;
    }
    let mid = poll("the clock to move on", Duration::from_secs(1), || async {
        let t = now_ms();
        (t > now_ms_of_last(&s, &early).await).then_some(t)
    })
    .await;
    let mut late = Vec::new();
    for n in 3..6 {
        late.push(hook(&s, "bulk/a", json!({ "n": n })).await);
    }
    let mut other = Vec::new();
    for n in 0..2 {
        other.push(hook(&s, "bulk/b", json!({ "n": n })).await);
    }
    for id in late.iter().chain(&other) {
        s.wait_for(id, "failed").await;
    }
    down.store(false, Ordering::SeqCst);

    // Dry runs count; nothing changes.
    let count = |body: Value| {
        let s = &s;
        async move {
            let (status, v) = post(s, "/v1/executions/retry", body).await;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["dryRun"], true, "{v}");
            v["count"].as_i64().unwrap()
        }
    };
    assert_eq!(count(json!({ "integration": "bulk", "dryRun": true })).await, 8);
    assert_eq!(count(json!({ "integration": "bulk", "flow": "a", "dryRun": true })).await, 6);
    assert_eq!(count(json!({ "integration": "bulk", "flow": "b", "dryRun": true })).await, 2);
    assert_eq!(count(json!({ "integration": "bulk", "flow": "a", "to": mid, "dryRun": true })).await, 3);
    assert_eq!(count(json!({ "integration": "bulk", "flow": "a", "from": rfc3339(mid), "dryRun": true })).await, 3);
    assert_eq!(count(json!({ "ids": [other[0]], "dryRun": true })).await, 1);
    assert_eq!(count(json!({ "integration": "bulk", "status": "succeeded", "dryRun": true })).await, 0);
    assert_eq!(status_counts(&s, "bulk", "a").await.get("failed"), Some(&6));

    // Retry the early ones of flow a (time range): the late ones and flow b stay failed.
    let (status, job) =
        post(&s, "/v1/executions/retry", json!({ "integration": "bulk", "flow": "a", "to": mid })).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!((job["total"].as_i64(), job["kind"].as_str()), (Some(3), Some("retry")), "{job}");
    let started = Instant::now();
    let done = bulk_done(&s, &job).await;
    assert_eq!((done["done"].as_i64(), done["failed"].as_i64(), done["total"].as_i64()), (Some(3), Some(0), Some(3)));
    for id in &early {
        assert_eq!(s.wait_for(id, "succeeded").await["attempt"], 2);
    }
    for id in late.iter().chain(&other) {
        assert_eq!(s.execution(id).await["status"], "failed");
    }

    // Then everything left in flow a.
    let (status, job) = post(&s, "/v1/executions/retry", json!({ "integration": "bulk", "flow": "a" })).await;
    assert_eq!(status, 202, "{job}");
    let done = bulk_done(&s, &job).await;
    assert_eq!((done["done"].as_i64(), done["total"].as_i64()), (Some(3), Some(3)), "{done}");
    wait_all(&s, "bulk", "a", 6, "succeeded", Duration::from_secs(10)).await;
    let retried_in = started.elapsed();
    assert_eq!(status_counts(&s, "bulk", "b").await.get("failed"), Some(&2));

    // Replay flow b's failed executions (bounded in time: the replays are not replayed).
    let until = now_ms() + 1;
    let (status, v) =
        post(&s, "/v1/executions/replay", json!({ "integration": "bulk", "flow": "b", "to": until, "dryRun": true }))
            .await;
    assert_eq!((status, v["count"].as_i64()), (200, Some(2)), "{v}");
    let (status, job) =
        post(&s, "/v1/executions/replay", json!({ "integration": "bulk", "flow": "b", "to": until })).await;
    assert_eq!(status, 202, "{job}");
    let done = bulk_done(&s, &job).await;
    assert_eq!(
        (done["done"].as_i64(), done["total"].as_i64(), done["kind"].as_str()),
        (Some(2), Some(2), Some("replay"))
    );
    wait_all_replays(&s, &other).await;
    eprintln!(
        "[delivery] bulk: 8 failed during the outage; retried 3 + 3 (by time range, then flow) in {retried_in:?}; \
         2 replayed"
    );
}

/// `createdAt` (ms) of the newest of `ids`.
async fn now_ms_of_last(s: &TestServer, ids: &[String]) -> i64 {
    let mut last = 0;
    for id in ids {
        last = last.max(time_ms(&s.execution(id).await["createdAt"]));
    }
    last
}

/// Waits for flow b to hold the originals (failed) and one succeeded replay of each.
async fn wait_all_replays(s: &TestServer, originals: &[String]) {
    let list = poll("the replays to succeed", Duration::from_secs(10), || async {
        let list = executions(s, "bulk", "b").await;
        let replays = list.iter().filter(|e| !e["replayOf"].is_null()).count();
        (replays == originals.len() && list.iter().all(|e| e["status"] != "queued" && e["status"] != "running"))
            .then_some(list)
    })
    .await;
    assert_eq!(list.len(), originals.len() * 2, "{list:#?}");
    let mut replayed: Vec<&str> = list.iter().filter_map(|e| e["replayOf"].as_str()).collect();
    replayed.sort_unstable();
    let mut expected: Vec<&str> = originals.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(replayed, expected);
    for e in &list {
        let want = if e["replayOf"].is_null() { "failed" } else { "succeeded" };
        assert_eq!(e["status"], want, "{e}");
        if !e["replayOf"].is_null() {
            assert_eq!(e["triggerKind"], "replay");
        }
    }
}

const REPLAYED: &str = r#"
integration: replayed
flows:
  - flow: echo
    trigger: { webhook: { path: replayed/echo } }
    steps: [ { id: echo, transform: '.body' } ]
"#;

backends!(bulk_replay_does_not_replay_its_own_replays);
/// A bulk replay whose filter has no upper time bound replays what it selected when it
/// started (`total`) and ends: the executions it creates itself (same flow, later `seq`)
/// match the filter too, but are past the job's snapshot and not replayed in turn.
async fn bulk_replay_does_not_replay_its_own_replays() {
    let s = TestServer::start().await;
    s.apply(REPLAYED).await;
    let originals =
        [hook(&s, "replayed/echo", json!({ "n": 1 })).await, hook(&s, "replayed/echo", json!({ "n": 2 })).await];
    for id in &originals {
        s.wait_for(id, "succeeded").await;
    }
    let (status, job) = post(&s, "/v1/executions/replay", json!({ "integration": "replayed", "flow": "echo" })).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["total"], 2);
    let url = job["progressUrl"].as_str().unwrap().to_owned();
    let (job, listed) = poll("the job to end or run away", Duration::from_secs(10), || async {
        let job = s.get_json(&url).await;
        let listed = executions(&s, "replayed", "echo").await.len();
        (job["status"] == "done" || listed > 20).then_some((job, listed))
    })
    .await;
    assert_eq!(listed, 4, "a replay of 2 executions made {} new ones; job: {job}", listed - 2);
    assert_eq!((job["status"].as_str(), job["done"].as_i64()), (Some("done"), Some(2)), "{job}");
}

// ---------------------------------------------------------------------------------------
// 8. Retention and diagnostics
// ---------------------------------------------------------------------------------------

const RETENTION: &str = r#"
integration: retention
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: kept
    retention: { count: 3 }
    trigger: { manual: {} }
    steps: [ { id: echo, transform: '.body' } ]
  - flow: aged
    retention: { age: 1s }
    trigger: { manual: {} }
    steps: [ { id: echo, transform: '.body' } ]
  - flow: unbounded
    trigger: { manual: {} }
    steps: [ { id: echo, transform: '.body' } ]
  - flow: keyed
    orderBy: '$trigger.body.key'
    retention: { count: 1 }
    trigger: { webhook: { path: retention/keyed } }
    steps:
      - id: deliver
        http: { method: POST, url: "{{ $config.base }}/keyed", json: "{{ $trigger.body }}" }
        retry: { attempts: 1 }
"#;

fn ids(list: &[Value]) -> Vec<String> {
    list.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

backends!(retention_keeps_the_newest_per_flow);
/// `retention: { count: 3 }` keeps the newest 3 finished executions of its flow once
/// housekeeping ran (every 200 ms here); `age: 1s` deletes them a second after they ended;
/// flows without retention keep everything; a failed execution that blocks its order key is
/// kept whatever the count (deleting it would release the key).
async fn retention_keeps_the_newest_per_flow() {
    let s = TestServer::start_with(|st| st.housekeeping_every = Duration::from_millis(200)).await;
    let target = MockUpstream::with(|r| if r.json()["fail"] == true { reply(500) } else { ok() }).await;
    s.apply(&RETENTION.replace("BASE", &target.url)).await;

    let mut kept = Vec::new();
    for n in 0..6 {
        kept.push(s.run_flow("retention", "kept", json!({ "n": n })).await["executionId"].as_str().unwrap().to_owned());
        s.run_flow("retention", "unbounded", json!({ "n": n })).await;
    }
    let left = poll("retention to keep 3", Duration::from_secs(10), || async {
        let list = executions(&s, "retention", "kept").await;
        (list.len() <= 3).then_some(list)
    })
    .await;
    assert_eq!(ids(&left), [kept[5].clone(), kept[4].clone(), kept[3].clone()], "the newest 3 are kept");
    let (status, _, _) = send(s.api(reqwest::Method::GET, &format!("/v1/executions/{}", kept[0]))).await;
    assert_eq!(status, 404);
    assert_eq!(executions(&s, "retention", "unbounded").await.len(), 6, "other flows keep everything");

    let ran = Instant::now();
    let aged = s.run_flow("retention", "aged", json!({})).await["executionId"].as_str().unwrap().to_owned();
    s.execution(&aged).await;
    poll("the aged execution to be deleted", Duration::from_secs(10), || async {
        executions(&s, "retention", "aged").await.is_empty().then_some(())
    })
    .await;
    assert!(ran.elapsed() >= Duration::from_millis(900), "deleted {:?} after it ran, before its age", ran.elapsed());

    // The blocking head of key x survives `count: 1`; the key stays blocked.
    let x0 = hook(&s, "retention/keyed", json!({ "key": "x", "n": 0, "fail": true })).await;
    let x1 = hook(&s, "retention/keyed", json!({ "key": "x", "n": 1 })).await;
    s.wait_for(&x0, "failed").await;
    let mut y = Vec::new();
    for n in 0..3 {
        y.push(hook(&s, "retention/keyed", json!({ "key": "y", "n": n })).await);
    }
    for id in &y {
        s.wait_for(id, "succeeded").await;
    }
    let left = poll("retention to prune key y", Duration::from_secs(10), || async {
        let list = executions(&s, "retention", "keyed").await;
        (list.len() <= 3).then_some(list)
    })
    .await;
    let mut got = ids(&left);
    got.sort();
    let mut want = vec![x0.clone(), x1.clone(), y[2].clone()];
    want.sort();
    assert_eq!(got, want, "kept: the blocked head, the queued one behind it and the newest finished");
    let flow = s.get_json("/v1/integrations/retention/flows/keyed").await;
    assert_eq!(flow["blocked"][0]["executionId"], x0.as_str(), "{flow:#}");
    assert_eq!(s.execution(&x1).await["status"], "queued");
}

const DIAGNOSTICS: &str = r#"
integration: diag
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: full
    trigger: { manual: {} }
    steps: STEPS
  - flow: errors
    diagnostics: errors
    trigger: { manual: {} }
    steps: STEPS
  - flow: minimal
    diagnostics: minimal
    trigger: { manual: {} }
    steps: STEPS
"#;

/// A log, a transform and an http call that fails when `fail` is true.
const DIAG_STEPS: &str = r#"[ { id: note, log: "n={{ .body.n }}" }, { id: shape, transform: '{ n: .body.n, fail: .body.fail }' }, { id: call, http: { method: POST, url: "{{ $config.base }}/diag", json: "{{ . }}" }, retry: { attempts: 1 } } ]"#;

fn diagnostics_doc(base: &str) -> String {
    DIAGNOSTICS.replace("STEPS", DIAG_STEPS).replace("BASE", base)
}

const STEP_IDS: [&str; 3] = ["note", "shape", "call"];

/// Asserts the journal of a run that keeps everything: each step with its output, `shape`
/// and `call` with their inputs, the log.
fn assert_full(ex: &Value, failed: bool) {
    let steps = ex["steps"].as_array().unwrap();
    let got: Vec<&str> = steps.iter().map(|s| s["stepId"].as_str().unwrap()).collect();
    assert_eq!(got, STEP_IDS, "{ex:#}");
    assert_eq!(steps[1]["input"]["body"]["n"], 1, "{ex:#}");
    assert_eq!(steps[1]["output"], json!({ "n": 1, "fail": failed }), "{ex:#}");
    assert_eq!(steps[2]["input"], json!({ "n": 1, "fail": failed }), "{ex:#}");
    if failed {
        assert_eq!(steps[2]["status"], "failed");
        assert_eq!(steps[2]["error"]["code"], "http_status");
    } else {
        assert_eq!(steps[2]["output"]["status"], 200, "{ex:#}");
    }
    assert_eq!(ex["logs"][0]["message"], "n=1", "{ex:#}");
}

backends!(diagnostics_levels);
/// `diagnostics: full` keeps every step's input and output; `errors` keeps the steps and logs
/// of successful runs without inputs or outputs; `minimal` keeps no steps or
/// logs for successful runs. Failed runs keep everything at every level; the execution's own
/// output is always kept.
async fn diagnostics_levels() {
    let s = TestServer::start().await;
    let target = MockUpstream::with(|r| if r.json()["fail"] == true { reply(500) } else { ok() }).await;
    s.apply(&diagnostics_doc(&target.url)).await;
    let run = |flow: &'static str, fail: bool| {
        let s = &s;
        async move {
            let r = s.run_flow("diag", flow, json!({ "n": 1, "fail": fail })).await;
            assert_eq!(r["status"], if fail { "failed" } else { "succeeded" }, "{r}");
            s.execution(r["executionId"].as_str().unwrap()).await
        }
    };
    for flow in ["full", "errors", "minimal"] {
        assert_full(&run(flow, true).await, true);
    }
    assert_full(&run("full", false).await, false);

    let ex = run("errors", false).await;
    assert_eq!(ex["output"]["status"], 200, "the result is kept: {ex:#}");
    assert_eq!(statuses(&ex), STEP_IDS.iter().map(|id| ((*id).to_owned(), "succeeded".to_owned())).collect::<Vec<_>>());
    for step in ex["steps"].as_array().unwrap() {
        assert_eq!((&step["input"], &step["output"]), (&Value::Null, &Value::Null), "{ex:#}");
    }
    assert_eq!(ex["logs"][0]["message"], "n=1", "logs are kept: {ex:#}");

    let ex = run("minimal", false).await;
    assert_eq!(ex["output"]["status"], 200, "the result is kept: {ex:#}");
    assert_eq!(ex["steps"], json!([]), "{ex:#}");
    assert_eq!(ex["logs"], json!([]), "{ex:#}");
}

backends!(diagnostics_errors_keeps_no_inputs);
/// `diagnostics: errors` keeps successful runs' steps without inputs and outputs: the API,
/// which fills inputs the journal leaves out from the previous output (or the trigger), does
/// not show the trigger as the first step's input of a scrubbed journal.
async fn diagnostics_errors_keeps_no_inputs() {
    let s = TestServer::start().await;
    let target = MockUpstream::with(|_| ok()).await;
    s.apply(&diagnostics_doc(&target.url)).await;
    let r = s.run_flow("diag", "errors", json!({ "n": 1, "fail": false })).await;
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(ex["steps"][0]["input"], Value::Null, "step `note` of an `errors` run shows an input: {ex:#}");
}

// ---------------------------------------------------------------------------------------
// 9. Backpressure
// ---------------------------------------------------------------------------------------

const BACKLOG: &str = r#"
integration: backlog
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: stuck
    concurrency: 1
    trigger: { webhook: { path: backlog/stuck } }
    steps:
      - id: call
        http: { method: POST, url: "{{ $config.base }}/stuck", json: "{{ $trigger.body }}" }
"#;

backends!(backlog_past_the_limit_answers_503);
/// `max_backlog: 5`, measured every 50 ms, and a flow that cannot make progress
/// (`concurrency: 1`, its target holds every request): once more than 5 executions are
/// queued, webhooks get 503 with `Retry-After` and a JSON error; every accepted event still
/// runs once the target lets go, and webhooks are accepted again once the queue drained.
async fn backlog_past_the_limit_answers_503() {
    let s = TestServer::start_with(|st| {
        st.max_backlog = 5;
        st.backlog_every = Duration::from_millis(50);
    })
    .await;
    let target = MockUpstream::with(|_| ok().held()).await;
    s.apply(&BACKLOG.replace("BASE", &target.url)).await;

    let mut accepted = vec![hook(&s, "backlog/stuck", json!({ "n": 0 })).await];
    poll("the first request to be held", Duration::from_secs(5), || async { (target.total_hits() == 1).then_some(()) })
        .await;
    let started = Instant::now();
    let (headers, body) = loop {
        let n = accepted.len();
        let (status, headers, v) = send(s.post_hook("backlog/stuck").json(&json!({ "n": n }))).await;
        match status {
            202 => accepted.push(v["executionId"].as_str().unwrap().to_owned()),
            503 => break (headers, v),
            other => panic!("unexpected {other}: {v}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no 503 after {} accepted", accepted.len());
        // Paces the sends of a loop that polls for the 503 (against the deadline above).
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let refused_after = accepted.len();
    assert!(refused_after > 5, "refused with only {refused_after} accepted");
    assert_error(&body, "unavailable");
    let retry_after = headers.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    assert!(retry_after.as_deref().is_some_and(|v| v.parse::<u64>().is_ok()), "Retry-After: {retry_after:?}");
    // Still refused while nothing drains; the refused ones are not stored.
    let (status, _, _) = send(s.post_hook("backlog/stuck").json(&json!({ "n": -1 }))).await;
    assert_eq!(status, 503);
    assert_eq!(executions(&s, "backlog", "stuck").await.len(), accepted.len());

    target.open_gate();
    let drain = Instant::now();
    for id in &accepted {
        s.wait_for(id, "succeeded").await;
    }
    let drained_in = drain.elapsed();
    assert_eq!(target.total_hits(), accepted.len(), "every accepted event ran exactly once");
    let after = poll("webhooks to be accepted again", Duration::from_secs(5), || async {
        let (status, _, v) = send(s.post_hook("backlog/stuck").json(&json!({ "n": "after" }))).await;
        (status == 202).then(|| v["executionId"].as_str().unwrap().to_owned())
    })
    .await;
    s.wait_for(&after, "succeeded").await;
    eprintln!(
        "[delivery] backpressure: 503 after {refused_after} accepted (max_backlog 5, measured every 50 ms); the \
         {} accepted drained in {drained_in:?}",
        accepted.len()
    );
}

// ---------------------------------------------------------------------------------------
// 10. Total timeout
// ---------------------------------------------------------------------------------------

const TIMEOUTS: &str = r#"
integration: timeouts
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: inline
    timeout: 1s
    trigger: { webhook: { path: timeouts/inline } }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/inline" }
        retry: { attempts: 10, backoff: { initial: 1500ms, max: 1500ms } }
  - flow: once
    timeout: 1s
    trigger: { webhook: { path: timeouts/once } }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/once" }
        retry: { attempts: 1 }
  - flow: parked
    timeout: 1s
    trigger: { webhook: { path: timeouts/parked } }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/parked" }
        retry: { attempts: 10, backoff: { initial: 6s, max: 6s }, jitter: 0 }
"#;

backends!(total_timeout_ends_retrying_execution);
/// `timeout: 1s` on a flow whose step retries a failing target every 1.5 s: the execution
/// fails with `execution_timeout` about a second after its event, before the second attempt.
async fn total_timeout_ends_retrying_execution() {
    let s = TestServer::start().await;
    let target = MockUpstream::with(|_| reply(503)).await;
    s.apply(&TIMEOUTS.replace("BASE", &target.url)).await;
    let started = Instant::now();
    let id = hook(&s, "timeouts/inline", json!({})).await;
    let ex = ended(&s, &id, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert_eq!(ex["status"], "failed", "{ex:#}");
    assert_eq!(ex["error"]["code"], "execution_timeout", "{ex:#}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "ended after {took:?}");
    assert_eq!(target.requests("/inline").len(), 1, "no attempt after the timeout");
    eprintln!("[delivery] timeout 1s with 1.5 s backoff: failed with execution_timeout after {took:?}");
}

backends!(total_timeout_ends_a_parked_execution);
/// `timeout: 1s` on a flow whose step backs off 6 s: a delay longer than the inline maximum
/// (2 s) parks the execution in the queue, but no later than the flow's deadline, so it fails
/// with `execution_timeout` about a second after its event, not after the whole backoff.
async fn total_timeout_ends_a_parked_execution() {
    let s = TestServer::start().await;
    let target = MockUpstream::with(|_| reply(503)).await;
    s.apply(&TIMEOUTS.replace("BASE", &target.url)).await;
    let started = Instant::now();
    let id = hook(&s, "timeouts/parked", json!({})).await;
    let ex = ended(&s, &id, Duration::from_secs(15)).await;
    let took = started.elapsed();
    assert_eq!(ex["status"], "failed", "{ex:#}");
    assert_eq!(ex["error"]["code"], "execution_timeout", "{ex:#}");
    assert!(
        took < Duration::from_secs(3),
        "a flow with timeout 1s ended after {took:?} ({} attempts at the target)",
        target.requests("/parked").len()
    );
}

backends!(total_timeout_counts_from_a_manual_retry);
/// A flow's timeout counts from its event for the first round and from the retry for a manual
/// retry: an execution that failed and is retried long after its timeout runs and succeeds.
/// The server runs on a manual clock, moved past the timeout rather than waited for.
async fn total_timeout_counts_from_a_manual_retry() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let clock = Arc::new(flowgate_engine::ManualClock::new(now));
    let s = TestServer::start_with({
        let clock = clock.clone();
        move |st| st.clock = Some(clock)
    })
    .await;
    let up = Arc::new(AtomicBool::new(false));
    let u = up.clone();
    let target = MockUpstream::with(move |_| if u.load(Ordering::SeqCst) { ok() } else { reply(500) }).await;
    s.apply(&TIMEOUTS.replace("BASE", &target.url)).await;
    let id = hook(&s, "timeouts/once", json!({})).await;
    let ex = s.wait_for(&id, "failed").await;
    assert_eq!(ex["error"]["code"], "http_status", "{ex:#}");
    // The flow's 1 s timeout passes (on the server's clock) since the event.
    clock.advance(Duration::from_millis(1100));
    up.store(true, Ordering::SeqCst);
    let (status, v) = post(&s, &format!("/v1/executions/{id}/retry"), json!({})).await;
    assert_eq!(status, 202, "{v}");
    let ex = ended(&s, &id, Duration::from_secs(10)).await;
    assert_eq!(ex["status"], "succeeded", "retried after the flow's timeout had passed since the event: {ex:#}");
    assert_eq!(target.requests("/once").len(), 2);
}

// ---------------------------------------------------------------------------------------

/// Milliseconds since the epoch of an RFC 3339 UTC time.
fn time_ms(v: &Value) -> i64 {
    let t = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let d = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).expect("RFC 3339");
    (d.unix_timestamp_nanos() / 1_000_000) as i64
}
