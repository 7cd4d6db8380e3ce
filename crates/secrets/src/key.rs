//! The master key: the one secret a node keeps outside the store, under which every other
//! secret is sealed.
//!
//! It comes from `FLOWGATE_MASTER_KEY` or, failing that, from a key file in the data
//! directory that the first start creates. It is known by its fingerprint, which names it in
//! sealed values and logs without revealing it.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::TryRngCore as _;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize as _, Zeroizing};

/// Name of the key file in the data directory.
pub const KEY_FILE: &str = "master.key";

/// Bytes in a master key.
pub const KEY_LEN: usize = 32;

/// Hashed before the key so that a fingerprint is of no use outside this purpose.
const FINGERPRINT_DOMAIN: &[u8] = b"flowgate-master-key";

/// Base64 readers that take a key with or without its padding: people strip `=` when copying.
const BASE64_STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A 256-bit master key.
///
/// Its bytes live on the heap (moves do not leave copies behind) and are wiped when it is
/// dropped. `Debug` shows only the [fingerprint](MasterKey::fingerprint).
#[derive(Clone)]
pub struct MasterKey {
    bytes: Box<[u8; KEY_LEN]>,
}

/// Where [`MasterKey::load`] found the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `FLOWGATE_MASTER_KEY`.
    Env,
    /// The key file.
    File {
        /// The key file's path.
        path: PathBuf,
        /// Whether this call created it (with a new random key).
        created: bool,
    },
}

/// A master key that cannot be parsed or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is empty (or only whitespace).
    #[error("master key is empty; it must be 32 bytes as 64 hex characters or base64")]
    Empty,
    /// The text decodes, but not to 32 bytes.
    #[error(
        "master key is {found} bytes ({encoding}); it must be exactly 32 bytes (64 hex characters or 44 base64 characters)"
    )]
    WrongLength {
        /// Bytes the text decodes to.
        found: usize,
        /// How it was read: `"hex"` or `"base64"`.
        encoding: &'static str,
    },
    /// The text is neither hex nor base64.
    #[error("master key is neither hex nor base64; it must be 32 bytes as 64 hex characters or base64")]
    NotEncoded,
    /// `FLOWGATE_MASTER_KEY` holds no valid key.
    #[error("FLOWGATE_MASTER_KEY: {0}")]
    Env(Box<KeyError>),
    /// The key file holds no valid key.
    #[error("key file {}: {error}", path.display())]
    File {
        /// The key file's path.
        path: PathBuf,
        /// What is wrong with its content.
        error: Box<KeyError>,
    },
    /// The key file (or its directory) cannot be read or written.
    #[error("key file {}: {error}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The failure.
        error: std::io::Error,
    },
}

impl MasterKey {
    /// A new random key from the operating system's random number generator.
    ///
    /// # Panics
    /// When the operating system cannot provide random bytes: no key can be made safely then.
    pub fn generate() -> MasterKey {
        let mut key = MasterKey { bytes: Box::new([0; KEY_LEN]) };
        rand::rngs::OsRng.try_fill_bytes(&mut key.bytes[..]).expect("the OS random number generator failed");
        key
    }

    /// A key from its bytes.
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> MasterKey {
        let key = MasterKey { bytes: Box::new(bytes) };
        bytes.zeroize();
        key
    }

    /// Reads a key written as 64 hex characters or as base64 (standard or url-safe alphabet,
    /// padded or not) of exactly 32 bytes. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<MasterKey, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        // Even-length all-hex text is read as hex only: no 32-byte base64 text looks like that
        // (43 characters unpadded, 44 with one `=`), and a wrong-length hex key deserves a
        // message about hex.
        if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            if text.len() != 2 * KEY_LEN {
                return Err(KeyError::WrongLength { found: text.len() / 2, encoding: "hex" });
            }
            let mut key = MasterKey { bytes: Box::new([0; KEY_LEN]) };
            hex::decode_to_slice(text, &mut key.bytes[..]).map_err(|_| KeyError::NotEncoded)?;
            return Ok(key);
        }
        let decoded = Zeroizing::new(
            BASE64_STANDARD_ANY_PAD
                .decode(text)
                .or_else(|_| BASE64_URL_SAFE_ANY_PAD.decode(text))
                .map_err(|_| KeyError::NotEncoded)?,
        );
        if decoded.len() != KEY_LEN {
            return Err(KeyError::WrongLength { found: decoded.len(), encoding: "base64" });
        }
        let mut key = MasterKey { bytes: Box::new([0; KEY_LEN]) };
        key.bytes.copy_from_slice(&decoded);
        Ok(key)
    }

    /// The key as base64 (standard alphabet, padded): what the key file holds and what
    /// `FLOWGATE_MASTER_KEY` takes. The caller should not keep the string longer than needed.
    pub fn encode(&self) -> String {
        STANDARD.encode(&self.bytes[..])
    }

    /// Names the key without revealing it: the first 8 hex characters of
    /// SHA-256("flowgate-master-key" ‖ key).
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new().chain_update(FINGERPRINT_DOMAIN).chain_update(&self.bytes[..]).finalize();
        hex::encode(&digest[..4])
    }

    /// The key's bytes, for the cipher.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The key from `env` (the value of `FLOWGATE_MASTER_KEY`) when given, else from the key
    /// file `dir/master.key`.
    ///
    /// The key file is created on first use with a new random key: mode 0600 on unix, written
    /// to a temporary file and then linked into place, so that no reader ever sees a partial
    /// file and two nodes starting at once on one directory end up with the same key. A given
    /// but invalid `env` is an error rather than a fallback to the file: a deployment that
    /// means to pass the key must not silently run on another one.
    pub fn load(env: Option<&str>, dir: &Path) -> Result<(MasterKey, KeySource), KeyError> {
        if let Some(text) = env {
            let key = MasterKey::parse(text).map_err(|e| KeyError::Env(Box::new(e)))?;
            return Ok((key, KeySource::Env));
        }
        let path = dir.join(KEY_FILE);
        match read_key_file(&path)? {
            Some(key) => Ok((key, KeySource::File { path, created: false })),
            None => create_key_file(dir, path),
        }
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("fingerprint", &self.fingerprint()).finish()
    }
}

impl std::str::FromStr for MasterKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<MasterKey, KeyError> {
        MasterKey::parse(text)
    }
}

/// The key in the key file, or `None` when there is no key file.
fn read_key_file(path: &Path) -> Result<Option<MasterKey>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(KeyError::Io { path: path.to_owned(), error }),
    };
    MasterKey::parse(&text).map(Some).map_err(|e| KeyError::File { path: path.to_owned(), error: Box::new(e) })
}

/// Creates the key file with a new key. When another process created it meanwhile, its key is
/// the one returned.
fn create_key_file(dir: &Path, path: PathBuf) -> Result<(MasterKey, KeySource), KeyError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let key = MasterKey::generate();
    let tmp = dir.join(format!(".{KEY_FILE}.{}.{}.tmp", std::process::id(), &key.fingerprint()));
    let written = write_private(&tmp, &key);
    let placed = written.and_then(|()| place(&tmp, &path));
    // The temporary name is gone after a rename and merely a second link after a hard link.
    let _ = std::fs::remove_file(&tmp);
    match placed {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Lost the race to another process: use its key.
            return match read_key_file(&path)? {
                Some(key) => Ok((key, KeySource::File { path, created: false })),
                None => Err(KeyError::Io { path, error: e }),
            };
        }
        Err(error) => return Err(KeyError::Io { path, error }),
    }
    sync_dir(dir).map_err(io_error(dir))?;
    Ok((key, KeySource::File { path, created: true }))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |error| KeyError::Io { path: path.to_owned(), error }
}

/// Writes the key to a new file readable by its owner only, and flushes it to disk.
fn write_private(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let mut text = Zeroizing::new(key.encode());
    text.push('\n');
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Puts the written temporary file in place without ever replacing an existing key file.
fn place(tmp: &Path, path: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        // File systems without hard links: a rename is still atomic for readers, only a
        // simultaneous first start of two nodes could then replace a just-created key.
        Err(_) if !path.exists() => std::fs::rename(tmp, path),
        Err(_) => Err(std::io::ErrorKind::AlreadyExists.into()),
    }
}

/// Makes the new directory entry durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn sample() -> MasterKey {
        MasterKey::parse(HEX).unwrap()
    }

    #[test]
    fn parses_hex_and_base64_variants() {
        let key = sample();
        assert_eq!(key.bytes()[31], 31);
        let bytes: Vec<u8> = (0..32).collect();
        let variants = [
            HEX.to_uppercase(),
            format!("  {HEX}\n"),
            STANDARD.encode(&bytes),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
            format!("\t{}\n", STANDARD.encode(&bytes)),
        ];
        for text in &variants {
            let parsed = MasterKey::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(parsed.encode(), key.encode(), "{text:?}");
        }
        // A key whose base64 uses the url-safe characters.
        let high = MasterKey::from_bytes([0xfb; 32]);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert!(url.contains('-') || url.contains('_'));
        assert_eq!(MasterKey::parse(&url).unwrap().encode(), high.encode());
        assert_eq!(MasterKey::parse(&high.encode()).unwrap().fingerprint(), high.fingerprint());
        assert_eq!(HEX.parse::<MasterKey>().unwrap().fingerprint(), key.fingerprint());
    }

    #[test]
    fn rejects_wrong_lengths_and_garbage_clearly() {
        let e = MasterKey::parse(&HEX[..32]).unwrap_err();
        assert!(matches!(e, KeyError::WrongLength { found: 16, encoding: "hex" }), "{e:?}");
        assert!(e.to_string().contains("16 bytes (hex)") && e.to_string().contains("exactly 32 bytes"), "{e}");
        let e = MasterKey::parse(&STANDARD.encode([7u8; 16])).unwrap_err();
        assert!(matches!(e, KeyError::WrongLength { found: 16, encoding: "base64" }), "{e:?}");
        let e = MasterKey::parse(&STANDARD.encode([7u8; 33])).unwrap_err();
        assert!(e.to_string().contains("33 bytes (base64)"), "{e}");
        assert!(matches!(MasterKey::parse(&format!("{HEX}00")), Err(KeyError::WrongLength { found: 33, .. })));
        assert!(matches!(MasterKey::parse(" \n"), Err(KeyError::Empty)));
        assert!(matches!(MasterKey::parse("not a key!"), Err(KeyError::NotEncoded)));
        assert!(matches!(MasterKey::parse("ÿÿÿÿ"), Err(KeyError::NotEncoded)));
        // Mixed alphabets are not base64.
        let mut mixed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 32]);
        mixed.replace_range(0..1, "+");
        mixed.replace_range(1..2, "_");
        assert!(MasterKey::parse(&mixed).is_err());
    }

    #[test]
    fn fingerprints_differ_per_key_and_reveal_nothing() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a.encode(), b.encode());
        assert_ne!(a.fingerprint(), b.fingerprint());
        for key in [&a, &b, &sample()] {
            let fp = key.fingerprint();
            assert_eq!(fp.len(), 8);
            assert!(fp.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert_eq!(fp, key.fingerprint(), "stable");
            let key_hex = hex::encode(key.bytes());
            assert!(!key_hex.contains(&fp) && !key.encode().contains(&fp));
        }
        // Pinned: the fingerprint names keys across versions and nodes.
        let digest = Sha256::digest([FINGERPRINT_DOMAIN, sample().bytes()].concat());
        assert_eq!(sample().fingerprint(), hex::encode(&digest[..4]));
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let key = sample();
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains(&key.fingerprint()), "{shown}");
        assert!(!shown.contains(&key.encode()) && !shown.contains(HEX) && !shown.contains("[0, 1"), "{shown}");
    }

    #[test]
    fn clones_are_the_same_key() {
        let key = MasterKey::generate();
        let copy = key.clone();
        drop(key);
        assert_eq!(MasterKey::parse(&copy.encode()).unwrap().fingerprint(), copy.fingerprint());
    }

    #[test]
    fn load_creates_the_key_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (first, source) = MasterKey::load(None, &data).unwrap();
        let path = data.join(KEY_FILE);
        assert_eq!(source, KeySource::File { path: path.clone(), created: true });
        let (second, source) = MasterKey::load(None, &data).unwrap();
        assert_eq!(source, KeySource::File { path: path.clone(), created: false });
        assert_eq!(first.encode(), second.encode());
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), first.encode());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [KEY_FILE]);
    }

    #[test]
    fn load_prefers_the_env_value() {
        let dir = tempfile::tempdir().unwrap();
        let (from_file, _) = MasterKey::load(None, dir.path()).unwrap();
        let env = MasterKey::generate();
        let (key, source) = MasterKey::load(Some(&format!("{}\n", env.encode())), dir.path()).unwrap();
        assert_eq!(source, KeySource::Env);
        assert_eq!(key.encode(), env.encode());
        assert_ne!(key.encode(), from_file.encode());
        // Without a key file, a given env value does not create one.
        let empty = tempfile::tempdir().unwrap();
        MasterKey::load(Some(HEX), empty.path()).unwrap();
        assert!(!empty.path().join(KEY_FILE).exists());
    }

    #[test]
    fn load_reports_bad_env_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = MasterKey::load(Some(""), dir.path()).unwrap_err();
        assert!(matches!(&e, KeyError::Env(inner) if matches!(**inner, KeyError::Empty)), "{e:?}");
        assert!(e.to_string().starts_with("FLOWGATE_MASTER_KEY: master key is empty"), "{e}");
        assert!(!dir.path().join(KEY_FILE).exists(), "no fallback to a new key file");

        std::fs::write(dir.path().join(KEY_FILE), "abcd\n").unwrap();
        let e = MasterKey::load(None, dir.path()).unwrap_err();
        assert!(matches!(e, KeyError::File { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(shown.contains("master.key") && shown.contains("2 bytes (hex)"), "{shown}");

        let not_a_dir = dir.path().join(KEY_FILE).join("sub");
        assert!(matches!(MasterKey::load(None, &not_a_dir), Err(KeyError::Io { .. })));
    }

    #[test]
    fn losing_the_creation_race_returns_the_winners_key() {
        let dir = tempfile::tempdir().unwrap();
        let winner = MasterKey::generate();
        std::fs::write(dir.path().join(KEY_FILE), winner.encode()).unwrap();
        let (key, source) = create_key_file(dir.path(), dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(key.encode(), winner.encode());
        assert!(matches!(source, KeySource::File { created: false, .. }));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
