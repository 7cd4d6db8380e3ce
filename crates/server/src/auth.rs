//! Who may call the API: API tokens (stored hashed), the admin token, and signed status URLs
//! for webhook callers who have no token. Webhook credentials are the trigger's
//! (`flowgate_engine::triggers::webhook::auth`).

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
pub use flowgate_engine::triggers::webhook::auth::{HookAuth, check_hook, scheme_value, secret_eq};
use flowgate_store::TokenInfo;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

// Tokens are made, hashed and checked in the engine, which the web console shares.
pub use flowgate_engine::tokens::{ADMIN_TOKEN_SETTING, TOKEN_PREFIX, hash_token, new_token};

/// A new random webhook API key.
pub fn new_key() -> String {
    format!("fgk_{}", random_b64(32))
}

fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The tenant an API call acts for, from its bearer token.
pub struct Caller(pub TokenInfo);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| scheme_value(v.as_bytes(), b"bearer"))
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized().header(http::header::WWW_AUTHENTICATE, "Bearer"))?;
        let info = state
            .engine
            .store()
            .token_by_hash(&hash_token(token))
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::unauthorized().header(http::header::WWW_AUTHENTICATE, "Bearer"))?;
        Ok(Caller(info))
    }
}

/// The server administrator, from the admin token (`FLOWGATE_ADMIN_TOKEN`, or the one made on
/// first start): may create and list tenants, nothing inside them.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let denied = || ApiError::unauthorized().header(http::header::WWW_AUTHENTICATE, "Bearer");
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| scheme_value(v.as_bytes(), b"bearer"))
            .ok_or_else(denied)?;
        let given = std::str::from_utf8(token).unwrap_or("");
        if state.engine.is_admin_token(given).await.map_err(ApiError::internal)? { Ok(Admin) } else { Err(denied()) }
    }
}

/// Signature of a status URL for execution `id`.
pub fn status_signature(key: &[u8], id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"status:");
    mac.update(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..24])
}
