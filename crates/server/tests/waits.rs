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
