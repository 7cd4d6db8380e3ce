//! The transport: one SMTP server, a pool of open connections to it, and the send deadline.
//!
//! lettre's pool keeps finished connections open and checks each with a NOOP before reusing
//! it, so a burst of notifications pays for connecting, TLS and login once. Two things about
//! it shape this module:
//! - Creating the pool spawns its cleanup task, which needs a tokio runtime. The pool is
//!   therefore made on the first send (always inside a runtime), so [`Mailer::new`] can run
//!   anywhere, e.g. while settings are loaded.
//! - lettre's own timeout covers connecting only; a server that accepts and then goes quiet
//!   would hold a send forever. Each send therefore runs under [`SmtpConfig::timeout`]. A send
//!   cut short leaves its connection in the middle of a command, and the pool would take it
//!   back as if it were fine: the next message would read the stale reply. So a timeout
//!   retires the whole pool, and the next send starts a fresh one.

use crate::config::{Security, SmtpConfig};
use crate::error::SendError;
use crate::message::{self, Email};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// How long a retired pool may spend saying QUIT on its idle connections.
const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// Sends mail through one SMTP server (a pooled async transport).
///
/// Cloning is cheap and clones share the pool. A mailer belongs to one tokio runtime: its pool
/// lives in the runtime of its first send.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    config: SmtpConfig,
    sender: Mailbox,
    /// `host:port`, for error messages.
    server: String,
    builder: AsyncSmtpTransportBuilder,
    pool: Mutex<PoolSlot>,
}

/// The current pool, made on demand, and a generation number so that a send retires only the
/// pool it used (another send may have replaced it already).
#[derive(Default)]
struct PoolSlot {
    generation: u64,
    transport: Option<Transport>,
}

impl Mailer {
    /// Validates `config` and prepares the transport; connects only when the first mail is sent.
    pub fn new(config: SmtpConfig) -> Result<Mailer, String> {
        Mailer::connecting_to(config, None)
    }

    /// Like [`Mailer::new`], but connects to `address` (what the host name resolved to when
    /// an outbound policy checked it) rather than resolving the name again: a name whose DNS
    /// answer changes between the check and the connection (rebinding) cannot redirect mail
    /// to an internal server. TLS still verifies the certificate against the host name.
    pub fn connecting_to(config: SmtpConfig, address: Option<std::net::IpAddr>) -> Result<Mailer, String> {
        config.validate()?;
        let sender = message::parse_mailbox(&config.from).map_err(|e| format!("invalid sender address: {e}"))?;
        let tls_parameters = || {
            TlsParameters::new(config.host.clone()).map_err(|e| format!("cannot set up TLS for {}: {e}", config.host))
        };
        let tls = match config.security {
            Security::None => Tls::None,
            Security::StartTls => Tls::Required(tls_parameters()?),
            Security::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            address.map_or_else(|| config.host.clone(), |a| a.to_string()),
        )
        .port(config.port)
        .tls(tls)
        .timeout(Some(config.timeout()))
        .pool_config(PoolConfig::new().max_size(8).idle_timeout(Duration::from_secs(60)));
        if let Some(user) = &config.username {
            builder = builder.credentials(Credentials::new(user.clone(), config.password.clone().unwrap_or_default()));
        }
        let server = if config.host.contains(':') {
            format!("[{}]:{}", config.host, config.port)
        } else {
            format!("{}:{}", config.host, config.port)
        };
        Ok(Mailer { inner: Arc::new(Inner { config, sender, server, builder, pool: Mutex::new(PoolSlot::default()) }) })
    }

    /// The configuration this mailer was made from.
    pub fn config(&self) -> &SmtpConfig {
        &self.inner.config
    }

    /// Sends; Ok(message id). Addresses are validated first (a clear permanent error naming the
    /// bad one). 4xx/connection/timeouts → retryable; 5xx → permanent.
    ///
    /// The id is the `Message-ID` header's value, angle brackets included, as `In-Reply-To`
    /// wants it. A timeout after the message went out but before the server confirmed it is
    /// still retryable, so a retry may deliver twice: SMTP cannot tell.
    pub async fn send(&self, email: &Email) -> Result<String, SendError> {
        let built = message::build(email, &self.inner.sender)?;
        let (generation, transport) = self.checkout();
        let timeout = self.inner.config.timeout();
        match tokio::time::timeout(timeout, transport.send(built.message)).await {
            Ok(Ok(_response)) => Ok(built.message_id),
            Ok(Err(e)) => Err(SendError::from_smtp(&self.inner.server, &e)),
            Err(_elapsed) => {
                self.retire(generation);
                Err(SendError::retryable(format!(
                    "sending mail via {} timed out after {} ms",
                    self.inner.server,
                    timeout.as_millis()
                )))
            }
        }
    }

    /// Connects and logs in without sending anything, e.g. for a "test settings" button.
    pub async fn check(&self) -> Result<(), SendError> {
        let (generation, transport) = self.checkout();
        let timeout = self.inner.config.timeout();
        match tokio::time::timeout(timeout, transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(SendError::retryable(format!("{} did not answer NOOP", self.inner.server))),
            Ok(Err(e)) => Err(SendError::from_smtp(&self.inner.server, &e)),
            Err(_elapsed) => {
                self.retire(generation);
                Err(SendError::retryable(format!(
                    "connecting to {} timed out after {} ms",
                    self.inner.server,
                    timeout.as_millis()
                )))
            }
        }
    }

    /// The MIME text that would be sent (for tests and `--dry-run`).
    ///
    /// Each call makes a new `Message-ID`, `Date` and part boundaries.
    pub fn render(&self, email: &Email) -> Result<Vec<u8>, SendError> {
        Ok(message::build(email, &self.inner.sender)?.message.formatted())
    }

    /// The current pool, made now if there is none.
    fn checkout(&self) -> (u64, Transport) {
        let mut slot = self.inner.pool.lock().unwrap_or_else(|p| p.into_inner());
        let transport = slot.transport.get_or_insert_with(|| self.inner.builder.clone().build()).clone();
        (slot.generation, transport)
    }

    /// Drops pool `generation` (if it is still the current one) and closes its idle connections.
    fn retire(&self, generation: u64) {
        let retired = {
            let mut slot = self.inner.pool.lock().unwrap_or_else(|p| p.into_inner());
            if slot.generation != generation {
                return;
            }
            slot.generation += 1;
            slot.transport.take()
        };
        if let Some(transport) = retired {
            // Shut down rather than just dropped: sends still holding this pool then close
            // their connections when done instead of parking them in a pool nobody uses. QUIT
            // to a stuck server may never be answered, hence the bound.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(RETIRE_GRACE, transport.shutdown()).await;
            });
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let slot = self.pool.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(transport) = slot.transport.take()
            && tokio::runtime::Handle::try_current().is_err()
        {
            // Dropping lettre's pool spawns a task to close its connections, which panics
            // outside a runtime (a mailer outliving its runtime, at shutdown). Leaving the
            // sockets to the OS is the lesser evil.
            std::mem::forget(transport);
        }
    }
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::EmailAttachment;
    use mail_parser::MimeHeaders;

    fn mailer() -> Mailer {
        Mailer::new(SmtpConfig {
            host: "127.0.0.1".into(),
            port: 2525,
            security: Security::None,
            username: None,
            password: None,
            from: "Flowgate Ünïcode <flows@example.com>".into(),
            timeout_ms: None,
        })
        .unwrap()
    }

    fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(raw).expect("parses")
    }

    fn header_block(raw: &[u8]) -> String {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        text.split("\r\n\r\n").next().unwrap().to_string()
    }

    #[test]
    fn new_needs_no_runtime_and_checks_the_config() {
        let m = mailer();
        assert_eq!(m.config().port, 2525);
        let mut bad = m.config().clone();
        bad.from = "nobody".into();
        assert!(Mailer::new(bad).unwrap_err().contains("invalid sender"));
        // TLS settings are prepared up front, also without a runtime.
        let mut tls = m.config().clone();
        tls.security = Security::Tls;
        tls.host = "smtp.example.com".into();
        Mailer::new(tls).unwrap();
    }

    #[test]
    fn text_only_is_text_plain() {
        let raw = mailer()
            .render(&Email {
                to: vec!["a@x.com".into()],
                subject: "Hi".into(),
                text: Some("Hello\nthere".into()),
                ..Default::default()
            })
            .unwrap();
        assert!(raw.is_ascii(), "7-bit clean");
        let head = header_block(&raw);
        assert!(head.contains("Content-Type: text/plain; charset=utf-8"), "{head}");
        assert!(head.contains("Date: "), "{head}");
        assert!(head.contains("Message-ID: <"), "{head}");
        assert!(head.contains("@example.com>"), "{head}");
        assert!(head.contains("MIME-Version: 1.0"), "{head}");
        let m = parse(&raw);
        assert_eq!(m.body_text(0).unwrap().replace("\r\n", "\n"), "Hello\nthere");
        assert_eq!(m.from().unwrap().first().unwrap().name(), Some("Flowgate Ünïcode"));
    }

    #[test]
    fn html_only_is_text_html() {
        let raw = mailer()
            .render(&Email {
                to: vec!["a@x.com".into()],
                subject: "Hi".into(),
                html: Some("<p>Hello</p>".into()),
                text: Some("   ".into()),
                ..Default::default()
            })
            .unwrap();
        let head = header_block(&raw);
        assert!(head.contains("Content-Type: text/html; charset=utf-8"), "{head}");
    }

    #[test]
    fn both_bodies_are_alternatives_and_attachments_wrap_them() {
        let email = Email {
            to: vec!["a@x.com, b@y.com".into()],
            cc: vec!["Cé <c@z.org>".into()],
            bcc: vec!["hidden@secret.org".into()],
            reply_to: Some("replies@example.com".into()),
            subject: "Grüße aus Köln — ✓".into(),
            text: Some("Grüße".into()),
            html: Some("<b>Grüße</b>".into()),
            attachments: vec![EmailAttachment {
                filename: "bericht-ä.bin".into(),
                content_type: String::new(),
                content: vec![0, 159, 146, 150, 255],
            }],
            headers: vec![("X-Flowgate-Execution".into(), "exec-42".into())],
            ..Default::default()
        };
        let raw = mailer().render(&email).unwrap();
        assert!(raw.is_ascii(), "7-bit clean");
        let head = header_block(&raw);
        assert!(head.contains("Content-Type: multipart/mixed"), "{head}");
        assert!(!head.contains("Grüße"), "subject is encoded: {head}");
        assert!(!head.to_ascii_lowercase().contains("bcc"), "{head}");
        assert!(!head.contains("hidden@secret.org"), "{head}");
        let m = parse(&raw);
        assert_eq!(m.subject(), Some("Grüße aus Köln — ✓"));
        let to: Vec<_> = m.to().unwrap().iter().map(|a| a.address().unwrap().to_string()).collect();
        assert_eq!(to, ["a@x.com", "b@y.com"]);
        assert_eq!(m.cc().unwrap().first().unwrap().name(), Some("Cé"));
        assert_eq!(m.reply_to().unwrap().first().unwrap().address(), Some("replies@example.com"));
        assert_eq!(m.header_raw("X-Flowgate-Execution").map(str::trim), Some("exec-42"));
        assert_eq!(m.body_text(0).as_deref(), Some("Grüße"));
        assert_eq!(m.body_html(0).as_deref(), Some("<b>Grüße</b>"));
        let text = String::from_utf8(raw.clone()).unwrap();
        let mixed = text.find("multipart/mixed").unwrap();
        let alternative = text.find("multipart/alternative").unwrap();
        assert!(mixed < alternative, "the alternative sits inside the mixed part");
        let attachment = m.attachment(0).unwrap();
        assert_eq!(attachment.attachment_name(), Some("bericht-ä.bin"));
        assert_eq!(attachment.contents(), &[0, 159, 146, 150, 255]);
        let ct = attachment.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("octet-stream")));

        // The envelope is what the server gets: bcc included, each address once.
        let built = message::build(&email, &mailer().inner.sender).unwrap();
        let rcpt: Vec<_> = built.message.envelope().to().iter().map(|a| a.to_string()).collect();
        assert_eq!(rcpt, ["a@x.com", "b@y.com", "c@z.org", "hidden@secret.org"]);
        assert_eq!(built.message.envelope().from().unwrap().to_string(), "flows@example.com");
    }

    #[test]
    fn attachments_without_a_body_are_the_message() {
        let raw = mailer()
            .render(&Email {
                bcc: vec!["a@x.com".into()],
                attachments: vec![EmailAttachment {
                    filename: "a.csv".into(),
                    content_type: "text/csv".into(),
                    content: b"a,b\n1,2\n".to_vec(),
                }],
                ..Default::default()
            })
            .unwrap();
        let m = parse(&raw);
        assert_eq!(m.attachment_count(), 1);
        assert_eq!(m.attachment(0).unwrap().contents(), b"a,b\n1,2\n", "line endings untouched");
        assert!(m.to().is_none());
    }

    #[test]
    fn duplicate_recipients_get_one_rcpt_and_multiline_subjects_one_line() {
        let email = Email {
            to: vec!["a@x.com".into()],
            bcc: vec!["A@X.com".into()],
            subject: "one\r\ntwo\nthree".into(),
            ..Default::default()
        };
        let built = message::build(&email, &mailer().inner.sender).unwrap();
        assert_eq!(built.message.envelope().to().len(), 1);
        let raw = built.message.formatted();
        assert_eq!(parse(&raw).subject(), Some("one two three"));
    }

    #[test]
    fn bad_input_is_a_permanent_error_naming_what_is_wrong() {
        let base = Email { to: vec!["a@x.com".into()], subject: "s".into(), ..Default::default() };
        let m = mailer();
        let err = |f: &dyn Fn(&mut Email)| {
            let mut e = base.clone();
            f(&mut e);
            let err = m.render(&e).unwrap_err();
            assert!(!err.retryable, "{err}");
            assert_eq!(err.code, None);
            err.message
        };
        assert!(err(&|e| e.to = vec![]).contains("no recipients"));
        assert!(err(&|e| e.to = vec!["ok@x.com, broken@".into()]).contains("`broken@` in to"));
        assert!(err(&|e| e.cc = vec!["nope".into()]).contains("`nope` in cc"));
        assert!(err(&|e| e.bcc = vec!["a@x.com b@y.com".into()]).contains("in bcc"));
        assert!(err(&|e| e.reply_to = Some("x".into())).contains("in reply_to"));
        assert!(err(&|e| e.from = Some("me".into())).contains("invalid sender address `me`"));
        assert!(err(&|e| e.headers = vec![("Subject".into(), "x".into())]).contains("cannot be given"));
        assert!(err(&|e| e.headers = vec![("Bad Name".into(), "x".into())]).contains("not a valid header name"));
        assert!(err(&|e| e.headers = vec![("X-A".into(), "x\r\nBcc: e@vil.com".into())]).contains("line break"));
        let attachment =
            |name: &str, ct: &str| EmailAttachment { filename: name.into(), content_type: ct.into(), content: vec![1] };
        assert!(err(&|e| e.attachments = vec![attachment(" ", "")]).contains("attachment 1 has no filename"));
        assert!(err(&|e| e.attachments = vec![attachment("a", "not a type")]).contains("invalid content type"));
    }

    #[test]
    fn from_overrides_the_configured_sender() {
        let raw = mailer()
            .render(&Email {
                from: Some("Other <other@elsewhere.org>".into()),
                to: vec!["a@x.com".into()],
                ..Default::default()
            })
            .unwrap();
        let m = parse(&raw);
        assert_eq!(m.from().unwrap().first().unwrap().address(), Some("other@elsewhere.org"));
        assert!(m.message_id().unwrap().ends_with("@elsewhere.org"));
    }

    #[test]
    fn attachment_debug_shows_the_size_not_the_bytes() {
        let a = EmailAttachment { filename: "f".into(), content_type: String::new(), content: vec![7; 1000] };
        let shown = format!("{a:?}");
        assert!(shown.contains("<1000 bytes>"), "{shown}");
        assert!(shown.len() < 200);
    }
}
