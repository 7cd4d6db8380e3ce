//! An execution as a test case (issue 20): `flowgate executions to-test <id>` and
//! `GET /v1/executions/{id}/as-test` turn a finished execution's recording into a `tests:`
//! case of its integration's own format, which passes `flowgate test` on the version that ran
//! it:
//!
//! * `trigger`: the recorded event's body, headers and query — without the headers that carry
//!   credentials or signatures (`authorization`, `proxy-authorization`, `cookie`,
//!   `x-api-key`, the flow's own key or secret header, `webhook-signature`,
//!   `x-hub-signature[-256]`, `stripe-signature`, `intuit-signature`, an `hmac` scheme's
//!   header, any the ingress stored as `[redacted]`) and the transport's (`host`,
//!   `content-length`, `connection`, `transfer-encoding`, `keep-alive`, `te`, `trailer`,
//!   `upgrade`, `expect`, `proxy-connection`);
//! * `mocks`: the last completed output of every step that is not pure
//!   ([`crate::answers::is_pure`]: `http`, connector steps, `sql`, broker publishes,
//!   `webhook`, `email`, `call`, `delay`, `wait`, …), by journal key (`each[3].push`: each
//!   loop item its own answer);
//! * `mockErrors`: such a step that failed — under `onError: continue` (journal status
//!   `continued`), or where the execution failed — with the recorded code, message and details;
//! * `expect`: the final status; the outputs of the pure steps (`transform`, `filter`,
//!   `switch`, `log`, `respond`; a loop's or `parallel` step's own entries are left out, their
//!   steps' are there) by journal key; a succeeded run's output; the `respond` answer.
//!
//! Secrets stay markers (`«secret:NAME»`): the journal holds them so, and the event and
//! everything else is passed through the flow's redactor; the test runner puts the values back
//! where it knows them.

use crate::Engine;
use crate::answers::is_pure;
use flowgate_model::{Diagnostics, Format, StepDef};
use flowgate_steps::StepConfig;
use flowgate_store::StepRecord;
use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Headers never put in a case: credentials, signatures, and the transport's own.
const LEFT_OUT_HEADERS: [&str; 19] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "webhook-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "intuit-signature",
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-connection",
];

/// Kinds whose own journal entries are not expected: they put their steps' outputs together,
/// and those steps are expected one by one.
const NESTING_KINDS: [&str; 2] = ["foreach", "parallel"];

/// An execution as a test case.
#[derive(Debug, Clone)]
pub struct AsTest {
    /// The execution.
    pub execution: String,
    /// Its integration.
    pub integration: String,
    /// Its flow.
    pub flow: String,
    /// The number of the version that ran it.
    pub version: i64,
    /// The format of `text`.
    pub format: Format,
    /// The case, ready to paste under `tests:` (YAML: one list item indented by two spaces;
    /// JSON: one object of the `tests` array).
    pub text: String,
    /// The case as JSON.
    pub case: Value,
}

/// Why an execution cannot become a test case.
#[derive(Debug, thiserror::Error)]
pub enum AsTestError {
    /// It has not ended, or it was cancelled.
    #[error(
        "execution `{id}` is {status}: only an execution that ended (succeeded, failed or filtered) can become a test"
    )]
    NotFinished {
        /// The execution.
        id: String,
        /// Its status.
        status: String,
    },
    /// Its journal does not hold what a case needs.
    #[error("{0}")]
    NotRecorded(String),
    /// The version that ran it cannot be read any more.
    #[error("version {version} of `{integration}` cannot be read: {why}")]
    Version {
        /// The integration.
        integration: String,
        /// The version's number.
        version: i64,
        /// Why.
        why: String,
    },
    /// Its recording is larger than [`MAX_RECORDING`].
    #[error(
        "execution `{id}` recorded {} (its trigger, step data and answer); only one up to {} can become a test",
        megabytes(*bytes),
        megabytes(*cap)
    )]
    TooLarge {
        /// The execution.
        id: String,
        /// The size of its recording.
        bytes: usize,
        /// The largest that becomes a case.
        cap: usize,
    },
    /// The node's memory budget has no room for it now.
    #[error("too many large executions are being turned into tests; try again shortly")]
    Busy,
    /// Making the case failed unexpectedly.
    #[error("the case could not be made: {0}")]
    Crashed(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] flowgate_store::Error),
}

impl Engine {
    /// Tenant `tenant`'s execution `id` as a test case of its flow, in `format` (default: the
    /// format of the version's document). `None` when the tenant has no such execution.
    ///
    /// # Errors
    /// It has not ended or was cancelled, its journal keeps no step data (`diagnostics:
    /// errors|minimal`), it failed outside its steps, its recording is over [`MAX_RECORDING`]
    /// (refused before it is parsed), the memory budget has no room for it, its version cannot
    /// be read, or the store failed. The case is made off the async workers.
    pub async fn execution_as_test(
        &self,
        tenant: &str,
        id: &str,
        format: Option<Format>,
    ) -> Result<Option<AsTest>, AsTestError> {
        let store = &self.inner.store;
        let Some(row) = store.execution(Some(tenant), id).await? else { return Ok(None) };
        if !["succeeded", "failed", "filtered"].contains(&row.status.as_str()) {
            return Err(AsTestError::NotFinished { id: id.to_owned(), status: row.status.clone() });
        }
        let version_error =
            |why: String| AsTestError::Version { integration: row.integration.clone(), version: row.version, why };
        let ci = match self.inner.registry.version(row.version_id) {
            Some(ci) => ci,
            None => {
                let record = store
                    .version(row.version_id)
                    .await?
                    .ok_or_else(|| version_error("it is no longer stored".into()))?;
                let ci = self.inner.build(record).await.map_err(|problems| {
                    version_error(problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; "))
                })?;
                std::sync::Arc::new(ci)
            }
        };
        let flow =
            ci.flows.get(&row.flow).cloned().ok_or_else(|| version_error(format!("it has no flow `{}`", row.flow)))?;
        let definition = ci.definition.flows.iter().find(|f| f.flow == row.flow);
        let mut kinds = HashMap::new();
        if let Some(d) = definition {
            collect_kinds(&d.steps, &mut kinds);
        }
        if row.status != "failed" && flow.policy.diagnostics != Diagnostics::Full {
            return Err(AsTestError::NotRecorded(format!(
                "flow `{}` keeps no step outputs of runs that did not fail (diagnostics: {}), so execution `{id}` \
                 cannot become a test; set `diagnostics: full` to record what a test needs",
                row.flow,
                if flow.policy.diagnostics == Diagnostics::Errors { "errors" } else { "minimal" },
            )));
        }
        let journal = store.journal(id).await?;
        // Checked before anything is parsed: a case of a huge recording is as huge, and its
        // parse, redaction and text cost many times its size.
        let size = recording_size(&row, &journal);
        if size > MAX_RECORDING {
            return Err(AsTestError::TooLarge { id: id.to_owned(), bytes: size, cap: MAX_RECORDING });
        }
        // Within the node's memory budget like any event: a burst of big cases waits its turn.
        let room = self.reserve(size.saturating_mul(MEMORY_FACTOR)).await.ok_or(AsTestError::Busy)?;
        let ci_format = if ci.record.format == "json" { Format::Json } else { Format::Yaml };
        let format = format.unwrap_or(ci_format);
        let id = id.to_owned();
        // The CPU part (parse, redaction, text) off the async workers.
        let made = tokio::task::spawn_blocking(move || {
            let _room = room;
            make_case(&id, &row, &journal, &kinds, &flow, format)
        })
        .await
        .map_err(|e| AsTestError::Crashed(e.to_string()))??;
        Ok(Some(made))
    }
}

/// Largest recording (trigger, journal, output and answer texts) that becomes a case.
pub const MAX_RECORDING: usize = 16 * 1024 * 1024;

/// What making a case holds, per byte of its recording: the parsed values, the case, its
/// redacted copy and its text.
const MEMORY_FACTOR: usize = 4;

/// The bytes of an execution's recording: its trigger, output, answer and journal texts.
fn recording_size(row: &flowgate_store::ExecutionRow, journal: &[StepRecord]) -> usize {
    let len = |t: &Option<String>| t.as_ref().map_or(0, String::len);
    row.trigger.len()
        + len(&row.output)
        + len(&row.response)
        + len(&row.error)
        + journal.iter().map(|s| len(&s.input) + len(&s.output) + len(&s.error) + len(&s.response)).sum::<usize>()
}

/// `bytes` for people: `18.0 MB`, `512 KB`.
fn megabytes(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// The case of execution `id` from its row and journal (CPU work: run off the async workers).
fn make_case(
    id: &str,
    row: &flowgate_store::ExecutionRow,
    journal: &[StepRecord],
    kinds: &HashMap<String, &'static str>,
    flow: &crate::CompiledFlow,
    format: Format,
) -> Result<AsTest, AsTestError> {
    let recording = Recording::of(journal, kinds)?;
    if row.status == "failed" && recording.failed.is_empty() && row.failed_step.is_none() {
        let why = row
            .error
            .as_deref()
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
            .and_then(|e| e["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(AsTestError::NotRecorded(format!(
            "execution `{id}` failed outside its steps ({why}), which a test cannot reproduce"
        )));
    }
    let redactor = &flow.redactor;
    let hidden = hidden_headers(flow);
    let event: Value = serde_json::from_str(&row.trigger).unwrap_or(Value::Null);
    let headers: Map<String, Value> = event["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, value)| {
            let name = name.to_ascii_lowercase();
            !LEFT_OUT_HEADERS.contains(&name.as_str()) && !hidden.contains(&name) && *value != "[redacted]"
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let query: Map<String, Value> = event["query"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, value)| *value != "[redacted]")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut trigger = Map::new();
    trigger.insert("body".into(), event.get("body").cloned().unwrap_or(Value::Null));
    if !headers.is_empty() {
        trigger.insert("headers".into(), Value::Object(headers));
    }
    if !query.is_empty() {
        trigger.insert("query".into(), Value::Object(query));
    }

    let mut case = Map::new();
    case.insert("name".into(), json!(format!("execution {id} ({})", row.flow)));
    case.insert("flow".into(), json!(row.flow));
    case.insert("trigger".into(), Value::Object(trigger));
    if !recording.mocks.is_empty() {
        case.insert("mocks".into(), Value::Object(recording.mocks.into_iter().collect()));
    }
    let mut errors: Map<String, Value> = recording.errors.into_iter().collect();
    for (key, error) in recording.failed {
        errors.insert(key, error);
    }
    if !errors.is_empty() {
        case.insert("mockErrors".into(), Value::Object(errors));
    }
    let mut expect = Map::new();
    expect.insert("status".into(), json!(row.status));
    if !recording.expected.is_empty() {
        expect.insert("steps".into(), Value::Object(recording.expected.into_iter().collect()));
    }
    if row.status == "succeeded"
        && let Some(output) = row.output.as_deref().and_then(|o| serde_json::from_str::<Value>(o).ok())
    {
        expect.insert("output".into(), output);
    }
    if let Some(response) = row.response.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()) {
        expect.insert("respond".into(), response);
    }
    case.insert("expect".into(), Value::Object(expect));
    // The journal holds markers already; the event does not, and this costs little.
    let case = redactor.redact_value(&Value::Object(case));
    let text = match format {
        Format::Yaml => yaml_case(&case),
        Format::Json => serde_json::to_string_pretty(&case).unwrap_or_default() + "\n",
    };
    Ok(AsTest {
        execution: id.to_owned(),
        integration: row.integration.clone(),
        flow: row.flow.clone(),
        version: row.version,
        format,
        text,
        case,
    })
}

/// What a journal gives a case.
#[derive(Default)]
struct Recording {
    /// Side-effecting steps' outputs, by journal key.
    mocks: IndexMap<String, Value>,
    /// Side-effecting steps that failed and went on (`continued`).
    errors: IndexMap<String, Value>,
    /// The side-effecting step where the execution failed.
    failed: IndexMap<String, Value>,
    /// Pure steps' outputs, by journal key.
    expected: IndexMap<String, Value>,
}

impl Recording {
    fn of(journal: &[StepRecord], kinds: &HashMap<String, &'static str>) -> Result<Recording, AsTestError> {
        // The last entry of each key, in the order keys first appear.
        let mut last: IndexMap<&str, &StepRecord> = IndexMap::new();
        for r in journal {
            last.insert(r.step_id.as_str(), r);
        }
        let mut out = Recording::default();
        for (key, r) in last {
            let kind = kinds.get(step_of(key)).copied().unwrap_or("");
            let pure = is_pure(kind);
            if NESTING_KINDS.contains(&kind) {
                continue;
            }
            let output = || -> Result<Value, AsTestError> {
                r.output.as_deref().and_then(|o| serde_json::from_str(o).ok()).ok_or_else(|| {
                    AsTestError::NotRecorded(format!(
                        "the journal keeps no output of step `{key}` (it was scrubbed), so this execution cannot \
                         become a test"
                    ))
                })
            };
            let error = || -> Value {
                let e: Value = r.error.as_deref().and_then(|e| serde_json::from_str(e).ok()).unwrap_or(Value::Null);
                let e = if e.is_object() {
                    e
                } else {
                    r.output.as_deref().and_then(|o| serde_json::from_str::<Value>(o).ok()).unwrap_or_default()["error"]
                        .clone()
                };
                let mut m = Map::new();
                m.insert("code".into(), json!(e["code"].as_str().unwrap_or("error")));
                m.insert("message".into(), json!(e["message"].as_str().unwrap_or("")));
                if let Some(d) = e.get("details").filter(|d| !d.is_null()) {
                    m.insert("details".into(), d.clone());
                }
                Value::Object(m)
            };
            match (r.status.as_str(), pure) {
                ("succeeded", false) => {
                    out.mocks.insert(key.to_owned(), output()?);
                }
                ("continued", false) => {
                    out.errors.insert(key.to_owned(), error());
                }
                ("failed", false) => {
                    out.failed.insert(key.to_owned(), error());
                }
                ("succeeded" | "skipped" | "continued", true) => {
                    out.expected.insert(key.to_owned(), output()?);
                }
                // A skipped side-effecting step is skipped again; a pure step's failure happens
                // again by itself.
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The step id a journal key names: `each[3].push` → `push`, `each[3]` → `each`.
fn step_of(key: &str) -> &str {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.split('[').next().unwrap_or(last)
}

fn collect_kinds(steps: &[StepDef<StepConfig>], out: &mut HashMap<String, &'static str>) {
    use flowgate_model::StepKind;
    for s in steps {
        out.insert(s.id().to_owned(), s.kind.kind());
        for (_, children) in s.kind.children() {
            collect_kinds(children, out);
        }
    }
}

/// The flow's own credential and signature headers, lower-cased.
fn hidden_headers(flow: &crate::CompiledFlow) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(w) = flow.webhook() {
        match &w.auth {
            crate::AuthSpec::Header { name, .. } => out.push(name.as_str().to_owned()),
            crate::AuthSpec::ApiKey { location: crate::KeyLocation::Header(h), .. } => {
                out.push(h.as_str().to_ascii_lowercase())
            }
            _ => {}
        }
        if let Some(v) = &w.verify
            && let Some(h) = v.describe()["header"].as_str()
        {
            out.push(h.to_ascii_lowercase());
        }
    }
    out
}

/// A case as YAML: one list item, indented by two spaces, to paste (or append) under a
/// document's `tests:`.
pub fn yaml_case(case: &Value) -> String {
    let mut out = String::new();
    // The case and its parts (`trigger`, `mocks`, `expect`) in block style: a line per mock
    // and per expected step.
    block(&mut out, &Value::Array(vec![case.clone()]), 2, 2);
    out
}

/// Longest collection written inline (`{ status: 200 }`).
const INLINE_MAX: usize = 60;

/// Writes collection `v` in block style, each line indented by `indent` spaces; its
/// collections too (else only the long ones) for `force` more levels.
fn block(out: &mut String, v: &Value, indent: usize, force: usize) {
    let pad = " ".repeat(indent);
    let inline = |v: &Value| if force > 0 && (v.is_object() || v.is_array()) { None } else { inline(v) };
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                out.push_str(&pad);
                out.push_str(&scalar_text(k));
                out.push(':');
                match inline(val) {
                    Some(text) => {
                        out.push(' ');
                        out.push_str(&text);
                        out.push('\n');
                    }
                    None => {
                        out.push('\n');
                        block(out, val, indent + 2, force.saturating_sub(1));
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match inline(item) {
                    Some(text) => {
                        out.push_str(&pad);
                        out.push_str("- ");
                        out.push_str(&text);
                        out.push('\n');
                    }
                    None => {
                        // The item's block, its first line's indent replaced by the dash.
                        let mut inner = String::new();
                        block(&mut inner, item, indent + 2, force.saturating_sub(1));
                        out.push_str(&pad);
                        out.push_str("- ");
                        out.push_str(&inner[indent + 2..]);
                    }
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&flow_text(other));
            out.push('\n');
        }
    }
}

/// `v` on one line, when it is a scalar, an empty collection or a short one.
fn inline(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) if m.is_empty() => Some("{}".into()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(_) | Value::Array(_) => Some(flow_text(v)).filter(|t| t.chars().count() <= INLINE_MAX),
        _ => Some(flow_text(v)),
    }
}

/// `v` in flow style (`{ a: 1, b: [x, y] }`).
fn flow_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_text(s),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(flow_text).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter().map(|(k, v)| format!("{}: {}", scalar_text(k), flow_text(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A string as a YAML scalar: plain when nothing could read it as anything else, else
/// double-quoted with escapes.
fn scalar_text(s: &str) -> String {
    if plain_is_safe(s) { s.to_owned() } else { quoted(s) }
}

/// Words YAML 1.1 or 1.2 reads as something other than a string.
const SPECIAL_WORDS: [&str; 10] = ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"];

fn plain_is_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else { return false };
    (first.is_alphabetic() || first == '_')
        && s.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | '/' | '@' | '+' | '(' | ')'))
        && !s.ends_with(' ')
        && !SPECIAL_WORDS.contains(&s.to_ascii_lowercase().as_str())
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // What YAML may hold as it is: printable characters (and no byte-order mark).
            ' '..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}' | '\u{ff00}'..='\u{fffd}' => out.push(c),
            c if c >= '\u{10000}' => out.push(c),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let text = format!("tests:\n{}", yaml_case(v));
        let doc = flowgate_model::source::parse(&text, Format::Yaml).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        doc.value["tests"][0].clone()
    }

    #[test]
    fn yaml_reads_back_as_the_same_json() {
        let strings = [
            "",
            " ",
            "x ",
            " x",
            "true",
            "Yes",
            "NO",
            "null",
            "~",
            "1",
            "-1",
            "1.5",
            "0x10",
            "1e3",
            ".inf",
            "12:30",
            "a: b",
            "a #b",
            "#x",
            "-x",
            "- x",
            "? x",
            "[a]",
            "{a}",
            "x,y",
            "«secret:apiKey»",
            "line\nbreak\n",
            "tab\there",
            "\u{7f}del",
            "\u{85}nel",
            "\u{feff}bom",
            "\u{1}",
            "Zürich",
            "日本",
            "😀",
            "'q'",
            "\"dq\"",
            "back\\slash",
            "*alias",
            "&anchor",
            "!tag",
            "%dir",
            "@at",
            "`tick",
            "|",
            ">",
            "a|b",
            "plain words ok",
            "each[0].push",
            "http://x.test/a?b=c#d",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "=",
            "<<",
            "f(x)",
            "(x)",
            "a (b) c",
        ];
        let numbers = [json!(0), json!(-7), json!(1.5), json!(1e100), json!(-0.0), json!(i64::MAX), json!(1.0)];
        let mut obj = Map::new();
        for (i, s) in strings.iter().enumerate() {
            obj.insert(format!("s{i}"), json!(s));
            obj.insert((*s).to_owned(), json!({ "nested": [s, { "k": s }] }));
        }
        for (i, n) in numbers.iter().enumerate() {
            obj.insert(format!("n{i}"), n.clone());
        }
        obj.insert("empties".into(), json!({ "o": {}, "a": [], "n": null, "l": [[], {}, [[1]], [{ "a": 1 }]] }));
        obj.insert("long".into(), json!({ "list": (0..40).collect::<Vec<_>>(), "b": true, "f": false }));
        obj.insert(
            "deep".into(),
            json!([[{ "a": [{ "b": { "c": ["x".repeat(70)] } }] }], { "k": "y".repeat(80), "k2": [1, 2] }]),
        );
        let v = Value::Object(obj);
        let back = round_trip(&v);
        let same = flowgate_model::tests_def::differences(&v, &back).is_empty()
            && flowgate_model::tests_def::differences(&back, &v).is_empty();
        assert!(same, "{}\n{v:#}\n{back:#}", yaml_case(&v));
    }

    #[test]
    fn a_case_reads_well() {
        let case = json!({
            "name": "execution x1 (orders)",
            "flow": "orders",
            "trigger": { "body": { "id": 7, "lines": [{ "sku": "a", "qty": 2 }] } },
            "mocks": { "each[0].push": { "status": 201, "body": { "id": "p-1" } } },
            "expect": { "status": "succeeded", "steps": { "mapped": { "name": "Ann" } } },
        });
        let text = yaml_case(&case);
        assert_eq!(
            text,
            r#"  - name: execution x1 (orders)
    flow: orders
    trigger:
      body: { id: 7, lines: [{ sku: a, qty: 2 }] }
    mocks:
      "each[0].push": { status: 201, body: { id: p-1 } }
    expect:
      status: succeeded
      steps: { mapped: { name: Ann } }
"#
        );
        assert_eq!(round_trip(&case), case);
    }

    #[test]
    fn journal_keys_name_their_steps() {
        assert_eq!(step_of("push"), "push");
        assert_eq!(step_of("each[3].push"), "push");
        assert_eq!(step_of("each[3]"), "each");
        assert_eq!(step_of("both[a].x"), "x");
        assert_eq!(step_of("rows[1].cells[2].cell"), "cell");
    }
}
