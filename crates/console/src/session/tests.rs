//! Unit tests of the session cookie and CSRF tokens.

use super::cookie::{Claims, csrf_token, sign, verify};

fn claims(expires_at: i64) -> Claims {
    Claims { tenant: "acme".into(), token_id: "tok_1".into(), expires_at, admin: false }
}

#[test]
fn a_signed_cookie_verifies_until_it_expires() {
    let key = b"0123456789abcdef0123456789abcdef";
    let value = sign(key, &claims(1_000));
    let (c, id) = verify(key, &value, 999).expect("valid");
    assert_eq!(c, claims(1_000));
    assert!(value.ends_with(&id));
    assert!(verify(key, &value, 1_000).is_none(), "expired");
}

#[test]
fn tampered_or_foreign_cookies_are_refused() {
    let key = b"key-one";
    let value = sign(key, &claims(i64::MAX));
    assert!(verify(b"key-two", &value, 0).is_none(), "another key");
    let (payload, sig) = value.split_once('.').unwrap();
    let other = sign(key, &Claims { tenant: "globex".into(), ..claims(i64::MAX) });
    let (other_payload, _) = other.split_once('.').unwrap();
    assert!(verify(key, &format!("{other_payload}.{sig}"), 0).is_none(), "payload swapped");
    assert!(verify(key, payload, 0).is_none(), "no signature");
    assert!(verify(key, &format!("{payload}.!!"), 0).is_none(), "garbage signature");
}

#[test]
fn csrf_tokens_belong_to_one_session_and_key() {
    let a = csrf_token(b"k", "session-a");
    assert_eq!(a, csrf_token(b"k", "session-a"));
    assert_ne!(a, csrf_token(b"k", "session-b"));
    assert_ne!(a, csrf_token(b"other", "session-a"));
}

#[test]
fn the_kind_of_session_is_signed() {
    let key = b"key";
    let value = sign(key, &claims(i64::MAX));
    let (payload, sig) = value.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let text = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
    assert!(text.contains(r#""a":false"#), "{text}");
    let admin = b64.encode(text.replace(r#""a":false"#, r#""a":true"#));
    assert!(verify(key, &format!("{admin}.{sig}"), 0).is_none(), "a tenant cookie turned admin");
    // Old cookies without the field are tenant sessions.
    let old = b64.encode(r#"{"t":"acme","k":"tok_1","e":9223372036854775807}"#);
    let (c, _) = verify(key, &resign(key, &old), 0).expect("valid");
    assert!(!c.admin);
}

/// A cookie value for a raw payload, signed as `sign` signs.
fn resign(key: &[u8], payload: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(b"console-session:");
    mac.update(payload.as_bytes());
    use base64::Engine as _;
    format!("{payload}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[test]
fn admin_fingerprints_follow_the_admin_token() {
    use super::cookie::admin_fingerprint;
    let a = admin_fingerprint(b"k", "hash-1");
    assert_eq!(a, admin_fingerprint(b"k", "hash-1"));
    assert_ne!(a, admin_fingerprint(b"k", "hash-2"));
    assert!(!a.contains("hash-1"));
}
