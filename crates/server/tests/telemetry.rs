//! Telling people and SIEMs (issue 7): the `email` step and failure / recovery notifications
//! received by a real SMTP server (Python's aiosmtpd, started here) and checked as MIME, the
//! notification digest past the per-window limit (a manual clock moves the window), and flow
//! events streamed to log sources received by a UDP syslog socket, an HTTP collector and a
//! file — with secrets redacted.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, eventually, send};
use flowgate_engine::{Clock, ManualClock};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The aiosmtpd process, killed when the test ends.
struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aiosmtpd() -> bool {
    let ok = || Command::new("python3").args(["-c", "import aiosmtpd"]).output().is_ok_and(|o| o.status.success());
    if ok() {
        return true;
    }
    let _ = Command::new("python3").args(["-m", "pip", "install", "--quiet", "aiosmtpd"]).output();
    ok()
}

impl SmtpSink {
    fn start() -> Option<SmtpSink> {
        if !aiosmtpd() {
            common::skip_or_fail("aiosmtpd is not available (pip install aiosmtpd)");
            return None;
        }
        // Not common::MockUpstream: this reserves a port for aiosmtpd, an SMTP server, not an HTTP upstream.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let child = Command::new("python3")
            .args([script, &port.to_string(), dir.path().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(SmtpSink { child, dir, port })
    }

    /// Every message received so far, parsed: (envelope, parsed MIME).
    fn messages(&self) -> Vec<(Value, Value)> {
        let mut out = Vec::new();
        for n in 1.. {
            let base = self.dir.path().join(format!("msg-{n}"));
            let (Ok(env), Ok(raw)) =
                (std::fs::read_to_string(base.with_extension("json")), std::fs::read(base.with_extension("eml")))
            else {
                break;
            };
            out.push((serde_json::from_str(&env).unwrap(), flowgate_smtp::parse_message(&raw).unwrap()));
        }
        out
    }
}

const NOTES: &str = r#"
integration: notes
config:
  ownerEmail: { type: string, default: "owner@acme.example" }
flows:
  - flow: mailer
    trigger: { webhook: { path: notes/mail } }
    steps:
      - id: mail
        email:
          to: "{{ $config.ownerEmail }}, Team <team@acme.example>"
          bcc: [ "audit@acme.example" ]
          subject: "Order {{ $trigger.body.order }} – bekreftet ✓"
          text: "Order {{ $trigger.body.order }} is confirmed."
          html: "<p>Order <b>{{ $trigger.body.order }}</b> is confirmed.</p>"
          attachments: [ { filename: order.csv, contentType: text/csv, text: "order;qty\n{{ $trigger.body.order }};2\n" } ]
  - flow: broken
    notifyEmails: "ops@acme.example, Dev Team <dev@acme.example>"
    notifyOnRecovery: true
    trigger: { webhook: { path: notes/broken } }
    steps:
      - id: check
        transform: 'if $trigger.body.fail then error("the ERP refused order \($trigger.body.n)") else . end'
"#;

async fn start_on(clock: Arc<ManualClock>, sink: &SmtpSink) -> TestServer {
    let relay = format!("smtp://127.0.0.1:{}?from=Flowgate%20%3Cflows%40example.com%3E", sink.port);
    TestServer::start_with(move |s| {
        s.clock = Some(clock);
        s.trigger_tick = Duration::from_millis(20);
        s.smtp_relay = Some(relay);
    })
    .await
}

async fn hook(s: &TestServer, path: &str, body: Value) -> String {
    let (status, _, v) = send(s.post_hook(path).json(&body)).await;
    assert_eq!(status, 202, "{v}");
    v["executionId"].as_str().unwrap().to_owned()
}

async fn wait_mails(sink: &SmtpSink, n: usize) -> Vec<(Value, Value)> {
    eventually(&format!("{n} e-mails"), || async {
        let m = sink.messages();
        (m.len() >= n).then_some(m)
    })
    .await
}

backends!(email_steps_and_notifications_reach_a_real_smtp_server);
async fn email_steps_and_notifications_reach_a_real_smtp_server() {
    let Some(sink) = SmtpSink::start() else { return };
    let clock = Arc::new(ManualClock::new(1_767_571_200_000));
    let s = start_on(clock.clone(), &sink).await;
    s.apply(NOTES).await;

    // The email step.
    let id = hook(&s, "notes/mail", json!({ "order": 42 })).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["output"]["status"], "queued");
    let mails = wait_mails(&sink, 1).await;
    let (env, m) = &mails[0];
    assert_eq!(env["rcpt_tos"], json!(["owner@acme.example", "team@acme.example", "audit@acme.example"]));
    assert_eq!(m["subject"], "Order 42 – bekreftet ✓");
    assert_eq!(m["from"]["address"], "flows@example.com");
    assert_eq!(m["to"].as_array().unwrap().len(), 2);
    assert!(m["headers"].get("bcc").is_none(), "bcc is not in the headers");
    assert_eq!(m["text"].as_str().unwrap().trim(), "Order 42 is confirmed.");
    assert!(m["html"].as_str().unwrap().contains("<b>42</b>"));
    assert_eq!(m["attachments"][0]["filename"], "order.csv");
    assert_eq!(m["headers"]["x-flowgate-execution"], id.as_str());
    let delivery = eventually("the e-mail's delivery to be recorded", || async {
        let ex = s.execution(&id).await;
        (ex["deliveries"][0]["status"] == "delivered").then_some(ex["deliveries"][0].clone())
    })
    .await;
    assert_eq!(delivery["kind"], "email");

    // A failure: the operators are told, with what failed and where to look.
    let failed = hook(&s, "notes/broken", json!({ "fail": true, "n": 1 })).await;
    s.wait_for(&failed, "failed").await;
    let mails = wait_mails(&sink, 2).await;
    let (env, m) = &mails[1];
    assert_eq!(env["rcpt_tos"], json!(["ops@acme.example", "dev@acme.example"]));
    assert_eq!(m["subject"], "[Flowgate] notes / broken failed");
    let text = m["text"].as_str().unwrap();
    for want in [
        failed.as_str(),
        "Failed step: check",
        "expression_error",
        "the ERP refused order 1",
        &format!("/v1/executions/{failed}"),
    ] {
        assert!(text.contains(want), "`{want}` is not in: {text}");
    }
    // The flow recovers: told once more.
    let ok = hook(&s, "notes/broken", json!({ "fail": false })).await;
    s.wait_for(&ok, "succeeded").await;
    let mails = wait_mails(&sink, 3).await;
    assert_eq!(mails[2].1["subject"], "[Flowgate] notes / broken succeeds again");
    let ok2 = hook(&s, "notes/broken", json!({ "fail": false })).await;
    s.wait_for(&ok2, "succeeded").await;

    // An outage: after the window's limit, failures go into one digest, sent when the
    // window ends.
    let mut outage = Vec::new();
    for n in 2..=9 {
        let id = hook(&s, "notes/broken", json!({ "fail": true, "n": n })).await;
        s.wait_for(&id, "failed").await;
        outage.push(id);
    }
    // Every failure's notification is settled (mailed, or folded into the digest): no
    // individual mail is still to come for any of them.
    for id in &outage {
        eventually(&format!("the notification of {id} to settle"), || async {
            let d = s.execution(id).await["deliveries"][0].clone();
            d["status"].as_str().is_some_and(|st| st != "pending").then_some(())
        })
        .await;
    }
    let individual = sink.messages().iter().filter(|(_, m)| m["subject"] == "[Flowgate] notes / broken failed").count();
    assert!(individual <= 5, "at most 5 individual failure mails per window, got {individual}");
    // A failure folded into the digest is not shown as delivered: no mail went out for it
    // (the recovery mail above did not count against the 5 either).
    assert_eq!(individual, 5, "the first failure, then 4 more: the recovery mail does not count against the 5");
    let last = outage.last().unwrap();
    let folded = eventually("the last failure's notification to settle", || async {
        let d = s.execution(last).await["deliveries"][0].clone();
        (d["status"] != "pending").then_some(d)
    })
    .await;
    assert_eq!(folded["status"], "digested", "{folded}");
    assert!(folded["response"]["digestedInto"].as_str().is_some_and(|d| d.starts_with("digest:")), "{folded}");
    assert_eq!(sink.messages().len(), 2 + individual, "nothing else yet: {:#?}", sink.messages());
    clock.advance(Duration::from_secs(3600));
    let all = eventually("the digest", || async {
        let m = sink.messages();
        m.iter().any(|(_, m)| m["subject"].as_str().is_some_and(|s| s.contains("failures digest"))).then_some(m)
    })
    .await;
    let digest = &all.iter().find(|(_, m)| m["subject"].as_str().unwrap().contains("digest")).unwrap().1;
    let text = digest["text"].as_str().unwrap();
    assert!(text.contains("executions of flow broken (integration notes) failed between"), "{text}");
    assert!(clock.now_ms() > 0);
}

backends!(a_tenant_sends_through_its_own_smtp_server);
/// A tenant sets its own SMTP server (the server has no relay): its e-mail steps go through
/// it; the password is never shown; bad settings are refused; removing it leaves a clear
/// error on the next e-mail.
async fn a_tenant_sends_through_its_own_smtp_server() {
    let Some(sink) = SmtpSink::start() else { return };
    let s = TestServer::start_with(|s| s.trigger_tick = Duration::from_millis(20)).await;
    assert_eq!(s.get_json("/v1/smtp").await["source"], "none");

    // The password is kept sealed and never shown.
    let with_password = json!({ "url": "smtps://mailer%40acme.example:hunter2-smtp-pw@smtp.acme.example", "from": "Acme <flows@acme.example>" });
    let (status, _, v) = send(s.api(reqwest::Method::PUT, "/v1/smtp").json(&with_password)).await;
    assert_eq!(status, 200, "{v}");
    let shown = s.get_json("/v1/smtp").await;
    assert_eq!(
        (shown["source"].clone(), shown["port"].clone(), shown["security"].clone()),
        (json!("tenant"), json!(465), json!("tls"))
    );
    assert_eq!(shown["passwordSet"], true);
    assert!(!shown.to_string().contains("hunter2-smtp-pw") && !v.to_string().contains("hunter2-smtp-pw"), "{shown}");
    if let Some(data) = s.data_dir() {
        for f in std::fs::read_dir(&data).unwrap().flatten().filter(|f| f.path().is_file()) {
            assert!(
                !String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).contains("hunter2-smtp-pw"),
                "{}",
                f.path().display()
            );
        }
    }
    for bad in [
        json!({ "url": "http://mail.example" }),
        json!({ "host": "mail.example" }),
        json!({ "url": "smtp://x", "host": "y" }),
    ] {
        let (status, _, v) = send(s.api(reqwest::Method::PUT, "/v1/smtp").json(&bad)).await;
        assert_eq!(status, 422, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_smtp");
    }

    // Its e-mails go through its server.
    let fields = json!({ "host": "127.0.0.1", "port": sink.port, "security": "none", "from": "Acme Flows <flows@acme.example>" });
    let (status, _, v) = send(s.api(reqwest::Method::PUT, "/v1/smtp").json(&fields)).await;
    assert_eq!(status, 200, "{v}");
    s.apply(NOTES).await;
    let id = hook(&s, "notes/mail", json!({ "order": 7 })).await;
    s.wait_for(&id, "succeeded").await;
    let mails = wait_mails(&sink, 1).await;
    assert_eq!(mails[0].1["from"]["address"], "flows@acme.example");
    assert_eq!(mails[0].1["subject"], "Order 7 – bekreftet ✓");

    // Without it (and no relay) the e-mail's attempt fails, saying why; it is retried later
    // (settings get fixed).
    let (status, _, _) = send(s.api(reqwest::Method::DELETE, "/v1/smtp")).await;
    assert_eq!(status, 204);
    let id = hook(&s, "notes/mail", json!({ "order": 8 })).await;
    s.wait_for(&id, "succeeded").await;
    let d = eventually("the e-mail's attempt to fail", || async {
        let ex = s.execution(&id).await;
        (ex["deliveries"][0]["attempts"] == 1).then_some(ex["deliveries"][0].clone())
    })
    .await;
    assert_eq!(d["status"], "pending", "{d}");
    assert!(d["lastError"].as_str().unwrap().contains("no SMTP server is set for this tenant"), "{d}");
    assert_eq!(sink.messages().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Log sources
// ---------------------------------------------------------------------------------------

const LOGGED: &str = r#"
integration: logged
config:
  token: { type: secret, default: "tok-secret-55555" }
flows:
  - flow: to-syslog
    logSource: siem-udp
    trigger: { webhook: { path: logged/syslog } }
    steps:
      - id: note
        log: { level: warn, message: "calling the ERP with {{ $config.token }} for {{ $trigger.body.n }}" }
      - id: shaky
        transform: 'error("nope")'
        onError: continue
  - flow: to-http
    logSource: siem-http
    trigger: { webhook: { path: logged/http } }
    steps: [ { id: note, log: "hello {{ $trigger.body.n }}" } ]
  - flow: to-file
    logSource: siem-file
    trigger: { webhook: { path: logged/file } }
    steps: [ { id: boom, transform: 'error("broken")' } ]
"#;

/// An HTTP log collector: the shared mock upstream answering `POST /ingest` with `ok`.
async fn collector() -> (MockUpstream, String) {
    let c = MockUpstream::start().await;
    c.on("/ingest", MockResponse::text(200, "ok"));
    let url = format!("{}/ingest", c.url);
    (c, url)
}

/// The ndjson records the collector received, in order (each batch a `POST`).
fn collected(c: &MockUpstream) -> Vec<Value> {
    let mut lines = Vec::new();
    for r in c.requests("/ingest") {
        assert_eq!(r.method, "POST", "the collector takes POSTs only");
        let body = std::str::from_utf8(&r.body).expect("an ndjson body");
        lines.extend(body.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    lines
}

fn file_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

backends!(flow_events_stream_to_log_sources);
/// A flow's events — started, each log line, each step error, the end with its duration —
/// reach its tenant's log source as RFC 5424 syslog over UDP, as ndjson over HTTP, or as
/// JSON lines in a file; the secret in a log line arrives as a marker; the API shows each
/// source's counters.
async fn flow_events_stream_to_log_sources() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().to_path_buf();
    let s = TestServer::start_with(move |s| s.log_dir = Some(log_dir)).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let (http, http_url) = collector().await;
    // A relative path lands in the tenant's folder of the server's log directory.
    let file: PathBuf = dir.path().join("default/siem/flowgate.jsonl");
    let http_config = json!({ "http": {
        "url": format!("{http_url}?key=collector-key-888"),
        "headers": { "Authorization": "Bearer collector-token-777" },
        "batchSize": 10,
        "flushMs": 50,
    } });
    for (name, config) in [
        ("siem-udp", json!({ "syslog": { "url": format!("udp://{udp_addr}"), "appName": "flowgate-test" } })),
        ("siem-http", http_config),
        ("siem-file", json!({ "file": { "path": "siem/flowgate.jsonl" } })),
    ] {
        let (status, _, v) = send(s.api(reqwest::Method::PUT, &format!("/v1/log-sources/{name}")).json(&config)).await;
        assert_eq!(status, 200, "{name}: {v}");
    }
    // Bad configs are refused with what is wrong; a tenant cannot write outside its folder.
    for bad in [
        json!({ "syslog": { "url": "ftp://x" } }),
        json!({ "file": { "path": "/etc/flowgate-evil.log" } }),
        json!({ "file": { "path": "../other-tenant/x.log" } }),
    ] {
        let (status, _, v) = send(s.api(reqwest::Method::PUT, "/v1/log-sources/bad").json(&bad)).await;
        assert_eq!(status, 422, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_log_source", "{v}");
    }
    // The collector's credentials are never shown, nor stored in the clear.
    let shown = s.get_json("/v1/log-sources/siem-http").await;
    assert_eq!(shown["config"]["http"]["headers"]["Authorization"], "«redacted»", "{shown}");
    assert!(!shown.to_string().contains("collector-key-888"), "{shown}");
    if let Some(data) = s.data_dir() {
        for f in std::fs::read_dir(&data).unwrap().flatten().filter(|f| f.path().is_file()) {
            let bytes = std::fs::read(f.path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("collector-token-777"), "{} holds the collector token", f.path().display());
        }
    }
    s.apply(LOGGED).await;

    let id = hook(&s, "logged/syslog", json!({ "n": 1 })).await;
    s.wait_for(&id, "succeeded").await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 9000];
    while got.len() < 4 {
        let n =
            tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf)).await.expect("syslog datagrams").unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let find = |event: &str| {
        got.iter()
            .find(|g| g.contains(&format!("event=\"{event}\"")))
            .unwrap_or_else(|| panic!("no {event} in {got:#?}"))
            .clone()
    };
    let started = find("execution.started");
    assert!(started.starts_with("<14>1 "), "user.info: {started}");
    assert!(started.contains(" flowgate-test "), "{started}");
    assert!(started.contains(&format!("executionId=\"{id}\"")) && started.contains("tenant=\"default\""), "{started}");
    let log = find("log");
    assert!(log.starts_with("<12>1 "), "user.warning: {log}");
    assert!(log.contains("calling the ERP with «secret:lit0» for 1") || log.contains("«secret:"), "redacted: {log}");
    assert!(!log.contains("tok-secret-55555"), "{log}");
    let failed = find("step.failed");
    assert!(failed.contains("step=\"shaky\""), "{failed}");
    let done = find("execution.succeeded");
    assert!(done.contains("durationMs=\""), "{done}");

    let id = hook(&s, "logged/http", json!({ "n": 2 })).await;
    s.wait_for(&id, "succeeded").await;
    let lines = eventually("the HTTP collector to get the records", || async {
        let l = collected(&http);
        (l.len() >= 3).then_some(l)
    })
    .await;
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["execution.started", "log", "execution.succeeded"]);
    assert_eq!((lines[1]["message"].clone(), lines[1]["level"].clone()), (json!("hello 2"), json!("info")));
    assert_eq!((lines[1]["flow"].clone(), lines[1]["step"].clone()), (json!("to-http"), json!("note")));
    assert!(lines[2]["durationMs"].as_u64().is_some(), "{:?}", lines[2]);
    assert!(http.requests("/ingest").iter().all(|r| r.header("authorization") == Some("Bearer collector-token-777")));

    let id = hook(&s, "logged/file", json!({})).await;
    s.wait_for(&id, "failed").await;
    let lines = eventually("the file to get the records", || async {
        let l = file_lines(&file);
        (l.len() >= 3).then_some(l)
    })
    .await;
    assert_eq!(lines.last().unwrap()["event"], "execution.failed");
    assert_eq!(lines.last().unwrap()["level"], "error");

    let listed = s.get_json("/v1/log-sources").await;
    let http_stats =
        listed["items"].as_array().unwrap().iter().find(|x| x["name"] == "siem-http").unwrap()["stats"].clone();
    assert!(http_stats["sent"].as_u64().unwrap_or(0) >= 3, "{listed:#}");
    assert_eq!(http_stats["dropped"], 0);
    let (status, _, _) = send(s.api(reqwest::Method::DELETE, "/v1/log-sources/siem-file")).await;
    assert_eq!(status, 204);
}
