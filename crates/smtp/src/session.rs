//! One SMTP conversation (RFC 5321, receiving side): greeting, `EHLO`/`HELO`, transactions of
//! `MAIL FROM` / `RCPT TO` / `DATA`, `RSET`, `NOOP`, `VRFY`, `HELP`, `QUIT`.
//!
//! Replies carry enhanced status codes (RFC 2034). Commands are read from a buffered reader, so
//! pipelined commands (RFC 2920) work; each reply is written as its command is handled. Limits:
//! command lines of [`MAX_COMMAND_LINE`] bytes, messages of `max_message_bytes` (never more
//! held in memory: the rest of an oversized message is read and dropped, then refused), a
//! number of recipients, and an idle timeout per command or line.
//!
//! At shutdown an idle conversation is told `421` at once; one with a transaction open gets
//! `shutdown_grace` to finish it (a sender that is cut off mid-message has to send it again).

use crate::{Envelope, MailHandler, Reject, SmtpSettings};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest command line (RFC 5321 asks for 512 at least; extensions make lines longer).
pub const MAX_COMMAND_LINE: usize = 4096;
/// Longest line inside a message; a longer one makes the message refused as too big.
const MAX_DATA_LINE: usize = 1024 * 1024;
/// Longest wait for a reply to leave: a client that stops reading must not hold a task forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// A line as read.
enum Line {
    /// The line without its line end.
    Text(Vec<u8>),
    /// Longer than the limit (the rest of it was read and dropped).
    TooLong,
    /// The client closed the connection.
    Closed,
}

/// Reads one line ending in LF (CRLF or bare LF), at most `max` bytes of it kept.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Line> {
    let mut out = Vec::new();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if out.is_empty() && !too_long { Line::Closed } else { Line::Text(out) });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        if !too_long {
            if out.len() + chunk.len() > max + 2 {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(chunk);
            }
        }
        let n = chunk.len();
        r.consume(n);
        if done {
            if too_long {
                return Ok(Line::TooLong);
            }
            while matches!(out.last(), Some(b'\n' | b'\r')) {
                out.pop();
            }
            return Ok(Line::Text(out));
        }
    }
}

/// Writes one reply line (or several, `250-…` continued) and flushes.
async fn reply<W: AsyncWrite + Unpin>(w: &mut W, code: u16, lines: &[&str]) -> std::io::Result<()> {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        // Replies quote the client at times (an address, a parameter): no stray CR in them.
        let l: String = l.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        out.push_str(&format!("{code}{sep}{l}\r\n"));
    }
    let write = async {
        w.write_all(out.as_bytes()).await?;
        w.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client does not read its replies")),
    }
}

async fn reply_enhanced<W: AsyncWrite + Unpin>(
    w: &mut W,
    code: u16,
    enhanced: &str,
    text: &str,
) -> std::io::Result<()> {
    reply(w, code, &[&format!("{enhanced} {text}")]).await
}

async fn reject<W: AsyncWrite + Unpin>(w: &mut W, r: &Reject) -> std::io::Result<()> {
    // A reply line holds no line breaks: the text comes from the owner.
    let text: String = r.message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if !(400..600).contains(&r.code) {
        // A refusal that reads as success or as nonsense would lose the message: make it
        // temporary, so the sender keeps it and tries again.
        tracing::warn!(code = r.code, message = %text, "A mail handler refused with a code that is not 4xx/5xx.");
        return reply_enhanced(w, 451, "4.3.0", &text).await;
    }
    reply_enhanced(w, r.code, r.enhanced, &text).await
}

/// Resolves when the conversation has to end for shutdown: as soon as it is asked for when no
/// transaction is open, else at the end of the grace (counted from the first look at it).
async fn stopping(shutdown: &CancellationToken, in_transaction: bool, grace: Duration, deadline: &mut Option<Instant>) {
    shutdown.cancelled().await;
    if in_transaction {
        let at = *deadline.get_or_insert_with(|| Instant::now() + grace);
        tokio::time::sleep_until(at).await;
    }
}

/// Refuses a connection over the limit.
pub(crate) async fn refuse(mut socket: TcpStream, settings: &SmtpSettings) {
    let text = format!("4.3.2 {} too many connections, try again later", settings.hostname);
    let _ = reply(&mut socket, 421, &[&text]).await;
}

/// The transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    recipients: Vec<String>,
}

/// Runs one conversation to its end.
pub(crate) async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn MailHandler>,
    settings: &SmtpSettings,
    shutdown: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::with_capacity(16 * 1024, read);
    if let Err(e) = converse(&mut read, &mut write, peer, handler.as_ref(), settings, &shutdown).await {
        tracing::debug!(error = %e, client = %peer, "SMTP connection ended.");
    }
    let _ = write.shutdown().await;
}

/// The conversation; `Err` only for I/O errors (the connection is gone).
async fn converse<R, W>(
    r: &mut R,
    w: &mut W,
    peer: SocketAddr,
    handler: &dyn MailHandler,
    settings: &SmtpSettings,
    shutdown: &CancellationToken,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let host = settings.hostname.as_str();
    reply(w, 220, &[&format!("{host} Flowgate ESMTP ready")]).await?;
    let mut helo: Option<String> = None;
    let mut tx = Transaction::default();
    let mut stop_at: Option<Instant> = None;
    let bye = format!("{host} shutting down, try again later");
    loop {
        let in_transaction = tx.from.is_some();
        let line = tokio::select! {
            () = stopping(shutdown, in_transaction, settings.shutdown_grace, &mut stop_at) => {
                return reply_enhanced(w, 421, "4.3.2", &bye).await;
            }
            l = tokio::time::timeout(settings.command_timeout, read_line(r, MAX_COMMAND_LINE)) => match l {
                Err(_) => return reply_enhanced(w, 421, "4.4.2", &format!("{host} idle too long, closing")).await,
                Ok(l) => l?,
            },
        };
        let line = match line {
            Line::Closed => return Ok(()),
            Line::TooLong => {
                reply_enhanced(w, 500, "5.5.6", "command line too long").await?;
                continue;
            }
            Line::Text(t) => t,
        };
        let Ok(line) = std::str::from_utf8(&line) else {
            reply_enhanced(w, 500, "5.5.2", "command is not valid text").await?;
            continue;
        };
        let (verb, args) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" | "HELO" => {
                if args.is_empty() {
                    reply_enhanced(w, 501, "5.5.4", &format!("{verb} needs the client's name")).await?;
                    continue;
                }
                helo = Some(args.to_owned());
                tx = Transaction::default();
                if verb == "HELO" {
                    reply(w, 250, &[&format!("{host} greets {args}")]).await?;
                } else {
                    let size = format!("SIZE {}", settings.max_message_bytes);
                    let greet = format!("{host} greets {args}");
                    let lines =
                        [greet.as_str(), size.as_str(), "8BITMIME", "PIPELINING", "SMTPUTF8", "ENHANCEDSTATUSCODES"];
                    reply(w, 250, &lines).await?;
                }
            }
            "MAIL" => {
                if helo.is_none() {
                    reply_enhanced(w, 503, "5.5.1", "say EHLO or HELO first").await?;
                } else if tx.from.is_some() {
                    reply_enhanced(w, 503, "5.5.1", "a transaction is already open (RSET first)").await?;
                } else {
                    match parse_path(args, "FROM:") {
                        Err(m) => reply_enhanced(w, 501, "5.5.4", &m).await?,
                        Ok((addr, params)) if !addr.is_empty() && !plausible_address(&addr) => {
                            let _ = params;
                            reply_enhanced(w, 501, "5.1.7", &format!("invalid sender address <{addr}>")).await?;
                        }
                        Ok((addr, params)) => match mail_params(&params, settings.max_message_bytes) {
                            Err(r) => reject(w, &r).await?,
                            Ok(()) => {
                                tx.from = Some(addr);
                                reply_enhanced(w, 250, "2.1.0", "sender OK").await?;
                            }
                        },
                    }
                }
            }
            "RCPT" => {
                let Some(from) = tx.from.clone() else {
                    reply_enhanced(w, 503, "5.5.1", "MAIL FROM first").await?;
                    continue;
                };
                match parse_path(args, "TO:") {
                    Err(m) => reply_enhanced(w, 501, "5.5.4", &m).await?,
                    // RFC 5321 §4.5.1: `<postmaster>` without a domain must be taken.
                    Ok((addr, _)) if !plausible_address(&addr) && !addr.eq_ignore_ascii_case("postmaster") => {
                        reply_enhanced(w, 501, "5.1.3", &format!("invalid recipient address <{addr}>")).await?;
                    }
                    Ok((_, params)) if !params.is_empty() => {
                        // No RCPT extension (DSN's NOTIFY, ORCPT) is announced.
                        reply_enhanced(w, 555, "5.5.4", &format!("unsupported RCPT parameters `{params}`")).await?;
                    }
                    Ok((addr, _)) if tx.recipients.contains(&addr) => {
                        reply_enhanced(w, 250, "2.1.5", "recipient OK (already given)").await?;
                    }
                    Ok(_) if tx.recipients.len() >= settings.max_recipients => {
                        reply_enhanced(w, 452, "4.5.3", "too many recipients").await?;
                    }
                    Ok((addr, _)) => match handler.recipient(&from, &addr).await {
                        Ok(()) => {
                            tx.recipients.push(addr);
                            reply_enhanced(w, 250, "2.1.5", "recipient OK").await?;
                        }
                        Err(r) => reject(w, &r).await?,
                    },
                }
            }
            "DATA" => {
                if !args.is_empty() {
                    reply_enhanced(w, 501, "5.5.4", "DATA takes no arguments").await?;
                    continue;
                }
                let Some(from) = tx.from.clone() else {
                    reply_enhanced(w, 503, "5.5.1", "MAIL FROM first").await?;
                    continue;
                };
                if tx.recipients.is_empty() {
                    reply_enhanced(w, 503, "5.5.1", "no valid recipients").await?;
                    continue;
                }
                reply(w, 354, &["end data with <CR><LF>.<CR><LF>"]).await?;
                let message = match read_data(r, settings, shutdown, &mut stop_at).await? {
                    Data::Closed => return Ok(()),
                    Data::Stopped => return reply_enhanced(w, 421, "4.3.2", &bye).await,
                    Data::TimedOut => {
                        return reply_enhanced(w, 421, "4.4.2", &format!("{host} idle too long, closing")).await;
                    }
                    Data::TooBig => {
                        tx = Transaction::default();
                        reject(w, &Reject::too_big(settings.max_message_bytes)).await?;
                        continue;
                    }
                    Data::Message(m) => m,
                };
                let envelope = Envelope {
                    from,
                    recipients: std::mem::take(&mut tx.recipients),
                    helo: helo.clone().unwrap_or_default(),
                    client: peer,
                };
                tx = Transaction::default();
                match handler.deliver(&envelope, message).await {
                    Ok(()) => reply_enhanced(w, 250, "2.0.0", "message accepted").await?,
                    Err(r) => reject(w, &r).await?,
                }
            }
            "RSET" => {
                tx = Transaction::default();
                reply_enhanced(w, 250, "2.0.0", "OK").await?;
            }
            "NOOP" => reply_enhanced(w, 250, "2.0.0", "OK").await?,
            "VRFY" => reply_enhanced(w, 252, "2.1.5", "cannot verify, but will try delivery").await?,
            "HELP" => reply(w, 214, &["2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT"]).await?,
            "QUIT" => return reply_enhanced(w, 221, "2.0.0", &format!("{host} closing")).await,
            "STARTTLS" | "AUTH" | "BDAT" | "EXPN" | "ETRN" | "TURN" | "ATRN" => {
                reply_enhanced(w, 502, "5.5.1", &format!("{verb} is not offered here")).await?;
            }
            _ => reply_enhanced(w, 500, "5.5.2", "unknown command").await?,
        }
    }
}

/// The message of a `DATA` phase.
enum Data {
    Message(bytes::Bytes),
    TooBig,
    TimedOut,
    /// Shutdown, and the grace is over.
    Stopped,
    Closed,
}

/// Reads the message up to the line `.`, dot-unstuffed, with CRLF line ends.
async fn read_data<R: AsyncBufRead + Unpin>(
    r: &mut R,
    settings: &SmtpSettings,
    shutdown: &CancellationToken,
    stop_at: &mut Option<Instant>,
) -> std::io::Result<Data> {
    let max = settings.max_message_bytes;
    // A line longer than the whole limit already makes the message too big: hold no more.
    let max_line = MAX_DATA_LINE.min(max);
    let mut out: Vec<u8> = Vec::new();
    let mut too_big = false;
    loop {
        let line = tokio::select! {
            () = stopping(shutdown, true, settings.shutdown_grace, stop_at) => return Ok(Data::Stopped),
            l = tokio::time::timeout(settings.command_timeout, read_line(r, max_line)) => match l {
                Err(_) => return Ok(Data::TimedOut),
                Ok(l) => l?,
            },
        };
        let line = match line {
            Line::Closed => return Ok(Data::Closed),
            Line::TooLong => {
                too_big = true;
                continue;
            }
            Line::Text(t) => t,
        };
        if line == b"." {
            return Ok(if too_big { Data::TooBig } else { Data::Message(out.into()) });
        }
        if too_big {
            continue;
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if out.len() + line.len() + 2 > max {
            too_big = true;
            out = Vec::new();
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
}

/// `FROM:<addr> params` / `TO:<addr> params` → the address (without `<>`) and the params.
fn parse_path(args: &str, prefix: &str) -> Result<(String, String), String> {
    let expected = format!("expected {prefix}<address>");
    let rest = match args.get(..prefix.len()) {
        Some(p) if p.eq_ignore_ascii_case(prefix) => args[prefix.len()..].trim_start(),
        _ => return Err(expected),
    };
    let Some(inner) = rest.strip_prefix('<') else { return Err(expected) };
    let Some(end) = inner.find('>') else { return Err(expected) };
    let addr = inner[..end].trim();
    // A source route (`@a,@b:user@c`) is obsolete; keep the mailbox.
    let addr = match addr.rsplit_once(':') {
        Some((route, mailbox)) if route.starts_with('@') => mailbox,
        _ => addr,
    };
    Ok((addr.to_owned(), inner[end + 1..].trim().to_owned()))
}

/// `local@domain`: a local part without spaces, brackets or control characters, and a domain
/// of dot-separated labels (letters, digits, hyphens; any other non-ASCII letter for
/// SMTPUTF8) or an address literal `[…]`. Lenient on the local part: it is the owner's.
fn plausible_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    let odd = |c: char| c.is_whitespace() || c.is_control() || "<>".contains(c);
    let local_ok = !local.is_empty() && local.len() <= 64 && !local.chars().any(odd);
    let domain_ok = match domain.strip_prefix('[') {
        Some(literal) => literal.len() > 1 && literal.ends_with(']') && !literal.chars().any(odd),
        None => {
            let label_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !odd(c));
            domain.len() <= 255
                && domain
                    .split('.')
                    .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-') && l.chars().all(label_char))
        }
    };
    local_ok && domain_ok
}

fn bad_parameter(message: String) -> Reject {
    Reject { code: 501, enhanced: "5.5.4", message }
}

/// `MAIL FROM` parameters of the announced extensions: `SIZE` (checked against `max`), `BODY`
/// and `SMTPUTF8`. A malformed one is `501`; one of an extension not announced is `555`
/// (RFC 5321 §4.1.1.11).
fn mail_params(params: &str, max: usize) -> Result<(), Reject> {
    for p in params.split_whitespace() {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        if k.eq_ignore_ascii_case("SIZE") {
            let v = v.unwrap_or_default();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_parameter(format!("invalid SIZE `{v}`")));
            }
            // All digits: only too many of them fail to parse, and that is too big too.
            if v.parse::<u64>().map_or(true, |size| size > max as u64) {
                return Err(Reject::too_big(max));
            }
        } else if k.eq_ignore_ascii_case("BODY") {
            if !v.is_some_and(|v| v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME")) {
                return Err(bad_parameter(format!("invalid `{p}` (7BIT or 8BITMIME)")));
            }
        } else if k.eq_ignore_ascii_case("SMTPUTF8") {
            if v.is_some() {
                return Err(bad_parameter("SMTPUTF8 takes no value".into()));
            }
        } else {
            return Err(Reject { code: 555, enhanced: "5.5.4", message: format!("unsupported parameter `{p}`") });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_params() {
        assert_eq!(parse_path("FROM:<a@b.c> SIZE=10", "FROM:"), Ok(("a@b.c".into(), "SIZE=10".into())));
        assert_eq!(parse_path("from: <a@b.c>", "FROM:"), Ok(("a@b.c".into(), String::new())));
        assert_eq!(parse_path("FROM:<>", "FROM:"), Ok((String::new(), String::new())));
        assert_eq!(parse_path("TO:<@relay.x:u@d.e>", "TO:"), Ok(("u@d.e".into(), String::new())));
        assert!(parse_path("FROM:a@b.c", "FROM:").is_err());
        assert!(parse_path("TO:<a@b.c", "TO:").is_err());
        assert!(parse_path("<a@b.c>", "TO:").is_err());
        assert!(plausible_address("x@y.z") && !plausible_address("x y@z") && !plausible_address("nobody"));
        for good in
            ["a+tag@x.example", "o'neil@mail.x-y.example", "user@[192.0.2.1]", "jørgen@bølge.example", "a@localhost"]
        {
            assert!(plausible_address(good), "{good}");
        }
        for bad in
            ["a@", "@b.example", "a@b..example", "a@.b", "a@b.", "a@-b.example", "a@b_c.example", "a@[]", "a\tb@c"]
        {
            assert!(!plausible_address(bad), "{bad}");
        }
        assert!(!plausible_address(&format!("{}@x.example", "l".repeat(65))));
        assert!(mail_params("SIZE=100 BODY=8BITMIME SMTPUTF8", 100).is_ok());
        assert!(mail_params("body=7bit", 100).is_ok());
        assert_eq!(mail_params("SIZE=101", 100).unwrap_err().code, 552);
        assert_eq!(mail_params("SIZE=99999999999999999999999", 100).unwrap_err().code, 552);
        for malformed in ["SIZE=x", "SIZE=+5", "SIZE", "BODY=BINARYMIME", "BODY", "SMTPUTF8=yes"] {
            assert_eq!(mail_params(malformed, 100).unwrap_err().code, 501, "{malformed}");
        }
        assert_eq!(mail_params("RET=HDRS", 100).unwrap_err().code, 555);
    }

    #[tokio::test]
    async fn reads_lines_with_limits() {
        let data: &[u8] = b"one\r\ntwo\nthree-is-long\r\nlast";
        let mut r = BufReader::with_capacity(4, data);
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::Text(t) if t == b"one"));
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::Text(t) if t == b"two"));
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::TooLong));
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::Text(t) if t == b"last"));
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::Closed));
    }
}
