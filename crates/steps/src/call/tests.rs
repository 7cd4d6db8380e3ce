//! The call step: asks the engine (a [`Calls`]) to admit, then to run the child with the
//! evaluated input; and `check_targets`, which checks the flows it names.

use super::{CallConfig, DEFAULT_CALL_TIMEOUT, check_targets};
use crate::test_support::{Harness, compile_one, decode, has_problem, problems, steps_path};
use crate::{Calls, Kind, StepError};
use async_trait::async_trait;
use flowgate_model::{Diags, Path};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::Duration;

/// What the step asked of the engine, in order.
#[derive(Debug, Clone, PartialEq)]
enum Asked {
    Admit,
    Call { integration: Option<String>, flow: String, body: Value, timeout: Duration },
}

/// A [`Calls`] that records what it is asked and answers as told.
struct Recorder {
    admit: Result<(), StepError>,
    answer: Result<Value, StepError>,
    asked: Mutex<Vec<Asked>>,
}

impl Recorder {
    fn answering(answer: Value) -> Recorder {
        Recorder { admit: Ok(()), answer: Ok(answer), asked: Mutex::new(Vec::new()) }
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl Calls for Recorder {
    async fn call(
        &self,
        integration: Option<&str>,
        flow: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, StepError> {
        self.asked.lock().unwrap().push(Asked::Call {
            integration: integration.map(str::to_owned),
            flow: flow.to_owned(),
            body,
            timeout,
        });
        self.answer.clone()
    }

    async fn admit(&self) -> Result<(), StepError> {
        self.asked.lock().unwrap().push(Asked::Admit);
        self.admit.clone()
    }
}

#[tokio::test]
async fn the_evaluated_input_and_the_target_reach_the_engine() {
    let step = compile_one(json!({"id": "shared", "call": {
        "integration": "common-tools", "flow": "lookup-vat",
        "input": {"country": "{{ .country }}", "rate": "{{ $config.rate }}"}, "timeout": "5m",
    }}));
    let calls = Recorder::answering(json!({"vat": 25}));
    let r = Harness::new().config(json!({"rate": "high"})).run_with(&step, json!({"country": "NO"}), &calls).await;
    assert_eq!(r.output(), &json!({"vat": 25}));
    assert_eq!(
        calls.asked(),
        vec![
            Asked::Admit,
            Asked::Call {
                integration: Some("common-tools".into()),
                flow: "lookup-vat".into(),
                body: json!({"country": "NO", "rate": "high"}),
                timeout: Duration::from_secs(300),
            },
        ]
    );
}

#[tokio::test]
async fn the_default_input_is_the_steps_input() {
    let step = compile_one(json!({"id": "enriched", "call": {"flow": "enrich-customer"}}));
    let calls = Recorder::answering(json!("done"));
    let input = json!({"id": 7, "tags": ["a"]});
    let r = Harness::new().run_with(&step, input.clone(), &calls).await;
    assert_eq!(r.output(), &json!("done"));
    assert_eq!(
        calls.asked(),
        vec![
            Asked::Admit,
            Asked::Call {
                integration: None,
                flow: "enrich-customer".into(),
                body: input,
                timeout: DEFAULT_CALL_TIMEOUT
            },
        ]
    );
}

#[tokio::test]
async fn admit_comes_before_the_input_is_evaluated() {
    let step = compile_one(json!({"id": "c", "call": {"flow": "child", "input": "{{ error(\"evaluated\") }}"}}));
    let h = Harness::new();

    // Refused: the input is never evaluated (its error would show), the child never asked for.
    let refusing = Recorder {
        admit: Err(StepError::fatal("call_depth", "calls nest too deep")),
        answer: Ok(json!(null)),
        asked: Mutex::new(Vec::new()),
    };
    let r = h.run_with(&step, json!(null), &refusing).await;
    assert_eq!(r.err(), &StepError::fatal("call_depth", "calls nest too deep"));
    assert_eq!(refusing.asked(), vec![Asked::Admit]);

    // Admitted: now the input is evaluated, and its error stops the call.
    let admitting = Recorder::answering(json!(null));
    let r = h.run_with(&step, json!(null), &admitting).await;
    assert_eq!((r.err().code.as_str(), r.err().message.as_str()), ("expression_error", "evaluated"));
    assert_eq!(admitting.asked(), vec![Asked::Admit]);
}

#[tokio::test]
async fn a_failed_child_fails_the_step() {
    let step = compile_one(json!({"id": "c", "call": {"flow": "child"}}));
    let calls = Recorder {
        admit: Ok(()),
        answer: Err(StepError::retryable("call_timeout", "still running")),
        asked: Mutex::new(Vec::new()),
    };
    let r = Harness::new().run_with(&step, json!(1), &calls).await;
    assert_eq!(r.err(), &StepError::retryable("call_timeout", "still running"));
    // Without an engine, nothing can be called.
    let r = Harness::new().run(&step, json!(1)).await;
    assert_eq!(r.err().code, "call_unavailable");
    assert!(step.body.side_effects());
}

#[test]
fn invalid_slugs_are_problems() {
    let p = problems(json!({"id": "c", "call": {"flow": "Enrich Customer"}}));
    assert!(has_problem(&p, "steps[0].call.flow", "invalid flow slug `Enrich Customer`"), "{p:?}");
    let p = problems(json!({"id": "c", "call": {"integration": "Common/Tools", "flow": "ok"}}));
    assert!(has_problem(&p, "steps[0].call.integration", "invalid integration slug `Common/Tools`"), "{p:?}");
    assert_eq!(p.len(), 1, "{p:?}");
    let p = problems(json!({"id": "c", "call": {"flow": "ok", "input": "{{ .a | }}"}}));
    assert!(has_problem(&p, "steps[0].call.input", "expression does not compile"), "{p:?}");
    let p = problems(json!({"id": "c", "call": {"integration": "x"}}));
    assert!(p.iter().any(|(path, m)| path.starts_with("steps[0].call") && m.contains("flow")), "{p:?}");
}

#[test]
fn waits_ten_minutes_unless_told() {
    let mut diags = Diags::default();
    let c = CallConfig::decode(&json!({"flow": "a"}), &Path::root(), &mut diags).unwrap();
    assert_eq!(c.timeout(), Some(Duration::from_secs(600)));
    assert_eq!(DEFAULT_CALL_TIMEOUT, Duration::from_secs(600));
    let c = CallConfig::decode(&json!({"flow": "a", "timeout": "90s"}), &Path::root(), &mut diags).unwrap();
    assert_eq!(c.timeout(), Some(Duration::from_secs(90)));
    assert!(diags.is_empty());

    // The kind's wait is the step's attempt timeout, unless the step sets its own.
    assert_eq!(compile_one(json!({"id": "c", "call": {"flow": "a"}})).timeout, Duration::from_secs(600));
    assert_eq!(
        compile_one(json!({"id": "c", "call": {"flow": "a", "timeout": "2m"}})).timeout,
        Duration::from_secs(120)
    );
    assert_eq!(
        compile_one(json!({"id": "c", "timeout": "1m", "call": {"flow": "a"}})).timeout,
        Duration::from_secs(60)
    );
}

fn targets(steps: Value, flows: &[&str]) -> Vec<(String, String)> {
    let mut diags = Diags::default();
    let defs = decode(&steps, &mut diags);
    assert!(diags.is_empty(), "{:?}", diags.into_vec());
    let flows: Vec<String> = flows.iter().map(|s| s.to_string()).collect();
    let mut diags = Diags::default();
    check_targets(&defs, &flows, &steps_path(), &mut diags);
    diags.into_vec().into_iter().map(|d| (d.path, d.message)).collect()
}

#[test]
fn check_targets_reports_unknown_flows() {
    let p = targets(
        json!([
            {"id": "a", "call": {"flow": "enrich"}},
            {"id": "b", "log": "x"},
            {"id": "c", "call": {"flow": "missing"}},
        ]),
        &["main", "enrich"],
    );
    assert_eq!(
        p,
        vec![(
            "steps[2].call.flow".to_owned(),
            "no flow `missing` in this integration (flows: main, enrich)".to_owned()
        )]
    );
    assert!(targets(json!([{"id": "a", "call": {"flow": "enrich"}}]), &["enrich"]).is_empty());
}

#[test]
fn check_targets_looks_inside_switch_branches() {
    let p = targets(
        json!([
            {"id": "route", "switch": [
                {"when": ".a", "steps": [{"id": "ok", "call": {"flow": "main"}}, {"id": "in-case", "call": {"flow": "gone"}}]},
                {"default": [{"id": "nested", "switch": [
                    {"when": ".b", "steps": [{"id": "deep", "call": {"flow": "lost"}}]},
                ]}]},
            ]},
        ]),
        &["main"],
    );
    let paths: Vec<&str> = p.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["steps[0].switch[0].steps[1].call.flow", "steps[0].switch[1].default[0].switch[0].steps[0].call.flow"]
    );
    assert!(p[0].1.contains("no flow `gone`") && p[1].1.contains("no flow `lost`"), "{p:?}");
}

#[test]
fn check_targets_ignores_other_integrations() {
    let p = targets(
        json!([
            {"id": "a", "call": {"integration": "common-tools", "flow": "not-here"}},
            {"id": "s", "switch": [{"default": [{"id": "b", "call": {"integration": "other", "flow": "x"}}]}]},
        ]),
        &["main"],
    );
    assert!(p.is_empty(), "{p:?}");
}
