//! What operators touch besides flows: API tokens, log sources, the tenant's SMTP settings,
//! and, for the admin token, the tenants page.

use crate::Console;
use axum::Router;

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
}
