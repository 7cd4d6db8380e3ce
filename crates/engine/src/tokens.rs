//! API tokens, the admin token and tenants: made, hashed and checked here, so the REST API
//! (`/v1/tokens`, `/v1/tenants`, its bearer checks) and the web console share one
//! implementation.
//!
//! Tokens are stored as their SHA-256 (hex) only; the token itself is returned once, when it
//! is made. Tokens are long and random, so a fast hash is enough (no dictionary to guard
//! against).

use crate::triggers::webhook::auth::secret_eq;
use base64::Engine as _;
use flowgate_store::NewToken;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of API tokens, so they are recognisable in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "fgt_";

/// The setting holding the admin token's hash.
pub const ADMIN_TOKEN_SETTING: &str = "admin_token_hash";

/// A new random API token: 32 random bytes, base64url, after [`TOKEN_PREFIX`].
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a token, hex: what is stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a token's name (what it is for): 1–200 characters.
///
/// # Errors
/// The message for the caller.
pub fn check_token_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err("`name` must be 1–200 characters".into());
    }
    Ok(())
}

/// Why a tenant was not created.
#[derive(Debug)]
pub enum TenantError {
    /// The id is not a slug (the message says so).
    Invalid(String),
    /// A tenant with that id exists.
    Exists(String),
    /// The store failed.
    Store(flowgate_store::Error),
}

impl From<flowgate_store::Error> for TenantError {
    fn from(e: flowgate_store::Error) -> Self {
        TenantError::Store(e)
    }
}

/// A tenant just created, with its first API token (shown once).
#[derive(Debug)]
pub struct NewTenant {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its first API token.
    pub token: String,
    /// That token's id.
    pub token_id: String,
}

impl crate::Engine {
    /// Creates an API token named `name` for `tenant`; returns (token, id). The token is
    /// stored hashed and never again readable.
    ///
    /// # Errors
    /// The store.
    pub async fn create_token(&self, tenant: &str, name: &str) -> Result<(String, String), flowgate_store::Error> {
        let token = new_token();
        let id = format!("tok_{}", uuid::Uuid::new_v4().simple());
        self.store()
            .create_token(&NewToken {
                id: id.clone(),
                tenant_id: tenant.to_owned(),
                name: name.to_owned(),
                token_hash: hash_token(&token),
                prefix: token[..12].to_owned(),
                created_at: self.clock().now_ms(),
            })
            .await?;
        Ok((token, id))
    }

    /// Whether `token` is the server's admin token (compared in constant time, as hashes).
    ///
    /// # Errors
    /// The store.
    pub async fn is_admin_token(&self, token: &str) -> Result<bool, flowgate_store::Error> {
        let Some(expected) = self.store().setting(ADMIN_TOKEN_SETTING).await? else { return Ok(false) };
        let given = hash_token(token.trim());
        Ok(!expected.is_empty() && secret_eq(given.as_bytes(), expected.as_bytes()))
    }

    /// The stored hash of the admin token, if there is one (sessions opened with it derive a
    /// fingerprint from it, so changing the token ends them).
    ///
    /// # Errors
    /// The store.
    pub async fn admin_token_hash(&self) -> Result<Option<String>, flowgate_store::Error> {
        Ok(self.store().setting(ADMIN_TOKEN_SETTING).await?.filter(|h| !h.is_empty()))
    }

    /// Creates tenant `id` (display name `name`, default the id) and its first API token
    /// (named `admin`).
    ///
    /// # Errors
    /// An id that is not a slug, an existing tenant, the store.
    pub async fn create_tenant(&self, id: &str, name: Option<&str>) -> Result<NewTenant, TenantError> {
        if !flowgate_model::is_slug(id) {
            return Err(TenantError::Invalid(format!(
                "invalid tenant id `{id}`: expected 1–64 lower-case letters, digits, `-` or `_`"
            )));
        }
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(id).to_owned();
        if !self.store().create_tenant(id, &name, self.clock().now_ms()).await? {
            return Err(TenantError::Exists(format!("tenant `{id}` exists")));
        }
        let (token, token_id) = self.create_token(id, "admin").await?;
        Ok(NewTenant { id: id.to_owned(), name, token, token_id })
    }
}
