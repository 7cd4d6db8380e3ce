//! The log step: writes a line at a level and passes its input on.

use crate::LogEntry;
use crate::test_support::{Harness, compile_one, has_problem, problems, run};
use serde_json::json;

fn entry(level: &str, message: &str) -> LogEntry {
    LogEntry { level: level.into(), message: message.into() }
}

#[tokio::test]
async fn a_string_is_an_info_line() {
    let input = json!({"id": 7, "name": "Ada"});
    let r = run(json!({"id": "note", "log": "customer {{ .id }} synced"}), input.clone()).await;
    assert_eq!(r.output(), &input);
    assert_eq!(r.logs, vec![entry("info", "customer 7 synced")]);
    assert!(r.response.is_none());
}

#[tokio::test]
async fn the_object_form_sets_the_level() {
    for level in ["debug", "info", "warn", "error"] {
        let r = run(json!({"id": "w", "log": {"level": level, "message": "no email for {{ .id }}"}}), json!({"id": 3}))
            .await;
        assert_eq!(r.output(), &json!({"id": 3}));
        assert_eq!(r.logs, vec![entry(level, "no email for 3")]);
    }
    let r = run(json!({"id": "w", "log": {"message": "plain"}}), json!(null)).await;
    assert_eq!(r.logs, vec![entry("info", "plain")]);
}

#[tokio::test]
async fn a_value_that_is_not_text_is_written_as_json() {
    let step = compile_one(json!({"id": "w", "log": {"level": "debug", "message": "{{ $steps.a }}"}}));
    let r = Harness::new().steps(json!({"a": {"x": [1, 2]}})).run(&step, json!(null)).await;
    assert_eq!(r.logs, vec![entry("debug", r#"{"x":[1,2]}"#)]);
}

#[tokio::test]
async fn an_expression_error_writes_nothing() {
    let r = run(json!({"id": "w", "log": "{{ .a.b }}"}), json!({"a": 1})).await;
    assert_eq!(r.err().code, "expression_error");
    assert!(r.logs.is_empty());
}

#[test]
fn an_unknown_level_is_a_located_problem() {
    let p = problems(json!({"id": "w", "log": {"level": "loud", "message": "x"}}));
    assert!(p.iter().any(|(path, _)| path == "steps[0].log.level"), "{p:?}");
    let p = problems(json!({"id": "w", "log": {"level": "info", "text": "x"}}));
    assert!(p.iter().any(|(path, _)| path.starts_with("steps[0].log")), "{p:?}");
    let p = problems(json!({"id": "w", "log": {"message": "{{ .a | }}"}}));
    assert!(has_problem(&p, "steps[0].log.message", "expression does not compile"), "{p:?}");
}
