//! Inbound e-mail (issue 5) through the server's SMTP receiver: a real client session ends in
//! an execution whose `$trigger` holds the parsed message (Python's `smtplib` sends a
//! multipart message with attachments and a non-ASCII subject); unknown, switched-off and
//! refused addresses get 550, oversized messages 552; addresses are unique.

#[macro_use]
mod common;

use common::{TestServer, eventually};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const MAIL: &str = r#"
integration: mail
flows:
  - flow: orders
    trigger: { email: {} }
    steps:
      - id: order
        transform: >-
          { subject: .body.subject, from: .body.from.address, to: $trigger.envelope.to,
            files: [.body.attachments[] | .filename] }
  - flow: vendors
    trigger: { email: { address: Vendors@In.Example.com, allowFrom: ["*@acme.example"] } }
    steps: [ { id: s, transform: '.body.subject' } ]
"#;

async fn start(max_email_bytes: usize) -> TestServer {
    TestServer::start_with(move |s| {
        s.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
        s.smtp_domain = Some("in.example.com".into());
        s.max_email_bytes = max_email_bytes;
    })
    .await
}

async fn executions(s: &TestServer, flow: &str) -> Vec<Value> {
    let page = s.get_json(&format!("/v1/executions?integration=mail&flow={flow}&limit=100")).await;
    let mut out = Vec::new();
    for e in page["items"].as_array().unwrap() {
        out.push(s.execution(e["id"].as_str().unwrap()).await);
    }
    out
}

const PY_SEND: &str = r#"
import smtplib, sys
from email.message import EmailMessage
port, to = int(sys.argv[1]), sys.argv[2]
m = EmailMessage()
m["From"] = "Åse Ødegård <ase@acme.example>"
m["To"] = to
m["Subject"] = "Bestilling – Grüße ½ €"
m.set_content("Ordre 42, se vedlegg.\n")
m.add_attachment(bytes(range(200)), maintype="application", subtype="octet-stream", filename="ordre.bin")
with smtplib.SMTP("127.0.0.1", port) as s:
    s.send_message(m)
print("sent")
"#;

backends!(a_mail_becomes_an_execution);
/// A multipart message with an attachment, sent by `smtplib` to the flow's derived address
/// (shown on the flow), becomes one execution of that flow with the parsed message.
async fn a_mail_becomes_an_execution() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        common::skip_or_fail("python3 not found");
        return;
    }
    let s = start(1 << 20).await;
    s.apply(MAIL).await;
    let flow = s.get_json("/v1/integrations/mail/flows/orders").await;
    let address = flow["inboundEmailAddress"].as_str().unwrap().to_owned();
    assert_eq!(address, "orders.mail.default@in.example.com");
    assert_eq!(flow["trigger"]["kind"], "email");
    let listed = s.get_json("/v1/integrations/mail").await;
    assert_eq!(listed["flows"][1]["inboundEmailAddress"], "vendors@in.example.com", "explicit, lower case");

    let port = s.smtp.unwrap().port().to_string();
    let out = tokio::process::Command::new("python3").args(["-c", PY_SEND, &port, &address]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The 250 came after the commit: the execution is there at once.
    let list = executions(&s, "orders").await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let ex = s.wait_for(list[0]["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(ex["triggerKind"], "email");
    assert_eq!(
        ex["output"],
        json!({ "subject": "Bestilling – Grüße ½ €", "from": "ase@acme.example", "to": [address], "files": ["ordre.bin"] })
    );
    let body = &ex["trigger"]["body"];
    assert_eq!(body["from"]["name"], "Åse Ødegård");
    assert_eq!(body["text"].as_str().unwrap().trim_end(), "Ordre 42, se vedlegg.");
    assert_eq!(body["attachments"][0]["size"], 200);
    use base64::Engine as _;
    let want = base64::engine::general_purpose::STANDARD.encode((0..200u8).collect::<Vec<_>>());
    assert_eq!(body["attachments"][0]["content"], want);
    assert_eq!(ex["trigger"]["envelope"]["from"], "ase@acme.example");
}

/// A bare SMTP client.
struct Smtp {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Smtp {
    async fn connect(addr: SocketAddr) -> Smtp {
        let (r, w) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Smtp { r: BufReader::new(r), w };
        assert!(c.reply().await.starts_with("220"));
        assert!(c.cmd("EHLO test.client").await.starts_with("250"));
        c
    }

    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(5), self.r.read_line(&mut line)).await.unwrap().unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.w.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        self.reply().await
    }

    /// A whole transaction; the reply to RCPT if refused, else to the end of DATA.
    async fn send(&mut self, from: &str, to: &str, message: &str) -> String {
        assert!(self.cmd(&format!("MAIL FROM:<{from}>")).await.starts_with("250"));
        let rcpt = self.cmd(&format!("RCPT TO:<{to}>")).await;
        if !rcpt.starts_with("250") {
            self.cmd("RSET").await;
            return rcpt;
        }
        assert!(self.cmd("DATA").await.starts_with("354"));
        self.w.write_all(format!("{message}\r\n.\r\n").as_bytes()).await.unwrap();
        self.reply().await
    }
}

backends!(refusals_and_unique_addresses);
/// Unknown addresses, senders outside `allowFrom`, switched-off flows: 550 and nothing runs.
/// Oversized messages: 552. Accepted ones run, addressed case-insensitively. An explicit
/// address another integration holds is a 409 when applied.
async fn refusals_and_unique_addresses() {
    let s = start(600).await;
    s.apply(MAIL).await;
    let mut c = Smtp::connect(s.smtp.unwrap()).await;
    let msg = "Subject: hello\r\n\r\nhi";
    assert!(c.send("a@acme.example", "nobody@in.example.com", msg).await.starts_with("550 5.1.1"));
    assert!(c.send("x@other.example", "vendors@in.example.com", msg).await.starts_with("550 5.7.1"));
    assert!(c.send("a@acme.example", "VENDORS@in.example.com", msg).await.starts_with("250"));
    let big = format!("Subject: big\r\n\r\n{}", "z".repeat(700));
    assert!(c.send("a@acme.example", "vendors@in.example.com", &big).await.starts_with("552 5.3.4"));
    let list = eventually("the accepted mail to run", || async {
        let l = executions(&s, "vendors").await;
        (l.len() == 1 && l[0]["status"] == "succeeded").then_some(l)
    })
    .await;
    assert_eq!(list[0]["output"], "hello");

    let (status, _, v) =
        common::send(s.api(reqwest::Method::POST, "/v1/integrations/mail/flows/vendors/deactivate")).await;
    assert_eq!(status, 200, "{v}");
    assert!(c.send("a@acme.example", "vendors@in.example.com", msg).await.starts_with("550 5.1.1"));
    assert_eq!(executions(&s, "vendors").await.len(), 1);
    assert!(c.cmd("QUIT").await.starts_with("221"));

    let clash = r#"
integration: other
flows:
  - flow: grab
    trigger: { email: { address: vendors@in.example.com } }
    steps: [ { id: s, transform: '.' } ]
"#;
    let (status, v) = s.put_integration("other", clash).await;
    assert_eq!(status, 409, "{v}");
    common::assert_error(&v, "conflict");
    assert!(v["error"]["message"].as_str().unwrap().contains("vendors@in.example.com"), "{v}");
    let bad = r#"
integration: bad
flows:
  - flow: f
    trigger: { email: { address: "not an address" } }
    steps: [ { id: s, transform: '.' } ]
"#;
    let (status, v) = s.put_integration("bad", bad).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["details"]["problems"][0]["path"], "flows[0].trigger.email.address", "{v}");
}
