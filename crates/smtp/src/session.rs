//! One SMTP conversation (RFC 5321, receiving side): greeting, `EHLO`/`HELO`, transactions of
//! `MAIL FROM` / `RCPT TO` / `DATA`, `RSET`, `NOOP`, `VRFY`, `HELP`, `QUIT`.
//!
//! Replies carry enhanced status codes (RFC 2034). Commands are read from a buffered reader, so
//! pipelined commands (RFC 2920) work; each reply is written as its command is handled. Limits:
//! command lines of [`MAX_COMMAND_LINE`] bytes, messages of `max_message_bytes` (never more
//! held in memory: the rest of an oversized message is read and dropped, then refused), a
//! number of recipients, and an idle timeout per command or line.

use crate::{Envelope, MailHandler, Reject, SmtpSettings};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Longest command line (RFC 5321 asks for 512 at least; extensions make lines longer).
pub const MAX_COMMAND_LINE: usize = 4096;
/// Longest line inside a message; a longer one makes the message refused as too big.
const MAX_DATA_LINE: usize = 1024 * 1024;

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
        out.push_str(&format!("{code}{sep}{l}\r\n"));
    }
    w.write_all(out.as_bytes()).await?;
    w.flush().await
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
    reply_enhanced(w, r.code, r.enhanced, &text).await
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
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => {
                return reply_enhanced(w, 421, "4.3.2", &format!("{host} shutting down, try again later")).await;
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
                    Ok((addr, _)) if !plausible_address(&addr) => {
                        reply_enhanced(w, 501, "5.1.3", &format!("invalid recipient address <{addr}>")).await?;
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
                let message = match read_data(r, settings).await? {
                    Data::Closed => return Ok(()),
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
    Closed,
}

/// Reads the message up to the line `.`, dot-unstuffed, with CRLF line ends.
async fn read_data<R: AsyncBufRead + Unpin>(r: &mut R, settings: &SmtpSettings) -> std::io::Result<Data> {
    let max = settings.max_message_bytes;
    let mut out: Vec<u8> = Vec::new();
    let mut too_big = false;
    loop {
        let line = match tokio::time::timeout(settings.command_timeout, read_line(r, MAX_DATA_LINE)).await {
            Err(_) => return Ok(Data::TimedOut),
            Ok(l) => l?,
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

/// `local@domain` without spaces, brackets or control characters.
fn plausible_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    let clean = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>".contains(c));
    clean(local) && clean(domain) && a.len() <= 320
}

/// `MAIL FROM` parameters: `SIZE` is checked; `BODY`, `SMTPUTF8` and others are accepted.
fn mail_params(params: &str, max: usize) -> Result<(), Reject> {
    for p in params.split_whitespace() {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if k.eq_ignore_ascii_case("SIZE") {
            let size: u64 = v.parse().map_err(|_| Reject {
                code: 501,
                enhanced: "5.5.4",
                message: format!("invalid SIZE `{v}`"),
            })?;
            if size > max as u64 {
                return Err(Reject::too_big(max));
            }
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
        assert!(mail_params("SIZE=100 BODY=8BITMIME", 100).is_ok());
        assert_eq!(mail_params("SIZE=101", 100).unwrap_err().code, 552);
        assert_eq!(mail_params("SIZE=x", 100).unwrap_err().code, 501);
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
