//! What a step may ask of its integration's connections (`StepCx::connections`): the
//! credentials to send now, and telling the engine that a provider refused them. Tokens,
//! their refresh and their storage are the engine's; a step only applies what it is given.

use crate::StepError;
use async_trait::async_trait;
use serde_json::Value;

/// Credentials to send with one request.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Headers to add (e.g. `Authorization`), marked sensitive.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Query parameters to add (an API key sent in the query).
    pub query: Vec<(String, String)>,
    /// Which token these are: a refusal names it, so that when many requests are refused
    /// at once only one refresh follows.
    pub version: i64,
    /// What connector steps need beside the credentials (base URL, QuickBooks' `realmId`).
    pub extras: Value,
}

impl Credentials {
    /// `req` with these credentials.
    pub fn apply(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        if !self.query.is_empty() {
            req = req.query(&self.query);
        }
        req
    }
}

/// The connections of the running execution's integration.
#[async_trait]
pub trait Connections: Send + Sync {
    /// The credentials of connection `name`, fresh (a token about to expire is refreshed
    /// first).
    ///
    /// # Errors
    /// Unknown connection, one that needs reconnecting (its grant was revoked), or a token
    /// endpoint that failed.
    async fn credentials(&self, name: &str) -> Result<Credentials, StepError>;

    /// The provider refused the credentials of `version` (HTTP 401): the next
    /// [`credentials`](Connections::credentials) obtains new ones, if the kind can.
    async fn refused(&self, name: &str, version: i64);
}

/// No connections (steps run outside an integration, e.g. their own tests).
pub struct NoConnections;

#[async_trait]
impl Connections for NoConnections {
    async fn credentials(&self, name: &str) -> Result<Credentials, StepError> {
        Err(StepError::fatal("connection_unknown", format!("no connection `{name}` here")))
    }

    async fn refused(&self, _: &str, _: i64) {}
}
