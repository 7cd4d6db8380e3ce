//! Settings, tenants and API tokens, and re-sealing every stored secret under a new master
//! key (`flowgate rotate-key`).
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n`
//! placeholders.

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.$read).await?;
                Ok(())
            }

            async fn setting(&self, key: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.$read).await?)
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

            async fn tenants(&self) -> Result<Vec<Tenant>> {
                Ok(sqlx::query_as("SELECT id, name, created_at FROM tenants ORDER BY id").fetch_all(&self.$read).await?)
            }

            async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<bool> {
                let r = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                    .bind(id)
                    .bind($crate::nul::scrub(name).as_ref())
                    .bind(now)
                    .execute(&self.$write)
                    .await?;
                Ok(r.rows_affected() > 0)
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

            async fn create_token(&self, t: &NewToken) -> Result<()> {
                sqlx::query(
                    "INSERT INTO api_tokens (id, tenant_id, name, token_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&t.id)
                .bind(&t.tenant_id)
                .bind($crate::nul::scrub(&t.name).as_ref())
                .bind(&t.token_hash)
                .bind(&t.prefix)
                .bind(t.created_at)
                .execute(&self.$write)
                .await
                .map_err(|e| conflict_on_unique(e, || "this token exists".into()))?;
                Ok(())
            }

            async fn reseal_all(
                &self,
                reseal: &(dyn for<'s> Fn(Sealed<'s>) -> std::result::Result<String, String> + Send + Sync),
            ) -> Result<u64> {
                let mut tx = self.$write.begin().await?;
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
                // Connections' tokens and the PKCE verifiers of authorizations in flight; each
                // is bound to `<tenant>/<integration>/connections/<name>[/pkce]`.
                let tokens: Vec<(String, String, String, Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT tenant_id, integration, connection, access_token, refresh_token FROM connection_tokens \
                     WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL",
                )
                .fetch_all(&mut *tx)
                .await?;
                for (tenant, integration, connection, access, refresh) in tokens {
                    let bound = format!("{integration}/connections/{connection}");
                    let again = |text: Option<String>| -> Result<Option<String>> {
                        text.map(|text| {
                            reseal(Sealed { kind: "connection", tenant: &tenant, integration: &bound, text: &text })
                                .map_err(Error::Config)
                        })
                        .transpose()
                    };
                    let (access, refresh) = (again(access)?, again(refresh)?);
                    sqlx::query(
                        "UPDATE connection_tokens SET access_token = $1, refresh_token = $2 WHERE tenant_id = $3 \
                         AND integration = $4 AND connection = $5",
                    )
                    .bind(access)
                    .bind(refresh)
                    .bind(&tenant)
                    .bind(&integration)
                    .bind(&connection)
                    .execute(&mut *tx)
                    .await?;
                    n += 1;
                }
                let states: Vec<(String, String, String, String, String)> = sqlx::query_as(
                    "SELECT state_hash, tenant_id, integration, connection, verifier FROM oauth_states WHERE verifier IS NOT NULL",
                )
                .fetch_all(&mut *tx)
                .await?;
                for (hash, tenant, integration, connection, text) in states {
                    let bound = format!("{integration}/connections/{connection}/pkce");
                    let new = reseal(Sealed { kind: "connection", tenant: &tenant, integration: &bound, text: &text })
                        .map_err(Error::Config)?;
                    sqlx::query("UPDATE oauth_states SET verifier = $1 WHERE state_hash = $2").bind(new).bind(&hash).execute(&mut *tx).await?;
                    n += 1;
                }
                tx.commit().await?;
                Ok(n)
            }

        } }
    };
}

pub(crate) use methods;
