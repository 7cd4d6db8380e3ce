//! Deployments: an integration installed in its tenant with config values, and what keeps its
//! secrets sealed at rest.
//!
//! * **Config values** are stored per deployment as a JSON object; values of `secret`
//!   variables are sealed (AES-256-GCM, bound to `tenant/integration/config/<name>`).
//! * **Literal credentials** written in a document (webhook API keys, bearer tokens, basic
//!   passwords, `secret` defaults) are taken out of the stored source and document and
//!   replaced by markers (`«secret:lit0»`); their values are sealed with the version. Reading
//!   an integration back shows the markers; applying a document that still holds them puts the
//!   current values back, so a document read from the API can be edited and applied again.
//! * **Recorded data** (journal, logs, results) goes through the flow's redactor, which puts
//!   markers in place of every secret value; resuming an execution puts the values back.
//!
//! An integration is *live* when it is deployed and every required value is set; only live
//! flows are triggered. Deploying, upgrading and reconfiguring a live integration runs its
//! `deploy` flows; undeploying or deleting it runs its `undeploy` flows.

use crate::compile::{self, CompiledIntegration, FlowTrigger};
use flowgate_model::{ConfigType, Diagnostic, Format};
use flowgate_secrets::{MARKER_PREFIX, Redactor, Sealer};
use flowgate_store::{Deployment, IntegrationKey, VersionRecord};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The marker of a secret named `name`.
pub fn marker(name: &str) -> String {
    format!("{MARKER_PREFIX}{name}»")
}

fn config_aad(tenant: &str, integration: &str, name: &str) -> String {
    format!("{tenant}/{integration}/config/{name}")
}

fn literals_aad(tenant: &str, integration: &str) -> String {
    format!("{tenant}/{integration}/literals")
}

/// Takes the literal credentials out of a document (JSON): each becomes a marker; returns
/// (name, value) of each distinct value.
pub fn extract_literals(document: &mut Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut take = |slot: &mut Value| {
        let Some(v) = slot.as_str() else { return };
        if v.is_empty() || v.contains("{{") || v.starts_with(MARKER_PREFIX) {
            return;
        }
        let name = match found.iter().find(|(_, value)| value == v) {
            Some((name, _)) => name.clone(),
            None => {
                let name = format!("lit{}", found.len());
                found.push((name.clone(), v.to_owned()));
                name
            }
        };
        *slot = Value::String(marker(&name));
    };
    if let Some(config) = document.get_mut("config").and_then(Value::as_object_mut) {
        for var in config.values_mut() {
            if var["type"] == "secret"
                && let Some(d) = var.get_mut("default")
            {
                take(d);
            }
        }
    }
    // Connections' secret settings (a client secret, a password, a key, a token).
    if let Some(connections) = document.get_mut("connections").and_then(Value::as_object_mut) {
        for connection in connections.values_mut() {
            for (kind, field) in flowgate_model::connection::SECRET_FIELDS {
                if let Some(slot) = connection.get_mut(*kind).and_then(|k| k.get_mut(*field)) {
                    take(slot);
                }
            }
        }
    }
    if let Some(flows) = document.get_mut("flows") {
        credentials(flows, &mut take);
    }
    found
}

/// Walks a flow (its trigger, steps, nested steps and hooks) and hands every literal
/// credential slot to `take`: inbound `auth` and `verify` secrets, outbound webhooks' `auth`.
fn credentials(v: &mut Value, take: &mut impl FnMut(&mut Value)) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|x| credentials(x, take)),
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child.as_object_mut()) {
                    ("auth", Some(modes)) => {
                        for (mode, spec) in modes.iter_mut() {
                            match mode.as_str() {
                                "header" => spec.get_mut("value").into_iter().for_each(&mut *take),
                                "bearer" => spec.get_mut("token").into_iter().for_each(&mut *take),
                                "basic" => spec.get_mut("password").into_iter().for_each(&mut *take),
                                "clientSecret" | "standardWebhooks" => {
                                    spec.get_mut("secret").into_iter().for_each(&mut *take)
                                }
                                "apiKey" => {
                                    for key in spec.get_mut("keys").and_then(Value::as_array_mut).into_iter().flatten()
                                    {
                                        key.get_mut("secret").into_iter().for_each(&mut *take);
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    ("verify", Some(schemes)) => {
                        for spec in schemes.values_mut() {
                            spec.get_mut("secret").into_iter().for_each(&mut *take);
                            for s in spec.get_mut("secrets").and_then(Value::as_array_mut).into_iter().flatten() {
                                take(s);
                            }
                        }
                    }
                    // Request headers (http steps, polls, webhooks) that carry credentials.
                    ("headers", Some(headers)) => {
                        for (name, value) in headers.iter_mut() {
                            if is_credential_header(name) {
                                take(value);
                            }
                        }
                    }
                    _ => credentials(child, take),
                }
            }
        }
        _ => {}
    }
}

/// Whether a header's value is a credential: `Authorization`, `Cookie`, API keys, and any
/// name saying token, secret, password or key.
fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "authorization" | "proxy-authorization" | "cookie")
        || ["token", "secret", "password", "key", "signature"].iter().any(|w| n.contains(w))
}

/// The source text with each literal's value replaced by its marker.
pub fn redact_source(source: &str, literals: &[(String, String)]) -> String {
    Redactor::new(literals.iter().cloned()).redact_text(source).into_owned()
}

/// Seals a version's literal credentials (`None` when there are none).
pub fn seal_literals(sealer: &Sealer, tenant: &str, slug: &str, literals: &[(String, String)]) -> Option<String> {
    if literals.is_empty() {
        return None;
    }
    let map: Map<String, Value> = literals.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    Some(sealer.seal_str(&Value::Object(map).to_string(), &literals_aad(tenant, slug)))
}

/// A version's literal credentials, opened.
///
/// # Errors
/// When they cannot be opened (another master key, tampering).
pub fn open_literals(sealer: &Sealer, record: &VersionRecord) -> Result<Vec<(String, String)>, String> {
    let Some(sealed) = &record.secrets else { return Ok(Vec::new()) };
    let text = sealer
        .open_str(sealed, &literals_aad(&record.tenant_id, &record.slug))
        .map_err(|e| format!("cannot open the credentials of {} version {}: {e}", record.slug, record.version))?;
    let map: Map<String, Value> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(map.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned()))).collect())
}

/// A deployment's config values, secrets opened.
///
/// # Errors
/// When a sealed value cannot be opened.
pub fn open_values(sealer: &Sealer, d: &Deployment) -> Result<Map<String, Value>, String> {
    let stored: Map<String, Value> = serde_json::from_str(&d.config).unwrap_or_default();
    let mut out = Map::new();
    for (k, v) in stored {
        let v = match v.as_str() {
            Some(s) if Sealer::is_sealed(s) => Value::String(
                sealer
                    .open_str(s, &config_aad(&d.tenant_id, &d.integration, &k))
                    .map_err(|e| format!("cannot open config value `{k}` of {}: {e}", d.integration))?,
            ),
            _ => v,
        };
        out.insert(k, v);
    }
    Ok(out)
}

/// The names of a deployment's config values that are stored sealed. Each is a secret
/// whatever type the current document gives its variable: a version (or a draft) that
/// changes a `secret` variable to `string` still runs with the sealed value, and must not
/// record or show it.
pub fn sealed_names(d: &Deployment) -> Vec<String> {
    let stored: Map<String, Value> = serde_json::from_str(&d.config).unwrap_or_default();
    stored.into_iter().filter(|(_, v)| v.as_str().is_some_and(Sealer::is_sealed)).map(|(k, _)| k).collect()
}

/// Config values as stored: the values of `secret` variables sealed, and those named in
/// `keep_sealed` (values stored sealed before, kept as they were).
pub fn seal_values(
    sealer: &Sealer,
    tenant: &str,
    integration: &str,
    vars: &indexmap::IndexMap<String, flowgate_model::ConfigVar>,
    values: &Map<String, Value>,
    keep_sealed: &[String],
) -> String {
    let mut out = Map::new();
    for (k, v) in values {
        let secret = vars.get(k).is_some_and(|var| var.kind == ConfigType::Secret) || keep_sealed.contains(k);
        let stored = match (secret, v.as_str()) {
            (true, Some(s)) => Value::String(sealer.seal_str(s, &config_aad(tenant, integration, k))),
            _ => v.clone(),
        };
        out.insert(k.clone(), stored);
    }
    Value::Object(out).to_string()
}

/// Re-seals one sealed text the store keeps with `sealer`'s current key (master key
/// rotation): a version's literal credentials, or every sealed value of a deployment's config.
///
/// # Errors
/// A value that opens with none of the sealer's keys.
pub fn reseal_item(sealer: &Sealer, item: flowgate_store::Sealed<'_>) -> Result<String, String> {
    match item.kind {
        "version" => {
            sealer.reseal(item.text, literals_aad(item.tenant, item.integration).as_bytes()).map_err(|e| e.to_string())
        }
        "delivery" => sealer
            .reseal(item.text, crate::deliveries::aad(item.integration).as_bytes())
            .map_err(|e| format!("delivery {}: {e}", item.integration)),
        "logSource" => sealer
            .reseal(item.text, crate::logs::aad(item.tenant, item.integration).as_bytes())
            .map_err(|e| format!("log source {}: {e}", item.integration)),
        // `integration` is `<integration>/connections/<name>[/pkce]` here (tokens::aad).
        "connection" => sealer
            .reseal(item.text, format!("{}/{}", item.tenant, item.integration).as_bytes())
            .map_err(|e| format!("connection {}: {e}", item.integration)),
        "smtp" => sealer
            .reseal(item.text, crate::deliveries::email::smtp_aad(item.tenant).as_bytes())
            .map_err(|e| format!("SMTP settings of {}: {e}", item.tenant)),
        _ => {
            let mut map: Map<String, Value> = serde_json::from_str(item.text).map_err(|e| e.to_string())?;
            for (name, v) in map.iter_mut() {
                if let Some(s) = v.as_str().filter(|s| Sealer::is_sealed(s)) {
                    let aad = config_aad(item.tenant, item.integration, name);
                    *v = Value::String(
                        sealer.reseal(s, aad.as_bytes()).map_err(|e| format!("{}: {e}", item.integration))?,
                    );
                }
            }
            Ok(Value::Object(map).to_string())
        }
    }
}

/// A deployment's next `updated_at`: now, but always after the last one, so it orders the
/// deployment's changes whatever the clocks of the nodes that made them.
pub fn next_stamp(now: i64, previous: i64) -> i64 {
    now.max(previous + 1)
}

/// Compiles a stored version for its deployment: literal credentials put back, config values
/// opened, the redactor made from every secret value.
///
/// # Errors
/// Problems of a document that no longer validates, or secrets that cannot be opened.
pub fn build(
    record: VersionRecord,
    deployment: Option<&Deployment>,
    sealer: &Sealer,
    public_url: &str,
) -> Result<CompiledIntegration, Vec<Diagnostic>> {
    let problem = |m: String| vec![Diagnostic { path: String::new(), message: m, line: None, column: None }];
    let literals = open_literals(sealer, &record).map_err(problem)?;
    let document = Redactor::new(literals.iter().cloned()).restore_json_text(&record.document).into_owned();
    let values = match deployment {
        Some(d) => open_values(sealer, d).map_err(problem)?,
        None => Map::new(),
    };
    let draft = compile::compile_in(&document, Format::Json, &values)?;
    let mut secrets = literals;
    for (name, var) in &draft.definition.config {
        if var.kind == ConfigType::Secret {
            let value = values.get(name).or(var.default.as_ref()).and_then(Value::as_str);
            if let Some(v) = value {
                secrets.push((format!("config.{name}"), v.to_owned()));
            }
        }
    }
    // Every value stored sealed is a secret, whatever type this document gives its variable
    // (one changed from `secret` to `string` runs with the sealed value all the same).
    for name in deployment.map(sealed_names).unwrap_or_default() {
        let marker_name = format!("config.{name}");
        if secrets.iter().any(|(n, _)| *n == marker_name) {
            continue;
        }
        if let Some(v) = values.get(&name).and_then(Value::as_str) {
            secrets.push((marker_name, v.to_owned()));
        }
    }
    let redactor = Arc::new(Redactor::new(secrets));
    let deployed = deployment.is_none_or(|d| d.deployed);
    let mut ci = draft.into_compiled(record, public_url, deployed, redactor);
    ci.stamp = deployment.map_or(0, |d| d.updated_at);
    Ok(ci)
}

/// Puts the current version's literal credentials back into a document's text that still
/// holds their markers (one read from the API).
pub fn restore_source(text: &str, literals: &[(String, String)]) -> String {
    if literals.is_empty() || !text.contains(MARKER_PREFIX) {
        return text.to_owned();
    }
    Redactor::new(literals.iter().cloned()).restore_text(text).into_owned()
}

/// The lifecycle flows of an integration for `event` (`deploy` or `undeploy`).
pub fn lifecycle_flows(ci: &CompiledIntegration, event: &str) -> Vec<Arc<crate::CompiledFlow>> {
    ci.flows
        .values()
        .filter(|f| {
            matches!((&f.trigger, event), (FlowTrigger::Deploy, "deploy") | (FlowTrigger::Undeploy, "undeploy"))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_markers_and_come_back() {
        let mut doc = json!({
            "config": { "token": { "type": "secret", "default": "s3cret-default" }, "url": { "type": "string", "default": "http://x" } },
            "flows": [
                { "trigger": { "webhook": { "auth": { "apiKey": { "keys": [{ "label": "a", "secret": "key-aaaa-1111" }, { "label": "b", "secret": "{{ $config.token }}" }] } } } } },
                { "trigger": { "webhook": { "auth": { "bearer": { "token": "key-aaaa-1111" } } } } },
                { "trigger": { "webhook": { "auth": { "basic": { "username": "u", "password": "pa55word" } } } } },
                { "trigger": { "manual": {} } }
            ]
        });
        let literals = extract_literals(&mut doc);
        let mut outbound = json!({ "flows": [{
            "trigger": { "webhook": { "verify": { "github": { "secrets": ["gh-old-1", "gh-new-2"] } } } },
            "steps": [
                { "id": "a", "webhook": { "auth": { "standardWebhooks": { "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5" } } } },
                { "id": "b", "forEach": { "steps": [ { "id": "c", "hooks": { "onComplete": { "auth": { "clientSecret": { "secret": "cs-333" } } } } } ] } },
                { "id": "d", "webhook": { "auth": { "basic": { "username": "u", "password": "{{ $config.p }}" } } } },
                { "id": "e", "http": { "url": "http://erp", "headers": {
                    "Authorization": "Bearer erp-literal-4", "X-Api-Key": "ak-555", "Accept": "application/json",
                    "X-Auth-Token": "Bearer {{ $config.t }}" } } }
            ]
        }] });
        let found: Vec<String> = extract_literals(&mut outbound).into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            found,
            ["gh-old-1", "gh-new-2", "whsec_c2VjcmV0LXNpZ25pbmcta2V5", "cs-333", "Bearer erp-literal-4", "ak-555"]
        );
        assert_eq!(outbound["flows"][0]["steps"][3]["http"]["headers"]["Accept"], "application/json");
        // Every `verify` scheme's `secret`/`secrets` is sealed, Intuit's verifier tokens too.
        let mut intuit = json!({ "flows": [
            { "trigger": { "webhook": { "verify": { "intuit": { "secret": "qb-verifier-6" } } } } },
            { "trigger": { "webhook": { "verify": { "intuit": { "secrets": ["qb-old-7", "{{ $config.qbVerifier }}"] } } } } }
        ] });
        let found: Vec<String> = extract_literals(&mut intuit).into_iter().map(|(_, v)| v).collect();
        assert_eq!(found, ["qb-verifier-6", "qb-old-7"]);
        assert_eq!(
            intuit["flows"][1]["trigger"]["webhook"]["verify"]["intuit"]["secrets"][1],
            "{{ $config.qbVerifier }}"
        );
        assert!(!intuit.to_string().contains("qb-verifier-6"));
        assert_eq!(outbound["flows"][0]["steps"][2]["webhook"]["auth"]["basic"]["password"], "{{ $config.p }}");
        assert_eq!(
            literals,
            vec![
                ("lit0".into(), "s3cret-default".into()),
                ("lit1".into(), "key-aaaa-1111".into()),
                ("lit2".into(), "pa55word".into())
            ]
        );
        let text = doc.to_string();
        for (_, v) in &literals {
            assert!(!text.contains(v.as_str()), "{text}");
        }
        assert_eq!(doc["flows"][0]["trigger"]["webhook"]["auth"]["apiKey"]["keys"][1]["secret"], "{{ $config.token }}");
        assert_eq!(doc["config"]["url"]["default"], "http://x");
        let restored = Redactor::new(literals.clone()).restore_json_text(&text).into_owned();
        let back: Value = serde_json::from_str(&restored).unwrap();
        assert_eq!(back["flows"][1]["trigger"]["webhook"]["auth"]["bearer"]["token"], "key-aaaa-1111");
        let source = "auth: { bearer: { token: key-aaaa-1111 } } # and pa55word\n";
        let red = redact_source(source, &literals);
        assert_eq!(red, "auth: { bearer: { token: «secret:lit1» } } # and «secret:lit2»\n");
        assert_eq!(restore_source(&red, &literals), source);
    }

    #[test]
    fn values_and_literals_are_sealed_with_their_context() {
        let sealer = Sealer::new(flowgate_secrets::MasterKey::generate());
        let mut vars = indexmap::IndexMap::new();
        vars.insert(
            "token".to_owned(),
            serde_json::from_value::<flowgate_model::ConfigVar>(json!({ "type": "secret" })).unwrap(),
        );
        let values: Map<String, Value> = json!({ "token": "tok-123456", "n": 3 }).as_object().unwrap().clone();
        let stored = seal_values(&sealer, "t1", "shop", &vars, &values, &[]);
        assert!(!stored.contains("tok-123456"), "{stored}");
        let d = |tenant: &str| Deployment {
            tenant_id: tenant.into(),
            integration: "shop".into(),
            config: stored.clone(),
            deployed: true,
            deployed_version: None,
            updated_at: 0,
        };
        assert_eq!(open_values(&sealer, &d("t1")).unwrap(), values);
        assert!(open_values(&sealer, &d("t2")).is_err(), "a value moved to another tenant does not open");
        assert_eq!(sealed_names(&d("t1")), ["token"]);
        // A value stored sealed stays sealed when its variable is no longer `secret`.
        let kept = seal_values(&sealer, "t1", "shop", &indexmap::IndexMap::new(), &values, &["token".into()]);
        assert!(!kept.contains("tok-123456"), "{kept}");
        let d = Deployment { config: kept, ..d("t1") };
        assert_eq!((sealed_names(&d), open_values(&sealer, &d).unwrap()), (vec!["token".to_owned()], values));
    }
}

/// Why a deployment change was refused.
#[derive(Debug)]
pub enum DeployError {
    /// No such integration.
    NotFound,
    /// Values that do not fit their variables, and required variables left without one.
    Invalid {
        /// `(config.<name>, what is wrong)`.
        problems: Vec<(String, String)>,
        /// Required variables without a value.
        missing: Vec<String>,
    },
    /// The store failed.
    Store(flowgate_store::Error),
    /// A lifecycle flow could not be started.
    Submit(crate::SubmitError),
}

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeployError::NotFound => f.write_str("no such integration"),
            DeployError::Invalid { problems, missing } => {
                let mut parts: Vec<String> = problems.iter().map(|(at, m)| format!("{at}: {m}")).collect();
                if !missing.is_empty() {
                    parts.push(format!("required config without a value: {}", missing.join(", ")));
                }
                f.write_str(&parts.join("; "))
            }
            DeployError::Store(e) => write!(f, "{e}"),
            DeployError::Submit(e) => write!(f, "a lifecycle flow could not start: {e}"),
        }
    }
}

impl From<flowgate_store::Error> for DeployError {
    fn from(e: flowgate_store::Error) -> Self {
        DeployError::Store(e)
    }
}

impl From<crate::SubmitError> for DeployError {
    fn from(e: crate::SubmitError) -> Self {
        DeployError::Submit(e)
    }
}

impl crate::Engine {
    /// Applies an earlier version's document again, as a new version (with its literal
    /// credentials).
    ///
    /// # Errors
    /// As [`crate::Engine::apply`].
    pub async fn rollback(
        &self,
        tenant: &str,
        version: &VersionRecord,
    ) -> Result<(flowgate_store::PutOutcome, Arc<CompiledIntegration>), crate::ApplyError> {
        let literals = open_literals(&self.inner.sealer, version).map_err(crate::ApplyError::Conflict)?;
        let text = Redactor::new(literals).restore_text(&version.source).into_owned();
        let format = if version.format == "json" { Format::Json } else { Format::Yaml };
        self.apply(tenant, &text, format).await
    }

    /// Starts an integration's lifecycle flows for `event` (`deploy` / `undeploy`) and records
    /// the version they ran for.
    pub(crate) async fn run_lifecycle(
        &self,
        ci: &CompiledIntegration,
        event: &str,
        reason: &str,
        mut deployment: Deployment,
    ) -> Result<Vec<String>, flowgate_store::Error> {
        let mut ids = Vec::new();
        let flows = if self.inner.settings.lifecycle { lifecycle_flows(ci, event) } else { Vec::new() };
        for flow in flows {
            let trigger = json!({
                "event": event,
                "reason": reason,
                "version": ci.record.version,
                "previousVersionId": deployment.deployed_version,
                "webhookUrls": flow.flow_var["webhookUrls"],
            });
            let kind = if event == "deploy" { "deploy" } else { "undeploy" };
            match self
                .submit(crate::Submission {
                    flow: flow.clone(),
                    trigger,
                    kind,
                    auth_label: None,
                    replay_of: None,
                    wait: crate::Wait::No,
                    options: Default::default(),
                })
                .await
            {
                Ok(s) => ids.push(s.id),
                Err(e) => {
                    tracing::error!(error = %e, flow = %flow.slug, "Cannot start a lifecycle flow.");
                    return Err(flowgate_store::Error::Config(format!("cannot start `{}`: {e}", flow.slug)));
                }
            }
        }
        deployment.deployed_version = if event == "deploy" { Some(ci.record.id) } else { None };
        deployment.updated_at = next_stamp(self.inner.clock.now_ms(), deployment.updated_at);
        self.inner.store.put_deployment(&deployment).await?;
        Ok(ids)
    }

    /// Sets config values of an integration's deployment (merged with the values it has; a
    /// null unsets one) and deploys it: when every required value is set it goes live (on
    /// every node) and its `deploy` flows run. Nothing is stored when a value does not fit its
    /// variable or a required one would stay unset.
    ///
    /// # Errors
    /// [`DeployError::Invalid`] lists every problem and every missing value.
    pub async fn put_deployment(
        &self,
        tenant: &str,
        slug: &str,
        values: &Map<String, Value>,
    ) -> Result<Arc<CompiledIntegration>, DeployError> {
        self.put_config(tenant, slug, values, true).await
    }

    /// Sets config values like [`Engine::put_deployment`]; with `require_all` false, required
    /// values may stay missing (the integration is then stored but not live): flow tests lay
    /// the values given over the defaults this way.
    pub(crate) async fn put_config(
        &self,
        tenant: &str,
        slug: &str,
        values: &Map<String, Value>,
        require_all: bool,
    ) -> Result<Arc<CompiledIntegration>, DeployError> {
        let inner = &self.inner;
        let ci = self.integration(tenant, slug).await?.ok_or(DeployError::NotFound)?;
        let vars = &ci.definition.config;
        let mut problems = Vec::new();
        for (name, v) in values {
            match vars.get(name) {
                None => {
                    let known: Vec<&str> = vars.keys().map(String::as_str).collect();
                    problems.push((
                        format!("config.{name}"),
                        format!("unknown config variable (the integration declares: {})", known.join(", ")),
                    ));
                }
                Some(_) if v.is_null() => {}
                Some(var) => {
                    if let Err(m) = var.check_value(v) {
                        problems.push((format!("config.{name}"), m));
                    }
                }
            }
        }
        let existing = inner.store.deployment(IntegrationKey { tenant, integration: slug }).await?;
        let mut merged = match &existing {
            Some(d) => {
                open_values(&inner.sealer, d).map_err(|m| DeployError::Store(flowgate_store::Error::Config(m)))?
            }
            None => Map::new(),
        };
        for (name, v) in values {
            if v.is_null() {
                merged.remove(name);
            } else if vars.contains_key(name) {
                merged.insert(name.clone(), v.clone());
            }
        }
        let missing: Vec<String> = vars
            .iter()
            .filter(|(name, var)| var.required && var.default.is_none() && !merged.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        if !problems.is_empty() || (require_all && !missing.is_empty()) {
            return Err(DeployError::Invalid { problems, missing });
        }
        // A value stored sealed and not given again stays sealed, even when the variable is
        // no longer `secret`: changing its type never unseals it.
        let keep_sealed: Vec<String> = existing
            .as_ref()
            .map(sealed_names)
            .unwrap_or_default()
            .into_iter()
            .filter(|name| !values.contains_key(name))
            .collect();
        let now = inner.clock.now_ms();
        let deployment = Deployment {
            tenant_id: tenant.to_owned(),
            integration: slug.to_owned(),
            config: seal_values(&inner.sealer, tenant, slug, vars, &merged, &keep_sealed),
            deployed: true,
            deployed_version: existing.as_ref().and_then(|d| d.deployed_version),
            updated_at: next_stamp(now, existing.as_ref().map_or(0, |d| d.updated_at)),
        };
        inner.store.put_deployment(&deployment).await?;
        let rebuilt = build(ci.record.clone(), Some(&deployment), &inner.sealer, &inner.settings.public_url)
            .map_err(|p| DeployError::Store(flowgate_store::Error::Config(format!("{p:?}"))))?;
        let rebuilt = Arc::new(rebuilt);
        inner.registry.install(rebuilt.clone());
        self.announce_integration(tenant, slug).await;
        if rebuilt.live() {
            // First time live: a deploy; live before: its configuration changed.
            let reason = if existing.as_ref().is_some_and(|d| d.deployed && d.deployed_version.is_some()) {
                "config"
            } else {
                "deploy"
            };
            self.run_lifecycle(&rebuilt, "deploy", reason, deployment).await?;
        }
        Ok(rebuilt)
    }

    /// Undeploys an integration: it stays stored but is no longer live (on every node), and
    /// its `undeploy` flows run. Returns false when it was not deployed.
    ///
    /// # Errors
    /// No such integration, or the store.
    pub async fn undeploy(&self, tenant: &str, slug: &str) -> Result<bool, DeployError> {
        let inner = &self.inner;
        let ci = self.integration(tenant, slug).await?.ok_or(DeployError::NotFound)?;
        let Some(mut d) = inner.store.deployment(IntegrationKey { tenant, integration: slug }).await? else {
            return Ok(false);
        };
        if !d.deployed {
            return Ok(false);
        }
        let was_live = ci.live();
        d.deployed = false;
        d.updated_at = next_stamp(inner.clock.now_ms(), d.updated_at);
        inner.store.put_deployment(&d).await?;
        let rebuilt = build(ci.record.clone(), Some(&d), &inner.sealer, &inner.settings.public_url)
            .map_err(|p| DeployError::Store(flowgate_store::Error::Config(format!("{p:?}"))))?;
        inner.registry.install(Arc::new(rebuilt));
        self.announce_integration(tenant, slug).await;
        if was_live {
            self.run_lifecycle(&ci, "undeploy", "undeploy", d).await?;
        }
        Ok(true)
    }

    /// A deployment as the API shows it: deployed, live, what is missing, each config value
    /// (secrets, and values stored sealed, only as set or not), the lifecycle flows' last runs.
    ///
    /// # Errors
    /// No such integration, or the store.
    pub async fn deployment_view(&self, tenant: &str, slug: &str) -> Result<Value, DeployError> {
        let inner = &self.inner;
        let ci = self.integration(tenant, slug).await?.ok_or(DeployError::NotFound)?;
        let d = inner.store.deployment(IntegrationKey { tenant, integration: slug }).await?;
        let values = match &d {
            Some(d) => {
                open_values(&inner.sealer, d).map_err(|m| DeployError::Store(flowgate_store::Error::Config(m)))?
            }
            None => Map::new(),
        };
        let sealed = d.as_ref().map(sealed_names).unwrap_or_default();
        let mut config = Map::new();
        for (name, var) in &ci.definition.config {
            let (value, source) = match (values.get(name), &var.default) {
                (Some(v), _) => (Some(v), "deployment"),
                (None, Some(dflt)) => (Some(dflt), "default"),
                (None, None) => (None, "unset"),
            };
            let shown = if var.kind == ConfigType::Secret {
                json!({ "type": "secret", "set": value.is_some(), "source": source })
            } else if source == "deployment" && sealed.contains(name) {
                // Stored sealed (set while the variable was `secret`): shown as set, never
                // its value.
                json!({ "type": var.kind, "set": true, "sealed": true, "source": source })
            } else {
                json!({ "type": var.kind, "value": value, "source": source })
            };
            config.insert(name.clone(), shown);
        }
        let mut lifecycle = Vec::new();
        for event in ["deploy", "undeploy"] {
            for f in lifecycle_flows(&ci, event) {
                let last = inner.store.last_run(f.key()).await?;
                lifecycle.push(json!({
                    "flow": f.slug,
                    "trigger": event,
                    "lastExecutionId": last.as_ref().map(|r| r.id.clone()),
                    "lastStatus": last.as_ref().map(|r| r.status.clone()),
                    "lastRunAt": last.as_ref().map(|r| crate::clock::rfc3339(r.finished_at.unwrap_or(r.created_at))),
                }));
            }
        }
        let deployed_version = match d.as_ref().and_then(|d| d.deployed_version) {
            Some(id) if id == ci.record.id => Some(ci.record.version),
            Some(id) => inner.store.version(id).await?.map(|v| v.version),
            None => None,
        };
        Ok(json!({
            "integration": slug,
            "version": ci.record.version,
            "deployed": ci.deployed,
            "live": ci.live(),
            "missing": ci.missing,
            "deployedVersion": deployed_version,
            "config": config,
            "lifecycle": lifecycle,
            "updatedAt": d.map(|d| crate::clock::rfc3339(d.updated_at)),
        }))
    }
}
