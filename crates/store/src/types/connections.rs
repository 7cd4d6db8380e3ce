//! A connection's stored tokens and status (`connection_tokens`), and what a refresh stores.

use super::IntegrationKey;

/// One connection of one tenant's integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionKey<'a> {
    /// The tenant's id.
    pub tenant: &'a str,
    /// The integration's slug.
    pub integration: &'a str,
    /// The connection's name (`connections.<name>`).
    pub connection: &'a str,
}

impl<'a> IntegrationKey<'a> {
    /// The connection `connection` of this integration.
    pub fn connection(self, connection: &'a str) -> ConnectionKey<'a> {
        ConnectionKey { tenant: self.tenant, integration: self.integration, connection }
    }
}

/// A connection's row: its status and its tokens, sealed by the engine.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectionTokens {
    /// The connection's name.
    pub connection: String,
    /// `new`, `active`, `needs_reconnect` or `error`.
    pub status: String,
    /// Why it is not active (never a secret).
    pub message: Option<String>,
    /// The access token, sealed.
    pub access_token: Option<String>,
    /// The refresh token, sealed.
    pub refresh_token: Option<String>,
    /// What the provider gave beside the tokens (JSON, e.g. QuickBooks' `realmId`).
    pub extras: Option<String>,
    /// The settings the tokens were obtained with (a hash).
    pub fingerprint: Option<String>,
    /// When the access token expires (ms since the epoch); `None`: not said.
    pub expires_at: Option<i64>,
    /// When tokens were last stored.
    pub refreshed_at: Option<i64>,
    /// Grows with every stored token.
    pub version: i64,
    /// The node refreshing it now, and until when its lease holds.
    pub refresh_owner: Option<String>,
    /// See `refresh_owner`.
    pub refresh_until: Option<i64>,
    /// Last change.
    pub updated_at: i64,
}

/// Tokens a refresh (or an authorization) obtained, sealed.
#[derive(Debug, Clone, Copy)]
pub struct NewTokens<'a> {
    /// The access token.
    pub access_token: &'a str,
    /// A new refresh token; `None` keeps the stored one (providers that do not rotate).
    pub refresh_token: Option<&'a str>,
    /// New extras; `None` keeps the stored ones.
    pub extras: Option<&'a str>,
    /// When the access token expires.
    pub expires_at: Option<i64>,
    /// The settings they were obtained with.
    pub fingerprint: &'a str,
    /// Now.
    pub now: i64,
}

/// An authorization in flight: the `state` of a provider URL (hashed), what it authorizes,
/// the PKCE verifier (sealed) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthState {
    /// SHA-256 of the state, hex.
    pub state_hash: String,
    /// The tenant.
    pub tenant_id: String,
    /// The integration.
    pub integration: String,
    /// The connection.
    pub connection: String,
    /// The PKCE verifier, sealed.
    pub verifier: Option<String>,
    /// When it can no longer be used (ms).
    pub expires_at: i64,
}
