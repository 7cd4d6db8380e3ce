//! The file sink: JSON lines appended to a file created with its directory, across restarts
//! and log rotation; and the redaction hook.

mod common;

use common::event;
use flowgate_sinks::{Level, Sink, SinkConfig, SinkOptions};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn read_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn file(path: &Path) -> SinkConfig {
    SinkConfig::File { path: path.to_str().unwrap().into() }
}

#[tokio::test]
async fn appends_json_lines_creating_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/nested/events.jsonl");
    let sink = Sink::start(file(&path), SinkOptions::default()).unwrap();
    let mut failed = event("step.failed", Level::Error, "boom");
    failed.step = Some("fetch".into());
    failed.duration_ms = Some(17);
    failed.fields.insert("code".into(), json!("E42"));
    sink.send(event("execution.started", Level::Info, "started"));
    sink.send(failed);
    assert!(sink.flush(WAIT).await);
    sink.stop().await;

    // A new sink on the same file appends.
    let sink = Sink::start(file(&path), SinkOptions::default()).unwrap();
    sink.send(event("execution.failed", Level::Error, "failed"));
    assert!(sink.flush(WAIT).await);

    let lines = read_lines(&path);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["event"], "execution.started");
    assert_eq!(lines[0].get("step"), None);
    assert_eq!(
        lines[1],
        json!({"timestamp": "2024-05-01T12:00:00.123Z", "tenant": "acme", "integration": "erp", "flow": "orders",
               "executionId": "ex-1", "step": "fetch", "event": "step.failed", "level": "error", "message": "boom",
               "durationMs": 17, "fields": {"code": "E42"}})
    );
    assert_eq!(lines[2]["event"], "execution.failed");

    // Rotation: the file is moved away; later records go to a new file at the path.
    let rotated = dir.path().join("new/nested/events.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    sink.send(event("log", Level::Info, "after rotation"));
    assert!(sink.flush(WAIT).await);
    assert_eq!(read_lines(&rotated).len(), 3);
    let fresh = read_lines(&path);
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0]["message"], "after rotation");
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped, stats.failed_attempts), (2, 0, 0));
    sink.stop().await;
}

#[tokio::test]
async fn a_failing_write_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    // The "directory" is a file, so the log file can never be created.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let sink = Sink::start(file(&blocker.join("events.jsonl")), SinkOptions::default()).unwrap();
    sink.send(event("log", Level::Info, "lost"));
    assert!(sink.flush(WAIT).await);
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped, stats.failed_attempts), (0, 1, 1));
    assert!(stats.last_error.unwrap().contains("not-a-dir"));
    sink.stop().await;
}

#[tokio::test]
async fn redaction_applies_to_message_and_string_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let options =
        SinkOptions { redact: Some(Arc::new(|s: &str| s.replace("hunter2", "[redacted]"))), ..SinkOptions::default() };
    let sink = Sink::start(file(&path), options).unwrap();
    let mut e = event("log", Level::Warn, "login with password hunter2");
    e.fields.insert("request".into(), json!({"password": "hunter2", "tries": 2, "list": ["a hunter2 b"]}));
    e.fields.insert("flat".into(), json!("hunter2"));
    e.tenant = "hunter2".into();
    sink.send(e);
    assert!(sink.flush(WAIT).await);

    let line = &read_lines(&path)[0];
    assert_eq!(line["message"], "login with password [redacted]");
    assert_eq!(
        line["fields"],
        json!({"request": {"password": "[redacted]", "tries": 2, "list": ["a [redacted] b"]},
                                      "flat": "[redacted]"})
    );
    assert_eq!(line["tenant"], "hunter2", "identity is not the redactor's business");
    sink.stop().await;
}

#[tokio::test]
async fn starting_outside_a_runtime_or_with_a_bad_config_is_an_error() {
    assert!(
        Sink::start(SinkConfig::File { path: "relative.jsonl".into() }, SinkOptions::default())
            .unwrap_err()
            .contains("absolute")
    );
    let zero = SinkOptions { queue: 0, ..SinkOptions::default() };
    assert!(Sink::start(SinkConfig::File { path: "/tmp/x.jsonl".into() }, zero).unwrap_err().contains("at least one"));
    let outside = std::thread::spawn(|| {
        Sink::start(SinkConfig::File { path: "/tmp/x.jsonl".into() }, SinkOptions::default()).map(|_| ())
    });
    assert!(outside.join().unwrap().unwrap_err().contains("tokio runtime"));
}
