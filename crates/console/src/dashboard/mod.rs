//! The dashboard: executions per minute by status, durations per flow, the queue, failures by
//! error code, deliveries pending; each from an indexed query.

use crate::Console;
use axum::Router;

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
}
