//! The ceiling for ingest benchmarks: an axum server whose handler reads the body and answers
//! 202 with a small JSON, storing nothing. `bench/run.sh` measures it in the same run as
//! Flowgate, so the ratio is meaningful on any machine.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".into());
    let app = Router::new().route(
        "/hooks/{tenant}/{*path}",
        post(|body: Bytes| async move {
            let _ = body.len();
            (StatusCode::ACCEPTED, [("content-type", "application/json")], r#"{"executionId":"x"}"#)
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
