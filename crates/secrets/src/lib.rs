//! Flowgate's secrets: encryption of secret values at rest and their redaction from recorded
//! data.
//!
//! Secrets (API tokens, passwords in integration configs) are stored sealed: AES-256-GCM under
//! a master key that never leaves the node, each value bound to where it belongs so that a
//! sealed value copied into another field or tenant does not open. Values handed to a flow at
//! run time must not end up in journals in clear; the [`Redactor`] swaps them for markers
//! before anything is written and swaps them back when an execution resumes.
//!
//! # Layout
//! - [`key`]: the master key — parsing, fingerprints, loading from the environment or a key
//!   file created on first use.
//! - [`seal`]: [`Sealer`], sealing and opening values, key rotation.
//! - [`redact`]: [`Redactor`], markers in text, JSON text and JSON values.

#![warn(missing_docs)]

pub mod key;
pub mod redact;
pub mod seal;

pub use key::{KEY_FILE, KEY_LEN, KeyError, KeySource, MasterKey};
pub use redact::{MARKER_PREFIX, MARKER_SUFFIX, MIN_SECRET_LEN, Redactor};
pub use seal::{SEALED_PREFIX, SealError, Sealer};
