//! Connections' tokens: the row per connection, the lease of the one refresh in flight on
//! every node, and storing what a refresh obtained together with the lease's end.
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n`
//! placeholders.

/// Columns of [`ConnectionTokens`](crate::ConnectionTokens).
pub(crate) const CONNECTION_COLUMNS: &str = "connection, status, message, access_token, refresh_token, extras, fingerprint, expires_at, \
     refreshed_at, version, refresh_owner, refresh_until, updated_at";

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn connection_tokens(&self, key: ConnectionKey<'_>) -> Result<Option<ConnectionTokens>> {
                use $crate::shared::connections::CONNECTION_COLUMNS;
                // From the writer: a refresh another task has just stored must be seen.
                Ok(sqlx::query_as(&format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connection_tokens WHERE tenant_id = $1 AND integration = $2 AND connection = $3"
                ))
                .bind(key.tenant)
                .bind(key.integration)
                .bind(key.connection)
                .fetch_optional(&self.$write)
                .await?)
            }

            async fn list_connection_tokens(&self, integration: IntegrationKey<'_>) -> Result<Vec<ConnectionTokens>> {
                use $crate::shared::connections::CONNECTION_COLUMNS;
                Ok(sqlx::query_as(&format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connection_tokens WHERE tenant_id = $1 AND integration = $2 ORDER BY connection"
                ))
                .bind(integration.tenant)
                .bind(integration.integration)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn lease_connection_refresh(
                &self,
                key: ConnectionKey<'_>,
                owner: &str,
                now: i64,
                until: i64,
            ) -> Result<Option<ConnectionTokens>> {
                use $crate::shared::connections::CONNECTION_COLUMNS;
                let mut tx = self.$write.begin().await?;
                sqlx::query(
                    "INSERT INTO connection_tokens (tenant_id, integration, connection, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, integration, connection) DO NOTHING",
                )
                .bind(key.tenant)
                .bind(key.integration)
                .bind(key.connection)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // A compare-and-set on the lease: of two nodes, the row's lock lets one through.
                let row = sqlx::query_as(&format!(
                    "UPDATE connection_tokens SET refresh_owner = $1, refresh_until = $2 WHERE tenant_id = $3 \
                     AND integration = $4 AND connection = $5 AND (refresh_until IS NULL OR refresh_until < $6 \
                     OR refresh_owner = $1) RETURNING {CONNECTION_COLUMNS}"
                ))
                .bind(owner)
                .bind(until)
                .bind(key.tenant)
                .bind(key.integration)
                .bind(key.connection)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn store_connection_tokens(
                &self,
                key: ConnectionKey<'_>,
                owner: &str,
                tokens: NewTokens<'_>,
            ) -> Result<Option<i64>> {
                Ok(sqlx::query_scalar(
                    "UPDATE connection_tokens SET status = 'active', message = NULL, access_token = $1, \
                     refresh_token = COALESCE($2, refresh_token), extras = COALESCE($3, extras), expires_at = $4, \
                     refreshed_at = $5, updated_at = $5, version = version + 1, refresh_owner = NULL, refresh_until = NULL, \
                     fingerprint = $10 WHERE tenant_id = $6 AND integration = $7 AND connection = $8 AND refresh_owner = $9 \
                     RETURNING version",
                )
                .bind(tokens.access_token)
                .bind(tokens.refresh_token)
                .bind(tokens.extras.map(|t| $crate::nul::clean(SCRUB_NUL, t)))
                .bind(tokens.expires_at)
                .bind(tokens.now)
                .bind(key.tenant)
                .bind(key.integration)
                .bind(key.connection)
                .bind(owner)
                .bind(tokens.fingerprint)
                .fetch_optional(&self.$write)
                .await?)
            }

            async fn put_oauth_state(&self, state: &OAuthState, now: i64) -> Result<()> {
                sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1").bind(now).execute(&self.$write).await?;
                sqlx::query(
                    "INSERT INTO oauth_states (state_hash, tenant_id, integration, connection, verifier, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&state.state_hash)
                .bind(&state.tenant_id)
                .bind(&state.integration)
                .bind(&state.connection)
                .bind(&state.verifier)
                .bind(state.expires_at)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn take_oauth_state(&self, state_hash: &str, now: i64) -> Result<Option<OAuthState>> {
                // One DELETE: of two callbacks with the same state, one gets the row.
                let row: Option<OAuthState> = sqlx::query_as(
                    "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING state_hash, tenant_id, integration, \
                     connection, verifier, expires_at",
                )
                .bind(state_hash)
                .fetch_optional(&self.$write)
                .await?;
                Ok(row.filter(|r| r.expires_at > now))
            }

            async fn end_connection_refresh(
                &self,
                key: ConnectionKey<'_>,
                owner: &str,
                status: &str,
                message: &str,
                now: i64,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE connection_tokens SET status = $1, message = $2, updated_at = $3, refresh_owner = NULL, \
                     refresh_until = NULL WHERE tenant_id = $4 AND integration = $5 AND connection = $6 AND refresh_owner = $7",
                )
                .bind(status)
                // A provider's words (its error_description): text PostgreSQL cannot hold is scrubbed.
                .bind($crate::nul::clean(SCRUB_NUL, message))
                .bind(now)
                .bind(key.tenant)
                .bind(key.integration)
                .bind(key.connection)
                .bind(owner)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

        } }
    };
}

pub(crate) use methods;
