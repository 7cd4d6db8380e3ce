//! The embedded SQLite backend: one file in the data directory, WAL, `synchronous=FULL` by
//! default.
//!
//! SQLite has one writer at a time, so the store keeps exactly one writer connection and
//! sends every write through it; reads go through a small pool beside it (WAL lets readers
//! and the writer proceed together). Throughput comes from batching, not from concurrency:
//! `Store::commit` writes a whole [`WriteBatch`] in one transaction of multi-row statements
//! (up to 64 rows each, `shared::batch`); a batch that fits in one statement needs no transaction
//! around it.

use crate::shared::{
    CLAIMED_COLUMNS, EXECUTION_COLUMNS, LISTING_COLUMNS, QUEUED_FREE, QUEUED_GATED, VERSION_COLUMNS, conflict_on_unique,
};
use crate::types::*;
use crate::{Error, Result};
mod writer;

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use writer::Writer;

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
    /// The flow the last claim's walk over flows served (`shared::claims`).
    claim_cursor: std::sync::Mutex<Option<FlowKeyBuf>>,
    writer: Writer,
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
            // Pages are read through a memory map rather than copied in by `pread`: a reader's
            // page cache is dropped whenever another connection wrote, which under a steady
            // write load (ingress, a dry run's results) made every read re-copy its pages.
            .pragma("mmap_size", "268435456")
            .pragma("temp_store", "memory")
            // A WAL that grew under load is cut back to this size when it restarts.
            .pragma("journal_size_limit", "67108864");
        // Checkpoints run on their own connection in the background (below): left to the
        // writer, every ~4 MB of WAL one commit would stall for the copy and its fsync, and
        // every caller waiting on that commit with it. The writer still checkpoints if the WAL
        // passes ~80 MB, in case the background one cannot keep up.
        // The writer is one connection under a lock (`writer.rs`: sqlx's pool would ping it
        // on every statement); the readers' pool does not ping before lending (a file does
        // not hang up).
        let mut writer = opts.clone().pragma("wal_autocheckpoint", "20000").connect().await?;
        sqlx::migrate!("./migrations/sqlite").run_direct(&mut writer).await?;
        let writer = Writer::new(writer);
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts.clone())
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts)
            .await?;
        tokio::spawn(checkpoint_loop(checkpointer.clone()));
        Ok(SqliteStore { claim_cursor: Default::default(), writer, reader, checkpointer })
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.checkpointer.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// `IN (…)` with the ids bound one by one.
fn push_ids<'a>(qb: &mut QueryBuilder<'a, Sqlite>, ids: &'a [String]) {
    qb.push(" IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    qb.push(")");
}

/// Nothing to do: the single writer already serialises every transaction.
async fn serialise(_tx: &mut writer::WriterTx<'_>, _key: &str) -> Result<()> {
    Ok(())
}

/// SQL spelled differently by SQLite (see `crate::shared`).
const GREATEST: &str = "MAX";
const LEAST: &str = "MIN";
const ROW_ID: &str = "rowid";
/// Claims take rows without locking them: the single writer serialises every change.
const SKIP_LOCKED: &str = "";
const FOR_UPDATE: &str = "";
/// Without statistics SQLite would read the suspects through the free work's index.
const SUSPECTS_INDEX: &str = "INDEXED BY executions_suspects";
/// The queued work per flow (`shared::claims`).
const BY_FLOW_INDEX: &str = "INDEXED BY executions_queued_by_flow";

/// SQLite lets one statement upsert a row several times (the last row wins).
const DEDUP_UPSERTS: bool = false;
/// SQLite keeps NUL characters in text as they are.
const SCRUB_NUL: bool = false;

impl SqliteStore {
    /// Events travel inside the node: none go through the database.
    fn event_statements<'a>(&'a self, _batch: &'a WriteBatch) -> std::iter::Empty<QueryBuilder<'a, Sqlite>> {
        std::iter::empty()
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

// The methods whose SQL is the same on both backends are in `crate::shared`.
crate::shared::store_impl! {
    SqliteStore, db: Sqlite, read: reader, write: writer;


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

    async fn claim_in(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        limit: usize,
        filter: &ClaimFilter,
    ) -> Result<Vec<Claimed>> {
        let lease = Lease { owner, now, until };
        let mut room = filter.shares.clone();
        let mut writer = self.writer.acquire().await?;
        let mut claimed = claim_free(&mut writer, &self.claim_cursor, lease, limit, filter, &mut room).await?;
        drop(writer);
        if claimed.len() < limit {
            let json_each = |p: &str| format!("(SELECT value FROM json_each({p}))");
            let (lane, lists) = filter.sql(&room, 3, |n| format!("?{n}"), json_each);
            let lists: Vec<String> =
                lists.iter().map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".into())).collect();
            let gated = self.claim_gated(lease, limit - claimed.len(), &lane, &lists, &mut room).await?;
            claimed.extend(gated);
        }
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
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
        // A token refresh the previous process was making died with it (no one else could
        // be making it: one process owns the file).
        sqlx::query("UPDATE connection_tokens SET refresh_owner = NULL, refresh_until = NULL WHERE refresh_owner IS NOT NULL")
            .execute(&self.writer)
            .await?;
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
        lease: Lease<'_>,
        limit: usize,
        lane: &str,
        lists: &[String],
        room: &mut ShareRoom,
    ) -> Result<Vec<Claimed>> {
        let Lease { owner, now, until } = lease;
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
            let flow_key = FlowKey { tenant: &tenant, integration: &integration, flow: &flow };
            if room.room(flow_key) == 0 {
                continue;
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
            let row: Option<Claimed> = sqlx::query_as(&format!(
                "UPDATE executions SET status = 'running', lease_owner = ?1, lease_until = ?2, \
                 started_at = COALESCE(started_at, ?3) WHERE seq = ?4 AND status = 'queued' \
                 AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM executions p WHERE p.holds_order = 1 \
                      AND p.tenant_id = executions.tenant_id AND p.integration = executions.integration \
                      AND p.flow = executions.flow AND p.order_key = executions.order_key AND p.seq < executions.seq)) \
                 RETURNING {CLAIMED_COLUMNS}",
            ))
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
            if row.is_some() {
                room.take(flow_key);
            }
            claimed.extend(row);
        }
        tx.commit().await?;
        Ok(claimed)
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
// `open` stays `Send` (a server handler opens throwaway stores for flow tests); sqlx's
// `Migrator::run` on a connection would not be.
const _: fn(&'static Path) = |path| {
    fn is_send<T: Send>(_: T) {}
    is_send(SqliteStore::open(path, Durability::Full));
};
