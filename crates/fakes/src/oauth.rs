//! A fake OAuth 2.0 authorization server (RFC 6749 with RFC 7636 PKCE): the token endpoint
//! for the `client_credentials`, `authorization_code` and `refresh_token` grants, and an
//! authorization endpoint that consents at once.
//!
//! The resource fakes ([`crate::dynamics`], [`crate::quickbooks`]) share this server's state:
//! they accept exactly the access tokens it issued and that are still valid, through
//! [`OAuthServer::validate_access`].
//!
//! # Refresh-token rotation
//! With [`OAuthConfig::rotate_refresh_tokens`] (the default), rotation works as QuickBooks
//! Online's does, so that a client that crashed after receiving a new refresh token but before
//! storing it can still use the one it stored:
//!
//! 1. A `refresh_token` grant with token `R1` answers a **new** refresh token `R2` (and an access
//!    token `A2`). `R1` stays valid.
//! 2. `R1` keeps working — each further use answers another new token (`R2'`, …) — until one of
//!    the tokens issued from it is *confirmed*: the token itself is used in a `refresh_token`
//!    grant, or the access token answered together with it is used at a resource server
//!    ([`OAuthServer::validate_access`] returning `true`).
//! 3. Confirming `R2` retires `R1` and every other token issued from `R1` (`R2'`, …): they
//!    answer `invalid_grant` from then on. `R2` is now the one live token of that chain.
//!
//! Without rotation, a `refresh_token` grant answers the same refresh token it was given.
//! Access tokens issued earlier stay valid until they expire in both modes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::serve::{Bound, Running};

mod endpoints;
#[cfg(test)]
mod tests;
pub(crate) use endpoints::bearer_token;
use endpoints::*;

/// Path of the token endpoint (RFC 6749 §3.2).
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Path of the authorization endpoint (RFC 6749 §3.1).
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
/// How long an authorization code can be exchanged: the maximum RFC 6749 §4.1.2 recommends.
pub const AUTHORIZATION_CODE_LIFETIME: Duration = Duration::from_secs(600);

/// A registered confidential client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`, checked by both `client_secret_basic` and `client_secret_post`.
    pub client_secret: String,
}

/// What an [`OAuthServer`] accepts and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// The registered clients. Default: none (every token request fails with `invalid_client`).
    pub clients: Vec<OAuthClient>,
    /// Lifetime of access tokens, in seconds; it is the `expires_in` of answers. Default: 3600.
    pub access_token_lifetime_secs: u64,
    /// Whether a `refresh_token` grant answers a new refresh token (see the module docs).
    /// Default: `true`.
    pub rotate_refresh_tokens: bool,
    /// Scopes every authorization and `client_credentials` request must ask for; a request
    /// missing one fails with `invalid_scope`. Default: none (any scope is granted as asked).
    pub required_scopes: Vec<String>,
    /// A company id the authorization redirect adds as the `realmId` query parameter, as
    /// QuickBooks Online does. Default: none.
    pub realm_id: Option<String>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            clients: Vec::new(),
            access_token_lifetime_secs: 3600,
            rotate_refresh_tokens: true,
            required_scopes: Vec::new(),
            realm_id: None,
        }
    }
}

impl OAuthConfig {
    /// Registers a client.
    pub fn with_client(mut self, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        self.clients.push(OAuthClient { client_id: client_id.into(), client_secret: client_secret.into() });
        self
    }

    /// Sets the access-token lifetime, in seconds.
    pub fn with_access_token_lifetime_secs(mut self, secs: u64) -> Self {
        self.access_token_lifetime_secs = secs;
        self
    }

    /// Turns refresh-token rotation on or off.
    pub fn with_rotation(mut self, rotate: bool) -> Self {
        self.rotate_refresh_tokens = rotate;
        self
    }

    /// Adds a scope that requests must ask for.
    pub fn with_required_scope(mut self, scope: impl Into<String>) -> Self {
        self.required_scopes.push(scope.into());
        self
    }

    /// Sets the `realmId` the authorization redirect carries.
    pub fn with_realm_id(mut self, realm_id: impl Into<String>) -> Self {
        self.realm_id = Some(realm_id.into());
        self
    }
}

/// The parameters of an authorization request, as received (absent ones are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// `response_type`.
    pub response_type: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
}

/// A running fake authorization server; it stops accepting connections when dropped.
pub struct OAuthServer {
    shared: Arc<Shared>,
    base_url: String,
    _running: Running,
}

impl OAuthServer {
    /// Starts the server on `127.0.0.1:<ephemeral port>` in a task of the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if the loopback interface cannot be bound.
    pub async fn start(config: OAuthConfig) -> OAuthServer {
        let bound = Bound::loopback().await;
        let base_url = bound.base_url();
        let shared = Arc::new(Shared {
            config,
            authorize_url: format!("{base_url}{AUTHORIZE_PATH}"),
            inner: Mutex::new(Inner::default()),
        });
        let router = Router::new()
            .route(TOKEN_PATH, post(token_endpoint))
            .route(AUTHORIZE_PATH, get(authorize_endpoint))
            .with_state(shared.clone());
        let running = bound.serve(router);
        OAuthServer { shared, base_url, _running: running }
    }

    /// The server's base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        self.base_url.clone()
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url)
    }

    /// The authorization endpoint's URL.
    pub fn authorize_url(&self) -> String {
        self.shared.authorize_url.clone()
    }

    /// The configuration the server was started with.
    pub fn config(&self) -> &OAuthConfig {
        &self.shared.config
    }

    /// How many requests reached the token endpoint, whatever their outcome (failures injected
    /// by [`fail_next_token_requests`](Self::fail_next_token_requests) included).
    pub fn token_requests(&self) -> u64 {
        self.shared.lock().token_requests
    }

    /// How many token requests carried `grant_type=<grant_type>` (e.g. `"refresh_token"`).
    pub fn token_requests_for(&self, grant_type: &str) -> u64 {
        self.shared.lock().token_requests_by_grant.get(grant_type).copied().unwrap_or(0)
    }

    /// The parameters of the last request to the authorization endpoint, valid or not.
    pub fn last_authorize_request(&self) -> Option<AuthorizeRequest> {
        self.shared.lock().last_authorize.clone()
    }

    /// Invalidates every refresh token issued so far: refreshing with one answers
    /// `invalid_grant` (as after a user disconnected the app). Later grants issue valid ones.
    pub fn revoke_all_refresh_tokens(&self) {
        for token in self.shared.lock().refresh_tokens.values_mut() {
            token.retired = true;
        }
    }

    /// Expires every access token issued so far: resource fakes answer 401 to them. Later
    /// grants issue valid ones.
    pub fn expire_access_tokens(&self) {
        for token in self.shared.lock().access_tokens.values_mut() {
            token.invalidated = true;
        }
    }

    /// Expires every authorization code issued so far, as if [`AUTHORIZATION_CODE_LIFETIME`]
    /// had passed: exchanging one answers `invalid_grant`.
    pub fn expire_authorization_codes(&self) {
        for code in self.shared.lock().codes.values_mut() {
            code.expired = true;
        }
    }

    /// Whether `access_token` was issued here and is still valid, as a resource server checks a
    /// Bearer token. A `true` answer also confirms the refresh token issued together with it
    /// (see the module docs), exactly as a request to a resource fake does.
    pub fn validate_access(&self, access_token: &str) -> bool {
        self.shared.validate_access(access_token)
    }

    /// Whether `refresh_token` would be accepted by a `refresh_token` grant now (no side effect;
    /// the client binding is not checked).
    pub fn refresh_token_is_valid(&self, refresh_token: &str) -> bool {
        self.shared.lock().refresh_tokens.get(refresh_token).is_some_and(|token| !token.retired)
    }

    /// Issues a valid access token directly, as a `client_credentials` grant would, without a
    /// request (and without counting one): for tests of the resource fakes that do not exercise
    /// the token endpoint. (Resource fakes check validity only, not clients or scopes.)
    pub fn issue_access_token(&self) -> String {
        let mut inner = self.shared.lock();
        let grant = inner.new_grant();
        let lifetime = self.shared.access_lifetime();
        inner.issue_access(grant, None, lifetime)
    }

    /// Makes the token endpoint wait `delay` before handling each request (to widen races in
    /// concurrency tests). `Duration::ZERO` turns it off.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// Makes the token endpoint wait `delay` after handling each request and before answering:
    /// the tokens are issued (a refresh token rotated) and the answer is still on its way —
    /// a client killed meanwhile never learns the new tokens (`tokens_issued` says when they
    /// were).
    pub fn set_answer_delay(&self, delay: Duration) {
        self.shared.lock().answer_delay = delay;
    }

    /// Token requests answered with tokens so far (counted when issued, before any answer
    /// delay).
    pub fn tokens_issued(&self) -> u64 {
        self.shared.lock().tokens_issued
    }

    /// Makes the next `count` token requests fail with HTTP `status` and an RFC 6749 error body
    /// (`temporarily_unavailable` for 429 and 503, `server_error` otherwise), before anything
    /// is checked or issued.
    ///
    /// # Panics
    /// If `status` is not a valid HTTP status code.
    pub fn fail_next_token_requests(&self, count: u32, status: u16) {
        let status = StatusCode::from_u16(status).expect("fail_next_token_requests: an HTTP status code");
        self.shared.lock().injected_failures = Some((count, status));
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

/// The state the token and authorization endpoints and the resource fakes share.
pub(crate) struct Shared {
    config: OAuthConfig,
    authorize_url: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock must not take every other test down.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn access_lifetime(&self) -> Duration {
        Duration::from_secs(self.config.access_token_lifetime_secs)
    }

    /// The authorization endpoint's URL, for resource fakes' `WWW-Authenticate` challenges.
    pub(crate) fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// The configured QuickBooks company id, if any.
    pub(crate) fn realm_id(&self) -> Option<&str> {
        self.config.realm_id.as_deref()
    }

    /// See [`OAuthServer::validate_access`].
    pub(crate) fn validate_access(&self, access_token: &str) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        let Some(token) = inner.access_tokens.get(access_token) else { return false };
        if token.invalidated || now >= token.expires_at {
            return false;
        }
        if let Some(refresh) = token.confirms.clone() {
            inner.confirm(&refresh);
        }
        true
    }

    fn client_secret(&self, client_id: &str) -> Option<&str> {
        self.config.clients.iter().find(|c| c.client_id == client_id).map(|c| c.client_secret.as_str())
    }

    /// The scope to grant for a request that asked for `requested`.
    fn granted_scope(&self, requested: Option<&str>) -> Result<String, TokenError> {
        let scopes: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
        if let Some(missing) = self.config.required_scopes.iter().find(|r| !scopes.contains(&r.as_str())) {
            return Err(TokenError::invalid_scope(format!("the requested scope must include `{missing}`")));
        }
        Ok(scopes.join(" "))
    }

    /// Client authentication (RFC 6749 §2.3.1): HTTP Basic or form fields, never both.
    fn authenticate(&self, headers: &HeaderMap, form: &Form) -> Result<String, TokenError> {
        let basic = match headers.get(header::AUTHORIZATION) {
            Some(value) => {
                Some(parse_basic(value).ok_or_else(|| TokenError::invalid_client("malformed HTTP Basic credentials"))?)
            }
            None => None,
        };
        let (client_id, secret) = match (basic, form.get("client_id"), form.get("client_secret")) {
            (Some(_), _, Some(_)) => {
                return Err(TokenError::invalid_request("the client authenticated with more than one method"));
            }
            (Some((id, _)), Some(form_id), None) if form_id != id => {
                return Err(TokenError::invalid_request("client_id differs from the HTTP Basic credentials"));
            }
            (Some((id, secret)), _, None) => (id, secret),
            (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            (None, Some(_), None) => return Err(TokenError::invalid_client("client_secret is missing")),
            (None, None, _) => return Err(TokenError::invalid_client("no client authentication")),
        };
        match self.client_secret(&client_id) {
            Some(expected) if expected == secret => Ok(client_id),
            Some(_) => Err(TokenError::invalid_client("wrong client secret")),
            None => Err(TokenError::invalid_client("unknown client")),
        }
    }

    /// Handles one token request whose body is `form`.
    fn exchange(&self, headers: &HeaderMap, form: &Form) -> Result<Value, TokenError> {
        let client_id = self.authenticate(headers, form)?;
        let grant_type = form.require("grant_type")?;
        match grant_type {
            "client_credentials" => self.client_credentials(form),
            "authorization_code" => self.authorization_code(&client_id, form),
            "refresh_token" => self.refresh_token(&client_id, form),
            other => Err(TokenError::unsupported_grant_type(format!("grant type `{other}` is not supported"))),
        }
    }

    fn client_credentials(&self, form: &Form) -> Result<Value, TokenError> {
        let scope = self.granted_scope(form.get("scope"))?;
        let mut inner = self.lock();
        let grant = inner.new_grant();
        let access = inner.issue_access(grant, None, self.access_lifetime());
        // RFC 6749 §4.4.3: no refresh token for this grant.
        Ok(self.answer(&access, None, &scope))
    }

    fn authorization_code(&self, client_id: &str, form: &Form) -> Result<Value, TokenError> {
        let code = form.require("code")?;
        let redirect_uri = form.require("redirect_uri")?;
        let mut inner = self.lock();
        let Some(record) = inner.codes.get_mut(code) else {
            return Err(TokenError::invalid_grant("unknown authorization code"));
        };
        if record.used {
            // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
            let grant = record.grant;
            inner.revoke_grant(grant);
            return Err(TokenError::invalid_grant(
                "the authorization code was already used; the tokens issued for it are revoked",
            ));
        }
        if record.expired || record.issued_at.elapsed() >= AUTHORIZATION_CODE_LIFETIME {
            return Err(TokenError::invalid_grant("the authorization code expired"));
        }
        if record.client_id != client_id {
            return Err(TokenError::invalid_grant("the authorization code was issued to another client"));
        }
        if record.redirect_uri != redirect_uri {
            return Err(TokenError::invalid_grant("redirect_uri differs from the authorization request's"));
        }
        if let Some(challenge) = &record.challenge {
            challenge.verify(form.get("code_verifier"))?;
        }
        record.used = true;
        let (grant, scope) = (record.grant, record.scope.clone());
        let refresh = inner.issue_refresh(client_id, &scope, grant, None);
        let access = inner.issue_access(grant, Some(refresh.clone()), self.access_lifetime());
        Ok(self.answer(&access, Some(&refresh), &scope))
    }

    fn refresh_token(&self, client_id: &str, form: &Form) -> Result<Value, TokenError> {
        let presented = form.require("refresh_token")?;
        let mut inner = self.lock();
        let Some(record) = inner.refresh_tokens.get(presented).filter(|t| !t.retired) else {
            return Err(TokenError::invalid_grant("the refresh token is invalid, expired or revoked"));
        };
        if record.client_id != client_id {
            return Err(TokenError::invalid_grant("the refresh token was issued to another client"));
        }
        let (grant, original_scope) = (record.grant, record.scope.clone());
        // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
        let scope = match form.get("scope") {
            None => original_scope.clone(),
            Some(asked) => {
                let granted: Vec<&str> = original_scope.split_whitespace().collect();
                if let Some(extra) = asked.split_whitespace().find(|s| !granted.contains(s)) {
                    return Err(TokenError::invalid_scope(format!("scope `{extra}` was not granted originally")));
                }
                asked.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        let lifetime = self.access_lifetime();
        if !self.config.rotate_refresh_tokens {
            let access = inner.issue_access(grant, None, lifetime);
            return Ok(self.answer(&access, Some(presented), &scope));
        }
        inner.confirm(presented);
        let next = inner.issue_refresh(client_id, &original_scope, grant, Some(presented.to_owned()));
        let access = inner.issue_access(grant, Some(next.clone()), lifetime);
        Ok(self.answer(&access, Some(&next), &scope))
    }

    /// A successful token answer (RFC 6749 §5.1).
    fn answer(&self, access: &str, refresh: Option<&str>, scope: &str) -> Value {
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.config.access_token_lifetime_secs,
        });
        if let Some(refresh) = refresh {
            body["refresh_token"] = json!(refresh);
        }
        body["scope"] = json!(scope);
        body
    }
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, AuthorizationCode>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    /// Numbers grants, so that a reused code can revoke what it was exchanged for.
    next_grant: u64,
    last_authorize: Option<AuthorizeRequest>,
    token_requests: u64,
    token_requests_by_grant: HashMap<String, u64>,
    delay: Duration,
    answer_delay: Duration,
    tokens_issued: u64,
    /// How many more token requests fail, and with which status.
    injected_failures: Option<(u32, StatusCode)>,
}

struct AuthorizationCode {
    client_id: String,
    redirect_uri: String,
    scope: String,
    challenge: Option<CodeChallenge>,
    issued_at: Instant,
    expired: bool,
    used: bool,
    grant: u64,
}

struct AccessToken {
    expires_at: Instant,
    invalidated: bool,
    grant: u64,
    /// The refresh token answered together with this one: using this token confirms it.
    confirms: Option<String>,
}

struct RefreshToken {
    client_id: String,
    scope: String,
    grant: u64,
    /// The token this one was issued from, until this one is confirmed.
    parent: Option<String>,
    /// Tokens issued from this one.
    children: Vec<String>,
    retired: bool,
}

impl Inner {
    fn new_grant(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    fn issue_access(&mut self, grant: u64, confirms: Option<String>, lifetime: Duration) -> String {
        let token = new_token("at");
        let record = AccessToken { expires_at: Instant::now() + lifetime, invalidated: false, grant, confirms };
        self.access_tokens.insert(token.clone(), record);
        token
    }

    fn issue_refresh(&mut self, client_id: &str, scope: &str, grant: u64, parent: Option<String>) -> String {
        let token = new_token("rt");
        if let Some(parent) = parent.as_ref().and_then(|p| self.refresh_tokens.get_mut(p)) {
            parent.children.push(token.clone());
        }
        let record = RefreshToken {
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            grant,
            parent,
            children: Vec::new(),
            retired: false,
        };
        self.refresh_tokens.insert(token.clone(), record);
        token
    }

    /// Confirms `token`: retires the token it was issued from and that one's other children.
    fn confirm(&mut self, token: &str) {
        let Some(record) = self.refresh_tokens.get_mut(token) else { return };
        if record.retired {
            return;
        }
        let Some(parent) = record.parent.take() else { return };
        let siblings = match self.refresh_tokens.get_mut(&parent) {
            Some(parent) => {
                parent.retired = true;
                std::mem::take(&mut parent.children)
            }
            None => Vec::new(),
        };
        for sibling in siblings.iter().filter(|s| *s != token) {
            if let Some(sibling) = self.refresh_tokens.get_mut(sibling) {
                sibling.retired = true;
            }
        }
    }

    fn revoke_grant(&mut self, grant: u64) {
        self.access_tokens.values_mut().filter(|t| t.grant == grant).for_each(|t| t.invalidated = true);
        self.refresh_tokens.values_mut().filter(|t| t.grant == grant).for_each(|t| t.retired = true);
    }

    fn record_token_request(&mut self, grant_type: Option<&str>) {
        self.token_requests += 1;
        if let Some(grant_type) = grant_type {
            *self.token_requests_by_grant.entry(grant_type.to_owned()).or_default() += 1;
        }
    }

    fn take_injected_failure(&mut self) -> Option<StatusCode> {
        let (remaining, status) = self.injected_failures.as_mut()?;
        let status = *status;
        *remaining -= 1;
        if *remaining == 0 {
            self.injected_failures = None;
        }
        Some(status)
    }
}
