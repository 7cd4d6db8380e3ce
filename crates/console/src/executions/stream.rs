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

struct Poll {
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
    let cookie = s.cookie;
    let stopping = c.host.stopping();
    let poll = Poll { console: c, cookie, query, seen: HashMap::new(), pending: Default::default(), first: true };
    let events =
        futures::stream::unfold(poll, |mut p| async move { p.next().await.map(|e| (Ok::<_, Infallible>(e), p)) })
            .take_until(stopping.cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
