//! The test SMTP server (aiosmtpd, driven by `tests/smtp_server.py`) and small helpers shared
//! by the integration tests.
//!
//! When aiosmtpd cannot be imported, the first server start tries `pip install aiosmtpd` once
//! per test binary; when that fails too, [`TestServer::start`] prints "skipped: aiosmtpd not
//! available" and returns None, and the test returns early.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use flowgate_mailer::{Email, Security, SmtpConfig};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether `python3 -c "import aiosmtpd"` works, after one install attempt if it did not.
pub fn aiosmtpd_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let importable = || {
            Command::new("python3")
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if importable() {
            return true;
        }
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        importable()
    })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One aiosmtpd process, killed when dropped.
pub struct TestServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// One message the server accepted.
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub raw: Vec<u8>,
}

impl TestServer {
    /// Starts a server with extra `smtp_server.py` arguments; None when aiosmtpd is missing.
    pub fn start(args: &[&str]) -> Option<TestServer> {
        if !aiosmtpd_available() {
            skip_or_fail("aiosmtpd not available");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--outdir", dir.path().to_str().unwrap()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("python3 runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                panic!("the test SMTP server exited ({status}):\n{log}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "the test SMTP server did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(TestServer { child, port, dir })
    }

    pub fn config(&self) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            security: Security::None,
            username: None,
            password: None,
            from: "Flowgate <flows@example.com>".into(),
            timeout_ms: Some(10_000),
        }
    }

    fn message_path(&self, n: usize, ext: &str) -> PathBuf {
        self.dir.path().join(format!("msg-{n}.{ext}"))
    }

    /// The first `count` accepted messages, waiting briefly for the server to write them.
    pub fn received(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(1..=count).all(|n| self.message_path(n, "json").exists()) {
            assert!(Instant::now() < deadline, "the server did not receive {count} message(s)");
            std::thread::sleep(Duration::from_millis(20));
        }
        (1..=count)
            .map(|n| {
                let envelope: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(self.message_path(n, "json")).unwrap()).unwrap();
                Received {
                    mail_from: envelope["mail_from"].as_str().unwrap().to_string(),
                    rcpt_tos: envelope["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_string())
                        .collect(),
                    raw: std::fs::read(self.message_path(n, "eml")).unwrap(),
                }
            })
            .collect()
    }

    pub fn received_count(&self) -> usize {
        (1..).take_while(|n| self.message_path(*n, "json").exists()).count()
    }

    pub fn auth_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("auth.log")).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn simple_email(to: &str) -> Email {
    Email { to: vec![to.into()], subject: "Ping".into(), text: Some("pong".into()), ..Default::default() }
}

pub fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default().parse(raw).expect("the received message parses")
}

pub fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    a.map(|a| a.iter().map(|a| a.address().unwrap().to_string()).collect()).unwrap_or_default()
}

/// Says a test is skipped because `why` (a service or tool is missing), or fails it when
/// `FLOWGATE_REQUIRE_SERVICES=1` (CI sets it: a half that did not run must not pass).
#[allow(dead_code)]
pub fn skip_or_fail(why: &str) {
    if std::env::var("FLOWGATE_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("FLOWGATE_REQUIRE_SERVICES=1, but {why}");
    }
    eprintln!("skipped: {why}");
}
