//! `flowgate executions list|get|retry|replay|cancel|to-test`.

use crate::client::{Conn, done, print_json};
use clap::Subcommand;
use std::process::ExitCode;

/// Execution commands.
#[derive(Subcommand)]
pub enum Command {
    /// List executions, newest first.
    List {
        /// Only this integration.
        #[arg(long)]
        integration: Option<String>,
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Only this status (queued, running, succeeded, failed, filtered, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Page cursor (from the previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print only the ids, one a line (for scripts: `ID=$(flowgate executions list -q --limit 1)`).
        #[arg(long, short = 'q')]
        quiet: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show an execution with every step attempt (JSON).
    Get {
        /// Execution id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume a failed execution from the step that failed.
    Retry {
        /// Execution id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Run an execution's trigger again from the start.
    #[command(disable_version_flag = true)]
    Replay {
        /// Execution id.
        id: String,
        /// Which version of the flow runs it: `latest` (its current one) or `original` (the one
        /// the execution ran on).
        #[arg(long, value_name = "latest|original", default_value = "latest", value_parser = ["latest", "original"])]
        version: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Cancel a queued or running execution.
    Cancel {
        /// Execution id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print an ended execution as a test case of its flow: its trigger, the side-effecting
    /// steps mocked with what they recorded, the recorded outputs and answer as expectations
    /// (secrets stay markers). YAML is one list item to append under the document's `tests:`
    /// (`>> integration.yaml` when `tests:` ends the document).
    ToTest {
        /// Execution id.
        id: String,
        /// `yaml` or `json`; default: the format of the integration's document.
        #[arg(long, value_parser = ["yaml", "json"])]
        format: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    Ok(match c {
        Command::List { integration, flow, status, limit, cursor, json, quiet, conn } => {
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [("integration", integration), ("flow", flow), ("status", status), ("cursor", cursor)] {
                if let Some(v) = v {
                    q.push(format!("{k}={v}"));
                }
            }
            done(conn.call(Method::GET, &format!("/v1/executions?{}", q.join("&")), None).await?, |v| {
                if json {
                    return print_json(v);
                }
                if quiet {
                    for e in v["items"].as_array().into_iter().flatten() {
                        println!("{}", e["id"].as_str().unwrap_or(""));
                    }
                    return;
                }
                for e in v["items"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {:<9}  {}/{}  {}{}",
                        e["id"].as_str().unwrap_or(""),
                        e["status"].as_str().unwrap_or(""),
                        e["integration"].as_str().unwrap_or(""),
                        e["flow"].as_str().unwrap_or(""),
                        e["createdAt"].as_str().unwrap_or(""),
                        e["failedStep"].as_str().map(|s| format!("  failed at {s}")).unwrap_or_default(),
                    );
                }
                if let Some(next) = v["nextCursor"].as_str() {
                    println!("(more: --cursor {next})");
                }
            })
        }
        Command::Get { id, conn } => {
            done(conn.call(Method::GET, &format!("/v1/executions/{id}"), None).await?, print_json)
        }
        Command::Retry { id, conn } => {
            done(conn.call(Method::POST, &format!("/v1/executions/{id}/retry"), None).await?, |v| {
                println!("{} queued again (attempt {})", id, v["attempt"]);
            })
        }
        Command::Replay { id, version, conn } => {
            done(conn.call(Method::POST, &format!("/v1/executions/{id}/replay?version={version}"), None).await?, |v| {
                println!("replaying {id} as {}", v["executionId"].as_str().unwrap_or(""));
            })
        }
        Command::ToTest { id, format, conn } => {
            let query = format.map(|f| format!("?format={f}")).unwrap_or_default();
            done(conn.call(Method::GET, &format!("/v1/executions/{id}/as-test{query}"), None).await?, |v| {
                print!("{}", v["case"].as_str().unwrap_or_default());
            })
        }
        Command::Cancel { id, conn } => {
            done(conn.call(Method::POST, &format!("/v1/executions/{id}/cancel"), None).await?, |v| {
                println!("{id}: {}", if v["status"] == "cancelled" { "cancelled" } else { "cancel requested" });
            })
        }
    })
}
