//! What a log source is configured with, and the checks that turn a bad configuration into a
//! message for whoever wrote it — before anything is started.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use url::{Host, Url};

/// Records in one HTTP batch unless configured.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Most records in one HTTP batch: beyond this a single request grows unreasonably large.
pub const MAX_BATCH_SIZE: usize = 10_000;
/// How long an HTTP batch waits for more records, in milliseconds, unless configured.
pub const DEFAULT_FLUSH_MS: u64 = 1000;
/// Longest configurable batching wait: one hour.
pub const MAX_FLUSH_MS: u64 = 3_600_000;
/// The APP-NAME sent in syslog records unless configured.
pub const DEFAULT_APP_NAME: &str = "flowgate";

/// Where a log source delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SinkConfig {
    /// RFC 5424 syslog to a collector.
    #[serde(rename_all = "camelCase")]
    Syslog {
        /// `udp://host:514` or `tcp://host:601`.
        url: String,
        /// The APP-NAME of each record (default `flowgate`).
        #[serde(default)]
        app_name: Option<String>,
        /// The HOSTNAME of each record (default: this machine's host name).
        #[serde(default)]
        hostname: Option<String>,
    },
    /// Newline-delimited JSON POSTed in batches.
    #[serde(rename_all = "camelCase")]
    Http {
        /// The `http://` or `https://` endpoint.
        url: String,
        /// Extra request headers, such as `Authorization`.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Records per request (default 100).
        #[serde(default)]
        batch_size: Option<usize>,
        /// Longest wait for a batch to fill, in milliseconds (default 1000).
        #[serde(default)]
        flush_ms: Option<u64>,
    },
    /// One JSON line per record appended to a local file.
    #[serde(rename_all = "camelCase")]
    File {
        /// Absolute path of the file; it and its directory are created when missing.
        path: String,
    },
}

/// How syslog records travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// A syslog collector's address, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyslogTarget {
    pub transport: Transport,
    /// A host name or an IP address, without IPv6 brackets: ready for a resolver.
    pub host: String,
    pub port: u16,
}

/// Request headers the sink sets itself; letting configuration override them would produce
/// malformed requests.
const RESERVED_HEADERS: &[&str] = &["content-length", "transfer-encoding", "host", "connection"];

impl SinkConfig {
    /// `syslog`, `http` or `file`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Syslog { .. } => "syslog",
            SinkConfig::Http { .. } => "http",
            SinkConfig::File { .. } => "file",
        }
    }

    /// Checks the configuration, describing the first problem found.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SinkConfig::Syslog { url, app_name, hostname } => {
                parse_syslog_url(url)?;
                if let Some(name) = app_name {
                    check_header_field("appName", name, 48)?;
                }
                if let Some(name) = hostname {
                    check_header_field("hostname", name, 255)?;
                }
                Ok(())
            }
            SinkConfig::Http { url, headers, batch_size, flush_ms } => {
                parse_http_url(url)?;
                for (name, value) in headers {
                    let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
                    if RESERVED_HEADERS.contains(&header.as_str()) {
                        return Err(format!("header {name:?} is set by the sink and cannot be configured"));
                    }
                    reqwest::header::HeaderValue::from_str(value)
                        .map_err(|_| format!("the value of header {name:?} contains characters HTTP forbids"))?;
                }
                if let Some(size) = batch_size
                    && !(1..=MAX_BATCH_SIZE).contains(size)
                {
                    return Err(format!("batchSize must be between 1 and {MAX_BATCH_SIZE}, not {size}"));
                }
                if let Some(ms) = flush_ms
                    && !(1..=MAX_FLUSH_MS).contains(ms)
                {
                    return Err(format!("flushMs must be between 1 and {MAX_FLUSH_MS}, not {ms}"));
                }
                Ok(())
            }
            SinkConfig::File { path } => {
                if path.is_empty() {
                    return Err("the file path is empty".into());
                }
                if !Path::new(path).is_absolute() {
                    return Err(format!("the file path {path:?} must be absolute"));
                }
                if path.ends_with('/') || Path::new(path).file_name().is_none() {
                    return Err(format!("the file path {path:?} names a directory, not a file"));
                }
                Ok(())
            }
        }
    }
}

pub(crate) fn parse_syslog_url(raw: &str) -> Result<SyslogTarget, String> {
    let url = Url::parse(raw).map_err(|e| match e {
        url::ParseError::EmptyHost => format!("syslog url {raw:?} has no host"),
        e => format!("syslog url {raw:?} is not a URL ({e}); expected udp://host:514 or tcp://host:601"),
    })?;
    let transport = match url.scheme() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        other => {
            return Err(format!(
                "syslog url {raw:?} has scheme {other:?}; expected udp://host:port or tcp://host:port"
            ));
        }
    };
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(format!("syslog url {raw:?} has no host")),
    };
    let port = url.port().ok_or_else(|| {
        format!("syslog url {raw:?} has no port (syslog uses 514 over UDP and 601 over TCP; write it out)")
    })?;
    if port == 0 {
        return Err(format!("syslog url {raw:?} has port 0"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("syslog url {raw:?} carries credentials, which syslog has no way to send"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("syslog url {raw:?} must be just scheme://host:port, without a path or query"));
    }
    Ok(SyslogTarget { transport, host, port })
}

pub(crate) fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| match e {
        url::ParseError::EmptyHost => format!("http url {raw:?} has no host"),
        e => format!("http url {raw:?} is not a URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("http url {raw:?} has scheme {:?}; expected http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("http url {raw:?} has no host"));
    }
    Ok(url)
}

/// RFC 5424 header fields (HOSTNAME, APP-NAME) are printable US-ASCII without spaces.
fn check_header_field(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > max {
        return Err(format!("{what} is longer than the {max} characters RFC 5424 allows"));
    }
    if !value.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(format!("{what} {value:?} may only contain printable ASCII characters without spaces"));
    }
    if value == "-" {
        return Err(format!("{what} cannot be \"-\", which syslog reads as \"no value\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syslog(url: &str) -> SinkConfig {
        SinkConfig::Syslog { url: url.into(), app_name: None, hostname: None }
    }

    fn http(url: &str) -> SinkConfig {
        SinkConfig::Http { url: url.into(), headers: BTreeMap::new(), batch_size: None, flush_ms: None }
    }

    fn error(config: SinkConfig) -> String {
        config.validate().expect_err("should be refused")
    }

    #[test]
    fn syslog_urls() {
        assert_eq!(
            parse_syslog_url("udp://127.0.0.1:514").unwrap(),
            SyslogTarget { transport: Transport::Udp, host: "127.0.0.1".into(), port: 514 }
        );
        assert_eq!(
            parse_syslog_url("tcp://[::1]:601").unwrap(),
            SyslogTarget { transport: Transport::Tcp, host: "::1".into(), port: 601 }
        );
        assert_eq!(parse_syslog_url("tcp://logs.example.com:6514").unwrap().host, "logs.example.com");
        assert!(error(syslog("http://h:514")).contains("expected udp://host:port"));
        assert!(error(syslog("udp://h")).contains("has no port"));
        assert!(error(syslog("udp://:514")).contains("no host"));
        assert!(error(syslog("udp:///x")).contains("no host"));
        assert!(error(syslog("udp://h:514/path")).contains("without a path"));
        assert!(error(syslog("nonsense")).contains("not a URL"));
        let bad_app = SinkConfig::Syslog { url: "udp://h:514".into(), app_name: Some("my app".into()), hostname: None };
        assert!(error(bad_app).contains("printable ASCII"));
        let long_host =
            SinkConfig::Syslog { url: "udp://h:514".into(), app_name: None, hostname: Some("h".repeat(256)) };
        assert!(error(long_host).contains("255"));
    }

    #[test]
    fn http_configs() {
        assert!(http("https://siem.example.com/ingest").validate().is_ok());
        assert!(error(http("ftp://h/x")).contains("expected http or https"));
        assert!(error(http("not a url")).contains("not a URL"));
        assert!(error(http("http://:80/x")).contains("no host"));
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".into(), "Bearer t".into());
        let ok = SinkConfig::Http {
            url: "http://h".into(),
            headers: headers.clone(),
            batch_size: Some(5),
            flush_ms: Some(10),
        };
        assert!(ok.validate().is_ok());
        headers.insert("bad header".into(), "x".into());
        let bad = SinkConfig::Http { url: "http://h".into(), headers, batch_size: None, flush_ms: None };
        assert!(error(bad).contains("not a valid HTTP header name"));
        let reserved = SinkConfig::Http {
            url: "http://h".into(),
            headers: [("Content-Length".to_string(), "1".to_string())].into(),
            batch_size: None,
            flush_ms: None,
        };
        assert!(error(reserved).contains("set by the sink"));
        let zero =
            SinkConfig::Http { url: "http://h".into(), headers: BTreeMap::new(), batch_size: Some(0), flush_ms: None };
        assert!(error(zero).contains("batchSize"));
        let never =
            SinkConfig::Http { url: "http://h".into(), headers: BTreeMap::new(), batch_size: None, flush_ms: Some(0) };
        assert!(error(never).contains("flushMs"));
    }

    #[test]
    fn file_paths() {
        assert!(SinkConfig::File { path: "/var/log/flowgate/events.jsonl".into() }.validate().is_ok());
        assert!(error(SinkConfig::File { path: "logs/events.jsonl".into() }).contains("must be absolute"));
        assert!(error(SinkConfig::File { path: "".into() }).contains("empty"));
        assert!(error(SinkConfig::File { path: "/var/log/".into() }).contains("directory"));
    }

    #[test]
    fn kinds_and_serde_shape() {
        assert_eq!(syslog("udp://h:514").kind(), "syslog");
        assert_eq!(http("http://h").kind(), "http");
        let json = serde_json::json!({"http": {"url": "http://h", "batchSize": 3}});
        let config: SinkConfig = serde_json::from_value(json).unwrap();
        assert_eq!(
            config,
            SinkConfig::Http { url: "http://h".into(), headers: BTreeMap::new(), batch_size: Some(3), flush_ms: None }
        );
        let json = serde_json::json!({"syslog": {"url": "tcp://h:601", "appName": "fg"}});
        let config: SinkConfig = serde_json::from_value(json).unwrap();
        assert_eq!(
            config,
            SinkConfig::Syslog { url: "tcp://h:601".into(), app_name: Some("fg".into()), hostname: None }
        );
    }
}
