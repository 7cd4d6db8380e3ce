//! A small client for the REST API, shared by the client commands.

use anyhow::Context;
use clap::Args as ClapArgs;
use serde_json::Value;
use std::process::ExitCode;

/// Where the server is and how to authenticate.
#[derive(ClapArgs, Clone)]
pub struct Conn {
    /// Server URL.
    #[arg(long, env = "FLOWGATE_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// API token.
    #[arg(long, env = "FLOWGATE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// A failed call, already explained on stderr.
pub struct Failed;

impl Conn {
    fn client() -> anyhow::Result<reqwest::Client> {
        flowgate_steps::util::install_tls();
        Ok(reqwest::Client::builder().build()?)
    }

    /// Sends a request; prints API errors and returns `Err(Failed)` for them.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> anyhow::Result<Result<(u16, Value), Failed>> {
        let (status, value) = self.call_raw(method, path, body).await?;
        if status >= 400 {
            print_error(&value);
            return Ok(Err(Failed));
        }
        Ok(Ok((status, value)))
    }

    /// Sends a request; returns the status and body whatever the status (nothing printed).
    pub async fn call_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> anyhow::Result<(u16, Value)> {
        let token = self.token.as_deref().context("no API token: pass --token or set FLOWGATE_TOKEN")?;
        let url = format!("{}{}", self.url.trim_end_matches('/'), path);
        let mut req = Self::client()?.request(method, &url).bearer_auth(token);
        if let Some((content_type, text)) = body {
            req = req.header("content-type", content_type).body(text);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok((status, value))
    }
}

/// Prints an API error body for people.
pub fn print_error(v: &Value) {
    let e = &v["error"];
    match e["message"].as_str() {
        Some(m) => eprintln!("error: {m} ({})", e["code"].as_str().unwrap_or("?")),
        None => eprintln!("error: {v}"),
    }
    if let Some(problems) = e["details"]["problems"].as_array() {
        for p in problems {
            eprintln!("  {}", problem_line(p));
        }
    } else if !e["details"].is_null() {
        eprintln!("  {}", e["details"]);
    }
}

/// One located problem as `line:col: path: message`.
pub fn problem_line(p: &Value) -> String {
    let at = match (p["line"].as_u64(), p["column"].as_u64()) {
        (Some(l), Some(c)) => format!("{l}:{c}: "),
        _ => String::new(),
    };
    format!("{at}{}: {}", p["path"].as_str().unwrap_or(""), p["message"].as_str().unwrap_or(""))
}

/// Prints JSON, pretty.
pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Exit code of a client call.
pub fn done(r: Result<(u16, Value), Failed>, show: impl FnOnce(&Value)) -> ExitCode {
    match r {
        Ok((_, v)) => {
            show(&v);
            ExitCode::SUCCESS
        }
        Err(Failed) => ExitCode::from(1),
    }
}
