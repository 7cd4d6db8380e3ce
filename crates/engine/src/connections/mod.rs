//! Connections at run time. `compile` resolves an integration's `connections:` against its
//! deployment's config (once per build, like webhook credentials); `tokens` obtains, stores
//! (sealed) and refreshes OAuth tokens, one refresh at a time per connection on every node;
//! [`ExecutionConnections`] is what a running execution's steps see (`StepCx::connections`).

// Token errors are steps' errors (`StepError`), as in the executor.
#![allow(clippy::result_large_err)]

mod manage;
mod oauth;
pub(crate) mod tokens;

pub use manage::{ConnectionError, ConnectionStatus};

use crate::triggers::resolve_config_text;
use async_trait::async_trait;
use flowgate_model::connection::{
    AMQP_SCHEMES, ClientAuth, Connection, Grant, MQTT_SCHEMES, NATS_SCHEMES, QuickBooksEnvironment,
};
use flowgate_model::{Diags, Path};
use flowgate_steps::StepError;
use flowgate_steps::connection::{Connections, Credentials};
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// An integration's connections, by name.
pub type ConnectionSpecs = Arc<HashMap<String, Arc<ConnectionSpec>>>;

/// A connection with its settings resolved for one deployment.
#[derive(Debug)]
pub enum ConnectionSpec {
    /// Sent as they are with every request.
    Fixed(Credentials),
    /// Tokens from a token endpoint.
    OAuth(OAuthSpec),
}

/// An OAuth 2.0 connection, resolved.
#[derive(Debug, Clone)]
pub struct OAuthSpec {
    /// Which grant obtains the first tokens.
    pub grant: Grant,
    /// The token endpoint.
    pub token_url: String,
    /// The consent page (authorization code).
    pub auth_url: Option<String>,
    /// The app's id.
    pub client_id: String,
    /// The app's secret.
    pub client_secret: Option<String>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// PKCE in the authorization-code grant.
    pub pkce: bool,
    /// How the app authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// Extra token request parameters.
    pub params: Vec<(String, String)>,
    /// What connector steps need beside the token (`baseUrl`, `minorversion`).
    pub extras: Value,
}

impl OAuthSpec {
    /// Names the settings tokens are obtained with: tokens stored under other settings (a
    /// changed token URL, client or scopes) are not used.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for part in [self.token_url.as_str(), self.client_id.as_str(), &self.scopes.join(" ")] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..12])
    }
}

/// Azure AD's token endpoint for a directory (tenant).
fn azure_token_url(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
}

/// Intuit's OAuth 2.0 endpoints and the Accounting API's hosts.
const INTUIT_AUTH_URL: &str = "https://appcenter.intuit.com/connect/oauth2";
const INTUIT_TOKEN_URL: &str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer";
const QUICKBOOKS_PRODUCTION: &str = "https://quickbooks.api.intuit.com";
const QUICKBOOKS_SANDBOX: &str = "https://sandbox-quickbooks.api.intuit.com";

/// Resolves every connection of a definition against `config`; problems are recorded at
/// `connections.<name>.<kind>.<field>`. Values from unset config are a problem only when
/// every value is set (`values_missing`: the integration is not live anyway).
pub fn compile(
    connections: &IndexMap<String, Connection>,
    config: &Value,
    values_missing: bool,
    diags: &mut Diags,
) -> ConnectionSpecs {
    let mut out = HashMap::with_capacity(connections.len());
    for (name, connection) in connections {
        let at = Path::root().key("connections").key(name.clone()).key(connection.kind());
        // A required setting: empty is a problem (once every config value is set). An optional
        // override (`tokenUrl`, `baseUrl`, …) left empty by its config value means the default.
        // A URL must be http(s) once resolved.
        let mut resolve = |written: &str, field: &str, optional: bool, is_url: bool| -> Option<String> {
            let v = resolve_config_text(written, config, values_missing || optional, "value", &at.key(field), diags)?;
            if is_url && !(v.starts_with("http://") || v.starts_with("https://")) {
                diags.error(&at.key(field), format!("`{field}` is not an http:// or https:// URL once resolved"));
                return None;
            }
            Some(v)
        };

        let spec = match connection {
            Connection::ApiKey(k) => {
                let Some(value) = resolve(&k.value, "value", false, false) else { continue };
                let mut c = Credentials::default();
                match (&k.header, &k.query) {
                    (Some(h), _) => {
                        let (Ok(name), Ok(mut v)) =
                            (http::HeaderName::from_bytes(h.as_bytes()), http::HeaderValue::from_str(&value))
                        else {
                            diags.error(&at.key("value"), "the key cannot be sent in a header (control characters)");
                            continue;
                        };
                        v.set_sensitive(true);
                        c.headers.push((name, v));
                    }
                    (None, Some(q)) => c.query.push((q.clone(), value)),
                    (None, None) => continue,
                }
                ConnectionSpec::Fixed(c)
            }
            Connection::Basic(b) => {
                let (Some(user), Some(password)) =
                    (resolve(&b.username, "username", false, false), resolve(&b.password, "password", false, false))
                else {
                    continue;
                };
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                ConnectionSpec::Fixed(authorization(&format!("Basic {encoded}")))
            }
            Connection::Bearer(b) => {
                let Some(token) = resolve(&b.token, "token", false, false) else { continue };
                ConnectionSpec::Fixed(authorization(&format!("Bearer {token}")))
            }
            Connection::Oauth2(o) => {
                let token_url = resolve(&o.token_url, "tokenUrl", false, true);
                let auth_url = o.auth_url.as_deref().and_then(|u| resolve(u, "authUrl", false, true));
                let client_id = resolve(&o.client_id, "clientId", false, false);
                let client_secret = o.client_secret.as_deref().and_then(|s| resolve(s, "clientSecret", false, false));
                let params = o
                    .params
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), resolve(v, "params", false, false)?)))
                    .collect();
                let (Some(token_url), Some(client_id)) = (token_url, client_id) else { continue };
                ConnectionSpec::OAuth(OAuthSpec {
                    grant: o.grant,
                    token_url,
                    auth_url,
                    client_id,
                    client_secret,
                    scopes: o.scopes.clone(),
                    pkce: o.pkce,
                    client_auth: o.client_auth,
                    params,
                    extras: json!({}),
                })
            }
            Connection::Dynamics365(d) => {
                let env_url = resolve(&d.url, "url", false, true);
                let tenant = resolve(&d.tenant_id, "tenantId", false, false);
                let client_id = resolve(&d.client_id, "clientId", false, false);
                let client_secret = resolve(&d.client_secret, "clientSecret", false, false);
                let token_url = d.token_url.as_deref().and_then(|u| resolve(u, "tokenUrl", true, true));
                let (Some(url), Some(tenant), Some(client_id), Some(client_secret)) =
                    (env_url, tenant, client_id, client_secret)
                else {
                    continue;
                };
                let url = url.trim_end_matches('/').to_owned();
                ConnectionSpec::OAuth(OAuthSpec {
                    grant: Grant::ClientCredentials,
                    token_url: token_url.unwrap_or_else(|| azure_token_url(&tenant)),
                    auth_url: None,
                    client_id,
                    client_secret: Some(client_secret),
                    // Azure AD's client-credentials scope for an environment is its URL + /.default.
                    scopes: vec![format!("{url}/.default")],
                    pkce: false,
                    client_auth: ClientAuth::Body,
                    params: Vec::new(),
                    extras: json!({ "baseUrl": url }),
                })
            }
            Connection::Quickbooks(q) => {
                let client_id = resolve(&q.client_id, "clientId", false, false);
                let client_secret = resolve(&q.client_secret, "clientSecret", false, false);
                let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else { continue };
                let base = q.base_url.as_deref().and_then(|u| resolve(u, "baseUrl", true, true)).unwrap_or_else(|| {
                    match q.environment {
                        QuickBooksEnvironment::Production => QUICKBOOKS_PRODUCTION,
                        QuickBooksEnvironment::Sandbox => QUICKBOOKS_SANDBOX,
                    }
                    .to_owned()
                });
                ConnectionSpec::OAuth(OAuthSpec {
                    grant: Grant::AuthorizationCode,
                    token_url: q
                        .token_url
                        .as_deref()
                        .and_then(|u| resolve(u, "tokenUrl", true, true))
                        .unwrap_or(INTUIT_TOKEN_URL.into()),
                    auth_url: Some(
                        q.auth_url
                            .as_deref()
                            .and_then(|u| resolve(u, "authUrl", true, true))
                            .unwrap_or(INTUIT_AUTH_URL.into()),
                    ),
                    client_id,
                    client_secret: Some(client_secret),
                    scopes: vec!["com.intuit.quickbooks.accounting".into()],
                    pkce: false,
                    client_auth: ClientAuth::Basic,
                    params: Vec::new(),
                    extras: json!({ "baseUrl": base.trim_end_matches('/'), "minorversion": q.minorversion }),
                })
            }
            Connection::Postgres(p) => {
                let Some(url) = resolve(&p.url, "url", false, false) else { continue };
                let Some(url) = database_url(url, &p.url, &["postgres", "postgresql"], &at.key("url"), diags) else {
                    continue;
                };
                ConnectionSpec::Fixed(database("postgres", url))
            }
            Connection::Mysql(m) => {
                let Some(url) = resolve(&m.url, "url", false, false) else { continue };
                let Some(url) = database_url(url, &m.url, &["mysql", "mariadb"], &at.key("url"), diags) else {
                    continue;
                };
                ConnectionSpec::Fixed(database("mysql", url))
            }
            Connection::Sqlite(l) => {
                let Some(path) = resolve(&l.path, "path", false, false) else { continue };
                let Some(path) = sqlite_path(&path, &at.key("path"), diags) else { continue };
                ConnectionSpec::Fixed(database("sqlite", format!("sqlite:{path}")))
            }
            Connection::Amqp(a) => {
                let Some(url) = resolve(&a.url, "url", false, false) else { continue };
                let Some(url) = database_url(url, &a.url, AMQP_SCHEMES, &at.key("url"), diags) else { continue };
                ConnectionSpec::Fixed(broker("amqp", url, None))
            }
            Connection::Nats(n) => {
                let Some(url) = resolve(&n.url, "url", false, false) else { continue };
                let Some(url) = database_url(url, &n.url, NATS_SCHEMES, &at.key("url"), diags) else { continue };
                ConnectionSpec::Fixed(broker("nats", url, None))
            }
            Connection::Mqtt(m) => {
                // An id from an unset (optional) value means the default, a random one.
                let client_id = m.client_id.as_deref().and_then(|c| resolve(c, "clientId", true, false));
                let Some(url) = resolve(&m.url, "url", false, false) else { continue };
                let Some(url) = database_url(url, &m.url, MQTT_SCHEMES, &at.key("url"), diags) else { continue };
                ConnectionSpec::Fixed(broker("mqtt", url, client_id.filter(|c| !c.is_empty())))
            }
        };
        out.insert(name.clone(), Arc::new(spec));
    }
    Arc::new(out)
}

/// A database connection's credentials: which database and its URL (with the password), for
/// `sql` steps. The URL is handed like any credential, so executions never record it.
fn database(kind: &str, url: String) -> Credentials {
    Credentials { extras: json!({ "database": kind, "url": url }), ..Credentials::default() }
}

/// A resolved database or broker URL (`written` as a template or a literal), when it has one of
/// `schemes` and a host; the problem, which never shows the URL, is recorded at `at`
/// otherwise. A literal was checked with the document (`Connection::check`).
fn database_url(url: String, written: &str, schemes: &[&str], at: &Path, diags: &mut Diags) -> Option<String> {
    if !written.contains("{{") {
        return flowgate_model::connection::db_url_problem(&url, schemes).is_none().then_some(url);
    }
    match flowgate_model::connection::db_url_problem(&url, schemes) {
        None => Some(url),
        Some(why) => {
            let wanted = schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
            diags.error(at, format!("the URL is not a {wanted} URL with a host once resolved ({why})"));
            None
        }
    }
}

/// A broker connection's credentials, for the `amqp`, `nats` and `mqtt` steps: which broker,
/// its URL (it may hold a password: handed like any credential, so executions never record
/// it) and, for MQTT, the client id.
fn broker(kind: &str, url: String, client_id: Option<String>) -> Credentials {
    let mut extras = json!({ "broker": kind, "url": url });
    if let Some(id) = client_id {
        extras["clientId"] = Value::String(id);
    }
    Credentials { extras, ..Credentials::default() }
}

/// A SQLite file's path, confined: a tenant must not open arbitrary files, so an absolute
/// path, a `..` component or a drive prefix is refused (at `at`). The engine has no data
/// directory of its own reachable here (`compile` sees only the document and its config), so
/// a relative path is left relative: SQLite opens it under the process's current directory,
/// the directory the server runs in.
fn sqlite_path(path: &str, at: &Path, diags: &mut Diags) -> Option<String> {
    use std::path::Component;
    let p = std::path::Path::new(path);
    if path.trim().is_empty() {
        return None;
    }
    if p.is_absolute() || path.starts_with(['/', '\\']) {
        diags.error(at, format!("`{path}` is absolute: give a path relative to the server's directory"));
        return None;
    }
    if path.contains(['?', '#', '\\']) || path.starts_with("file:") || path == ":memory:" {
        diags.error(at, format!("`{path}` is not a plain file path"));
        return None;
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        diags.error(at, format!("`{path}` leaves the server's directory (`..`): give a path inside it"));
        return None;
    }
    Some(path.to_owned())
}

/// Credentials of one `Authorization` header.
fn authorization(value: &str) -> Credentials {
    let mut c = Credentials::default();
    if let Ok(mut v) = http::HeaderValue::from_str(value) {
        v.set_sensitive(true);
        c.headers.push((http::header::AUTHORIZATION, v));
    }
    c
}

/// The connections a running execution's steps use: its integration's, with tokens from
/// the node's `tokens::Tokens`.
pub(crate) struct ExecutionConnections<'a> {
    pub(crate) inner: &'a crate::node::Inner,
    pub(crate) tenant: &'a str,
    pub(crate) integration: &'a str,
    pub(crate) specs: &'a ConnectionSpecs,
    /// Every credential value handed out (for the executor's redaction).
    pub(crate) handed: &'a Handed,
}

impl ExecutionConnections<'_> {
    /// A `sqlite` connection's file, in the tenant's own directory (`files_dir/<tenant>/`):
    /// two tenants naming the same path get two files.
    fn tenant_file(&self, c: &Credentials) -> Result<Credentials, StepError> {
        let relative = c.extras["url"].as_str().and_then(|u| u.strip_prefix("sqlite:")).unwrap_or_default();
        let base = self.inner.settings.files_dir.clone().unwrap_or_default();
        let file = base.join(self.tenant).join(relative);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StepError::retryable("sql_unavailable", format!("cannot make the database's directory: {e}"))
            })?;
        }
        let mut c = c.clone();
        c.extras["url"] = Value::String(format!("sqlite:{}", file.display()));
        Ok(c)
    }

    fn hand(&self, c: Credentials) -> Credentials {
        self.handed.add(secret_values(&c));
        c
    }
}

/// The credential values handed to one execution's steps, and a redactor for them — rebuilt
/// only when a new value comes: records are redacted far more often than credentials are
/// handed.
#[derive(Default)]
pub(crate) struct Handed(std::sync::Mutex<(Vec<String>, Option<flowgate_secrets::Redactor>)>);

impl Handed {
    fn add<'v>(&self, values: impl Iterator<Item = &'v str>) {
        let mut handed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let before = handed.0.len();
        for v in values {
            if !handed.0.iter().any(|h| h == v) {
                handed.0.push(v.to_owned());
            }
        }
        if handed.0.len() != before {
            let redactor = flowgate_secrets::Redactor::new(
                handed.0.iter().map(|v| ("connection credential".to_owned(), v.clone())),
            );
            handed.1 = Some(redactor);
        }
    }

    /// The redactor of the values handed so far (none: nothing handed). Tokens change; their
    /// markers are not put back on a resume (the step ran with a token that may be gone).
    pub(crate) fn redactor(&self) -> Option<flowgate_secrets::Redactor> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }
}

/// The values of `c` that executions must not record: header and query credentials, and a
/// database or broker connection's URL (it holds the password; the whole URL is redacted).
fn secret_values(c: &Credentials) -> impl Iterator<Item = &str> {
    c.headers
        .iter()
        .filter_map(|(_, v)| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("Basic ")).unwrap_or(v))
        .chain(c.query.iter().map(|(_, v)| v.as_str()))
        .chain(c.extras.get("url").and_then(Value::as_str))
}

#[async_trait]
impl Connections for ExecutionConnections<'_> {
    async fn credentials(&self, name: &str) -> Result<Credentials, StepError> {
        let spec = self.specs.get(name).ok_or_else(|| {
            StepError::fatal("connection_unknown", format!("no connection `{name}` in this integration"))
        })?;
        match &**spec {
            ConnectionSpec::Fixed(c) if c.extras["database"] == "sqlite" => Ok(self.hand(self.tenant_file(c)?)),
            ConnectionSpec::Fixed(c) => Ok(self.hand(c.clone())),
            ConnectionSpec::OAuth(o) => {
                let key = flowgate_store::ConnectionKey {
                    tenant: self.tenant,
                    integration: self.integration,
                    connection: name,
                };
                self.inner.tokens.credentials(self.inner, key, o).await.map(|c| self.hand(c))
            }
        }
    }

    async fn refused(&self, name: &str, version: i64) {
        if let Some(spec) = self.specs.get(name)
            && let ConnectionSpec::OAuth(_) = &**spec
        {
            let key =
                flowgate_store::ConnectionKey { tenant: self.tenant, integration: self.integration, connection: name };
            self.inner.tokens.refused(key, version);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(connections: Value, config: Value) -> (ConnectionSpecs, Vec<(String, String)>) {
        let connections: IndexMap<String, Connection> = serde_json::from_value(connections).unwrap();
        let mut diags = Diags::default();
        let specs = compile(&connections, &config, false, &mut diags);
        (specs, diags.into_vec().into_iter().map(|d| (d.path, d.message)).collect())
    }

    fn extras(specs: &ConnectionSpecs, name: &str) -> Value {
        match &*specs[name] {
            ConnectionSpec::Fixed(c) => c.extras.clone(),
            ConnectionSpec::OAuth(_) => panic!("`{name}` is fixed"),
        }
    }

    #[test]
    fn database_connections_resolve_to_their_url() {
        let (specs, problems) = compiled(
            json!({
                "pg": { "postgres": { "url": "{{ $config.pgUrl }}" } },
                "my": { "mysql": { "url": "mariadb://u:pw@db:3306/app" } },
                "lite": { "sqlite": { "path": "data/./app.db" } },
            }),
            json!({ "pgUrl": "postgresql://u:s3cret@db/app" }),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(extras(&specs, "pg"), json!({ "database": "postgres", "url": "postgresql://u:s3cret@db/app" }));
        assert_eq!(extras(&specs, "my"), json!({ "database": "mysql", "url": "mariadb://u:pw@db:3306/app" }));
        assert_eq!(extras(&specs, "lite"), json!({ "database": "sqlite", "url": "sqlite:data/./app.db" }));
        // The URL is handed for redaction like a token: executions never record it.
        let ConnectionSpec::Fixed(c) = &*specs["pg"] else { unreachable!() };
        assert_eq!(secret_values(c).collect::<Vec<_>>(), ["postgresql://u:s3cret@db/app"]);
    }

    #[test]
    fn database_connections_problems_are_located_without_the_url() {
        let (specs, problems) = compiled(
            json!({
                "pg": { "postgres": { "url": "{{ $config.pgUrl }}" } },
                "abs": { "sqlite": { "path": "/etc/passwd" } },
                "up": { "sqlite": { "path": "data/../../secrets.db" } },
                "tpl": { "sqlite": { "path": "{{ $config.dbFile }}" } },
                "mem": { "sqlite": { "path": "file:x.db?mode=memory" } },
            }),
            json!({ "pgUrl": "http://u:s3cret@db/app", "dbFile": "../other-tenant/app.db" }),
        );
        let at = |path: &str, text: &str| problems.iter().any(|(p, m)| p == path && m.contains(text));
        assert!(at("connections.pg.postgres.url", "not a postgres:// or postgresql:// URL"), "{problems:?}");
        assert!(at("connections.abs.sqlite.path", "absolute"), "{problems:?}");
        assert!(at("connections.up.sqlite.path", "`..`"), "{problems:?}");
        assert!(at("connections.tpl.sqlite.path", "`..`"), "{problems:?}");
        assert!(at("connections.mem.sqlite.path", "not a plain file path"), "{problems:?}");
        assert!(problems.iter().all(|(_, m)| !m.contains("s3cret")), "{problems:?}");
        assert!(specs.is_empty());
    }

    #[test]
    fn broker_connections_resolve_to_their_url() {
        let (specs, problems) = compiled(
            json!({
                "mq": { "amqp": { "url": "{{ $config.amqpUrl }}" } },
                "js": { "nats": { "url": "nats://127.0.0.1:4222" } },
                "iot": { "mqtt": { "url": "mqtts://u:pw@broker:8883", "clientId": "{{ $config.clientId }}" } },
                "iot2": { "mqtt": { "url": "mqtt://broker" } },
            }),
            json!({ "amqpUrl": "amqps://app:s3cret@mq.example/prod", "clientId": "plant-7" }),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(extras(&specs, "mq"), json!({ "broker": "amqp", "url": "amqps://app:s3cret@mq.example/prod" }));
        assert_eq!(extras(&specs, "js"), json!({ "broker": "nats", "url": "nats://127.0.0.1:4222" }));
        assert_eq!(
            extras(&specs, "iot"),
            json!({ "broker": "mqtt", "url": "mqtts://u:pw@broker:8883", "clientId": "plant-7" })
        );
        assert_eq!(extras(&specs, "iot2"), json!({ "broker": "mqtt", "url": "mqtt://broker" }));
        // The URL is handed for redaction like a token: executions never record it.
        let ConnectionSpec::Fixed(c) = &*specs["mq"] else { unreachable!() };
        assert_eq!(secret_values(c).collect::<Vec<_>>(), ["amqps://app:s3cret@mq.example/prod"]);
    }

    #[test]
    fn broker_connections_problems_are_located_without_the_url() {
        let (specs, problems) = compiled(
            json!({
                "mq": { "amqp": { "url": "{{ $config.amqpUrl }}" } },
                "js": { "nats": { "url": "{{ $config.natsUrl }}" } },
                "iot": { "mqtt": { "url": "{{ $config.mqttUrl }}" } },
            }),
            json!({
                "amqpUrl": "http://app:s3cret@mq.example/",
                "natsUrl": "nats://app:s3cret@",
                "mqttUrl": "amqp://app:s3cret@broker",
            }),
        );
        let at = |path: &str, text: &str| problems.iter().any(|(p, m)| p == path && m.contains(text));
        assert!(at("connections.mq.amqp.url", "not a amqp:// or amqps:// URL"), "{problems:?}");
        assert!(at("connections.js.nats.url", "no host"), "{problems:?}");
        assert!(at("connections.iot.mqtt.url", "not a mqtt:// or mqtts:// URL"), "{problems:?}");
        assert!(problems.iter().all(|(_, m)| !m.contains("s3cret")), "{problems:?}");
        assert!(specs.is_empty());
    }
}
