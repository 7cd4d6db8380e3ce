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

use crate::shared::{
    CLAIMED_COLUMNS, EXECUTION_COLUMNS, LISTING_COLUMNS, QUEUED_FREE, QUEUED_GATED, VERSION_COLUMNS, conflict_on_unique,
};
use crate::types::*;
use crate::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::broadcast;

/// The channel Flowgate's nodes talk on, followed by the schema's name: deployments sharing a
/// database in separate schemas do not hear each other.
const CHANNEL_PREFIX: &str = "flowgate_events";

/// A pooled connection idle this long is pinged before it is lent again.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);
/// First half of the leader's advisory lock key ("flow" in ASCII); the second half is a hash of
/// the schema, so deployments sharing a database in separate schemas elect separate leaders.
const LEADER_KEY: i32 = 0x666c_6f77;
/// Events buffered for slow subscribers before they are told to resync.
const EVENT_BUFFER: usize = 4096;
/// Largest `NOTIFY` payload PostgreSQL accepts is 8000 bytes; events are packed below that.
const MAX_PAYLOAD: usize = 7000;

/// PostgreSQL's planner picks its indexes itself.
const SUSPECTS_INDEX: &str = "";
const BY_FLOW_INDEX: &str = "";

/// The PostgreSQL store.
pub struct PgStore {
    /// The flow the last claim's walk over flows served (`shared::claims`).
    claim_cursor: std::sync::Mutex<Option<FlowKeyBuf>>,
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
        // sqlx pings a connection before lending it by default: one more network round trip
        // per statement. A connection that was lent a moment ago is known to be alive; one
        // that sat idle (the server may have restarted meanwhile) is still checked.
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
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
        Ok(PgStore {
            claim_cursor: Default::default(),
            pool,
            events,
            leader: tokio::sync::Mutex::new(None),
            leader_pool,
            channel,
            closed,
        })
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

/// `= ANY($n)`: the ids bound as one array.
fn push_ids<'a>(qb: &mut QueryBuilder<'a, Postgres>, ids: &'a [String]) {
    qb.push(" = ANY(").push_bind(ids).push(")");
}

/// Serialises transactions on `key` across nodes until this one ends (an advisory lock in
/// this schema, held to the end of the transaction).
async fn serialise(tx: &mut sqlx::Transaction<'_, Postgres>, key: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext($1))")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// SQL spelled differently by PostgreSQL (see `crate::shared`).
const GREATEST: &str = "GREATEST";
const LEAST: &str = "LEAST";
const ROW_ID: &str = "ctid";
/// Rows being claimed are skipped by other nodes' claims instead of waited for.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
/// Reads in a transaction that will update the row lock it against other nodes.
const FOR_UPDATE: &str = " FOR UPDATE";

/// PostgreSQL refuses an upsert that touches one row twice in a statement: a batch keeps the
/// last of each.
const DEDUP_UPSERTS: bool = true;
/// PostgreSQL refuses NUL characters in text: commits store them as U+FFFD (`crate::nul`).
const SCRUB_NUL: bool = true;

impl PgStore {
    /// The batch's events as `pg_notify` calls, sent by the commit that causes them.
    fn event_statements<'a>(&'a self, batch: &'a WriteBatch) -> impl Iterator<Item = QueryBuilder<'a, Postgres>> {
        payloads(&batch.events).into_iter().map(|payload| {
            let mut qb = QueryBuilder::new("SELECT pg_notify(");
            qb.push_bind(&self.channel).push(", ").push_bind(payload).push(")");
            qb
        })
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

impl PgStore {
    /// Claims executions of ordered or capped flows: the head of each order group only, and
    /// no more than a flow's cap running at once across nodes. Each flow's claims are
    /// serialised across nodes by an advisory lock held to the end of the transaction, so the
    /// checks and the claims cannot interleave with another node's.
    async fn claim_gated(
        &self,
        lease: Lease<'_>,
        limit: usize,
        lane: &str,
        lists: &[Vec<String>],
        shares: &mut ShareRoom,
    ) -> Result<Vec<Claimed>> {
        let Lease { owner, now, until } = lease;
        let sql = format!(
            "SELECT seq, tenant_id, integration, flow, max_running FROM executions e \
             WHERE status = 'queued' AND run_after <= $1 AND (order_key IS NOT NULL OR max_running IS NOT NULL) {lane} \
             AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM executions p WHERE p.holds_order \
                  AND p.tenant_id = e.tenant_id AND p.integration = e.integration AND p.flow = e.flow \
                  AND p.order_key = e.order_key AND p.seq < e.seq)) \
             ORDER BY run_after, seq LIMIT $2",
        );
        let mut query = sqlx::query_as(&sql).bind(now).bind((limit * 4) as i64);
        for l in lists {
            query = query.bind(l);
        }
        let candidates: Vec<(i64, String, String, String, Option<i64>)> = query.fetch_all(&self.pool).await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // (tenant, integration, flow, cap, candidate seqs in order), flows in order of first candidate.
        type FlowCandidates = (String, String, String, Option<i64>, Vec<i64>);
        let mut flows: Vec<FlowCandidates> = Vec::new();
        for (seq, tenant, integration, flow, cap) in candidates {
            match flows.iter_mut().find(|f| f.0 == tenant && f.1 == integration && f.2 == flow) {
                Some(f) => f.4.push(seq),
                None => flows.push((tenant, integration, flow, cap, vec![seq])),
            }
        }
        let returning = CLAIMED_COLUMNS.split(", ").map(|c| format!("executions.{c}")).collect::<Vec<_>>().join(", ");
        let mut claimed = Vec::new();
        for (tenant, integration, flow, cap, seqs) in flows {
            if claimed.len() >= limit {
                break;
            }
            let flow_key = FlowKey { tenant: &tenant, integration: &integration, flow: &flow };
            if shares.room(flow_key) == 0 {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext($1 || '/' || $2 || '/' || $3))",
            )
            .bind(&tenant)
            .bind(&integration)
            .bind(&flow)
            .execute(&mut *tx)
            .await?;
            let mut room = i64::MAX;
            if let Some(cap) = cap {
                let running: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM executions WHERE tenant_id = $1 AND integration = $2 AND flow = $3 \
                     AND status = 'running'",
                )
                .bind(&tenant)
                .bind(&integration)
                .bind(&flow)
                .fetch_one(&mut *tx)
                .await?;
                room = cap - running;
            }
            for seq in seqs {
                if room <= 0 || claimed.len() >= limit || shares.room(flow_key) == 0 {
                    break;
                }
                let row: Option<Claimed> = sqlx::query_as(&format!(
                    "UPDATE executions SET status = 'running', lease_owner = $1, lease_until = $2, \
                     started_at = COALESCE(started_at, $3) WHERE seq = $4 AND status = 'queued' \
                     AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM executions p WHERE p.holds_order \
                          AND p.tenant_id = executions.tenant_id AND p.integration = executions.integration \
                          AND p.flow = executions.flow AND p.order_key = executions.order_key AND p.seq < executions.seq)) \
                     RETURNING {returning}"
                ))
                .bind(owner)
                .bind(until)
                .bind(now)
                .bind(seq)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(r) = row {
                    claimed.push(r);
                    room -= 1;
                    shares.take(flow_key);
                }
            }
            tx.commit().await?;
        }
        Ok(claimed)
    }
}

// The methods whose SQL is the same on both backends are in `crate::shared`.
crate::shared::store_impl! {
    PgStore, db: Postgres, read: pool, write: pool;


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
             UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
             crashes = CASE WHEN (SELECT COUNT(*) FROM step_attempts s WHERE s.execution_id = executions.id) > crash_mark \
             THEN 1 ELSE crashes + 1 END, \
             crash_mark = (SELECT COUNT(*) FROM step_attempts s WHERE s.execution_id = executions.id) \
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
        let mut tx = self.pool.begin().await?;
        let mut claimed = claim_free(&mut tx, &self.claim_cursor, lease, limit, filter, &mut room).await?;
        tx.commit().await?;
        if claimed.len() < limit {
            let unnest = |p: &str| format!("(SELECT unnest({p}::text[]))");
            let (lane, lists) = filter.sql(&room, 3, |n| format!("${n}"), unnest);
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
        let r = sqlx::query(
            "UPDATE executions SET lease_until = $1 WHERE lease_owner = $2 AND status = 'running' AND id = ANY($3)",
        )
        .bind(until)
        .bind(owner)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn release_lease(&self, owner: &str, id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() > 0 {
            self.notify(&[StoreEvent::Work]).await?;
        }
        Ok(r.rows_affected() > 0)
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

    async fn logs(&self, execution: &str) -> Result<Vec<LogRecord>> {
        Ok(sqlx::query_as(
            "SELECT execution_id, at, level, step_id, message FROM execution_logs WHERE execution_id = $1 ORDER BY n",
        )
        .bind(execution)
        .fetch_all(&self.pool)
        .await?)
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
             failed_step = NULL, finished_at = NULL, output = NULL, cancel_requested = false, \
             holds_order = (order_key IS NOT NULL), crashes = 0 WHERE id = $2",
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
            Status::Queued | Status::Waiting => {
                sqlx::query(
                    "UPDATE executions SET status = 'cancelled', finished_at = $1, holds_order = false WHERE id = $2",
                )
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
                let event = StoreEvent::Cancel { id: id.to_owned(), attempt: row.attempt };
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
