//! The PostgreSQL backend: several Flowgate nodes share one database (issue 3).
//!
//! Every guarantee lives in the database, not in a node's memory:
//! * claims take queued rows with `FOR UPDATE SKIP LOCKED`, so nodes never claim the same
//!   execution; only the lease holder may finish or park it (`lease_owner` fencing);
//! * events between nodes (new work, an execution that ended or answered, a cancel, a changed
//!   integration) travel by `NOTIFY` in the transaction that causes them, and arrive through one
//!   `LISTEN` connection per node; after that connection is lost and re-made, a `Resync` event
//!   tells the engine to re-read what it may have missed;
//! * the leader is whoever holds a session advisory lock on a dedicated connection: if that node
//!   dies, its session ends, the lock is released and another node takes over;
//! * migrations run under sqlx's advisory lock, so nodes starting together apply them once.
//!
//! A `schema=<name>` parameter in the URL puts Flowgate's tables in that schema (created if
//! missing), which lets tests and several deployments share one database.

use crate::types::*;
use crate::{Error, Result, Store};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::broadcast;

/// The channel Flowgate's nodes talk on, followed by the schema's name: deployments sharing a
/// database in separate schemas do not hear each other.
const CHANNEL_PREFIX: &str = "flowgate_events";
/// Most rows in one multi-row statement.
const MAX_ROWS: usize = 64;
/// First half of the leader's advisory lock key ("flow" in ASCII); the second half is a hash of
/// the schema, so deployments sharing a database in separate schemas elect separate leaders.
const LEADER_KEY: i32 = 0x666c_6f77;
/// Events buffered for slow subscribers before they are told to resync.
const EVENT_BUFFER: usize = 4096;
/// Largest `NOTIFY` payload PostgreSQL accepts is 8000 bytes; events are packed below that.
const MAX_PAYLOAD: usize = 7000;

/// Columns of [`ExecutionRow`], with the version number joined in.
const EXECUTION_COLUMNS: &str = "e.seq, e.id, e.tenant_id, e.integration, e.flow, e.version_id, v.version, e.status, \
     e.trigger_kind, e.trigger, e.auth_label, e.attempt, e.run_after, e.created_at, e.started_at, e.finished_at, \
     e.output, e.response, e.error, e.failed_step, e.replay_of, e.cancel_requested";
const VERSION_COLUMNS: &str =
    "v.id, v.tenant_id, v.slug, v.version, v.hash, v.format, v.source, v.document, v.created_at";
const CLAIMED_COLUMNS: &str = "seq, id, tenant_id, integration, flow, version_id, trigger_kind, trigger, auth_label, attempt, created_at, replay_of";

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    events: broadcast::Sender<StoreEvent>,
    /// The connection holding the leader's advisory lock, while this node leads.
    leader: tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<Postgres>>>,
    leader_pool: PgPool,
    /// The `LISTEN`/`NOTIFY` channel of this deployment.
    channel: String,
    /// Tells the listener task to stop.
    closed: std::sync::Arc<tokio::sync::Notify>,
}

/// Splits `schema=<name>` off a database URL (it is Flowgate's, not libpq's).
fn split_schema(url: &str) -> Result<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_owned(), None)) };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(s) => {
                schema = Some(s.to_owned());
                false
            }
            None => true,
        })
        .collect();
    if let Some(s) = &schema
        && (s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(Error::Config(format!("invalid schema name `{s}`: use letters, digits and `_`")));
    }
    let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    Ok((url, schema))
}

impl PgStore {
    /// Connects, creates the schema if the URL names one, runs migrations and starts listening
    /// for events. `pool_size` is the number of connections for queries (two more are used: the
    /// listener and the leader's lock).
    ///
    /// # Errors
    /// A bad URL, an unreachable server, or a failed migration.
    pub async fn connect(url: &str, pool_size: u32) -> Result<PgStore> {
        let (url, schema) = split_schema(url)?;
        let mut opts =
            PgConnectOptions::from_str(&url).map_err(|e| Error::Config(format!("invalid database URL: {e}")))?;
        opts = opts.application_name("flowgate");
        if let Some(schema) = &schema {
            let admin = PgPoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
            // Nodes starting together race on IF NOT EXISTS; losing that race is fine.
            if let Err(e) = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).execute(&admin).await {
                let raced = matches!(&e, sqlx::Error::Database(db) if db.is_unique_violation());
                if !raced {
                    return Err(e.into());
                }
            }
            admin.close().await;
            opts = opts.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(2))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let leader_pool = PgPoolOptions::new().max_connections(1).connect_with(opts).await?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let mut listener = PgListener::connect_with(&pool).await?;
        let channel = match &schema {
            Some(s) => format!("{CHANNEL_PREFIX}_{s}"),
            None => CHANNEL_PREFIX.to_owned(),
        };
        listener.listen(&channel).await?;
        let closed = std::sync::Arc::new(tokio::sync::Notify::new());
        tokio::spawn(listen(listener, events.clone(), closed.clone()));
        Ok(PgStore { pool, events, leader: tokio::sync::Mutex::new(None), leader_pool, channel, closed })
    }

    /// Closes the pools (the leader's lock is released with its session).
    pub async fn close(&self) {
        self.closed.notify_one();
        self.leader.lock().await.take();
        self.leader_pool.close().await;
        self.pool.close().await;
    }
}

/// Forwards notifications to subscribers; after a lost connection, a `Resync`.
async fn listen(
    mut listener: PgListener,
    events: broadcast::Sender<StoreEvent>,
    closed: std::sync::Arc<tokio::sync::Notify>,
) {
    loop {
        let received = tokio::select! {
            r = listener.try_recv() => r,
            _ = closed.notified() => return,
        };
        match received {
            Ok(Some(n)) => match serde_json::from_str::<Vec<StoreEvent>>(n.payload()) {
                Ok(list) => {
                    for e in list {
                        let _ = events.send(e);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Ignoring a malformed event."),
            },
            // The connection was lost and will be re-made by the next call: events may be lost.
            Ok(None) => {
                let _ = events.send(StoreEvent::Resync);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Event listener failed; retrying.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = events.send(StoreEvent::Resync);
            }
        }
    }
}

/// Events packed into payloads under PostgreSQL's size limit.
fn payloads(events: &[StoreEvent]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&StoreEvent> = Vec::new();
    let mut size = 2;
    for e in events {
        let len = serde_json::to_string(e).map(|s| s.len() + 1).unwrap_or(0);
        if size + len > MAX_PAYLOAD && !current.is_empty() {
            out.push(serde_json::to_string(&current).unwrap_or_default());
            current.clear();
            size = 2;
        }
        current.push(e);
        size += len;
    }
    if !current.is_empty() {
        out.push(serde_json::to_string(&current).unwrap_or_default());
    }
    out
}

/// What a statement of a batch writes (to check finishes against lost leases).
enum Writes {
    Rows,
    Finishes(u64),
}

fn batch_statements<'a>(batch: &'a WriteBatch, channel: &'a str) -> Vec<(Writes, QueryBuilder<'a, Postgres>)> {
    let mut out = Vec::new();
    for chunk in batch.inserts.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO executions (id, tenant_id, integration, flow, version_id, status, lease_owner, lease_until, \
             trigger_kind, trigger, auth_label, run_after, created_at, started_at, replay_of) ",
        );
        qb.push_values(chunk, |mut b, e| {
            let started = (e.status == Status::Running).then_some(e.created_at);
            b.push_bind(&e.id)
                .push_bind(&e.tenant_id)
                .push_bind(&e.integration)
                .push_bind(&e.flow)
                .push_bind(e.version_id)
                .push_bind(e.status.as_str())
                .push_bind(&e.lease_owner)
                .push_bind(e.lease_until)
                .push_bind(e.trigger_kind)
                .push_bind(&e.trigger)
                .push_bind(&e.auth_label)
                .push_bind(e.run_after)
                .push_bind(e.created_at)
                .push_bind(started)
                .push_bind(&e.replay_of);
        });
        out.push((Writes::Rows, qb));
    }
    // PostgreSQL refuses an upsert that touches one row twice; a batch may record the same
    // attempt twice (a node re-running an execution whose lease it lost): the last one wins.
    let steps = unique_steps(&batch.steps);
    for chunk in steps.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO step_attempts (execution_id, step_id, round, attempt, seq, status, input, output, error, \
             response, started_at, finished_at) ",
        );
        qb.push_values(chunk.iter().copied(), |mut b, s| {
            b.push_bind(&s.execution_id)
                .push_bind(&s.step_id)
                .push_bind(s.round)
                .push_bind(s.attempt)
                .push_bind(s.seq)
                .push_bind(&s.status)
                .push_bind(&s.input)
                .push_bind(&s.output)
                .push_bind(&s.error)
                .push_bind(&s.response)
                .push_bind(s.started_at)
                .push_bind(s.finished_at);
        });
        // A resumed step may re-record an attempt number a crash left half-written.
        qb.push(
            " ON CONFLICT (execution_id, step_id, round, attempt) DO UPDATE SET seq = excluded.seq, \
             status = excluded.status, input = excluded.input, output = excluded.output, error = excluded.error, \
             response = excluded.response, started_at = excluded.started_at, finished_at = excluded.finished_at",
        );
        out.push((Writes::Rows, qb));
    }
    for chunk in batch.logs.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new("INSERT INTO execution_logs (execution_id, at, level, step_id, message) ");
        qb.push_values(chunk, |mut b, l| {
            b.push_bind(&l.execution_id)
                .push_bind(l.at)
                .push_bind(&l.level)
                .push_bind(&l.step_id)
                .push_bind(&l.message);
        });
        out.push((Writes::Rows, qb));
    }
    for chunk in batch.responses.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new("UPDATE executions SET response = r.response FROM (");
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(&r.id).push_bind(&r.response);
        });
        qb.push(") AS r(id, response) WHERE executions.id = r.id");
        out.push((Writes::Rows, qb));
    }
    for chunk in batch.finishes.chunks(MAX_ROWS) {
        // Only the lease holder may end an execution (fencing a node that lost its lease).
        let mut qb = QueryBuilder::new(
            "UPDATE executions SET status = f.status, output = f.output, response = COALESCE(f.response, executions.response), \
             error = f.error, failed_step = f.failed_step, finished_at = f.finished_at, lease_owner = NULL, \
             lease_until = NULL FROM (",
        );
        qb.push_values(chunk, |mut b, f| {
            b.push_bind(&f.id)
                .push_bind(f.status.as_str())
                .push_bind(&f.output)
                .push_bind(&f.response)
                .push_bind(&f.error)
                .push_bind(&f.failed_step)
                .push_bind(f.finished_at)
                .push_bind(&f.owner);
        });
        qb.push(
            ") AS f(id, status, output, response, error, failed_step, finished_at, owner) \
             WHERE executions.id = f.id AND executions.lease_owner = f.owner AND executions.status = 'running'",
        );
        out.push((Writes::Finishes(chunk.len() as u64), qb));
    }
    for chunk in batch.parks.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new(
            "UPDATE executions SET status = 'queued', run_after = p.run_after, lease_owner = NULL, lease_until = NULL FROM (",
        );
        qb.push_values(chunk, |mut b, p| {
            b.push_bind(&p.id).push_bind(p.run_after).push_bind(&p.owner);
        });
        qb.push(
            ") AS p(id, run_after, owner) WHERE executions.id = p.id AND executions.lease_owner = p.owner \
             AND executions.status = 'running'",
        );
        out.push((Writes::Rows, qb));
    }
    for payload in payloads(&batch.events) {
        let mut qb = QueryBuilder::new("SELECT pg_notify(");
        qb.push_bind(channel).push(", ").push_bind(payload).push(")");
        out.push((Writes::Rows, qb));
    }
    out
}

/// The journal entries of a batch with one entry per (execution, step, round, attempt), the
/// last written winning.
fn unique_steps(steps: &[StepRecord]) -> Vec<&StepRecord> {
    let mut seen = std::collections::HashSet::with_capacity(steps.len());
    let mut out: Vec<&StepRecord> = steps
        .iter()
        .rev()
        .filter(|s| seen.insert((s.execution_id.as_str(), s.step_id.as_str(), s.round, s.attempt)))
        .collect();
    out.reverse();
    out
}

fn check_finishes(writes: &Writes, affected: u64) {
    if let Writes::Finishes(n) = writes
        && affected < *n
    {
        tracing::warn!(lost = n - affected, "Finishes ignored: their leases were lost.");
    }
}

fn conflict_on_unique(e: sqlx::Error, message: impl FnOnce() -> String) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict(message()),
        _ => Error::Backend(e),
    }
}

async fn execution_in<'e, E>(exec: E, tenant: Option<&str>, id: &str) -> Result<Option<ExecutionRow>>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
         WHERE e.id = $1 AND ($2::text IS NULL OR e.tenant_id = $2)"
    );
    Ok(sqlx::query_as::<_, ExecutionRow>(&sql).bind(id).bind(tenant).fetch_optional(exec).await?)
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        PgStore::close(self).await;
    }

    fn shared(&self) -> bool {
        true
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<StoreEvent>> {
        Some(self.events.subscribe())
    }

    async fn notify(&self, events: &[StoreEvent]) -> Result<()> {
        for payload in payloads(events) {
            sqlx::query("SELECT pg_notify($1, $2)").bind(&self.channel).bind(payload).execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn lead(&self) -> Result<bool> {
        let mut held = self.leader.lock().await;
        if let Some(conn) = held.as_mut() {
            // Still leading while the session that holds the lock is alive.
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                return Ok(true);
            }
            *held = None;
            tracing::warn!("Lost the leader's connection; leadership is released.");
        }
        let mut conn = self.leader_pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
            .bind(LEADER_KEY)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            tracing::info!("This node is now the leader.");
            *held = Some(conn);
        }
        Ok(got)
    }

    async fn reap_expired(&self, now: i64) -> Result<u64> {
        let r = sqlx::query(
            "WITH expired AS (SELECT seq FROM executions WHERE status = 'running' AND lease_until < $1 \
             FOR UPDATE SKIP LOCKED) \
             UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL \
             FROM expired WHERE executions.seq = expired.seq",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() > 0 {
            self.notify(&[StoreEvent::Work]).await?;
        }
        Ok(r.rows_affected())
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await?)
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_one(&self.pool).await?)
    }

    async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<bool> {
        let r =
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                .bind(id)
                .bind(name)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>> {
        Ok(sqlx::query_as("SELECT id, name, created_at FROM tenants ORDER BY id").fetch_all(&self.pool).await?)
    }

    async fn create_token(&self, t: &NewToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, name, token_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(&t.prefix)
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, || "this token exists".into()))?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenInfo>> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn tokens(&self, tenant: &str) -> Result<Vec<TokenInfo>> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_tokens WHERE tenant_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn revoke_token(&self, tenant: &str, id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(tenant)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn put_integration(&self, new: &NewVersion) -> Result<PutOutcome> {
        let mut tx = self.pool.begin().await?;
        // Applies within a tenant are serialised across nodes: route checks see each other.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext($1))")
            .bind(&new.tenant_id)
            .execute(&mut *tx)
            .await?;
        let current: Option<VersionRecord> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
             WHERE i.tenant_id = $1 AND i.slug = $2"
        ))
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(cur) = current
            && cur.hash == new.hash
        {
            tx.rollback().await?;
            return Ok(PutOutcome::Unchanged(cur));
        }
        for route in &new.routes {
            let holder: Option<(String, String)> = sqlx::query_as(
                "SELECT integration, flow FROM webhook_routes WHERE tenant_id = $1 AND path = $2 AND integration <> $3",
            )
            .bind(&new.tenant_id)
            .bind(&route.path)
            .bind(&new.slug)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((integration, flow)) = holder {
                tx.rollback().await?;
                return Err(Error::Conflict(format!(
                    "webhook path `{}` is already used by flow `{flow}` of integration `{integration}`",
                    route.path
                )));
            }
        }
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM integration_versions WHERE tenant_id = $1 AND slug = $2",
        )
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO integration_versions (tenant_id, slug, version, hash, format, source, document, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .bind(version)
        .bind(&new.hash)
        .bind(&new.format)
        .bind(&new.source)
        .bind(&new.document)
        .bind(new.now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO integrations (tenant_id, slug, current_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (tenant_id, slug) DO UPDATE SET current_version = excluded.current_version, \
             updated_at = excluded.updated_at",
        )
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .bind(id)
        .bind(new.now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_routes WHERE tenant_id = $1 AND integration = $2")
            .bind(&new.tenant_id)
            .bind(&new.slug)
            .execute(&mut *tx)
            .await?;
        for route in &new.routes {
            sqlx::query("INSERT INTO webhook_routes (tenant_id, path, integration, flow) VALUES ($1, $2, $3, $4)")
                .bind(&new.tenant_id)
                .bind(&route.path)
                .bind(&new.slug)
                .bind(&route.flow)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_on_unique(e, || format!("webhook path `{}` is already used", route.path)))?;
        }
        tx.commit().await?;
        Ok(PutOutcome::Created(VersionRecord {
            id,
            tenant_id: new.tenant_id.clone(),
            slug: new.slug.clone(),
            version,
            hash: new.hash.clone(),
            format: new.format.clone(),
            source: new.source.clone(),
            document: new.document.clone(),
            created_at: new.now,
        }))
    }

    async fn integration(&self, tenant: &str, slug: &str) -> Result<Option<VersionRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
             WHERE i.tenant_id = $1 AND i.slug = $2"
        ))
        .bind(tenant)
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn integrations(&self, tenant: &str) -> Result<Vec<VersionRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
             WHERE i.tenant_id = $1 ORDER BY i.slug"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn all_integrations(&self) -> Result<Vec<VersionRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
             ORDER BY i.tenant_id, i.slug"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn version(&self, id: i64) -> Result<Option<VersionRecord>> {
        Ok(sqlx::query_as(&format!("SELECT {VERSION_COLUMNS} FROM integration_versions v WHERE v.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn delete_integration(&self, tenant: &str, slug: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM integrations WHERE tenant_id = $1 AND slug = $2")
            .bind(tenant)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_routes WHERE tenant_id = $1 AND integration = $2")
            .bind(tenant)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn commit(&self, batch: &WriteBatch) -> Result<()> {
        let mut statements = batch_statements(batch, &self.channel);
        if let [(writes, qb)] = statements.as_mut_slice() {
            let r = qb.build().execute(&self.pool).await?;
            check_finishes(writes, r.rows_affected());
            return Ok(());
        }
        if statements.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (writes, qb) in &mut statements {
            let r = qb.build().execute(&mut *tx).await?;
            check_finishes(writes, r.rows_affected());
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim(&self, owner: &str, now: i64, until: i64, limit: usize) -> Result<Vec<Claimed>> {
        let mut claimed: Vec<Claimed> = sqlx::query_as(&format!(
            "WITH next AS (SELECT seq FROM executions WHERE status = 'queued' AND run_after <= $3 \
             ORDER BY run_after, seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE executions SET status = 'running', lease_owner = $1, lease_until = $2, \
             started_at = COALESCE(started_at, $3) FROM next WHERE executions.seq = next.seq \
             RETURNING {}",
            CLAIMED_COLUMNS.split(", ").map(|c| format!("executions.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    async fn renew_leases(&self, owner: &str, until: i64) -> Result<u64> {
        let r = sqlx::query("UPDATE executions SET lease_until = $1 WHERE lease_owner = $2 AND status = 'running'")
            .bind(until)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn release_leases(&self, owner: &str, _now: i64) -> Result<u64> {
        // `run_after` is kept: released executions keep their place in arrival order.
        let r = sqlx::query(
            "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1 AND status = 'running'",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() > 0 {
            self.notify(&[StoreEvent::Work]).await?;
        }
        Ok(r.rows_affected())
    }

    async fn expire_all_leases(&self) -> Result<u64> {
        Err(Error::Config("leases of a shared store expire on their own".into()))
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(run_after) FROM executions WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        let queued: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'queued'").fetch_one(&self.pool).await?;
        let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'running'")
            .fetch_one(&self.pool)
            .await?;
        Ok(QueueDepth { queued, running })
    }

    async fn journal(&self, execution: &str) -> Result<Vec<StepRecord>> {
        Ok(sqlx::query_as(
            "SELECT execution_id, step_id, round, attempt, seq, status, input, output, error, response, started_at, \
             finished_at FROM step_attempts WHERE execution_id = $1 ORDER BY seq, round, attempt",
        )
        .bind(execution)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn logs(&self, execution: &str) -> Result<Vec<LogRecord>> {
        Ok(sqlx::query_as(
            "SELECT execution_id, at, level, step_id, message FROM execution_logs WHERE execution_id = $1 ORDER BY n",
        )
        .bind(execution)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn execution(&self, tenant: Option<&str>, id: &str) -> Result<Option<ExecutionRow>> {
        execution_in(&self.pool, tenant, id).await
    }

    async fn executions(&self, q: &ExecutionQuery) -> Result<Vec<ExecutionRow>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
             WHERE e.tenant_id = "
        ));
        qb.push_bind(&q.tenant);
        if let Some(i) = &q.integration {
            qb.push(" AND e.integration = ").push_bind(i);
        }
        if let Some(f) = &q.flow {
            qb.push(" AND e.flow = ").push_bind(f);
        }
        if let Some(s) = q.status {
            qb.push(" AND e.status = ").push_bind(s.as_str());
        }
        if let Some(b) = q.before {
            qb.push(" AND e.seq < ").push_bind(b);
        }
        qb.push(" ORDER BY e.seq DESC LIMIT ").push_bind(i64::from(q.limit));
        Ok(qb.build_query_as::<ExecutionRow>().fetch_all(&self.pool).await?)
    }

    async fn retry_execution(&self, tenant: &str, id: &str, now: i64) -> Result<ExecutionRow> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM executions WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        let Some(row) = execution_in(&mut *tx, Some(tenant), id).await? else {
            tx.rollback().await?;
            return Err(Error::NotFound);
        };
        if !matches!(row.status(), Status::Failed | Status::Cancelled) {
            // Roll back now rather than on drop: dropping only queues the rollback, and the
            // row would stay locked (claims skipping it) until it runs.
            tx.rollback().await?;
            return Err(Error::Conflict(format!(
                "only failed or cancelled executions can be retried; this one is {}",
                row.status
            )));
        }
        sqlx::query(
            "UPDATE executions SET status = 'queued', attempt = attempt + 1, run_after = $1, error = NULL, \
             failed_step = NULL, finished_at = NULL, output = NULL, cancel_requested = false WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payloads(&[StoreEvent::Work]).remove(0))
            .execute(&mut *tx)
            .await?;
        let row = execution_in(&mut *tx, Some(tenant), id).await?.ok_or(Error::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    async fn cancel_execution(&self, tenant: &str, id: &str, now: i64) -> Result<ExecutionRow> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM executions WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        let Some(row) = execution_in(&mut *tx, Some(tenant), id).await? else {
            tx.rollback().await?;
            return Err(Error::NotFound);
        };
        match row.status() {
            Status::Queued => {
                sqlx::query("UPDATE executions SET status = 'cancelled', finished_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            Status::Running => {
                sqlx::query("UPDATE executions SET cancel_requested = true WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let event = StoreEvent::Cancel { id: id.to_owned() };
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(&self.channel)
                    .bind(payloads(&[event]).remove(0))
                    .execute(&mut *tx)
                    .await?;
            }
            s => {
                tx.rollback().await?;
                return Err(Error::Conflict(format!("the execution already ended ({})", s.as_str())));
            }
        }
        let row = execution_in(&mut *tx, Some(tenant), id).await?.ok_or(Error::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let v: Option<bool> = sqlx::query_scalar("SELECT cancel_requested FROM executions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.unwrap_or(false))
    }

    async fn last_run(&self, tenant: &str, integration: &str, flow: &str) -> Result<Option<ExecutionRow>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
             WHERE e.tenant_id = $1 AND e.integration = $2 AND e.flow = $3 \
             AND e.status IN ('succeeded', 'failed', 'filtered') ORDER BY e.seq DESC LIMIT 1"
        );
        Ok(sqlx::query_as(&sql).bind(tenant).bind(integration).bind(flow).fetch_optional(&self.pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_schema_parameter() {
        assert_eq!(split_schema("postgres://h/db").unwrap(), ("postgres://h/db".into(), None));
        assert_eq!(
            split_schema("postgres://h/db?schema=fg_1").unwrap(),
            ("postgres://h/db".into(), Some("fg_1".into()))
        );
        assert_eq!(
            split_schema("postgres://h/db?sslmode=disable&schema=x&application_name=a").unwrap(),
            ("postgres://h/db?sslmode=disable&application_name=a".into(), Some("x".into()))
        );
        assert!(split_schema("postgres://h/db?schema=a;drop").is_err());
    }

    #[test]
    fn packs_events_under_the_payload_limit() {
        let events: Vec<StoreEvent> = (0..1000).map(|i| StoreEvent::Finished { id: format!("{i:036}") }).collect();
        let p = payloads(&events);
        assert!(p.len() > 1);
        assert!(p.iter().all(|s| s.len() <= MAX_PAYLOAD + 100));
        let back: usize = p.iter().map(|s| serde_json::from_str::<Vec<StoreEvent>>(s).unwrap().len()).sum();
        assert_eq!(back, 1000);
    }
}
