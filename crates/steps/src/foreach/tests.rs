//! The loop step: the items it hands the engine, its config's problems.

use crate::test_support::{Harness, Ran, compile_one, has_problem, problems, run};
use serde_json::json;

#[tokio::test]
async fn the_items_expression_gives_the_list_the_engine_runs() {
    let step = compile_one(json!({"id": "each", "foreach": {
        "items": ".lines | map(select(.qty > 0))", "concurrency": 3,
        "steps": [{"id": "a", "transform": "."}, {"id": "b", "log": "x"}]
    }}));
    let r = Harness::new().run(&step, json!({"lines": [{"qty": 1}, {"qty": 0}, {"qty": 2}]})).await;
    assert_eq!(
        r.ok(),
        &Ran::Each {
            items: vec![json!({"qty": 1}), json!({"qty": 2})],
            steps: vec!["a".into(), "b".into()],
            concurrency: 3
        }
    );
    // null is no items; anything else than a list is an error that says what it got.
    let r = run(json!({"id": "e", "foreach": {"items": ".none", "steps": []}}), json!({})).await;
    assert_eq!(r.ok(), &Ran::Each { items: vec![], steps: vec![], concurrency: 1 });
    let r = run(json!({"id": "e", "foreach": {"items": ".n", "steps": []}}), json!({"n": 5})).await;
    assert_eq!(r.err().code, "foreach_items");
    assert!(r.err().message.contains("expected a list"), "{}", r.err().message);
}

#[test]
fn problems_are_located() {
    let p = problems(json!({"id": "e", "foreach": {"items": 3, "concurrency": 65, "onError": "maybe", "what": 1,
        "collect": "[", "steps": []}}));
    assert!(has_problem(&p, "steps[0].foreach.items", "expected jq"), "{p:?}");
    assert!(has_problem(&p, "steps[0].foreach.concurrency", "from 1 to 64"), "{p:?}");
    assert!(has_problem(&p, "steps[0].foreach.onError", "`fail` or `continue`"), "{p:?}");
    assert!(has_problem(&p, "steps[0].foreach.what", "unknown key"), "{p:?}");
    let p =
        problems(json!({"id": "e", "foreach": {"items": ".x", "concurrency": 2, "steps": [{"id": "w", "wait": {}}]}}));
    assert!(has_problem(&p, "steps[0].foreach.steps[0].wait", "side by side"), "{p:?}");
    let p = problems(json!({"id": "e", "foreach": {"items": ".x", "collect": "[", "steps": []}}));
    assert!(p.iter().any(|(path, _)| path == "steps[0].foreach.collect"), "{p:?}");
    let p = problems(json!({"id": "e", "foreach": "x"}));
    assert!(has_problem(&p, "steps[0].foreach", "expected an object"), "{p:?}");
    // One item at a time, a wait is fine.
    compile_one(json!({"id": "e", "foreach": {"items": ".x", "steps": [{"id": "w", "wait": {}}]}}));
}
