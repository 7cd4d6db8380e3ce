//! Trigger state (schedules' slots, polls' cursors) and ingress identities (the dedup keys
//! of idempotent webhooks).
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n`
//! placeholders.

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn trigger_state(&self, key: FlowKey<'_>) -> Result<Option<TriggerState>> {
                let FlowKey { tenant, integration, flow } = key;
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

            async fn delete_trigger_state(&self, key: FlowKey<'_>) -> Result<bool> {
                let FlowKey { tenant, integration, flow } = key;
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

            async fn dedup_lookup(&self, flow_key: FlowKey<'_>, key: &str, now: i64) -> Result<Option<String>> {
                let FlowKey { tenant, integration, flow } = flow_key;
                Ok(sqlx::query_scalar(
                    "SELECT execution_id FROM dedup_keys WHERE tenant_id = $1 AND integration = $2 AND flow = $3 AND key = $4 \
                     AND expires_at > $5",
                )
                .bind(tenant)
                .bind(integration)
                .bind(flow)
                .bind($crate::nul::clean(SCRUB_NUL, key).as_ref())
                .bind(now)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn purge_dedup(&self, now: i64, batch: u32) -> Result<u64> {
                let r = sqlx::query(
                    &format!("DELETE FROM dedup_keys WHERE {ROW_ID} IN (SELECT {ROW_ID} FROM dedup_keys WHERE expires_at <= $1 LIMIT $2)"),
                )
                .bind(now)
                .bind(i64::from(batch))
                .execute(&self.$write)
                .await?;
                // Call-tree buckets (engine `call`) idle for a day are full again: the same as none.
                let buckets = sqlx::query(
                    &format!("DELETE FROM rate_limits WHERE {ROW_ID} IN (SELECT {ROW_ID} FROM rate_limits WHERE integration = '' \
                     AND name LIKE $1 AND updated_at <= $2 LIMIT $3)"),
                )
                .bind("calls/%")
                .bind(now - 86_400_000)
                .bind(i64::from(batch))
                .execute(&self.$write)
                .await?;
                Ok(r.rows_affected() + buckets.rows_affected())
            }

        } }
    };
}

pub(crate) use methods;
