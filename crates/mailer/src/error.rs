//! Why a send failed, sorted by the one question the engine asks: may trying again help?
//!
//! SMTP answers that in its reply codes (RFC 5321 §4.2.1): 4xx is "not now" (greylisting, a
//! full queue, a rate limit), 5xx is "never" (no such mailbox, login refused, message
//! rejected). Failures without a reply follow the same idea: a refused or dropped connection
//! or a timeout is retryable; what would fail the same way every time (a malformed address, a
//! TLS certificate that does not verify, a server without the login we need) is not.

/// What went wrong, classified: whether trying again later may help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// What happened, for people: names the bad address, the server's reply and so on.
    pub message: String,
    /// Whether the same send may succeed later.
    pub retryable: bool,
    /// The SMTP reply code, when the server refused (e.g. 451, 550).
    pub code: Option<u16>,
}

impl SendError {
    /// A failure that will repeat whatever is retried: the message or the settings must change.
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError { message: message.into(), retryable: false, code: None }
    }

    /// A failure that may pass: the server or the network may be back later.
    pub fn retryable(message: impl Into<String>) -> SendError {
        SendError { message: message.into(), retryable: true, code: None }
    }

    /// Classifies what lettre reported while talking to `server` (`host:port`).
    pub(crate) fn from_smtp(server: &str, e: &lettre::transport::smtp::Error) -> SendError {
        let code = e.status().map(u16::from);
        let retryable = if e.is_transient() {
            true
        } else if e.is_permanent() {
            false
        } else {
            // Client errors come from our side (no common AUTH mechanism, 8-bit data the
            // server cannot take) and TLS errors from certificates or a port that speaks
            // another protocol: both repeat until someone changes the settings. The rest is
            // the network, an unreadable reply or a pool being replaced — worth another go.
            !(e.is_client() || e.is_tls() || caused_by_tls(e))
        };
        let what = match code {
            Some(_) => "refused by",
            None => "failed talking to",
        };
        SendError { message: format!("sending mail {what} {server}: {e}"), retryable, code }
    }
}

/// Whether rustls refused somewhere down the chain. lettre reports a failed handshake as a
/// connection error, but a certificate that does not verify or a port that answers in plain
/// text fails the same way on every try; a connection reset mid-handshake is an I/O error, not
/// a rustls one, and stays retryable.
fn caused_by_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // io::Error hides its payload from `source()`; look inside it explicitly.
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        cause = c.source();
    }
    false
}
