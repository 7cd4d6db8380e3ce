//! Interoperability with a real collector: when `rsyslogd` is installed, records sent over
//! UDP and TCP must land in the file rsyslog writes, parsed as RFC 5424 by rsyslog itself.
//! Without rsyslog the test passes, saying it was skipped.
//!
//! `RSYSLOGD` may name the binary when it is not on `PATH`, and `RSYSLOG_MODDIR` its module
//! directory when that is not the compiled-in one (an unpacked package, say).

mod common;

use common::event;
use flowgate_sinks::{Level, Sink, SinkConfig, SinkOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn rsyslogd() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RSYSLOGD") {
        return Some(path.into());
    }
    let out = Command::new("which").arg("rsyslogd").output().ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
}

/// Kills rsyslog when the test ends, even by panicking.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    // UDP and TCP ports are separate spaces; take one free in both.
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_rsyslog(binary: &Path, dir: &Path, port: u16) -> Running {
    let out = dir.join("out.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{dir}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{port}")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="parsed" type="string"
         string="%syslogseverity%|%hostname%|%app-name%|%msgid%|%structured-data%|%msg%\n")
action(type="omfile" file="{out}" template="parsed")
"#,
            dir = dir.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let mut command = Command::new(binary);
    command.arg("-n").arg("-f").arg(&conf).arg("-i").arg(dir.join("rsyslogd.pid"));
    if let Some(moddir) = std::env::var_os("RSYSLOG_MODDIR") {
        command.arg("-M").arg(moddir);
    }
    let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
    Running(child)
}

/// Sends a record marked `marker` until rsyslog has written it — rsyslog takes a moment to
/// start listening, and UDP records sent before that are simply lost — and returns its line.
async fn delivered(sink: &Sink, out: &Path, marker: &str) -> Option<String> {
    for _ in 0..100 {
        let mut e = event("step.failed", Level::Error, &format!("{marker} failed: héllo"));
        e.step = Some(r#"say "hi" ]\"#.into());
        e.fields.insert("code".into(), json!("E42"));
        sink.send(e);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(marker)) {
            return Some(line.to_string());
        }
    }
    None
}

#[tokio::test]
async fn rsyslog_receives_records_over_udp_and_tcp() {
    let Some(binary) = rsyslogd() else {
        skip_or_fail("rsyslogd not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _rsyslog = start_rsyslog(&binary, dir.path(), port);
    let out = dir.path().join("out.log");
    let options = || SinkOptions { max_retry: Duration::from_millis(50), ..SinkOptions::default() };

    for transport in ["udp", "tcp"] {
        let config = SinkConfig::Syslog {
            url: format!("{transport}://127.0.0.1:{port}"),
            app_name: Some("fg-test".into()),
            hostname: Some("node-7".into()),
        };
        let sink = Sink::start(config, options()).unwrap();
        let marker = format!("marker-{transport}");
        let line = delivered(&sink, &out, &marker).await.unwrap_or_else(|| {
            panic!("rsyslog never wrote the {transport} record; it wrote: {:?}", std::fs::read_to_string(&out))
        });
        println!("rsyslog wrote: {line}");
        let parts: Vec<&str> = line.splitn(6, '|').collect();
        assert_eq!(parts[..4], ["3", "node-7", "fg-test", "step.failed"], "{line}");
        let sd = parts[4];
        assert!(sd.starts_with(r#"[flowgate@32473 tenant="acme" integration="erp""#), "{line}");
        assert!(sd.contains(r#"step="say \"hi\" \]\\""#), "{line}");
        assert!(sd.ends_with(r#"[fields@32473 code="E42"]"#), "{line}");
        assert!(parts[5].contains(&format!("{marker} failed: héllo")), "{line}");
        sink.stop().await;
    }
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
