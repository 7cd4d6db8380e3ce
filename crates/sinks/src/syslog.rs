//! Syslog delivery: RFC 5424 formatting, one datagram per record over UDP, and octet-counted
//! frames (RFC 6587 §3.4.1) over a TCP connection that is re-established when it drops.
//!
//! The MSG part is UTF-8 sent *without* the byte-order mark: RFC 5424 §6.4 allows that
//! (MSG-ANY), and several collectors show the BOM as garbage in front of every message.

use crate::config::SyslogTarget;
use crate::event::{LogEvent, rfc3339_ms};
use crate::task::{AddressGuard, Ctx, Wake};
use serde_json::Value;
use socket2::SockRef;
use std::fmt::Write as _;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

/// Largest datagram sent; longer records are cut (at a character boundary). 8 KiB passes
/// every common collector (rsyslog's default maximum message size is 8 KiB) and stays far
/// below the 64 KiB UDP limit.
pub const MAX_DATAGRAM: usize = 8 * 1024;
/// The SD-ID of the element carrying the event's identity. 32473 is the enterprise number
/// RFC 5612 reserves for documentation and examples.
pub const SD_ID: &str = "flowgate@32473";
/// The SD-ID of the element carrying the event's `fields`, kept apart from [`SD_ID`] so a
/// field can never pose as `tenant` or `executionId`.
pub const FIELDS_SD_ID: &str = "fields@32473";

/// Records taken from the queue per write: one write per batch keeps a busy stream cheap.
const BATCH: usize = 256;
/// Longest wait for a TCP connection to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a collector to take a batch. A collector that stopped reading fills the
/// socket buffer; past this the connection is treated as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The RFC 5424 header fields that are the same for every record of a sink.
pub(crate) struct Header {
    pub app_name: String,
    pub hostname: String,
}

/// Formats `e` as an RFC 5424 message:
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [flowgate@32473 …][fields@32473 …] MSG`.
///
/// The facility is user (1). MSGID is the event name. `hostname` and `app_name` are cut to
/// RFC 5424's lengths and characters outside printable ASCII replaced by `_`. Absent
/// parameters (`step`, `durationMs`) are left out, as is the fields element when there are
/// none; field values that are not strings are written as JSON.
pub fn format_syslog(e: &LogEvent, app_name: &str, hostname: &str) -> String {
    let mut out = String::with_capacity(200 + e.message.len());
    let timestamp = rfc3339_ms(e.timestamp_ms);
    let _ = write!(
        out,
        "<{}>1 {} {} {} - {} [{SD_ID}",
        8 + e.level.severity(),
        timestamp.as_deref().unwrap_or("-"),
        header_field(hostname, 255),
        header_field(app_name, 48),
        header_field(&e.event, 32),
    );
    sd_param(&mut out, "tenant", &e.tenant);
    sd_param(&mut out, "integration", &e.integration);
    sd_param(&mut out, "flow", &e.flow);
    sd_param(&mut out, "executionId", &e.execution_id);
    if let Some(step) = &e.step {
        sd_param(&mut out, "step", step);
    }
    sd_param(&mut out, "event", &e.event);
    sd_param(&mut out, "level", e.level.as_str());
    if let Some(ms) = e.duration_ms {
        sd_param(&mut out, "durationMs", &ms.to_string());
    }
    out.push(']');
    if !e.fields.is_empty() {
        out.push('[');
        out.push_str(FIELDS_SD_ID);
        for (name, value) in &e.fields {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            sd_param(&mut out, &sd_name(name), &value);
        }
        out.push(']');
    }
    if !e.message.is_empty() {
        out.push(' ');
        out.push_str(&e.message);
    }
    out
}

/// A header field: printable US-ASCII, at most `max` characters, `-` when empty.
fn header_field(value: &str, max: usize) -> String {
    let field: String = value.chars().take(max).map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
    if field.is_empty() { "-".into() } else { field }
}

/// An SD-NAME (RFC 5424 §6.3.3): up to 32 printable ASCII characters except `=`, space, `]`
/// and `"`; others become `_`.
fn sd_name(name: &str) -> String {
    let name: String = name
        .chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"') { c } else { '_' })
        .collect();
    if name.is_empty() { "_".into() } else { name }
}

/// Appends ` name="value"`, escaping `"`, `\` and `]` with a backslash (§6.3.3).
fn sd_param(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// This machine's host name for the HOSTNAME field, `-` when it cannot be found.
pub(crate) fn local_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    header_field(name.trim(), 255)
}

/// Cuts `text` to at most `max` bytes without splitting a character.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let at = text.floor_char_boundary(max);
        text.truncate(at);
    }
}

/// The collector's first address the guard allows.
async fn resolve(target: &SyslogTarget, guard: Option<&AddressGuard>) -> io::Result<SocketAddr> {
    let mut any = false;
    for addr in tokio::net::lookup_host((target.host.as_str(), target.port)).await? {
        any = true;
        if guard.is_none_or(|g| g(&target.host, addr.ip())) {
            return Ok(addr);
        }
    }
    Err(match any {
        true => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: its addresses are refused on this server (internal)", target.host),
        ),
        false => io::Error::new(io::ErrorKind::NotFound, format!("{} resolves to no address", target.host)),
    })
}

async fn open_udp(target: &SyslogTarget, guard: Option<&AddressGuard>) -> io::Result<UdpSocket> {
    let addr = resolve(target, guard).await?;
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).await?;
    // Connected, so errors the collector's host reports (port unreachable) come back to us.
    socket.connect(addr).await?;
    Ok(socket)
}

/// Delivers over UDP. A record is sent once (retried immediately once, since a send may fail
/// with an error left over from an earlier datagram); when that fails too it is dropped and
/// the socket is set up again — re-resolving the host — before the next record.
pub(crate) async fn run_udp(mut ctx: Ctx, target: SyslogTarget, header: Header, guard: Option<AddressGuard>) {
    let mut socket: Option<UdpSocket> = None;
    let mut backoff = ctx.first_backoff();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if batch.is_empty() {
            match ctx.receive(&mut batch, BATCH, None).await {
                Wake::Records => {}
                Wake::Due | Wake::Flush => continue,
                Wake::Closed => return,
                Wake::Abort => return ctx.abandon(0),
            }
        }
        let Some(open) = &socket else {
            match open_udp(&target, guard.as_ref()).await {
                Ok(s) => {
                    socket = Some(s);
                    backoff = ctx.first_backoff();
                }
                Err(e) => {
                    let error = format!("cannot reach syslog collector udp://{}:{}: {e}", target.host, target.port);
                    ctx.shared.failed_attempt(&error);
                    if !ctx.pause(backoff).await {
                        if ctx.is_aborted() {
                            return ctx.abandon(batch.len());
                        }
                        ctx.shared.dropped(batch.len(), &error);
                        batch.clear();
                    }
                    backoff = ctx.next_backoff(backoff);
                }
            }
            continue;
        };
        let mut sent = 0;
        let mut failure = None;
        for event in &batch {
            let mut datagram = format_syslog(event, &header.app_name, &header.hostname);
            truncate(&mut datagram, MAX_DATAGRAM);
            let result = match open.send(datagram.as_bytes()).await {
                Ok(_) => Ok(()),
                Err(_) => open.send(datagram.as_bytes()).await.map(|_| ()),
            };
            sent += 1;
            if let Err(e) = result {
                failure = Some(e);
                break;
            }
        }
        batch.drain(..sent);
        match failure {
            None => ctx.shared.delivered(sent),
            Some(e) => {
                let error = format!("sending to syslog collector udp://{}:{} failed: {e}", target.host, target.port);
                ctx.shared.delivered(sent - 1);
                ctx.shared.failed_attempt(&error);
                ctx.shared.dropped(1, &error);
                socket = None;
            }
        }
    }
}

/// Delivers over TCP with octet-counting framing. Records stay with the task while the
/// collector is unreachable — new ones queue behind them until the queue is full — and the
/// connection is retried with a doubling backoff.
pub(crate) async fn run_tcp(mut ctx: Ctx, target: SyslogTarget, header: Header, guard: Option<AddressGuard>) {
    let mut stream: Option<TcpStream> = None;
    let mut backoff = ctx.first_backoff();
    let mut batch = Vec::with_capacity(BATCH);
    // The frames of `batch`, formatted once however often they are retried.
    let mut frames: Vec<u8> = Vec::new();
    loop {
        if batch.is_empty() {
            match ctx.receive(&mut batch, BATCH, None).await {
                Wake::Records => {}
                Wake::Due | Wake::Flush => continue,
                Wake::Closed => return,
                Wake::Abort => return ctx.abandon(0),
            }
            frames.clear();
            for event in &batch {
                let message = format_syslog(event, &header.app_name, &header.hostname);
                frames.extend_from_slice(message.len().to_string().as_bytes());
                frames.push(b' ');
                frames.extend_from_slice(message.as_bytes());
            }
        }
        if stream.as_ref().is_some_and(peer_closed) {
            stream = None;
        }
        let Some(open) = &mut stream else {
            let connect = tokio::time::timeout(CONNECT_TIMEOUT, async {
                TcpStream::connect(resolve(&target, guard.as_ref()).await?).await
            });
            let result = tokio::select! {
                _ = ctx.aborted() => return ctx.abandon(batch.len()),
                r = connect => r,
            };
            match result {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                    backoff = ctx.first_backoff();
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    let error =
                        format!("cannot connect to syslog collector tcp://{}:{}: {why}", target.host, target.port);
                    ctx.shared.failed_attempt(&error);
                    if !ctx.pause(backoff).await {
                        if ctx.is_aborted() {
                            return ctx.abandon(batch.len());
                        }
                        ctx.shared.dropped(batch.len(), &error);
                        batch.clear();
                    }
                    backoff = ctx.next_backoff(backoff);
                }
            }
            continue;
        };
        let write = tokio::time::timeout(WRITE_TIMEOUT, open.write_all(&frames));
        let result = tokio::select! {
            _ = ctx.aborted() => return ctx.abandon(batch.len()),
            r = write => r,
        };
        match result {
            Ok(Ok(())) => {
                ctx.shared.delivered(batch.len());
                batch.clear();
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the collector stopped reading".to_string(),
                };
                // The whole batch goes again on a new connection: what part of it the
                // collector got before the failure is unknowable.
                let error = format!("writing to syslog collector tcp://{}:{} failed: {why}", target.host, target.port);
                ctx.shared.failed_attempt(&error);
                stream = None;
            }
        }
    }
}

/// Whether the collector closed the connection. Collectors never write back, so EOF or an
/// error on the read side is the only sign; looking (with a real system call, not tokio's
/// cached readiness) before each write keeps records from being written into a connection
/// the peer already closed, where the kernel would accept and then lose them.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 512];
    loop {
        // Tokio sockets are non-blocking, so this returns at once.
        match SockRef::from(stream).recv(&mut probe) {
            Ok(0) => return true,
            // Something a collector had to say (a banner?): discard it and look again.
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;
    use serde_json::{Map, json};

    fn event() -> LogEvent {
        LogEvent {
            timestamp_ms: 1_714_564_800_123,
            tenant: "acme".into(),
            integration: "erp".into(),
            flow: "orders".into(),
            execution_id: "ex1".into(),
            step: None,
            event: "execution.started".into(),
            level: Level::Info,
            message: "started".into(),
            duration_ms: None,
            fields: Map::new(),
        }
    }

    #[test]
    fn formats_rfc5424() {
        assert_eq!(
            format_syslog(&event(), "flowgate", "node1"),
            "<14>1 2024-05-01T12:00:00.123Z node1 flowgate - execution.started [flowgate@32473 tenant=\"acme\" \
             integration=\"erp\" flow=\"orders\" executionId=\"ex1\" event=\"execution.started\" level=\"info\"] started"
        );
    }

    #[test]
    fn escapes_values_and_cleans_names() {
        let mut e = event();
        e.level = Level::Error;
        e.step = Some(r#"a"b]c\d"#.into());
        e.duration_ms = Some(42);
        e.fields.insert("bad name=\"x\"]".into(), json!(503));
        e.fields.insert("code".into(), json!("E]1"));
        e.message = String::new();
        e.event = "x".repeat(40);
        let line = format_syslog(&e, "my app", "");
        assert!(line.starts_with("<11>1 2024-05-01T12:00:00.123Z - my_app - "), "{line}");
        assert!(line.contains(&format!(" {} [", "x".repeat(32))), "{line}");
        assert!(line.contains(r#" step="a\"b\]c\\d""#), "{line}");
        assert!(line.contains(r#" durationMs="42"]"#), "{line}");
        assert!(line.ends_with(r#"[fields@32473 bad_name__x__="503" code="E\]1"]"#), "{line}");
    }

    #[test]
    fn truncates_on_character_boundaries() {
        let mut text = "é".repeat(10);
        truncate(&mut text, 5);
        assert_eq!(text, "éé");
        let mut short = "abc".to_string();
        truncate(&mut short, 5);
        assert_eq!(short, "abc");
    }
}
