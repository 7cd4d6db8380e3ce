//! `flowgate apply -f FILE`: sends a definition to the server (`PUT /v1/integrations/{slug}`).

use crate::client::{Conn, done};
use anyhow::Context;
use clap::Args as ClapArgs;
use flowgate_model::{Format, source};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// What to apply.
#[derive(ClapArgs)]
pub struct Args {
    /// The definition file (YAML or JSON).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    #[command(flatten)]
    conn: Conn,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let format = match a.file.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => Format::sniff(&text),
    };
    // The slug is needed for the URL; the server does the real checks.
    let slug = match source::parse(&text, format) {
        Ok(doc) => doc.value["integration"].as_str().map(str::to_owned),
        Err(d) => {
            eprintln!("{}: {d}", a.file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let Some(slug) = slug else {
        eprintln!("{}: the document has no `integration` slug", a.file.display());
        return Ok(ExitCode::from(1));
    };
    let content_type = if format == Format::Json { "application/json" } else { "application/yaml" };
    let r = a.conn.call(reqwest::Method::PUT, &format!("/v1/integrations/{slug}"), Some((content_type, text))).await?;
    Ok(done(r, |v| {
        let verb = if v["created"].as_bool() == Some(true) { "applied as version" } else { "unchanged at version" };
        println!("{} {verb} {}", v["integration"].as_str().unwrap_or(&slug), v["version"]);
        for f in v["flows"].as_array().into_iter().flatten() {
            let url = f["webhookUrl"]
                .as_str()
                .or(f["inboundEmailAddress"].as_str())
                .map(|u| format!("  {u}"))
                .unwrap_or_default();
            println!("  flow {} ({}){url}", f["flow"].as_str().unwrap_or(""), f["trigger"].as_str().unwrap_or(""));
        }
        // Its URLs answer only once it is live: say so here, with what it takes.
        let d = &v["deployment"];
        if d["live"] == false {
            let missing: Vec<&str> = d["missing"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if !missing.is_empty() {
                println!(
                    "  not live: set {} (flowgate deployment set {} --config NAME=VALUE, --secret NAME=VALUE for \
                     secrets); until then its webhooks answer 404",
                    missing.join(", "),
                    v["integration"].as_str().unwrap_or(&slug),
                );
            } else if d["deployed"] == false {
                println!(
                    "  not live: undeployed (flowgate deployment set {} deploys it), until then its webhooks answer 404",
                    v["integration"].as_str().unwrap_or(&slug)
                );
            }
        }
    }))
}
