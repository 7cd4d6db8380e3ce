//! `flowgate tenants create|list`: tenants, with the server's admin token.

use crate::client::{Conn, done, print_json};
use clap::Subcommand;
use serde_json::json;
use std::process::ExitCode;

/// Tenant commands (they use `--admin-token`, not a tenant's token).
#[derive(Subcommand)]
pub enum Command {
    /// Create a tenant; prints its first API token (shown once).
    Create {
        /// Its id (part of its webhook URLs).
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        conn: AdminConn,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        conn: AdminConn,
    },
}

/// The server and its admin token.
#[derive(clap::Args, Clone)]
pub struct AdminConn {
    /// Server URL.
    #[arg(long, env = "FLOWGATE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's admin token.
    #[arg(long, env = "FLOWGATE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

impl AdminConn {
    fn conn(&self) -> anyhow::Result<Conn> {
        let token = self.admin_token.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "tenant commands need the server's admin token, not a tenant's: pass --admin-token or set \
                 FLOWGATE_ADMIN_TOKEN (the first `flowgate serve` wrote it to <data-dir>/admin-token)"
            )
        })?;
        Ok(Conn { url: self.url.clone(), token: Some(token) })
    }
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    Ok(match c {
        Command::Create { id, name, conn } => {
            let body = json!({ "id": id, "name": name }).to_string();
            done(conn.conn()?.call(Method::POST, "/v1/tenants", Some(("application/json", body))).await?, |v| {
                println!(
                    "tenant `{}` created; its API token (shown once):\n\n    {}\n",
                    v["id"].as_str().unwrap_or(""),
                    v["token"].as_str().unwrap_or("")
                );
            })
        }
        Command::List { conn } => done(conn.conn()?.call(Method::GET, "/v1/tenants", None).await?, print_json),
    })
}
