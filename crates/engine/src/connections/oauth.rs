//! Requests to a token endpoint (RFC 6749) through the `oauth2` crate, sent with the node's
//! HTTP client under its outbound policy: a token URL is an outbound hop like any other.

use super::OAuthSpec;
use crate::node::Inner;
use flowgate_model::connection::ClientAuth;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl};
use serde_json::Value;
use std::time::Duration;

/// Longest a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest token response read.
const MAX_TOKEN_RESPONSE: usize = 256 * 1024;

/// What a token endpoint gave.
pub(crate) struct Obtained {
    pub(crate) access_token: String,
    /// A new refresh token (rotation), or the first one.
    pub(crate) refresh_token: Option<String>,
    pub(crate) expires_in: Option<Duration>,
    /// Provider extras to keep (QuickBooks' `realmId` comes with the authorization).
    pub(crate) extras: Option<Value>,
}

/// Why no token came.
pub(crate) enum TokenError {
    /// `invalid_grant`: the refresh token (or code) is no longer valid; a person must
    /// authorize again.
    Revoked(String),
    /// Anything else; `retryable` for network failures and server errors.
    Failed { message: String, retryable: bool },
}

/// A failed hop to the token endpoint, as the `oauth2` crate wants it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HopError(String);

/// A token request under way. Boxed: the `oauth2` crate's futures hold a higher-ranked
/// closure, which rustc cannot prove `Send` inside a caller's `async fn`.
pub(crate) type Pending<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Obtained, TokenError>> + Send + 'a>>;

/// Client credentials (RFC 6749 §4.4).
pub(crate) fn client_credentials<'a>(inner: &'a Inner, spec: &'a OAuthSpec) -> Pending<'a> {
    Box::pin(async move {
        let client = client(spec)?;
        let mut req = client.exchange_client_credentials().add_scopes(spec.scopes.iter().cloned().map(Scope::new));
        for (k, v) in &spec.params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        let send = Hop(inner);
        obtained(req.request_async(&send).await)
    })
}

/// A refresh (RFC 6749 §6).
pub(crate) fn refresh<'a>(inner: &'a Inner, spec: &'a OAuthSpec, refresh_token: String) -> Pending<'a> {
    Box::pin(async move {
        let client = client(spec)?;
        let token = RefreshToken::new(refresh_token);
        let mut req = client.exchange_refresh_token(&token);
        for (k, v) in &spec.params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        let send = Hop(inner);
        obtained(req.request_async(&send).await)
    })
}

type TokenClient = BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

pub(crate) fn client(spec: &OAuthSpec) -> Result<TokenClient, TokenError> {
    let token_url = TokenUrl::new(spec.token_url.clone())
        .map_err(|e| TokenError::Failed { message: format!("invalid token URL: {e}"), retryable: false })?;
    let mut client = BasicClient::new(ClientId::new(spec.client_id.clone())).set_token_uri(token_url).set_auth_type(
        match spec.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Body => AuthType::RequestBody,
        },
    );
    if let Some(secret) = &spec.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.clone()));
    }
    Ok(client)
}

/// The node's HTTP client as the `oauth2` crate calls it: each request checked against the
/// outbound policy, bounded in time and size.
pub(crate) struct Hop<'a>(pub(crate) &'a Inner);

impl<'c> oauth2::AsyncHttpClient<'c> for Hop<'_> {
    type Error = HopError;
    type Future = HopFuture<'c>;

    fn call(&'c self, req: oauth2::HttpRequest) -> HopFuture<'c> {
        let inner = self.0;
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let url =
                reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| HopError(format!("invalid token URL: {e}")))?;
            inner.settings.outbound.check_url(&url).map_err(|m| HopError(format!("token URL refused: {m}")))?;
            let mut resp = inner
                .http
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .timeout(TOKEN_TIMEOUT)
                .send()
                .await
                .map_err(|e| {
                    HopError(format!(
                        "the token endpoint cannot be reached: {}",
                        flowgate_steps::util::error_causes(&e)
                    ))
                })?;
            let mut out = http::Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| {
                HopError(format!("reading the token response: {}", flowgate_steps::util::error_causes(&e)))
            })? {
                if bytes.len() + chunk.len() > MAX_TOKEN_RESPONSE {
                    return Err(HopError("the token response is too large".into()));
                }
                bytes.extend_from_slice(&chunk);
            }
            out.body(bytes).map_err(|e| HopError(e.to_string()))
        })
    }
}

/// One hop's answer, as the `oauth2` crate awaits it.
pub(crate) type HopFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HopError>> + Send + 'a>>;

type Answer = Result<
    oauth2::basic::BasicTokenResponse,
    RequestTokenError<HopError, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
>;

pub(crate) fn obtained(answer: Answer) -> Result<Obtained, TokenError> {
    match answer {
        Ok(t) => Ok(Obtained {
            access_token: t.access_token().secret().clone(),
            refresh_token: t.refresh_token().map(|r| r.secret().clone()),
            expires_in: t.expires_in(),
            extras: None,
        }),
        Err(RequestTokenError::ServerResponse(e)) => {
            let said = match e.error_description() {
                Some(d) => format!("{}: {d}", e.error()),
                None => e.error().to_string(),
            };
            match e.error() {
                BasicErrorResponseType::InvalidGrant => Err(TokenError::Revoked(said)),
                _ => {
                    Err(TokenError::Failed { message: format!("the token endpoint refused: {said}"), retryable: false })
                }
            }
        }
        Err(RequestTokenError::Request(e)) => Err(TokenError::Failed { message: e.0, retryable: true }),
        Err(RequestTokenError::Parse(e, _)) => {
            Err(TokenError::Failed { message: format!("the token response is not understood: {e}"), retryable: true })
        }
        Err(RequestTokenError::Other(m)) => {
            Err(TokenError::Failed { message: format!("the token endpoint failed: {m}"), retryable: true })
        }
    }
}
