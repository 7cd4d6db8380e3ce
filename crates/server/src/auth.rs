//! Who may call: API tokens (stored hashed), webhook credentials (compared in constant
//! time), and signed status URLs for webhook callers who have no token.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use flowgate_engine::{AuthSpec, KeyLocation};
use flowgate_store::TokenInfo;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of API tokens, so they are recognisable in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "fgt_";

/// A new random API token: 32 random bytes, base64url.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_b64(32))
}

/// A new random webhook API key.
pub fn new_key() -> String {
    format!("fgk_{}", random_b64(32))
}

fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, hex: what is stored. Tokens are long and random, so a fast hash is
/// enough (no dictionary to guard against).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares secrets in constant time (regardless of where they differ or their lengths).
pub fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.ct_eq(&b).into()
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

/// The setting holding the admin token's hash.
pub const ADMIN_TOKEN_SETTING: &str = "admin_token_hash";

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
        let expected =
            state.engine.store().setting(ADMIN_TOKEN_SETTING).await.map_err(ApiError::internal)?.ok_or_else(denied)?;
        let given = hash_token(std::str::from_utf8(token).unwrap_or("").trim());
        if secret_eq(given.as_bytes(), expected.as_bytes()) { Ok(Admin) } else { Err(denied()) }
    }
}

/// Outcome of a webhook credential check.
pub enum HookAuth {
    /// Accepted; the label of the API key used, if any.
    Ok(Option<String>),
    /// Refused.
    Denied,
}

/// Checks a webhook request against its flow's credentials.
pub fn check_hook(auth: &AuthSpec, headers: &http::HeaderMap, query: &[(String, String)]) -> HookAuth {
    let header = |name: &http::HeaderName| headers.get(name).map(|v| v.as_bytes());
    match auth {
        AuthSpec::None => HookAuth::Ok(None),
        AuthSpec::Header { name, value } => ok_if(header(name).is_some_and(|v| secret_eq(v, value.as_bytes()))),
        AuthSpec::Bearer { token } => {
            let given = header(&http::header::AUTHORIZATION).and_then(|v| scheme_value(v, b"bearer"));
            ok_if(given.is_some_and(|g| secret_eq(g, token.as_bytes())))
        }
        AuthSpec::Basic { credentials } => {
            let given = header(&http::header::AUTHORIZATION)
                .and_then(|v| scheme_value(v, b"basic"))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
            ok_if(given.is_some_and(|g| secret_eq(&g, credentials.as_bytes())))
        }
        AuthSpec::ApiKey { location, keys } => {
            let given: Option<&[u8]> = match location {
                KeyLocation::Header(h) => header(h),
                KeyLocation::Query(q) => query.iter().find(|(k, _)| k == q).map(|(_, v)| v.as_bytes()),
            };
            let Some(given) = given else { return HookAuth::Denied };
            // Check every key, so timing does not tell which one (or whether any) matched.
            let mut found = None;
            for (label, key) in keys {
                if secret_eq(given, key.as_bytes()) && found.is_none() {
                    found = Some(label.clone());
                }
            }
            match found {
                Some(label) => HookAuth::Ok(Some(label)),
                None => HookAuth::Denied,
            }
        }
    }
}

/// The credentials after an `Authorization` scheme (matched case-insensitively, RFC 9110).
fn scheme_value<'a>(header: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let n = scheme.len();
    (header.len() > n && header[..n].eq_ignore_ascii_case(scheme) && header[n] == b' ')
        .then(|| header[n + 1..].trim_ascii())
}

fn ok_if(ok: bool) -> HookAuth {
    if ok { HookAuth::Ok(None) } else { HookAuth::Denied }
}

/// Signature of a status URL for execution `id`.
pub fn status_signature(key: &[u8], id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"status:");
    mac.update(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..24])
}
