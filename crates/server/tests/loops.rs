//! Loops and parallel branches (issue 18): `foreach` runs its steps per item (in order, or
//! `concurrency` at a time), journals each item so a retry goes on mid-loop without sending
//! a finished item again, and follows `onError`; `parallel` runs its branches truly at once,
//! joins their outputs, and a retry runs only the branch that failed. Both backends.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, send};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// `(stepId, status)` of every journal entry.
fn statuses(ex: &Value) -> Vec<(String, String)> {
    ex["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["stepId"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

async fn start_run(s: &TestServer, integration: &str, flow: &str, body: Value) -> String {
    let (status, _, v) = send(
        s.api(reqwest::Method::POST, &format!("/v1/integrations/{integration}/flows/{flow}/run"))
            .json(&json!({ "body": body })),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    v["executionId"].as_str().unwrap().to_owned()
}

fn loops(up: &MockUpstream) -> String {
    format!(
        r#"
integration: loops
flows:
  - flow: lines
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: order, transform: '{{ no: .body.no, lines: .body.lines }}' }}
      - id: each
        foreach:
          items: '.lines'
          concurrency: 4
          collect: '{{ sku: $item.sku, id: .body.id, order: $steps.order.no }}'
          steps:
            - {{ id: big, filter: '.qty > 0' }}
            - {{ id: push, http: {{ method: POST, url: "{url}/lines/{{{{ .sku }}}}", body: '{{{{ {{ sku: .sku, qty: .qty, order: $steps.order.no }} }}}}' }} }}
      - {{ id: after, transform: '{{ n: length, first: .[0] }}' }}
  - flow: strict
    trigger: {{ manual: {{}} }}
    steps:
      - id: each
        retry: {{ attempts: 1 }}
        foreach:
          items: '.body.skus'
          steps:
            - {{ id: push, retry: {{ attempts: 1 }}, http: {{ method: POST, url: "{url}/strict/{{{{ . }}}}" }} }}
  - flow: lenient
    trigger: {{ manual: {{}} }}
    steps:
      - id: each
        foreach:
          items: '.body.skus'
          concurrency: 2
          onError: continue
          steps:
            - {{ id: push, retry: {{ attempts: 1 }}, http: {{ method: POST, url: "{url}/lenient/{{{{ . }}}}" }} }}
  - flow: nested
    trigger: {{ manual: {{}} }}
    steps:
      - id: rows
        foreach:
          items: '.body.rows'
          steps:
            - {{ id: row, transform: '{{ name: .name }}' }}
            - id: cells
              foreach:
                items: '$item.cells'
                concurrency: 3
                steps:
                  - {{ id: cell, transform: '"\($steps.row.name):\(.)"' }}
"#,
        url = up.url
    )
}

backends!(a_loop_runs_each_item_keeps_order_and_journals_per_item);
async fn a_loop_runs_each_item_keeps_order_and_journals_per_item() {
    let up = MockUpstream::start().await;
    // Later items answer sooner: completion order is not the items' order.
    up.behave(|r| {
        let sku = r.path.rsplit('/').next().unwrap().to_owned();
        let wait = 60u64.saturating_sub(sku.trim_start_matches('s').parse::<u64>().unwrap_or(0) * 10);
        MockResponse::json(201, json!({ "id": format!("id-{sku}") })).delay(Duration::from_millis(wait))
    });
    let s = TestServer::start().await;
    s.apply(&loops(&up)).await;
    let lines: Vec<Value> =
        (0..6).map(|i| json!({ "sku": format!("s{i}"), "qty": if i == 2 { 0 } else { i + 1 } })).collect();
    let id = start_run(&s, "loops", "lines", json!({ "no": "A-1", "lines": lines })).await;
    let ex = s.wait_for(&id, "succeeded").await;
    // Item 2 was filtered out; the others in the items' order, each with what `collect` made.
    let each: Vec<Value> = ["s0", "s1", "s3", "s4", "s5"]
        .iter()
        .map(|sku| json!({ "sku": sku, "id": format!("id-{sku}"), "order": "A-1" }))
        .collect();
    assert_eq!(ex["output"], json!({ "n": 5, "first": each[0] }), "{ex:#}");
    let journal = statuses(&ex);
    let entry = |key: &str| journal.iter().filter(|(k, _)| k == key).map(|(_, st)| st.as_str()).collect::<Vec<_>>();
    assert_eq!(entry("each"), ["succeeded"]);
    assert_eq!(entry("each[0].push"), ["succeeded"]);
    assert_eq!(entry("each[0]"), ["succeeded"]);
    assert_eq!(entry("each[2].big"), ["succeeded"]);
    assert_eq!(entry("each[2]"), ["skipped"]);
    assert!(entry("each[2].push").is_empty());
    let own = ex["steps"].as_array().unwrap().iter().find(|s| s["stepId"] == "each").unwrap();
    assert_eq!(own["output"], json!(each), "{own}");
    // Items ran four at a time, each with its own idempotency key and `$steps` of the flow.
    assert!(up.max_in_flight() >= 2 && up.max_in_flight() <= 4, "in flight: {}", up.max_in_flight());
    let keys: Vec<String> = up.all_requests().iter().map(|r| r.header("idempotency-key").unwrap().to_owned()).collect();
    assert!(keys.contains(&format!("{id}:each[5].push")), "{keys:?}");
    assert_eq!(up.requests("/lines/s4")[0].json(), json!({ "sku": "s4", "qty": 5, "order": "A-1" }));

    // Nested loops: the inner item sees the outer item's steps; an empty list gives [].
    let v = s
        .run_flow(
            "loops",
            "nested",
            json!({ "rows": [ { "name": "a", "cells": [1, 2, 3] }, { "name": "b", "cells": [] } ] }),
        )
        .await;
    assert_eq!(v["output"], json!([["a:1", "a:2", "a:3"], []]), "{v}");
}

backends!(a_failed_item_fails_the_loop_and_a_retry_goes_on_from_it);
async fn a_failed_item_fails_the_loop_and_a_retry_goes_on_from_it() {
    let up = MockUpstream::start().await;
    up.on("/strict/a", MockResponse::json(200, json!({ "ok": "a" })));
    up.on("/strict/b", MockResponse::json(200, json!({ "ok": "b" })));
    up.on("/strict/c", MockResponse::text(503, "down"));
    up.on("/strict/d", MockResponse::json(200, json!({ "ok": "d" })));
    let s = TestServer::start().await;
    s.apply(&loops(&up)).await;
    let id = start_run(&s, "loops", "strict", json!({ "skus": ["a", "b", "c", "d"] })).await;
    let ex = s.wait_for(&id, "failed").await;
    assert_eq!(ex["error"]["step"], "each[2].push", "{ex:#}");
    assert_eq!(up.hits("/strict/d"), 0, "items after the failed one do not start");
    // The target recovers; the retry goes on from the failed item: a and b are not sent again.
    up.on("/strict/c", MockResponse::json(200, json!({ "ok": "c" })));
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{id}/retry"))).await;
    assert_eq!(status, 202, "{v}");
    let ex = s.wait_for(&id, "succeeded").await;
    let hits: HashMap<&str, usize> =
        ["a", "b", "c", "d"].iter().map(|k| (*k, up.hits(&format!("/strict/{k}")))).collect();
    assert_eq!(hits, HashMap::from([("a", 1), ("b", 1), ("c", 2), ("d", 1)]));
    let oks: Vec<&Value> = ex["output"].as_array().unwrap().iter().map(|o| &o["body"]["ok"]).collect();
    assert_eq!(oks, [&json!("a"), &json!("b"), &json!("c"), &json!("d")], "{ex:#}");
}

backends!(on_error_continue_reports_the_failed_items_and_goes_on);
async fn on_error_continue_reports_the_failed_items_and_goes_on() {
    let up = MockUpstream::start().await;
    up.behave(|r| {
        if r.path.ends_with("/bad") {
            MockResponse::text(422, "no such sku")
        } else {
            MockResponse::json(200, json!({ "ok": true }))
        }
    });
    let s = TestServer::start().await;
    s.apply(&loops(&up)).await;
    let v = s.run_flow("loops", "lenient", json!({ "skus": ["x", "bad", "y"] })).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let out = v["output"].as_array().unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["body"]["ok"], true);
    assert_eq!(out[1]["error"]["code"], "http_status", "{v}");
    assert_eq!(out[1]["error"]["details"]["item"], 1, "{v}");
    assert_eq!(out[1]["error"]["details"]["step"], "each[1].push", "{v}");
    assert_eq!(out[2]["body"]["ok"], true);
}

fn branches(up: &MockUpstream) -> String {
    format!(
        r#"
integration: fan
flows:
  - flow: both
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: start, transform: '{{ id: .body.id }}' }}
      - id: both
        parallel:
          customer:
            - {{ id: customer, http: {{ url: "{url}/customer/{{{{ .id }}}}" }} }}
            - {{ id: name, transform: '.body.name' }}
          orders:
            - {{ id: orders, retry: {{ attempts: 1 }}, http: {{ url: "{url}/orders/{{{{ $steps.start.id }}}}" }} }}
            - {{ id: count, transform: '.body | length' }}
      - {{ id: joined, transform: '{{ name: .customer, orders: .orders, seen: $steps.both.customer }}' }}
  - flow: tolerant
    trigger: {{ manual: {{}} }}
    steps:
      - id: both
        onError: continue
        parallel:
          ok: [ {{ id: fine, transform: '"fine"' }} ]
          broken: [ {{ id: boom, transform: 'error("broken branch")' }} ]
"#,
        url = up.url
    )
}

backends!(parallel_branches_run_at_once_and_a_retry_runs_only_the_failed_one);
async fn parallel_branches_run_at_once_and_a_retry_runs_only_the_failed_one() {
    let up = MockUpstream::start().await;
    // Both answers are held until both requests are in: run one after the other, the
    // first would never be answered.
    up.on("/customer/7", MockResponse::json(200, json!({ "name": "Ann" })).held());
    up.on("/orders/7", MockResponse::json(200, json!([1, 2, 3])).held());
    let s = TestServer::start().await;
    s.apply(&branches(&up)).await;
    let id = start_run(&s, "fan", "both", json!({ "id": 7 })).await;
    up.wait_hits("/customer/7", 1).await;
    up.wait_hits("/orders/7", 1).await;
    assert_eq!(up.max_in_flight(), 2);
    up.open_gate();
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["output"], json!({ "name": "Ann", "orders": 3, "seen": "Ann" }), "{ex:#}");
    let journal = statuses(&ex);
    for key in ["both[customer].customer", "both[customer]", "both[orders].count", "both[orders]", "both"] {
        assert!(journal.contains(&(key.to_owned(), "succeeded".to_owned())), "{key}: {journal:?}");
    }

    // One branch fails: the step fails; after the fix a retry runs only that branch.
    up.on("/customer/8", MockResponse::json(200, json!({ "name": "Bo" })));
    up.on("/orders/8", MockResponse::text(500, "down"));
    let id = start_run(&s, "fan", "both", json!({ "id": 8 })).await;
    let ex = s.wait_for(&id, "failed").await;
    assert_eq!(ex["error"]["step"], "both[orders].orders", "{ex:#}");
    up.on("/orders/8", MockResponse::json(200, json!([1])));
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{id}/retry"))).await;
    assert_eq!(status, 202, "{v}");
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["output"], json!({ "name": "Bo", "orders": 1, "seen": "Bo" }), "{ex:#}");
    assert_eq!(up.hits("/customer/8"), 1, "the finished branch is not run again");
    assert_eq!(up.hits("/orders/8"), 2);

    // `onError: continue` collects a failed branch's error beside the others' outputs.
    let v = s.run_flow("fan", "tolerant", json!({})).await;
    assert_eq!(v["output"]["ok"], "fine", "{v}");
    assert_eq!(v["output"]["broken"]["error"]["message"], "broken branch", "{v}");
    assert_eq!(v["output"]["broken"]["error"]["details"]["step"], "both[broken].boom", "{v}");
}

#[tokio::test]
async fn loops_and_branches_are_validated_with_locations() {
    let s = TestServer::start().await;
    let doc = r#"
integration: bad-loops
flows:
  - flow: f
    trigger: { manual: {} }
    steps:
      - id: each
        foreach: { items: '.x', concurrency: 0, collect: 5, steps: [ { id: w, wait: {} } ], extra: 1 }
      - id: fan
        foreach: { items: '.x', concurrency: 3, steps: [ { id: w2, wait: {} } ] }
      - id: both
        parallel:
          "not ok": [ { id: a, transform: '.' } ]
          b: [ { id: w3, wait: {} } ]
          c: 5
      - id: empty
        parallel: {}
      - id: noitems
        foreach: { steps: [] }
"#;
    let (status, _, v) = send(
        s.api(reqwest::Method::POST, "/v1/validate").header("content-type", "application/yaml").body(doc.to_owned()),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let problems: Vec<(String, String)> = v["error"]["details"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|p| (p["path"].as_str().unwrap().to_owned(), p["message"].as_str().unwrap().to_owned()))
        .collect();
    let has = |path: &str, text: &str| problems.iter().any(|(p, m)| p == path && m.contains(text));
    assert!(has("flows[0].steps[0].foreach.concurrency", "from 1 to 64"), "{problems:#?}");
    assert!(has("flows[0].steps[0].foreach.collect", "expected jq"), "{problems:#?}");
    assert!(has("flows[0].steps[0].foreach.extra", "unknown key"), "{problems:#?}");
    assert!(has("flows[0].steps[1].foreach.steps[0].wait", "side by side"), "{problems:#?}");
    assert!(has("flows[0].steps[2].parallel[\"not ok\"]", "invalid branch name"), "{problems:#?}");
    assert!(has("flows[0].steps[2].parallel.b[0].wait", "side by side"), "{problems:#?}");
    assert!(has("flows[0].steps[2].parallel.c", "a list"), "{problems:#?}");
    assert!(has("flows[0].steps[3].parallel", "at least one branch"), "{problems:#?}");
    assert!(has("flows[0].steps[4].foreach", "needs `items`"), "{problems:#?}");
    // A wait in a loop that runs one item at a time is fine.
    assert!(!problems.iter().any(|(p, _)| p.starts_with("flows[0].steps[0].foreach.steps")), "{problems:#?}");
}

/// `tests:` of a flow with a loop and branches: a mock stands in for a step in every item,
/// and a step inside an item is expected by its journal key.
#[tokio::test]
async fn flow_tests_mock_steps_inside_loops_and_expect_them_by_key() {
    let s = TestServer::start().await;
    s.apply(
        r#"
integration: loop-tests
flows:
  - flow: f
    trigger: { manual: {} }
    steps:
      - id: each
        foreach:
          items: '.body.ids'
          concurrency: 2
          steps:
            - { id: fetch, http: { url: "http://192.0.2.1/{{ . }}" } }
            - { id: named, transform: '{ id: $item, name: .body.name }' }
      - id: both
        parallel:
          count: [ { id: n, transform: 'length' } ]
          first: [ { id: f1, transform: '.[0].name' } ]
tests:
  - name: every item is fetched and named
    flow: f
    trigger: { body: { ids: [1, 2] } }
    mocks: { fetch: { status: 200, body: { name: Ann } } }
    expect:
      steps: { "each[1].named": { id: 2, name: Ann }, each: [ { id: 1, name: Ann }, { id: 2, name: Ann } ] }
      output: { count: 2, first: Ann }
  - name: a wrong expectation fails
    flow: f
    trigger: { body: { ids: [1] } }
    mocks: { fetch: { status: 200, body: { name: Bo } } }
    expect: { output: { count: 2 } }
"#,
    )
    .await;
    let (status, _, report) = send(s.api(reqwest::Method::POST, "/v1/integrations/loop-tests/test")).await;
    assert_eq!(status, 200, "{report}");
    let results = report["results"].as_array().unwrap();
    assert_eq!(results[0]["passed"], true, "{report:#}");
    assert_eq!(results[1]["passed"], false, "{report:#}");
}

/// Nested loops' concurrencies multiply (8 × 64 here); one execution keeps at most 256 items
/// in flight, and still finishes every item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_loops_are_bounded_per_execution() {
    let up = MockUpstream::start().await;
    up.behave(|_| MockResponse::json(200, json!({ "ok": true })).delay(Duration::from_millis(200)));
    let s = TestServer::start().await;
    s.apply(&format!(
        r#"
integration: wide
flows:
  - flow: f
    trigger: {{ manual: {{}} }}
    steps:
      - id: outer
        foreach:
          items: '[range(0; 8)]'
          concurrency: 8
          steps:
            - id: inner
              foreach:
                items: '[range(0; 64)]'
                concurrency: 64
                collect: '.body.ok'
                steps:
                  - {{ id: call, http: {{ url: "{}/x" }} }}
      - {{ id: count, transform: 'map(length) | add' }}
"#,
        up.url
    ))
    .await;
    let id = start_run(&s, "wide", "f", json!({})).await;
    let ex = common::eventually("the wide loop to finish", || async {
        let ex = s.execution(&id).await;
        (ex["status"] == "succeeded").then_some(ex)
    })
    .await;
    assert_eq!(ex["output"], 512);
    assert_eq!(up.total_hits(), 512);
    let most = up.max_in_flight();
    assert!((100..=256).contains(&most), "{most} requests in flight at once");
}
