//! The HTTP sink against an axum collector: NDJSON bodies, batching, headers, retries of
//! 5xx/429, dropping on 4xx, and a target that never answers.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use common::{event, eventually};
use flowgate_sinks::{Level, Sink, SinkConfig, SinkOptions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// What the collector saw, and how it answers.
#[derive(Default)]
struct Collector {
    /// Every request: headers, body and the status answered.
    requests: Mutex<Vec<(HeaderMap, String, StatusCode)>>,
    /// Answers to give, one per request, then 200.
    script: Mutex<VecDeque<(StatusCode, Option<&'static str>)>>,
}

impl Collector {
    fn accepted_bodies(&self) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|(_, _, s)| s.is_success()).map(|(_, b, _)| b.clone()).collect()
    }

    fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn collect(State(c): State<Arc<Collector>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let (status, retry_after) = c.script.lock().unwrap().pop_front().unwrap_or((StatusCode::OK, None));
    let body = String::from_utf8(body.to_vec()).unwrap();
    c.requests.lock().unwrap().push((headers, body, status));
    let mut answer = HeaderMap::new();
    if let Some(seconds) = retry_after {
        answer.insert("retry-after", seconds.parse().unwrap());
    }
    (status, answer, "collector says no")
}

async fn collector(script: Vec<(StatusCode, Option<&'static str>)>) -> (Arc<Collector>, String) {
    let state = Arc::new(Collector { script: Mutex::new(script.into()), ..Collector::default() });
    let app = Router::new().route("/ingest", post(collect)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest?token=secret-in-query", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

fn http(url: &str, batch_size: usize, flush_ms: u64) -> SinkConfig {
    SinkConfig::Http {
        url: url.into(),
        headers: BTreeMap::from([
            ("Authorization".to_string(), "Bearer t0ken".to_string()),
            ("X-Source".to_string(), "flowgate-test".to_string()),
        ]),
        batch_size: Some(batch_size),
        flush_ms: Some(flush_ms),
    }
}

fn fast_retries() -> SinkOptions {
    SinkOptions { max_retry: Duration::from_millis(20), ..SinkOptions::default() }
}

fn lines(body: &str) -> Vec<Value> {
    assert!(body.ends_with('\n'), "every line ends with a newline");
    body.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
}

#[tokio::test]
async fn posts_ndjson_in_batches_with_the_configured_headers() {
    let (collector, url) = collector(vec![]).await;
    let sink = Sink::start(http(&url, 3, 60_000), SinkOptions::default()).unwrap();
    for i in 0..7 {
        let mut e = event("log", Level::Info, &format!("record {i}"));
        e.fields.insert("i".into(), json!(i));
        sink.send(e);
    }
    assert!(sink.flush(WAIT).await, "{:?}", sink.stats());

    let bodies = collector.accepted_bodies();
    let sizes: Vec<usize> = bodies.iter().map(|b| lines(b).len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let all: Vec<Value> = bodies.iter().flat_map(|b| lines(b)).collect();
    for (i, line) in all.iter().enumerate() {
        assert_eq!(line["message"], format!("record {i}"));
        assert_eq!(line["fields"]["i"], i);
        assert_eq!(line["timestamp"], "2024-05-01T12:00:00.123Z");
        assert_eq!(line["executionId"], "ex-1");
        assert_eq!(line["level"], "info");
    }
    let headers = collector.requests.lock().unwrap()[0].0.clone();
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(headers["authorization"], "Bearer t0ken");
    assert_eq!(headers["x-source"], "flowgate-test");
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped, stats.failed_attempts, stats.queued), (7, 0, 0, 0));
    sink.stop().await;
}

#[tokio::test]
async fn a_partial_batch_goes_after_flush_ms() {
    let (collector, url) = collector(vec![]).await;
    let sink = Sink::start(http(&url, 100, 30), SinkOptions::default()).unwrap();
    sink.send(event("log", Level::Info, "one"));
    sink.send(event("log", Level::Info, "two"));
    assert!(eventually(WAIT, || collector.accepted_bodies().len() == 1).await);
    assert_eq!(lines(&collector.accepted_bodies()[0]).len(), 2);
    sink.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_until_the_batch_arrives_once() {
    let unavailable = (StatusCode::SERVICE_UNAVAILABLE, None);
    let (collector, url) = collector(vec![unavailable, unavailable]).await;
    let sink = Sink::start(http(&url, 10, 60_000), fast_retries()).unwrap();
    for i in 0..4 {
        sink.send(event("log", Level::Info, &format!("r{i}")));
    }
    assert!(sink.flush(WAIT).await, "{:?}", sink.stats());

    assert_eq!(collector.request_count(), 3);
    let bodies = collector.accepted_bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(lines(&bodies[0]).len(), 4);
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped, stats.failed_attempts), (4, 0, 2));
    let error = stats.last_error.unwrap();
    assert!(error.contains("503"), "{error}");
    assert!(!error.contains("secret-in-query"), "the query may hold a key: {error}");
    assert!(stats.last_error_at_ms.is_some());
    sink.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (collector, url) = collector(vec![(StatusCode::TOO_MANY_REQUESTS, Some("1"))]).await;
    let sink = Sink::start(http(&url, 10, 60_000), fast_retries()).unwrap();
    let started = Instant::now();
    sink.send(event("log", Level::Info, "slow down"));
    assert!(sink.flush(WAIT).await);
    assert!(started.elapsed() >= Duration::from_millis(950), "waited {:?}", started.elapsed());
    assert_eq!(collector.accepted_bodies().len(), 1);
    assert_eq!(sink.stats().failed_attempts, 1);
    sink.stop().await;
}

#[tokio::test]
async fn a_refused_batch_is_dropped() {
    let (collector, url) = collector(vec![(StatusCode::BAD_REQUEST, None)]).await;
    let sink = Sink::start(http(&url, 2, 60_000), fast_retries()).unwrap();
    for i in 0..3 {
        sink.send(event("log", Level::Info, &format!("r{i}")));
    }
    assert!(sink.flush(WAIT).await);

    assert_eq!(collector.request_count(), 2, "the refused batch is not retried");
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped, stats.failed_attempts), (1, 2, 0));
    let error = stats.last_error.unwrap();
    assert!(error.contains("400") && error.contains("collector says no"), "{error}");
    sink.stop().await;
}

#[tokio::test]
async fn a_target_that_never_answers_never_slows_the_caller() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let options = SinkOptions { queue: 5, ..SinkOptions::default() };
    let sink = Sink::start(http(&url, 100, 1), options).unwrap();
    let observer = sink.clone();

    let started = Instant::now();
    for i in 0..100 {
        sink.send(event("log", Level::Info, &format!("r{i}")));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "sending took {took:?}");
    let stats = sink.stats();
    assert!(stats.dropped >= 95, "{stats:?}");
    assert_eq!(stats.dropped + stats.queued, 100);

    // Stopping gives up on what is stuck, quickly, and accounts for every record.
    let started = Instant::now();
    sink.stop_within(Duration::from_millis(50)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let stats = observer.stats();
    assert_eq!((stats.sent, stats.dropped, stats.queued), (0, 100, 0), "{stats:?}");
    observer.send(event("log", Level::Info, "after stop"));
    assert_eq!(observer.stats().dropped, 101, "a stopped sink drops and counts");
}

#[tokio::test]
async fn an_unreachable_target_is_retried_with_backoff() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    drop(listener);
    let sink = Sink::start(http(&url, 10, 1), fast_retries()).unwrap();
    sink.send(event("log", Level::Info, "nobody home"));
    assert!(eventually(WAIT, || sink.stats().failed_attempts >= 3).await);
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped, stats.queued), (0, 0, 1));
    assert!(stats.last_error.unwrap().contains("sending to the HTTP collector http://"));
    assert!(!sink.flush(Duration::from_millis(30)).await, "flush reports the timeout");
    sink.stop_within(Duration::ZERO).await;
}

#[tokio::test]
async fn a_guard_keeps_deliveries_off_refused_addresses() {
    let (collector, url) = collector(vec![]).await;
    // By name (`localhost`), so the check is on what the name resolves to.
    let url = url.replace("127.0.0.1", "localhost");
    let refuse_loopback: flowgate_sinks::AddressGuard = Arc::new(|_, ip| !ip.is_loopback());
    let options = SinkOptions { guard: Some(refuse_loopback), ..fast_retries() };
    let sink = Sink::start(http(&url, 1, 10), options).unwrap();
    sink.send(event("log", Level::Info, "kept out"));
    assert!(eventually(WAIT, || sink.stats().failed_attempts >= 2).await, "{:?}", sink.stats());
    let stats = sink.stats();
    assert!(stats.last_error.as_deref().unwrap_or("").contains("refused"), "{stats:?}");
    assert_eq!(collector.request_count(), 0, "nothing reached the collector");
    sink.stop().await;

    // The same guard allowing the address: delivered.
    let allow_all: flowgate_sinks::AddressGuard = Arc::new(|_, _| true);
    let sink = Sink::start(http(&url, 1, 10), SinkOptions { guard: Some(allow_all), ..fast_retries() }).unwrap();
    sink.send(event("log", Level::Info, "let in"));
    assert!(sink.flush(WAIT).await, "{:?}", sink.stats());
    assert_eq!(collector.accepted_bodies().len(), 1);
    sink.stop().await;
}
