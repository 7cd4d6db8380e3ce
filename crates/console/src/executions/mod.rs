//! Executions: the monitor (`list`), its live stream (`stream`), bulk retry and replay of the
//! filtered set (`bulk`), one execution's page (`detail`) and its buttons (`actions`). `row`
//! holds the monitor's filters and renders a monitor row, the same markup for the page and
//! for the stream's updates.

pub(crate) mod actions;
pub(crate) mod bulk;
pub(crate) mod detail;
pub(crate) mod list;
mod row;
pub(crate) mod stream;

use crate::Console;
use axum::Router;
use axum::routing::{get, post};

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/executions", get(list::page))
        .route("/executions/stream", get(stream::stream))
        .route("/executions/bulk", get(bulk::confirm).post(bulk::start))
        .route("/executions/bulk/{job}", get(bulk::job))
        .route("/executions/{id}", get(detail::page))
        .route("/executions/{id}/{action}", post(actions::act))
        .route("/executions/{id}/deliveries/{delivery}/resend", post(actions::resend))
}
