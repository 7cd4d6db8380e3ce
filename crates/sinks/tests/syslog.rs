//! Syslog sinks against real sockets: UDP datagrams and octet-counted TCP streams, parsed as
//! RFC 5424 by a strict reader.

mod common;

use common::{event, eventually, parse_syslog};
use flowgate_sinks::{Level, MAX_DATAGRAM, Sink, SinkConfig, SinkOptions};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);

fn syslog(url: String) -> SinkConfig {
    SinkConfig::Syslog { url, app_name: Some("fg-test".into()), hostname: Some("node-7".into()) }
}

async fn datagram(socket: &UdpSocket) -> String {
    let mut buf = vec![0u8; 70_000];
    let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf)).await.expect("a datagram").unwrap();
    String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
}

#[tokio::test]
async fn udp_sends_one_rfc5424_datagram_per_record() {
    let collector = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = collector.local_addr().unwrap().port();
    let sink = Sink::start(syslog(format!("udp://127.0.0.1:{port}")), SinkOptions::default()).unwrap();

    let levels = [(Level::Error, 11), (Level::Warn, 12), (Level::Info, 14), (Level::Debug, 15)];
    for (level, _) in levels {
        sink.send(event("log", level, &format!("{level:?} message")));
    }
    let mut detailed = event("step.failed", Level::Error, "fetch failed: héllo");
    detailed.step = Some(r#"step "quoted" [x] back\slash"#.into());
    detailed.duration_ms = Some(1234);
    detailed.fields.insert("code".into(), json!("E_TIMEOUT"));
    detailed.fields.insert("status".into(), json!(504));
    sink.send(detailed);
    let mut huge = event("log", Level::Info, &"x".repeat(20_000));
    huge.execution_id = "ex-huge".into();
    sink.send(huge);
    assert!(sink.flush(WAIT).await);

    for (level, pri) in levels {
        let m = parse_syslog(&datagram(&collector).await);
        assert_eq!(m.pri, pri, "{level:?}");
        assert_eq!(m.version, "1");
        assert_eq!(m.timestamp, "2024-05-01T12:00:00.123Z");
        assert_eq!(m.hostname, "node-7");
        assert_eq!(m.app_name, "fg-test");
        assert_eq!(m.procid, "-");
        assert_eq!(m.msgid, "log");
        assert_eq!(m.msg.as_deref(), Some(format!("{level:?} message").as_str()));
        assert_eq!(m.param("flowgate@32473", "step"), None, "absent params are left out");
        assert_eq!(m.param("flowgate@32473", "durationMs"), None);
        assert_eq!(m.sd.len(), 1, "no fields element without fields");
    }

    let m = parse_syslog(&datagram(&collector).await);
    assert_eq!(m.pri, 11);
    assert_eq!(m.msgid, "step.failed");
    let sd = "flowgate@32473";
    assert_eq!(m.param(sd, "tenant"), Some("acme"));
    assert_eq!(m.param(sd, "integration"), Some("erp"));
    assert_eq!(m.param(sd, "flow"), Some("orders"));
    assert_eq!(m.param(sd, "executionId"), Some("ex-1"));
    assert_eq!(m.param(sd, "step"), Some(r#"step "quoted" [x] back\slash"#));
    assert_eq!(m.param(sd, "event"), Some("step.failed"));
    assert_eq!(m.param(sd, "durationMs"), Some("1234"));
    assert_eq!(m.param("fields@32473", "code"), Some("E_TIMEOUT"));
    assert_eq!(m.param("fields@32473", "status"), Some("504"));
    assert_eq!(m.msg.as_deref(), Some("fetch failed: héllo"));

    let raw = datagram(&collector).await;
    assert_eq!(raw.len(), MAX_DATAGRAM, "long records are cut to one datagram");
    assert_eq!(parse_syslog(&raw).param(sd, "executionId"), Some("ex-huge"));

    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped, stats.queued), (6, 0, 0));
    sink.stop().await;
}

/// Reads one octet-counted frame: `<len> <message>`.
async fn frame(reader: &mut BufReader<TcpStream>) -> String {
    let read = async {
        let mut len = Vec::new();
        reader.read_until(b' ', &mut len).await.unwrap();
        assert_eq!(len.pop(), Some(b' '), "frame length ends with a space");
        let len: usize = std::str::from_utf8(&len).unwrap().parse().expect("frame length");
        let mut message = vec![0u8; len];
        reader.read_exact(&mut message).await.unwrap();
        String::from_utf8(message).unwrap()
    };
    tokio::time::timeout(WAIT, read).await.expect("a frame in time")
}

async fn accept(listener: &TcpListener) -> BufReader<TcpStream> {
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept()).await.expect("a connection").unwrap();
    BufReader::new(stream)
}

#[tokio::test]
async fn tcp_frames_records_and_reconnects_when_the_collector_hangs_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Sink::start(syslog(format!("tcp://127.0.0.1:{port}")), SinkOptions::default()).unwrap();

    let messages = ["first", "second with\nnewline", "third ]\"\\"];
    for m in messages {
        sink.send(event("log", Level::Info, m));
    }
    let mut conn = accept(&listener).await;
    for m in messages {
        let parsed = parse_syslog(&frame(&mut conn).await);
        assert_eq!(parsed.msg.as_deref(), Some(m), "octet counting carries newlines and any byte");
        assert_eq!(parsed.pri, 14);
        assert_eq!(parsed.param("flowgate@32473", "executionId"), Some("ex-1"));
    }
    assert!(sink.flush(WAIT).await);

    // The collector hangs up; the sink notices before writing and connects again.
    drop(conn);
    sink.send(event("log", Level::Warn, "after hang-up 1"));
    let mut conn = accept(&listener).await;
    sink.send(event("log", Level::Warn, "after hang-up 2"));
    assert_eq!(parse_syslog(&frame(&mut conn).await).msg.as_deref(), Some("after hang-up 1"));
    assert_eq!(parse_syslog(&frame(&mut conn).await).msg.as_deref(), Some("after hang-up 2"));
    assert!(sink.flush(WAIT).await);
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped), (5, 0));
    sink.stop().await;
}

#[tokio::test]
async fn tcp_keeps_records_while_the_collector_is_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let options = SinkOptions { queue: 3, max_retry: Duration::from_millis(20), ..SinkOptions::default() };
    let sink = Sink::start(syslog(format!("tcp://{addr}")), options).unwrap();

    for i in 0..10 {
        sink.send(event("log", Level::Info, &format!("while down {i}")));
    }
    // One record is in the task's hands, three wait in the queue… until more arrive than fit.
    assert!(eventually(WAIT, || sink.stats().failed_attempts >= 2).await, "{:?}", sink.stats());
    let stats = sink.stats();
    assert!(stats.last_error.as_deref().unwrap().contains("cannot connect"), "{stats:?}");
    assert_eq!(stats.sent, 0);
    assert_eq!(stats.dropped + stats.queued, 10, "{stats:?}");
    assert!(stats.queued >= 3, "records wait for the collector: {stats:?}");

    let listener = TcpListener::bind(addr).await.unwrap();
    let mut conn = accept(&listener).await;
    assert!(sink.flush(WAIT).await);
    let stats = sink.stats();
    let mut got = Vec::new();
    for _ in 0..stats.sent {
        got.push(parse_syslog(&frame(&mut conn).await).msg.unwrap());
    }
    assert_eq!(got.first().map(String::as_str), Some("while down 0"), "the oldest record is retried first");
    assert_eq!(stats.sent + stats.dropped, 10, "{stats:?}");
    assert!(stats.sent >= 3);
    sink.stop().await;
}

#[tokio::test]
async fn a_guard_keeps_udp_and_tcp_off_refused_addresses() {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refuse_loopback: flowgate_sinks::AddressGuard = std::sync::Arc::new(|_, ip| !ip.is_loopback());
    let options = || SinkOptions {
        guard: Some(refuse_loopback.clone()),
        max_retry: Duration::from_millis(20),
        ..SinkOptions::default()
    };
    for url in [
        format!("udp://localhost:{}", udp.local_addr().unwrap().port()),
        format!("tcp://localhost:{}", tcp.local_addr().unwrap().port()),
    ] {
        let sink = Sink::start(syslog(url.clone()), options()).unwrap();
        sink.send(event("log", Level::Info, "kept out"));
        assert!(eventually(WAIT, || sink.stats().last_error.is_some()).await, "{url}: {:?}", sink.stats());
        assert!(sink.stats().last_error.unwrap().contains("refused"), "{url}: {:?}", sink.stats());
        sink.stop().await;
    }
    let mut buf = [0u8; 100];
    assert!(tokio::time::timeout(Duration::from_millis(200), udp.recv_from(&mut buf)).await.is_err(), "no datagram");
    assert!(tokio::time::timeout(Duration::from_millis(200), tcp.accept()).await.is_err(), "no connection");
}
