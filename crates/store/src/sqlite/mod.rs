//! The embedded SQLite backend: one file in the data directory, WAL, `synchronous=FULL` by
//! default.
//!
//! SQLite has one writer at a time, so the store keeps exactly one writer connection and
//! sends every write through it; reads go through a small pool beside it (WAL lets readers
//! and the writer proceed together). Throughput comes from batching, not from concurrency:
//! [`Store::commit`] writes a whole [`WriteBatch`] in one transaction of multi-row statements
//! (up to [`MAX_ROWS`] rows each); a batch that fits in one statement needs no transaction
//! around it.

use crate::types::*;
use crate::{Error, Result, Store};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Columns of [`ExecutionRow`], with the version number joined in.
const EXECUTION_COLUMNS: &str = "e.seq, e.id, e.tenant_id, e.integration, e.flow, e.version_id, v.version, e.status, \
     e.trigger_kind, e.trigger, e.auth_label, e.attempt, e.run_after, e.created_at, e.started_at, e.finished_at, \
     e.output, e.response, e.error, e.failed_step, e.replay_of, e.cancel_requested";

/// How hard SQLite works to make each commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a committed transaction survives power loss (default).
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash; the last commits may be lost on power
    /// loss.
    Normal,
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The SQLite store.
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    checkpointer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and runs migrations.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub async fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .statement_cache_capacity(256)
            .pragma("cache_size", "-16000")
            .pragma("temp_store", "memory")
            // A WAL that grew under load is cut back to this size when it restarts.
            .pragma("journal_size_limit", "67108864");
        // Checkpoints run on their own connection in the background (below): left to the
        // writer, every ~4 MB of WAL one commit would stall for the copy and its fsync, and
        // every caller waiting on that commit with it. The writer still checkpoints if the WAL
        // passes ~80 MB, in case the background one cannot keep up.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts.clone().pragma("wal_autocheckpoint", "20000"))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts.clone())
            .await?;
        let checkpointer = SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(opts).await?;
        tokio::spawn(checkpoint_loop(checkpointer.clone()));
        Ok(SqliteStore { writer, reader, checkpointer })
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.checkpointer.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Copies committed WAL frames into the database file without blocking the writer (a PASSIVE
/// checkpoint), so the WAL stays small and no commit pays for a checkpoint. Ends when the
/// store is closed.
async fn checkpoint_loop(pool: SqlitePool) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry.");
        }
    }
}

/// Most rows in one multi-row statement. Batches up to this size are one statement, which is
/// atomic on its own (no BEGIN/COMMIT round trips); each distinct size is prepared once and
/// cached (SQLite allows 32,766 parameters; 64 rows × 15 columns is far below).
const MAX_ROWS: usize = 64;

/// What a statement of a batch writes (to check finishes against lost leases).
#[derive(PartialEq, Eq)]
enum Writes {
    Rows,
    Finishes(u64),
}

/// The statements of a batch, in order.
fn batch_statements(batch: &WriteBatch) -> Vec<(Writes, QueryBuilder<'_, Sqlite>)> {
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
    for chunk in batch.steps.chunks(MAX_ROWS) {
        // A resumed step may re-record an attempt number a crash left half-written.
        let mut qb = QueryBuilder::new(
            "INSERT OR REPLACE INTO step_attempts (execution_id, step_id, round, attempt, seq, status, input, output, \
             error, response, started_at, finished_at) ",
        );
        qb.push_values(chunk, |mut b, s| {
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
    for chunk in batch.finishes.chunks(MAX_ROWS) {
        // Only the lease holder may end an execution: the `lease_owner` check fences a node
        // that lost its lease.
        let mut qb = QueryBuilder::new(
            "UPDATE executions SET status = f.column2, output = f.column3, \
             response = COALESCE(f.column4, executions.response), error = f.column5, \
             failed_step = f.column6, finished_at = f.column7, lease_owner = NULL, lease_until = NULL FROM (",
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
            ") AS f WHERE executions.id = f.column1 AND executions.lease_owner = f.column8 AND executions.status = 'running'",
        );
        out.push((Writes::Finishes(chunk.len() as u64), qb));
    }
    for chunk in batch.responses.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new("UPDATE executions SET response = r.column2 FROM (");
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(&r.id).push_bind(&r.response);
        });
        qb.push(") AS r WHERE executions.id = r.column1");
        out.push((Writes::Rows, qb));
    }
    for chunk in batch.parks.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new(
            "UPDATE executions SET status = 'queued', run_after = p.column2, lease_owner = NULL, lease_until = NULL FROM (",
        );
        qb.push_values(chunk, |mut b, p| {
            b.push_bind(&p.id).push_bind(p.run_after).push_bind(&p.owner);
        });
        qb.push(
            ") AS p WHERE executions.id = p.column1 AND executions.lease_owner = p.column3 AND executions.status = 'running'",
        );
        out.push((Writes::Rows, qb));
    }
    out
}

fn check_finishes(writes: &Writes, affected: u64) {
    if let Writes::Finishes(n) = writes
        && affected < *n
    {
        tracing::warn!(lost = n - affected, "Finishes ignored: their leases were lost.");
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: i64,
    tenant_id: String,
    slug: String,
    version: i64,
    hash: String,
    format: String,
    source: String,
    document: String,
    created_at: i64,
}

impl From<VersionRow> for VersionRecord {
    fn from(r: VersionRow) -> Self {
        VersionRecord {
            id: r.id,
            tenant_id: r.tenant_id,
            slug: r.slug,
            version: r.version,
            hash: r.hash,
            format: r.format,
            source: r.source,
            document: r.document,
            created_at: r.created_at,
        }
    }
}

const VERSION_COLUMNS: &str =
    "v.id, v.tenant_id, v.slug, v.version, v.hash, v.format, v.source, v.document, v.created_at";

async fn execution_in<'e, E>(exec: E, tenant: Option<&str>, id: &str) -> Result<Option<ExecutionRow>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
         WHERE e.id = ?1 AND (?2 IS NULL OR e.tenant_id = ?2)"
    );
    Ok(sqlx::query_as::<_, ExecutionRow>(&sql).bind(id).bind(tenant).fetch_optional(exec).await?)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    fn shared(&self) -> bool {
        false
    }

    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<StoreEvent>> {
        None
    }

    async fn notify(&self, _events: &[StoreEvent]) -> Result<()> {
        Ok(())
    }

    async fn lead(&self) -> Result<bool> {
        // One process owns the file (the data directory lock): it is the leader.
        Ok(true)
    }

    async fn reap_expired(&self, now: i64) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL \
             WHERE status = 'running' AND lease_until < ?",
        )
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        let stored: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?").bind(key).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<bool> {
        let r = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING")
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>> {
        Ok(sqlx::query_as("SELECT id, name, created_at FROM tenants ORDER BY id").fetch_all(&self.reader).await?)
    }

    async fn create_token(&self, t: &NewToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, name, token_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(&t.prefix)
        .bind(t.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenInfo>> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn tokens(&self, tenant: &str) -> Result<Vec<TokenInfo>> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_tokens WHERE tenant_id = ? ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn revoke_token(&self, tenant: &str, id: &str, now: i64) -> Result<bool> {
        let r =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(tenant)
                .bind(id)
                .execute(&self.writer)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn put_integration(&self, new: &NewVersion) -> Result<PutOutcome> {
        let mut tx = self.writer.begin().await?;
        let current: Option<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
             WHERE i.tenant_id = ? AND i.slug = ?"
        ))
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(cur) = current
            && cur.hash == new.hash
        {
            return Ok(PutOutcome::Unchanged(cur.into()));
        }
        for route in &new.routes {
            let holder: Option<(String, String)> = sqlx::query_as(
                "SELECT integration, flow FROM webhook_routes WHERE tenant_id = ? AND path = ? AND integration <> ?",
            )
            .bind(&new.tenant_id)
            .bind(&route.path)
            .bind(&new.slug)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((integration, flow)) = holder {
                return Err(Error::Conflict(format!(
                    "webhook path `{}` is already used by flow `{flow}` of integration `{integration}`",
                    route.path
                )));
            }
        }
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM integration_versions WHERE tenant_id = ? AND slug = ?",
        )
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO integration_versions (tenant_id, slug, version, hash, format, source, document, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
            "INSERT INTO integrations (tenant_id, slug, current_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, slug) DO UPDATE SET current_version = excluded.current_version, updated_at = excluded.updated_at",
        )
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .bind(id)
        .bind(new.now)
        .bind(new.now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_routes WHERE tenant_id = ? AND integration = ?")
            .bind(&new.tenant_id)
            .bind(&new.slug)
            .execute(&mut *tx)
            .await?;
        for route in &new.routes {
            sqlx::query("INSERT INTO webhook_routes (tenant_id, path, integration, flow) VALUES (?, ?, ?, ?)")
                .bind(&new.tenant_id)
                .bind(&route.path)
                .bind(&new.slug)
                .bind(&route.flow)
                .execute(&mut *tx)
                .await?;
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
        let row: Option<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
             WHERE i.tenant_id = ? AND i.slug = ?"
        ))
        .bind(tenant)
        .bind(slug)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn integrations(&self, tenant: &str) -> Result<Vec<VersionRecord>> {
        let rows: Vec<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
             WHERE i.tenant_id = ? ORDER BY i.slug"
        ))
        .bind(tenant)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn all_integrations(&self) -> Result<Vec<VersionRecord>> {
        let rows: Vec<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
             ORDER BY i.tenant_id, i.slug"
        ))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn version(&self, id: i64) -> Result<Option<VersionRecord>> {
        let row: Option<VersionRow> =
            sqlx::query_as(&format!("SELECT {VERSION_COLUMNS} FROM integration_versions v WHERE v.id = ?"))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(Into::into))
    }

    async fn delete_integration(&self, tenant: &str, slug: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query("DELETE FROM integrations WHERE tenant_id = ? AND slug = ?")
            .bind(tenant)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_routes WHERE tenant_id = ? AND integration = ?")
            .bind(tenant)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn commit(&self, batch: &WriteBatch) -> Result<()> {
        let mut statements = batch_statements(batch);
        if let [(writes, qb)] = statements.as_mut_slice() {
            // One statement is atomic on its own: skip BEGIN/COMMIT (two round trips).
            let r = qb.build().execute(&self.writer).await?;
            check_finishes(writes, r.rows_affected());
            return Ok(());
        }
        if statements.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for (writes, qb) in &mut statements {
            let r = qb.build().execute(&mut *tx).await?;
            check_finishes(writes, r.rows_affected());
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim(&self, owner: &str, now: i64, until: i64, limit: usize) -> Result<Vec<Claimed>> {
        let claimed: Vec<Claimed> = sqlx::query_as(
            "UPDATE executions SET status = 'running', lease_owner = ?1, lease_until = ?2, started_at = COALESCE(started_at, ?3) \
             WHERE seq IN (SELECT seq FROM executions WHERE status = 'queued' AND run_after <= ?3 ORDER BY run_after, seq LIMIT ?4) \
             RETURNING seq, id, tenant_id, integration, flow, version_id, trigger_kind, trigger, auth_label, attempt, created_at, replay_of",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.writer)
        .await?;
        let mut claimed = claimed;
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    async fn renew_leases(&self, owner: &str, until: i64) -> Result<u64> {
        let r = sqlx::query("UPDATE executions SET lease_until = ? WHERE lease_owner = ? AND status = 'running'")
            .bind(until)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected())
    }

    async fn release_leases(&self, owner: &str, _now: i64) -> Result<u64> {
        // `run_after` is kept: released executions keep their place in arrival order.
        let r = sqlx::query(
            "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = ? AND status = 'running'",
        )
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }

    async fn expire_all_leases(&self) -> Result<u64> {
        let r =
            sqlx::query("UPDATE executions SET lease_until = 0 WHERE status = 'running'").execute(&self.writer).await?;
        Ok(r.rows_affected())
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(run_after) FROM executions WHERE status = 'queued'")
            .fetch_one(&self.reader)
            .await?)
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'queued'")
            .fetch_one(&self.reader)
            .await?;
        let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'running'")
            .fetch_one(&self.reader)
            .await?;
        Ok(QueueDepth { queued, running })
    }

    async fn journal(&self, execution: &str) -> Result<Vec<StepRecord>> {
        Ok(sqlx::query_as(
            "SELECT execution_id, step_id, round, attempt, seq, status, input, output, error, response, started_at, finished_at \
             FROM step_attempts WHERE execution_id = ? ORDER BY seq, round, attempt",
        )
        .bind(execution)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn logs(&self, execution: &str) -> Result<Vec<LogRecord>> {
        Ok(sqlx::query_as(
            "SELECT execution_id, at, level, step_id, message FROM execution_logs WHERE execution_id = ? ORDER BY rowid",
        )
        .bind(execution)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn execution(&self, tenant: Option<&str>, id: &str) -> Result<Option<ExecutionRow>> {
        execution_in(&self.reader, tenant, id).await
    }

    async fn executions(&self, q: &ExecutionQuery) -> Result<Vec<ExecutionRow>> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id WHERE e.tenant_id = "
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
        Ok(qb.build_query_as::<ExecutionRow>().fetch_all(&self.reader).await?)
    }

    async fn retry_execution(&self, tenant: &str, id: &str, now: i64) -> Result<ExecutionRow> {
        let mut tx = self.writer.begin().await?;
        let row = execution_in(&mut *tx, Some(tenant), id).await?.ok_or(Error::NotFound)?;
        if !matches!(row.status(), Status::Failed | Status::Cancelled) {
            return Err(Error::Conflict(format!(
                "only failed or cancelled executions can be retried; this one is {}",
                row.status
            )));
        }
        sqlx::query(
            "UPDATE executions SET status = 'queued', attempt = attempt + 1, run_after = ?, error = NULL, failed_step = NULL, \
             finished_at = NULL, output = NULL, cancel_requested = 0 WHERE id = ?",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = execution_in(&mut *tx, Some(tenant), id).await?.ok_or(Error::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    async fn cancel_execution(&self, tenant: &str, id: &str, now: i64) -> Result<ExecutionRow> {
        let mut tx = self.writer.begin().await?;
        let row = execution_in(&mut *tx, Some(tenant), id).await?.ok_or(Error::NotFound)?;
        match row.status() {
            Status::Queued => {
                sqlx::query("UPDATE executions SET status = 'cancelled', finished_at = ? WHERE id = ?")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            Status::Running => {
                sqlx::query("UPDATE executions SET cancel_requested = 1 WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            s => {
                return Err(Error::Conflict(format!("the execution already ended ({})", s.as_str())));
            }
        }
        let row = execution_in(&mut *tx, Some(tenant), id).await?.ok_or(Error::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let v: Option<bool> = sqlx::query_scalar("SELECT cancel_requested FROM executions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(v.unwrap_or(false))
    }

    async fn last_run(&self, tenant: &str, integration: &str, flow: &str) -> Result<Option<ExecutionRow>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
             WHERE e.tenant_id = ? AND e.integration = ? AND e.flow = ? AND e.status IN ('succeeded', 'failed', 'filtered') \
             ORDER BY e.seq DESC LIMIT 1"
        );
        Ok(sqlx::query_as(&sql).bind(tenant).bind(integration).bind(flow).fetch_optional(&self.reader).await?)
    }
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            _ => Err(format!("unknown durability `{s}` (expected full or normal)")),
        }
    }
}
