//! Console sessions: a stateless cookie signed with HMAC-SHA256 under the cluster's shared
//! key, holding the tenant, the API token's id and an expiry (8 h), so any node can check it
//! without a session table. Every request re-reads the token: revoking it ends the session.
//! An admin session (the server's admin token) is marked in the signed claims and holds a
//! fingerprint of the admin token instead; it reaches the tenants page only, and tenant
//! pages send it there.
//! CSRF tokens are derived from the session (an HMAC of its signature), so they need no
//! storage either and die with it.

mod cookie;
mod extract;
#[cfg(test)]
mod tests;

pub use cookie::{COOKIE, Claims, LIFETIME_MS, admin_fingerprint, csrf_token, sign, verify};
pub(crate) use extract::{AdminSession, AnySession, Session, check_csrf, check_csrf_of, clear_cookie, set_cookie};
