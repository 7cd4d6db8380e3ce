//! Signing and checking the session cookie's value, and deriving CSRF tokens from it. Pure:
//! no I/O, no clock (the caller passes the time).
//!
//! Value: `base64url(JSON claims) "." base64url(HMAC-SHA256(key, "console-session:" payload))`.
//! The prefixes keep these signatures apart from the other uses of the same key (status
//! URLs sign `status:…`, resume URLs `resume:…`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "fg_console";

/// How long a session lasts, in milliseconds (8 hours).
pub const LIFETIME_MS: i64 = 8 * 3600 * 1000;

/// What a session cookie says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant it acts for.
    #[serde(rename = "t")]
    pub tenant: String,
    /// The id of the API token it was opened with (never the token or its hash).
    #[serde(rename = "k")]
    pub token_id: String,
    /// When it ends, epoch milliseconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// An admin session (opened with the server's admin token): it sees the tenants page and
    /// nothing inside a tenant. Its `tenant` is empty and its `token_id` is
    /// [`admin_fingerprint`] of the admin token. Inside the signed payload, so a tenant's
    /// cookie cannot be turned into an admin one.
    #[serde(rename = "a", default)]
    pub admin: bool,
}

fn mac(key: &[u8], purpose: &[u8], data: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(purpose);
    mac.update(data);
    mac
}

/// The cookie value for `claims`.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let sig = B64.encode(mac(key, b"console-session:", payload.as_bytes()).finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// The claims of a cookie value signed with `key` and not expired at `now_ms`, with the
/// session's id (its signature, which CSRF tokens are derived from).
pub fn verify(key: &[u8], value: &str, now_ms: i64) -> Option<(Claims, String)> {
    let (payload, sig) = value.split_once('.')?;
    let given = B64.decode(sig).ok()?;
    // Constant time (hmac's `verify_slice`).
    mac(key, b"console-session:", payload.as_bytes()).verify_slice(&given).ok()?;
    let claims: Claims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    (claims.expires_at > now_ms).then(|| (claims, sig.to_owned()))
}

/// The CSRF token of the session whose id is `session_id`.
pub fn csrf_token(key: &[u8], session_id: &str) -> String {
    B64.encode(mac(key, b"console-csrf:", session_id.as_bytes()).finalize().into_bytes())
}

/// What an admin session holds of the admin token: a keyed digest of its stored hash (never
/// the token or the hash), so a new admin token ends the sessions opened with the old one.
pub fn admin_fingerprint(key: &[u8], admin_token_hash: &str) -> String {
    B64.encode(&mac(key, b"console-admin:", admin_token_hash.as_bytes()).finalize().into_bytes()[..16])
}
