//! The switch step: the first case that holds picks the branch, else the default.

use crate::test_support::{Harness, Ran, compile, compile_one, has_problem, problems, run};
use serde_json::{Value, json};

fn route() -> Value {
    json!({"id": "route", "switch": [
        {"when": ".total > 100", "steps": [
            {"id": "big", "respond": {"status": 201}},
            {"id": "big-log", "log": "big"},
        ]},
        {"name": "medium", "when": ".total > 10", "steps": [{"id": "medium", "transform": "."}]},
        {"when": ".total > 1", "steps": [{"id": "also-medium", "transform": "."}]},
        {"default": [{"id": "small", "respond": {"status": 200}}]},
    ]})
}

fn branch(ids: &[&str]) -> Ran {
    Ran::Branch(Some(ids.iter().map(|s| s.to_string()).collect()))
}

#[tokio::test]
async fn the_first_case_that_holds_wins() {
    let step = compile_one(route());
    let h = Harness::new();
    assert_eq!(h.run(&step, json!({"total": 500})).await.ok(), &branch(&["big", "big-log"]));
    // `.total > 10` and `.total > 1` both hold: the first is taken.
    assert_eq!(h.run(&step, json!({"total": 50})).await.ok(), &branch(&["medium"]));
    assert_eq!(h.run(&step, json!({"total": 5})).await.ok(), &branch(&["also-medium"]));
}

#[tokio::test]
async fn no_case_holds_takes_the_default() {
    let step = compile_one(route());
    let r = Harness::new().run(&step, json!({"total": 1})).await;
    assert_eq!(r.ok(), &branch(&["small"]));
    // null and no output do not hold either.
    let r = run(
        json!({"id": "s", "switch": [
            {"when": ".missing", "steps": [{"id": "a", "log": "a"}]},
            {"when": "empty", "steps": [{"id": "b", "log": "b"}]},
            {"default": [{"id": "c", "log": "c"}]},
        ]}),
        json!({}),
    )
    .await;
    assert_eq!(r.ok(), &branch(&["c"]));
}

#[tokio::test]
async fn without_a_default_nothing_runs() {
    let step = compile_one(json!({"id": "s", "switch": [{"when": ".go", "steps": [{"id": "a", "log": "a"}]}]}));
    let h = Harness::new();
    assert_eq!(h.run(&step, json!({"go": false})).await.ok(), &Ran::Branch(None));
    assert_eq!(h.run(&step, json!({"go": true})).await.ok(), &branch(&["a"]));
    let r = run(json!({"id": "s", "switch": []}), json!(1)).await;
    assert_eq!(r.ok(), &Ran::Branch(None));
}

#[tokio::test]
async fn conditions_read_the_scope() {
    let step = compile_one(json!({"id": "s", "switch": [
        {"when": "$config.mode == \"eu\"", "steps": [{"id": "eu", "log": "eu"}]},
        {"default": [{"id": "other", "log": "other"}]},
    ]}));
    let eu = Harness::new().config(json!({"mode": "eu"}));
    let us = Harness::new().config(json!({"mode": "us"}));
    assert_eq!(eu.run(&step, json!(null)).await.ok(), &branch(&["eu"]));
    assert_eq!(us.run(&step, json!(null)).await.ok(), &branch(&["other"]));
}

#[tokio::test]
async fn a_condition_error_fails_the_step() {
    let step = compile_one(json!({"id": "s", "switch": [
        {"when": ".a.b", "steps": [{"id": "a", "log": "a"}]},
        {"default": [{"id": "d", "log": "d"}]},
    ]}));
    let r = Harness::new().run(&step, json!({"a": 1})).await;
    assert_eq!(r.err().code, "expression_error");
    assert!(!r.err().retryable);
}

#[test]
fn a_case_without_when_is_a_problem() {
    let p = problems(json!({"id": "s", "switch": [{"steps": [{"id": "a", "log": "a"}]}]}));
    assert!(has_problem(&p, "steps[0].switch[0]", "a case needs `when`"), "{p:?}");
    let p = problems(json!({"id": "s", "switch": [{"when": 1, "steps": []}]}));
    assert!(has_problem(&p, "steps[0].switch[0].when", "expected a jq condition"), "{p:?}");
    let p = problems(json!({"id": "s", "switch": [{"when": ".a"}]}));
    assert!(has_problem(&p, "steps[0].switch[0]", "a case needs `steps`"), "{p:?}");
    let p = problems(json!({"id": "s", "switch": [{"when": ".a", "steps": [], "then": 1}]}));
    assert!(has_problem(&p, "steps[0].switch[0].then", "unknown key `then`"), "{p:?}");
    let p = problems(json!({"id": "s", "switch": {"when": ".a"}}));
    assert!(has_problem(&p, "steps[0].switch", "expected a list of cases"), "{p:?}");
}

#[test]
fn a_default_that_is_not_last_is_a_problem() {
    let p = problems(json!({"id": "s", "switch": [
        {"default": [{"id": "d", "log": "d"}]},
        {"when": ".a", "steps": [{"id": "a", "log": "a"}]},
    ]}));
    assert!(has_problem(&p, "steps[0].switch[0].default", "`default` must be the last case"), "{p:?}");
    let p = problems(json!({"id": "s", "switch": [{"default": [], "when": ".a"}]}));
    assert!(has_problem(&p, "steps[0].switch[0]", "a `default` case has no other keys"), "{p:?}");
}

#[test]
fn nested_steps_compile_at_their_own_paths() {
    let compiled = compile(route());
    assert!(compiled.diags.is_empty(), "{:?}", compiled.diags);
    assert_eq!(compiled.steps.len(), 1);
    assert_eq!(compiled.steps[0].kind, "switch");

    // A bad condition and a bad nested step are each located, at the case and in the branch.
    let p = problems(json!({"id": "s", "switch": [
        {"when": ".a |", "steps": [{"id": "a", "log": "a"}]},
        {"when": ".b", "steps": [{"id": "b", "transform": ".x |"}]},
        {"default": [{"id": "d", "filter": 3}]},
    ]}));
    assert!(has_problem(&p, "steps[0].switch[0].when", "expression does not compile"), "{p:?}");
    assert!(has_problem(&p, "steps[0].switch[1].steps[0].transform", "expression does not compile"), "{p:?}");
    assert!(has_problem(&p, "steps[0].switch[2].default[0].filter", "expected a jq condition"), "{p:?}");

    // `$steps` is flat: a nested id may not repeat another step's.
    let p = problems(json!({"id": "s", "switch": [
        {"when": ".a", "steps": [{"id": "s", "log": "a"}]},
        {"default": [{"id": "d", "log": "d"}, {"id": "d", "log": "again"}]},
    ]}));
    assert!(has_problem(&p, "steps[0].switch[0].steps[0].id", "duplicate step id `s`"), "{p:?}");
    assert!(has_problem(&p, "steps[0].switch[1].default[1].id", "duplicate step id `d`"), "{p:?}");
}

#[test]
fn children_name_each_branch() {
    let mut diags = flowgate_model::Diags::default();
    let defs = crate::test_support::decode(&json!([route()]), &mut diags);
    assert!(diags.is_empty());
    let children = flowgate_model::StepKind::children(&defs[0].kind);
    let named: Vec<(String, Vec<&str>)> =
        children.iter().map(|(p, steps)| (p.to_string(), steps.iter().map(|s| s.id()).collect())).collect();
    assert_eq!(
        named,
        vec![
            ("[0].steps".to_owned(), vec!["big", "big-log"]),
            ("[1].steps".to_owned(), vec!["medium"]),
            ("[2].steps".to_owned(), vec!["also-medium"]),
            ("[3].default".to_owned(), vec!["small"]),
        ]
    );
}
