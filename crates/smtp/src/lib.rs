//! Flowgate's inbound SMTP receiver: an RFC 5321 server for *receiving* mail, written on
//! tokio, and the MIME parsing that turns a received message into JSON.
//!
//! The receiver knows nothing about flows: its owner implements [`MailHandler`], which accepts
//! or refuses each recipient and stores each message. The receiver answers `250` to a message
//! only after [`MailHandler::deliver`] returned — the owner makes the message durable first, so
//! an accepted mail is never lost.
//!
//! # Layout
//! - [`session`]: one SMTP conversation (commands, replies, the DATA phase, limits).
//! - [`parse`]: a received message → `{from, to, subject, text, html, attachments, …}`.

#![warn(missing_docs)]

pub mod parse;
pub mod session;

pub use parse::{ParseError, parse_message};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Who sent what to whom: the SMTP envelope of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM` (empty for the null sender of bounces).
    pub from: String,
    /// The accepted `RCPT TO` addresses, in order.
    pub recipients: Vec<String>,
    /// The name the client gave in `EHLO`/`HELO`.
    pub helo: String,
    /// The client's address.
    pub client: SocketAddr,
}

/// A refusal: reply code, enhanced status code (RFC 3463) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Reply code (4xx temporary, 5xx permanent).
    pub code: u16,
    /// Enhanced status code, e.g. `5.1.1`.
    pub enhanced: &'static str,
    /// Text for the client.
    pub message: String,
}

impl Reject {
    /// `550 5.1.1`: no such mailbox here.
    pub fn unknown_recipient() -> Reject {
        Reject { code: 550, enhanced: "5.1.1", message: "no such mailbox here".into() }
    }

    /// `550 5.7.1`: this sender may not write to this recipient.
    pub fn sender_refused(message: impl Into<String>) -> Reject {
        Reject { code: 550, enhanced: "5.7.1", message: message.into() }
    }

    /// `451 4.3.0`: try again later.
    pub fn temporary(message: impl Into<String>) -> Reject {
        Reject { code: 451, enhanced: "4.3.0", message: message.into() }
    }

    /// `552 5.3.4`: larger than `limit` bytes.
    pub fn too_big(limit: usize) -> Reject {
        Reject { code: 552, enhanced: "5.3.4", message: format!("message larger than {limit} bytes") }
    }
}

/// What the receiver asks of its owner.
#[async_trait::async_trait]
pub trait MailHandler: Send + Sync + 'static {
    /// `RCPT TO`: accept this recipient for this sender (`Ok`) or refuse it.
    async fn recipient(&self, from: &str, recipient: &str) -> Result<(), Reject>;

    /// The end of `DATA`: the message as received (CRLF line ends, dot-unstuffed) for the
    /// accepted recipients. Returns `Ok` only once the message is durably stored: the client
    /// is answered `250` only then.
    async fn deliver(&self, envelope: &Envelope, message: bytes::Bytes) -> Result<(), Reject>;
}

/// Limits and names of the receiver.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Name in the greeting and the `EHLO` answer.
    pub hostname: String,
    /// Largest message accepted (announced as `SIZE`).
    pub max_message_bytes: usize,
    /// Most recipients of one message.
    pub max_recipients: usize,
    /// Longest wait for a client's next command or line.
    pub command_timeout: Duration,
    /// Most connections at once; more get `421` at once.
    pub max_connections: usize,
    /// At shutdown, how long a conversation with a transaction open may go on to finish it
    /// before it is told `421` (idle ones are told at once).
    pub shutdown_grace: Duration,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            hostname: "localhost".into(),
            max_message_bytes: 10 * 1024 * 1024,
            max_recipients: 100,
            command_timeout: Duration::from_secs(300),
            max_connections: 256,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// After the grace, how long `serve` still waits for messages being delivered (and `421`s
/// being sent) before it returns.
const DELIVERY_GRACE: Duration = Duration::from_secs(5);

/// Serves SMTP on `listener` until `shutdown` is cancelled. Idle conversations are then told
/// `421` at once; one with a transaction open gets [`SmtpSettings::shutdown_grace`] to finish
/// it first, and a message being delivered is never cut off.
///
/// # Errors
/// Never for a client's fault; only when the listener itself fails for good.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn MailHandler>,
    settings: SmtpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "SMTP accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = slots.clone().try_acquire_owned();
        let (handler, settings, shutdown) = (handler.clone(), settings.clone(), shutdown.clone());
        tracker.spawn(async move {
            match permit {
                Ok(_permit) => session::run(socket, peer, handler, &settings, shutdown).await,
                Err(_) => session::refuse(socket, &settings).await,
            }
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(settings.shutdown_grace + DELIVERY_GRACE, tracker.wait()).await;
    Ok(())
}
