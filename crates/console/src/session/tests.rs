//! Unit tests of the session cookie and CSRF tokens.

use super::cookie::{Claims, csrf_token, sign, verify};

fn claims(expires_at: i64) -> Claims {
    Claims { tenant: "acme".into(), token_id: "tok_1".into(), expires_at }
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
