//! Who may call a webhook: the caller's credentials checked against the flow's (resolved
//! from the deployment's config when the version was compiled), always in constant time —
//! neither where two secrets differ nor which API key matched shows in the timing.

use super::{AuthSpec, KeyLocation};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Compares secrets in constant time (regardless of where they differ or their lengths).
pub fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.ct_eq(&b).into()
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
pub fn scheme_value<'a>(header: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let n = scheme.len();
    (header.len() > n && header[..n].eq_ignore_ascii_case(scheme) && header[n] == b' ')
        .then(|| header[n + 1..].trim_ascii())
}

fn ok_if(ok: bool) -> HookAuth {
    if ok { HookAuth::Ok(None) } else { HookAuth::Denied }
}
