//! The transform step: computes its output with jq; run-time errors are fatal and located.

use crate::test_support::{Harness, Ran, compile_one, has_problem, problems, run};
use serde_json::json;

#[tokio::test]
async fn computes_the_output() {
    let r = run(
        json!({"id": "mapped", "transform": "{ name: .body.name, email: (.body.email | ascii_downcase) }"}),
        json!({"body": {"name": "Ada", "email": "ADA@Example.COM"}}),
    )
    .await;
    assert_eq!(r.ok(), &Ran::Output(json!({"name": "Ada", "email": "ada@example.com"})));
    assert!(r.logs.is_empty() && r.response.is_none());
}

#[tokio::test]
async fn collects_several_outputs_and_none_is_null() {
    let r = run(json!({"id": "t", "transform": ".[] | . * 2"}), json!([1, 2, 3])).await;
    assert_eq!(r.output(), &json!([2, 4, 6]));
    let r = run(json!({"id": "t", "transform": "empty"}), json!({"a": 1})).await;
    assert_eq!(r.output(), &json!(null));
}

#[tokio::test]
async fn reads_the_scope() {
    let step = compile_one(
        json!({"id": "t", "transform": "$steps.customer.body.id + $config.offset + $trigger.body.extra + ."}),
    );
    let h = Harness::new()
        .steps(json!({"customer": {"body": {"id": 40}}}))
        .config(json!({"offset": 1}))
        .trigger(json!({"body": {"extra": 100}}));
    assert_eq!(h.run(&step, json!(1)).await.output(), &json!(142));
}

#[tokio::test]
async fn an_expression_error_is_fatal_and_located() {
    let r = run(json!({"id": "t", "transform": ".a.b"}), json!({"a": 5})).await;
    let e = r.err();
    assert_eq!(e.code, "expression_error");
    assert!(!e.retryable, "{e:?}");
    assert!(e.message.contains("index"), "{e:?}");
    assert_eq!(e.details, Some(json!({"expression": ".a.b"})));

    let r =
        run(json!({"id": "t", "transform": "if .ok then . else error(\"not ok\") end"}), json!({"ok": false})).await;
    let e = r.err();
    assert_eq!((e.code.as_str(), e.message.as_str()), ("expression_error", "not ok"));
    assert_eq!(e.details.as_ref().unwrap()["expression"], "if .ok then . else error(\"not ok\") end");
}

#[test]
fn invalid_jq_is_a_located_problem() {
    let p = problems(json!({"id": "t", "transform": "{ name: .body.name"}));
    assert!(has_problem(&p, "steps[0].transform", "expression does not compile"), "{p:?}");
    let p = problems(json!({"id": "t", "transform": ".a | | .b"}));
    assert!(has_problem(&p, "steps[0].transform", "(at character"), "{p:?}");
}

#[test]
fn a_non_string_config_is_a_located_problem() {
    let p = problems(json!({"id": "t", "transform": {"name": ".a"}}));
    assert!(has_problem(&p, "steps[0].transform", "expected a jq expression (a string)"), "{p:?}");
}
