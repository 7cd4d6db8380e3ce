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
        self.send_bytes(text.as_bytes()).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
    }

    /// Whether the server closed the connection (no more replies).
    async fn closed(&mut self) -> bool {
        let mut rest = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.r.read_line(&mut rest))
            .await
            .unwrap()
            .map_or(true, |n| n == 0)
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
        skip_or_fail("python3 not found");
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

#[tokio::test]
async fn bare_lf_dot_lines_and_a_second_message() {
    let (addr, rec, _stop) = start(settings()).await;
    let (mut c, _) = Client::connect(addr).await;
    // Bare LF after commands too.
    c.send("ehlo lf.test\n").await;
    assert!(c.reply().await.ends_with("250 ENHANCEDSTATUSCODES"));
    assert_eq!(code(&c.cmd("MAIL FROM:<a@acme.example> BODY=8BITMIME SMTPUTF8").await), "250");
    assert!(c.cmd("RCPT TO:<orders@in.example.com>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<orders@in.example.com>").await.starts_with("250"), "a repeat is no error");
    assert_eq!(code(&c.cmd("DATA").await), "354");
    c.send("Subject: lf\n\nline one\n..\n...two\n. not the end\nend.\n.\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0"));
    // The second message on the same connection, with CRLF, an empty body and an 8-bit byte.
    c.cmd("MAIL FROM:<b@acme.example>").await;
    c.cmd("RCPT TO:<sales@in.example.com>").await;
    c.cmd("DATA").await;
    c.send_bytes(b"Subject: two\r\nX-Bytes: \xe6\xf8\xe5\r\n\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250"));
    let d = rec.delivered.lock().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].0.recipients, vec!["orders@in.example.com"], "one recipient, given twice");
    assert_eq!(d[0].1, b"Subject: lf\r\n\r\nline one\r\n.\r\n..two\r\n not the end\r\nend.\r\n");
    assert_eq!(
        (d[1].0.from.as_str(), d[1].0.recipients.as_slice()),
        ("b@acme.example", &["sales@in.example.com".to_owned()][..])
    );
    assert_eq!(d[1].1, b"Subject: two\r\nX-Bytes: \xe6\xf8\xe5\r\n\r\n");
}

#[tokio::test]
async fn addresses_and_parameters_are_checked() {
    let (addr, rec, _stop) = start(settings()).await;
    let (mut c, _) = Client::connect(addr).await;
    c.cmd("EHLO check.test").await;
    for bad in
        ["<a@>", "<@acme.example>", "<a@acme..example>", "<a b@acme.example>", "<a@acme.example", "<<a@acme.example>>"]
    {
        assert_eq!(code(&c.cmd(&format!("MAIL FROM:{bad}")).await), "501", "{bad}");
    }
    assert!(c.cmd("MAIL FROM:<a@acme.example> SIZE=abc").await.starts_with("501 5.5.4"));
    assert!(c.cmd("MAIL FROM:<a@acme.example> BODY=BINARYMIME").await.starts_with("501 5.5.4"));
    assert!(c.cmd("MAIL FROM:<a@acme.example> RET=HDRS").await.starts_with("555 5.5.4"), "DSN is not offered");
    assert!(c.cmd("MAIL FROM:<@relay.example:a@acme.example>").await.starts_with("250"), "a source route is dropped");
    assert!(c.cmd("RCPT TO:<>").await.starts_with("501"));
    assert!(c.cmd("RCPT TO:<orders@in.example.com> NOTIFY=NEVER").await.starts_with("555"));
    assert!(c.cmd("RCPT TO:<Postmaster>").await.starts_with("550 5.1.1"), "taken, then refused by the owner");
    assert!(c.cmd("RCPT TO: <orders@in.example.com>").await.starts_with("250"), "a space after the colon");
    assert!(c.cmd("DATA now").await.starts_with("501"));
    assert!(c.cmd("HELO").await.starts_with("501"));
    assert!(c.cmd("").await.starts_with("500 5.5.2"));
    c.cmd("RSET").await;
    assert_eq!(code(&c.cmd("DATA").await), "503", "RSET ended the transaction");
    assert!(rec.delivered.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_connection_closed_mid_message_delivers_nothing() {
    let (addr, rec, _stop) = start(settings()).await;
    let (mut c, _) = Client::connect(addr).await;
    c.cmd("EHLO cut.test").await;
    c.cmd("MAIL FROM:<a@acme.example>").await;
    c.cmd("RCPT TO:<orders@in.example.com>").await;
    c.cmd("DATA").await;
    c.send("Subject: cut\r\n\r\nhalf a mess").await;
    drop(c);
    // A moment for the receiver to see the end of the connection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The receiver is still there; the half message was not delivered.
    let (mut c, _) = Client::connect(addr).await;
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    assert!(rec.delivered.lock().unwrap().is_empty());
}

#[tokio::test]
async fn junk_gets_5xx_and_never_breaks_the_receiver() {
    const PIECES: &[&[u8]] = &[
        b"MAIL",
        b"RCPT",
        b"EHLO",
        b"HELO",
        b"RSET",
        b"VRFY",
        b"NOOP",
        b"HELP",
        b"DATA x",
        b"FROM:",
        b"TO:",
        b"<",
        b">",
        b"<>",
        b"@",
        b":",
        b" ",
        b"=",
        b"SIZE=",
        b"999999999999999999999999",
        b"\x00",
        b"\xff\xfe",
        b"\xc3\x28",
        b"\r",
        b"\t",
        b".",
        b"..",
        "æøå".as_bytes(),
        b"a@b.example",
        b"%s%n",
        b"\x1b[2J",
    ];
    let (addr, _rec, _stop) = start(settings()).await;
    let (mut c, _) = Client::connect(addr).await;
    let mut seed: u64 = 0x5eed;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n
    };
    let mut junk = Vec::new();
    let lines = 300;
    for _ in 0..lines {
        for _ in 0..next(8) {
            junk.extend_from_slice(PIECES[next(PIECES.len())]);
        }
        if next(50) == 0 {
            junk.extend(std::iter::repeat_n(b'z', 5000));
        }
        junk.extend_from_slice(b"\r\n");
    }
    c.send_bytes(&junk).await;
    c.send("NOOP\r\n").await;
    for i in 0..lines {
        let r = c.reply().await;
        assert!(r.len() >= 4 && matches!(&r[..1], "2" | "5"), "reply {i} to junk: {r:?}");
    }
    assert_eq!(code(&c.reply().await), "250", "the NOOP after the junk");
    let (mut other, greeting) = Client::connect(addr).await;
    assert!(greeting.starts_with("220"));
    assert_eq!(code(&other.cmd("QUIT").await), "221");
    assert!(other.closed().await);
}

#[tokio::test]
async fn shutdown_gives_open_transactions_their_grace() {
    let grace = Duration::from_millis(400);
    let (addr, rec, stop, served) = start_serving(SmtpSettings { shutdown_grace: grace, ..settings() }).await;
    let (mut idle, _) = Client::connect(addr).await;
    idle.cmd("EHLO idle.test").await;
    let (mut busy, _) = Client::connect(addr).await;
    busy.cmd("EHLO busy.test").await;
    busy.cmd("MAIL FROM:<a@acme.example>").await;
    busy.cmd("RCPT TO:<orders@in.example.com>").await;
    let (mut stalled, _) = Client::connect(addr).await;
    stalled.cmd("EHLO stalled.test").await;
    stalled.cmd("MAIL FROM:<a@acme.example>").await;
    stalled.cmd("RCPT TO:<orders@in.example.com>").await;
    assert_eq!(code(&stalled.cmd("DATA").await), "354");
    stalled.send("Subject: never finished\r\n").await;

    let asked = tokio::time::Instant::now();
    stop.cancel();
    assert!(idle.reply().await.starts_with("421 4.3.2"), "idle: at once");
    assert!(asked.elapsed() < grace);
    // The open transaction may finish, and is told 421 only after.
    assert_eq!(code(&busy.cmd("DATA").await), "354");
    busy.send("Subject: just in time\r\n\r\nok\r\n.\r\n").await;
    assert!(busy.reply().await.starts_with("250"));
    assert!(busy.reply().await.starts_with("421 4.3.2"), "no transaction left: at once");
    // The stalled one is cut off at the end of the grace.
    assert!(stalled.reply().await.starts_with("421 4.3.2"));
    assert!(asked.elapsed() >= grace);
    tokio::time::timeout(Duration::from_secs(5), served).await.unwrap().unwrap().unwrap();
    assert!(asked.elapsed() < grace * 3, "serve returns once the conversations are over");
    assert_eq!(rec.delivered.lock().unwrap().len(), 1);
    assert!(idle.closed().await && busy.closed().await && stalled.closed().await);
}

/// `swaks` (a Perl SMTP test tool) as a third client, where it is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_sends_a_message() {
    if std::process::Command::new("swaks").arg("--version").output().is_err() {
        skip_or_fail("swaks not found");
        return;
    }
    let (addr, rec, _stop) = start(settings()).await;
    let server = addr.to_string();
    let out = tokio::process::Command::new("swaks")
        .args([
            "--server",
            &server,
            "--helo",
            "swaks.test",
            "--from",
            "s@acme.example",
            "--to",
            "orders@in.example.com",
        ])
        .args(["--header", "Subject: via swaks", "--body", "hello from swaks\n.line with a dot", "--pipeline"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "swaks: {}", String::from_utf8_lossy(&out.stdout));
    let (envelope, raw) = rec.delivered.lock().unwrap()[0].clone();
    assert_eq!((envelope.from.as_str(), envelope.helo.as_str()), ("s@acme.example", "swaks.test"));
    let v = parse_message(&raw).unwrap();
    assert_eq!(v["subject"], "via swaks");
    assert_eq!(v["text"].as_str().unwrap().trim_end(), "hello from swaks\r\n.line with a dot");
}

/// Says a test is skipped because `why` (a service or tool is missing), or fails it when
/// `FLOWGATE_REQUIRE_SERVICES=1` (CI sets it: a half that did not run must not pass).
#[allow(dead_code)]
fn skip_or_fail(why: &str) {
    if std::env::var("FLOWGATE_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("FLOWGATE_REQUIRE_SERVICES=1, but {why}");
    }
    eprintln!("skipped: {why}");
}
