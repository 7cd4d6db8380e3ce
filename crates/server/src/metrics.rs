//! Prometheus metrics: the process-wide recorder, `/metrics`, and per-route request counts.
//!
//! Labels come from closed sets: the matched route template (never the raw path), the
//! status code, step kinds, execution statuses, and flow slugs.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
                .expect("buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist (tests embedding several servers share this one).
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Metric handles of one route and status, looked up once: building labelled keys on every
/// request costs allocations and hashing on the ingress hot path.
#[derive(Clone)]
struct RouteMetrics {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

type RouteCache = RwLock<HashMap<String, HashMap<u16, RouteMetrics>>>;
static ROUTES: OnceLock<RouteCache> = OnceLock::new();

fn route_metrics(route: &str, status: u16) -> RouteMetrics {
    let cache = ROUTES.get_or_init(Default::default);
    if let Some(m) = cache.read().expect("metrics lock").get(route).and_then(|m| m.get(&status)) {
        return m.clone();
    }
    let m = RouteMetrics {
        requests: metrics::counter!("flowgate_http_requests_total", "route" => route.to_owned(), "status" => status.to_string()),
        duration: metrics::histogram!("flowgate_http_request_duration_seconds", "route" => route.to_owned()),
    };
    cache.write().expect("metrics lock").entry(route.to_owned()).or_default().insert(status, m.clone());
    m
}

/// Counts requests by route and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = route_metrics(route.as_ref().map_or("unmatched", MatchedPath::as_str), resp.status().as_u16());
    m.requests.increment(1);
    m.duration.record(started.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`.
pub async fn render(State(st): State<AppState>) -> Response {
    if let Ok(depth) = st.engine.store().queue_depth().await {
        metrics::gauge!("flowgate_queue_depth", "status" => "queued").set(depth.queued as f64);
        metrics::gauge!("flowgate_queue_depth", "status" => "running").set(depth.running as f64);
    }
    metrics::gauge!("flowgate_executions_in_flight").set(st.engine.running() as f64);
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle().render()).into_response()
}
