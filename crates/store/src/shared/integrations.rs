//! Integrations as stored documents: versions, the current one, webhook and e-mail routes
//! claimed by an apply, deployments (config and live state) and flow switches.
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n`
//! placeholders.

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn put_integration(&self, new: &NewVersion) -> Result<PutOutcome> {
                let mut tx = self.$write.begin().await?;
                // Applies within a tenant are serialised across nodes: route checks see each other.
                serialise(&mut tx, &new.tenant_id).await?;
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
                    serialise(&mut tx, "email_routes").await?;
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
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn integrations(&self, tenant: &str) -> Result<Vec<VersionRecord>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
                     WHERE i.tenant_id = $1 ORDER BY i.slug"
                ))
                .bind(tenant)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn all_integrations(&self) -> Result<Vec<VersionRecord>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {VERSION_COLUMNS} FROM integrations i JOIN integration_versions v ON v.id = i.current_version \
                     ORDER BY i.tenant_id, i.slug"
                ))
                .fetch_all(&self.$read)
                .await?)
            }

            async fn version(&self, id: i64) -> Result<Option<VersionRecord>> {
                Ok(sqlx::query_as(&format!("SELECT {VERSION_COLUMNS} FROM integration_versions v WHERE v.id = $1"))
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn versions(&self, tenant: &str, slug: &str) -> Result<Vec<VersionRecord>> {
                let rows: Vec<VersionRecord> = sqlx::query_as(&format!(
                    "SELECT {VERSION_COLUMNS} FROM integration_versions v WHERE v.tenant_id = $1 AND v.slug = $2 ORDER BY v.version DESC"
                ))
                .bind(tenant)
                .bind(slug)
                .fetch_all(&self.$read)
                .await?;
                Ok(rows)
            }

            async fn delete_integration(&self, tenant: &str, slug: &str) -> Result<bool> {
                let mut tx = self.$write.begin().await?;
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

            async fn deployment(&self, key: IntegrationKey<'_>) -> Result<Option<Deployment>> {
                let IntegrationKey { tenant, integration } = key;
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

            async fn flow_switches(&self) -> Result<Vec<FlowSwitch>> {
                Ok(sqlx::query_as(
                    "SELECT tenant_id, integration, flow, active, updated_at FROM flow_switches ORDER BY tenant_id, integration, flow",
                )
                .fetch_all(&self.$read)
                .await?)
            }

            async fn set_flow_active(&self, key: FlowKey<'_>, active: bool, now: i64) -> Result<()> {
                let FlowKey { tenant, integration, flow } = key;
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

        } }
    };
}

pub(crate) use methods;
