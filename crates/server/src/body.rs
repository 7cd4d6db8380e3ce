//! Reading request bodies: a size limit, a total deadline, and the node's memory budget
//! (issue 12).
//!
//! A body is read chunk by chunk. Its declared length is refused at once when over the limit;
//! for webhooks, the node's memory budget for events in flight is reserved as the bytes
//! arrive (a chunked body without a length cannot slip past it), then grown to what its tree
//! will cost (`json_tree_bytes`), and the reservation travels with the event until its
//! execution ends. The whole body must arrive within the body
//! timeout, not just each chunk: a client trickling a byte a minute is cut off.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use bytes::BytesMut;
use flowgate_engine::budget::Reservation;
use futures::StreamExt;
use serde_json::json;
use std::time::Duration;

/// How much more of the budget a growing body takes at a time.
const GROW_STEP: usize = 256 * 1024;

/// A body read whole, with its share of the memory budget when one was taken.
pub struct ReadBody {
    /// The bytes.
    pub bytes: Bytes,
    /// Its share of the memory budget (webhooks).
    pub reservation: Option<Reservation>,
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is larger than {limit} bytes"))
        .details(json!({ "limit": limit }))
}

fn busy() -> ApiError {
    metrics::counter!("flowgate_memory_budget_refusals_total").increment(1);
    ApiError::unavailable("too many large requests are being processed; try again shortly")
}

/// Reads `body` (at most `limit` bytes, within the body timeout); with `budget`, reserving
/// its bytes in the node's memory budget as they arrive.
///
/// # Errors
/// 413 over the limit, 408 too slow, 503 no room in the budget, 400 a broken body.
pub async fn read(st: &AppState, body: Body, headers: &HeaderMap, limit: usize, budget: bool) -> ApiResult<ReadBody> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let timeout = st.settings.connections.body_timeout;
    let reservation = match budget {
        true => match st.engine.reserve(declared.unwrap_or(0)).await {
            Some(r) => Some(r),
            None => {
                // Read the body to the end without keeping it, so the caller (mid-send) reads
                // our answer instead of a reset connection; it costs no memory.
                discard(body, limit, timeout).await;
                return Err(busy());
            }
        },
        false => None,
    };
    let mut reserved = declared.unwrap_or(0);
    let read = async {
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if is_timeout(&e) {
                    slow(timeout)
                } else {
                    ApiError::bad_request(format!("the body could not be read: {e}"))
                }
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            if let Some(r) = &reservation
                && buf.len() + chunk.len() > reserved
            {
                let more = (buf.len() + chunk.len() - reserved).max(GROW_STEP);
                if !st.engine.grow(r, more).await {
                    drop(buf);
                    discard(axum::body::Body::from_stream(stream), limit, timeout).await;
                    return Err(busy());
                }
                reserved += more;
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    let bytes = tokio::time::timeout(timeout, read).await.map_err(|_| slow(timeout))??;
    if let Some(r) = &reservation {
        // What the body will cost once it is a tree (the budget is memory, not bytes): a
        // JSON array of small numbers costs 20 times its size.
        let tree = flowgate_expr::value::json_tree_bytes(&bytes);
        if tree > reserved && !st.engine.grow(r, tree - reserved).await {
            return Err(busy());
        }
    }
    Ok(ReadBody { bytes, reservation })
}

/// Reads and drops up to `limit` bytes of `body`, within `timeout`.
async fn discard(body: Body, limit: usize, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        let mut seen = 0;
        let mut stream = body.into_data_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > limit {
                break;
            }
        }
    })
    .await;
}

fn slow(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!("the body did not arrive within {} s", timeout.as_secs_f64()),
    )
}

fn is_timeout(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = s.source();
    }
    false
}
