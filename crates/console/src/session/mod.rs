//! Console sessions: a stateless cookie signed with HMAC-SHA256 under the cluster's shared
//! key, holding the tenant, the API token's id and an expiry (8 h), so any node can check it
//! without a session table. Every request re-reads the token: revoking it ends the session.
//! CSRF tokens are derived from the session (an HMAC of its signature), so they need no
//! storage either and die with it.

mod cookie;
mod extract;
#[cfg(test)]
mod tests;

pub use cookie::{COOKIE, Claims, LIFETIME_MS, csrf_token, sign, verify};
pub(crate) use extract::{Session, check_csrf, clear_cookie, set_cookie};
