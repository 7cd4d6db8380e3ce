//! Durable timers (issue 18): a `delay` parks its execution without a worker until its time,
//! a restart in between changes nothing, the time is fixed by the first attempt, and a
//! waiting execution can be cancelled. The server runs on a manual clock, moved rather than
//! waited for.

#[macro_use]
mod common;

use common::{TestServer, eventually, send};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NAPS: &str = r#"
integration: naps
flows:
  - flow: remind
    trigger: { manual: {} }
    steps:
      - { id: before, transform: '{ n: .body.n }' }
      - { id: nap, delay: { for: 1h } }
      - { id: after, transform: '{ n: $steps.before.n, woke: $steps.nap.until }' }
  - flow: until
    trigger: { manual: {} }
    steps:
      - { id: nap, delay: { until: '$trigger.body.at' } }
"#;

fn clock() -> Arc<flowgate_engine::ManualClock> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    Arc::new(flowgate_engine::ManualClock::new(now))
}

async fn start(clock: &Arc<flowgate_engine::ManualClock>) -> TestServer {
    let clock = clock.clone();
    TestServer::start_with(move |st| {
        st.clock = Some(clock);
        st.poll_interval = Duration::from_millis(50);
    })
    .await
}

async fn run(s: &TestServer, flow: &str, body: Value) -> String {
    let (status, _, v) = send(
        s.api(reqwest::Method::POST, &format!("/v1/integrations/naps/flows/{flow}/run")).json(&json!({ "body": body })),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    v["executionId"].as_str().unwrap().to_owned()
}

/// `(stepId, status)` of the journal.
fn journal(ex: &Value) -> Vec<(String, String)> {
    ex["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stepId"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

async fn parked(s: &TestServer, id: &str) -> Value {
    eventually("the execution to park", || async {
        let ex = s.execution(id).await;
        (ex["status"] == "queued" && journal(&ex).iter().any(|(st, status)| st == "nap" && status == "waiting"))
            .then_some(ex)
    })
    .await
}

backends!(a_delay_parks_without_a_worker_and_survives_a_restart);
async fn a_delay_parks_without_a_worker_and_survives_a_restart() {
    let clock = clock();
    let s = start(&clock).await;
    s.apply(NAPS).await;
    let started = flowgate_engine::Clock::now_ms(&*clock);
    let id = run(&s, "remind", json!({ "n": 7 })).await;
    let ex = parked(&s, &id).await;
    let waiting = ex["steps"].as_array().unwrap().iter().find(|st| st["status"] == "waiting").unwrap().clone();
    let until = waiting["output"]["untilMs"].as_i64().unwrap();
    assert_eq!(until, started + 3_600_000, "{waiting}");
    // No worker is held while it waits.
    let metrics = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("flowgate_queue_depth{status=\"running\"} 0")), "{metrics}");

    // A restart in between changes nothing: the time is the one recorded, not 1h from now.
    clock.advance(Duration::from_secs(1800));
    let s = s
        .restart({
            let clock = clock.clone();
            move |st| {
                st.clock = Some(clock);
                st.poll_interval = Duration::from_millis(50);
            }
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // not synchronisation: it must not wake early
    assert_eq!(s.execution(&id).await["status"], "queued");
    clock.advance(Duration::from_secs(1801));
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(
        journal(&ex),
        vec![
            ("before".into(), "succeeded".into()),
            ("nap".into(), "waiting".into()),
            ("nap".into(), "succeeded".into()),
            ("after".into(), "succeeded".into())
        ]
    );
    assert_eq!(ex["output"]["n"], 7);
    assert_eq!(ex["output"]["woke"], waiting["output"]["until"]);
}

backends!(a_delay_until_a_time_and_a_cancel_while_waiting);
async fn a_delay_until_a_time_and_a_cancel_while_waiting() {
    let clock = clock();
    let s = start(&clock).await;
    s.apply(NAPS).await;
    let at = flowgate_engine::Clock::now_ms(&*clock) / 1000 * 1000 + 7_200_000;
    let id = run(&s, "until", json!({ "at": flowgate_engine::clock::rfc3339(at) })).await;
    let ex = parked(&s, &id).await;
    assert!(ex.to_string().contains(&format!("\"untilMs\":{at}")), "{ex}");
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{id}/cancel"))).await;
    assert!(status == 200 || status == 202, "{v}");
    let ex = s.wait_for(&id, "cancelled").await;
    clock.advance(Duration::from_secs(7201));
    tokio::time::sleep(Duration::from_millis(300)).await; // not synchronisation: nothing may resume it
    assert_eq!(s.execution(&id).await["status"], "cancelled", "{ex}");
    // A time already past goes on at once.
    let past = flowgate_engine::Clock::now_ms(&*clock) - 1000;
    let id = run(&s, "until", json!({ "at": past as f64 / 1000.0 })).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(journal(&ex), vec![("nap".into(), "succeeded".into())]);
}

const APPROVALS: &str = r#"
integration: approvals
flows:
  - flow: approve
    trigger: { manual: {} }
    steps:
      - { id: link, transform: '{ url: $execution.resumeUrl, order: .body.order }' }
      - { id: answer, wait: { timeout: 2h } }
      - { id: decided, transform: '{ order: $steps.link.order, approved: .approved }' }
"#;

async fn run_approval(s: &TestServer, order: i64) -> (String, String) {
    let (status, _, v) = send(
        s.api(reqwest::Method::POST, "/v1/integrations/approvals/flows/approve/run")
            .json(&json!({ "body": { "order": order } })),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let id = v["executionId"].as_str().unwrap().to_owned();
    let url = eventually("the execution to wait", || async {
        let ex = s.execution(&id).await;
        (ex["status"] == "waiting").then(|| ex["steps"][0]["output"]["url"].as_str().unwrap().to_owned())
    })
    .await;
    (id, url)
}

backends!(a_wait_step_goes_on_with_the_body_of_a_call_to_its_resume_url);
async fn a_wait_step_goes_on_with_the_body_of_a_call_to_its_resume_url() {
    let clock = clock();
    let s = start(&clock).await;
    s.apply(APPROVALS).await;
    let (id, url) = run_approval(&s, 42).await;
    assert!(url.starts_with(&format!("{}/resume/{id}?sig=", s.url)), "{url}");
    // A forged signature is not a resume URL; a body that is not JSON is refused.
    let forged = url.rsplit_once("sig=").unwrap().0.to_owned() + "sig=AAAA";
    let r = s.client.post(&forged).json(&json!({ "approved": true })).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s.client.post(&url).header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The call: the execution goes on with its body.
    let r = s.client.post(&url).json(&json!({ "approved": true, "by": "boss" })).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["output"], json!({ "order": 42, "approved": true }), "{ex}");
    // A second call finds nothing waiting.
    let r = s.client.post(&url).json(&json!({ "approved": false })).send().await.unwrap();
    assert_eq!(r.status(), 409);
}

backends!(a_wait_times_out_and_survives_a_restart);
async fn a_wait_times_out_and_survives_a_restart() {
    let clock = clock();
    let s = start(&clock).await;
    s.apply(APPROVALS).await;
    let (id, url) = run_approval(&s, 7).await;
    let s = s
        .restart({
            let clock = clock.clone();
            move |st| {
                st.clock = Some(clock);
                st.poll_interval = Duration::from_millis(50);
                st.trigger_tick = Duration::from_millis(20);
            }
        })
        .await;
    assert_eq!(s.execution(&id).await["status"], "waiting");
    // After the restart the URL still works (same key, same row): answered here.
    let url_now = url.replacen(url.split("/resume/").next().unwrap(), &s.url, 1);
    let (id2, _) = run_approval(&s, 8).await;
    let r = s.client.post(&url_now).json(&json!({ "approved": true })).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    s.wait_for(&id, "succeeded").await;
    // The other one: nobody calls within its 2 hours.
    clock.advance(Duration::from_secs(2 * 3600 + 1));
    let ex = s.wait_for(&id2, "failed").await;
    assert_eq!(ex["error"]["code"], "wait_timeout", "{ex}");
}
