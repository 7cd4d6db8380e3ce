//! `flowgate connections list|get|authorize|test`: an integration's connections on a server —
//! their status (never a secret), the provider URL that authorizes one, and a check.

use crate::client::{Conn, done, print_json};
use clap::Subcommand;
use serde_json::Value;
use std::process::ExitCode;

/// Connection commands.
#[derive(Subcommand)]
pub enum Command {
    /// List an integration's connections: kind, status, expiry.
    List {
        /// Integration slug.
        integration: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one connection's status (JSON).
    Get {
        /// Integration slug.
        integration: String,
        /// Connection name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print the provider URL to open in a browser to authorize a connection (valid 10
    /// minutes, once); the provider sends the browser back to the server's /oauth/callback.
    Authorize {
        /// Integration slug.
        integration: String,
        /// Connection name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Check a connection without running a flow: obtain its credentials.
    Test {
        /// Integration slug.
        integration: String,
        /// Connection name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn line(c: &Value) {
    let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
    let mut text = format!("{:<20} {:<12} {:<16}", s("name"), s("kind"), s("status"));
    if let Some(at) = c["expiresAt"].as_str() {
        text.push_str(&format!(" expires {at}"));
    }
    if let Some(m) = c["message"].as_str() {
        text.push_str(&format!(" — {m}"));
    }
    println!("{}", text.trim_end());
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    Ok(match c {
        Command::List { integration, conn } => {
            done(conn.call(Method::GET, &format!("/v1/integrations/{integration}/connections"), None).await?, |v| {
                let items = v["connections"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    println!("no connections");
                }
                items.iter().for_each(line);
            })
        }
        Command::Get { integration, name, conn } => done(
            conn.call(Method::GET, &format!("/v1/integrations/{integration}/connections/{name}"), None).await?,
            print_json,
        ),
        Command::Authorize { integration, name, conn } => done(
            conn.call(Method::GET, &format!("/v1/integrations/{integration}/connections/{name}/authorize"), None)
                .await?,
            |v| {
                println!("Open this URL in a browser to authorize `{name}` (valid for 10 minutes, once):");
                println!("{}", v["url"].as_str().unwrap_or(""));
            },
        ),
        Command::Test { integration, name, conn } => done(
            conn.call(Method::POST, &format!("/v1/integrations/{integration}/connections/{name}/test"), None).await?,
            |v| line(&v["connection"]),
        ),
    })
}
