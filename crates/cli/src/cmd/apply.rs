//! `flowgate apply -f FILE`: sends a definition to the server (`PUT /v1/integrations/{slug}`).
//!
//! With `--dry-run` it first validates the document, runs its `tests:` locally, and dry-runs
//! it on the server against the last `--against` recorded executions of each changed flow
//! (`cmd::dry_run`); it applies only when every one came out the same, or with `--yes`.
//! Exit codes: 0 applied (all the same, or accepted with `--yes`), 1 not applied (problems, a
//! failed test, differences without `--yes`, a dry run that did not finish) or an API error.

use crate::client::{Conn, Failed, done};
use crate::cmd::dry_run::{self, Selection, Started, Subject};
use anyhow::Context;
use clap::Args as ClapArgs;
use flowgate_model::{Format, source};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// What to apply.
#[derive(ClapArgs)]
pub struct Args {
    /// The definition file (YAML or JSON).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// First validate, run the document's `tests:` and dry-run it against recorded executions;
    /// apply only if every one comes out the same (or with --yes).
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: the newest this many executions of each flow tried.
    #[arg(long, value_name = "N", default_value_t = 500, requires = "dry_run")]
    against: u32,
    /// With --dry-run: the flows to try (repeatable; default: the flows that changed).
    #[arg(long = "flow", value_name = "NAME", requires = "dry_run")]
    flows: Vec<String>,
    /// With --dry-run: apply even when some executions came out different, would fail or
    /// could not be answered (exit 0 once applied).
    #[arg(long, requires = "dry_run")]
    yes: bool,
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
    if a.dry_run {
        return dry_run_first(&a, &slug, text, format).await;
    }
    put(&a.conn, &slug, text, format).await
}

/// `--dry-run`: validates, runs the tests, dry-runs, and applies when all came out the same
/// (or `--yes`).
async fn dry_run_first(a: &Args, slug: &str, text: String, format: Format) -> anyhow::Result<ExitCode> {
    let file = a.file.display();
    if let Err(problems) = flowgate_engine::Engine::validate(&text, format) {
        for p in &problems {
            match (p.line, p.column) {
                (Some(l), Some(c)) => eprintln!("{file}:{l}:{c}: {}: {}", p.path, p.message),
                _ => eprintln!("{file}: {}: {}", p.path, p.message),
            }
        }
        eprintln!("{} problem{}; not applied", problems.len(), if problems.len() == 1 { "" } else { "s" });
        return Ok(ExitCode::from(1));
    }
    let settings = flowgate_engine::EngineSettings::default();
    let report = match flowgate_engine::testing::run_tests(&text, format, &Map::new(), None, &settings).await {
        Ok(r) => r,
        Err(problems) => {
            for p in problems {
                eprintln!("{file}: {p}");
            }
            eprintln!("not applied");
            return Ok(ExitCode::from(1));
        }
    };
    if report.results.is_empty() {
        println!("no tests: in {file}");
    } else {
        if !report.missing.is_empty() {
            eprintln!("note: the tests ran with required config unset: {}", report.missing.join(", "));
        }
        crate::cmd::test::print_report(&report);
        if !report.passed {
            eprintln!("not applied: a test failed (flowgate test {file} runs them alone)");
            return Ok(ExitCode::from(1));
        }
    }
    let sel = Selection { flows: &a.flows, against: a.against };
    let source = Subject::Document(&text, if format == Format::Json { "json" } else { "yaml" });
    let id = match dry_run::start(&a.conn, slug, source, &sel).await? {
        Started::Running(id) => id,
        Started::NoIntegration => {
            println!("{slug} is new on the server: no recorded executions to compare with");
            return put(&a.conn, slug, text, format).await;
        }
        Started::Failed => {
            eprintln!("not applied");
            return Ok(ExitCode::from(1));
        }
    };
    let Ok(run) = dry_run::follow(&a.conn, &id).await? else { return Ok(ExitCode::from(1)) };
    let shown = match dry_run::first_differences(&a.conn, &id).await? {
        Ok(s) => s,
        Err(Failed) => return Ok(ExitCode::from(1)),
    };
    dry_run::print_summary(&run, &shown);
    if dry_run::all_same(&run) {
        return put(&a.conn, slug, text, format).await;
    }
    if run["status"] != "done" {
        println!("not applied: the dry run did not finish");
        return Ok(ExitCode::from(1));
    }
    if !dry_run::complete(&run) {
        println!(
            "not applied: the dry run has results for {} of its {} executions (the others' recordings went \
             away while it ran); run it again",
            run["done"], run["total"]
        );
        return Ok(ExitCode::from(1));
    }
    if a.yes {
        println!("applying anyway (--yes)");
        return put(&a.conn, slug, text, format).await;
    }
    println!("not applied (use --yes to apply anyway)");
    Ok(ExitCode::from(1))
}

/// Applies the document and prints what the server made of it.
async fn put(conn: &Conn, slug: &str, text: String, format: Format) -> anyhow::Result<ExitCode> {
    let content_type = if format == Format::Json { "application/json" } else { "application/yaml" };
    let r = conn.call(reqwest::Method::PUT, &format!("/v1/integrations/{slug}"), Some((content_type, text))).await?;
    Ok(done(r, |v| {
        let verb = if v["created"].as_bool() == Some(true) { "applied as version" } else { "unchanged at version" };
        println!("{} {verb} {}", v["integration"].as_str().unwrap_or(slug), v["version"]);
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
                    v["integration"].as_str().unwrap_or(slug),
                );
            } else if d["deployed"] == false {
                println!(
                    "  not live: undeployed (flowgate deployment set {} deploys it), until then its webhooks answer 404",
                    v["integration"].as_str().unwrap_or(slug)
                );
            }
        }
    }))
}
