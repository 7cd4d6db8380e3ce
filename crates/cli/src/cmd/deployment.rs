//! `flowgate deployment get|set|undeploy` and `flowgate versions list|show|diff|dry-run|rollback`:
//! an integration's deployment in the caller's tenant, and its versions.

use crate::client::{Conn, done, print_json};
use clap::Subcommand;
use serde_json::{Map, Value, json};
use std::process::ExitCode;

/// Deployment commands.
#[derive(Subcommand)]
pub enum Command {
    /// Show the deployment: live or not, missing values, config (secrets only as set), the
    /// lifecycle flows' last runs.
    Get {
        /// Integration slug.
        integration: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set config values and deploy (runs the `deploy` flows once it is live).
    Set {
        /// Integration slug.
        integration: String,
        /// A value, `name=value` (JSON if it parses as JSON, else text; repeatable).
        #[arg(long = "config", value_name = "NAME=VALUE")]
        config: Vec<String>,
        /// A secret value, `name=value`, read as text (repeatable).
        #[arg(long = "secret", value_name = "NAME=VALUE")]
        secrets: Vec<String>,
        /// Unset a value (repeatable).
        #[arg(long = "unset", value_name = "NAME")]
        unset: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Undeploy (stored, not live; runs the `undeploy` flows).
    Undeploy {
        /// Integration slug.
        integration: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Version commands.
#[derive(Subcommand)]
pub enum Versions {
    /// List an integration's versions, newest first.
    List {
        /// Integration slug.
        integration: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a version's source.
    Show {
        /// Integration slug.
        integration: String,
        /// Version number.
        // Not named `version`: that id is the `--version` flag's.
        #[arg(value_name = "VERSION")]
        number: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// A unified diff between two versions.
    Diff {
        /// Integration slug.
        integration: String,
        /// From this version.
        from: i64,
        /// To this version.
        to: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Dry-run a stored version against recorded executions (nothing is sent); exit 0 when
    /// every one comes out the same, 1 otherwise.
    #[command(name = "dry-run")]
    DryRun {
        /// Integration slug.
        integration: String,
        /// Version number.
        #[arg(value_name = "VERSION")]
        number: i64,
        /// The flows to try (repeatable; default: those that differ from the live version).
        #[arg(long = "flow", value_name = "NAME")]
        flows: Vec<String>,
        /// The newest this many executions of each flow.
        #[arg(long, value_name = "N", default_value_t = 500)]
        against: u32,
        /// Print the finished run with all its results as JSON instead of the summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Apply an earlier version again, as a new version.
    Rollback {
        /// Integration slug.
        integration: String,
        /// The version to go back to.
        #[arg(value_name = "VERSION")]
        number: i64,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    Ok(match c {
        Command::Get { integration, conn } => {
            done(conn.call(Method::GET, &format!("/v1/integrations/{integration}/deployment"), None).await?, print_json)
        }
        Command::Set { integration, config, secrets, unset, conn } => {
            let mut values: Map<String, Value> = crate::cmd::test::config_values(&config)?;
            for p in secrets {
                let Some((k, v)) = p.split_once('=') else { anyhow::bail!("--secret expects `name=value`") };
                values.insert(k.trim().to_owned(), json!(v));
            }
            for k in unset {
                values.insert(k, Value::Null);
            }
            let body = json!({ "config": values }).to_string();
            let path = format!("/v1/integrations/{integration}/deployment");
            done(conn.call(Method::PUT, &path, Some(("application/json", body))).await?, |v| {
                let state = if v["live"] == true { "live" } else { "not live" };
                println!("{integration} deployed (version {}): {state}", v["version"]);
            })
        }
        Command::Undeploy { integration, conn } => {
            done(conn.call(Method::DELETE, &format!("/v1/integrations/{integration}/deployment"), None).await?, |_| {
                println!("{integration} undeployed")
            })
        }
    })
}

pub async fn versions(c: Versions) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    Ok(match c {
        Versions::List { integration, conn } => {
            done(conn.call(Method::GET, &format!("/v1/integrations/{integration}/versions"), None).await?, |v| {
                for item in v["items"].as_array().into_iter().flatten() {
                    println!(
                        "v{}  {}  {}{}",
                        item["version"],
                        item["createdAt"].as_str().unwrap_or(""),
                        &item["hash"].as_str().unwrap_or("")[..12.min(item["hash"].as_str().unwrap_or("").len())],
                        if item["current"] == true { "  (current)" } else { "" }
                    );
                }
            })
        }
        Versions::Show { integration, number, conn } => done(
            conn.call(Method::GET, &format!("/v1/integrations/{integration}/versions/{number}"), None).await?,
            |v| print!("{}", v["source"].as_str().unwrap_or("")),
        ),
        Versions::Diff { integration, from, to, conn } => done(
            conn.call(Method::GET, &format!("/v1/integrations/{integration}/versions/{from}/diff/{to}"), None).await?,
            |v| print!("{}", v["diff"].as_str().unwrap_or("")),
        ),
        Versions::DryRun { integration, number, flows, against, json, conn } => {
            dry_run(&conn, &integration, number, &flows, against, json).await?
        }
        Versions::Rollback { integration, number, conn } => done(
            conn.call(Method::POST, &format!("/v1/integrations/{integration}/versions/{number}/rollback"), None)
                .await?,
            |v| println!("{integration}: version {} now has the content of version {number}", v["version"]),
        ),
    })
}

/// `versions dry-run`: the summary (or `--json`), exit 0 when all came out the same.
async fn dry_run(
    conn: &Conn,
    integration: &str,
    number: i64,
    flows: &[String],
    against: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::cmd::dry_run::{self, Selection, Started, Subject};
    let sel = Selection { flows, against };
    let Started::Running(id) = dry_run::start(conn, integration, Subject::Version(number), &sel).await? else {
        return Ok(ExitCode::from(1));
    };
    let Ok(run) = dry_run::follow(conn, &id).await? else { return Ok(ExitCode::from(1)) };
    if json {
        let Ok(full) = dry_run::with_all_results(conn, &id).await? else { return Ok(ExitCode::from(1)) };
        print_json(&full);
    } else {
        let Ok(shown) = dry_run::first_differences(conn, &id).await? else { return Ok(ExitCode::from(1)) };
        dry_run::print_summary(&run, &shown);
    }
    Ok(if dry_run::all_same(&run) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
