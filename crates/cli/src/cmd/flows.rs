//! `flowgate flows get|run|activate|deactivate|state|reset-state`: flows on a server.

use crate::client::{Conn, done, print_json};
use anyhow::Context;
use clap::Subcommand;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flow commands.
#[derive(Subcommand)]
pub enum Command {
    /// Show a flow: trigger, webhook URL or e-mail address, next runs, last run (JSON).
    Get {
        /// Integration slug.
        integration: String,
        /// Flow slug.
        flow: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Run a flow now: a manual run of a manual flow, a test run of any other (marked so in
    /// its history).
    Run {
        /// Integration slug.
        integration: String,
        /// Flow slug.
        flow: String,
        /// JSON file with the trigger body (`-` reads stdin).
        #[arg(long)]
        input: Option<PathBuf>,
        /// A header of the trigger event, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// A query parameter of the trigger event, `name=value` (repeatable).
        #[arg(long = "query")]
        query: Vec<String>,
        /// Wait for the result and print it (exit 1 if the execution failed).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Switch a flow on (webhook, e-mail, schedule and poll triggers run again).
    Activate {
        /// Integration slug.
        integration: String,
        /// Flow slug.
        flow: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Switch a flow off at once, on every node.
    Deactivate {
        /// Integration slug.
        integration: String,
        /// Flow slug.
        flow: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show what a schedule or poll keeps (last slot, cursor, last error).
    State {
        /// Integration slug.
        integration: String,
        /// Flow slug.
        flow: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Forget a poll's state: the next poll is a first run again.
    ResetState {
        /// Integration slug.
        integration: String,
        /// Flow slug.
        flow: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    Ok(match c {
        Command::Get { integration, flow, conn } => done(
            conn.call(Method::GET, &format!("/v1/integrations/{integration}/flows/{flow}"), None).await?,
            print_json,
        ),
        Command::Run { integration, flow, input, headers, query, wait, conn } => {
            let body: Value = match input {
                None => Value::Null,
                Some(p) => {
                    let text = if p.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
                    } else {
                        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?
                    };
                    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", p.display()))?
                }
            };
            let mut h = Map::new();
            for line in headers {
                let (k, v) = line.split_once(':').context("--header expects `Name: value`")?;
                h.insert(k.trim().to_ascii_lowercase(), json!(v.trim()));
            }
            let mut q = Map::new();
            for pair in query {
                let (k, v) = pair.split_once('=').context("--query expects `name=value`")?;
                q.insert(k.to_owned(), json!(v));
            }
            let path =
                format!("/v1/integrations/{integration}/flows/{flow}/run{}", if wait { "?wait=true" } else { "" });
            let payload = json!({ "body": body, "headers": h, "query": q }).to_string();
            match conn.call(Method::POST, &path, Some(("application/json", payload))).await? {
                Err(f) => done(Err(f), |_| {}),
                Ok((_, v)) if wait && v.get("status").is_some() => {
                    print_json(&v);
                    if v["status"] == "failed" { ExitCode::from(1) } else { ExitCode::SUCCESS }
                }
                Ok((_, v)) => {
                    println!("started {}", v["executionId"].as_str().unwrap_or(""));
                    ExitCode::SUCCESS
                }
            }
        }
        Command::Activate { integration, flow, conn } => done(
            conn.call(Method::POST, &format!("/v1/integrations/{integration}/flows/{flow}/activate"), None).await?,
            |_| println!("{integration}/{flow} is active"),
        ),
        Command::Deactivate { integration, flow, conn } => done(
            conn.call(Method::POST, &format!("/v1/integrations/{integration}/flows/{flow}/deactivate"), None).await?,
            |_| println!("{integration}/{flow} is inactive"),
        ),
        Command::State { integration, flow, conn } => done(
            conn.call(Method::GET, &format!("/v1/integrations/{integration}/flows/{flow}/state"), None).await?,
            print_json,
        ),
        Command::ResetState { integration, flow, conn } => done(
            conn.call(Method::DELETE, &format!("/v1/integrations/{integration}/flows/{flow}/state"), None).await?,
            |v| {
                println!(
                    "{integration}/{flow}: {}",
                    if v["reset"] == true { "state forgotten" } else { "no state kept" }
                )
            },
        ),
    })
}
