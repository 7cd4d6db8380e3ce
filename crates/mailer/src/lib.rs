//! Flowgate's outbound e-mail: what the `email` step and failure notifications send through.
//!
//! A [`Mailer`] holds one SMTP server's settings ([`SmtpConfig`]) and a pool of connections to
//! it. [`Mailer::send`] turns an [`Email`] into a MIME message, checks every address before a
//! byte goes out, and classifies failures ([`SendError::retryable`]) so the engine knows whether
//! a retry may help: a full mailbox or a greylisting server (4xx) may accept later, a rejected
//! address or a failed login (5xx) never will.
//!
//! TLS is rustls with the ring provider and the operating system's trust store (what the HTTP
//! steps use too); nothing here links OpenSSL.
//!
//! # Layout
//! - [`config`]: [`SmtpConfig`], read from settings or from an `smtp://…` URL.
//! - [`message`]: [`Email`] and how it becomes MIME.
//! - [`error`]: [`SendError`] and the retryable/permanent split.
//! - [`mailer`]: [`Mailer`], the pooled transport.

#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod mailer;
pub mod message;
pub mod settings;

pub use config::{Security, SmtpConfig};
pub use error::SendError;
pub use mailer::Mailer;
pub use message::{Email, EmailAttachment, split_addresses};
pub use settings::SmtpSettings;
