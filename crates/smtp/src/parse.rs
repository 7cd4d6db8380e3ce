//! A received message → the JSON an e-mail flow sees as `$trigger.body`, with `mail-parser`
//! doing the MIME work (multipart trees, transfer encodings, charsets, RFC 2047 words).
//!
//! ```json
//! { "from": {"name", "address"}, "to": [..], "cc": [..], "replyTo": {..}, "subject": "…",
//!   "date": "2026-12-01T08:00:00Z", "messageId": "…", "inReplyTo": "…", "text": "…",
//!   "html": "…" | null, "headers": {"x-mailer": "…", "received": ["…", "…"]},
//!   "attachments": [{"filename", "contentType", "size", "contentId", "content" (base64)}],
//!   "size": 1234 }
//! ```

use base64::Engine as _;
use mail_parser::{Addr, Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use serde_json::{Map, Value, json};

/// A message that cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// Most parameters one `Content-Type` or `Content-Disposition` header may have (RFC 2231
/// continuations included): mail-parser merges them in time quadratic in their number, so a
/// 470 KB header of 40,000 took 12 s of a thread (found by fuzzing, issue 12). Real ones have
/// a handful.
pub const MAX_HEADER_PARAMETERS: usize = 100;

/// Counts the parameters of every `Content-Type`/`Content-Disposition` header in the message
/// — of the message and of each MIME part, folded lines included — in one pass.
fn check_header_parameters(raw: &[u8]) -> Result<(), ParseError> {
    let mut counting = false;
    let mut params = 0usize;
    for line in raw.split(|b| *b == b'\n') {
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded {
            let lower = |n: usize| line.get(..n).map(<[u8]>::to_ascii_lowercase);
            counting = lower(13).as_deref() == Some(b"content-type:".as_slice())
                || lower(20).as_deref() == Some(b"content-disposition:".as_slice());
            params = 0;
        }
        if counting {
            params += line.iter().filter(|b| **b == b';').count();
            if params > MAX_HEADER_PARAMETERS {
                return Err(ParseError(format!(
                    "a Content-Type or Content-Disposition header has more than {MAX_HEADER_PARAMETERS} parameters"
                )));
            }
        }
    }
    Ok(())
}

/// Parses a message as received by the SMTP receiver.
///
/// # Errors
/// When nothing of a message can be found in `raw` (no header at all).
pub fn parse_message(raw: &[u8]) -> Result<Value, ParseError> {
    check_header_parameters(raw)?;
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| ParseError("no message headers found".into()))?;
    let has_html = message.html_bodies().any(|p| matches!(p.body, PartType::Html(_)));
    let has_text = message.text_bodies().any(|p| matches!(p.body, PartType::Text(_)));
    let text = if has_text || has_html { message.body_text(0).map(|t| t.into_owned()) } else { None };
    let attachments: Vec<Value> = message
        .attachments()
        .map(|part| {
            let content = part.contents();
            json!({
                "filename": part.attachment_name(),
                "contentType": part.content_type().map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                }.to_ascii_lowercase()),
                "size": content.len(),
                "contentId": part.content_id(),
                "content": base64::engine::general_purpose::STANDARD.encode(content),
            })
        })
        .collect();
    Ok(json!({
        "from": message.from().and_then(Address::first).map(addr),
        "to": addresses(message.to()),
        "cc": addresses(message.cc()),
        "replyTo": message.reply_to().and_then(Address::first).map(addr),
        "subject": message.subject(),
        "date": message.date().map(|d| utc_rfc3339(d.to_timestamp())),
        "messageId": message.message_id(),
        "inReplyTo": first_text(message.in_reply_to()),
        "text": text,
        "html": if has_html { message.body_html(0).map(|h| h.into_owned()) } else { None },
        "headers": headers(&message),
        "attachments": attachments,
        "size": raw.len(),
    }))
}

fn addr(a: &Addr<'_>) -> Value {
    json!({ "name": a.name(), "address": a.address() })
}

fn addresses(a: Option<&Address<'_>>) -> Value {
    Value::Array(a.map(|a| a.iter().map(addr).collect()).unwrap_or_default())
}

fn first_text(v: &HeaderValue<'_>) -> Option<String> {
    match v {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => l.first().map(|t| t.to_string()),
        _ => None,
    }
}

/// Top-level headers by lower-case name: decoded text where the header is text, else the raw
/// value; a repeated header becomes a list.
fn headers(message: &mail_parser::Message<'_>) -> Value {
    let mut out = Map::new();
    let raw: Vec<(&str, &str)> = message.headers_raw().collect();
    for (i, h) in message.headers().iter().enumerate() {
        let name = h.name().to_ascii_lowercase();
        let value = match h.value() {
            // Headers mail-parser keeps raw (`X-…`) still have their folding.
            HeaderValue::Text(t) => unfold(t),
            HeaderValue::TextList(l) => l.iter().map(|t| unfold(t)).collect::<Vec<_>>().join(", "),
            _ => raw.get(i).map(|(_, v)| unfold(v)).unwrap_or_default(),
        };
        match out.get_mut(&name) {
            Some(Value::Array(list)) => list.push(Value::String(value)),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, Value::String(value)]);
            }
            None => {
                out.insert(name, Value::String(value));
            }
        }
    }
    Value::Object(out)
}

/// A raw header value on one line, trimmed.
fn unfold(v: &str) -> String {
    v.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Epoch seconds as RFC 3339 in UTC (`2026-12-01T08:00:00Z`).
fn utc_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {

    /// Found by fuzzing (issue 12): a header of 40,000 RFC 2231 continuations took 12 s of a
    /// thread in mail-parser (quadratic). Refused at once; a message with a few still parses.
    #[test]
    fn many_header_parameters_are_refused_at_once() {
        let params: String = (0..40_000).map(|i| format!("p{i}*1=x; ")).collect();
        let raw = format!("From: a@b.c\r\nContent-Type: text/plain; {params}\r\n\r\nx");
        let started = std::time::Instant::now();
        let err = parse_message(raw.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("more than 100 parameters"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "{:?}", started.elapsed());
        // Folded over lines, and inside a MIME part, it counts the same.
        let folded: String = (0..200).map(|i| format!(";\r\n p{i}=x")).collect();
        let part = format!(
            "From: a@b.c\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment{folded}\r\n\r\nx\r\n--b--\r\n"
        );
        assert!(parse_message(part.as_bytes()).is_err());
        let ok = "From: a@b.c\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\r\nhello";
        assert_eq!(parse_message(ok.as_bytes()).unwrap()["text"], "hello");
    }
    use super::*;

    #[test]
    fn quoted_printable_latin1_and_encoded_words() {
        let raw = b"From: =?ISO-8859-1?Q?J=F8rgen_Hansen?= <jorgen@acme.example>\r\n\
To: Orders <orders@in.example.com>, b@in.example.com\r\n\
Subject: =?UTF-8?B?R3LDvMOfZSDigJMgwr0g4oKs?=\r\n\
Date: Tue, 1 Dec 2026 09:30:00 +0100\r\n\
Message-ID: <abc123@acme.example>\r\n\
Received: from a by b\r\n\
Received: from c by d\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Bl=E5b=E6r og r=F8dgr=F8d =\r\n\
med fl=F8de\r\n";
        let v = parse_message(raw).unwrap();
        assert_eq!(v["from"], json!({ "name": "Jørgen Hansen", "address": "jorgen@acme.example" }));
        assert_eq!(
            v["to"],
            json!([{ "name": "Orders", "address": "orders@in.example.com" }, { "name": null, "address": "b@in.example.com" }])
        );
        assert_eq!(v["subject"], "Grüße – ½ €");
        assert_eq!(v["date"], "2026-12-01T08:30:00Z");
        assert_eq!(v["messageId"], "abc123@acme.example");
        assert_eq!(v["text"].as_str().unwrap().trim_end(), "Blåbær og rødgrød med fløde");
        assert_eq!(v["html"], Value::Null);
        assert_eq!(v["headers"]["received"].as_array().map(Vec::len), Some(2), "{}", v["headers"]);
        assert_eq!(v["attachments"], json!([]));
        assert_eq!(v["size"], raw.len());
    }

    #[test]
    fn missing_date_and_empty_body() {
        let v = parse_message(b"From: a@b.example\r\nSubject: nothing\r\n\r\n").unwrap();
        assert_eq!(v["date"], Value::Null);
        assert_eq!(v["subject"], "nothing");
        assert!(v["text"].is_null() || v["text"] == "", "{}", v["text"]);
        assert_eq!(v["cc"], json!([]));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_message(b"").is_err());
        assert!(parse_message(b"\r\n\r\n").is_err());
        assert!(parse_message(b"no header here, just words\r\n").is_err());
    }

    #[test]
    fn repeated_headers_and_folding() {
        let raw = b"From: a@b.example\r\nX-Tag: one\r\nX-Tag: two\r\nX-Tag: three\r\n\
X-Long: first part\r\n\tsecond part\r\nReply-To: \"Help Desk\" <help@b.example>\r\n\
In-Reply-To: <orig-1@b.example>\r\n\r\nbody\r\n";
        let v = parse_message(raw).unwrap();
        assert_eq!(v["headers"]["x-tag"], json!(["one", "two", "three"]));
        assert_eq!(v["headers"]["x-long"], "first part second part");
        assert_eq!(v["headers"]["from"], "a@b.example");
        assert_eq!(v["replyTo"], json!({ "name": "Help Desk", "address": "help@b.example" }));
        assert_eq!(v["inReplyTo"], "orig-1@b.example");
        assert_eq!(v["to"], json!([]));
        assert_eq!(v["text"].as_str().unwrap().trim_end(), "body");
    }

    #[test]
    fn html_only_gets_a_derived_text() {
        let raw = b"From: a@b.example\r\nSubject: =?iso-8859-1?q?R=E9sum=E9?= of the day\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hello <b>there</b></p></body></html>\r\n";
        let v = parse_message(raw).unwrap();
        assert_eq!(v["subject"], "R\u{e9}sum\u{e9} of the day", "an encoded word, then plain text");
        assert!(v["html"].as_str().unwrap().contains("<b>there</b>"));
        let text = v["text"].as_str().unwrap();
        assert!(text.contains("Hello there") && !text.contains('<'), "{text}");
    }

    #[test]
    fn inline_images_with_a_filename_are_attachments() {
        let raw = b"From: a@b.example\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p><img src=\"cid:logo@b\"></p>\r\n\
--rel\r\nContent-Type: image/png; name=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\
Content-ID: <logo@b>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\r\niVBORw0KGgo=\r\n\
--rel--\r\n";
        let v = parse_message(raw).unwrap();
        let atts = v["attachments"].as_array().unwrap();
        assert_eq!(atts.len(), 1, "{atts:?}");
        assert_eq!(atts[0]["filename"], "logo.png");
        assert_eq!(atts[0]["contentType"], "image/png");
        assert_eq!(atts[0]["contentId"], "logo@b");
        assert_eq!(atts[0]["size"], 8);
        assert_eq!(atts[0]["content"], "iVBORw0KGgo=");
        assert!(v["html"].as_str().unwrap().contains("cid:logo@b"));
    }

    #[test]
    fn a_truncated_multipart_still_gives_what_it_has() {
        let raw = b"From: a@b.example\r\nSubject: cut\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nthe first part\r\n--b1\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBER";
        let v = parse_message(raw).unwrap();
        assert_eq!(v["subject"], "cut");
        assert_eq!(v["text"].as_str().unwrap().trim_end(), "the first part");
        assert_eq!(v["size"], raw.len());
    }

    #[test]
    fn formats_utc() {
        assert_eq!(utc_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_rfc3339(1_764_577_800), "2025-12-01T08:30:00Z");
    }
}
