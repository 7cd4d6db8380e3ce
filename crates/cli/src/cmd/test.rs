//! `flowgate test FILE`: runs a definition's test cases (`tests:`) locally, without a server —
//! mocked steps are not run, nothing is kept — and prints what failed, as a diff.

use crate::cmd::validate::read;
use clap::Args as ClapArgs;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// What to test.
#[derive(ClapArgs)]
pub struct Args {
    /// The definition file (YAML or JSON).
    file: PathBuf,
    /// Only the test case with this name.
    #[arg(long)]
    name: Option<String>,
    /// A config value, `name=value` (JSON if it parses as JSON, else text; repeatable).
    #[arg(long = "config", value_name = "NAME=VALUE")]
    config: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `name=value` pairs as config values.
pub fn config_values(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else { anyhow::bail!("--config expects `name=value`, got `{p}`") };
        out.insert(k.trim().to_owned(), serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())));
    }
    Ok(out)
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (text, format) = read(&a.file)?;
    let values = config_values(&a.config)?;
    let report = match flowgate_engine::testing::run_tests(
        &text,
        format,
        &values,
        a.name.as_deref(),
        &flowgate_engine::EngineSettings::default(),
    )
    .await
    {
        Ok(r) => r,
        Err(problems) => {
            for p in problems {
                eprintln!("{}: {p}", a.file.display());
            }
            return Ok(ExitCode::from(1));
        }
    };
    if !report.missing.is_empty() {
        eprintln!(
            "note: required config without a value, so the cases ran with it unset: {} (give it with --config NAME=VALUE)",
            report.missing.join(", ")
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if report.results.is_empty() {
        eprintln!("{}: no test cases{}", a.file.display(), a.name.map(|n| format!(" named `{n}`")).unwrap_or_default());
        return Ok(ExitCode::from(1));
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Prints each case, and for a failed one each expectation as `- expected` / `+ actual`.
pub fn print_report(report: &flowgate_engine::testing::TestReport) {
    let show = |v: &Value| serde_json::to_string(v).unwrap_or_default();
    for r in &report.results {
        let mark = if r.passed { "ok  " } else { "FAIL" };
        println!("{mark} {} ({}, {} ms)", r.name, r.flow, r.duration_ms);
        for f in &r.failures {
            println!("     {}: {}", f.path, f.message);
            println!("       - expected {}", show(&f.expected));
            println!("       + actual   {}", show(&f.actual));
        }
    }
    let failed = report.results.iter().filter(|r| !r.passed).count();
    println!("{} passed, {failed} failed", report.results.len() - failed);
}
