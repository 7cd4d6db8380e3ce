//! Sealing: secrets at rest are AES-256-GCM ciphertexts under the master key.
//!
//! A sealed value is text, `fgs1:<fingerprint>:<base64url(nonce ‖ ciphertext ‖ tag)>`, so it
//! fits wherever the clear value did (a config field, a column). The fingerprint says which
//! master key opens it, which is what makes rotation possible: a [`Sealer`] seals with its
//! current key and opens with the current or any previous one, and [`Sealer::reseal`] moves a
//! value to the current key. The associated data binds each value to where it belongs.

use crate::key::MasterKey;
use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use std::fmt;
use std::sync::Arc;
use zeroize::{Zeroize as _, Zeroizing};

/// How every sealed value starts; the `1` is the format version.
pub const SEALED_PREFIX: &str = "fgs1:";

/// AES-GCM's 96-bit nonce, random per seal.
const NONCE_LEN: usize = 12;

/// AES-GCM's 128-bit tag.
const TAG_LEN: usize = 16;

/// Characters in a fingerprint.
const FINGERPRINT_LEN: usize = 8;

/// Base64 characters of the shortest sealed body (an empty plaintext).
const MIN_BODY_CHARS: usize = ((NONCE_LEN + TAG_LEN) * 4).div_ceil(3);

/// A sealed value that does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The text is not a sealed value at all (it may be a clear one).
    #[error("not a sealed value (sealed values start with \"{SEALED_PREFIX}\")")]
    NotSealed,
    /// It starts like a sealed value but is cut or garbled.
    #[error("malformed sealed value")]
    Malformed,
    /// It was sealed under a master key this sealer does not have.
    #[error("unknown key {fingerprint}: the value was sealed under a master key this node does not have")]
    UnknownKey {
        /// The fingerprint of the key it was sealed under.
        fingerprint: String,
    },
    /// The key is known but the value does not open: it was sealed for another place (other
    /// associated data) or it was altered.
    #[error("sealed value does not open: it belongs to another context or was tampered with")]
    WrongContextOrTampered,
    /// It opened, but is not UTF-8 text ([`Sealer::open_str`] only).
    #[error("sealed value is not UTF-8 text")]
    NotUtf8,
}

/// Seals with the current master key, opens with the current or any previous one.
///
/// Cheap to clone (the keys are shared). `Debug` shows only fingerprints; the expanded keys
/// are wiped when the last clone is dropped.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<Keys>,
}

#[derive(Clone)]
struct Keys {
    current: Keyed,
    previous: Vec<Keyed>,
}

/// A key ready for use, known by its fingerprint.
#[derive(Clone)]
struct Keyed {
    fingerprint: String,
    cipher: Aes256Gcm,
}

impl Keyed {
    fn new(key: &MasterKey) -> Keyed {
        Keyed { fingerprint: key.fingerprint(), cipher: Aes256Gcm::new(key.bytes().into()) }
    }
}

impl Sealer {
    /// A sealer that seals and opens with `current`.
    pub fn new(current: MasterKey) -> Sealer {
        Sealer { keys: Arc::new(Keys { current: Keyed::new(&current), previous: Vec::new() }) }
    }

    /// Also opens values sealed under `previous` keys (added to any given before), as after a
    /// master key rotation. Sealing still uses the current key only.
    pub fn with_previous(self, previous: Vec<MasterKey>) -> Sealer {
        let mut keys = Arc::unwrap_or_clone(self.keys);
        keys.previous.extend(previous.iter().map(Keyed::new));
        Sealer { keys: Arc::new(keys) }
    }

    /// The fingerprint of the current key: the one new values are sealed under.
    pub fn fingerprint(&self) -> String {
        self.keys.current.fingerprint.clone()
    }

    /// Seals `plaintext` with AES-256-GCM under the current key and a random 96-bit nonce.
    ///
    /// `aad` says where the value belongs (e.g. `"tenant/integration/config/apiToken"`): it is
    /// not stored, and opening needs the same, so a sealed value moved elsewhere does not open.
    /// The result is `fgs1:<fingerprint>:<base64url-nopad(nonce ‖ ciphertext ‖ tag)>`.
    ///
    /// # Panics
    /// When the operating system cannot provide random bytes, or beyond AES-GCM's limit of
    /// 64 GiB of plaintext.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.try_fill_bytes(&mut nonce).expect("the OS random number generator failed");
        let ciphertext = self
            .keys
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("plaintext within AES-GCM's 64 GiB limit");
        let mut body = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}:{}", self.keys.current.fingerprint, URL_SAFE_NO_PAD.encode(&body))
    }

    /// Opens a value sealed under the current or a previous key for the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let (fingerprint, body) = split(sealed)?;
        // Fingerprints are short, so two keys may share one: try each that matches.
        let mut candidates = self.keys().filter(|k| k.fingerprint == fingerprint).peekable();
        if candidates.peek().is_none() {
            return Err(SealError::UnknownKey { fingerprint: fingerprint.to_owned() });
        }
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Malformed)?;
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        candidates
            .find_map(|k| k.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad }).ok())
            .ok_or(SealError::WrongContextOrTampered)
    }

    /// [`seal`](Sealer::seal) for text.
    pub fn seal_str(&self, plaintext: &str, aad: &str) -> String {
        self.seal(plaintext.as_bytes(), aad.as_bytes())
    }

    /// [`open`](Sealer::open) for text.
    pub fn open_str(&self, sealed: &str, aad: &str) -> Result<String, SealError> {
        let bytes = self.open(sealed, aad.as_bytes())?;
        String::from_utf8(bytes).map_err(|e| {
            e.into_bytes().zeroize();
            SealError::NotUtf8
        })
    }

    /// Whether `text` has the form of a sealed value (it says nothing about whether it opens).
    pub fn is_sealed(text: &str) -> bool {
        split(text).is_ok_and(|(_, body)| {
            body.len() >= MIN_BODY_CHARS && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }

    /// The fingerprint of the key `sealed` was sealed under, if it is a sealed value: lets a
    /// rotation skip values already under the current key.
    pub fn sealed_with(sealed: &str) -> Option<&str> {
        split(sealed).ok().map(|(fingerprint, _)| fingerprint)
    }

    /// Seals `sealed` anew under the current key (it may be under any known key), for the same
    /// `aad`: the step of a master key rotation.
    pub fn reseal(&self, sealed: &str, aad: &[u8]) -> Result<String, SealError> {
        let plaintext = Zeroizing::new(self.open(sealed, aad)?);
        Ok(self.seal(&plaintext, aad))
    }

    fn keys(&self) -> impl Iterator<Item = &Keyed> {
        std::iter::once(&self.keys.current).chain(&self.keys.previous)
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.keys.previous.iter().map(|k| k.fingerprint.as_str()).collect();
        f.debug_struct("Sealer").field("current", &self.keys.current.fingerprint).field("previous", &previous).finish()
    }
}

/// A sealed value's fingerprint and body.
fn split(sealed: &str) -> Result<(&str, &str), SealError> {
    let rest = sealed.strip_prefix(SEALED_PREFIX).ok_or(SealError::NotSealed)?;
    let (fingerprint, body) = rest.split_once(':').ok_or(SealError::Malformed)?;
    let is_fingerprint = fingerprint.len() == FINGERPRINT_LEN
        && fingerprint.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_fingerprint {
        return Err(SealError::Malformed);
    }
    Ok((fingerprint, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    const AAD: &str = "acme/crm/config/apiToken";

    fn sealer() -> Sealer {
        Sealer::new(MasterKey::generate())
    }

    #[test]
    fn sealer_is_send_sync_and_cheap_to_clone() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<Sealer>();
        let s = sealer();
        assert!(Arc::ptr_eq(&s.keys, &s.clone().keys));
    }

    #[test]
    fn round_trips() {
        let s = sealer();
        for plaintext in ["", "x", "sk_live_51HkQ", "ünïcødé ✓ \"quoted\"\n", &"long".repeat(10_000)] {
            let sealed = s.seal_str(plaintext, AAD);
            assert_eq!(s.open_str(&sealed, AAD).unwrap(), plaintext);
            assert!(!sealed.contains(plaintext) || plaintext.len() < 2);
            assert!(Sealer::is_sealed(&sealed), "{sealed}");
        }
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(s.open(&s.seal(&bytes, b"\0\xff"), b"\0\xff").unwrap(), bytes);
        // A clone opens what the original sealed.
        assert_eq!(s.clone().open_str(&s.seal_str("v", ""), "").unwrap(), "v");
    }

    #[test]
    fn format_is_prefix_fingerprint_and_nonce_ciphertext_tag() {
        let s = sealer();
        let sealed = s.seal_str("hello", AAD);
        let rest = sealed.strip_prefix("fgs1:").unwrap();
        let (fp, body) = rest.split_once(':').unwrap();
        assert_eq!(fp, s.fingerprint());
        assert_eq!(Sealer::sealed_with(&sealed), Some(fp));
        assert!(!body.contains('=') && !body.contains('+') && !body.contains('/'));
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), NONCE_LEN + 5 + TAG_LEN);
        // Random nonces: sealing twice gives different values.
        assert_ne!(s.seal_str("hello", AAD), sealed);
        assert_eq!(s.seal_str("", "").len(), SEALED_PREFIX.len() + FINGERPRINT_LEN + 1 + MIN_BODY_CHARS);
    }

    #[test]
    fn wrong_aad_fails() {
        let s = sealer();
        let sealed = s.seal_str("token", AAD);
        for other in ["acme/crm/config/password", "other/crm/config/apiToken", "", "acme/crm/config/apiToken "] {
            assert_eq!(s.open_str(&sealed, other), Err(SealError::WrongContextOrTampered), "{other:?}");
        }
        let e = s.open_str(&sealed, "x").unwrap_err().to_string();
        assert!(e.contains("another context") && e.contains("tampered"), "{e}");
    }

    #[test]
    fn tampered_values_fail() {
        let s = sealer();
        let sealed = s.seal_str("the secret", AAD);
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in 0..raw.len() {
            let mut changed = raw.clone();
            changed[i] ^= 0x01;
            let tampered = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&changed));
            assert_eq!(s.open(&tampered, AAD.as_bytes()), Err(SealError::WrongContextOrTampered), "byte {i}");
        }
        let cut = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]));
        assert_eq!(s.open(&cut, AAD.as_bytes()), Err(SealError::WrongContextOrTampered));
        let too_short = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&raw[..NONCE_LEN + TAG_LEN - 1]));
        assert_eq!(s.open(&too_short, AAD.as_bytes()), Err(SealError::Malformed));
        assert_eq!(s.open(&format!("{head}:not base64!"), AAD.as_bytes()), Err(SealError::Malformed));
        assert!(s.open(&format!("{sealed}A"), AAD.as_bytes()).is_err());
    }

    #[test]
    fn another_keys_value_is_an_unknown_key() {
        let mine = sealer();
        let theirs = sealer();
        let sealed = theirs.seal_str("token", AAD);
        let e = mine.open_str(&sealed, AAD).unwrap_err();
        assert_eq!(e, SealError::UnknownKey { fingerprint: theirs.fingerprint() });
        assert!(e.to_string().starts_with(&format!("unknown key {}", theirs.fingerprint())), "{e}");
    }

    #[test]
    fn previous_keys_open_and_reseal_moves_to_the_current_key() {
        let old_key = MasterKey::generate();
        let old = Sealer::new(old_key.clone());
        let older = Sealer::new(MasterKey::generate());
        let sealed_old = old.seal_str("v1", AAD);
        let sealed_older = older.seal_str("v0", AAD);

        let new_key = MasterKey::generate();
        let rotated = Sealer::new(new_key.clone()).with_previous(vec![old_key]);
        assert_eq!(rotated.open_str(&sealed_old, AAD).unwrap(), "v1");
        assert!(matches!(rotated.open_str(&sealed_older, AAD), Err(SealError::UnknownKey { .. })));
        let rotated = rotated.with_previous(vec![MasterKey::generate()]);
        assert_eq!(rotated.open_str(&sealed_old, AAD).unwrap(), "v1", "previous keys accumulate");

        let resealed = rotated.reseal(&sealed_old, AAD.as_bytes()).unwrap();
        assert_eq!(Sealer::sealed_with(&resealed), Some(rotated.fingerprint().as_str()));
        assert_ne!(rotated.fingerprint(), old.fingerprint());
        assert_eq!(rotated.open_str(&resealed, AAD).unwrap(), "v1");
        // Only the new key opens it now.
        assert_eq!(Sealer::new(new_key).open_str(&resealed, AAD).unwrap(), "v1");
        assert_eq!(old.open_str(&resealed, AAD), Err(SealError::UnknownKey { fingerprint: rotated.fingerprint() }));
        // Resealing keeps the binding: it needs, and keeps, the same aad.
        assert_eq!(rotated.reseal(&sealed_old, b"elsewhere"), Err(SealError::WrongContextOrTampered));
        assert_eq!(rotated.open_str(&resealed, "elsewhere"), Err(SealError::WrongContextOrTampered));
        assert_eq!(rotated.reseal("clear", b""), Err(SealError::NotSealed));
    }

    #[test]
    fn clear_text_is_not_sealed() {
        let s = sealer();
        for text in ["", "hunter2", "fgs1", "fgs2:00000000:AAAA", " fgs1:00000000:AAAA"] {
            assert!(!Sealer::is_sealed(text), "{text:?}");
            assert_eq!(s.open_str(text, AAD), Err(SealError::NotSealed), "{text:?}");
        }
        for text in ["fgs1:", "fgs1:abc", "fgs1:ABCDEF01:xx", "fgs1:0123456:xx", "fgs1:0123456789:xx"] {
            assert!(!Sealer::is_sealed(text), "{text:?}");
            assert_eq!(s.open_str(text, AAD), Err(SealError::Malformed), "{text:?}");
        }
        let short = format!("fgs1:{}:AAAA", s.fingerprint());
        assert!(!Sealer::is_sealed(&short));
        assert!(s.open_str(&short, AAD).unwrap_err().to_string().contains("malformed"));
        assert!(SealError::NotSealed.to_string().contains("not a sealed value"));
    }

    #[test]
    fn open_str_rejects_non_utf8() {
        let s = sealer();
        assert_eq!(s.open_str(&s.seal(&[0xff, 0xfe], b"a"), "a"), Err(SealError::NotUtf8));
    }

    #[test]
    fn garbage_never_panics() {
        let s = sealer();
        let mut rng = rand::rng();
        let alphabet: Vec<char> = "fgs1:0123456789abcdefABCDEF-_=+/ é".chars().collect();
        for _ in 0..500 {
            let len = rng.random_range(0..60);
            let tail: String = (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
            for text in [tail.clone(), format!("fgs1:{}:{tail}", s.fingerprint())] {
                let _ = Sealer::is_sealed(&text);
                assert!(s.open_str(&text, AAD).is_err(), "{text:?}");
            }
        }
    }

    #[test]
    fn debug_shows_only_fingerprints() {
        let old = MasterKey::generate();
        let key = MasterKey::generate();
        let s = Sealer::new(key.clone()).with_previous(vec![old.clone()]);
        let shown = format!("{s:?}");
        assert_eq!(
            shown,
            format!("Sealer {{ current: {:?}, previous: [{:?}] }}", key.fingerprint(), old.fingerprint())
        );
        for k in [&key, &old] {
            assert!(!shown.contains(&k.encode()) && !shown.contains(&hex::encode(k.bytes())));
        }
    }
}
