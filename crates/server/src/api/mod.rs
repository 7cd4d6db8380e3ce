//! The REST API under `/v1` (DESIGN §5): per-tenant bearer tokens, JSON in and out, errors as
//! `{"error": {"code", "message", "details"}}`.

pub mod connections;
pub mod deployments;
pub mod dry_runs;
pub mod executions;
pub mod integrations;
pub mod outbound;
pub mod tenants;
pub mod tokens;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post, put};

/// The `/v1` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/integrations", get(integrations::list))
        .route("/integrations/{slug}", put(integrations::put).get(integrations::get).delete(integrations::delete))
        .route(
            "/integrations/{slug}/deployment",
            get(deployments::get).put(deployments::put).delete(deployments::delete),
        )
        .route("/integrations/{slug}/versions", get(deployments::list_versions))
        .route("/integrations/{slug}/versions/{n}", get(deployments::get_version))
        .route("/integrations/{slug}/versions/{a}/diff/{b}", get(deployments::diff))
        .route("/integrations/{slug}/versions/{n}/rollback", post(deployments::rollback))
        .route("/integrations/{slug}/test", post(integrations::test))
        .route("/integrations/{slug}/dry-runs", post(dry_runs::start))
        .route("/dry-runs/{id}", get(dry_runs::get))
        .route("/integrations/{slug}/connections", get(connections::list))
        .route("/integrations/{slug}/connections/{name}", get(connections::get))
        .route("/integrations/{slug}/connections/{name}/test", post(connections::test))
        .route("/integrations/{slug}/connections/{name}/authorize", get(connections::authorize))
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route("/deliveries/{id}", get(outbound::get))
        .route("/deliveries/{id}/resend", post(outbound::resend))
        .route("/smtp", get(outbound::get_smtp).put(outbound::put_smtp).delete(outbound::delete_smtp))
        .route("/log-sources", get(outbound::list_sources))
        .route(
            "/log-sources/{name}",
            get(outbound::get_source).put(outbound::put_source).delete(outbound::delete_source),
        )
        .route("/integrations/{slug}/flows/{flow}", get(integrations::flow))
        .route("/integrations/{slug}/flows/{flow}/run", post(integrations::run))
        .route("/integrations/{slug}/flows/{flow}/activate", post(integrations::activate))
        .route("/integrations/{slug}/flows/{flow}/deactivate", post(integrations::deactivate))
        .route(
            "/integrations/{slug}/flows/{flow}/state",
            get(integrations::trigger_state).delete(integrations::reset_trigger_state),
        )
        .route("/validate", post(integrations::validate))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::get))
        .route("/executions/{id}/retry", post(executions::retry))
        .route("/executions/{id}/replay", post(executions::replay))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/executions/{id}/skip", post(executions::skip))
        .route("/executions/{id}/as-test", get(executions::as_test))
        .route("/executions/retry", post(executions::bulk_retry))
        .route("/executions/replay", post(executions::bulk_replay))
        .route("/bulk/{id}", get(executions::bulk_job))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/keys", post(tokens::generate_key))
        .route("/openapi.json", get(crate::openapi::document))
}
