//! Connections as users manage them: their status (never a secret), a test that obtains
//! credentials without running a flow and, where the kind allows, contacts the system with
//! them (a database runs `SELECT 1`, a broker answers, a connector's API takes one harmless
//! call; the answer says what was contacted, or that nothing was), and the
//! authorization-code dance — the provider URL with a single-use `state` bound to the
//! tenant, integration and connection (and a PKCE verifier), then the callback that
//! exchanges the code and stores the tokens.

use super::oauth::{self, Hop, TokenError};
use super::{ConnectionSpec, OAuthSpec, tokens};
use crate::Engine;
use crate::clock::rfc3339;
use flowgate_model::connection::Grant;
use flowgate_steps::connection::Connections as _;
use flowgate_store::{ConnectionKey, IntegrationKey, NewTokens, OAuthState};
use oauth2::{AuthUrl, AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest as _;

/// How long an authorization URL's `state` may be used.
const STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// Longest a test's call to the system may take (a database's or broker's connect, an API
/// request).
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// Its name.
    pub name: String,
    /// Its kind (`oauth2`, `quickbooks`, …).
    pub kind: String,
    /// `active`, `new` (not authorized or no token yet), `needs_reconnect` or `error`.
    pub status: String,
    /// Why it is not active.
    pub message: Option<String>,
    /// The OAuth grant, for token-based kinds.
    pub grant: Option<&'static str>,
    /// When the current access token expires.
    pub expires_at: Option<String>,
    /// When tokens were last obtained.
    pub refreshed_at: Option<String>,
    /// What the provider gave beside the tokens (e.g. `realmId`); never a secret.
    pub extras: Value,
    /// Only in a test's answer: what the test contacted with the credentials, or that this
    /// kind has no test request and nothing was contacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tested: Option<&'static str>,
}

/// Why a connection operation failed.
#[derive(Debug)]
pub enum ConnectionError {
    /// No such integration or connection.
    NotFound(String),
    /// Not possible for this connection (e.g. authorizing a client-credentials one), or a
    /// bad or used `state`.
    Invalid(String),
    /// The provider or the token endpoint failed; `code` says how.
    Failed {
        /// A stable code (`connection_token`, `connection_needs_reconnect`, …).
        code: String,
        /// What happened.
        message: String,
    },
    /// The store failed.
    Store(flowgate_store::Error),
}

impl From<flowgate_store::Error> for ConnectionError {
    fn from(e: flowgate_store::Error) -> Self {
        ConnectionError::Store(e)
    }
}

impl Engine {
    /// Every connection of an integration with its status; `None` without the integration.
    ///
    /// # Errors
    /// The store.
    pub async fn connections(
        &self,
        tenant: &str,
        slug: &str,
    ) -> Result<Option<Vec<ConnectionStatus>>, flowgate_store::Error> {
        let Some(ci) = self.integration(tenant, slug).await? else { return Ok(None) };
        let rows = self.inner.store.list_connection_tokens(IntegrationKey { tenant, integration: slug }).await?;
        let mut out = Vec::with_capacity(ci.definition.connections.len());
        for (name, def) in &ci.definition.connections {
            let spec = ci.connections.get(name);
            let oauth = spec.and_then(|s| match &**s {
                ConnectionSpec::OAuth(o) => Some(o),
                ConnectionSpec::Fixed(_) => None,
            });
            let row = rows.iter().find(|r| &r.connection == name && oauth.is_some());
            let current =
                row.filter(|r| oauth.is_some_and(|o| r.fingerprint.as_deref() == Some(o.fingerprint().as_str())));
            let (status, message) = match (spec, oauth, current) {
                (None, _, _) => {
                    ("error".to_owned(), Some("its settings are incomplete (is every config value set?)".to_owned()))
                }
                (Some(_), None, _) => ("active".to_owned(), None),
                (Some(_), Some(_), Some(r)) => (r.status.clone(), r.message.clone()),
                (Some(_), Some(o), None) => {
                    ("new".to_owned(), (o.grant == Grant::AuthorizationCode).then(|| "not authorized yet".to_owned()))
                }
            };
            out.push(ConnectionStatus {
                name: name.clone(),
                kind: def.kind().to_owned(),
                status,
                message,
                grant: oauth.map(|o| match o.grant {
                    Grant::ClientCredentials => "client_credentials",
                    Grant::AuthorizationCode => "authorization_code",
                }),
                expires_at: current.and_then(|r| r.expires_at).map(rfc3339),
                refreshed_at: current.and_then(|r| r.refreshed_at).map(rfc3339),
                extras: current
                    .and_then(|r| r.extras.as_deref())
                    .and_then(|e| serde_json::from_str(e).ok())
                    .unwrap_or(json!({})),
                tested: None,
            });
        }
        Ok(Some(out))
    }

    /// Checks a connection without running a flow: obtains its credentials (a token from the
    /// provider when it has none that is fresh), contacts the system with them where its
    /// kind allows (see [`Engine::probe`]) and answers its status, saying what was contacted
    /// (`tested`).
    ///
    /// # Errors
    /// Unknown connection, credentials that cannot be obtained, or a system that cannot be
    /// reached or refuses them (`Failed`, with the step's code: `sql_unavailable`,
    /// `amqp_refused`, …; never with a URL's password).
    pub async fn test_connection(
        &self,
        tenant: &str,
        slug: &str,
        name: &str,
    ) -> Result<ConnectionStatus, ConnectionError> {
        let ci = self
            .integration(tenant, slug)
            .await?
            .ok_or_else(|| ConnectionError::NotFound(format!("no integration `{slug}`")))?;
        if !ci.definition.connections.contains_key(name) {
            return Err(ConnectionError::NotFound(format!("no connection `{name}` in `{slug}`")));
        }
        let handed = super::Handed::default();
        let cx = super::ExecutionConnections {
            inner: &self.inner,
            tenant,
            integration: slug,
            specs: &ci.connections,
            handed: &handed,
        };
        let credentials =
            cx.credentials(name).await.map_err(|e| ConnectionError::Failed { code: e.code, message: e.message })?;
        let kind = ci.definition.connections.get(name).map_or("", |c| c.kind());
        let tested = match self.probe(kind, &credentials).await {
            // Refused: as a step would, ask for new credentials once and try again.
            Err(ConnectionError::Failed { code, .. }) if code == "connection_unauthorized" => {
                cx.refused(name, credentials.version).await;
                let fresh = cx
                    .credentials(name)
                    .await
                    .map_err(|e| ConnectionError::Failed { code: e.code, message: e.message })?;
                self.probe(kind, &fresh).await?
            }
            other => other?,
        };
        let all = self.connections(tenant, slug).await?.unwrap_or_default();
        let mut status = all
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ConnectionError::NotFound(format!("no connection `{name}`")))?;
        status.tested = Some(tested);
        Ok(status)
    }

    /// The provider URL that authorizes a connection (authorization-code grant). Its `state`
    /// is single use and expires in ten minutes.
    ///
    /// # Errors
    /// Unknown connection, or one that is not authorized by a person.
    pub async fn authorize_connection(&self, tenant: &str, slug: &str, name: &str) -> Result<String, ConnectionError> {
        let ci = self
            .integration(tenant, slug)
            .await?
            .ok_or_else(|| ConnectionError::NotFound(format!("no integration `{slug}`")))?;
        let spec = ci
            .connections
            .get(name)
            .ok_or_else(|| ConnectionError::NotFound(format!("no connection `{name}` in `{slug}`")))?;
        let ConnectionSpec::OAuth(o) = &**spec else {
            return Err(ConnectionError::Invalid(format!(
                "connection `{name}` has no authorization step: its credentials are in its settings"
            )));
        };
        let Some(auth_url) = o.auth_url.clone().filter(|_| o.grant == Grant::AuthorizationCode) else {
            return Err(ConnectionError::Invalid(format!(
                "connection `{name}` uses the client-credentials grant: it needs no authorization (POST …/test checks it)"
            )));
        };
        let client = oauth::client(o)
            .map_err(failed)?
            .set_auth_uri(
                AuthUrl::new(auth_url)
                    .map_err(|e| ConnectionError::Invalid(format!("invalid authorization URL: {e}")))?,
            )
            .set_redirect_uri(self.redirect_url()?);
        let state = CsrfToken::new_random();
        let mut request = client.authorize_url(|| state.clone()).add_scopes(o.scopes.iter().cloned().map(Scope::new));
        let verifier = if o.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            Some(verifier)
        } else {
            None
        };
        let (url, _) = request.url();
        let now = self.inner.clock.now_ms();
        let key = ConnectionKey { tenant, integration: slug, connection: name };
        let sealed = verifier.map(|v| self.inner.sealer.seal_str(v.secret(), &state_aad(key)));
        // Only the state's hash is stored: the store never holds a usable state.
        let row = OAuthState {
            state_hash: hash(state.secret()),
            tenant_id: tenant.to_owned(),
            integration: slug.to_owned(),
            connection: name.to_owned(),
            verifier: sealed,
            expires_at: now + STATE_TTL_MS,
        };
        self.inner.store.put_oauth_state(&row, now).await?;
        Ok(url.to_string())
    }

    /// The provider's redirect back (`/oauth/callback`): takes the `state` (once), exchanges
    /// the code and stores the tokens with the provider's extras (QuickBooks' `realmId`).
    /// Answers the tenant, integration and connection authorized.
    ///
    /// # Errors
    /// An unknown, used or expired state; a provider error; a refused exchange.
    pub async fn oauth_callback(
        &self,
        query: &std::collections::HashMap<String, String>,
    ) -> Result<(String, String, String), ConnectionError> {
        let state = query
            .get("state")
            .ok_or_else(|| ConnectionError::Invalid("the provider's answer has no `state`".into()))?;
        let now = self.inner.clock.now_ms();
        let row = self.inner.store.take_oauth_state(&hash(state), now).await?.ok_or_else(|| {
            ConnectionError::Invalid("this authorization link is unknown, used or expired: start again".into())
        })?;
        let key = ConnectionKey { tenant: &row.tenant_id, integration: &row.integration, connection: &row.connection };
        if let Some(error) = query.get("error") {
            let said = query.get("error_description").map_or(String::new(), |d| format!(": {d}"));
            return Err(ConnectionError::Failed {
                code: "connection_refused".into(),
                message: format!("the provider said {error}{said}"),
            });
        }
        let code =
            query.get("code").ok_or_else(|| ConnectionError::Invalid("the provider's answer has no `code`".into()))?;
        let ci = self
            .integration(key.tenant, key.integration)
            .await?
            .ok_or_else(|| ConnectionError::NotFound(format!("no integration `{}`", key.integration)))?;
        let spec = ci
            .connections
            .get(key.connection)
            .ok_or_else(|| ConnectionError::NotFound(format!("no connection `{}`", key.connection)))?;
        let ConnectionSpec::OAuth(o) = &**spec else {
            return Err(ConnectionError::Invalid(format!(
                "connection `{}` is not an OAuth connection",
                key.connection
            )));
        };
        let verifier = match &row.verifier {
            Some(sealed) => Some(self.inner.sealer.open_str(sealed, &state_aad(key)).map_err(|e| {
                ConnectionError::Invalid(format!("the authorization's verifier cannot be opened: {e}"))
            })?),
            None => None,
        };
        let mut obtained = exchange(self, o, code, verifier).await?;
        // Providers' extras that come with the redirect (QuickBooks: the company's realmId).
        let mut extras = serde_json::Map::new();
        for name in ["realmId"] {
            if let Some(v) = query.get(name) {
                extras.insert(name.to_owned(), Value::String(v.clone()));
            }
        }
        obtained.extras = Some(Value::Object(extras));
        let owner = format!("{}/authorize", self.inner.settings.node_id);
        let until = now + 30_000;
        // Take the lease even from a refresh in flight: the new grant replaces what it would store.
        let mut leased = self.inner.store.lease_connection_refresh(key, &owner, now, until).await?;
        for _ in 0..60 {
            if leased.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let now = self.inner.clock.now_ms();
            leased = self.inner.store.lease_connection_refresh(key, &owner, now, now + 30_000).await?;
        }
        if leased.is_none() {
            return Err(ConnectionError::Failed {
                code: "connection_busy".into(),
                message: "a token refresh is in flight: try again".into(),
            });
        }
        let aad = tokens::aad(key);
        let access = self.inner.sealer.seal_str(&obtained.access_token, &aad);
        let refresh = obtained.refresh_token.as_deref().map(|r| self.inner.sealer.seal_str(r, &aad));
        let extras = obtained.extras.as_ref().map(Value::to_string);
        let fingerprint = o.fingerprint();
        let tokens = NewTokens {
            access_token: &access,
            refresh_token: refresh.as_deref(),
            extras: extras.as_deref(),
            expires_at: obtained.expires_in.map(|d| now + d.as_millis() as i64),
            fingerprint: &fingerprint,
            now,
        };
        self.inner.store.store_connection_tokens(key, &owner, tokens).await?.ok_or_else(|| {
            ConnectionError::Failed {
                code: "connection_busy".into(),
                message: "another node took over the connection meanwhile: try again".into(),
            }
        })?;
        self.inner.tokens.forget(key);
        Ok((row.tenant_id.clone(), row.integration.clone(), row.connection.clone()))
    }

    /// Contacts the system of a connection of `kind` with its `credentials`, as its steps
    /// would, and says what was done: a database runs `SELECT 1` and a broker answers
    /// (`flowgate_steps::{sql, amqp, nats, mqtt}::probe`: the outbound policy, the URL
    /// handling and the error codes of the steps); a connector's API takes one harmless call
    /// (Dataverse's `WhoAmI`, QuickBooks' `CompanyInfo`). The other kinds have no request of
    /// their own to make: their credentials were resolved (an `oauth2` token obtained when
    /// none was fresh) and nothing more is claimed.
    async fn probe(
        &self,
        kind: &str,
        credentials: &flowgate_steps::connection::Credentials,
    ) -> Result<&'static str, ConnectionError> {
        use flowgate_steps::{StepError, amqp, mqtt, nats, sql};
        // Databases and brokers: the steps' own probe (policy, URL handling, error codes).
        let policy = &self.inner.settings.outbound;
        type Probe<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), StepError>> + Send + 'a>>;
        let step: Option<(Probe<'_>, &'static str)> = match kind {
            "postgres" | "mysql" | "sqlite" => Some((
                Box::pin(sql::probe(credentials, policy, PROBE_TIMEOUT)),
                "connected to the database and ran SELECT 1",
            )),
            "amqp" => Some((
                Box::pin(amqp::probe(credentials, policy, PROBE_TIMEOUT)),
                "connected to the broker and opened a channel",
            )),
            "nats" => Some((
                Box::pin(nats::probe(credentials, policy, PROBE_TIMEOUT)),
                "connected to the server and sent a message through it and back",
            )),
            "mqtt" => Some((
                Box::pin(mqtt::probe(credentials, policy, PROBE_TIMEOUT)),
                "connected to the broker (it answered CONNACK) and disconnected",
            )),
            _ => None,
        };
        if let Some((probe, tested)) = step {
            probe.await.map_err(|e| ConnectionError::Failed { code: e.code, message: e.message })?;
            return Ok(tested);
        }
        let base = credentials.extras["baseUrl"].as_str().unwrap_or("").trim_end_matches('/');
        Ok(match kind {
            "dynamics365" => {
                let url = format!("{base}{}/WhoAmI", flowgate_steps::dynamics::API_PATH);
                let odata = [("OData-MaxVersion", "4.0"), ("OData-Version", "4.0"), ("Accept", "application/json")];
                self.call_api(&url, &odata, credentials).await?;
                "called the API with a token (WhoAmI)"
            }
            "quickbooks" => {
                let realm = credentials.extras["realmId"].as_str().ok_or_else(|| ConnectionError::Failed {
                    code: "quickbooks_no_company".into(),
                    message: "the connection has no company (realmId): authorize it again".into(),
                })?;
                let url =
                    format!("{base}/v3/company/{realm}/query?query=SELECT%20*%20FROM%20CompanyInfo&minorversion=75");
                self.call_api(&url, &[("Accept", "application/json")], credentials).await?;
                "called the API with a token (CompanyInfo)"
            }
            "oauth2" => {
                "no test request for this kind: a token is held (obtained when none was fresh); the API was not called"
            }
            _ => "no test request for this kind: the credentials were resolved; nothing was contacted",
        })
    }

    /// One `GET` of a connector's API with the credentials: accepted, or why not
    /// (`connection_unauthorized` for a `401`, which the caller answers with new credentials).
    async fn call_api(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        credentials: &flowgate_steps::connection::Credentials,
    ) -> Result<(), ConnectionError> {
        let failed = |message: String| ConnectionError::Failed { code: "connection_test".into(), message };
        let url = reqwest::Url::parse(url).map_err(|e| failed(format!("invalid API URL: {e}")))?;
        self.inner.settings.outbound.check_url(&url).map_err(|m| failed(format!("the API's URL is refused: {m}")))?;
        let mut req = self.inner.http.get(url).timeout(PROBE_TIMEOUT);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp =
            credentials.apply(req).send().await.map_err(|e| failed(format!("the API cannot be reached: {e}")))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ConnectionError::Failed {
                code: "connection_unauthorized".into(),
                message: "the API refused the credentials (401)".into(),
            });
        }
        if !status.is_success() || body.contains("\"Fault\"") {
            let excerpt: String = body.chars().take(300).collect();
            return Err(failed(format!("the API refused the credentials: {status} {excerpt}")));
        }
        Ok(())
    }

    fn redirect_url(&self) -> Result<RedirectUrl, ConnectionError> {
        let url = format!("{}/oauth/callback", self.inner.settings.public_url.trim_end_matches('/'));
        RedirectUrl::new(url)
            .map_err(|e| ConnectionError::Invalid(format!("the public URL gives no valid callback URL: {e}")))
    }
}

/// Exchanges an authorization code (RFC 6749 §4.1.3), with the PKCE verifier when one was sent.
async fn exchange(
    engine: &Engine,
    spec: &OAuthSpec,
    code: &str,
    verifier: Option<String>,
) -> Result<oauth::Obtained, ConnectionError> {
    let client = oauth::client(spec).map_err(failed)?.set_redirect_uri(engine.redirect_url()?);
    let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
    if let Some(v) = verifier {
        request = request.set_pkce_verifier(PkceCodeVerifier::new(v));
    }
    let hop = Hop(&engine.inner);
    oauth::obtained(request.request_async(&hop).await).map_err(failed)
}

fn failed(e: TokenError) -> ConnectionError {
    match e {
        TokenError::Revoked(m) => ConnectionError::Failed {
            code: "connection_refused".into(),
            message: format!("the provider refused the code: {m}"),
        },
        TokenError::Failed { message, .. } => ConnectionError::Failed { code: "connection_token".into(), message },
    }
}

fn hash(state: &str) -> String {
    hex::encode(sha2::Sha256::digest(state.as_bytes()))
}

fn state_aad(key: ConnectionKey<'_>) -> String {
    format!("{}/{}/connections/{}/pkce", key.tenant, key.integration, key.connection)
}
