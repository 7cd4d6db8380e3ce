//! Connections: credentials for an external system, declared once under the integration's
//! `connections:` and named by flows (`connection`, `connection2`) and steps (`connection:`).
//! Values may be templates over `$config` (`"{{ $config.clientSecret }}"`), resolved per
//! deployment; tokens a connection obtains are the engine's, never the document's.

use crate::diag::{Diags, Path};
use schemars::JsonSchema;
use serde::Deserialize;

/// A connection: one kind and its settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Connection {
    /// An API key sent in a header or a query parameter.
    ApiKey(ApiKey),
    /// HTTP basic authentication.
    Basic(Basic),
    /// A fixed bearer token.
    Bearer(Bearer),
    /// OAuth 2.0: client credentials, or an authorization code with refresh tokens; Flowgate
    /// obtains, stores (sealed) and refreshes the tokens.
    Oauth2(OAuth2),
    /// Microsoft Dynamics 365 / Dataverse Web API with an Azure AD app (client credentials).
    Dynamics365(Dynamics365),
    /// QuickBooks Online (Intuit OAuth 2.0, authorization code; `realmId` arrives with the
    /// authorization).
    Quickbooks(QuickBooks),
    /// A PostgreSQL database (`sql` steps).
    Postgres(Postgres),
    /// A MySQL or MariaDB database (`sql` steps).
    Mysql(Mysql),
    /// A SQLite database file on the server (`sql` steps).
    Sqlite(Sqlite),
    /// An AMQP 0-9-1 broker such as RabbitMQ (`amqp` steps).
    Amqp(Amqp),
    /// A NATS server with JetStream (`nats` steps).
    Nats(Nats),
    /// An MQTT broker (`mqtt` steps).
    Mqtt(Mqtt),
}

impl Connection {
    /// The kind's key, as written.
    pub fn kind(&self) -> &'static str {
        match self {
            Connection::ApiKey(_) => "apiKey",
            Connection::Basic(_) => "basic",
            Connection::Bearer(_) => "bearer",
            Connection::Oauth2(_) => "oauth2",
            Connection::Dynamics365(_) => "dynamics365",
            Connection::Quickbooks(_) => "quickbooks",
            Connection::Postgres(_) => "postgres",
            Connection::Mysql(_) => "mysql",
            Connection::Sqlite(_) => "sqlite",
            Connection::Amqp(_) => "amqp",
            Connection::Nats(_) => "nats",
            Connection::Mqtt(_) => "mqtt",
        }
    }

    /// Records every problem of the settings at `at` (the connection's path).
    pub fn check(&self, at: &Path, diags: &mut Diags) {
        let at = at.key(self.kind());
        match self {
            Connection::ApiKey(k) => match (&k.header, &k.query) {
                (Some(_), Some(_)) | (None, None) => diags
                    .error(&at, "set exactly one of `header` (the header's name) and `query` (the parameter's name)"),
                (Some(h), None) if !is_token(h) => diags.error(&at.key("header"), format!("invalid header name `{h}`")),
                (None, Some(q)) if q.trim().is_empty() => {
                    diags.error(&at.key("query"), "the parameter's name is empty")
                }
                _ => {}
            },
            Connection::Oauth2(o) => {
                if o.grant == Grant::AuthorizationCode && o.auth_url.is_none() {
                    diags.error(
                        &at.key("authUrl"),
                        "the authorization-code grant needs `authUrl` (the provider's consent page)",
                    );
                }
                check_url(&o.token_url, &at.key("tokenUrl"), diags);
                if let Some(u) = &o.auth_url {
                    check_url(u, &at.key("authUrl"), diags);
                }
            }
            Connection::Dynamics365(d) => {
                check_url(&d.url, &at.key("url"), diags);
                if let Some(u) = &d.token_url {
                    check_url(u, &at.key("tokenUrl"), diags);
                }
            }
            Connection::Quickbooks(q) => {
                for (key, url) in [("baseUrl", &q.base_url), ("authUrl", &q.auth_url), ("tokenUrl", &q.token_url)] {
                    if let Some(u) = url {
                        check_url(u, &at.key(key), diags);
                    }
                }
            }
            Connection::Postgres(p) => {
                check_db_url(&p.url, &["postgres", "postgresql"], &at.key("url"), diags);
            }
            Connection::Mysql(m) => check_db_url(&m.url, &["mysql", "mariadb"], &at.key("url"), diags),
            Connection::Sqlite(s) => {
                if s.path.trim().is_empty() {
                    diags.error(&at.key("path"), "the database file's path is empty");
                }
            }
            Connection::Amqp(a) => check_broker_url(&a.url, AMQP_SCHEMES, "user:password@host:5672/vhost", &at, diags),
            Connection::Nats(n) => check_broker_url(&n.url, NATS_SCHEMES, "user:password@host:4222", &at, diags),
            Connection::Mqtt(m) => {
                check_broker_url(&m.url, MQTT_SCHEMES, "user:password@host:1883", &at, diags);
                if let Some(id) = &m.client_id
                    && !id.contains("{{")
                    && (id.is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control))
                {
                    diags.error(
                        &at.key("clientId"),
                        "the client id must be 1 to 256 characters, none a control character",
                    );
                }
            }
            Connection::Basic(_) | Connection::Bearer(_) => {}
        }
    }
}

/// The URL schemes of each broker kind (the TLS one second).
pub const AMQP_SCHEMES: &[&str] = &["amqp", "amqps"];
/// The URL schemes of a `nats` connection.
pub const NATS_SCHEMES: &[&str] = &["nats", "tls"];
/// The URL schemes of an `mqtt` connection.
pub const MQTT_SCHEMES: &[&str] = &["mqtt", "mqtts"];

/// A literal broker URL must have one of `schemes` and a host (`form` shows the rest of its
/// shape); a template is checked once resolved. The URL is never shown (it may hold a
/// password).
fn check_broker_url(url: &str, schemes: &[&str], form: &str, at: &Path, diags: &mut Diags) {
    if url.contains("{{") {
        return;
    }
    if let Some(why) = db_url_problem(url, schemes) {
        let wanted = schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
        diags.error(&at.key("url"), format!("invalid broker URL ({why}): expected {wanted}{form}"));
    }
}

/// A literal database URL must have one of `schemes` and a host; a template is checked once
/// resolved.
fn check_db_url(url: &str, schemes: &[&str], at: &Path, diags: &mut Diags) {
    if url.contains("{{") {
        return;
    }
    if db_url_problem(url, schemes).is_some() {
        let wanted = schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
        diags.error(at, format!("invalid database URL: expected {wanted}user:password@host:port/database"));
    }
}

/// Why `url` is not a database or broker URL of one of `schemes` (`postgres`, `amqp`…) with
/// a host, if it is not. The URL itself is never part of the answer (it holds a password).
pub fn db_url_problem(url: &str, schemes: &[&str]) -> Option<&'static str> {
    let Some((scheme, rest)) = url.split_once("://") else { return Some("no scheme") };
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Some("another scheme");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Some("no host");
    }
    None
}

/// A literal URL must be http(s); a template is checked once resolved.
fn check_url(url: &str, at: &Path, diags: &mut Diags) {
    if url.contains("{{") {
        return;
    }
    let ok = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).is_some_and(|rest| !rest.is_empty());
    if !ok {
        diags.error(at, format!("invalid URL `{url}`: expected an http:// or https:// URL"));
    }
}

/// An HTTP token (header names): visible ASCII without separators.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An API key.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ApiKey {
    /// The header that carries it (e.g. `X-Api-Key`).
    #[serde(default)]
    pub header: Option<String>,
    /// Or the query parameter that carries it (e.g. `api_key`).
    #[serde(default)]
    pub query: Option<String>,
    /// The key (a secret: use `{{ $config.<secret> }}`).
    pub value: String,
}

/// HTTP basic authentication.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Basic {
    /// User name.
    pub username: String,
    /// Password (a secret).
    pub password: String,
}

/// A fixed bearer token.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Bearer {
    /// The token (a secret).
    pub token: String,
}

/// The OAuth 2.0 grant a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// The app's own credentials (RFC 6749 §4.4): no user involved.
    ClientCredentials,
    /// A user authorizes once in the browser (RFC 6749 §4.1); refresh tokens keep it going.
    AuthorizationCode,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClientAuth {
    /// HTTP basic with the client id and secret (`client_secret_basic`, the default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Body,
}

/// A generic OAuth 2.0 connection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct OAuth2 {
    /// `client_credentials` or `authorization_code`.
    pub grant: Grant,
    /// The token endpoint.
    pub token_url: String,
    /// The consent page (authorization code only).
    #[serde(default)]
    pub auth_url: Option<String>,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret (a secret).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Use PKCE (S256) in the authorization-code grant. Default true.
    #[serde(default = "yes")]
    pub pkce: bool,
    /// How the client authenticates at the token endpoint. Default `basic`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Extra parameters for the token request (e.g. `audience`, `resource`).
    #[serde(default)]
    pub params: indexmap::IndexMap<String, String>,
}

/// Dynamics 365 (Dataverse Web API v9.2) with an Azure AD app registration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Dynamics365 {
    /// The environment's URL, e.g. `https://contoso.crm.dynamics.com`.
    pub url: String,
    /// The Azure AD (Entra ID) tenant id.
    pub tenant_id: String,
    /// The app registration's client id.
    pub client_id: String,
    /// The app registration's client secret (a secret).
    pub client_secret: String,
    /// Overrides the Azure AD token endpoint (tests, sovereign clouds).
    #[serde(default)]
    pub token_url: Option<String>,
}

/// QuickBooks Online (Accounting API v3).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct QuickBooks {
    /// The Intuit app's client id.
    pub client_id: String,
    /// The Intuit app's client secret (a secret).
    pub client_secret: String,
    /// `production` (default) or `sandbox`.
    #[serde(default)]
    pub environment: QuickBooksEnvironment,
    /// Overrides the API's base URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Overrides Intuit's consent page.
    #[serde(default)]
    pub auth_url: Option<String>,
    /// Overrides Intuit's token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The API's minor version sent with every request (default: the connector's).
    #[serde(default)]
    pub minorversion: Option<u32>,
}

/// Which QuickBooks Online environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum QuickBooksEnvironment {
    /// Real companies.
    #[default]
    Production,
    /// Intuit's developer sandbox companies.
    Sandbox,
}

/// A PostgreSQL database.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Postgres {
    /// `postgres://user:password@host:5432/database` (or `postgresql://`; a secret: it holds
    /// the password, use `{{ $config.<secret> }}`). Parameters: `application_name`, and
    /// `sslmode` `disable` or `prefer` (TLS to databases is not supported yet).
    pub url: String,
}

/// A MySQL or MariaDB database.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Mysql {
    /// `mysql://user:password@host:3306/database` (or `mariadb://`; a secret: it holds the
    /// password). Parameters: `charset`, and `ssl-mode` `disabled` or `preferred` (TLS to
    /// databases is not supported yet).
    pub url: String,
}

/// A SQLite database file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Sqlite {
    /// The file, relative to the directory the server runs in (no absolute path, no `..`:
    /// a connection cannot open other files); created when missing.
    pub path: String,
}

/// An AMQP 0-9-1 broker (RabbitMQ).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Amqp {
    /// `amqp://user:password@host:5672/vhost` (`%2f` is the vhost `/`, the default), or
    /// `amqps://` for TLS; a secret: it holds the password, use `{{ $config.<secret> }}`.
    /// Parameters: `heartbeat` (seconds), `connection_timeout` (ms), `frame_max`,
    /// `channel_max`, `auth_mechanism`.
    pub url: String,
}

/// A NATS server with JetStream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Nats {
    /// `nats://host:4222`, with `user:password@` or a token as the user (`nats://token@host`),
    /// or `tls://` for TLS; a secret when it holds credentials.
    pub url: String,
}

/// An MQTT broker (MQTT 3.1.1).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Mqtt {
    /// `mqtt://user:password@host:1883`, or `mqtts://` (port 8883) for TLS; a secret when it
    /// holds a password.
    pub url: String,
    /// The client id this node connects with. Default: `flowgate-` and a random suffix per
    /// connection (brokers drop an older session that has the same id, so a fixed id must
    /// not be used by two nodes at once).
    #[serde(default)]
    pub client_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// The secret settings of a connection written as JSON (`connections.<name>`): the slots a
/// literal credential may sit in, for sealing (`kind`, then the field).
pub const SECRET_FIELDS: &[(&str, &str)] = &[
    ("apiKey", "value"),
    ("basic", "password"),
    ("bearer", "token"),
    ("oauth2", "clientSecret"),
    ("dynamics365", "clientSecret"),
    ("quickbooks", "clientSecret"),
    ("postgres", "url"),
    ("mysql", "url"),
    ("amqp", "url"),
    ("nats", "url"),
    ("mqtt", "url"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The problems of `connection` (JSON), as `(path, message)`, located under `connections.c`.
    fn problems(connection: serde_json::Value) -> Vec<(String, String)> {
        let at = Path::root().key("connections").key("c");
        let mut diags = Diags::default();
        if let Some(c) = crate::decode::decode::<Connection>(&connection, &at, &mut diags) {
            c.check(&at, &mut diags);
        }
        diags.into_vec().into_iter().map(|d| (d.path, d.message)).collect()
    }

    #[test]
    fn broker_connections_decode_and_their_problems_are_located() {
        for ok in [
            json!({ "amqp": { "url": "amqp://guest:guest@127.0.0.1:5672/%2f" } }),
            json!({ "amqp": { "url": "amqps://u:p@mq.example" } }),
            json!({ "amqp": { "url": "{{ $config.amqpUrl }}" } }),
            json!({ "nats": { "url": "nats://127.0.0.1:4222" } }),
            json!({ "nats": { "url": "tls://token@nats.example" } }),
            json!({ "mqtt": { "url": "mqtt://127.0.0.1:1883", "clientId": "plant-7" } }),
            json!({ "mqtt": { "url": "mqtts://u:p@broker.example" } }),
        ] {
            assert!(problems(ok.clone()).is_empty(), "{ok}: {:?}", problems(ok.clone()));
        }
        let at = |c: serde_json::Value, path: &str, text: &str| {
            let p = problems(c);
            assert!(p.iter().any(|(at, m)| at == path && m.contains(text)), "{path} / {text}: {p:?}");
            assert!(p.iter().all(|(_, m)| !m.contains("s3cret")), "{p:?}");
        };
        at(
            json!({ "amqp": { "url": "http://u:s3cret@mq" } }),
            "connections.c.amqp.url",
            "expected amqp:// or amqps://",
        );
        at(json!({ "amqp": { "url": "amqp://u:s3cret@:5672" } }), "connections.c.amqp.url", "no host");
        at(json!({ "nats": { "url": "mqtt://u:s3cret@x" } }), "connections.c.nats.url", "expected nats:// or tls://");
        at(json!({ "mqtt": { "url": "s3cret" } }), "connections.c.mqtt.url", "expected mqtt:// or mqtts://");
        at(json!({ "mqtt": { "url": "mqtt://x", "clientId": "" } }), "connections.c.mqtt.clientId", "1 to 256");
        at(json!({ "nats": { "url": "nats://x", "token": "t" } }), "connections.c.nats.token", "unknown key");
        for kind in ["amqp", "nats", "mqtt"] {
            assert!(SECRET_FIELDS.contains(&(kind, "url")), "{kind}'s URL is sealed when literal");
        }
    }
}
