//! Dry runs from the command line (issue 20): `flowgate apply -f FILE --dry-run` and
//! `flowgate versions dry-run INTEGRATION VERSION` start one on the server
//! (`POST /v1/integrations/{slug}/dry-runs`), follow its progress (`GET /v1/dry-runs/{id}`) —
//! a bar redrawn in place when stderr is a terminal, a plain line at most every second when
//! not —, and print a summary with the first few differences.

use crate::client::{Conn, Failed, print_error};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Non-`same` results shown in the summary.
const SHOWN: usize = 5;
/// Difference lines shown per result.
const SHOWN_CHANGES: usize = 8;
/// Longest value shown in a difference line.
const SHOWN_VALUE: usize = 80;
/// Results per page when all are read (`--json`).
const PAGE: u32 = 1_000;

/// What a dry run tries: the executions chosen on the server.
pub struct Selection<'a> {
    /// Flows to try (empty: those that changed).
    pub flows: &'a [String],
    /// The newest this many executions of each flow.
    pub against: u32,
}

/// What is dry-run.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    /// A stored version.
    Version(i64),
    /// A document not applied: its text and format (`yaml` or `json`).
    Document(&'a str, &'a str),
}

/// How starting a dry run went.
pub enum Started {
    /// Running: its id.
    Running(String),
    /// The server has no such integration (a new one): nothing to compare with.
    NoIntegration,
    /// Refused; the error is printed.
    Failed,
}

/// Starts a dry run of `slug`: of the stored `version`, or of `source` (a document not applied).
///
/// Whether a document's integration is new is asked first (`GET /v1/integrations/{slug}`
/// answering `404 not_found`): a 404 from the dry run itself is then an error, not a new
/// integration — a server or proxy without the route answers 404 too.
///
/// # Errors
/// The server cannot be reached.
pub async fn start(conn: &Conn, slug: &str, what: Subject<'_>, sel: &Selection<'_>) -> anyhow::Result<Started> {
    if matches!(what, Subject::Document(..)) {
        let (status, v) = conn.call_raw(Method::GET, &format!("/v1/integrations/{slug}"), None).await?;
        if status == 404 && is_missing(&v) {
            return Ok(Started::NoIntegration);
        }
        if status >= 400 {
            print_error(&v);
            return Ok(Started::Failed);
        }
    }
    let mut body = json!({ "limit": sel.against });
    match what {
        Subject::Version(version) => body["version"] = json!(version),
        Subject::Document(source, format) => {
            body["source"] = json!(source);
            body["format"] = json!(format);
        }
    }
    if !sel.flows.is_empty() {
        body["flows"] = json!(sel.flows);
    }
    let path = format!("/v1/integrations/{slug}/dry-runs");
    let (status, v) = conn.call_raw(Method::POST, &path, Some(("application/json", body.to_string()))).await?;
    if status >= 400 {
        print_error(&v);
        if status == 404 && !is_missing(&v) {
            eprintln!(
                "the server at this address has no dry runs (POST {path} answered 404): is it older than this CLI?"
            );
        }
        return Ok(Started::Failed);
    }
    let id = v["id"].as_str().unwrap_or("").to_owned();
    let flows = names(&v["flows"]);
    let total = v["total"].as_i64().unwrap_or(0);
    let what = match what {
        Subject::Version(n) => format!("version {n}"),
        Subject::Document(..) => "the document".to_owned(),
    };
    eprintln!("dry run {id}: {what} against {total} recorded execution{} of {}", plural(total), flows_phrase(&flows));
    Ok(Started::Running(id))
}

/// Whether a 404's body says the thing asked for does not exist — the API's `not_found` —
/// rather than that the route is unknown (an older server, a proxy).
fn is_missing(v: &Value) -> bool {
    v["error"]["code"] == "not_found" && v["error"]["message"] != "no such route"
}

/// Follows a dry run until it ends, showing progress on stderr; returns its last state (no
/// results in it).
///
/// # Errors
/// The server cannot be reached.
pub async fn follow(conn: &Conn, id: &str) -> anyhow::Result<Result<Value, Failed>> {
    let terminal = std::io::stderr().is_terminal();
    let mut progress = Progress { terminal, id, last_line: None, drawn: false };
    loop {
        let v = match conn.call(Method::GET, &format!("/v1/dry-runs/{id}?limit=1"), None).await? {
            Ok((_, v)) => v,
            Err(Failed) => {
                progress.clear();
                return Ok(Err(Failed));
            }
        };
        if v["status"] != "running" {
            progress.clear();
            return Ok(Ok(v));
        }
        progress.show(&v);
        tokio::time::sleep(Duration::from_millis(if terminal { 200 } else { 250 })).await;
    }
}

/// Progress on stderr: a bar redrawn in place on a terminal; else a line at most every second,
/// with no control characters.
struct Progress<'a> {
    terminal: bool,
    id: &'a str,
    /// When the last plain line was written, and its count.
    last_line: Option<(Instant, i64)>,
    /// A bar is on the terminal's line.
    drawn: bool,
}

impl Progress<'_> {
    fn show(&mut self, v: &Value) {
        let (done, total) = (v["done"].as_i64().unwrap_or(0), v["total"].as_i64().unwrap_or(0));
        let mut err = std::io::stderr().lock();
        if self.terminal {
            // Short enough for an 80-column terminal (a wrapped line would not be redrawn).
            const WIDTH: i64 = 20;
            let filled = if total > 0 { (done * WIDTH / total).clamp(0, WIDTH) } else { 0 } as usize;
            let bar = format!("{}{}", "#".repeat(filled), "-".repeat(WIDTH as usize - filled));
            let mut line = format!("[{bar}] {done}/{total}  same {}  different {}", v["same"], v["different"]);
            for (key, label) in [("wouldFail", "would fail"), ("unanswered", "unanswered")] {
                if v[key].as_i64().unwrap_or(0) > 0 {
                    line.push_str(&format!("  {label} {}", v[key]));
                }
            }
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            self.drawn = true;
        } else {
            let due = self.last_line.is_none_or(|(at, n)| at.elapsed() >= Duration::from_secs(1) && n != done);
            if due {
                let _ = writeln!(err, "dry run {}: {done}/{total} done", self.id);
                self.last_line = Some((Instant::now(), done));
            }
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// Reads every result of a finished dry run into its JSON (for `--json`).
///
/// # Errors
/// The server cannot be reached.
pub async fn with_all_results(conn: &Conn, id: &str) -> anyhow::Result<Result<Value, Failed>> {
    let mut all = Vec::new();
    let mut after = 0i64;
    loop {
        let path = format!("/v1/dry-runs/{id}?limit={PAGE}&after={after}");
        let Ok((_, mut v)) = conn.call(Method::GET, &path, None).await? else { return Ok(Err(Failed)) };
        if let Some(Value::Array(page)) = v.get_mut("results").map(Value::take) {
            all.extend(page);
        }
        match v["next"].as_i64() {
            Some(n) if n > after => after = n,
            _ => {
                v["results"] = Value::Array(all);
                v["next"] = Value::Null;
                return Ok(Ok(v));
            }
        }
    }
}

/// The first [`SHOWN`] results that are not `same`, in order.
///
/// # Errors
/// The server cannot be reached.
pub async fn first_differences(conn: &Conn, id: &str) -> anyhow::Result<Result<Vec<Value>, Failed>> {
    let mut out = Vec::new();
    for outcome in ["different", "would_fail", "unanswered"] {
        let path = format!("/v1/dry-runs/{id}?outcome={outcome}&limit={SHOWN}");
        let Ok((_, mut v)) = conn.call(Method::GET, &path, None).await? else { return Ok(Err(Failed)) };
        if let Some(Value::Array(page)) = v.get_mut("results").map(Value::take) {
            out.extend(page);
        }
    }
    out.sort_by_key(|r| r["n"].as_i64().unwrap_or(0));
    out.truncate(SHOWN);
    Ok(Ok(out))
}

/// True when every execution tried came out `same` (also when there were none): the run is
/// done, with a result for every execution it chose.
pub fn all_same(run: &Value) -> bool {
    run["status"] == "done"
        && complete(run)
        && ["different", "wouldFail", "unanswered"].iter().all(|k| run[*k].as_i64().unwrap_or(0) == 0)
}

/// True when the run has a result for every execution it chose (`done` is `total`).
pub fn complete(run: &Value) -> bool {
    matches!((run["done"].as_i64(), run["total"].as_i64()), (Some(done), Some(total)) if done >= total)
}

/// Prints the summary of a finished dry run, and the first differences, on stdout.
pub fn print_summary(run: &Value, shown: &[Value]) {
    let flows = names(&run["request"]["flows"]);
    let total = run["total"].as_i64().unwrap_or(0);
    let done = run["done"].as_i64().unwrap_or(0);
    let status = run["status"].as_str().unwrap_or("?");
    if status != "done" {
        let why = run["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
        println!("dry run {} {status} after {done} of {total} executions{why}", run["id"].as_str().unwrap_or(""));
    }
    if total == 0 {
        println!("no recorded executions of {} to compare with", flows_phrase(&flows));
        return;
    }
    println!(
        "{done} execution{} of {}: {} same, {} different, {} would fail, {} unanswered",
        plural(done),
        flows_phrase(&flows),
        run["same"],
        run["different"],
        run["wouldFail"],
        run["unanswered"],
    );
    let others = total - run["same"].as_i64().unwrap_or(0);
    for r in shown {
        print_result(r);
    }
    if (shown.len() as i64) < others && !shown.is_empty() {
        println!(
            "  … {} more not the same (every result: GET /v1/dry-runs/{})",
            others - shown.len() as i64,
            run["id"].as_str().unwrap_or("")
        );
    }
}

/// One result that is not `same`: a header and its changes, one per line.
fn print_result(r: &Value) {
    let outcome = r["outcome"].as_str().unwrap_or("?").replace('_', " ");
    println!(
        "  #{} execution {} ({}): {outcome}",
        r["n"],
        r["executionId"].as_str().unwrap_or("?"),
        r["flow"].as_str().unwrap_or("?")
    );
    if r["outcome"] == "would_fail" {
        let e = &r["error"];
        let at = e["step"].as_str().map(|s| format!(" at {s}")).unwrap_or_default();
        let code = e["code"].as_str().map(|c| format!(" ({c})")).unwrap_or_default();
        println!("    would fail{at}: {}{code}", e["message"].as_str().unwrap_or("failed"));
    }
    if r["outcome"] == "unanswered" {
        let steps = names(&r["steps"]);
        if steps.is_empty() {
            println!("    {}", r["message"].as_str().unwrap_or("no recorded answer"));
        } else {
            println!(
                "    no recorded answer for {} (its effect was not performed; the run stopped there)",
                steps.join(", ")
            );
        }
    }
    let lines: Vec<String> = r["changes"].as_array().into_iter().flatten().flat_map(change_lines).collect();
    for l in lines.iter().take(SHOWN_CHANGES) {
        println!("    {l}");
    }
    if lines.len() > SHOWN_CHANGES {
        println!("    … {} more change{}", lines.len() - SHOWN_CHANGES, plural((lines.len() - SHOWN_CHANGES) as i64));
    }
}

/// A change as lines: `steps.mapped .total: 30 → 31`, `decisions.route: default → case 1`.
pub fn change_lines(c: &Value) -> Vec<String> {
    let at = c["at"].as_str().unwrap_or("?");
    match c["change"].as_str() {
        Some("added") => vec![format!("{at}: added, {}", value(c.get("now")))],
        Some("removed") => vec![format!("{at}: removed, was {}", value(c.get("was")))],
        Some(_) => {
            let mut out = Vec::new();
            // A step that ended otherwise (succeeded → continued).
            if c.get("was").is_some() || c.get("now").is_some() {
                out.push(format!("{at}: {} → {}", value(c.get("was")), value(c.get("now"))));
            }
            for d in c["diff"].as_array().into_iter().flatten() {
                if let Some(more) = d["more"].as_u64() {
                    out.push(format!("{at}: … {more} more difference{}", plural(more as i64)));
                } else {
                    let path = d["path"].as_str().unwrap_or(".");
                    out.push(format!("{at} {path}: {} → {}", data_value(d.get("was")), data_value(d.get("now"))));
                }
            }
            out
        }
        None => vec![format!("{at}: {} → {}", value(c.get("was")), value(c.get("now")))],
    }
}

/// A value of a data difference: JSON (`"9" → "09"` is not `9 → 9`), `(absent)` when missing;
/// cut when long.
fn data_value(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => value(Some(&Value::String(Value::String(s.clone()).to_string()))),
        other => value(other),
    }
}

/// A value in a difference line: plain text for a string (a status, a decision), JSON else,
/// `(absent)` when missing; cut when long.
fn value(v: Option<&Value>) -> String {
    let text = match v {
        None => return "(absent)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        // Cut by the server already.
        Some(Value::Object(o)) if o.contains_key("truncated") && o.contains_key("bytes") => {
            o["truncated"].as_str().unwrap_or("").to_owned()
        }
        Some(v) => v.to_string(),
    };
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() <= SHOWN_VALUE {
        return text;
    }
    let mut cut: String = text.chars().take(SHOWN_VALUE).collect();
    cut.push('…');
    cut
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn flows_phrase(flows: &[String]) -> String {
    match flows.len() {
        0 => "no flow".to_owned(),
        1 => format!("flow {}", flows[0]),
        _ => format!("flows {}", flows.join(", ")),
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_lines() {
        let r = json!({"n":3,"executionId":"0193","flow":"orders","outcome":"different","changes":[
            {"at":"steps.mapped","change":"changed","diff":[{"path":".total","was":30,"now":31},{"path":".gone","was":true},{"path":".id","was":"9","now":"09"},{"more":4}]},
            {"at":"decisions.route","was":"default","now":"case 1"},
            {"at":"steps.extra","change":"added","now":{"a":1}},
            {"at":"status","was":"succeeded","now":"filtered"},
            {"at":"answer","change":"changed","diff":[{"path":".body.total","was":30,"now":31}]}]});
        let lines: Vec<String> = r["changes"].as_array().unwrap().iter().flat_map(change_lines).collect();
        assert_eq!(
            lines,
            [
                "steps.mapped .total: 30 → 31",
                "steps.mapped .gone: true → (absent)",
                "steps.mapped .id: \"9\" → \"09\"",
                "steps.mapped: … 4 more differences",
                "decisions.route: default → case 1",
                "steps.extra: added, {\"a\":1}",
                "status: succeeded → filtered",
                "answer .body.total: 30 → 31",
            ]
        );
        assert_eq!(value(Some(&json!("a\nb"))), "a b");
        assert_eq!(value(Some(&json!({"truncated": "{\"x\":…", "bytes": 9000}))), "{\"x\":…");
        assert_eq!(value(Some(&json!("x".repeat(100)))).chars().count(), SHOWN_VALUE + 1);
    }

    #[test]
    fn only_a_finished_run_without_differences_is_all_same() {
        let run = |status: &str, d: i64| json!({"status": status, "total": 4, "done": 4, "different": d, "wouldFail": 0, "unanswered": 0});
        assert!(all_same(&run("done", 0)));
        assert!(!all_same(&run("done", 1)));
        assert!(!all_same(&run("failed", 0)));
        // Executions without a result (their recordings vanished mid-run): not all the same.
        let short = json!({"status": "done", "total": 3, "done": 2, "same": 2, "different": 0, "wouldFail": 0, "unanswered": 0});
        assert!(!all_same(&short) && !complete(&short));
        let full = json!({"status": "done", "total": 3, "done": 3, "same": 3, "different": 0, "wouldFail": 0, "unanswered": 0});
        assert!(all_same(&full));
    }

    #[test]
    fn only_the_apis_not_found_is_a_missing_integration() {
        assert!(is_missing(&json!({"error": {"code": "not_found", "message": "no integration `x`"}})));
        assert!(!is_missing(&json!({"error": {"code": "not_found", "message": "no such route"}})));
        assert!(!is_missing(&json!("404 page not found")));
        assert!(!is_missing(&Value::Null));
    }
}
