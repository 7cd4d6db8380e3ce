//! Integrations as the engine sees them: validating and applying definitions (compiled off
//! the async threads, routes claimed in the store, the registry rebuilt on every node),
//! deleting, reading, switching flows on and off, and their triggers' state.

use crate::*;

/// Why a definition could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// It has problems (all of them, located).
    #[error("the definition is invalid")]
    Invalid(Vec<Diagnostic>),
    /// It clashes with stored state (a webhook path another integration uses).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] flowgate_store::Error),
}

/// A document [`Engine::check`] found valid: its slug, its text with its credentials back in
/// place of their markers, and its compiled draft.
pub struct Checked {
    /// The integration it defines.
    pub slug: String,
    /// The text as it would be applied.
    pub text: String,
    /// The compiled definition.
    pub draft: Draft,
}

impl Engine {
    /// Checks a definition without storing it.
    ///
    /// # Errors
    /// Every problem found, located.
    pub fn validate(text: &str, format: Format) -> Result<Draft, Vec<Diagnostic>> {
        compile::compile(text, format)
    }

    /// [`Engine::validate`] on a blocking thread: a definition of thousands of expressions
    /// takes a while to compile, and the async threads serve everyone else meanwhile.
    ///
    /// # Errors
    /// Every problem found, located.
    pub async fn validate_off_thread(text: String, format: Format) -> Result<Draft, Vec<Diagnostic>> {
        match tokio::task::spawn_blocking(move || compile::compile(&text, format)).await {
            Ok(r) => r,
            Err(e) => Err(vec![Diagnostic {
                path: String::new(),
                line: None,
                column: None,
                message: format!("the definition could not be checked: {e}"),
            }]),
        }
    }

    /// Checks, stores and serves a definition in `tenant`, and deploys it there (with its
    /// defaults the first time; an upgrade keeps the deployment's values and, when the
    /// integration is live, runs its `deploy` flows). An unchanged document keeps its version.
    /// Literal credentials are sealed, not stored in the text.
    ///
    /// # Errors
    /// Problems in the document, a webhook path or address taken elsewhere, or the store.
    pub async fn apply(
        &self,
        tenant: &str,
        text: &str,
        format: Format,
    ) -> Result<(PutOutcome, Arc<CompiledIntegration>), ApplyError> {
        let Checked { slug, text, draft } = self.check(tenant, text, format).await?;
        self.store_checked(tenant, slug, text, format, draft).await
    }

    /// Everything [`Engine::apply`] checks before it stores anything: the document (once the
    /// markers of a document read back from the API have their credentials again) and its
    /// inbound addresses. The console's *Validate* calls it, so it finds what Apply would.
    ///
    /// # Errors
    /// Problems in the document, credentials that cannot be opened, or the store.
    pub async fn check(&self, tenant: &str, text: &str, format: Format) -> Result<Checked, ApplyError> {
        let inner = &self.inner;
        // A document read from the API holds markers for the current literal credentials: it is
        // checked once they are back in (a marker is not a valid secret of every kind, e.g. a
        // Standard Webhooks key); until then only its slug is read.
        let has_markers = text.contains(flowgate_secrets::MARKER_PREFIX);
        let first = if has_markers {
            None
        } else {
            Some(Engine::validate_off_thread(text.to_owned(), format).await.map_err(ApplyError::Invalid)?)
        };
        let slug = match &first {
            Some(draft) => draft.definition.integration.clone(),
            None => match flowgate_model::source::parse(text, format)
                .ok()
                .and_then(|d| d.value.get("integration").and_then(Value::as_str).map(str::to_owned))
            {
                Some(slug) => slug,
                // No slug to look the markers up by: the full check says what is wrong.
                None => {
                    Engine::validate_off_thread(text.to_owned(), format).await.map_err(ApplyError::Invalid)?;
                    return Err(ApplyError::Invalid(vec![Diagnostic {
                        path: "integration".into(),
                        line: None,
                        column: None,
                        message: "missing integration slug".into(),
                    }]));
                }
            },
        };
        let current = inner.store.integration(tenant, &slug).await?;
        // The credentials put back for the markers: a problem's message may quote the value
        // at its place (``invalid duration `…` ``), and must not show one.
        let mut restored = Vec::new();
        let text = match &current {
            Some(cur) if text.contains(flowgate_secrets::MARKER_PREFIX) => {
                restored = deploy::open_literals(&inner.sealer, cur).map_err(ApplyError::Conflict)?;
                deploy::restore_source(text, &restored)
            }
            _ => text.to_owned(),
        };
        let invalid = |mut problems: Vec<Diagnostic>| {
            for p in &mut problems {
                p.message = deploy::redact_source(&p.message, &restored);
            }
            ApplyError::Invalid(problems)
        };
        if markers_outside_tests(&text, format) {
            return Err(ApplyError::Invalid(vec![Diagnostic {
                path: String::new(),
                line: None,
                column: None,
                message: "the document holds a secret marker («secret:…») this integration does not have: write the \
                          credential itself, or apply the document as read from the current version"
                    .into(),
            }]));
        }
        let draft = match first {
            Some(draft) => draft,
            None => Engine::validate_off_thread(text.clone(), format).await.map_err(invalid)?,
        };
        foreign_addresses(&draft, tenant, &inner.settings.mail_domain).map_err(invalid)?;
        Ok(Checked { slug, text, draft })
    }

    /// The storing half of [`Engine::apply`].
    async fn store_checked(
        &self,
        tenant: &str,
        slug: String,
        text: String,
        format: Format,
        draft: Draft,
    ) -> Result<(PutOutcome, Arc<CompiledIntegration>), ApplyError> {
        let inner = &self.inner;
        let mut document = draft.document.clone();
        let literals = deploy::extract_literals(&mut document);
        // The credential places hold markers now; a literal may also be elsewhere — a marker
        // of a case made from an execution (`tests:`), restored by `check`, or the value
        // written anywhere — and is stored as its marker there too, as in `source`. A version's
        // document has every marker put back when it is built (`deploy::build`), and the test
        // runner puts them back in a case.
        let document = if literals.is_empty() {
            document.to_string()
        } else {
            flowgate_secrets::Redactor::new(literals.iter().cloned())
                .redact_json_text(&document.to_string())
                .into_owned()
        };
        let now = inner.clock.now_ms();
        let new = NewVersion {
            tenant_id: tenant.to_owned(),
            slug: slug.clone(),
            hash: draft.hash.clone(),
            format: match format {
                Format::Yaml => "yaml",
                Format::Json => "json",
            }
            .to_owned(),
            source: deploy::redact_source(&text, &literals),
            document,
            routes: draft.routes(),
            emails: draft.emails(),
            secrets: deploy::seal_literals(&inner.sealer, tenant, &slug, &literals),
            now,
        };
        let outcome = inner.store.put_integration(&new).await.map_err(|e| match e {
            flowgate_store::Error::Conflict(m) => ApplyError::Conflict(m),
            other => ApplyError::Store(other),
        })?;
        if let (PutOutcome::Unchanged(r), Some(ci)) = (&outcome, inner.registry.integration(tenant, &slug))
            && ci.record.id == r.id
        {
            return Ok((outcome, ci));
        }
        let deployment = match inner.store.deployment(IntegrationKey { tenant, integration: &slug }).await? {
            Some(d) => d,
            None => {
                let d = flowgate_store::Deployment {
                    tenant_id: tenant.to_owned(),
                    integration: slug.clone(),
                    config: "{}".into(),
                    deployed: true,
                    deployed_version: None,
                    updated_at: now,
                };
                inner.store.put_deployment(&d).await?;
                d
            }
        };
        let ci = deploy::build(outcome.record().clone(), Some(&deployment), &inner.sealer, &inner.settings.public_url)
            .map_err(ApplyError::Invalid)?;
        let ci = Arc::new(ci);
        inner.registry.install(ci.clone());
        self.announce_integration(tenant, &slug).await;
        if ci.live() && deployment.deployed_version != Some(ci.record.id) {
            let reason = if deployment.deployed_version.is_some() { "upgrade" } else { "deploy" };
            self.run_lifecycle(&ci, "deploy", reason, deployment).await?;
        }
        Ok((outcome, ci))
    }

    /// Deletes an integration: its webhooks stop at once, its `undeploy` flows run (when it
    /// was live); its history stays.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn delete(&self, tenant: &str, slug: &str) -> Result<bool, flowgate_store::Error> {
        if let Some(ci) = self.integration(tenant, slug).await?
            && ci.live()
            && let Some(d) = self.inner.store.deployment(IntegrationKey { tenant, integration: slug }).await?
        {
            self.run_lifecycle(&ci, "undeploy", "delete", d).await?;
        }
        let deleted = self.inner.store.delete_integration(tenant, slug).await?;
        self.inner.registry.remove(tenant, slug);
        self.announce_integration(tenant, slug).await;
        Ok(deleted)
    }

    /// Tells the other nodes an integration changed (they reload it).
    pub(crate) async fn announce_integration(&self, tenant: &str, slug: &str) {
        let event = StoreEvent::Integration { tenant: tenant.to_owned(), slug: slug.to_owned() };
        if let Err(e) = self.inner.store.notify(&[event]).await {
            tracing::warn!(error = %e, "Could not tell the other nodes about a changed integration.");
        }
    }

    /// The current version of an integration, compiling it from the store if needed.
    pub async fn integration(
        &self,
        tenant: &str,
        slug: &str,
    ) -> Result<Option<Arc<CompiledIntegration>>, flowgate_store::Error> {
        if let Some(ci) = self.inner.registry.integration(tenant, slug) {
            return Ok(Some(ci));
        }
        let Some(record) = self.inner.store.integration(tenant, slug).await? else { return Ok(None) };
        Ok(self.inner.build(record).await.ok().map(|ci| {
            let ci = Arc::new(ci);
            self.inner.registry.install(ci.clone());
            ci
        }))
    }

    /// Switches a flow on or off, on every node, at once: a switched-off flow's webhook
    /// answers 404, its e-mail address refuses mail, its schedule or poll stops. Switching a
    /// schedule back on does not run the slots it missed while it was off.
    ///
    /// # Errors
    /// No such integration or flow, or the store.
    pub async fn set_active(&self, key: FlowKey<'_>, active: bool) -> Result<(), flowgate_store::Error> {
        let inner = &self.inner;
        let ci = self.integration(key.tenant, key.integration).await?.ok_or(flowgate_store::Error::NotFound)?;
        let f = ci.flows.get(key.flow).ok_or(flowgate_store::Error::NotFound)?;
        let now = inner.clock.now_ms();
        if active
            && !inner.registry.is_active(f)
            && let Some(schedule) = f.trigger.schedule()
        {
            let stored = inner.store.trigger_state(key).await?;
            let mut state = stored
                .and_then(|s| serde_json::from_str::<Value>(&s.state).ok())
                .unwrap_or_else(|| serde_json::json!({}));
            state["lastSlot"] = serde_json::json!(schedule.latest_at_or_before(now).unwrap_or(now));
            let row = f.state_row(&state, now);
            inner
                .committer
                .commit(WriteBatch { states: vec![row], ..WriteBatch::default() })
                .await
                .map_err(|e| flowgate_store::Error::Config(e.to_string()))?;
        }
        inner.store.set_flow_active(key, active, now).await?;
        inner.registry.set_switch(key, active);
        inner.trigger_wake.notify_one();
        self.announce_integration(key.tenant, key.integration).await;
        Ok(())
    }

    /// Whether a flow runs (its switch, else its document's `active`).
    pub fn is_active(&self, flow: &CompiledFlow) -> bool {
        self.inner.registry.is_active(flow)
    }

    /// What a schedule or poll flow keeps between firings (`lastSlot`, a poll's `cursor`, …),
    /// without the remembered item ids (only their count, as `remembered`).
    ///
    /// # Errors
    /// The store.
    pub async fn trigger_state(&self, key: FlowKey<'_>) -> Result<Option<Value>, flowgate_store::Error> {
        let Some(row) = self.inner.store.trigger_state(key).await? else { return Ok(None) };
        let mut v: Value = serde_json::from_str(&row.state).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            let remembered = o.remove("seen").and_then(|s| s.as_array().map(Vec::len)).unwrap_or(0);
            o.insert("remembered".into(), remembered.into());
            if let Some(t) = o.get("lastSlot").and_then(Value::as_i64) {
                o.insert("lastSlot".into(), clock::rfc3339(t).into());
            }
            o.insert("updatedAt".into(), clock::rfc3339(row.updated_at).into());
        }
        Ok(Some(v))
    }

    /// Forgets a flow's trigger state: a poll starts over as on its first run (`firstRun`
    /// decides whether what is there now runs); a schedule counts from now.
    ///
    /// # Errors
    /// The store.
    pub async fn reset_trigger_state(&self, key: FlowKey<'_>) -> Result<bool, flowgate_store::Error> {
        let deleted = self.inner.store.delete_trigger_state(key).await?;
        self.inner.registry.touch();
        self.inner.trigger_wake.notify_one();
        self.announce_integration(key.tenant, key.integration).await;
        Ok(deleted)
    }

    /// Makes the scheduler look at the clock now (tests that move a manual clock).
    pub fn wake_triggers(&self) {
        self.inner.trigger_wake.notify_one();
    }
}

/// Explicit inbound addresses shaped like another tenant's derived ones
/// (`<flow>.<integration>.<tenant>@<domain>`) are refused: the derived addresses of every
/// tenant, present and future, are theirs alone (issue 13).
fn foreign_addresses(draft: &Draft, tenant: &str, domain: &str) -> Result<(), Vec<Diagnostic>> {
    let mut problems = Vec::new();
    for (i, f) in draft.definition.flows.iter().enumerate() {
        let Some(address) =
            draft.emails().into_iter().find(|e| e.flow == f.flow).map(|e| e.address.to_ascii_lowercase())
        else {
            continue;
        };
        let Some((local, host)) = address.rsplit_once('@') else { continue };
        let parts: Vec<&str> = local.split('.').collect();
        let derived_shape = parts.len() == 3 && parts.iter().all(|p| flowgate_model::is_slug(p));
        if host.eq_ignore_ascii_case(domain) && derived_shape && parts[2] != tenant {
            problems.push(Diagnostic {
                path: format!("flows[{i}].trigger.email.address"),
                line: None,
                column: None,
                message: format!(
                    "`{address}` has the shape of tenant `{}`'s own addresses (<flow>.<integration>.<tenant>@{domain}); \
                     choose another address",
                    parts[2]
                ),
            });
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// Whether a secret marker is left in the document anywhere but in its test cases: a case
/// made from an execution (`Engine::execution_as_test`) keeps the secrets it saw as markers,
/// which the test runner puts back with the flow's own values.
fn markers_outside_tests(text: &str, format: Format) -> bool {
    if !text.contains(flowgate_secrets::MARKER_PREFIX) {
        return false;
    }
    match flowgate_model::source::parse(text, format).ok().and_then(|d| d.value.as_object().cloned()) {
        Some(top) => top.iter().any(|(k, v)| k != "tests" && v.to_string().contains(flowgate_secrets::MARKER_PREFIX)),
        None => true,
    }
}

/// Facts about a stored version, for listings.
pub fn version_summary(r: &VersionRecord) -> Value {
    serde_json::json!({ "id": r.id, "version": r.version, "hash": r.hash, "createdAt": clock::rfc3339(r.created_at) })
}
