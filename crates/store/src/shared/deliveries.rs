//! Outbound deliveries (webhook calls, e-mails) with their attempts, and tenants' log
//! sources.
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n`
//! placeholders.

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn due_deliveries(&self, now: i64, lease: i64, limit: u32) -> Result<Vec<DeliveryRecord>> {
                Ok(sqlx::query_as(
                    &format!("UPDATE deliveries SET next_at = $1 WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= $2 ORDER BY next_at LIMIT $3{SKIP_LOCKED}) RETURNING id, tenant_id, integration, flow, execution_id, step_id, kind, name, request, message_id, schedule, status, attempts, next_at, waiting, last_status, last_error, response, created_at, updated_at"),
                )
                .bind(now + lease)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.$write)
                .await?)
            }

            async fn finish_attempt(&self, id: &str, outcome: &AttemptOutcome, now: i64) -> Result<Option<String>> {
                Ok(self.finish_attempt_if_pending(id, outcome, now).await?.flatten())
            }

            async fn finish_attempt_if_pending(
                &self,
                id: &str,
                outcome: &AttemptOutcome,
                now: i64,
            ) -> Result<Option<Option<String>>> {
                let mut tx = self.$write.begin().await?;
                let a = &outcome.attempt;
                sqlx::query(
                    "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, latency_ms, excerpt, error) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id, attempt) DO NOTHING",
                )
                .bind(id)
                .bind(a.attempt)
                .bind(a.at)
                .bind(a.status_code)
                .bind(a.latency_ms)
                .bind(a.excerpt.as_deref().map(|t| $crate::nul::clean(SCRUB_NUL, t)))
                .bind(a.error.as_deref().map(|t| $crate::nul::clean(SCRUB_NUL, t)))
                .execute(&mut *tx)
                .await?;
                let row: Option<(bool, Option<String>)> = sqlx::query_as(
                    "UPDATE deliveries SET status = $1, attempts = $2, next_at = $3, last_status = $4, last_error = $5, response = COALESCE($6, response), updated_at = $7 WHERE id = $8 AND status = 'pending' RETURNING waiting, execution_id",
                )
                .bind(&outcome.status)
                .bind(a.attempt)
                .bind(outcome.next_at)
                .bind(a.status_code)
                .bind(a.error.as_deref().map(|t| $crate::nul::clean(SCRUB_NUL, t)))
                .bind(outcome.response.as_deref().map(|t| $crate::nul::clean(SCRUB_NUL, t)))
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                // Ended meanwhile (a call and a timeout, two calls, an attempt and a resend):
                // the first one stands; this attempt is not recorded.
                if row.is_none() {
                    tx.rollback().await?;
                    return Ok(None);
                }
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
                Ok(Some(woken))
            }

            async fn wait_for_delivery(&self, execution: &str, owner: &str, delivery: &str) -> Result<bool> {
                let mut tx = self.$write.begin().await?;
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

            async fn count_deliveries(&self, key: FlowKey<'_>, kind: &str, since: i64) -> Result<i64> {
                let FlowKey { tenant, integration, flow } = key;
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

        } }
    };
}

pub(crate) use methods;
