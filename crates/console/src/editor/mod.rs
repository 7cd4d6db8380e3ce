//! The YAML editor of an integration (inline validation at line and column, Apply as a new
//! version) and *Try it* (run a flow as a test run and watch its steps).

use crate::Console;
use axum::Router;

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
}
