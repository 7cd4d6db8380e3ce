//! `flowgate tokens create|list|revoke`.

use crate::client::{Conn, done};
use clap::Subcommand;
use serde_json::json;
use std::process::ExitCode;

/// Token commands.
#[derive(Subcommand)]
pub enum Command {
    /// Create a token (printed once).
    Create {
        /// What it is for (`tokens create ci-bot`, or `--name ci-bot`).
        #[arg(value_name = "NAME", required_unless_present = "name_flag", conflicts_with = "name_flag")]
        name: Option<String>,
        /// The same, as an option.
        #[arg(long = "name", id = "name_flag", value_name = "NAME")]
        name_flag: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List tokens (never the secrets).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id (`tok_…`).
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    Ok(match c {
        Command::Create { name, name_flag, conn } => {
            let name = name.or(name_flag).unwrap_or_default();
            let r = conn
                .call(
                    reqwest::Method::POST,
                    "/v1/tokens",
                    Some(("application/json", json!({ "name": name }).to_string())),
                )
                .await?;
            done(r, |v| {
                println!(
                    "{}\n(id {}; store it now, it is not shown again)",
                    v["token"].as_str().unwrap_or(""),
                    v["id"].as_str().unwrap_or("")
                )
            })
        }
        Command::List { conn } => done(conn.call(reqwest::Method::GET, "/v1/tokens", None).await?, |v| {
            for t in v["items"].as_array().into_iter().flatten() {
                let state = if t["revokedAt"].is_null() { "active" } else { "revoked" };
                println!(
                    "{}  {}…  {}  {}",
                    t["id"].as_str().unwrap_or(""),
                    t["prefix"].as_str().unwrap_or(""),
                    state,
                    t["name"].as_str().unwrap_or("")
                );
            }
        }),
        Command::Revoke { id, conn } => {
            done(conn.call(reqwest::Method::DELETE, &format!("/v1/tokens/{id}"), None).await?, |_| {
                println!("revoked {id}")
            })
        }
    })
}
