//! `/console/executions/stream`: the monitor's live updates as server-sent events.
//!
//! Deliberately simple for this first slice: the server polls the store once a second for
//! the newest [`WINDOW`] executions matching the page's filters (the same query as the
//! monitor and `GET /v1/executions`) and sends every row that is new or whose status or
//! times changed since the last look, as the monitor's own row markup. Executions older
//! than the window are not followed (the page's older rows then update on reload). A row
//! that stops matching the filters (a failed one retried under `status=failed`) is sent as
//! a `gone` event, and the first page takes it away. A
//! notification from the engine's commit path would replace the polling later.
//!
//! The session is checked again on every tick, so a revoked token or an expired session
//! ends the stream; the stream also ends when the server stops.

use super::row::{self, Filters};
use crate::Console;
use crate::session::Session;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

/// How many of the newest executions each look covers.
const WINDOW: u32 = 100;
/// How often the store is looked at.
const TICK: Duration = Duration::from_secs(1);

/// What decides whether a row changed (and its `seq`, to tell a row that left the filters
/// from one that merely fell out of the window).
type Seen = (String, Option<i64>, Option<i64>, i64);

/// How many live streams one tenant may hold open on a node (tabs, screens on a wall), and
/// all tenants together: each looks at the store every second.
const STREAMS_PER_TENANT: usize = 16;
const STREAMS_PER_NODE: usize = 512;

/// The live streams open on this node, by tenant.
#[derive(Default)]
pub(crate) struct OpenStreams(std::sync::Mutex<HashMap<String, usize>>);

/// One open stream, counted until it is dropped (the stream ended or its client left).
struct StreamSlot {
    open: std::sync::Arc<OpenStreams>,
    tenant: String,
}

impl OpenStreams {
    /// A slot for `tenant`'s new stream; `None` when it or the node holds as many as allowed.
    fn take(open: &std::sync::Arc<OpenStreams>, tenant: &str) -> Option<StreamSlot> {
        let mut by_tenant = open.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = by_tenant.values().sum();
        let mine = by_tenant.entry(tenant.to_owned()).or_default();
        if *mine >= STREAMS_PER_TENANT || total >= STREAMS_PER_NODE {
            return None;
        }
        *mine += 1;
        Some(StreamSlot { open: open.clone(), tenant: tenant.to_owned() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut by_tenant = self.open.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = by_tenant.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                by_tenant.remove(&self.tenant);
            }
        }
    }
}

struct Poll {
    _slot: StreamSlot,
    console: Console,
    cookie: String,
    query: flowgate_store::ExecutionQuery,
    seen: HashMap<String, Seen>,
    pending: std::collections::VecDeque<Event>,
    first: bool,
}

impl Poll {
    /// The next event, waiting for changes; `None` when the session ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if !std::mem::take(&mut self.first) {
                tokio::time::sleep(TICK).await;
            }
            Session::check(&self.console, &self.cookie).await?;
            match self.console.engine().store().executions(&self.query).await {
                Ok(rows) => {
                    let mut seen = HashMap::with_capacity(rows.len());
                    // A row seen before and missing now, newer than the window's oldest (or
                    // the window holds everything), no longer matches the filters (a failed
                    // one being retried under `status=failed`): the page takes it away.
                    let full = rows.len() == self.query.limit as usize;
                    let oldest = rows.last().map_or(i64::MIN, |r| r.seq);
                    for (id, (.., seq)) in &self.seen {
                        if (!full || *seq > oldest) && !rows.iter().any(|r| &r.id == id) {
                            let data = serde_json::json!({ "id": id });
                            self.pending.push_back(Event::default().event("gone").data(data.to_string()));
                        }
                    }
                    // Oldest first, so the page inserts new rows in order.
                    for r in rows.iter().rev() {
                        let now: Seen = (r.status.clone(), r.started_at, r.finished_at, r.seq);
                        if self.seen.get(&r.id) != Some(&now) {
                            let data = serde_json::json!({
                                "id": r.id,
                                "seq": r.seq,
                                "status": r.status,
                                "html": row::render(r).into_string(),
                            });
                            self.pending.push_back(Event::default().event("row").data(data.to_string()));
                        }
                        seen.insert(r.id.clone(), now);
                    }
                    self.seen = seen;
                }
                Err(e) => tracing::warn!(error = %e, "Console stream: cannot read executions; trying again."),
            }
        }
    }
}

/// `GET /console/executions/stream?integration=&flow=&status=&triggerKind=&range=&from=&to=&search=`:
/// the monitor's filters, so a row that does not match them never appears live.
pub(crate) async fn stream(State(c): State<Console>, s: Session, Query(f): Query<Filters>) -> Response {
    let f = Filters { cursor: None, ..f };
    // A quick range (`range=1h`) is fixed when the stream opens: what comes later is newer.
    let query = match f.query(&s.tenant, WINDOW, c.engine().clock().now_ms()) {
        Ok(q) => q,
        Err(e) => return (http::StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Some(slot) = OpenStreams::take(&c.streams, &s.tenant) else {
        // The page's script tries again later (EventSource reconnects on its own).
        let mut res = (
            http::StatusCode::TOO_MANY_REQUESTS,
            format!("At most {STREAMS_PER_TENANT} live views per tenant are open at once; close one."),
        )
            .into_response();
        res.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("10"));
        return res;
    };
    let cookie = s.cookie;
    let stopping = c.host.stopping();
    let poll =
        Poll { _slot: slot, console: c, cookie, query, seen: HashMap::new(), pending: Default::default(), first: true };
    let events =
        futures::stream::unfold(poll, |mut p| async move { p.next().await.map(|e| (Ok::<_, Infallible>(e), p)) })
            .take_until(stopping.cancelled_owned());
    // A short keep-alive also finds a client that left soon, and frees its place.
    Sse::new(events).keep_alive(KeepAlive::default().interval(Duration::from_secs(5))).into_response()
}
