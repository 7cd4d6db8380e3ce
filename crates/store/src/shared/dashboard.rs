//! The console's dashboard: one tenant's executions over a time range, its queue and its pending
//! deliveries (records and arithmetic in [`crate::dashboard`]).
//!
//! Every statement is bounded by the tenant and, for executions, a time range or a status, and
//! each is served by an index (most from migration `0013_dashboard.sql`), checked with `EXPLAIN QUERY
//! PLAN` on SQLite and `EXPLAIN` on PostgreSQL by the tests in `plans` below:
//!
//! | statement | index |
//! | --- | --- |
//! | executions per bucket and status, by `created_at` | `executions_by_tenant_created (tenant_id, created_at, status)`, covering |
//! | durations of the newest finished executions | `executions_finished_by_tenant (tenant_id, finished_at, integration, flow, started_at) WHERE finished_at IS NOT NULL`, covering |
//! | failures: their count and the newest errors | `executions_failed_recent (tenant_id, finished_at, integration, flow) WHERE status = 'failed'` (0012, the integrations list's) |
//! | queued and running: counts, and the queued one accepted first | `executions_by_tenant_status (tenant_id, status, seq)` (0011, the listing's), covering; PostgreSQL may count the running in `executions_running_by_flow` (0002) |
//! | pending deliveries by kind | `deliveries_pending_by_tenant (tenant_id, kind, created_at, next_at) WHERE status = 'pending'`, covering |
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n` placeholders
//! numbered by first appearance.

/// Executions created in `[from, to)` by bucket and status: binds `from`, `bucket_ms`, the
/// tenant, `to`.
pub(crate) const COUNTS: &str = "SELECT (created_at - $1) / $2 AS bucket, status, COUNT(*) FROM executions \
     WHERE tenant_id = $3 AND created_at >= $1 AND created_at < $4 GROUP BY bucket, status ORDER BY bucket, status";
/// The newest executions that finished in `[from, to)` having started: binds the tenant, `from`,
/// `to`, the limit.
pub(crate) const DURATIONS: &str = "SELECT integration, flow, finished_at - started_at FROM executions \
     WHERE tenant_id = $1 AND finished_at IS NOT NULL AND finished_at >= $2 AND finished_at < $3 \
     AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT $4";
/// How many executions failed in `[from, to)`: binds the tenant, `from`, `to`.
pub(crate) const FAILURES_TOTAL: &str = "SELECT COUNT(*) FROM executions \
     WHERE tenant_id = $1 AND status = 'failed' AND finished_at >= $2 AND finished_at < $3";
/// The errors of the newest failures in `[from, to)`: binds the tenant, `from`, `to`, the limit.
/// The newest are picked in the index alone (`seq` is in it, SQLite's row id), then their rows
/// read.
pub(crate) const FAILURES: &str = "SELECT error FROM executions WHERE seq IN (SELECT seq FROM executions \
     WHERE tenant_id = $1 AND status = 'failed' AND finished_at >= $2 AND finished_at < $3 \
     ORDER BY finished_at DESC LIMIT $4)";
/// How many executions are queued: binds the tenant.
pub(crate) const QUEUED: &str = "SELECT COUNT(*) FROM executions WHERE tenant_id = $1 AND status = 'queued'";
/// The queued execution accepted first: binds the tenant.
pub(crate) const OLDEST_QUEUED: &str = "SELECT id, created_at, run_after FROM executions \
     WHERE tenant_id = $1 AND status = 'queued' ORDER BY seq LIMIT 1";
/// How many executions are running: binds the tenant.
pub(crate) const RUNNING: &str = "SELECT COUNT(*) FROM executions WHERE tenant_id = $1 AND status = 'running'";
/// Pending deliveries by kind: binds the tenant.
pub(crate) const PENDING_DELIVERIES: &str = "SELECT kind, COUNT(*), MIN(created_at), MIN(next_at) FROM deliveries \
     WHERE tenant_id = $1 AND status = 'pending' GROUP BY kind ORDER BY kind";

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn dashboard(&self, q: &$crate::dashboard::DashboardQuery) -> Result<$crate::dashboard::Dashboard> {
                use $crate::dashboard::*;
                use $crate::shared::dashboard as sql;
                let pool = &self.$read;
                let t = q.tenant.as_str();
                let (counts, durations, failures_total, failures, queued, oldest, running, deliveries) = tokio::try_join!(
                    sqlx::query_as::<_, (i64, String, i64)>(sql::COUNTS)
                        .bind(q.from).bind(q.bucket_ms.max(1)).bind(t).bind(q.to).fetch_all(pool),
                    sqlx::query_as::<_, (String, String, i64)>(sql::DURATIONS)
                        .bind(t).bind(q.from).bind(q.to).bind(i64::from(DURATION_SAMPLE)).fetch_all(pool),
                    sqlx::query_scalar::<_, i64>(sql::FAILURES_TOTAL).bind(t).bind(q.from).bind(q.to).fetch_one(pool),
                    sqlx::query_scalar::<_, Option<String>>(sql::FAILURES)
                        .bind(t).bind(q.from).bind(q.to).bind(i64::from(FAILURE_SAMPLE)).fetch_all(pool),
                    sqlx::query_scalar::<_, i64>(sql::QUEUED).bind(t).fetch_one(pool),
                    sqlx::query_as::<_, (String, i64, i64)>(sql::OLDEST_QUEUED).bind(t).fetch_optional(pool),
                    sqlx::query_scalar::<_, i64>(sql::RUNNING).bind(t).fetch_one(pool),
                    sqlx::query_as::<_, (String, i64, i64, i64)>(sql::PENDING_DELIVERIES).bind(t).fetch_all(pool),
                )?;
                let durations_sample = durations.len() as u64;
                Ok(Dashboard {
                    counts: counts.into_iter().map(|(bucket, status, count)| BucketCount { bucket, status, count }).collect(),
                    durations_sampled: durations_sample >= u64::from(DURATION_SAMPLE),
                    durations_sample,
                    durations: flow_durations(durations),
                    failures_sampled: failures_total > failures.len() as i64,
                    failures: failure_counts(failures.iter().map(Option::as_deref)),
                    failures_total,
                    queue: QueueSummary {
                        queued,
                        running,
                        oldest: oldest.map(|(id, created_at, run_after)| OldestQueued { id, created_at, run_after }),
                    },
                    deliveries: deliveries
                        .into_iter()
                        .map(|(kind, count, oldest_created_at, next_at)| PendingDeliveries { kind, count, oldest_created_at, next_at })
                        .collect(),
                })
            }

        } }
    };
}

pub(crate) use methods;

#[cfg(test)]
mod plans {
    //! Each statement's plan names its index: `EXPLAIN QUERY PLAN` on SQLite (no statistics,
    //! as the store runs it); on PostgreSQL (when `FLOWGATE_TEST_POSTGRES_URL` is set)
    //! `EXPLAIN` over 50,000 executions of 50 tenants and 20,000 deliveries, vacuumed and
    //! analysed.

    /// A bind: the tenant or a number.
    #[derive(Clone, Copy)]
    enum B {
        T,
        N(i64),
    }
    use B::{N, T};

    /// The range of the PostgreSQL data's last 1,000 executions (one "hour" of it).
    const FROM: i64 = 49_000_000;
    const TO: i64 = 50_000_000;

    /// Each statement, its binds and the indexes its plan may use (one of them).
    fn cases() -> Vec<(&'static str, Vec<B>, &'static [&'static str])> {
        vec![
            (super::COUNTS, vec![N(FROM), N(60_000), T, N(TO)], &["executions_by_tenant_created"]),
            (super::DURATIONS, vec![T, N(FROM), N(TO), N(20_000)], &["executions_finished_by_tenant"]),
            (super::FAILURES_TOTAL, vec![T, N(FROM), N(TO)], &["executions_failed_recent"]),
            (super::FAILURES, vec![T, N(FROM), N(TO), N(5_000)], &["executions_failed_recent"]),
            (super::QUEUED, vec![T], &["executions_by_tenant_status"]),
            (super::OLDEST_QUEUED, vec![T], &["executions_by_tenant_status"]),
            (super::RUNNING, vec![T], &["executions_by_tenant_status", "executions_running_by_flow"]),
            (super::PENDING_DELIVERIES, vec![T], &["deliveries_pending_by_tenant"]),
        ]
    }

    #[tokio::test]
    async fn sqlite_plans_use_the_dashboard_indexes() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.unwrap();
        for (sql, binds, index) in cases() {
            let text = format!("EXPLAIN QUERY PLAN {sql}");
            let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(&text);
            for b in binds {
                q = match b {
                    T => q.bind("t7"),
                    N(n) => q.bind(n),
                };
            }
            let plan: Vec<String> = q.fetch_all(&pool).await.unwrap().into_iter().map(|r| r.3).collect();
            let plan = plan.join("\n");
            let uses = |index: &&str| {
                ["USING COVERING INDEX", "USING INDEX"].iter().any(|how| plan.contains(&format!("{how} {index} ")))
            };
            assert!(index.iter().any(uses), "{sql}:\n{plan}");
            assert!(!plan.contains("SCAN "), "{sql}:\n{plan}");
            if std::env::var_os("DASHBOARD_PLANS").is_some() {
                println!("{sql}\n{plan}\n");
            }
        }
    }

    #[tokio::test]
    async fn postgres_plans_use_the_dashboard_indexes() {
        let Ok(url) = std::env::var("FLOWGATE_TEST_POSTGRES_URL") else { return };
        let schema = format!("dash_plans_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
        let set = format!("SET search_path TO {schema}");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .after_connect(move |c, _| {
                let set = set.clone();
                Box::pin(async move {
                    use sqlx::Executor;
                    c.execute(set.as_str()).await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .unwrap();
        sqlx::migrate!("./migrations/postgres").run(&pool).await.unwrap();
        for seed in [
            "INSERT INTO executions (id, tenant_id, integration, flow, version_id, status, trigger_kind, trigger, \
             run_after, created_at, started_at, finished_at, error) \
             SELECT 'e' || g, 't' || (g % 50), 'i', 'f' || (g % 5), 1, \
             CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 50 = 1 THEN 'queued' WHEN g % 50 = 2 THEN 'running' \
             ELSE 'succeeded' END, 'webhook', '{}', g * 1000, g * 1000, \
             CASE WHEN g % 50 = 1 THEN NULL ELSE g * 1000 + 5 END, \
             CASE WHEN g % 50 IN (1, 2) THEN NULL ELSE g * 1000 + 50 END, \
             CASE WHEN g % 20 = 0 THEN '{\"code\":\"x\"}' END FROM generate_series(1, 50000) g",
            "INSERT INTO deliveries (id, tenant_id, integration, flow, kind, name, request, message_id, schedule, status, \
             next_at, created_at, updated_at) SELECT 'd' || g, 't' || (g % 50), 'i', 'f', 'webhook', 'n', '{}', 'm', '[]', \
             CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'delivered' END, g, g, g FROM generate_series(1, 20000) g",
            // As autovacuum leaves a table: analysed, its visibility map set (index-only scans).
            "VACUUM (ANALYZE) executions",
            "VACUUM (ANALYZE) deliveries",
        ] {
            sqlx::query(seed).execute(&pool).await.unwrap();
        }
        for (sql, binds, index) in cases() {
            let text = format!("EXPLAIN {sql}");
            let mut q = sqlx::query_scalar::<_, String>(&text);
            for b in binds {
                q = match b {
                    T => q.bind("t7"),
                    N(n) => q.bind(n),
                };
            }
            let plan = q.fetch_all(&pool).await.unwrap().join("\n");
            let uses =
                |index: &&str| [" using", "Index Scan on"].iter().any(|how| plan.contains(&format!("{how} {index} ")));
            assert!(index.iter().any(uses), "{sql}:\n{plan}");
            if std::env::var_os("DASHBOARD_PLANS").is_some() {
                println!("{sql}\n{plan}\n");
            }
            assert!(!plan.contains("Seq Scan"), "{sql}:\n{plan}");
        }
        pool.close().await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
    }
}
