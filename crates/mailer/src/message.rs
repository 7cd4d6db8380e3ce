//! The message a flow sends, and how it becomes MIME.
//!
//! The shape follows what the body holds, so every client shows the same thing:
//! - text only → `text/plain`; HTML only → `text/html`;
//! - both → `multipart/alternative` (text first: clients show the last part they understand);
//! - attachments → `multipart/mixed`, the body first, then one part per attachment.
//!
//! Bodies are UTF-8, sent quoted-printable or base64 as lettre finds shorter, so the message is
//! 7-bit clean and any server takes it; non-ASCII subjects and display names are RFC 2047
//! encoded, attachment names RFC 2231. Every message gets a `Date` and a `Message-ID` whose
//! domain is the sender's. Bcc recipients are in the envelope only, never in a header.

use crate::error::SendError;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A message to send.
///
/// Each entry of `to`, `cc` and `bcc` may itself list several addresses
/// (`"a@x.com, B <b@y.com>"`): it goes through [`split_addresses`] first, which is what
/// a templated recipient field usually produces.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Email {
    /// Sender; the [`SmtpConfig::from`](crate::SmtpConfig::from) address when absent.
    pub from: Option<String>,
    /// Primary recipients, shown in the `To` header.
    pub to: Vec<String>,
    /// Copied recipients, shown in the `Cc` header.
    pub cc: Vec<String>,
    /// Blind-copied recipients: in the envelope only, in no header.
    pub bcc: Vec<String>,
    /// Where replies should go, when not to the sender.
    pub reply_to: Option<String>,
    /// Subject line; line breaks become spaces.
    pub subject: String,
    /// Plain-text body. An empty or blank body counts as absent.
    pub text: Option<String>,
    /// HTML body. An empty or blank body counts as absent.
    pub html: Option<String>,
    /// Files attached after the body.
    pub attachments: Vec<EmailAttachment>,
    /// Extra headers, e.g. `("X-Flowgate-Execution", id)`. Headers the message is built from
    /// (`From`, `Subject`, `Content-Type`, …) cannot be set here; a repeated name keeps its
    /// last value.
    pub headers: Vec<(String, String)>,
}

/// A file attached to an [`Email`].
#[derive(Clone, Serialize, Deserialize)]
pub struct EmailAttachment {
    /// Name the recipient sees and saves the file under.
    pub filename: String,
    /// MIME type, e.g. `application/pdf`; empty means `application/octet-stream`.
    #[serde(default)]
    pub content_type: String,
    /// The file's bytes, sent base64-encoded.
    pub content: Vec<u8>,
}

impl fmt::Debug for EmailAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes themselves would drown any log line they end up in.
        f.debug_struct("EmailAttachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .finish()
    }
}

/// Splits `"a@x.com, B <b@y.com>; c@z.org"` into addresses (commas/semicolons/newlines),
/// trimming blanks.
///
/// A comma or semicolon inside a quoted display name or inside `<…>` does not split
/// (`"Doe, John" <j@x.com>` stays one address); a line break always does.
pub fn split_addresses(s: &str) -> Vec<String> {
    let mut addresses = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut flush = |current: &mut String| {
        let trimmed = current.trim();
        if !trimmed.is_empty() {
            addresses.push(trimmed.to_string());
        }
        current.clear();
    };
    for c in s.chars() {
        if c == '\n' || c == '\r' {
            // A line break ends an address even inside an unbalanced quote, so one typo
            // cannot swallow the rest of the list.
            in_quotes = false;
            escaped = false;
            in_angle = false;
            flush(&mut current);
            continue;
        }
        if in_quotes {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                current.push(c);
            }
            '<' => {
                in_angle = true;
                current.push(c);
            }
            '>' => {
                in_angle = false;
                current.push(c);
            }
            ',' | ';' if !in_angle => flush(&mut current),
            _ => current.push(c),
        }
    }
    flush(&mut current);
    addresses
}

/// Parses one address (`a@x.com`, `Name <a@x.com>`, `"Doe, J." <a@x.com>`).
pub(crate) fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty address".to_string());
    }
    let mailbox: Mailbox = s.parse().map_err(|e| format!("{e}"))?;
    // lettre's parser stops at the end of the first mailbox and ignores what follows, so
    // `a@x.com b@y.com` would quietly lose b: require that nothing follows.
    if !(s.ends_with('>') || s.ends_with(address_str(&mailbox.email))) {
        return Err("unexpected text after the address".to_string());
    }
    Ok(mailbox)
}

fn address_str(a: &lettre::Address) -> &str {
    a.as_ref()
}

/// Headers the message is built from; letting an [`Email`] override them would break the
/// structure or the envelope's agreement with the headers.
const RESERVED_HEADERS: &[&str] = &[
    "bcc",
    "cc",
    "content-disposition",
    "content-transfer-encoding",
    "content-type",
    "date",
    "from",
    "message-id",
    "mime-version",
    "reply-to",
    "sender",
    "subject",
    "to",
];

/// A built message and its `Message-ID` (with the angle brackets).
pub(crate) struct Built {
    pub(crate) message: Message,
    pub(crate) message_id: String,
}

/// Validates `email` and builds the message; `default_from` is the configured sender.
pub(crate) fn build(email: &Email, default_from: &Mailbox) -> Result<Built, SendError> {
    let from = match email.from.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => parse_mailbox(f).map_err(|e| SendError::permanent(format!("invalid sender address `{f}`: {e}")))?,
        None => default_from.clone(),
    };
    let to = recipients("to", &email.to)?;
    let cc = recipients("cc", &email.cc)?;
    let bcc = recipients("bcc", &email.bcc)?;
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        return Err(SendError::permanent("the message has no recipients (to, cc and bcc are all empty)"));
    }
    let reply_to = match &email.reply_to {
        Some(r) => recipients("reply_to", std::slice::from_ref(r))?,
        None => Vec::new(),
    };

    // Built by hand rather than derived from the headers, so that an address listed twice
    // (say in to and bcc) gets one RCPT: some servers refuse the second. It is also the only
    // place bcc goes: no header names it.
    let mut envelope_to: Vec<lettre::Address> = Vec::new();
    for mailbox in to.iter().chain(&cc).chain(&bcc) {
        if !envelope_to.iter().any(|a| address_str(a).eq_ignore_ascii_case(address_str(&mailbox.email))) {
            envelope_to.push(mailbox.email.clone());
        }
    }
    let envelope = Envelope::new(Some(from.email.clone()), envelope_to)
        .map_err(|e| SendError::permanent(format!("cannot build the envelope: {e}")))?;

    // The sender's domain rather than this host's name: containers have throwaway host
    // names, and some filters score a Message-ID whose domain does not match the From.
    let message_id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), from.email.domain());
    let subject = email.subject.split(['\r', '\n']).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");

    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .date_now()
        .message_id(Some(message_id.clone()))
        .envelope(envelope);
    for m in to {
        builder = builder.to(m);
    }
    for m in cc {
        builder = builder.cc(m);
    }
    for m in reply_to {
        builder = builder.reply_to(m);
    }
    for (name, value) in &email.headers {
        builder = builder.raw_header(extra_header(name, value)?);
    }

    let text = email.text.as_deref().filter(|t| !t.trim().is_empty());
    let html = email.html.as_deref().filter(|h| !h.trim().is_empty());
    let message = if email.attachments.is_empty() {
        match (text, html) {
            (_, None) => single_body(builder, ContentType::TEXT_PLAIN, text.unwrap_or_default()),
            (None, Some(h)) => single_body(builder, ContentType::TEXT_HTML, h),
            (Some(t), Some(h)) => builder.multipart(MultiPart::alternative_plain_html(t.to_string(), h.to_string())),
        }
    } else {
        let mut mixed = MultiPart::mixed().build();
        match (text, html) {
            (Some(t), Some(h)) => {
                mixed = mixed.multipart(MultiPart::alternative_plain_html(t.to_string(), h.to_string()))
            }
            (Some(t), None) => mixed = mixed.singlepart(SinglePart::plain(t.to_string())),
            (None, Some(h)) => mixed = mixed.singlepart(SinglePart::html(h.to_string())),
            // The files are the message.
            (None, None) => {}
        }
        for (i, a) in email.attachments.iter().enumerate() {
            mixed = mixed.singlepart(attachment(i, a)?);
        }
        builder.multipart(mixed)
    }
    .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))?;
    Ok(Built { message, message_id })
}

/// A message of one text part. Built as a plain body rather than as a MIME part, which lettre
/// would end with an extra line break that then belongs to the text.
fn single_body(
    builder: lettre::message::MessageBuilder,
    content_type: ContentType,
    body: &str,
) -> Result<Message, lettre::error::Error> {
    builder.header(MIME_VERSION_1_0).header(content_type).body(body.to_string())
}

/// Parses every address of one recipient field, naming the field and the address on error.
fn recipients(field: &str, entries: &[String]) -> Result<Vec<Mailbox>, SendError> {
    let mut mailboxes = Vec::new();
    for entry in entries {
        for address in split_addresses(entry) {
            let mailbox = parse_mailbox(&address)
                .map_err(|e| SendError::permanent(format!("invalid address `{address}` in {field}: {e}")))?;
            mailboxes.push(mailbox);
        }
    }
    Ok(mailboxes)
}

fn extra_header(name: &str, value: &str) -> Result<HeaderValue, SendError> {
    let name = name.trim();
    // RFC 5322 field names: printable ASCII but the colon. lettre also caps them at 76.
    let well_formed =
        !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    if !well_formed {
        return Err(SendError::permanent(format!("`{name}` is not a valid header name")));
    }
    if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(SendError::permanent(format!(
            "header `{name}` is set from the message's own fields and cannot be given in headers"
        )));
    }
    if value.contains(['\r', '\n']) {
        // A line break would start a header of the value's choosing.
        return Err(SendError::permanent(format!("the value of header `{name}` contains a line break")));
    }
    let name = HeaderName::new_from_ascii(name.to_string())
        .map_err(|_| SendError::permanent(format!("`{name}` is not a valid header name")))?;
    Ok(HeaderValue::new(name, value.to_string()))
}

fn attachment(index: usize, a: &EmailAttachment) -> Result<SinglePart, SendError> {
    let filename = a.filename.trim();
    if filename.is_empty() {
        return Err(SendError::permanent(format!("attachment {} has no filename", index + 1)));
    }
    if filename.contains(['\r', '\n']) {
        return Err(SendError::permanent(format!("the name of attachment {} contains a line break", index + 1)));
    }
    let content_type = match a.content_type.trim() {
        "" => "application/octet-stream",
        t => t,
    };
    let content_type = ContentType::parse(content_type).map_err(|_| {
        SendError::permanent(format!("attachment `{filename}` has an invalid content type `{content_type}`"))
    })?;
    // Bytes, not a string, so lettre always picks base64 and the file arrives byte for byte.
    Ok(Attachment::new(filename.to_string()).body(a.content.clone(), content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_addresses_handles_separators_and_blanks() {
        assert_eq!(split_addresses("a@x.com, B <b@y.com>; c@z.org"), vec!["a@x.com", "B <b@y.com>", "c@z.org"]);
        assert_eq!(split_addresses(" a@x.com ,,; \n\r\n b@y.com\n"), vec!["a@x.com", "b@y.com"]);
        assert_eq!(split_addresses(""), Vec::<String>::new());
        assert_eq!(split_addresses(" , ; \n"), Vec::<String>::new());
    }

    #[test]
    fn split_addresses_keeps_quoted_names_whole() {
        assert_eq!(
            split_addresses(r#""Doe, John" <j@x.com>, "Semi; \"Colon\"" <s@x.com>; <odd,name@x.com>"#),
            vec![r#""Doe, John" <j@x.com>"#, r#""Semi; \"Colon\"" <s@x.com>"#, "<odd,name@x.com>"]
        );
        // An unbalanced quote ends at the line break.
        assert_eq!(split_addresses("\"Oops <a@x.com>\nb@y.com"), vec!["\"Oops <a@x.com>", "b@y.com"]);
    }

    #[test]
    fn parse_mailbox_accepts_the_usual_forms() {
        assert_eq!(address_str(&parse_mailbox("a@x.com").unwrap().email), "a@x.com");
        let m = parse_mailbox("Jörg Müller <jm@example.com>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Jörg Müller"));
        let m = parse_mailbox(r#""Doe, John" <j@x.com>"#).unwrap();
        assert_eq!(m.name.as_deref(), Some("Doe, John"));
        for bad in ["", "x", "a@", "@x.com", "a@x.com b@y.com", "A <a@x.com", "a b@x.com"] {
            assert!(parse_mailbox(bad).is_err(), "{bad:?} parsed");
        }
    }
}
