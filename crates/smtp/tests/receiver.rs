//! The receiver over real TCP: a raw client for the whole dialogue (ordering errors, limits,
//! pipelining, timeouts, a failing owner) and Python's `smtplib` as an independent client
//! sending a multipart message with attachments and non-ASCII text, checked after parsing.

use flowgate_smtp::{Envelope, MailHandler, Reject, SmtpSettings, parse_message};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Accepts `…@in.example.com` except `nobody@…`; refuses the sender `spam@bad.example`; keeps
/// what it is given; fails deliveries while `failing` is set.
#[derive(Default)]
struct Recorder {
    delivered: Mutex<Vec<(Envelope, Vec<u8>)>>,
    failing: AtomicBool,
}

#[async_trait::async_trait]
impl MailHandler for Recorder {
    async fn recipient(&self, from: &str, rcpt: &str) -> Result<(), Reject> {
        if from == "spam@bad.example" {
            return Err(Reject::sender_refused("not from you"));
        }
        if rcpt.ends_with("@in.example.com") && !rcpt.starts_with("nobody@") {
            Ok(())
        } else {
            Err(Reject::unknown_recipient())
        }
    }

    async fn deliver(&self, envelope: &Envelope, message: bytes::Bytes) -> Result<(), Reject> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Reject::temporary("the store is down"));
        }
        self.delivered.lock().unwrap().push((envelope.clone(), message.to_vec()));
        Ok(())
    }
}

async fn start(settings: SmtpSettings) -> (SocketAddr, Arc<Recorder>, CancellationToken) {
    let (addr, rec, stop, _served) = start_serving(settings).await;
    (addr, rec, stop)
}

/// [`start`], with the task of `serve` to see it return.
async fn start_serving(
    settings: SmtpSettings,
) -> (SocketAddr, Arc<Recorder>, CancellationToken, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let handler: Arc<dyn MailHandler> = rec.clone();
    let served = tokio::spawn(flowgate_smtp::serve(listener, handler, settings, stop.clone()));
    (addr, rec, stop, served)
}

fn settings() -> SmtpSettings {
    SmtpSettings { hostname: "mx.test".into(), max_message_bytes: 2000, max_recipients: 3, ..SmtpSettings::default() }
}

/// A line-based client.
struct Client {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> (Client, String) {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Client { r: BufReader::new(r), w };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// One whole reply (all its lines), joined with `\n`.
    async fn reply(&mut self) -> String {
        let mut all = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.r.read_line(&mut line)).await.unwrap().unwrap();
            if n == 0 {
                return all.join("\n");
            }
            let line = line.trim_end().to_owned();
            let more = line.as_bytes().get(3) == Some(&b'-');
            all.push(line);
            if !more {
                return all.join("\n");
            }
        }
    }

    async fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }
}

fn code(reply: &str) -> &str {
    reply.get(..3).unwrap_or("")
}

#[tokio::test]
async fn a_whole_dialogue() {
    let (addr, rec, _stop) = start(settings()).await;
    let (mut c, greeting) = Client::connect(addr).await;
    assert!(greeting.starts_with("220 mx.test"), "{greeting}");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@acme.example>").await), "503", "EHLO first");
    let ehlo = c.cmd("EHLO client.test").await;
    for ext in ["250-mx.test", "SIZE 2000", "8BITMIME", "PIPELINING", "SMTPUTF8", "250 ENHANCEDSTATUSCODES"] {
        assert!(ehlo.contains(ext), "{ehlo}");
    }
    assert_eq!(code(&c.cmd("RCPT TO:<x@in.example.com>").await), "503", "MAIL first");
    assert_eq!(code(&c.cmd("DATA").await), "503");
    assert!(c.cmd("FROB").await.starts_with("500 5.5.2"));
    assert!(c.cmd("STARTTLS").await.starts_with("502 5.5.1"));
    assert!(c.cmd("MAIL FROM:a@acme.example").await.starts_with("501 5.5.4"));
    assert!(c.cmd("MAIL FROM:<not an address>").await.starts_with("501"));
    assert!(c.cmd("MAIL FROM:<a@acme.example> SIZE=5000").await.starts_with("552 5.3.4"));
    assert!(c.cmd("mail from:<a@acme.example> SIZE=100").await.starts_with("250 2.1.0"));
    assert_eq!(code(&c.cmd("MAIL FROM:<b@acme.example>").await), "503", "one transaction at a time");
    assert!(c.cmd("RCPT TO:<nobody@in.example.com>").await.starts_with("550 5.1.1"));
    assert!(c.cmd("RCPT TO:<x@elsewhere.example>").await.starts_with("550 5.1.1"));
    assert!(c.cmd("RCPT TO:<bad>").await.starts_with("501"));
    assert_eq!(code(&c.cmd("DATA").await), "503", "no valid recipients yet");
    assert!(c.cmd("RCPT TO:<orders@in.example.com>").await.starts_with("250 2.1.5"));
    assert!(c.cmd("RCPT TO:<Sales@In.Example.com>").await.starts_with("550"), "the owner decides on case");
    assert!(c.cmd("RCPT TO:<sales@in.example.com>").await.starts_with("250"));
    assert_eq!(code(&c.cmd("DATA").await), "354");
    c.send("Subject: one\r\n\r\nhello\r\n..leading dot\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0"));
    {
        let d = rec.delivered.lock().unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0.from, "a@acme.example");
        assert_eq!(d[0].0.recipients, vec!["orders@in.example.com", "sales@in.example.com"]);
        assert_eq!(d[0].0.helo, "client.test");
        assert_eq!(d[0].1, b"Subject: one\r\n\r\nhello\r\n.leading dot\r\n", "dot-unstuffed, CRLF");
    }
    // A second message on the same connection; RSET drops a transaction.
    assert_eq!(code(&c.cmd("MAIL FROM:<>").await), "250", "the null sender");
    assert!(c.cmd("RSET").await.starts_with("250"));
    assert_eq!(code(&c.cmd("RCPT TO:<orders@in.example.com>").await), "503");
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    assert_eq!(code(&c.cmd("VRFY orders").await), "252");
    assert_eq!(code(&c.cmd("HELP").await), "214");
    // Too many recipients.
    c.cmd("MAIL FROM:<a@acme.example>").await;
    for i in 0..3 {
        assert_eq!(code(&c.cmd(&format!("RCPT TO:<r{i}@in.example.com>")).await), "250");
    }
    assert!(c.cmd("RCPT TO:<r9@in.example.com>").await.starts_with("452 4.5.3"));
    assert!(c.cmd("RSET").await.starts_with("250"));
    // A refused sender.
    c.cmd("MAIL FROM:<spam@bad.example>").await;
    assert!(c.cmd("RCPT TO:<orders@in.example.com>").await.starts_with("550 5.7.1"));
    c.cmd("RSET").await;
    // An oversized message (no SIZE announced): read to the end, refused, connection usable.
    c.cmd("MAIL FROM:<a@acme.example>").await;
    c.cmd("RCPT TO:<orders@in.example.com>").await;
    assert_eq!(code(&c.cmd("DATA").await), "354");
    let big = "x".repeat(100);
    for _ in 0..50 {
        c.send(&format!("{big}\r\n")).await;
    }
    c.send(".\r\n").await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    assert_eq!(code(&c.cmd("NOOP").await), "250", "still usable");
    // A long command line.
    assert!(c.cmd(&format!("NOOP {}", "y".repeat(5000))).await.starts_with("500 5.5.6"));
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    // The owner cannot store it: 451, nothing kept, the client may retry.
    rec.failing.store(true, Ordering::SeqCst);
    c.cmd("MAIL FROM:<a@acme.example>").await;
    c.cmd("RCPT TO:<orders@in.example.com>").await;
    c.cmd("DATA").await;
    c.send("Subject: two\r\n\r\nbody\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("451 4.3.0"));
    rec.failing.store(false, Ordering::SeqCst);
    assert_eq!(rec.delivered.lock().unwrap().len(), 1);
    assert!(c.cmd("QUIT").await.starts_with("221"));
}

#[tokio::test]
async fn pipelined_commands_in_one_write() {
    let (addr, rec, _stop) = start(settings()).await;
    let (mut c, _) = Client::connect(addr).await;
    c.cmd("EHLO pipe.test").await;
    c.send("MAIL FROM:<p@acme.example>\r\nRCPT TO:<a@in.example.com>\r\nRCPT TO:<nobody@in.example.com>\r\nRCPT TO:<b@in.example.com>\r\nDATA\r\n").await;
    let replies: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(c.reply().await);
        }
        v
    };
    let codes: Vec<&str> = replies.iter().map(|r| code(r)).collect();
    assert_eq!(codes, ["250", "250", "550", "250", "354"], "{replies:?}");
    c.send("Subject: piped\r\n\r\nok\r\n.\r\nQUIT\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    assert!(c.reply().await.starts_with("221"));
    let d = rec.delivered.lock().unwrap();
    assert_eq!(d[0].0.recipients, vec!["a@in.example.com", "b@in.example.com"]);
}

#[tokio::test]
async fn idle_connections_are_closed_and_shutdown_says_421() {
    let (addr, _rec, stop) = start(SmtpSettings { command_timeout: Duration::from_millis(300), ..settings() }).await;
    let (mut c, _) = Client::connect(addr).await;
    let idle = c.reply().await;
    assert!(idle.starts_with("421 4.4.2"), "{idle}");
    let (mut c, _) = Client::connect(addr).await;
    c.cmd("EHLO x").await;
    stop.cancel();
    let bye = c.reply().await;
    assert!(bye.starts_with("421 4.3.2"), "{bye}");
}

#[tokio::test]
async fn too_many_connections_get_421() {
    let (addr, _rec, _stop) = start(SmtpSettings { max_connections: 1, ..settings() }).await;
    let (_first, g) = Client::connect(addr).await;
    assert!(g.starts_with("220"));
    let (_second, g) = Client::connect(addr).await;
    assert!(g.starts_with("421 4.3.2"), "{g}");
}

/// The message Python's `email` package builds: text + HTML alternative, two attachments.
const PY_SEND: &str = r#"
import smtplib, sys
from email.message import EmailMessage
from email.headerregistry import Address
port = int(sys.argv[1])
m = EmailMessage()
m["From"] = Address("Åse Ødegård", "ase", "acme.example")
m["To"] = "Orders <orders@in.example.com>"
m["Cc"] = "sales@in.example.com"
m["Subject"] = "Grüße aus Oslo – ½ €"
m["Message-ID"] = "<py-1@acme.example>"
m["Date"] = "Tue, 01 Dec 2026 09:30:00 +0100"
m.set_content("Hei! Ordre nr. 42 – se vedlegg.\n")
m.add_alternative("<p>Hei! Ordre <b>nr. 42</b></p>\n", subtype="html")
m.add_attachment(bytes(range(256)) * 4, maintype="application", subtype="pdf", filename="ordre-42.pdf")
m.add_attachment("sku;qty\nA-1;10\n", filename="linjer.csv", subtype="csv")
with smtplib.SMTP("127.0.0.1", port) as s:
    s.send_message(m, from_addr="ase@acme.example", to_addrs=["orders@in.example.com", "sales@in.example.com"])
    try:
        s.sendmail("ase@acme.example", ["nobody@in.example.com"], "Subject: x\r\n\r\nx\r\n")
        print("unexpected: accepted")
    except smtplib.SMTPRecipientsRefused as e:
        print("refused", e.recipients["nobody@in.example.com"][0])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_sends_a_multipart_message() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 not found");
        return;
    }
    let (addr, rec, _stop) = start(SmtpSettings { max_message_bytes: 1 << 20, ..settings() }).await;
    let out =
        tokio::process::Command::new("python3").args(["-c", PY_SEND, &addr.port().to_string()]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "refused 550", "an unknown recipient is refused with 550");
    let (envelope, raw) = rec.delivered.lock().unwrap()[0].clone();
    assert_eq!(envelope.from, "ase@acme.example");
    assert_eq!(envelope.recipients, vec!["orders@in.example.com", "sales@in.example.com"]);
    let v = parse_message(&raw).unwrap();
    assert_eq!(v["subject"], "Grüße aus Oslo – ½ €");
    assert_eq!(v["from"]["name"], "Åse Ødegård");
    assert_eq!(v["from"]["address"], "ase@acme.example");
    assert_eq!(v["to"][0]["address"], "orders@in.example.com");
    assert_eq!(v["cc"][0]["address"], "sales@in.example.com");
    assert_eq!(v["messageId"], "py-1@acme.example");
    assert_eq!(v["date"], "2026-12-01T08:30:00Z");
    assert_eq!(v["text"].as_str().unwrap().trim_end(), "Hei! Ordre nr. 42 – se vedlegg.");
    assert_eq!(v["html"].as_str().unwrap().trim_end(), "<p>Hei! Ordre <b>nr. 42</b></p>");
    let atts = v["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 2, "{atts:#?}");
    use base64::Engine as _;
    let b64 = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(x);
    let pdf: Vec<u8> = (0..=255u8).cycle().take(1024).collect();
    assert_eq!(atts[0]["filename"], "ordre-42.pdf");
    assert_eq!(atts[0]["contentType"], "application/pdf");
    assert_eq!(atts[0]["size"], 1024);
    assert_eq!(atts[0]["content"], b64(&pdf), "the decoded bytes, exactly");
    assert_eq!(atts[1]["filename"], "linjer.csv");
    assert_eq!(atts[1]["contentType"], "text/csv");
    // A text part travels with CRLF line ends (its canonical form), whatever the sender had.
    assert_eq!(atts[1]["content"], b64(b"sku;qty\r\nA-1;10\r\n"));
    assert!(v["headers"]["mime-version"].is_string(), "{}", v["headers"]);
}
