//! Dry runs (issue 20): a version, or a document not applied, re-run against recorded
//! executions with every step that is not pure answered from the recording. Exactly the
//! executions a deliberate change affects are reported `different`, with the changed step
//! outputs, switch decisions and sync answers; nothing is sent (the upstream counts
//! requests); a new step with side effects is `unanswered`, a new failure `would_fail`; other
//! tenants see nothing. Both backends.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, send};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN: &str = "fga_dry_admin";

/// The shop: an order priced by an upstream, mapped, routed by a switch, pushed and answered
/// (sync); and a loop over lines, each sent upstream and mapped. `{total}` is the mapping of
/// the total (the line that changes between versions), `{line}` the loop's mapping, `{extra}`
/// steps added before the answer.
fn shop(url: &str, total: &str, line: &str, extra: &str) -> String {
    format!(
        r#"
integration: shop
flows:
  - flow: orders
    trigger: {{ webhook: {{ path: orders, respond: {{ mode: sync, timeout: 10s }} }} }}
    steps:
      - {{ id: price, http: {{ method: GET, url: "{url}/prices/{{{{ .body.sku }}}}" }} }}
      - {{ id: mapped, transform: '{{ sku: $trigger.body.sku, qty: $trigger.body.qty, total: ({total}) }}' }}
      - {{ id: positive, filter: '.total > 0' }}
      - id: route
        switch:
          - when: '.total > 30'
            steps: [ {{ id: big, transform: '. + {{ tier: "big" }}' }} ]
          - default: [ {{ id: small, transform: '. + {{ tier: "small" }}' }} ]
      - {{ id: push, http: {{ method: POST, url: "{url}/orders", body: '{{{{ . }}}}' }} }}
{extra}      - {{ id: reply, respond: {{ status: 201, body: {{ total: "{{{{ $steps.mapped.total }}}}", order: "{{{{ $steps.push.body.id }}}}" }} }} }}
  - flow: lines
    trigger: {{ manual: {{}} }}
    steps:
      - id: each
        foreach:
          items: '.body.lines'
          steps:
            - {{ id: stock, http: {{ method: GET, url: "{url}/stock/{{{{ .sku }}}}" }} }}
            - {{ id: line, transform: '{line}' }}
"#
    )
}

const TOTAL: &str = "$trigger.body.qty * .body.price";
/// The deliberate change: one more for quantities over 5.
const TOTAL_CHANGED: &str = "$trigger.body.qty * .body.price + (if $trigger.body.qty > 5 then 1 else 0 end)";
const LINE: &str = "{ sku: $item.sku, left: .body.stock }";
const LINE_CHANGED: &str = "{ sku: $item.sku, left: (.body.stock - 1) }";

/// An upstream answering prices (the sku's number), stock (10 × it) and orders.
async fn upstream() -> MockUpstream {
    MockUpstream::with(|r| {
        let n: i64 = r.path.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if r.path.starts_with("/prices/") {
            MockResponse::json(200, json!({ "price": n }))
        } else if r.path.starts_with("/stock/") {
            MockResponse::json(200, json!({ "stock": n * 10 }))
        } else {
            MockResponse::json(201, json!({ "id": "o-1" }))
        }
    })
    .await
}

/// Every request the upstream has had.
fn hits(up: &MockUpstream) -> usize {
    up.hits("/orders")
        + (1..=10).map(|i| up.hits(&format!("/prices/{i}")) + up.hits(&format!("/stock/{i}"))).sum::<usize>()
}

/// How many orders are recorded.
const ORDERS: i64 = 1_000;

/// The orders sent: (sku, qty) of each.
fn orders() -> Vec<(i64, i64)> {
    (0..ORDERS).map(|i| (i % 10 + 1, i % 7 + 1)).collect()
}

/// Sends the orders (16 at a time, each answered when it finished) and a few loops.
async fn record(s: &TestServer) {
    use futures::StreamExt;
    futures::stream::iter(orders())
        .for_each_concurrent(16, |(sku, qty)| async move {
            let (status, _, v) = send(s.post_hook("orders").json(&json!({ "sku": sku, "qty": qty }))).await;
            assert_eq!(status, 201, "{v}");
        })
        .await;
    for n in 1..=3 {
        let lines: Vec<Value> = (1..=n).map(|k| json!({ "sku": k })).collect();
        let v = s.run_flow("shop", "lines", json!({ "lines": lines })).await;
        assert_eq!(v["status"], "succeeded", "{v}");
    }
}

/// Starts a dry run; its id.
async fn start(s: &TestServer, body: Value) -> (u16, Value) {
    let (status, _, v) = send(s.api(reqwest::Method::POST, "/v1/integrations/shop/dry-runs").json(&body)).await;
    (status, v)
}

/// Polls a dry run until it is no longer running; the run with all its results.
async fn finished(s: &TestServer, id: &str) -> (Value, Vec<Value>) {
    let begun = Instant::now();
    let run = loop {
        let run = s.get_json(&format!("/v1/dry-runs/{id}")).await;
        if run["status"] != "running" {
            break run;
        }
        assert!(begun.elapsed() < Duration::from_secs(30), "still running: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut results = Vec::new();
    let mut after = 0;
    loop {
        let page = s.get_json(&format!("/v1/dry-runs/{id}?after={after}&limit=250")).await;
        results.extend(page["results"].as_array().unwrap().iter().cloned());
        match page["next"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    (run, results)
}

async fn a_changed_mapping_reports_exactly_the_changed_executions() {
    let up = upstream().await;
    let s = TestServer::start().await;
    s.apply(&shop(&up.url, TOTAL, LINE, "")).await;
    record(&s).await;
    let sent = hits(&up);
    assert_eq!(sent, ORDERS as usize * 2 + 6, "two requests per order, one per line");

    // The newest stored version by default.
    s.apply(&shop(&up.url, TOTAL_CHANGED, LINE, "")).await;
    let (status, v) = start(&s, json!({ "limit": ORDERS })).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["version"], "2");
    assert_eq!(v["flows"], json!(["orders"]), "only the flow that changed");
    assert_eq!(v["total"], ORDERS, "{v}");
    let (run, results) = finished(&s, v["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "done", "{run}");
    let changed: Vec<(i64, i64)> = orders().into_iter().filter(|(_, q)| *q > 5).collect();
    assert_eq!(run["different"], changed.len(), "{run}");
    assert_eq!(run["same"], ORDERS as usize - changed.len(), "{run}");
    assert_eq!((run["wouldFail"].as_i64(), run["unanswered"].as_i64()), (Some(0), Some(0)));
    assert_eq!(results.len(), ORDERS as usize);
    // Each different one: its total one more, in the mapping and the answer; the switch's
    // decision changed where the total crossed 30.
    for r in results.iter().filter(|r| r["outcome"] == "different") {
        let ex = s.execution(r["executionId"].as_str().unwrap()).await;
        let (sku, qty) =
            (ex["trigger"]["body"]["sku"].as_i64().unwrap(), ex["trigger"]["body"]["qty"].as_i64().unwrap());
        assert!(qty > 5, "only quantities over 5 differ: {r}");
        let total = sku * qty;
        let changes = r["changes"].as_array().unwrap();
        let at = |k: &str| changes.iter().find(|c| c["at"] == k).cloned();
        let mapped = at("steps.mapped").unwrap_or_else(|| panic!("mapped changed: {r}"));
        assert_eq!(mapped["diff"], json!([{ "path": ".total", "was": total, "now": total + 1 }]), "{r}");
        // A filter passes its input on: its decision is compared, not its output again.
        assert!(at("steps.positive").is_none(), "{r}");
        let answer = at("answer").unwrap_or_else(|| panic!("the answer changed: {r}"));
        assert_eq!(answer["diff"], json!([{ "path": ".body.total", "was": total, "now": total + 1 }]), "{r}");
        if total == 30 {
            assert_eq!(
                at("decisions.route").unwrap(),
                json!({ "at": "decisions.route", "was": "default", "now": "case 1" })
            );
            assert_eq!(at("steps.small").unwrap()["change"], "removed", "{r}");
            assert_eq!(at("steps.big").unwrap()["change"], "added", "{r}");
        } else {
            assert!(at("decisions.route").is_none(), "{r}");
        }
    }
    assert!(
        results.iter().any(|r| r["changes"].as_array().is_some_and(|c| c.iter().any(|c| c["at"] == "decisions.route"))),
        "some order crossed 30 (6 × 5)"
    );
    // Only the different ones, paged by outcome.
    let page = s.get_json(&format!("/v1/dry-runs/{}?outcome=different&limit=1000", v["id"].as_str().unwrap())).await;
    assert_eq!(page["results"].as_array().unwrap().len(), changed.len());
    assert_eq!(hits(&up), sent, "a dry run sends nothing");

    // The loop's flow, asked for by name: each item answered from its own recording.
    s.apply(&shop(&up.url, TOTAL_CHANGED, LINE_CHANGED, "")).await;
    let (status, v) = start(&s, json!({ "flow": "lines" })).await;
    assert_eq!(status, 202, "{v}");
    let (run, results) = finished(&s, v["id"].as_str().unwrap()).await;
    assert_eq!((run["total"].as_i64(), run["different"].as_i64()), (Some(3), Some(3)), "{run}");
    let one = results
        .iter()
        .find(|r| r["changes"].as_array().unwrap().iter().any(|c| c["at"] == "steps.each[2].line"))
        .unwrap();
    let line = one["changes"].as_array().unwrap().iter().find(|c| c["at"] == "steps.each[2].line").unwrap();
    assert_eq!(line["diff"], json!([{ "path": ".left", "was": 30, "now": 29 }]), "{one}");
    assert_eq!(hits(&up), sent, "a dry run sends nothing");

    // An unchanged version (the first): every execution the same.
    let (status, v) = start(&s, json!({ "version": 1, "flows": ["orders", "lines"], "limit": ORDERS })).await;
    assert_eq!(status, 202, "{v}");
    let (run, _) = finished(&s, v["id"].as_str().unwrap()).await;
    assert_eq!((run["total"].as_i64(), run["same"].as_i64()), (Some(ORDERS + 3), Some(ORDERS + 3)), "{run}");
    s.stop().await;
}
backends!(a_changed_mapping_reports_exactly_the_changed_executions);

async fn a_document_not_applied_reports_unanswered_steps_and_new_failures() {
    let up = upstream().await;
    let s = TestServer::start().await;
    s.apply(&shop(&up.url, TOTAL, LINE, "")).await;
    record(&s).await;
    let sent = hits(&up);
    // A new step with side effects: never performed, every order unanswered at it.
    let audit = format!("      - {{ id: audit, http: {{ method: POST, url: \"{}/audit\" }} }}\n", up.url);
    let (status, v) = start(&s, json!({ "source": shop(&up.url, TOTAL, LINE, &audit) })).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["version"], "draft");
    let (run, results) = finished(&s, v["id"].as_str().unwrap()).await;
    assert_eq!((run["total"].as_i64(), run["unanswered"].as_i64()), (Some(500), Some(500)), "the newest 500: {run}");
    assert_eq!(results[0]["steps"], json!(["audit"]), "{}", results[0]);
    assert_eq!(up.hits("/audit"), 0);
    // A mapping that now fails for quantity 7: those would fail, with the error.
    let failing = "if $trigger.body.qty == 7 then error(\"no sevens\") else $trigger.body.qty * .body.price end";
    let (status, v) = start(&s, json!({ "source": shop(&up.url, failing, LINE, ""), "limit": 1000 })).await;
    assert_eq!(status, 202, "{v}");
    let (run, results) = finished(&s, v["id"].as_str().unwrap()).await;
    let sevens = orders().iter().filter(|(_, q)| *q == 7).count();
    assert_eq!(run["wouldFail"], sevens, "{run}");
    assert_eq!(run["same"], ORDERS as usize - sevens, "{run}");
    let failed = results.iter().find(|r| r["outcome"] == "would_fail").unwrap();
    assert_eq!(failed["error"]["step"], "mapped", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("no sevens"), "{failed}");
    // A step answered from the recording whose definition changed: what it would send now is
    // not known, so the execution is different, never the same (the push now goes elsewhere).
    let moved = shop(&up.url, TOTAL, LINE, "").replace(
        &format!("method: POST, url: \"{}/orders\"", up.url),
        &format!("method: DELETE, url: \"{}/orders/v2\"", up.url),
    );
    assert_ne!(moved, shop(&up.url, TOTAL, LINE, ""));
    let (status, v) = start(&s, json!({ "source": moved, "flow": "orders", "limit": 50 })).await;
    assert_eq!(status, 202, "{v}");
    let (run, results) = finished(&s, v["id"].as_str().unwrap()).await;
    assert_eq!(run["different"], 50, "{run}");
    let change = results[0]["changes"].as_array().unwrap().iter().find(|c| c["at"] == "steps.push.definition").cloned();
    let change = change.unwrap_or_else(|| panic!("the push's definition changed: {}", results[0]));
    assert!(change["diff"].to_string().contains("/orders/v2"), "{change}");
    // A step that was pure when recorded and calls out now: nothing recorded answers it.
    let calls = shop(&up.url, TOTAL, LINE, "").replace(
        &format!(
            "{{ id: mapped, transform: '{{ sku: $trigger.body.sku, qty: $trigger.body.qty, total: ({TOTAL}) }}' }}"
        ),
        &format!("{{ id: mapped, http: {{ method: GET, url: \"{}/mapped\" }} }}", up.url),
    );
    assert!(calls.contains("/mapped"));
    let (status, v) = start(&s, json!({ "source": calls, "flow": "orders", "limit": 5 })).await;
    assert_eq!(status, 202, "{v}");
    let (run, results) = finished(&s, v["id"].as_str().unwrap()).await;
    assert_eq!(run["unanswered"], 5, "{run}");
    assert!(results[0]["message"].as_str().unwrap().contains("`mapped` was a `transform` step"), "{}", results[0]);
    assert_eq!(up.hits("/mapped"), 0);
    // Filters: a time range that holds nothing, a status, a limit.
    let (_, v) = start(&s, json!({ "flow": "orders", "to": "2000-01-01T00:00:00Z" })).await;
    assert_eq!(v["total"], 0, "{v}");
    let (_, v) = start(&s, json!({ "flow": "orders", "status": "failed" })).await;
    assert_eq!(v["total"], 0, "{v}");
    let (_, v) = start(&s, json!({ "flow": "orders", "limit": 7 })).await;
    assert_eq!(v["total"], 7, "{v}");
    assert_eq!(hits(&up), sent, "a dry run sends nothing");
    s.stop().await;
}
backends!(a_document_not_applied_reports_unanswered_steps_and_new_failures);

async fn bad_requests_and_other_tenants_get_clear_errors() {
    let up = upstream().await;
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    s.apply(&shop(&up.url, TOTAL, LINE, "")).await;
    record(&s).await;
    let (status, v) = start(&s, json!({ "flow": "nope" })).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("no flow `nope`"), "{v}");
    let (status, v) = start(&s, json!({ "status": "running" })).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = start(&s, json!({ "version": 9 })).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = start(&s, json!({ "limit": 0 })).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = start(&s, json!({ "version": 1, "source": "x" })).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = start(&s, json!({ "bogus": 1 })).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = start(&s, json!({ "source": "integration: shop\nflows: [ { flow: x } ]\n" })).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["details"]["problems"].as_array().is_some_and(|p| !p.is_empty()), "{v}");
    let (status, v) = start(
        &s,
        json!({ "source": shop(&up.url, TOTAL, LINE, "").replace("integration: shop", "integration: other") }),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, _, v) = send(s.api(reqwest::Method::POST, "/v1/integrations/none/dry-runs").json(&json!({}))).await;
    assert_eq!(status, 404, "{v}");
    // Another tenant: neither the integration nor the run.
    let (_, v) = start(&s, json!({ "flow": "orders" })).await;
    let id = v["id"].as_str().unwrap().to_owned();
    finished(&s, &id).await;
    let other = s.create_tenant(ADMIN, "other").await;
    let (status, _, _) =
        send(s.client.post(format!("{}/v1/integrations/shop/dry-runs", s.url)).bearer_auth(&other).json(&json!({})))
            .await;
    assert_eq!(status, 404);
    let (status, _, v) = send(s.client.get(format!("{}/v1/dry-runs/{id}", s.url)).bearer_auth(&other)).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    // The same name in the other tenant dry-runs its own executions only (none).
    let (status, v) = s.apply_as(&other, &shop(&up.url, TOTAL_CHANGED, LINE, "")).await;
    assert!(status < 300, "{v}");
    let (status, _, v) =
        send(s.client.post(format!("{}/v1/integrations/shop/dry-runs", s.url)).bearer_auth(&other).json(&json!({})))
            .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["total"], 0, "{v}");
    let (status, _, v) = send(s.api(reqwest::Method::GET, "/v1/dry-runs/nope")).await;
    assert_eq!(status, 404, "{v}");
    let (status, _, v) = send(s.api(reqwest::Method::GET, &format!("/v1/dry-runs/{id}?outcome=weird"))).await;
    assert_eq!(status, 400, "{v}");
    s.stop().await;
}
backends!(bad_requests_and_other_tenants_get_clear_errors);

/// A flow whose mapping takes a while (a few milliseconds of jq per run).
const SLOW: &str = r#"
integration: slow
flows:
  - flow: crunch
    trigger: { manual: {} }
    steps:
      - { id: crunch, transform: '{ n: ([range(.body.n)] | map(. * 2) | add) }' }
"#;

async fn a_node_that_stops_interrupts_its_dry_runs_and_keeps_what_finished() {
    let s = TestServer::start_with(|st| st.dry_run_workers = 1).await;
    s.apply(SLOW).await;
    // One after another: each takes its few milliseconds alone.
    for _ in 0..40 {
        let v = s.run_flow("slow", "crunch", json!({ "n": 20000 })).await;
        assert_eq!(v["status"], "succeeded", "{v}");
    }
    let (status, _, v) =
        send(s.api(reqwest::Method::POST, "/v1/integrations/slow/dry-runs").json(&json!({ "flow": "crunch" }))).await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["total"], 40);
    // One at a time: the node stops in the middle of it.
    let s = s.restart(|st| st.dry_run_workers = 1).await;
    let run = s.get_json(&format!("/v1/dry-runs/{id}?limit=1000")).await;
    assert_eq!(run["status"], "interrupted", "{run}");
    let done = run["done"].as_i64().unwrap();
    assert!(done < 40, "stopped before the end: {run}");
    assert_eq!(run["results"].as_array().unwrap().len() as i64, done, "what finished is kept: {run}");
    assert_eq!(run["same"], done, "{run}");
    s.stop().await;
}
backends!(a_node_that_stops_interrupts_its_dry_runs_and_keeps_what_finished);
