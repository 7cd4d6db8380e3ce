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
use crate::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Columns of [`ExecutionRow`], with the version number joined in.
const EXECUTION_COLUMNS: &str = "e.seq, e.id, e.tenant_id, e.integration, e.flow, e.version_id, v.version, e.status, \
     e.trigger_kind, e.trigger, e.auth_label, e.attempt, e.run_after, e.created_at, e.started_at, e.finished_at, \
     e.output, e.response, e.error, e.failed_step, e.replay_of, e.cancel_requested, e.order_key, e.holds_order, \
     e.parent_id, e.crashes";
/// Columns of [`ExecutionRow`] in listings: without the event and the result, which may be
/// megabytes each (a page of them would be hundreds).
const LISTING_COLUMNS: &str = "e.seq, e.id, e.tenant_id, e.integration, e.flow, e.version_id, v.version, e.status, \
     e.trigger_kind, '' AS trigger, e.auth_label, e.attempt, e.run_after, e.created_at, e.started_at, e.finished_at, \
     NULL AS output, NULL AS response, e.error, e.failed_step, e.replay_of, e.cancel_requested, e.order_key, e.holds_order, \
     e.parent_id, e.crashes";

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
        owner_only(path).map_err(|e| Error::Config(format!("cannot prepare {}: {e}", path.display())))?;
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

/// Creates the database file readable and writable by its owner only (0600), or narrows an
/// existing one to that: it holds every tenant's events and results (issue 13). SQLite gives
/// its `-wal` and `-shm` files the database file's permissions.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
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
/// The statements of a batch, in order; `skip` names new executions not to insert (repeated
/// deliveries).
fn batch_statements<'a>(batch: &'a WriteBatch, skip: &HashSet<&str>) -> Vec<(Writes, QueryBuilder<'a, Sqlite>)> {
    let mut out = Vec::new();
    let inserts: Vec<&NewExecution> = batch.inserts.iter().filter(|e| !skip.contains(e.id.as_str())).collect();
    for chunk in inserts.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO executions (id, tenant_id, integration, flow, version_id, status, lease_owner, lease_until, \
             trigger_kind, trigger, auth_label, run_after, created_at, started_at, replay_of, order_key, holds_order, \
             max_running, parent_id) ",
        );
        qb.push_values(chunk.iter().copied(), |mut b, e| {
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
                .push_bind(&e.replay_of)
                .push_bind(&e.order_key)
                .push_bind(e.order_key.is_some())
                .push_bind(e.max_running)
                .push_bind(&e.parent_id);
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
             failed_step = f.column6, finished_at = f.column7, holds_order = f.column9, lease_owner = NULL, \
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
                .push_bind(&f.owner)
                .push_bind(f.holds_order);
        });
        qb.push(
            ") AS f WHERE executions.id = f.column1 AND executions.lease_owner = f.column8 AND executions.status = 'running'",
        );
        out.push((Writes::Finishes(chunk.len() as u64), qb));
    }
    // Step data successful runs do not keep (the flow's `diagnostics`); only for finishes that
    // applied (a finish fenced off by a lost lease leaves the execution running).
    for (scrub, sql) in [
        (
            Scrub::Io,
            "UPDATE step_attempts SET input = NULL, output = NULL WHERE status <> 'failed' AND execution_id IN (",
        ),
        (Scrub::All, "DELETE FROM step_attempts WHERE execution_id IN ("),
        (Scrub::All, "DELETE FROM execution_logs WHERE execution_id IN ("),
    ] {
        let ids: Vec<&str> = batch.finishes.iter().filter(|f| f.scrub == scrub).map(|f| f.id.as_str()).collect();
        for chunk in ids.chunks(MAX_ROWS) {
            let mut qb = QueryBuilder::new(sql);
            qb.push("SELECT id FROM executions WHERE status IN ('succeeded', 'filtered') AND id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push("))");
            out.push((Writes::Rows, qb));
        }
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
    for chunk in batch.states.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new("INSERT INTO trigger_state (tenant_id, integration, flow, state, updated_at) ");
        qb.push_values(chunk, |mut b, t| {
            b.push_bind(&t.tenant_id)
                .push_bind(&t.integration)
                .push_bind(&t.flow)
                .push_bind(&t.state)
                .push_bind(t.updated_at);
        });
        qb.push(
            " ON CONFLICT (tenant_id, integration, flow) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        );
        out.push((Writes::Rows, qb));
    }
    for chunk in batch.deliveries.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO deliveries (id, tenant_id, integration, flow, execution_id, step_id, kind, name, request, \
             message_id, schedule, status, next_at, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, d| {
            b.push_bind(&d.id)
                .push_bind(&d.tenant_id)
                .push_bind(&d.integration)
                .push_bind(&d.flow)
                .push_bind(&d.execution_id)
                .push_bind(&d.step_id)
                .push_bind(&d.kind)
                .push_bind(&d.name)
                .push_bind(&d.request)
                .push_bind(&d.message_id)
                .push_bind(&d.schedule)
                .push_bind("pending")
                .push_bind(d.next_at)
                .push_bind(d.created_at)
                .push_bind(d.created_at);
        });
        qb.push(" ON CONFLICT (id) DO NOTHING");
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
    secrets: Option<String>,
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
            secrets: r.secrets,
        }
    }
}

const VERSION_COLUMNS: &str =
    "v.id, v.tenant_id, v.slug, v.version, v.hash, v.format, v.source, v.document, v.created_at, v.secrets";

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

// The methods whose SQL is the same on both backends are in `crate::shared`.
crate::shared::store_impl! {
    SqliteStore, read: reader, write: writer;


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
            "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
             crashes = CASE WHEN (SELECT COUNT(*) FROM step_attempts s WHERE s.execution_id = executions.id) > crash_mark \
             THEN 1 ELSE crashes + 1 END, \
             crash_mark = (SELECT COUNT(*) FROM step_attempts s WHERE s.execution_id = executions.id) \
             WHERE status = 'running' AND lease_until < ?",
        )
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
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
        for email in &new.emails {
            let holder: Option<(String, String, String)> = sqlx::query_as(
                "SELECT tenant_id, integration, flow FROM email_routes WHERE address = ? AND NOT (tenant_id = ? AND integration = ?)",
            )
            .bind(&email.address)
            .bind(&new.tenant_id)
            .bind(&new.slug)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((tenant, integration, flow)) = holder {
                // Another tenant's flow is not named: tenants are sealed from each other.
                let holder = if tenant == new.tenant_id {
                    format!("flow `{flow}` of integration `{integration}`")
                } else {
                    "another tenant".to_owned()
                };
                return Err(Error::Conflict(format!("e-mail address `{}` is already used by {holder}", email.address)));
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
            "INSERT INTO integration_versions (tenant_id, slug, version, hash, format, source, document, created_at, secrets) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .bind(version)
        .bind(&new.hash)
        .bind(&new.format)
        .bind(&new.source)
        .bind(&new.document)
        .bind(new.now)
        .bind(&new.secrets)
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
        sqlx::query("DELETE FROM email_routes WHERE tenant_id = ? AND integration = ?")
            .bind(&new.tenant_id)
            .bind(&new.slug)
            .execute(&mut *tx)
            .await?;
        for email in &new.emails {
            sqlx::query("INSERT INTO email_routes (address, tenant_id, integration, flow) VALUES (?, ?, ?, ?)")
                .bind(&email.address)
                .bind(&new.tenant_id)
                .bind(&new.slug)
                .bind(&email.flow)
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
            secrets: new.secrets.clone(),
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
        for table in ["webhook_routes", "email_routes", "trigger_state", "flow_switches", "deployments"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = ? AND integration = ?"))
                .bind(tenant)
                .bind(slug)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn versions(&self, tenant: &str, slug: &str) -> Result<Vec<VersionRecord>> {
        let rows: Vec<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integration_versions v WHERE v.tenant_id = ? AND v.slug = ? ORDER BY v.version DESC"
        ))
        .bind(tenant)
        .bind(slug)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn reseal_all(
        &self,
        reseal: &(dyn for<'s> Fn(Sealed<'s>) -> std::result::Result<String, String> + Send + Sync),
    ) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let mut n = 0;
        let deployments: Vec<(String, String, String)> =
            sqlx::query_as("SELECT tenant_id, integration, config FROM deployments").fetch_all(&mut *tx).await?;
        for (tenant, integration, text) in deployments {
            let new = reseal(Sealed { kind: "deployment", tenant: &tenant, integration: &integration, text: &text })
                .map_err(Error::Config)?;
            sqlx::query("UPDATE deployments SET config = ? WHERE tenant_id = ? AND integration = ?")
                .bind(new)
                .bind(&tenant)
                .bind(&integration)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        let versions: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT id, tenant_id, slug, secrets FROM integration_versions WHERE secrets IS NOT NULL")
                .fetch_all(&mut *tx)
                .await?;
        for (id, tenant, integration, text) in versions {
            let new = reseal(Sealed { kind: "version", tenant: &tenant, integration: &integration, text: &text })
                .map_err(Error::Config)?;
            sqlx::query("UPDATE integration_versions SET secrets = ? WHERE id = ?")
                .bind(new)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        let deliveries: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, tenant_id, request FROM deliveries").fetch_all(&mut *tx).await?;
        for (id, tenant, text) in deliveries {
            let new = reseal(Sealed { kind: "delivery", tenant: &tenant, integration: &id, text: &text })
                .map_err(Error::Config)?;
            sqlx::query("UPDATE deliveries SET request = ? WHERE id = ?").bind(new).bind(&id).execute(&mut *tx).await?;
            n += 1;
        }
        let sources: Vec<(String, String, String)> =
            sqlx::query_as("SELECT tenant_id, name, config FROM log_sources").fetch_all(&mut *tx).await?;
        for (tenant, name, text) in sources {
            let new = reseal(Sealed { kind: "logSource", tenant: &tenant, integration: &name, text: &text })
                .map_err(Error::Config)?;
            sqlx::query("UPDATE log_sources SET config = ? WHERE tenant_id = ? AND name = ?")
                .bind(new)
                .bind(&tenant)
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        let smtp: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM settings WHERE key LIKE 'smtp/%' AND value <> ''")
                .fetch_all(&mut *tx)
                .await?;
        for (key, text) in smtp {
            let tenant = key.trim_start_matches("smtp/");
            let new = reseal(Sealed { kind: "smtp", tenant, integration: "", text: &text }).map_err(Error::Config)?;
            sqlx::query("UPDATE settings SET value = ? WHERE key = ?").bind(new).bind(&key).execute(&mut *tx).await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn due_deliveries(&self, now: i64, lease: i64, limit: u32) -> Result<Vec<DeliveryRecord>> {
        Ok(sqlx::query_as(
            "UPDATE deliveries SET next_at = ? WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?) RETURNING id, tenant_id, integration, flow, execution_id, step_id, kind, name, request, message_id, schedule, status, attempts, next_at, waiting, last_status, last_error, response, created_at, updated_at",
        )
        .bind(now + lease)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await?)
    }

    async fn finish_attempt(&self, id: &str, outcome: &AttemptOutcome, now: i64) -> Result<Option<String>> {
        let mut tx = self.writer.begin().await?;
        let a = &outcome.attempt;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, latency_ms, excerpt, error) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )
        .bind(id)
        .bind(a.attempt)
        .bind(a.at)
        .bind(a.status_code)
        .bind(a.latency_ms)
        .bind(&a.excerpt)
        .bind(&a.error)
        .execute(&mut *tx)
        .await?;
        let row: Option<(bool, Option<String>)> = sqlx::query_as(
            "UPDATE deliveries SET status = ?, attempts = ?, next_at = ?, last_status = ?, last_error = ?, response = COALESCE(?, response), updated_at = ? WHERE id = ? RETURNING waiting, execution_id",
        )
        .bind(&outcome.status)
        .bind(a.attempt)
        .bind(outcome.next_at)
        .bind(a.status_code)
        .bind(&a.error)
        .bind(&outcome.response)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut woken = None;
        if let Some((true, Some(execution))) = row
            && outcome.status != "pending"
        {
            let r = sqlx::query(
                "UPDATE executions SET status = 'queued', run_after = ? WHERE id = ? AND status = 'waiting'",
            )
            .bind(now)
            .bind(&execution)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() > 0 {
                woken = Some(execution);
            }
        }
        tx.commit().await?;
        Ok(woken)
    }

    async fn wait_for_delivery(&self, execution: &str, owner: &str, delivery: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query("UPDATE deliveries SET waiting = 1 WHERE id = ? AND status = 'pending'")
            .bind(delivery)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let r = sqlx::query(
            "UPDATE executions SET status = 'waiting', lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'running'",
        )
        .bind(execution)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            // The lease was lost: leave everything to the new holder.
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn commit(&self, batch: &WriteBatch) -> Result<CommitOutcome> {
        let keyed: Vec<&NewExecution> = batch.inserts.iter().filter(|e| e.dedup.is_some()).collect();
        if keyed.is_empty() {
            let mut statements = batch_statements(batch, &HashSet::new());
            if let [(writes, qb)] = statements.as_mut_slice() {
                // One statement is atomic on its own: skip BEGIN/COMMIT (two round trips).
                let r = qb.build().execute(&self.writer).await?;
                check_finishes(writes, r.rows_affected());
                return Ok(CommitOutcome::default());
            }
            if statements.is_empty() {
                return Ok(CommitOutcome::default());
            }
            let mut tx = self.writer.begin().await?;
            for (writes, qb) in &mut statements {
                let r = qb.build().execute(&mut *tx).await?;
                check_finishes(writes, r.rows_affected());
            }
            tx.commit().await?;
            return Ok(CommitOutcome::default());
        }
        let mut tx = self.writer.begin().await?;
        let mut outcome = CommitOutcome::default();
        let mut skip = HashSet::new();
        for e in keyed {
            let Some(d) = &e.dedup else { continue };
            // Claim the identity unless a live one holds it (an expired one is taken over).
            let claimed: Option<String> = sqlx::query_scalar(
                "INSERT INTO dedup_keys (tenant_id, integration, flow, key, execution_id, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant_id, integration, flow, key) \
                 DO UPDATE SET execution_id = excluded.execution_id, expires_at = excluded.expires_at \
                 WHERE dedup_keys.expires_at <= ?7 RETURNING execution_id",
            )
            .bind(&e.tenant_id)
            .bind(&e.integration)
            .bind(&e.flow)
            .bind(&d.key)
            .bind(&e.id)
            .bind(d.expires_at)
            .bind(e.created_at)
            .fetch_optional(&mut *tx)
            .await?;
            if claimed.as_deref() != Some(e.id.as_str()) {
                let first: String = sqlx::query_scalar(
                    "SELECT execution_id FROM dedup_keys WHERE tenant_id = ? AND integration = ? AND flow = ? AND key = ?",
                )
                .bind(&e.tenant_id)
                .bind(&e.integration)
                .bind(&e.flow)
                .bind(&d.key)
                .fetch_one(&mut *tx)
                .await?;
                outcome.duplicates.push((e.id.clone(), first));
                skip.insert(e.id.as_str());
            }
        }
        for (writes, qb) in &mut batch_statements(batch, &skip) {
            let r = qb.build().execute(&mut *tx).await?;
            check_finishes(writes, r.rows_affected());
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn claim_in(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        limit: usize,
        filter: &ClaimFilter,
    ) -> Result<Vec<Claimed>> {
        let json_each = |p: &str| format!("(SELECT value FROM json_each({p}))");
        let (lane, lists) = filter.sql(5, |n| format!("?{n}"), json_each);
        let lists: Vec<String> =
            lists.iter().map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".into())).collect();
        // Executions without order or cap: any due one, in order.
        let sql = format!(
            "UPDATE executions SET status = 'running', lease_owner = ?1, lease_until = ?2, started_at = COALESCE(started_at, ?3) \
             WHERE seq IN (SELECT seq FROM executions WHERE status = 'queued' AND run_after <= ?3 \
             AND order_key IS NULL AND max_running IS NULL {lane} ORDER BY run_after, seq LIMIT ?4) \
             RETURNING seq, id, tenant_id, integration, flow, version_id, trigger_kind, trigger, auth_label, attempt, created_at, replay_of, crashes",
        );
        let mut query = sqlx::query_as(&sql).bind(owner).bind(until).bind(now).bind(limit as i64);
        for l in &lists {
            query = query.bind(l);
        }
        let mut claimed: Vec<Claimed> = query.fetch_all(&self.writer).await?;
        if claimed.len() < limit {
            let (lane, _) = filter.sql(3, |n| format!("?{n}"), json_each);
            let gated = self.claim_gated(owner, now, until, limit - claimed.len(), &lane, &lists).await?;
            claimed.extend(gated);
        }
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    async fn skip_execution(&self, tenant: &str, id: &str) -> Result<ExecutionRow> {
        let r = sqlx::query(
            "UPDATE executions SET holds_order = 0 WHERE id = ? AND tenant_id = ? AND status = 'failed' AND holds_order = 1",
        )
        .bind(id)
        .bind(tenant)
        .execute(&self.writer)
        .await?;
        let row = execution_in(&self.writer, Some(tenant), id).await?.ok_or(Error::NotFound)?;
        if r.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "only a failed execution that blocks its order key can be skipped; this one is {}",
                row.status
            )));
        }
        Ok(row)
    }

    async fn blocked(&self, tenant: &str, integration: &str, flow: &str) -> Result<Vec<ExecutionRow>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
             WHERE e.tenant_id = ? AND e.integration = ? AND e.flow = ? AND e.holds_order = 1 AND e.status = 'failed' \
             ORDER BY e.seq"
        );
        Ok(sqlx::query_as(&sql).bind(tenant).bind(integration).bind(flow).fetch_all(&self.reader).await?)
    }

    async fn dedup_lookup(
        &self,
        tenant: &str,
        integration: &str,
        flow: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT execution_id FROM dedup_keys WHERE tenant_id = ? AND integration = ? AND flow = ? AND key = ? \
             AND expires_at > ?",
        )
        .bind(tenant)
        .bind(integration)
        .bind(flow)
        .bind(key)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn take_token(
        &self,
        tenant: &str,
        integration: &str,
        name: &str,
        per_second: f64,
        burst: u32,
        now: i64,
    ) -> Result<Option<i64>> {
        let per_ms = per_second / 1000.0;
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO rate_limits (tenant_id, integration, name, tokens, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, integration, name) DO NOTHING",
        )
        .bind(tenant)
        .bind(integration)
        .bind(name)
        .bind(f64::from(burst))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (tokens, updated_at, paused_until): (f64, i64, i64) = sqlx::query_as(
            "SELECT tokens, updated_at, paused_until FROM rate_limits WHERE tenant_id = ? AND integration = ? AND name = ?",
        )
        .bind(tenant)
        .bind(integration)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let (available, wait) = bucket(tokens, updated_at, paused_until, per_ms, burst, now);
        if wait.is_none() {
            sqlx::query("UPDATE rate_limits SET tokens = ?, updated_at = ? WHERE tenant_id = ? AND integration = ? AND name = ?")
                .bind(available - 1.0)
                .bind(now.max(updated_at))
                .bind(tenant)
                .bind(integration)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(wait)
    }

    async fn pause_limit(&self, tenant: &str, integration: &str, name: &str, until: i64) -> Result<()> {
        sqlx::query(
            "UPDATE rate_limits SET paused_until = MAX(paused_until, ?), tokens = MIN(tokens, 0) \
             WHERE tenant_id = ? AND integration = ? AND name = ?",
        )
        .bind(until)
        .bind(tenant)
        .bind(integration)
        .bind(name)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn count_executions(&self, filter: &ExecutionFilter) -> Result<(i64, i64)> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM executions WHERE ");
        push_filter(&mut qb, filter);
        Ok(qb.build_query_as().fetch_one(&self.reader).await?)
    }

    async fn execution_ids(&self, filter: &ExecutionFilter, after_seq: i64, limit: u32) -> Result<Vec<(i64, String)>> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT seq, id FROM executions WHERE ");
        push_filter(&mut qb, filter);
        qb.push(" AND seq > ").push_bind(after_seq).push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        Ok(qb.build_query_as().fetch_all(&self.reader).await?)
    }

    async fn update_bulk_job(&self, id: &str, done: i64, failed: i64, finished_at: Option<i64>) -> Result<()> {
        sqlx::query(
            "UPDATE bulk_jobs SET done = ?, failed = ?, finished_at = ?, \
             status = CASE WHEN ? IS NULL THEN 'running' ELSE 'done' END WHERE id = ?",
        )
        .bind(done)
        .bind(failed)
        .bind(finished_at)
        .bind(finished_at)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn prune(&self, scope: &PruneScope, older_than: Option<i64>, keep: Option<u64>, batch: u32) -> Result<u64> {
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT id FROM executions WHERE finished_at IS NOT NULL AND holds_order = 0");
        if let PruneScope::Flow { tenant, integration, flow } = scope {
            qb.push(" AND tenant_id = ").push_bind(tenant);
            qb.push(" AND integration = ").push_bind(integration);
            qb.push(" AND flow = ").push_bind(flow);
        }
        qb.push(" AND (");
        let mut any = false;
        if let Some(t) = older_than {
            qb.push("finished_at < ").push_bind(t);
            any = true;
        }
        if let Some(k) = keep {
            if any {
                qb.push(" OR ");
            }
            // Older than the newest `k` finished executions of the scope.
            qb.push("seq < COALESCE((SELECT seq FROM executions x WHERE x.finished_at IS NOT NULL");
            if let PruneScope::Flow { tenant, integration, flow } = scope {
                qb.push(" AND x.tenant_id = ").push_bind(tenant);
                qb.push(" AND x.integration = ").push_bind(integration);
                qb.push(" AND x.flow = ").push_bind(flow);
            }
            qb.push(" ORDER BY x.seq DESC LIMIT 1 OFFSET ").push_bind(keep_offset(k)).push("), -1)");
            any = true;
        }
        if !any {
            return Ok(0);
        }
        qb.push(") ORDER BY seq LIMIT ").push_bind(i64::from(batch));
        let ids: Vec<String> = qb.build_query_scalar().fetch_all(&self.reader).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.writer.begin().await?;
        for table in ["step_attempts", "execution_logs"] {
            let mut del = QueryBuilder::<Sqlite>::new(format!("DELETE FROM {table} WHERE execution_id IN ("));
            let mut list = del.separated(", ");
            for id in &ids {
                list.push_bind(id);
            }
            del.push(")");
            del.build().execute(&mut *tx).await?;
        }
        let mut del = QueryBuilder::<Sqlite>::new("DELETE FROM executions WHERE finished_at IS NOT NULL AND id IN (");
        let mut list = del.separated(", ");
        for id in &ids {
            list.push_bind(id);
        }
        del.push(")");
        let r = del.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    async fn purge_dedup(&self, now: i64, batch: u32) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM dedup_keys WHERE rowid IN (SELECT rowid FROM dedup_keys WHERE expires_at <= ? LIMIT ?)",
        )
        .bind(now)
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await?;
        // Call-tree buckets (engine `call`) idle for a day are full again: the same as none.
        let buckets = sqlx::query(
            "DELETE FROM rate_limits WHERE rowid IN (SELECT rowid FROM rate_limits WHERE integration = '' \
             AND name LIKE ? AND updated_at <= ? LIMIT ?)",
        )
        .bind("calls/%")
        .bind(now - 86_400_000)
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() + buckets.rows_affected())
    }

    async fn renew_leases(&self, owner: &str, ids: &[String], until: i64) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let r = sqlx::query(
            "UPDATE executions SET lease_until = ? WHERE lease_owner = ? AND status = 'running' \
             AND id IN (SELECT value FROM json_each(?))",
        )
        .bind(until)
        .bind(owner)
        .bind(ids)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }

    async fn release_lease(&self, owner: &str, id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND lease_owner = ? AND status = 'running'",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() > 0)
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

    async fn logs(&self, execution: &str) -> Result<Vec<LogRecord>> {
        Ok(sqlx::query_as(
            "SELECT execution_id, at, level, step_id, message FROM execution_logs WHERE execution_id = ? ORDER BY rowid",
        )
        .bind(execution)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn executions(&self, q: &ExecutionQuery) -> Result<Vec<ExecutionRow>> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {LISTING_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id WHERE e.tenant_id = "
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
             finished_at = NULL, output = NULL, cancel_requested = 0, holds_order = (order_key IS NOT NULL), crashes = 0 \
             WHERE id = ?",
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
            Status::Queued | Status::Waiting => {
                sqlx::query(
                    "UPDATE executions SET status = 'cancelled', finished_at = ?, holds_order = 0 WHERE id = ?",
                )
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

}

impl SqliteStore {
    /// Claims executions of ordered or capped flows: the head of each order group only, and
    /// no more than a flow's cap running at once. One transaction on the single writer, so
    /// the checks and the claims cannot interleave with another claim.
    async fn claim_gated(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        limit: usize,
        lane: &str,
        lists: &[String],
    ) -> Result<Vec<Claimed>> {
        let mut tx = self.writer.begin().await?;
        let sql = format!(
            "SELECT seq, tenant_id, integration, flow, max_running FROM executions e \
             WHERE status = 'queued' AND run_after <= ?1 AND (order_key IS NOT NULL OR max_running IS NOT NULL) {lane} \
             AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM executions p WHERE p.holds_order = 1 \
                  AND p.tenant_id = e.tenant_id AND p.integration = e.integration AND p.flow = e.flow \
                  AND p.order_key = e.order_key AND p.seq < e.seq)) \
             ORDER BY run_after, seq LIMIT ?2",
        );
        let mut query = sqlx::query_as(&sql).bind(now).bind((limit * 4) as i64);
        for l in lists {
            query = query.bind(l);
        }
        let candidates: Vec<(i64, String, String, String, Option<i64>)> = query.fetch_all(&mut *tx).await?;
        let mut running: std::collections::HashMap<(String, String, String), i64> = std::collections::HashMap::new();
        let mut claimed = Vec::new();
        for (seq, tenant, integration, flow, cap) in candidates {
            if claimed.len() >= limit {
                break;
            }
            if let Some(cap) = cap {
                let key = (tenant.clone(), integration.clone(), flow.clone());
                let n = match running.get(&key) {
                    Some(n) => *n,
                    None => {
                        let n: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM executions WHERE tenant_id = ? AND integration = ? AND flow = ? \
                             AND status = 'running'",
                        )
                        .bind(&tenant)
                        .bind(&integration)
                        .bind(&flow)
                        .fetch_one(&mut *tx)
                        .await?;
                        running.insert(key.clone(), n);
                        n
                    }
                };
                if n >= cap {
                    continue;
                }
                running.insert(key, n + 1);
            }
            // Claimed one by one: an earlier claim in this pass may have taken its group's head.
            let row: Option<Claimed> = sqlx::query_as(
                "UPDATE executions SET status = 'running', lease_owner = ?1, lease_until = ?2, \
                 started_at = COALESCE(started_at, ?3) WHERE seq = ?4 AND status = 'queued' \
                 AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM executions p WHERE p.holds_order = 1 \
                      AND p.tenant_id = executions.tenant_id AND p.integration = executions.integration \
                      AND p.flow = executions.flow AND p.order_key = executions.order_key AND p.seq < executions.seq)) \
                 RETURNING seq, id, tenant_id, integration, flow, version_id, trigger_kind, trigger, auth_label, attempt, \
                 created_at, replay_of, crashes",
            )
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
            claimed.extend(row);
        }
        tx.commit().await?;
        Ok(claimed)
    }
}

/// Filters of bulk operations and counts, after `WHERE `.
fn push_filter<'a>(qb: &mut QueryBuilder<'a, Sqlite>, f: &'a ExecutionFilter) {
    qb.push("tenant_id = ").push_bind(&f.tenant);
    if let Some(i) = &f.integration {
        qb.push(" AND integration = ").push_bind(i);
    }
    if let Some(fl) = &f.flow {
        qb.push(" AND flow = ").push_bind(fl);
    }
    if let Some(s) = &f.status {
        qb.push(" AND status = ").push_bind(s);
    }
    if let Some(t) = f.from {
        qb.push(" AND created_at >= ").push_bind(t);
    }
    if let Some(t) = f.to {
        qb.push(" AND created_at < ").push_bind(t);
    }
    if let Some(seq) = f.through_seq {
        qb.push(" AND seq <= ").push_bind(seq);
    }
    if !f.ids.is_empty() {
        qb.push(" AND id IN (");
        let mut list = qb.separated(", ");
        for id in &f.ids {
            list.push_bind(id);
        }
        qb.push(")");
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
