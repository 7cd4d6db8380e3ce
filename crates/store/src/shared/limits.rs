//! Shared rate limits: token buckets every node takes from, and pauses an upstream asked
//! for.
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n`
//! placeholders.

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn take_token(
                &self,
                key: IntegrationKey<'_>,
                name: &str,
                per_second: f64,
                burst: u32,
                now: i64,
            ) -> Result<Option<i64>> {
                let IntegrationKey { tenant, integration } = key;
                let per_ms = per_second / 1000.0;
                let mut tx = self.$write.begin().await?;
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
                let (tokens, updated_at, paused_until): (f64, i64, i64) = sqlx::query_as(&format!(
                    "SELECT tokens, updated_at, paused_until FROM rate_limits WHERE tenant_id = $1 AND integration = $2 \
                     AND name = $3{FOR_UPDATE}"),
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

            async fn pause_limit(&self, key: IntegrationKey<'_>, name: &str, until: i64) -> Result<()> {
                let IntegrationKey { tenant, integration } = key;
                sqlx::query(
                    &format!("UPDATE rate_limits SET paused_until = {GREATEST}(paused_until, $1), tokens = {LEAST}(tokens, 0) \
                     WHERE tenant_id = $2 AND integration = $3 AND name = $4"),
                )
                .bind(until)
                .bind(tenant)
                .bind(integration)
                .bind(name)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

        } }
    };
}

pub(crate) use methods;
