//! Helpers the sink tests share: events to send, and a strict RFC 5424 parser to read what
//! the syslog sinks wrote.

#![allow(dead_code)]

use flowgate_sinks::{Level, LogEvent};
use serde_json::Map;
use std::time::Duration;

/// 2024-05-01T12:00:00.123Z
pub const AT: i64 = 1_714_564_800_123;

pub fn event(event: &str, level: Level, message: &str) -> LogEvent {
    LogEvent {
        timestamp_ms: AT,
        tenant: "acme".into(),
        integration: "erp".into(),
        flow: "orders".into(),
        execution_id: "ex-1".into(),
        step: None,
        event: event.into(),
        level,
        message: message.into(),
        duration_ms: None,
        fields: Map::new(),
    }
}

/// Polls `check` every few milliseconds until it holds or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}

/// An SD element: its SD-ID and its (name, unescaped value) parameters, in order.
pub type SdElement = (String, Vec<(String, String)>);

/// An RFC 5424 message taken apart.
#[derive(Debug)]
pub struct Syslog {
    pub pri: u8,
    pub version: String,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    pub sd: Vec<SdElement>,
    pub msg: Option<String>,
}

impl Syslog {
    pub fn param(&self, id: &str, name: &str) -> Option<&str> {
        let (_, params) = self.sd.iter().find(|(i, _)| i == id)?;
        params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Parses `text` as RFC 5424, panicking with the reason when it is not.
pub fn parse_syslog(text: &str) -> Syslog {
    let rest = text.strip_prefix('<').unwrap_or_else(|| panic!("no PRI in {text:?}"));
    let (pri, rest) = rest.split_once('>').expect("PRI closes");
    let pri: u8 = pri.parse().expect("PRI is a number");
    let mut parts = rest.splitn(7, ' ');
    let mut next = || parts.next().unwrap_or_else(|| panic!("header too short: {text:?}")).to_string();
    let (version, timestamp, hostname, app_name, procid, msgid) = (next(), next(), next(), next(), next(), next());
    let rest = parts.next().unwrap_or_else(|| panic!("no structured data: {text:?}"));
    for field in [&hostname, &app_name, &procid, &msgid] {
        assert!(!field.is_empty() && field.bytes().all(|b| (33..=126).contains(&b)), "bad header field {field:?}");
    }
    let (sd, rest) = parse_sd(rest);
    let msg = match rest {
        "" => None,
        r => Some(r.strip_prefix(' ').unwrap_or_else(|| panic!("no space before MSG: {text:?}")).to_string()),
    };
    Syslog { pri, version, timestamp, hostname, app_name, procid, msgid, sd, msg }
}

fn parse_sd(text: &str) -> (Vec<SdElement>, &str) {
    if let Some(rest) = text.strip_prefix('-') {
        return (Vec::new(), rest);
    }
    let mut elements = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        match chars.peek() {
            Some((_, '[')) => {
                chars.next();
            }
            Some((i, _)) => return (elements, &text[*i..]),
            None => return (elements, ""),
        }
        let mut id = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == ' ' || c == ']' {
                break;
            }
            assert!(c.is_ascii_graphic() && c != '=' && c != '"', "bad SD-ID character {c:?}");
            id.push(c);
            chars.next();
        }
        let mut params = Vec::new();
        loop {
            match chars.next() {
                Some((_, ']')) => break,
                Some((_, ' ')) => {}
                other => panic!("unexpected {other:?} in SD element {id}"),
            }
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some((_, '=')) => break,
                    Some((_, c)) => {
                        assert!(c.is_ascii_graphic() && c != ']' && c != '"', "bad SD-NAME character {c:?}");
                        name.push(c);
                    }
                    None => panic!("SD param without value"),
                }
            }
            assert!(name.len() <= 32, "SD-NAME too long: {name}");
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "value of {name} is quoted");
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        let (_, c) = chars.next().expect("escaped character");
                        assert!(matches!(c, '"' | '\\' | ']'), "needless escape of {c:?}");
                        value.push(c);
                    }
                    Some((_, '"')) => break,
                    Some((_, c)) => {
                        assert!(c != ']', "unescaped ] in value of {name}");
                        value.push(c);
                    }
                    None => panic!("unterminated value of {name}"),
                }
            }
            params.push((name, value));
        }
        elements.push((id, params));
    }
}
