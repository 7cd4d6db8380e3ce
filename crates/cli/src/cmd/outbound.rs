//! `flowgate deliveries get|resend`, `flowgate log-sources list|get|set|delete` and
//! `flowgate smtp get|set|unset`: what a tenant sends out, on a server.

use crate::client::{Conn, done, print_json};
use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Delivery commands.
#[derive(Subcommand)]
pub enum Deliveries {
    /// A delivery (webhook or e-mail) with every attempt.
    Get {
        /// Delivery id (from the execution's `deliveries`).
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Send a delivered or failed delivery again (same `webhook-id`).
    Resend {
        /// Delivery id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Log source commands.
#[derive(Subcommand)]
pub enum LogSources {
    /// The tenant's log sources with their counters.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// One log source.
    Get {
        /// Its name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Create or replace a log source from a JSON file (`{"syslog": {"url": "udp://…"}}`,
    /// `{"http": {"url": …}}` or `{"file": {"path": …}}`), or from `--syslog` / `--http` /
    /// `--file`.
    Set {
        /// Its name.
        name: String,
        /// A JSON file with the configuration.
        #[arg(long, short = 'f', conflicts_with_all = ["syslog", "http", "file"])]
        config: Option<PathBuf>,
        /// A syslog collector: `udp://host:514` or `tcp://host:601`.
        #[arg(long, conflicts_with_all = ["http", "file"])]
        syslog: Option<String>,
        /// An HTTP collector receiving NDJSON batches.
        #[arg(long, conflicts_with = "file")]
        http: Option<String>,
        /// A file in the server's log directory.
        #[arg(long)]
        file: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a log source.
    Delete {
        /// Its name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// SMTP commands.
#[derive(Subcommand)]
pub enum Smtp {
    /// The tenant's SMTP server (never its password), or which one its mail uses.
    Get {
        #[command(flatten)]
        conn: Conn,
    },
    /// Use this SMTP server for the tenant's mail: `smtp+starttls://user:pass@host:587?from=…`.
    Set {
        /// The server as a URL (`smtp://`, `smtp+starttls://`, `smtps://`).
        #[arg(value_name = "URL")]
        server: String,
        /// The sender address, when the URL has no `?from=`.
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Forget the tenant's SMTP server: back to the server's relay.
    Unset {
        #[command(flatten)]
        conn: Conn,
    },
}

fn json_body(v: &Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

pub async fn deliveries(c: Deliveries) -> anyhow::Result<ExitCode> {
    Ok(match c {
        Deliveries::Get { id, conn } => {
            done(conn.call(reqwest::Method::GET, &format!("/v1/deliveries/{id}"), None).await?, print_json)
        }
        Deliveries::Resend { id, conn } => {
            done(conn.call(reqwest::Method::POST, &format!("/v1/deliveries/{id}/resend"), None).await?, |v| {
                println!("{id}: {}", v["status"].as_str().unwrap_or("queued"))
            })
        }
    })
}

pub async fn log_sources(c: LogSources) -> anyhow::Result<ExitCode> {
    Ok(match c {
        LogSources::List { conn } => done(conn.call(reqwest::Method::GET, "/v1/log-sources", None).await?, |v| {
            for s in v["items"].as_array().into_iter().flatten() {
                let kind = s["config"].as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default();
                let st = &s["stats"];
                println!(
                    "{}  {kind}  sent {}  dropped {}  queued {}{}",
                    s["name"].as_str().unwrap_or(""),
                    st["sent"],
                    st["dropped"],
                    st["queued"],
                    st["lastError"].as_str().map(|e| format!("  last error: {e}")).unwrap_or_default()
                );
            }
        }),
        LogSources::Get { name, conn } => {
            done(conn.call(reqwest::Method::GET, &format!("/v1/log-sources/{name}"), None).await?, print_json)
        }
        LogSources::Set { name, config, syslog, http, file, conn } => {
            let body = match (config, syslog, http, file) {
                (Some(path), ..) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
                }
                (None, Some(url), ..) => json!({ "syslog": { "url": url } }),
                (None, None, Some(url), _) => json!({ "http": { "url": url } }),
                (None, None, None, Some(path)) => json!({ "file": { "path": path } }),
                _ => anyhow::bail!("give the configuration: --config FILE, --syslog URL, --http URL or --file PATH"),
            };
            let path = format!("/v1/log-sources/{name}");
            done(conn.call(reqwest::Method::PUT, &path, json_body(&body)).await?, |_| println!("log source {name} set"))
        }
        LogSources::Delete { name, conn } => {
            done(conn.call(reqwest::Method::DELETE, &format!("/v1/log-sources/{name}"), None).await?, |_| {
                println!("log source {name} deleted")
            })
        }
    })
}

pub async fn smtp(c: Smtp) -> anyhow::Result<ExitCode> {
    let show = |v: &Value| {
        match v["source"].as_str() {
            Some("tenant") => println!(
                "tenant's own: {}:{} ({}), from {}{}",
                v["host"].as_str().unwrap_or(""),
                v["port"],
                v["security"].as_str().unwrap_or(""),
                v["from"].as_str().unwrap_or(""),
                v["username"].as_str().map(|u| format!(", user {u}")).unwrap_or_default()
            ),
            Some("server") => println!("the server's relay"),
            _ => println!("none: e-mail steps fail and notifications are not sent"),
        };
    };
    Ok(match c {
        Smtp::Get { conn } => done(conn.call(reqwest::Method::GET, "/v1/smtp", None).await?, show),
        Smtp::Set { server, from, conn } => {
            let mut body = json!({ "url": server });
            if let Some(f) = from {
                body["from"] = json!(f);
            }
            done(conn.call(reqwest::Method::PUT, "/v1/smtp", json_body(&body)).await?, show)
        }
        Smtp::Unset { conn } => done(conn.call(reqwest::Method::DELETE, "/v1/smtp", None).await?, |_| {
            println!("the tenant's SMTP server is forgotten; its mail goes through the server's relay, if any")
        }),
    })
}
