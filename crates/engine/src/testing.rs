//! Flow tests (`tests:` in a document): each case runs its flow on a throwaway engine (a
//! temporary SQLite file, no scheduler, no lifecycle flows) with its trigger event, the
//! mocked steps' outputs used instead of running them, and its expectations checked.
//!
//! `flowgate test FILE` runs them without a server; `POST /v1/integrations/{slug}/test` runs
//! a stored integration's with its deployment's config values. Nothing of a test run is kept.

use crate::{Engine, EngineSettings, Submission, SubmitOptions, SyncOutcome, SystemClock, Wait};
use flowgate_expr::{Scope, Template, truthy};
use flowgate_model::tests_def::{FlowTest, differences};
use flowgate_model::{Diagnostic, Format};
use flowgate_store::{IntegrationKey, Store};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest one test case may run.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a test run found.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Every case passed.
    pub passed: bool,
    /// Each case.
    pub results: Vec<TestResult>,
    /// Required config variables that had no value (neither given nor defaulted): the cases
    /// ran with them unset.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// One case.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// Its name.
    pub name: String,
    /// Its flow.
    pub flow: String,
    /// All its expectations held.
    pub passed: bool,
    /// How the execution ended.
    pub status: String,
    /// What did not hold.
    pub failures: Vec<Failure>,
    /// How long it took.
    pub duration_ms: u64,
}

/// An expectation that did not hold.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Where: `status`, `steps.<id>.<path>`, `output.<path>`, `respond.<path>`, `jq[<n>]`.
    pub path: String,
    /// What was expected.
    pub expected: Value,
    /// What there was.
    pub actual: Value,
    /// In words.
    pub message: String,
}

/// Runs the test cases of a document (all, or the one named `only`) with config `values`,
/// under the policies of `node` (which addresses requests may reach, expression budgets,
/// output limits): a test run may do nothing a real run on that node may not (issue 13).
///
/// # Errors
/// The document's problems, when it does not validate.
pub async fn run_tests(
    text: &str,
    format: Format,
    values: &Map<String, Value>,
    only: Option<&str>,
    node: &EngineSettings,
) -> Result<TestReport, Vec<Diagnostic>> {
    let draft = crate::compile::compile(text, format)?;
    let tests: Vec<FlowTest> =
        draft.definition.tests.iter().filter(|t| only.is_none_or(|n| n == t.name)).cloned().collect();
    let slug = draft.definition.integration.clone();
    let problem = |m: String| vec![Diagnostic { path: String::new(), line: None, column: None, message: m }];
    let dir = tempfile::tempdir().map_err(|e| problem(format!("cannot make a temporary directory: {e}")))?;
    let store = flowgate_store::sqlite::SqliteStore::open(
        &dir.path().join("test.db"),
        flowgate_store::sqlite::Durability::Normal,
    )
    .await
    .map_err(|e| problem(e.to_string()))?;
    store.create_tenant("test", "Test", 0).await.map_err(|e| problem(e.to_string()))?;
    let engine = Engine::start(
        Arc::new(store),
        EngineSettings {
            public_url: "http://localhost:8080".into(),
            leader: false,
            lifecycle: false,
            outbound: node.outbound.clone(),
            expression_budget: node.expression_budget,
            expression_threads: 1,
            max_step_output: node.max_step_output,
            memory_in_flight: node.memory_in_flight,
            max_concurrency: 16,
            ..EngineSettings::default()
        },
        Arc::new(SystemClock),
    )
    .await
    .map_err(|e| problem(e.to_string()))?;
    let applied = engine.apply("test", text, format).await;
    if let Err(e) = applied {
        engine.shutdown(Duration::from_millis(100)).await;
        return Err(match e {
            crate::ApplyError::Invalid(p) => p,
            other => problem(other.to_string()),
        });
    }
    // The values given are laid over the defaults; required ones still missing are reported,
    // not refused (a case may not need them).
    let missing: Vec<String> = draft
        .definition
        .config
        .iter()
        .filter(|(name, var)| var.required && var.default.is_none() && !values.contains_key(*name))
        .map(|(name, _)| name.clone())
        .collect();
    if !values.is_empty()
        && let Err(e) = engine.put_config("test", &slug, values, false).await
    {
        engine.shutdown(Duration::from_millis(100)).await;
        return Err(match e {
            crate::deploy::DeployError::Invalid { problems, .. } => problems
                .into_iter()
                .map(|(at, m)| Diagnostic { path: at, line: None, column: None, message: m })
                .collect(),
            other => problem(format!("config values: {other}")),
        });
    }
    let mut results = Vec::new();
    for t in &tests {
        results.push(run_case(&engine, &slug, t).await);
    }
    engine.shutdown(Duration::from_secs(1)).await;
    Ok(TestReport { passed: results.iter().all(|r| r.passed), results, missing })
}

async fn run_case(engine: &Engine, slug: &str, t: &FlowTest) -> TestResult {
    let started = Instant::now();
    let mut result = TestResult {
        name: t.name.clone(),
        flow: t.flow.clone(),
        passed: false,
        status: "error".into(),
        failures: Vec::new(),
        duration_ms: 0,
    };
    let fail = |result: &mut TestResult, path: &str, expected: Value, actual: Value, message: String| {
        result.failures.push(Failure { path: path.into(), expected, actual, message });
    };
    let Some(flow) =
        engine.integration("test", slug).await.ok().flatten().and_then(|ci| ci.flows.get(&t.flow).cloned())
    else {
        fail(&mut result, "flow", json!(t.flow), Value::Null, format!("no flow `{}`", t.flow));
        return result;
    };
    // A case may hold secrets as markers (`«secret:NAME»`, as an exported execution does):
    // the flow's redactor puts back the values it knows, in the event, the mocks and the
    // expectations alike; markers it does not know stay as they are on both sides.
    let redactor = flow.redactor.clone();
    let restore = |v: &Value| redactor.restore_value(v);
    let headers: Map<String, Value> =
        t.trigger.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), restore(v))).collect();
    let event = json!({
        "method": "POST",
        "path": flow.webhook().map(|w| w.path.clone()),
        "headers": headers,
        "query": restore(&Value::Object(t.trigger.query.clone())),
        "body": restore(&t.trigger.body),
        "receivedAt": crate::clock::rfc3339(engine.clock().now_ms()),
    });
    let mut mocks = crate::answers::Answers::outputs(t.mocks.iter().map(|(k, v)| (k.clone(), restore(v))));
    for (key, e) in &t.mock_errors {
        let error = flowgate_steps::StepError {
            details: e.details.as_ref().map(restore),
            ..flowgate_steps::StepError::fatal(e.code.clone(), redactor.restore_text(&e.message).into_owned())
        };
        mocks.insert(key.clone(), crate::answers::Answer::Error(error));
    }
    let submitted = engine
        .submit(Submission {
            flow: flow.clone(),
            trigger: event.clone(),
            kind: "test",
            auth_label: None,
            replay_of: None,
            wait: Wait::End,
            options: SubmitOptions { mocks: Some(Arc::new(mocks)), ..SubmitOptions::default() },
        })
        .await;
    let submitted = match submitted {
        Ok(s) => s,
        Err(e) => {
            fail(&mut result, "run", Value::Null, Value::Null, format!("the run could not start: {e}"));
            return result;
        }
    };
    let Some(waiter) = submitted.waiter else { return result };
    let outcome = match tokio::time::timeout(CASE_TIMEOUT, waiter).await {
        Ok(Ok(SyncOutcome::Finished { status, output, error, response })) => (status, output, error, response),
        _ => {
            fail(&mut result, "run", Value::Null, Value::Null, format!("the run did not end within {CASE_TIMEOUT:?}"));
            return result;
        }
    };
    let (status, output, error, response) = outcome;
    result.status = status.as_str().to_owned();
    // The last completed output of each step.
    let mut outputs = Map::new();
    if let Ok(journal) = engine.store().journal(&submitted.id).await {
        for r in journal {
            if matches!(r.status.as_str(), "succeeded" | "skipped" | "continued")
                && let Some(o) =
                    r.output.as_deref().and_then(|o| serde_json::from_str(&flow.redactor.restore_json_text(o)).ok())
            {
                outputs.insert(r.step_id, o);
            }
        }
    }
    let expect = &t.expect;
    let want_status = expect.status.clone().unwrap_or_else(|| "succeeded".into());
    if result.status != want_status {
        let why = error.as_ref().and_then(|e| e["message"].as_str()).map(|m| format!(": {m}")).unwrap_or_default();
        let got = result.status.clone();
        fail(&mut result, "status", json!(want_status), json!(got), format!("the run ended {got}{why}"));
    }
    for (id, want) in &expect.steps {
        let got = outputs.get(id).map(restore).unwrap_or(Value::Null);
        for (at, e, a) in differences(&restore(want), &got) {
            let path = if at == "." { format!("steps.{id}") } else { format!("steps.{id}.{at}") };
            fail(&mut result, &path, e, a, format!("step `{id}` output differs"));
        }
    }
    let output = output.map(|o| restore(&o)).unwrap_or(Value::Null);
    if let Some(want) = &expect.output {
        for (at, e, a) in differences(&restore(want), &output) {
            let path = if at == "." { "output".to_owned() } else { format!("output.{at}") };
            fail(&mut result, &path, e, a, "the output differs".into());
        }
    }
    let response = response.map(|r| restore(&json!({ "status": r.status, "headers": r.headers, "body": r.body })));
    if let Some(want) = &expect.respond {
        let got = response.clone().unwrap_or(Value::Null);
        for (at, e, a) in differences(&restore(want), &got) {
            let path = if at == "." { "respond".to_owned() } else { format!("respond.{at}") };
            fail(&mut result, &path, e, a, "the respond answer differs".into());
        }
    }
    let execution = json!({ "id": submitted.id, "status": result.status, "response": response, "error": error });
    for (i, src) in expect.jq.iter().enumerate() {
        let scope = Scope {
            trigger: &event,
            steps: &outputs,
            outer: &[],
            config: &flow.config,
            flow: &flow.flow_var,
            execution: &execution,
            item: None,
            state: None,
        };
        let verdict = match Template::expr(&redactor.restore_text(src)) {
            Ok(t) => t.eval(&output, &scope, flowgate_expr::Budget::DEFAULT).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match verdict {
            Ok(v) if truthy(&v) => {}
            Ok(v) => fail(&mut result, &format!("jq[{i}]"), json!(true), v, format!("`{src}` does not hold")),
            Err(e) => fail(&mut result, &format!("jq[{i}]"), json!(true), Value::Null, format!("`{src}` failed: {e}")),
        }
    }
    result.passed = result.failures.is_empty();
    result.duration_ms = started.elapsed().as_millis() as u64;
    // What a test shows never holds a secret's value (issue 13): compared in full, shown
    // redacted.
    for f in &mut result.failures {
        f.expected = flow.redactor.redact_value(&f.expected);
        f.actual = flow.redactor.redact_value(&f.actual);
        f.message = flow.redactor.redact_text(&f.message).into_owned();
    }
    result
}

impl Engine {
    /// Runs the test cases of a stored integration with its deployment's config values, on
    /// a throwaway engine (nothing is recorded in the tenant).
    ///
    /// # Errors
    /// No such integration, secrets that cannot be opened, or the document's problems.
    pub async fn test_integration(
        &self,
        tenant: &str,
        slug: &str,
        only: Option<&str>,
    ) -> Result<Option<TestReport>, Vec<Diagnostic>> {
        let problem = |m: String| vec![Diagnostic { path: String::new(), line: None, column: None, message: m }];
        let Some(record) = self.inner.store.integration(tenant, slug).await.map_err(|e| problem(e.to_string()))? else {
            return Ok(None);
        };
        let literals = crate::deploy::open_literals(&self.inner.sealer, &record).map_err(problem)?;
        let text = flowgate_secrets::Redactor::new(literals).restore_text(&record.source).into_owned();
        let deployment = self
            .inner
            .store
            .deployment(IntegrationKey { tenant, integration: slug })
            .await
            .map_err(|e| problem(e.to_string()))?;
        let values = match &deployment {
            Some(d) => crate::deploy::open_values(&self.inner.sealer, d).map_err(problem)?,
            None => Map::new(),
        };
        // Values stored sealed stay secrets in what a test shows, whatever type the document
        // now gives their variable (the throwaway engine seals by type only).
        let sealed: Vec<(String, String)> = deployment
            .as_ref()
            .map(crate::deploy::sealed_names)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| values.get(&n).and_then(Value::as_str).map(|v| (format!("config.{n}"), v.to_owned())))
            .collect();
        let format = if record.format == "json" { Format::Json } else { Format::Yaml };
        let mut report = run_tests(&text, format, &values, only, &self.inner.settings).await?;
        if !sealed.is_empty() {
            let redactor = flowgate_secrets::Redactor::new(sealed);
            for f in report.results.iter_mut().flat_map(|r| r.failures.iter_mut()) {
                f.expected = redactor.redact_value(&f.expected);
                f.actual = redactor.redact_value(&f.actual);
                f.message = redactor.redact_text(&f.message).into_owned();
            }
        }
        Ok(Some(report))
    }
}
