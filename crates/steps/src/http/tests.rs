//! Runs the http step against a local server.

use crate::test_support::{self, Ran};
use serde_json::{Value, json};
use std::time::Duration;

async fn serve() -> String {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/json", get(|| async { axum::Json(json!({"ok": true})) }))
        .route(
            "/echo",
            post(|headers: axum::http::HeaderMap, body: String| async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                axum::Json(json!({"key": key, "body": body}))
            }),
        )
        .route(
            "/busy",
            get(|| async { (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], "slow down") }),
        )
        .route("/missing", get(|| async { (axum::http::StatusCode::NOT_FOUND, "nope") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The output of an `http` step with id `call` (its idempotency key is `exec-1:call`).
async fn run(config: Value, input: Value) -> Result<Value, crate::StepError> {
    match test_support::run(json!({"id": "call", "http": config}), input).await.result? {
        Ran::Output(out) => Ok(out),
        other => panic!("an http step outputs a value, got {other:?}"),
    }
}

#[tokio::test]
async fn parses_json_and_sends_idempotency_keys() {
    let base = serve().await;
    let out = run(json!({"url": format!("{base}/json")}), json!(null)).await.unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], json!({"ok": true}));
    assert_eq!(out["headers"]["content-type"], "application/json");
    let out = run(json!({"method": "POST", "url": format!("{base}/echo"), "json": "{{ . }}"}), json!({"a": 1}))
        .await
        .unwrap();
    assert_eq!(out["body"], json!({"key": "exec-1:call", "body": "{\"a\":1}"}));
}

#[tokio::test]
async fn classifies_failures() {
    let base = serve().await;
    let e = run(json!({"url": format!("{base}/busy")}), json!(null)).await.unwrap_err();
    assert!(e.retryable && e.code == "http_status");
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(e.details.unwrap()["body"], "slow down");
    let e = run(json!({"url": format!("{base}/missing")}), json!(null)).await.unwrap_err();
    assert!(!e.retryable, "{e:?}");
    let out = run(json!({"url": format!("{base}/missing"), "success": ["2xx", 404]}), json!(null)).await.unwrap();
    assert_eq!(out["status"], 404);
    let e = run(json!({"url": "http://127.0.0.1:1/x"}), json!(null)).await.unwrap_err();
    assert!(e.retryable && e.code == "http_connect", "{e:?}");
}
