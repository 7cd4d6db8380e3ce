//! The store methods whose SQL is the same on both backends, written once.
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

/// `impl Store for $ty` with the backend's own methods (after the `;`) and the shared ones;
/// `read` and `write` name the backend's pool fields. The whole block goes through
/// `async_trait` after expansion, so every method gets the trait's signature.
macro_rules! store_impl {
    ($ty:ty, read: $read:ident, write: $write:ident; $($own:tt)*) => {
        #[async_trait::async_trait]
        impl $crate::Store for $ty {
        $($own)*
        async fn ping(&self) -> Result<()> {
            sqlx::query("SELECT 1").execute(&self.$read).await?;
            Ok(())
        }

        async fn setting(&self, key: &str) -> Result<Option<String>> {
            Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.$read).await?)
        }

        async fn tenants(&self) -> Result<Vec<Tenant>> {
            Ok(sqlx::query_as("SELECT id, name, created_at FROM tenants ORDER BY id").fetch_all(&self.$read).await?)
        }

        async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenInfo>> {
            Ok(sqlx::query_as(
                "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(hash)
            .fetch_optional(&self.$read)
            .await?)
        }

        async fn tokens(&self, tenant: &str) -> Result<Vec<TokenInfo>> {
            Ok(sqlx::query_as(
                "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_tokens WHERE tenant_id = $1 \
                 ORDER BY created_at, id",
            )
            .bind(tenant)
            .fetch_all(&self.$read)
            .await?)
        }

        async fn revoke_token(&self, tenant: &str, id: &str, now: i64) -> Result<bool> {
            let r = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(tenant)
            .bind(id)
            .execute(&self.$write)
            .await?;
            Ok(r.rows_affected() == 1)
        }

        async fn deployment(&self, tenant: &str, integration: &str) -> Result<Option<Deployment>> {
            Ok(sqlx::query_as(
                "SELECT tenant_id, integration, config, deployed, deployed_version, updated_at FROM deployments \
                 WHERE tenant_id = $1 AND integration = $2",
            )
            .bind(tenant)
            .bind(integration)
            .fetch_optional(&self.$write)
            .await?)
        }

        async fn deployments(&self) -> Result<Vec<Deployment>> {
            Ok(sqlx::query_as(
                "SELECT tenant_id, integration, config, deployed, deployed_version, updated_at FROM deployments \
                 ORDER BY tenant_id, integration",
            )
            .fetch_all(&self.$read)
            .await?)
        }

        async fn put_deployment(&self, d: &Deployment) -> Result<()> {
            sqlx::query(
                "INSERT INTO deployments (tenant_id, integration, config, deployed, deployed_version, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, integration) DO UPDATE SET config = excluded.config, \
                 deployed = excluded.deployed, deployed_version = excluded.deployed_version, updated_at = excluded.updated_at",
            )
            .bind(&d.tenant_id)
            .bind(&d.integration)
            .bind(&d.config)
            .bind(d.deployed)
            .bind(d.deployed_version)
            .bind(d.updated_at)
            .execute(&self.$write)
            .await?;
            Ok(())
        }

        async fn children(&self, tenant: &str, parent: &str) -> Result<Vec<ExecutionRow>> {
            let sql = format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
                 WHERE e.parent_id = $1 AND e.tenant_id = $2 ORDER BY e.seq"
            );
            Ok(sqlx::query_as(&sql).bind(parent).bind(tenant).fetch_all(&self.$read).await?)
        }

        async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&self.$write)
            .await?;
            Ok(())
        }

        async fn count_deliveries(
            &self,
            tenant: &str,
            integration: &str,
            flow: &str,
            kind: &str,
            since: i64,
        ) -> Result<i64> {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE tenant_id = $1 AND integration = $2 AND flow = $3 AND kind = $4 AND status = 'delivered' AND updated_at >= $5 AND id NOT LIKE '%:recovered'")
                .bind(tenant)
                .bind(integration)
                .bind(flow)
                .bind(kind)
                .bind(since)
                .fetch_one(&self.$read)
                .await?)
        }

        async fn delivery(&self, tenant: &str, id: &str) -> Result<Option<DeliveryRecord>> {
            Ok(sqlx::query_as("SELECT id, tenant_id, integration, flow, execution_id, step_id, kind, name, request, message_id, schedule, status, attempts, next_at, waiting, last_status, last_error, response, created_at, updated_at FROM deliveries WHERE id = $1 AND tenant_id = $2")
                .bind(id)
                .bind(tenant)
                .fetch_optional(&self.$write)
                .await?)
        }

        async fn deliveries_of(&self, execution: &str) -> Result<Vec<DeliveryRecord>> {
            Ok(sqlx::query_as("SELECT id, tenant_id, integration, flow, execution_id, step_id, kind, name, request, message_id, schedule, status, attempts, next_at, waiting, last_status, last_error, response, created_at, updated_at FROM deliveries WHERE execution_id = $1 ORDER BY created_at, id")
                .bind(execution)
                .fetch_all(&self.$read)
                .await?)
        }

        async fn delivery_attempts(&self, id: &str) -> Result<Vec<DeliveryAttempt>> {
            Ok(sqlx::query_as(
                "SELECT delivery_id, attempt, at, status_code, latency_ms, excerpt, error FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
            )
            .bind(id)
            .fetch_all(&self.$read)
            .await?)
        }

        async fn resend_delivery(&self, tenant: &str, id: &str, now: i64) -> Result<DeliveryRecord> {
            let row: Option<DeliveryRecord> = sqlx::query_as(
                "UPDATE deliveries SET status = 'pending', next_at = $1, updated_at = $2 WHERE id = $3 AND tenant_id = $4 AND status IN ('delivered', 'failed') RETURNING id, tenant_id, integration, flow, execution_id, step_id, kind, name, request, message_id, schedule, status, attempts, next_at, waiting, last_status, last_error, response, created_at, updated_at",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(tenant)
            .fetch_optional(&self.$write)
            .await?;
            match row {
                Some(r) => Ok(r),
                None => match self.delivery(tenant, id).await? {
                    None => Err(Error::NotFound),
                    Some(d) => Err(Error::Conflict(format!(
                        "the delivery is {}; only a delivered or failed one can be resent",
                        d.status
                    ))),
                },
            }
        }

        async fn put_log_source(&self, s: &LogSourceRecord) -> Result<()> {
            sqlx::query(
                "INSERT INTO log_sources (tenant_id, name, config, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
            )
            .bind(&s.tenant_id)
            .bind(&s.name)
            .bind(&s.config)
            .bind(s.updated_at)
            .execute(&self.$write)
            .await?;
            Ok(())
        }

        async fn log_sources(&self, tenant: &str) -> Result<Vec<LogSourceRecord>> {
            Ok(sqlx::query_as(
                "SELECT tenant_id, name, config, updated_at FROM log_sources WHERE tenant_id = $1 ORDER BY name",
            )
            .bind(tenant)
            .fetch_all(&self.$read)
            .await?)
        }

        async fn all_log_sources(&self) -> Result<Vec<LogSourceRecord>> {
            Ok(sqlx::query_as("SELECT tenant_id, name, config, updated_at FROM log_sources ORDER BY tenant_id, name")
                .fetch_all(&self.$read)
                .await?)
        }

        async fn delete_log_source(&self, tenant: &str, name: &str) -> Result<bool> {
            let r = sqlx::query("DELETE FROM log_sources WHERE tenant_id = $1 AND name = $2")
                .bind(tenant)
                .bind(name)
                .execute(&self.$write)
                .await?;
            Ok(r.rows_affected() > 0)
        }

        async fn trigger_state(&self, tenant: &str, integration: &str, flow: &str) -> Result<Option<TriggerState>> {
            Ok(sqlx::query_as(
                "SELECT tenant_id, integration, flow, state, updated_at FROM trigger_state \
                 WHERE tenant_id = $1 AND integration = $2 AND flow = $3",
            )
            .bind(tenant)
            .bind(integration)
            .bind(flow)
            .fetch_optional(&self.$write)
            .await?)
        }

        async fn delete_trigger_state(&self, tenant: &str, integration: &str, flow: &str) -> Result<bool> {
            let r = sqlx::query("DELETE FROM trigger_state WHERE tenant_id = $1 AND integration = $2 AND flow = $3")
                .bind(tenant)
                .bind(integration)
                .bind(flow)
                .execute(&self.$write)
                .await?;
            // The items a poll saw are remembered apart (a second guard against a double poll);
            // forgetting the state forgets them too, so the next poll is a first run.
            sqlx::query(
                "DELETE FROM dedup_keys WHERE tenant_id = $1 AND integration = $2 AND flow = $3 AND key LIKE 'item:%'",
            )
            .bind(tenant)
            .bind(integration)
            .bind(flow)
            .execute(&self.$write)
            .await?;
            Ok(r.rows_affected() > 0)
        }

        async fn flow_switches(&self) -> Result<Vec<FlowSwitch>> {
            Ok(sqlx::query_as(
                "SELECT tenant_id, integration, flow, active, updated_at FROM flow_switches ORDER BY tenant_id, integration, flow",
            )
            .fetch_all(&self.$read)
            .await?)
        }

        async fn set_flow_active(&self, tenant: &str, integration: &str, flow: &str, active: bool, now: i64) -> Result<()> {
            sqlx::query(
                "INSERT INTO flow_switches (tenant_id, integration, flow, active, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, integration, flow) DO UPDATE SET active = excluded.active, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(integration)
            .bind(flow)
            .bind(active)
            .bind(now)
            .execute(&self.$write)
            .await?;
            Ok(())
        }

        async fn create_bulk_job(&self, job: &BulkJob) -> Result<()> {
            sqlx::query(
                "INSERT INTO bulk_jobs (id, tenant_id, kind, filter, total, done, failed, status, created_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&job.id)
            .bind(&job.tenant_id)
            .bind(&job.kind)
            .bind(&job.filter)
            .bind(job.total)
            .bind(job.done)
            .bind(job.failed)
            .bind(&job.status)
            .bind(job.created_at)
            .bind(job.finished_at)
            .execute(&self.$write)
            .await?;
            Ok(())
        }

        async fn bulk_job(&self, tenant: &str, id: &str) -> Result<Option<BulkJob>> {
            Ok(sqlx::query_as(
                "SELECT id, tenant_id, kind, filter, total, done, failed, status, created_at, finished_at FROM bulk_jobs \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.$read)
            .await?)
        }

        async fn next_due(&self) -> Result<Option<i64>> {
            Ok(sqlx::query_scalar("SELECT MIN(run_after) FROM executions WHERE status = 'queued'")
                .fetch_one(&self.$read)
                .await?)
        }

        async fn queue_depth(&self) -> Result<QueueDepth> {
            let queued: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'queued'").fetch_one(&self.$read).await?;
            let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'running'")
                .fetch_one(&self.$read)
                .await?;
            Ok(QueueDepth { queued, running })
        }

        async fn journal(&self, execution: &str) -> Result<Vec<StepRecord>> {
            Ok(sqlx::query_as(
                "SELECT execution_id, step_id, round, attempt, seq, status, input, output, error, response, started_at, \
                 finished_at FROM step_attempts WHERE execution_id = $1 ORDER BY seq, round, attempt",
            )
            .bind(execution)
            .fetch_all(&self.$read)
            .await?)
        }

        async fn execution(&self, tenant: Option<&str>, id: &str) -> Result<Option<ExecutionRow>> {
            execution_in(&self.$read, tenant, id).await
        }

        async fn cancel_requested(&self, id: &str) -> Result<bool> {
            let v: Option<bool> = sqlx::query_scalar("SELECT cancel_requested FROM executions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.$read)
                .await?;
            Ok(v.unwrap_or(false))
        }

        async fn last_run(&self, tenant: &str, integration: &str, flow: &str) -> Result<Option<ExecutionRow>> {
            let sql = format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
                 WHERE e.tenant_id = $1 AND e.integration = $2 AND e.flow = $3 \
                 AND e.status IN ('succeeded', 'failed', 'filtered') ORDER BY e.seq DESC LIMIT 1"
            );
            Ok(sqlx::query_as(&sql).bind(tenant).bind(integration).bind(flow).fetch_optional(&self.$read).await?)
        }


        async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
            let mut tx = self.$write.begin().await?;
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            let stored: String =
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(stored)
        }

        async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<bool> {
            let r = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                .bind(id)
                .bind(crate::nul::scrub(name).as_ref())
                .bind(now)
                .execute(&self.$write)
                .await?;
            Ok(r.rows_affected() > 0)
        }
        }
    };
}

pub(crate) use store_impl;
