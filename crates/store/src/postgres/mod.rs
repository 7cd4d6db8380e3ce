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
use crate::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder};
use std::collections::HashSet;
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
     e.output, e.response, e.error, e.failed_step, e.replay_of, e.cancel_requested, e.order_key, e.holds_order, \
     e.parent_id, e.crashes";
/// Columns of [`ExecutionRow`] in listings: without the event and the result, which may be
/// megabytes each (a page of them would be hundreds).
const LISTING_COLUMNS: &str = "e.seq, e.id, e.tenant_id, e.integration, e.flow, e.version_id, v.version, e.status, \
     e.trigger_kind, '' AS trigger, e.auth_label, e.attempt, e.run_after, e.created_at, e.started_at, e.finished_at, \
     NULL AS output, NULL AS response, e.error, e.failed_step, e.replay_of, e.cancel_requested, e.order_key, e.holds_order, \
     e.parent_id, e.crashes";
const VERSION_COLUMNS: &str =
    "v.id, v.tenant_id, v.slug, v.version, v.hash, v.format, v.source, v.document, v.created_at, v.secrets";
const CLAIMED_COLUMNS: &str = "seq, id, tenant_id, integration, flow, version_id, trigger_kind, trigger, auth_label, attempt, created_at, replay_of, crashes";

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

impl PgStore {
    /// Claims executions of ordered or capped flows: the head of each order group only, and
    /// no more than a flow's cap running at once across nodes. Each flow's claims are
    /// serialised across nodes by an advisory lock held to the end of the transaction, so the
    /// checks and the claims cannot interleave with another node's.
    async fn claim_gated(
        &self,
        owner: &str,
        now: i64,
        until: i64,
        limit: usize,
        lane: &str,
        lists: &[&[String]],
    ) -> Result<Vec<Claimed>> {
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
            query = query.bind(*l);
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
                if room <= 0 || claimed.len() >= limit {
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
                }
            }
            tx.commit().await?;
        }
        Ok(claimed)
    }
}

/// Filters of bulk operations and counts, after `WHERE `.
fn push_filter<'a>(qb: &mut QueryBuilder<'a, Postgres>, f: &'a ExecutionFilter) {
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
        qb.push(" AND id = ANY(").push_bind(&f.ids).push(")");
    }
}

/// What a statement of a batch writes (to check finishes against lost leases).
enum Writes {
    Rows,
    Finishes(u64),
}

fn batch_statements<'a>(
    batch: &'a WriteBatch,
    channel: &'a str,
    skip: &HashSet<&str>,
) -> Vec<(Writes, QueryBuilder<'a, Postgres>)> {
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
             error = f.error, failed_step = f.failed_step, finished_at = f.finished_at, holds_order = f.holds_order, \
             lease_owner = NULL, lease_until = NULL FROM (",
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
            ") AS f(id, status, output, response, error, failed_step, finished_at, owner, holds_order) \
             WHERE executions.id = f.id AND executions.lease_owner = f.owner AND executions.status = 'running'",
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
    // One row per flow in a statement (ON CONFLICT cannot touch a row twice): the last wins.
    let mut seen = HashSet::new();
    let states: Vec<&TriggerState> = batch
        .states
        .iter()
        .rev()
        .filter(|t| seen.insert((t.tenant_id.as_str(), t.integration.as_str(), t.flow.as_str())))
        .collect();
    for chunk in states.chunks(MAX_ROWS) {
        let mut qb = QueryBuilder::new("INSERT INTO trigger_state (tenant_id, integration, flow, state, updated_at) ");
        qb.push_values(chunk.iter().copied(), |mut b, t| {
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

// The methods whose SQL is the same on both backends are in `crate::shared`.
crate::shared::store_impl! {
    PgStore, read: pool, write: pool;


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

    async fn create_token(&self, t: &NewToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, name, token_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(crate::nul::scrub(&t.name).as_ref())
        .bind(&t.token_hash)
        .bind(&t.prefix)
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, || "this token exists".into()))?;
        Ok(())
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
        if !new.emails.is_empty() {
            // Addresses are unique across tenants: serialise applies that claim any.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext('email_routes'))")
                .execute(&mut *tx)
                .await?;
        }
        for email in &new.emails {
            let holder: Option<(String, String, String)> = sqlx::query_as(
                "SELECT tenant_id, integration, flow FROM email_routes WHERE address = $1 \
                 AND NOT (tenant_id = $2 AND integration = $3)",
            )
            .bind(&email.address)
            .bind(&new.tenant_id)
            .bind(&new.slug)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((tenant, integration, flow)) = holder {
                tx.rollback().await?;
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
            "SELECT COALESCE(MAX(version), 0) + 1 FROM integration_versions WHERE tenant_id = $1 AND slug = $2",
        )
        .bind(&new.tenant_id)
        .bind(&new.slug)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO integration_versions (tenant_id, slug, version, hash, format, source, document, created_at, secrets) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
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
        sqlx::query("DELETE FROM email_routes WHERE tenant_id = $1 AND integration = $2")
            .bind(&new.tenant_id)
            .bind(&new.slug)
            .execute(&mut *tx)
            .await?;
        for email in &new.emails {
            sqlx::query("INSERT INTO email_routes (address, tenant_id, integration, flow) VALUES ($1, $2, $3, $4)")
                .bind(&email.address)
                .bind(&new.tenant_id)
                .bind(&new.slug)
                .bind(&email.flow)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_on_unique(e, || format!("e-mail address `{}` is already used", email.address)))?;
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
        for table in ["webhook_routes", "email_routes", "trigger_state", "flow_switches", "deployments"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND integration = $2"))
                .bind(tenant)
                .bind(slug)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn versions(&self, tenant: &str, slug: &str) -> Result<Vec<VersionRecord>> {
        let rows: Vec<VersionRecord> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM integration_versions v WHERE v.tenant_id = $1 AND v.slug = $2 ORDER BY v.version DESC"
        ))
        .bind(tenant)
        .bind(slug)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn reseal_all(
        &self,
        reseal: &(dyn for<'s> Fn(Sealed<'s>) -> std::result::Result<String, String> + Send + Sync),
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        let deployments: Vec<(String, String, String)> =
            sqlx::query_as("SELECT tenant_id, integration, config FROM deployments").fetch_all(&mut *tx).await?;
        for (tenant, integration, text) in deployments {
            let new = reseal(Sealed { kind: "deployment", tenant: &tenant, integration: &integration, text: &text })
                .map_err(Error::Config)?;
            sqlx::query("UPDATE deployments SET config = $1 WHERE tenant_id = $2 AND integration = $3")
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
            sqlx::query("UPDATE integration_versions SET secrets = $1 WHERE id = $2")
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
            sqlx::query("UPDATE deliveries SET request = $1 WHERE id = $2")
                .bind(new)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        let sources: Vec<(String, String, String)> =
            sqlx::query_as("SELECT tenant_id, name, config FROM log_sources").fetch_all(&mut *tx).await?;
        for (tenant, name, text) in sources {
            let new = reseal(Sealed { kind: "logSource", tenant: &tenant, integration: &name, text: &text })
                .map_err(Error::Config)?;
            sqlx::query("UPDATE log_sources SET config = $1 WHERE tenant_id = $2 AND name = $3")
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
            sqlx::query("UPDATE settings SET value = $1 WHERE key = $2").bind(new).bind(&key).execute(&mut *tx).await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn due_deliveries(&self, now: i64, lease: i64, limit: u32) -> Result<Vec<DeliveryRecord>> {
        Ok(sqlx::query_as(
            "UPDATE deliveries SET next_at = $1 WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= $2 ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, tenant_id, integration, flow, execution_id, step_id, kind, name, request, message_id, schedule, status, attempts, next_at, waiting, last_status, last_error, response, created_at, updated_at",
        )
        .bind(now + lease)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn finish_attempt(&self, id: &str, outcome: &AttemptOutcome, now: i64) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let a = &outcome.attempt;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, latency_ms, excerpt, error) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )
        .bind(id)
        .bind(a.attempt)
        .bind(a.at)
        .bind(a.status_code)
        .bind(a.latency_ms)
        .bind(a.excerpt.as_deref().map(crate::nul::scrub))
        .bind(a.error.as_deref().map(crate::nul::scrub))
        .execute(&mut *tx)
        .await?;
        let row: Option<(bool, Option<String>)> = sqlx::query_as(
            "UPDATE deliveries SET status = $1, attempts = $2, next_at = $3, last_status = $4, last_error = $5, response = COALESCE($6, response), updated_at = $7 WHERE id = $8 RETURNING waiting, execution_id",
        )
        .bind(&outcome.status)
        .bind(a.attempt)
        .bind(outcome.next_at)
        .bind(a.status_code)
        .bind(a.error.as_deref().map(crate::nul::scrub))
        .bind(outcome.response.as_deref().map(crate::nul::scrub))
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut woken = None;
        if let Some((true, Some(execution))) = row
            && outcome.status != "pending"
        {
            let r = sqlx::query(
                "UPDATE executions SET status = 'queued', run_after = $1 WHERE id = $2 AND status = 'waiting'",
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
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE deliveries SET waiting = true WHERE id = $1 AND status = 'pending'")
            .bind(delivery)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let r = sqlx::query(
            "UPDATE executions SET status = 'waiting', lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
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
        let scrubbed;
        let batch = if crate::nul::batch_has_nul(batch) {
            scrubbed = crate::nul::scrub_batch(batch);
            &scrubbed
        } else {
            batch
        };
        let keyed: Vec<&NewExecution> = batch.inserts.iter().filter(|e| e.dedup.is_some()).collect();
        if keyed.is_empty() {
            let mut statements = batch_statements(batch, &self.channel, &HashSet::new());
            if let [(writes, qb)] = statements.as_mut_slice() {
                let r = qb.build().execute(&self.pool).await?;
                check_finishes(writes, r.rows_affected());
                return Ok(CommitOutcome::default());
            }
            if statements.is_empty() {
                return Ok(CommitOutcome::default());
            }
            let mut tx = self.pool.begin().await?;
            for (writes, qb) in &mut statements {
                let r = qb.build().execute(&mut *tx).await?;
                check_finishes(writes, r.rows_affected());
            }
            tx.commit().await?;
            return Ok(CommitOutcome::default());
        }
        let mut tx = self.pool.begin().await?;
        let mut outcome = CommitOutcome::default();
        let mut skip = HashSet::new();
        for e in keyed {
            let Some(d) = &e.dedup else { continue };
            // Claim the identity unless a live one holds it (an expired one is taken over);
            // concurrent claims on other nodes wait on the row and then see ours.
            let claimed: Option<String> = sqlx::query_scalar(
                "INSERT INTO dedup_keys (tenant_id, integration, flow, key, execution_id, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, integration, flow, key) \
                 DO UPDATE SET execution_id = excluded.execution_id, expires_at = excluded.expires_at \
                 WHERE dedup_keys.expires_at <= $7 RETURNING execution_id",
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
                    "SELECT execution_id FROM dedup_keys WHERE tenant_id = $1 AND integration = $2 AND flow = $3 AND key = $4",
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
        for (writes, qb) in &mut batch_statements(batch, &self.channel, &skip) {
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
        let unnest = |p: &str| format!("(SELECT unnest({p}::text[]))");
        let (lane, lists) = filter.sql(5, |n| format!("${n}"), unnest);
        let returning = CLAIMED_COLUMNS.split(", ").map(|c| format!("executions.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "WITH next AS (SELECT seq FROM executions WHERE status = 'queued' AND run_after <= $3 \
             AND order_key IS NULL AND max_running IS NULL {lane} ORDER BY run_after, seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE executions SET status = 'running', lease_owner = $1, lease_until = $2, \
             started_at = COALESCE(started_at, $3) FROM next WHERE executions.seq = next.seq \
             RETURNING {returning}"
        );
        let mut query = sqlx::query_as(&sql).bind(owner).bind(until).bind(now).bind(limit as i64);
        for l in &lists {
            query = query.bind(*l);
        }
        let mut claimed: Vec<Claimed> = query.fetch_all(&self.pool).await?;
        if claimed.len() < limit {
            let (lane, _) = filter.sql(3, |n| format!("${n}"), unnest);
            let gated = self.claim_gated(owner, now, until, limit - claimed.len(), &lane, &lists).await?;
            claimed.extend(gated);
        }
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    async fn skip_execution(&self, tenant: &str, id: &str) -> Result<ExecutionRow> {
        let r = sqlx::query(
            "UPDATE executions SET holds_order = false WHERE id = $1 AND tenant_id = $2 AND status = 'failed' AND holds_order",
        )
        .bind(id)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        let row = execution_in(&self.pool, Some(tenant), id).await?.ok_or(Error::NotFound)?;
        if r.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "only a failed execution that blocks its order key can be skipped; this one is {}",
                row.status
            )));
        }
        self.notify(&[StoreEvent::Work]).await?;
        Ok(row)
    }

    async fn blocked(&self, tenant: &str, integration: &str, flow: &str) -> Result<Vec<ExecutionRow>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
             WHERE e.tenant_id = $1 AND e.integration = $2 AND e.flow = $3 AND e.holds_order AND e.status = 'failed' \
             ORDER BY e.seq"
        );
        Ok(sqlx::query_as(&sql).bind(tenant).bind(integration).bind(flow).fetch_all(&self.pool).await?)
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
            "SELECT execution_id FROM dedup_keys WHERE tenant_id = $1 AND integration = $2 AND flow = $3 AND key = $4 \
             AND expires_at > $5",
        )
        .bind(tenant)
        .bind(integration)
        .bind(flow)
        .bind(crate::nul::scrub(key).as_ref())
        .bind(now)
        .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO rate_limits (tenant_id, integration, name, tokens, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, integration, name) DO NOTHING",
        )
        .bind(tenant)
        .bind(integration)
        .bind(name)
        .bind(f64::from(burst))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The row lock serialises every node's takers of this bucket.
        let (tokens, updated_at, paused_until): (f64, i64, i64) = sqlx::query_as(
            "SELECT tokens, updated_at, paused_until FROM rate_limits WHERE tenant_id = $1 AND integration = $2 \
             AND name = $3 FOR UPDATE",
        )
        .bind(tenant)
        .bind(integration)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let (available, wait) = bucket(tokens, updated_at, paused_until, per_ms, burst, now);
        if wait.is_none() {
            sqlx::query(
                "UPDATE rate_limits SET tokens = $1, updated_at = $2 WHERE tenant_id = $3 AND integration = $4 AND name = $5",
            )
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
            "UPDATE rate_limits SET paused_until = GREATEST(paused_until, $1), tokens = LEAST(tokens, 0) \
             WHERE tenant_id = $2 AND integration = $3 AND name = $4",
        )
        .bind(until)
        .bind(tenant)
        .bind(integration)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn count_executions(&self, filter: &ExecutionFilter) -> Result<(i64, i64)> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM executions WHERE ");
        push_filter(&mut qb, filter);
        Ok(qb.build_query_as().fetch_one(&self.pool).await?)
    }

    async fn execution_ids(&self, filter: &ExecutionFilter, after_seq: i64, limit: u32) -> Result<Vec<(i64, String)>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT seq, id FROM executions WHERE ");
        push_filter(&mut qb, filter);
        qb.push(" AND seq > ").push_bind(after_seq).push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        Ok(qb.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn update_bulk_job(&self, id: &str, done: i64, failed: i64, finished_at: Option<i64>) -> Result<()> {
        sqlx::query(
            "UPDATE bulk_jobs SET done = $1, failed = $2, finished_at = $3, \
             status = CASE WHEN $3::bigint IS NULL THEN 'running' ELSE 'done' END WHERE id = $4",
        )
        .bind(done)
        .bind(failed)
        .bind(finished_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn prune(&self, scope: &PruneScope, older_than: Option<i64>, keep: Option<u64>, batch: u32) -> Result<u64> {
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT id FROM executions WHERE finished_at IS NOT NULL AND NOT holds_order",
        );
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
        let ids: Vec<String> = qb.build_query_scalar().fetch_all(&self.pool).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM step_attempts WHERE execution_id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM execution_logs WHERE execution_id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM executions WHERE finished_at IS NOT NULL AND id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    async fn purge_dedup(&self, now: i64, batch: u32) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM dedup_keys WHERE ctid IN (SELECT ctid FROM dedup_keys WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(now)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        // Call-tree buckets (engine `call`) idle for a day are full again: the same as none.
        let buckets = sqlx::query(
            "DELETE FROM rate_limits WHERE ctid IN (SELECT ctid FROM rate_limits WHERE integration = '' \
             AND name LIKE $1 AND updated_at <= $2 LIMIT $3)",
        )
        .bind("calls/%")
        .bind(now - 86_400_000)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() + buckets.rows_affected())
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

    async fn executions(&self, q: &ExecutionQuery) -> Result<Vec<ExecutionRow>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {LISTING_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
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
