//! `flowgate run FILE --flow NAME`: runs one flow locally — same compiler and executor as the
//! server, on a throwaway SQLite file — and prints each step's input and output. External
//! calls (http steps) are real.

use crate::cmd::validate::read;
use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use flowgate_engine::{Engine, EngineSettings, Submission, SyncOutcome, SystemClock, Wait};
use flowgate_store::Store;
use flowgate_store::sqlite::{Durability, SqliteStore};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(ClapArgs)]
pub struct Args {
    /// The definition file (YAML or JSON).
    file: PathBuf,
    /// The flow to run (its slug).
    #[arg(long)]
    flow: String,
    /// A JSON file with the trigger body (`-` for stdin). Default: null.
    #[arg(long)]
    input: Option<PathBuf>,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V")]
    headers: Vec<String>,
    /// A query parameter, `name=value` (repeatable).
    #[arg(long = "query", value_name = "k=v")]
    query: Vec<String>,
    /// Longest the run may take, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (text, format) = read(&a.file)?;
    let body: Value = match &a.input {
        None => Value::Null,
        Some(p) if p.as_os_str() == "-" => serde_json::from_reader(std::io::stdin()).context("stdin is not JSON")?,
        Some(p) => {
            serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?)
                .with_context(|| format!("{} is not JSON", p.display()))?
        }
    };
    let mut headers = Map::new();
    for h in &a.headers {
        let Some((k, v)) = h.split_once(':') else { bail!("--header expects `Name: value`, got `{h}`") };
        headers.insert(k.trim().to_ascii_lowercase(), json!(v.trim()));
    }
    let mut query = Map::new();
    for q in &a.query {
        let Some((k, v)) = q.split_once('=') else { bail!("--query expects `name=value`, got `{q}`") };
        query.insert(k.to_owned(), json!(v));
    }
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("run.db"), Durability::Normal).await?;
    store.create_tenant("local", "Local", 0).await?;
    let engine = Engine::start(
        Arc::new(store),
        EngineSettings { public_url: "http://localhost:8080".into(), ..EngineSettings::default() },
        Arc::new(SystemClock),
    )
    .await?;
    let ci = match engine.apply("local", &text, format).await {
        Ok((_, ci)) => ci,
        Err(flowgate_engine::ApplyError::Invalid(problems)) => {
            for p in problems {
                eprintln!("{}: {p}", a.file.display());
            }
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(flow) = ci.flows.get(&a.flow).cloned() else {
        let names: Vec<&str> = ci.flows.keys().map(String::as_str).collect();
        eprintln!("no flow `{}` (flows: {})", a.flow, names.join(", "));
        return Ok(ExitCode::from(2));
    };
    let event = json!({
        "method": "POST",
        "path": flow.webhook().map(|w| w.path.clone()),
        "headers": headers,
        "query": query,
        "body": body,
        "receivedAt": flowgate_engine::clock::rfc3339(flowgate_engine::Clock::now_ms(&SystemClock)),
    });
    let submitted = engine
        .submit(Submission {
            flow,
            trigger: event,
            kind: "test",
            auth_label: None,
            replay_of: None,
            wait: Wait::End,
            options: Default::default(),
        })
        .await?;
    let waiter = submitted.waiter.context("no waiter")?;
    let outcome = tokio::time::timeout(Duration::from_secs(a.timeout), waiter).await.context("the run timed out")??;
    let mut journal = engine.store().journal(&submitted.id).await?;
    if let Some(row) = engine.store().execution(None, &submitted.id).await? {
        flowgate_store::fill_inputs(&mut journal, &row.trigger);
    }
    let logs = engine.store().logs(&submitted.id).await?;
    let pretty = |s: &Option<String>| -> String {
        let v: Value = s.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null);
        serde_json::to_string_pretty(&v).unwrap_or_default().replace('\n', "\n    ")
    };
    for r in &journal {
        println!("step {} (attempt {}): {} in {} ms", r.step_id, r.attempt, r.status, r.finished_at - r.started_at);
        println!("  input:\n    {}", pretty(&r.input));
        if r.output.is_some() {
            println!("  output:\n    {}", pretty(&r.output));
        }
        if r.error.is_some() {
            println!("  error:\n    {}", pretty(&r.error));
        }
        for l in logs.iter().filter(|l| l.step_id.as_deref() == Some(r.step_id.as_str())) {
            println!("  log [{}] {}", l.level, l.message);
        }
    }
    let SyncOutcome::Finished { status, output, error, response } = outcome else { bail!("unexpected answer") };
    println!("execution {}: {}", submitted.id, status.as_str());
    if let Some(r) = response {
        println!("response: {} {}", r.status, serde_json::to_string(&r.body)?);
    }
    if let Some(o) = output {
        println!("output: {}", serde_json::to_string(&o)?);
    }
    if let Some(e) = &error {
        println!("error: {}", serde_json::to_string(e)?);
    }
    engine.shutdown(Duration::from_secs(1)).await;
    Ok(if status == flowgate_store::Status::Failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
