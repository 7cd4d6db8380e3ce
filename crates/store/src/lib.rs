//! Flowgate's durable store: tenants and tokens, integration versions, deployments, the
//! execution queue with its step journal, outbound deliveries, trigger state, rate limits.
//!
//! Everything acknowledged to a caller is committed here first. Writes from ingress and
//! from the executor arrive as [`WriteBatch`]es so that one transaction (one fsync) carries
//! many of them (group commit). Workers claim executions with a lease (owner + expiry); a
//! worker that dies loses its lease and another claims the execution, which resumes from its
//! journal.
//!
//! The [`Store`] trait is the only way the engine and the server reach the database; it has
//! two backends, [`sqlite`] and [`postgres`], held to the same conformance suite
//! (`tests/conformance.rs`). No SQL outside this crate.
//!
//! # Layout
//! - [`types`]: the records read and written (`outbound` messages and log sources, the
//!   `queue`'s claims and depths, the rest in `types/mod.rs`), and the `keys` that name a
//!   flow or an integration by named fields ([`FlowKey`], [`IntegrationKey`]).
//! - `shared`: the SQL, written once for both backends (`$n` placeholders bind alike on
//!   SQLite), one module per area — `tenants` (settings, tenants, tokens, re-sealing),
//!   `integrations` (versions, routes, deployments, flow switches), `executions` (reads,
//!   bulk jobs, retention), `batch` (the group commit), `deliveries` (outbound messages, log
//!   sources), `triggers` (trigger state, ingress identities), `limits` (rate limits). The
//!   areas' methods are chained into each backend's `impl Store` by `store_impl!`.
//! - [`sqlite`]: the embedded backend (WAL, one writer connection, readers beside it) and
//!   what only it does: claims by the single writer, leases, in-process events.
//! - [`postgres`]: the backend for clusters: `FOR UPDATE SKIP LOCKED` claims, `LISTEN/NOTIFY`
//!   events, an advisory lock for the leader, schema selection.
//! - `nul`: text PostgreSQL cannot hold (NUL characters), kept out of its statements.
//!
//! The few places where the dialects spell SQL differently are named constants and small
//! functions in each backend (`GREATEST`/`MAX`, `ctid`/`rowid`, row locks, `= ANY($n)`/`IN
//! (…)`, advisory locks), used by the shared SQL at compile time.

#![warn(missing_docs)]

pub mod dashboard;
pub mod dry_runs;
mod nul;
pub mod postgres;
mod shared;
pub mod sqlite;
pub mod types;

pub use types::*;

use async_trait::async_trait;
use std::sync::Arc;

/// What went wrong in the store, stated as the caller's decision.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The change conflicts with the stored state (a taken webhook path, a wrong status…).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Backend(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL or settings are wrong.
    #[error("{0}")]
    Config(String),
}

/// Results of store calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The store shared by every part of a node.
pub type SharedStore = Arc<dyn Store>;

/// Everything Flowgate keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// Closes the connections (at shutdown).
    async fn close(&self);

    /// True when several nodes may share this store (leases may be held by live nodes, events
    /// must be broadcast); false for a store one process owns (SQLite, behind a file lock).
    fn shared(&self) -> bool;
    /// Events from the other nodes, if there can be any.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<StoreEvent>>;
    /// Sends events to the other nodes now (outside a write batch).
    async fn notify(&self, events: &[StoreEvent]) -> Result<()>;
    /// Whether this process is the leader (the one node that runs leader-only work): takes the
    /// leadership when it is free, and says so while it holds it. Always true for a store one
    /// process owns.
    async fn lead(&self) -> Result<bool>;
    /// Puts running executions whose lease expired back in the queue (leader work): their
    /// node died (or stalled) under them. Each counts as a crash (`crashes`); the count starts
    /// again at 1 when the execution made progress (wrote journal entries) since its last one,
    /// so the engine can stop resuming an execution that kills every node that runs it.
    async fn reap_expired(&self, now: i64) -> Result<u64>;

    /// Reads a server-wide setting.
    async fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` under `key` unless a value is there; returns the stored value.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String>;

    /// Creates a tenant; false if it exists.
    async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<bool>;
    /// Lists tenants.
    async fn tenants(&self) -> Result<Vec<Tenant>>;

    /// Stores a new API token (hashed).
    async fn create_token(&self, token: &NewToken) -> Result<()>;
    /// The unrevoked token with this hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenInfo>>;
    /// A tenant's tokens, revoked ones included.
    async fn tokens(&self, tenant: &str) -> Result<Vec<TokenInfo>>;
    /// Revokes a token; false if there is no such unrevoked token.
    async fn revoke_token(&self, tenant: &str, id: &str, now: i64) -> Result<bool>;

    /// Stores a new version of an integration (unless its hash equals the current one's) and
    /// makes it current, replacing its webhook routes. A path another integration of the
    /// tenant holds is a [`Error::Conflict`].
    async fn put_integration(&self, new: &NewVersion) -> Result<PutOutcome>;
    /// The current version of an integration.
    async fn integration(&self, tenant: &str, slug: &str) -> Result<Option<VersionRecord>>;
    /// The current versions of a tenant's integrations.
    async fn integrations(&self, tenant: &str) -> Result<Vec<VersionRecord>>;
    /// The current versions of every tenant's integrations (to load routes at start).
    async fn all_integrations(&self) -> Result<Vec<VersionRecord>>;
    /// A version by id.
    async fn version(&self, id: i64) -> Result<Option<VersionRecord>>;
    /// Deletes an integration (its versions stay for executions that ran on them).
    async fn delete_integration(&self, tenant: &str, slug: &str) -> Result<bool>;

    /// The deployment of an integration.
    async fn deployment(&self, key: IntegrationKey<'_>) -> Result<Option<Deployment>>;
    /// Every deployment (to compile every integration at start).
    async fn deployments(&self) -> Result<Vec<Deployment>>;
    /// Creates or replaces a deployment.
    async fn put_deployment(&self, d: &Deployment) -> Result<()>;
    /// Every version of an integration, newest first.
    async fn versions(&self, tenant: &str, slug: &str) -> Result<Vec<VersionRecord>>;
    /// The executions the `call` steps of `parent` started, oldest first.
    async fn children(&self, tenant: &str, parent: &str) -> Result<Vec<ExecutionRow>>;
    /// Writes a server-wide setting.
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Re-seals every sealed text (deployment configs, version secrets) in one transaction:
    /// `reseal` gets each and returns its new text; an error leaves everything as it was.
    async fn reseal_all(
        &self,
        reseal: &(dyn for<'s> Fn(Sealed<'s>) -> std::result::Result<String, String> + Send + Sync),
    ) -> Result<u64>;

    /// Claims up to `limit` pending deliveries that are due: their next attempt moves `lease`
    /// ms on, so a node that dies mid-send leaves them to be tried again.
    async fn due_deliveries(&self, now: i64, lease: i64, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// Records an attempt and the delivery's new state; when it ended (delivered or failed)
    /// and an execution waits for it, queues that execution again and returns its id.
    async fn finish_attempt(&self, id: &str, outcome: &AttemptOutcome, now: i64) -> Result<Option<String>>;
    /// Like `finish_attempt`, for a delivery still pending only: `None` when it had ended
    /// (nothing recorded), else the execution queued again, if any.
    async fn finish_attempt_if_pending(
        &self,
        id: &str,
        outcome: &AttemptOutcome,
        now: i64,
    ) -> Result<Option<Option<String>>>;
    /// Parks execution `execution` (leased to `owner`) in `waiting` until delivery `delivery`
    /// ends — unless it already ended: then nothing changes and it returns false.
    async fn wait_for_delivery(&self, execution: &str, owner: &str, delivery: &str) -> Result<bool>;
    /// How many deliveries of `kind` a flow had delivered since `since` (rate limits);
    /// recovery notifications (ids ending `:recovered`) do not count.
    async fn count_deliveries(&self, key: FlowKey<'_>, kind: &str, since: i64) -> Result<i64>;
    /// A delivery.
    async fn delivery(&self, tenant: &str, id: &str) -> Result<Option<DeliveryRecord>>;
    /// An execution's deliveries, oldest first.
    async fn deliveries_of(&self, execution: &str) -> Result<Vec<DeliveryRecord>>;
    /// A delivery's attempts, in order.
    async fn delivery_attempts(&self, id: &str) -> Result<Vec<DeliveryAttempt>>;
    /// Sends a delivered or failed delivery again (same message id): pending, due now.
    async fn resend_delivery(&self, tenant: &str, id: &str, now: i64) -> Result<DeliveryRecord>;
    /// Creates or replaces a log source.
    async fn put_log_source(&self, source: &LogSourceRecord) -> Result<()>;
    /// A tenant's log sources.
    async fn log_sources(&self, tenant: &str) -> Result<Vec<LogSourceRecord>>;
    /// Every log source (to start their sinks).
    async fn all_log_sources(&self) -> Result<Vec<LogSourceRecord>>;
    /// Deletes a log source; false if none.
    async fn delete_log_source(&self, tenant: &str, name: &str) -> Result<bool>;

    /// The state a schedule or poll flow keeps.
    async fn trigger_state(&self, key: FlowKey<'_>) -> Result<Option<TriggerState>>;
    /// Forgets a flow's trigger state (a poll starts over as on its first run); false if none.
    async fn delete_trigger_state(&self, key: FlowKey<'_>) -> Result<bool>;
    /// Every flow switched on or off through the API.
    async fn flow_switches(&self) -> Result<Vec<FlowSwitch>>;
    /// Switches a flow on or off (it wins over the document's `active`).
    async fn set_flow_active(&self, key: FlowKey<'_>, active: bool, now: i64) -> Result<()>;

    /// Commits a batch of writes in one transaction. New executions whose delivery identity
    /// was seen within its window are not inserted; the outcome names their first execution.
    async fn commit(&self, batch: &WriteBatch) -> Result<CommitOutcome>;
    /// Claims up to `limit` queued executions that are due, for `owner`: they become
    /// `running`, leased until `until`. An execution of an ordered group is claimed only when
    /// no earlier one holds its group; a flow's concurrency cap counts its running executions
    /// on every node. Expired leases come back through `reap_expired`.
    async fn claim(&self, owner: &str, now: i64, until: i64, limit: usize) -> Result<Vec<Claimed>> {
        self.claim_in(owner, now, until, limit, &ClaimFilter::default()).await
    }
    /// Like [`Store::claim`], among the executions `filter` admits: a lane of crash counts
    /// (the engine resumes executions that were running when a node died apart from other
    /// work, a few at a time), and not those of tenants or flows that already hold their
    /// share of this node's workers.
    async fn claim_in(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        limit: usize,
        filter: &ClaimFilter,
    ) -> Result<Vec<Claimed>>;
    /// Lets the next execution of a blocked order group run: the failed execution `id` stops
    /// holding its group.
    async fn skip_execution(&self, tenant: &str, id: &str) -> Result<ExecutionRow>;
    /// Failed executions that hold their order group (the keys are blocked), oldest first.
    async fn blocked(&self, key: FlowKey<'_>) -> Result<Vec<ExecutionRow>>;
    /// The first execution of a delivery identity still in its window.
    async fn dedup_lookup(&self, flow: FlowKey<'_>, key: &str, now: i64) -> Result<Option<String>>;
    /// Takes a token from a shared token bucket (`per_second`, `burst`); `Some(ms)` says how
    /// long to wait before trying again.
    async fn take_token(
        &self,
        integration: IntegrationKey<'_>,
        name: &str,
        per_second: f64,
        burst: u32,
        now: i64,
    ) -> Result<Option<i64>>;
    /// Empties a bucket and refuses tokens until `until` (a target said `Retry-After`).
    async fn pause_limit(&self, integration: IntegrationKey<'_>, name: &str, until: i64) -> Result<()>;

    /// A connection's stored tokens and status.
    async fn connection_tokens(&self, key: ConnectionKey<'_>) -> Result<Option<ConnectionTokens>>;
    /// Every stored connection of an integration.
    async fn list_connection_tokens(&self, integration: IntegrationKey<'_>) -> Result<Vec<ConnectionTokens>>;
    /// Takes the one refresh of a connection for `owner` until `until` (the row is created
    /// when missing): the row as it stands, or `None` while another owner's lease holds.
    async fn lease_connection_refresh(
        &self,
        key: ConnectionKey<'_>,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<ConnectionTokens>>;
    /// Stores tokens obtained under `owner`'s lease, in one statement with the lease's end
    /// (a rotated refresh token is never stored apart from its access token): the new
    /// version, or `None` when the lease was lost.
    async fn store_connection_tokens(
        &self,
        key: ConnectionKey<'_>,
        owner: &str,
        tokens: NewTokens<'_>,
    ) -> Result<Option<i64>>;
    /// Records an authorization in flight (and forgets expired ones).
    async fn put_oauth_state(&self, state: &OAuthState, now: i64) -> Result<()>;
    /// Takes an authorization in flight by its state's hash, once: `None` when unknown, used
    /// or expired.
    async fn take_oauth_state(&self, state_hash: &str, now: i64) -> Result<Option<OAuthState>>;
    /// Ends `owner`'s lease without tokens, setting the status (`needs_reconnect`, `error`)
    /// and its message.
    async fn end_connection_refresh(
        &self,
        key: ConnectionKey<'_>,
        owner: &str,
        status: &str,
        message: &str,
        now: i64,
    ) -> Result<()>;
    /// How many executions match, and the greatest `seq` among them (0 if none).
    async fn count_executions(&self, filter: &ExecutionFilter) -> Result<(i64, i64)>;
    /// Ids of matching executions in commit order, after `after_seq`: (seq, id).
    async fn execution_ids(&self, filter: &ExecutionFilter, after_seq: i64, limit: u32) -> Result<Vec<(i64, String)>>;
    /// Records a new bulk job.
    async fn create_bulk_job(&self, job: &BulkJob) -> Result<()>;
    /// Records a bulk job's progress.
    async fn update_bulk_job(&self, id: &str, done: i64, failed: i64, finished_at: Option<i64>) -> Result<()>;
    /// A bulk job.
    async fn bulk_job(&self, tenant: &str, id: &str) -> Result<Option<BulkJob>>;
    /// Deletes up to `batch` finished executions (with their journal and logs) that are older
    /// than `older_than` or beyond the newest `keep` of their scope; returns how many.
    async fn prune(&self, scope: &PruneScope, older_than: Option<i64>, keep: Option<u64>, batch: u32) -> Result<u64>;
    /// Forgets up to `batch` expired delivery identities.
    async fn purge_dedup(&self, now: i64, batch: u32) -> Result<u64>;
    /// Extends the leases of the executions `owner` runs now (`ids`); one it holds but no
    /// longer runs (a lost commit, a worker gone) is left to expire and be resumed.
    async fn renew_leases(&self, owner: &str, ids: &[String], until: i64) -> Result<u64>;
    /// Gives back every execution `owner` holds (graceful shutdown): they become queued.
    async fn release_leases(&self, owner: &str, now: i64) -> Result<u64>;
    /// Puts one execution this owner holds but no longer runs back in the queue (its
    /// journal could not be written, or its insert's outcome was unknown): not a crash, so
    /// not counted as one. False when the owner no longer holds it.
    async fn release_lease(&self, owner: &str, id: &str) -> Result<bool>;
    /// Makes every running execution claimable at once. Only for a store that just proved
    /// it is the sole user (SQLite's file lock): after a crash nobody else holds leases —
    /// connections' refresh leases included.
    async fn expire_all_leases(&self) -> Result<u64>;
    /// When the earliest queued execution becomes due, if any.
    async fn next_due(&self) -> Result<Option<i64>>;
    /// Queued and running executions.
    async fn queue_depth(&self) -> Result<QueueDepth>;

    /// The journal of an execution, in order.
    async fn journal(&self, execution: &str) -> Result<Vec<StepRecord>>;
    /// The log lines of an execution, in order.
    async fn logs(&self, execution: &str) -> Result<Vec<LogRecord>>;
    /// An execution; `tenant` restricts the lookup.
    async fn execution(&self, tenant: Option<&str>, id: &str) -> Result<Option<ExecutionRow>>;
    /// A page of executions, newest first, without their payloads: `trigger` is empty,
    /// `output` and `response` are `None` (use [`Store::execution`] for those).
    async fn executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionRow>>;
    /// Queues a failed or cancelled execution again, in a new round, resuming from its
    /// journal. Returns the updated row.
    async fn retry_execution(&self, tenant: &str, id: &str, now: i64) -> Result<ExecutionRow>;
    /// Cancels a queued execution at once, or asks a running one to stop at its next step.
    async fn cancel_execution(&self, tenant: &str, id: &str, now: i64) -> Result<ExecutionRow>;
    /// True when a cancel was requested for this running execution.
    async fn cancel_requested(&self, id: &str) -> Result<bool>;
    /// The latest finished execution of a flow.
    async fn last_run(&self, key: FlowKey<'_>) -> Result<Option<ExecutionRow>>;

    /// One tenant's figures for the console's dashboard over a time range (executions by
    /// bucket and status, durations per flow, failures by code, the queue, pending
    /// deliveries), each from an index-served query (`shared/dashboard.rs`).
    async fn dashboard(&self, query: &dashboard::DashboardQuery) -> Result<dashboard::Dashboard>;

    /// Recorded executions of `tenant` with their journals (those of `ids` that exist there),
    /// in the order of `ids`: what a dry run re-runs, read in one round trip per table.
    async fn recordings(&self, tenant: &str, ids: &[String]) -> Result<Vec<dry_runs::Recording>>;
    /// Records a new dry run.
    async fn create_dry_run(&self, run: &dry_runs::DryRun) -> Result<()>;
    /// Records a page of a dry run's results and its progress (at `at`), in one transaction.
    async fn add_dry_run_results(
        &self,
        id: &str,
        results: &[dry_runs::DryRunResult],
        counts: dry_runs::DryRunCounts,
        at: i64,
    ) -> Result<()>;
    /// Ends a dry run with `status` (`done`, `failed`, `interrupted`) and, when it failed, why.
    async fn finish_dry_run(&self, id: &str, status: &str, error: Option<&str>, at: i64) -> Result<()>;
    /// A dry run of `tenant`.
    async fn dry_run(&self, tenant: &str, id: &str) -> Result<Option<dry_runs::DryRun>>;
    /// A page of a dry run's results after `after` (its `n`), optionally of one outcome.
    async fn dry_run_results(
        &self,
        id: &str,
        outcome: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<dry_runs::DryRunResult>>;
    /// Marks the dry runs `node` (every node: `None`) was running as `interrupted` (it
    /// restarted); how many.
    async fn interrupt_dry_runs(&self, node: Option<&str>, at: i64) -> Result<u64>;
    /// Deletes dry runs (and their results) created before `before`, in short statements of at
    /// most a few thousand rows each (never one long transaction); how many runs.
    async fn purge_dry_runs(&self, before: i64) -> Result<u64>;
    /// How many of a tenant's executions failed (and are still failed) with `finished_at`
    /// at or after `since`, per (integration, flow): the console's integrations list, from
    /// the partial index `executions_failed_recent` (only failed rows are read).
    async fn failures_by_flow(&self, tenant: &str, since: i64) -> Result<Vec<(String, String, i64)>>;
}
