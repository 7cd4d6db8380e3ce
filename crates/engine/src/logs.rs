//! Log sources (SIEM): each tenant's named sinks (syslog, HTTP, file), and the events of
//! flows with `logSource: <name>` — execution started, each `log` line, each failed step
//! attempt, execution ended with its duration — sent to them as structured records.
//!
//! Every node runs the sinks of every log source (it emits the events of the executions it
//! runs) and reloads them when they change anywhere. Sending never waits: a sink that cannot
//! keep up drops records and counts them (its stats are in the API). Messages and fields go
//! through the flow's redactor first.
//!
//! A log source's config is sealed at rest (HTTP headers carry collector tokens) and shown
//! with header values and URL queries masked. For multi-tenant hosting, `file` sources stay
//! inside the server's log directory and network sources obey the outbound policy.

use crate::{CompiledFlow, Inner};
use flowgate_secrets::Sealer;
use flowgate_sinks::{Level, LogEvent, Sink, SinkConfig, SinkOptions, SinkStats};
use flowgate_store::LogSourceRecord;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The running sinks, by (tenant, name).
#[derive(Default)]
pub(crate) struct LogSinks {
    sinks: Mutex<HashMap<(String, String), (SinkConfig, Sink)>>,
}

impl LogSinks {
    /// Brings the running sinks in line with the stored log sources.
    pub(crate) async fn reload(
        &self,
        records: Vec<LogSourceRecord>,
        sealer: &Sealer,
        policy: &flowgate_steps::outbound::OutboundPolicy,
    ) {
        // Under `--outbound-deny-private`, every connection a sink makes is held to the policy
        // (not only the URL checked when the source was saved).
        let guard: Option<flowgate_sinks::AddressGuard> = policy.deny_private.then(|| {
            let policy = policy.clone();
            Arc::new(move |host: &str, ip: std::net::IpAddr| policy.allows(host, ip)) as flowgate_sinks::AddressGuard
        });
        let wanted: HashMap<(String, String), SinkConfig> = records
            .into_iter()
            .filter_map(|r| match open_config(sealer, &r) {
                Ok(c) => Some(((r.tenant_id, r.name), c)),
                Err(e) => {
                    tracing::warn!(tenant = %r.tenant_id, name = %r.name, error = %e, "A stored log source does not parse.");
                    None
                }
            })
            .collect();
        let mut stopped = Vec::new();
        {
            let mut sinks = self.sinks.lock().expect("sinks lock");
            let keys: Vec<_> = sinks.keys().cloned().collect();
            for key in keys {
                if wanted.get(&key) != sinks.get(&key).map(|(c, _)| c)
                    && let Some((_, sink)) = sinks.remove(&key)
                {
                    stopped.push(sink);
                }
            }
            for (key, config) in wanted {
                if sinks.contains_key(&key) {
                    continue;
                }
                match Sink::start(config.clone(), SinkOptions { guard: guard.clone(), ..SinkOptions::default() }) {
                    Ok(sink) => {
                        sinks.insert(key, (config, sink));
                    }
                    Err(e) => tracing::warn!(tenant = %key.0, name = %key.1, error = %e, "Cannot start a log source."),
                }
            }
        }
        for sink in stopped {
            sink.stop().await;
        }
    }

    fn get(&self, tenant: &str, name: &str) -> Option<Sink> {
        self.sinks.lock().expect("sinks lock").get(&(tenant.to_owned(), name.to_owned())).map(|(_, s)| s.clone())
    }

    /// The counters of a tenant's sink.
    pub(crate) fn stats(&self, tenant: &str, name: &str) -> Option<SinkStats> {
        self.get(tenant, name).map(|s| s.stats())
    }

    /// Waits until every sink delivered what it was given (tests, shutdown).
    pub(crate) async fn flush(&self, timeout: std::time::Duration) {
        let all: Vec<Sink> = self.sinks.lock().expect("sinks lock").values().map(|(_, s)| s.clone()).collect();
        for s in all {
            s.flush(timeout).await;
        }
    }
}

/// One event of an execution, for its flow's log source (if it has one).
pub(crate) struct Emit<'a> {
    pub flow: &'a CompiledFlow,
    pub execution: &'a str,
    pub step: Option<&'a str>,
    pub event: &'a str,
    pub level: Level,
    pub message: String,
    pub duration_ms: Option<u64>,
    pub fields: Map<String, Value>,
}

impl Inner {
    /// Sends an execution event to its flow's log source; never waits.
    pub(crate) fn emit(&self, e: Emit<'_>) {
        let Some(name) = &e.flow.log_source else { return };
        let Some(sink) = self.log_sinks.get(&e.flow.tenant, name) else { return };
        let redactor = &e.flow.redactor;
        let fields = match redactor.redact_value(&Value::Object(e.fields)) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        sink.send(LogEvent {
            timestamp_ms: self.clock.now_ms(),
            tenant: e.flow.tenant.clone(),
            integration: e.flow.integration.clone(),
            flow: e.flow.slug.clone(),
            execution_id: e.execution.to_owned(),
            step: e.step.map(str::to_owned),
            event: e.event.to_owned(),
            level: e.level,
            message: redactor.redact_text(&e.message).into_owned(),
            duration_ms: e.duration_ms,
            fields,
        });
    }
}

/// A log line's level.
pub(crate) fn level(s: &str) -> Level {
    match s {
        "debug" => Level::Debug,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => Level::Info,
    }
}

/// Fields of an error.
pub(crate) fn error_fields(code: &str, attempt: Option<u32>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("errorCode".into(), json!(code));
    if let Some(a) = attempt {
        m.insert("attempt".into(), json!(a));
    }
    m
}

impl crate::Engine {
    /// Creates or replaces a tenant's log source, on every node.
    ///
    /// # Errors
    /// A config that does not validate, or the store.
    pub async fn put_log_source(&self, tenant: &str, name: &str, config: &SinkConfig) -> Result<(), String> {
        if !flowgate_model::is_slug(name) {
            return Err(format!("invalid log source name `{name}`: expected a slug"));
        }
        let config = self.confine(tenant, config.clone()).await?;
        config.validate()?;
        let plain = serde_json::to_string(&config).map_err(|e| e.to_string())?;
        let record = LogSourceRecord {
            tenant_id: tenant.to_owned(),
            name: name.to_owned(),
            config: self.inner.sealer.seal_str(&plain, &aad(tenant, name)),
            updated_at: self.inner.clock.now_ms(),
        };
        self.inner.store.put_log_source(&record).await.map_err(|e| e.to_string())?;
        self.reload_log_sources(tenant).await;
        Ok(())
    }

    /// Deletes a log source; false if there was none.
    ///
    /// # Errors
    /// The store.
    pub async fn delete_log_source(&self, tenant: &str, name: &str) -> Result<bool, flowgate_store::Error> {
        let deleted = self.inner.store.delete_log_source(tenant, name).await?;
        self.reload_log_sources(tenant).await;
        Ok(deleted)
    }

    /// A tenant's log sources with their counters.
    ///
    /// # Errors
    /// The store.
    pub async fn log_sources(&self, tenant: &str) -> Result<Vec<Value>, flowgate_store::Error> {
        Ok(self
            .inner
            .store
            .log_sources(tenant)
            .await?
            .into_iter()
            .map(|r| {
                let config = open_config(&self.inner.sealer, &r).map_or(Value::Null, |c| masked(&c));
                json!({
                    "name": r.name,
                    "config": config,
                    "updatedAt": crate::clock::rfc3339(r.updated_at),
                    "stats": self.inner.log_sinks.stats(tenant, &r.name),
                })
            })
            .collect())
    }

    /// Waits until every log source delivered what it was given (tests).
    pub async fn flush_logs(&self, timeout: std::time::Duration) {
        self.inner.log_sinks.flush(timeout).await;
    }

    async fn reload_log_sources(&self, tenant: &str) {
        if let Ok(all) = self.inner.store.all_log_sources().await {
            self.inner.log_sinks.reload(all, &self.inner.sealer, &self.inner.settings.outbound).await;
        }
        let event = flowgate_store::StoreEvent::LogSources { tenant: tenant.to_owned() };
        if let Err(e) = self.inner.store.notify(&[event]).await {
            tracing::warn!(error = %e, "Could not tell the other nodes about a changed log source.");
        }
    }
}

impl crate::Engine {
    /// Keeps a log source where this server lets tenants write and connect.
    async fn confine(&self, tenant: &str, config: SinkConfig) -> Result<SinkConfig, String> {
        let policy = &self.inner.settings.outbound;
        match config {
            SinkConfig::File { path } => {
                let Some(root) = &self.inner.settings.log_dir else { return Ok(SinkConfig::File { path }) };
                let asked = std::path::Path::new(&path);
                if asked.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                    return Err(format!("invalid file path `{path}`: `..` is not allowed"));
                }
                // Each tenant writes in its own folder only: not the log directory at large,
                // where another tenant's files are (issue 13).
                let own = root.join(tenant);
                let full = if asked.is_absolute() { asked.to_path_buf() } else { own.join(asked) };
                if !full.starts_with(&own) || full == own {
                    return Err(format!(
                        "invalid file path `{path}`: this tenant's log files are written inside {} (give a relative path)",
                        own.display()
                    ));
                }
                Ok(SinkConfig::File { path: full.to_string_lossy().into_owned() })
            }
            SinkConfig::Syslog { ref url, .. } | SinkConfig::Http { ref url, .. } => {
                let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
                let host = parsed.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
                let port = parsed.port_or_known_default().unwrap_or(514);
                policy.check_host(&host, port).await?;
                Ok(config)
            }
        }
    }
}

/// The associated data a log source's sealed config is bound to.
pub(crate) fn aad(tenant: &str, name: &str) -> String {
    format!("log-source/{tenant}/{name}")
}

fn open_config(sealer: &Sealer, r: &LogSourceRecord) -> Result<SinkConfig, String> {
    let text = sealer.open_str(&r.config, &aad(&r.tenant_id, &r.name)).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// A config as the API shows it: header values and URL queries masked (they carry tokens).
fn masked(config: &SinkConfig) -> Value {
    let mut v = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(inner) = v.as_object_mut().and_then(|m| m.values_mut().next()).and_then(Value::as_object_mut) {
        if let Some(Value::Object(headers)) = inner.get_mut("headers") {
            for value in headers.values_mut() {
                *value = json!("«redacted»");
            }
        }
        if let Some(Value::String(url)) = inner.get_mut("url")
            && let Some((base, _)) = url.split_once('?')
        {
            *url = format!("{base}?«redacted»");
        }
    }
    v
}
