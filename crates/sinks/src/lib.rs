//! Flowgate's log sources: delivery of execution log records to SIEMs and log collectors.
//!
//! A [`Sink`] is started from a [`SinkConfig`] and fed [`LogEvent`]s with [`Sink::send`],
//! which never waits: each sink has its own bounded queue and delivery task, so a slow or
//! failing log source loses its own records (counted in [`SinkStats`]) and never slows the
//! engine or another sink.
//!
//! # Layout
//! - [`event`]: the record and its JSON form.
//! - [`config`]: where a sink delivers, and validation.
//! - [`sink`]: the running sink — queue, counters, flush and stop; `task`: what the handle
//!   and the delivery task share, and the task's end of the queue each transport runs on.
//! - `syslog`: RFC 5424 over UDP, or TCP with octet counting ([`format_syslog`] is public).
//! - `http`: NDJSON batches with retry.
//! - `file`: JSON lines appended to a local file.

#![warn(missing_docs)]

pub mod config;
pub mod event;
mod file;
mod http;
pub mod sink;
mod syslog;
mod task;

pub use config::SinkConfig;
pub use event::{Level, LogEvent};
pub use sink::{AddressGuard, Redact, Sink, SinkOptions, SinkStats};
pub use syslog::{FIELDS_SD_ID, MAX_DATAGRAM, SD_ID, format_syslog};
