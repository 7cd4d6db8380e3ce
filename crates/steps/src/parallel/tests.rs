//! The parallel step: both forms, the branches it hands the engine, its config's problems.

use crate::test_support::{Harness, Ran, compile_one, has_problem, problems};
use serde_json::json;

fn branches(list: &[(&str, &[&str])]) -> Ran {
    Ran::Parallel(list.iter().map(|(n, ids)| (n.to_string(), ids.iter().map(|s| s.to_string()).collect())).collect())
}

#[tokio::test]
async fn both_forms_give_the_branches_in_the_order_written() {
    let short = compile_one(json!({"id": "p", "parallel": {
        "b": [{"id": "b1", "transform": "."}], "a": [{"id": "a1", "transform": "."}, {"id": "a2", "log": "x"}],
        "onError": "continue"
    }}));
    let long = compile_one(json!({"id": "p", "parallel": {"branches": {
        "b": [{"id": "b1", "transform": "."}], "a": [{"id": "a1", "transform": "."}, {"id": "a2", "log": "x"}]
    }, "onError": "fail"}}));
    let want = branches(&[("b", &["b1"]), ("a", &["a1", "a2"])]);
    assert_eq!(Harness::new().run(&short, json!({})).await.ok(), &want);
    assert_eq!(Harness::new().run(&long, json!({})).await.ok(), &want);
}

#[test]
fn problems_are_located() {
    let p = problems(json!({"id": "p", "parallel": {"1x": [], "b": 3, "c": [{"id": "w", "wait": {}}], "onError": 1}}));
    assert!(has_problem(&p, "steps[0].parallel.1x", "invalid branch name"), "{p:?}");
    assert!(has_problem(&p, "steps[0].parallel.b", "a list"), "{p:?}");
    assert!(has_problem(&p, "steps[0].parallel.c[0].wait", "side by side"), "{p:?}");
    assert!(has_problem(&p, "steps[0].parallel.onError", "`fail` or `continue`"), "{p:?}");
    let p = problems(json!({"id": "p", "parallel": {"branches": {"a": []}, "extra": 1}}));
    assert!(has_problem(&p, "steps[0].parallel.extra", "unknown key"), "{p:?}");
    let p = problems(json!({"id": "p", "parallel": {}}));
    assert!(has_problem(&p, "steps[0].parallel", "at least one branch"), "{p:?}");
    let p = problems(json!({"id": "p", "parallel": []}));
    assert!(has_problem(&p, "steps[0].parallel", "expected an object"), "{p:?}");
}
