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
            Connection::Basic(_) | Connection::Bearer(_) => {}
        }
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

/// Why `url` is not a database URL of one of `schemes` (`postgres`, `mysql`…) with a host,
/// if it is not. The URL itself is never part of the answer (it holds a password).
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
];
