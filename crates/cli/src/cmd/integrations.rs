//! `flowgate integrations list|get|delete`: the tenant's integrations on a server.

use crate::client::{Conn, done, print_json};
use clap::Subcommand;
use serde_json::Value;
use std::process::ExitCode;

/// Integration commands.
#[derive(Subcommand)]
pub enum Command {
    /// List the tenant's integrations: slug, version, live or not.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show an integration: its current version, flows, deployment and source.
    Get {
        /// Integration slug.
        slug: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete an integration: its flows stop at once; its versions and executions stay.
    Delete {
        /// Integration slug.
        slug: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    Ok(match c {
        Command::List { conn } => done(conn.call(Method::GET, "/v1/integrations", None).await?, |v| {
            let items = v["items"].as_array().or(v.as_array()).cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no integrations");
            }
            for i in items {
                let live = match &i["deployment"]["live"] {
                    Value::Bool(true) => "live",
                    Value::Bool(false) => "not live",
                    _ => "",
                };
                println!(
                    "{:<28} version {:<4} {live}",
                    i["integration"].as_str().unwrap_or(""),
                    i["version"].as_i64().map(|n| n.to_string()).unwrap_or_default()
                );
            }
        }),
        Command::Get { slug, conn } => {
            done(conn.call(Method::GET, &format!("/v1/integrations/{slug}"), None).await?, print_json)
        }
        Command::Delete { slug, conn } => {
            done(conn.call(Method::DELETE, &format!("/v1/integrations/{slug}"), None).await?, |_| {
                println!("{slug} deleted (its versions and executions are kept)");
            })
        }
    })
}
