//! The store's SQL written once for both backends, one module per area.
//!
//! Each statement uses PostgreSQL's `$n` placeholders, numbered in order of first
//! appearance: SQLite reads `$1` as a named parameter and numbers named parameters by first
//! appearance, so the same text binds the same way on both (`tests/placeholders.rs`). The
//! methods are expanded into each backend's `impl Store` by [`store_impl!`], with the
//! pool it reads from and the pool it writes with (SQLite has a reader pool and a single
//! writer; PostgreSQL one pool): sqlx infers the database from the pool, so the same tokens
//! compile for both, at no cost at run time. What differs — connection set-up, claims,
//! commits, notifications, the leader lock, upserts with dialect-specific SQL — stays in
//! `sqlite/` and `postgres/`.

pub(crate) mod batch;
pub(crate) mod claims;
pub(crate) mod connections;
pub(crate) mod dashboard;
pub(crate) mod deliveries;
pub(crate) mod dry_runs;
pub(crate) mod executions;
pub(crate) mod integrations;
pub(crate) mod limits;
pub(crate) mod tenants;
pub(crate) mod triggers;

/// The queued executions without order or cap, spelled as the partial index
/// `executions_pending_free` says (a planner uses a partial index only for its own condition).
pub(crate) const QUEUED_FREE: &str = "status = 'queued' AND order_key IS NULL AND max_running IS NULL";
/// The other queued executions, as `executions_pending_gated` says; with [`QUEUED_FREE`], all.
pub(crate) const QUEUED_GATED: &str = "status = 'queued' AND (order_key IS NOT NULL OR max_running IS NOT NULL)";

/// Columns of [`Claimed`](crate::Claimed).
pub(crate) const CLAIMED_COLUMNS: &str = "seq, id, tenant_id, integration, flow, version_id, trigger_kind, trigger, auth_label, \
     attempt, created_at, replay_of, crashes, cancel_requested, traceparent";

/// Columns of [`ExecutionRow`](crate::ExecutionRow), with the version number joined in.
pub(crate) const EXECUTION_COLUMNS: &str = "e.seq, e.id, e.tenant_id, e.integration, e.flow, e.version_id, v.version, e.status, \
     e.trigger_kind, e.trigger, e.auth_label, e.attempt, e.run_after, e.created_at, e.started_at, e.finished_at, \
     e.output, e.response, e.error, e.failed_step, e.replay_of, e.cancel_requested, e.order_key, e.holds_order, \
     e.parent_id, e.crashes, e.traceparent";
/// Columns of [`ExecutionRow`](crate::ExecutionRow) in listings: without the event and the
/// result, which may be megabytes each (a page of them would be hundreds).
pub(crate) const LISTING_COLUMNS: &str = "e.seq, e.id, e.tenant_id, e.integration, e.flow, e.version_id, v.version, e.status, \
     e.trigger_kind, '' AS trigger, e.auth_label, e.attempt, e.run_after, e.created_at, e.started_at, e.finished_at, \
     NULL AS output, NULL AS response, e.error, e.failed_step, e.replay_of, e.cancel_requested, e.order_key, e.holds_order, \
     e.parent_id, e.crashes, e.traceparent";
/// Columns of [`VersionRecord`](crate::VersionRecord).
pub(crate) const VERSION_COLUMNS: &str =
    "v.id, v.tenant_id, v.slug, v.version, v.hash, v.format, v.source, v.document, v.created_at, v.secrets";

/// A unique-key violation as a conflict with `message`; any other error as it is.
pub(crate) fn conflict_on_unique(e: sqlx::Error, message: impl FnOnce() -> String) -> crate::Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => crate::Error::Conflict(message()),
        _ => crate::Error::Backend(e),
    }
}

/// `impl Store for $ty`: the backend's own methods (after the `;`) and every area's. `db` is
/// the sqlx database, `read` and `write` name the backend's pool fields. Also expands the
/// shared free functions (the batch's statements, execution filters) in the backend's module.
macro_rules! store_impl {
    ($ty:ty, db: $db:ty, read: $read:ident, write: $write:ident; $($own:tt)*) => {
        $crate::shared::batch::batch_statements!($db);
        $crate::shared::executions::functions!($db);
        $crate::shared::claims::functions!($db);
        $crate::shared::chain! {
            [tenants, integrations, executions, batch, deliveries, triggers, limits, connections, dashboard, dry_runs]
            ($ty, $db, $read, $write) { $($own)* }
        }
    };
}

/// Builds the `impl Store` area by area: each area's `methods!` appends its methods and
/// passes the list on; the last step emits the block. The block goes through `async_trait`
/// only once whole (an attribute sees macro calls unexpanded), so every method gets the
/// trait's signature.
macro_rules! chain {
    ([] ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Store for $ty {
            $($acc)*
        }
    };
    ([$next:ident $(, $rest:ident)*] $ctx:tt { $($acc:tt)* }) => {
        $crate::shared::$next::methods! { [$($rest),*] $ctx { $($acc)* } }
    };
}

pub(crate) use {chain, store_impl};
