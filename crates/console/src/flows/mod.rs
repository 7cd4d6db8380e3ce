//! The flow page in two panels as users know them: *General* (trigger, webhook URL, schedule,
//! connections, notifications, last execution) and *Steps* (the pipeline drawn top to bottom).

use crate::Console;
use axum::Router;

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
}
