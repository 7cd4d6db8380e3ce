//! The filter step: passes its input on when the condition holds, else ends as filtered.

use crate::test_support::{Harness, Ran, compile_one, has_problem, problems, run};
use serde_json::json;

#[tokio::test]
async fn a_true_condition_passes() {
    let r = run(json!({"id": "f", "filter": ".active"}), json!({"active": true})).await;
    assert_eq!(r.ok(), &Ran::Pass);
    // jq truthiness: anything but false and null holds.
    for v in [json!(0), json!(""), json!([]), json!({})] {
        let r = run(json!({"id": "f", "filter": ".v"}), json!({ "v": v })).await;
        assert_eq!(r.ok(), &Ran::Pass, "{v}");
    }
}

#[tokio::test]
async fn false_null_or_no_output_is_filtered() {
    let step = compile_one(json!({"id": "f", "filter": ".active"}));
    let h = Harness::new();
    assert_eq!(h.run(&step, json!({"active": false})).await.ok(), &Ran::Filtered);
    assert_eq!(h.run(&step, json!({"active": null})).await.ok(), &Ran::Filtered);
    assert_eq!(h.run(&step, json!({})).await.ok(), &Ran::Filtered);
    let r = run(json!({"id": "f", "filter": "empty"}), json!({"active": true})).await;
    assert_eq!(r.ok(), &Ran::Filtered);
}

#[tokio::test]
async fn reads_steps() {
    let step = compile_one(json!({"id": "only-active", "filter": "$steps.customer.body.active"}));
    let on = Harness::new().steps(json!({"customer": {"body": {"active": true}}}));
    let off = Harness::new().steps(json!({"customer": {"body": {"active": false}}}));
    assert_eq!(on.run(&step, json!(null)).await.ok(), &Ran::Pass);
    assert_eq!(off.run(&step, json!(null)).await.ok(), &Ran::Filtered);
}

#[tokio::test]
async fn an_expression_error_fails_the_step() {
    let e = run(json!({"id": "f", "filter": ".a.b"}), json!({"a": "text"})).await.err().clone();
    assert_eq!(e.code, "expression_error");
    assert!(!e.retryable);
}

#[test]
fn a_non_string_config_is_a_located_problem() {
    let p = problems(json!({"id": "f", "filter": true}));
    assert!(has_problem(&p, "steps[0].filter", "expected a jq condition (a string)"), "{p:?}");
    let p = problems(json!({"id": "f", "filter": ".a =="}));
    assert!(has_problem(&p, "steps[0].filter", "expression does not compile"), "{p:?}");
}
