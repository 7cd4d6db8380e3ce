//! Traces (issue 18): with an OTLP endpoint, an execution is one trace — `ingress` (under
//! the caller's span when its webhook sent a W3C `traceparent`), `execution`, a span per
//! step attempt (kind, retry number, outcome) and the `commit` — exported to a collector
//! (an in-process OTLP/HTTP receiver here, reading OTLP/JSON); an `http` step's request
//! carries `traceparent` under its attempt's span; the API shows the trace id. Both backends.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, eventually};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A collector: every span POSTed to `/v1/traces`, flattened.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("OTLP/JSON expected ({e})"));
                for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        kept.lock().unwrap().extend(ss["spans"].as_array().into_iter().flatten().cloned());
                    }
                }
                axum::Json(json!({}))
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

/// A span's attribute, as JSON.
fn attr(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .map(|a| {
            let v = &a["value"];
            v.get("stringValue")
                .cloned()
                .or_else(|| {
                    v.get("intValue").map(|i| json!(i.as_str().and_then(|s| s.parse::<i64>().ok()).or(i.as_i64())))
                })
                .or_else(|| v.get("boolValue").cloned())
                .unwrap_or(Value::Null)
        })
        .unwrap_or(Value::Null)
}

backends!(an_execution_is_one_trace_continuing_the_callers);
async fn an_execution_is_one_trace_continuing_the_callers() {
    let (otlp, spans) = collector().await;
    let up = MockUpstream::start().await;
    up.fail_then("/orders", 1, 503, MockResponse::json(200, json!({ "ok": true })));
    let s = TestServer::start_with(|st| {
        st.otlp_endpoint = Some(otlp.clone());
        st.otlp_json = true;
    })
    .await;
    s.apply(&format!(
        r#"
integration: traced
flows:
  - flow: in
    trigger: {{ webhook: {{ path: traced }} }}
    retry: {{ attempts: 3, backoff: {{ initial: 10ms, max: 10ms }} }}
    steps:
      - {{ id: shape, transform: '{{ n: .body.n }}' }}
      - {{ id: push, http: {{ method: POST, url: "{}/orders", json: "{{{{ . }}}}" }} }}
"#,
        up.url
    ))
    .await;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let r = s
        .post_hook("traced")
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&json!({ "n": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned();
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["traceId"], caller_trace, "the API shows the trace: {ex:#}");

    let names = ["ingress", "execution", "step shape", "step push", "commit"];
    let got = eventually("the trace's spans at the collector", || async {
        let all = spans.lock().unwrap().clone();
        let mine: Vec<Value> = all.into_iter().filter(|s| s["traceId"] == caller_trace).collect();
        let complete = names.iter().all(|n| mine.iter().any(|s| s["name"] == *n))
            && mine.iter().filter(|s| s["name"] == "step push").count() == 2;
        complete.then_some(mine)
    })
    .await;
    let one = |name: &str| got.iter().find(|s| s["name"] == name).unwrap().clone();
    let (ingress, execution, commit) = (one("ingress"), one("execution"), one("commit"));
    assert_eq!(ingress["parentSpanId"], caller_span, "ingress continues the caller's span: {ingress:#}");
    assert_eq!(attr(&ingress, "flowgate.execution.id"), json!(id));
    assert_eq!(execution["parentSpanId"], ingress["spanId"], "{execution:#}");
    assert_eq!(commit["parentSpanId"], execution["spanId"]);
    assert_eq!(attr(&execution, "flowgate.execution.status"), "succeeded");
    let mut pushes: Vec<Value> = got.iter().filter(|s| s["name"] == "step push").cloned().collect();
    pushes.sort_by_key(|s| attr(s, "flowgate.step.attempt").as_i64());
    for (i, p) in pushes.iter().enumerate() {
        assert_eq!(p["parentSpanId"], execution["spanId"]);
        assert_eq!(attr(p, "flowgate.step.kind"), "http");
        assert_eq!(attr(p, "flowgate.step.retry"), json!(i as i64));
    }
    assert_eq!(attr(&pushes[0], "flowgate.step.outcome"), "failed");
    assert_eq!(attr(&pushes[0], "flowgate.error.code"), "http_status");
    assert_eq!(attr(&pushes[1], "flowgate.step.outcome"), "succeeded");
    // The target's request carried the trace, under the attempt that sent it.
    let sent: Vec<String> =
        up.requests("/orders").iter().map(|r| r.header("traceparent").unwrap_or("").to_owned()).collect();
    for (r, p) in sent.iter().zip(&pushes) {
        assert_eq!(r, &format!("00-{caller_trace}-{}-01", p["spanId"].as_str().unwrap()), "{sent:?}");
    }

    // Without a caller's trace, the execution starts one of its own.
    let r = s.post_hook("traced").json(&json!({ "n": 2 })).send().await.unwrap();
    let id = r.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned();
    let ex = s.wait_for(&id, "succeeded").await;
    let trace = ex["traceId"].as_str().unwrap().to_owned();
    assert_eq!(trace.len(), 32);
    assert_ne!(trace, caller_trace);
    eventually("its spans", || async {
        let all = spans.lock().unwrap().clone();
        all.iter()
            .any(|s| {
                s["traceId"] == trace.as_str()
                    && s["name"] == "ingress"
                    && s["parentSpanId"].as_str().unwrap_or("").is_empty()
            })
            .then_some(())
    })
    .await;
}
