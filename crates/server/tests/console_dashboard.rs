//! The console's dashboard (issue 19, "at a glance") over HTTP, on both backends: executions of
//! several statuses, flows, durations and error codes made by real runs (one held running by a
//! slow target, one kept queued behind the failed head of its order key, one delivery left
//! pending by a failing receiver) show on the page exactly as the API lists them — counts by
//! status (read from the chart's hidden table), p50 / p99 per flow, failures by code, the queue,
//! pending deliveries — and in its JSON; another tenant sees zeros; no session, no dashboard.

#[macro_use]
mod common;
mod console_support;

use common::{MockResponse, MockUpstream, TOKEN, TestServer, send};
use console_support::{browser, page, sign_in};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const ADMIN: &str = "fga_dashboard_admin";

const DASH: &str = r#"
integration: dash
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: quick
    trigger: { manual: {} }
    steps:
      - { id: shape, transform: '{ ok: true }' }
  - flow: slow
    trigger: { manual: {} }
    steps:
      - id: call
        http: { method: GET, url: "{{ $config.base }}/slow" }
  - flow: boom
    trigger: { manual: {} }
    steps:
      - { id: boom, transform: 'error("nope")' }
  - flow: upstream
    trigger: { manual: {} }
    steps:
      - id: call
        http: { method: GET, url: "{{ $config.base }}/broken" }
        retry: { attempts: 1 }
  - flow: notify
    trigger: { manual: {} }
    steps:
      - id: tell
        webhook: { name: Partner, endpoint: "{{ $config.base }}/partner", schedule: [0s, 1h] }
  - flow: hang
    trigger: { webhook: { path: dash/hang } }
    steps:
      - id: call
        http: { method: GET, url: "{{ $config.base }}/held" }
  - flow: keyed
    orderBy: '$trigger.body.key'
    trigger: { webhook: { path: dash/keyed } }
    steps:
      - { id: check, transform: 'if $trigger.body.fail then error("held back") else . end' }
"#;

/// Epoch milliseconds of the API's RFC 3339 times.
fn ms(v: &Value) -> Option<i64> {
    let t = time::OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The nearest-rank percentile, as the dashboard documents it.
fn nearest_rank(sorted: &[i64], q: f64) -> i64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The text between `start` and the next `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let at = html.find(start).unwrap_or_else(|| panic!("{start} in {html}")) + start.len();
    let len = html[at..].find(end).unwrap_or_else(|| panic!("{end} after {start}"));
    &html[at..at + len]
}

/// The texts of the cells (`<th>` or `<td>`) of a row's markup.
fn cells(row: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = row;
    while let Some(open) = rest.find("<t") {
        let tag = &rest[open + 1..open + 3];
        if tag != "th" && tag != "td" {
            rest = &rest[open + 2..];
            continue;
        }
        let body = &rest[open..];
        let start = body.find('>').unwrap() + 1;
        let end = body.find(&format!("</{tag}>")).unwrap();
        out.push(body[start..end].to_owned());
        rest = &body[end..];
    }
    out
}

/// The hidden table's totals per status (its `All` row), read as a screen reader would.
fn hidden_totals(html: &str) -> BTreeMap<String, i64> {
    let table = between(html, r#"<div class="sr-only"><table id="dash-rates">"#, "</table>");
    let head = cells(between(table, "<thead>", "</thead>"));
    let foot = cells(between(table, "<tfoot>", "</tfoot>"));
    assert_eq!((head[0].as_str(), foot[0].as_str()), ("Time (UTC)", "All"), "{table}");
    let totals: BTreeMap<String, i64> =
        head[1..].iter().cloned().zip(foot[1..].iter().map(|c| c.parse().unwrap())).collect();
    // Each minute's row adds up to the totals.
    let body = between(table, "<tbody>", "</tbody>");
    let mut summed: BTreeMap<String, i64> = BTreeMap::new();
    for row in body.split("</tr>").filter(|r| r.contains("<td>")) {
        let c = cells(row);
        assert_eq!(c.len(), head.len(), "{row}");
        for (name, v) in head[1..].iter().zip(&c[1..]) {
            *summed.entry(name.clone()).or_default() += v.parse::<i64>().unwrap();
        }
    }
    if !body.contains("<td>") {
        summed = totals.keys().map(|k| (k.clone(), 0)).collect();
    }
    assert_eq!(summed, totals, "the rows add up to the totals: {table}");
    totals
}

/// Everything the API lists for the tenant (a few dozen executions: one page).
async fn listed(s: &TestServer) -> Vec<Value> {
    let items = s.get_json("/v1/executions?limit=500").await["items"].as_array().unwrap().clone();
    let mut full = Vec::new();
    for e in items {
        full.push(s.execution(e["id"].as_str().unwrap()).await);
    }
    full
}

backends!(dashboard_shows_what_ran);
async fn dashboard_shows_what_ran() {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    let target = MockUpstream::start().await;
    target
        .on("/slow", MockResponse::json(200, json!({ "ok": true })).delay(Duration::from_millis(120)))
        .on("/broken", MockResponse::status(500))
        .on("/partner", MockResponse::status(500))
        .on("/held", MockResponse::json(200, json!({})).held());
    s.apply(&DASH.replace("BASE", &target.url)).await;

    // Real runs: successes of two flows (one slow), failures with two codes, a delivery left
    // pending (its receiver fails; the next attempt is an hour away).
    for _ in 0..3 {
        s.run_flow("dash", "quick", json!({})).await;
    }
    for _ in 0..2 {
        s.run_flow("dash", "slow", json!({})).await;
    }
    for _ in 0..2 {
        s.run_flow("dash", "boom", json!({})).await;
    }
    s.run_flow("dash", "upstream", json!({})).await;
    let notified = s.run_flow("dash", "notify", json!({})).await["executionId"].as_str().unwrap().to_owned();
    // One held running by its target, one queued behind the failed head of its order key.
    let hook = |path: &'static str, body: Value| {
        let s = &s;
        async move {
            let (status, _, v) = send(s.post_hook(path).json(&body)).await;
            assert_eq!(status, 202, "{v}");
            v["executionId"].as_str().unwrap().to_owned()
        }
    };
    let running = hook("dash/hang", json!({})).await;
    let head = hook("dash/keyed", json!({ "key": "k", "fail": true })).await;
    s.wait_for(&head, "failed").await;
    let queued = hook("dash/keyed", json!({ "key": "k", "fail": false })).await;
    s.wait_for(&running, "running").await;
    let pending = common::eventually("the delivery's first attempt to fail", || async {
        let ex = s.execution(&notified).await;
        let d = ex["deliveries"].as_array().cloned().unwrap_or_default();
        (d.len() == 1 && d[0]["status"] == "pending" && d[0]["attempts"].as_i64() >= Some(1)).then_some(d[0].clone())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.execution(&queued).await["status"], "queued", "held behind its failed head");

    // What the API says.
    let all = listed(&s).await;
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    let mut durations: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut codes: BTreeMap<String, i64> = BTreeMap::new();
    for e in &all {
        *by_status.entry(e["status"].as_str().unwrap().to_owned()).or_default() += 1;
        if let (Some(a), Some(b)) = (ms(&e["startedAt"]), ms(&e["finishedAt"])) {
            durations.entry(e["flow"].as_str().unwrap().to_owned()).or_default().push(b - a);
        }
        if e["status"] == "failed" {
            *codes.entry(e["error"]["code"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(all.len(), 12);
    assert_eq!(
        by_status,
        BTreeMap::from([("failed".into(), 4), ("queued".into(), 1), ("running".into(), 1), ("succeeded".into(), 6)])
    );
    assert_eq!(codes, BTreeMap::from([("expression_error".into(), 3), ("http_status".into(), 1)]), "{all:#?}");

    // Without a session: the sign-in page.
    for path in ["/console/dashboard", "/console/dashboard?range=day", "/console/dashboard/data"] {
        let r = browser().get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), r.headers()["location"].to_str().unwrap()),
            (303, "/console/signin"),
            "{path}"
        );
    }

    let (cookie, _) = sign_in(&s, TOKEN).await;
    for range in ["", "?range=hour", "?range=day"] {
        let (status, html) = page(&s, &cookie, &format!("/console/dashboard{range}")).await;
        assert_eq!(status, 200, "{html}");
        // The chart, its legend in words, the range switch.
        assert!(html.contains(r#"<svg id="dash-rates-chart""#), "{html}");
        assert!(html.contains(r#"role="img""#));
        assert!(html.contains(r#"<ul class="dash-legend" aria-label="Legend">"#), "{html}");
        for s in ["succeeded", "failed", "queued", "running"] {
            assert!(html.contains(&format!(r#"<rect class="seg s-{s}""#)), "a {s} bar: {html}");
        }
        let day = range == "?range=day";
        assert!(html.contains(if day {
            "Executions per 15 minutes by status"
        } else {
            "Executions per minute by status"
        }));
        let current = if day { "?range=day\" aria-current=\"page\"" } else { "?range=hour\" aria-current=\"page\"" };
        assert!(html.contains(current), "{html}");
        assert_eq!(html.matches("<script").count(), 1, "only the console's own script: {html}");

        // Counts by status, from the hidden table, are the API's.
        let totals = hidden_totals(&html);
        for (status, n) in totals.iter().filter(|(s, _)| *s != "total") {
            assert_eq!(*n, by_status.get(status).copied().unwrap_or(0), "{status} in {range}: {totals:?}");
        }
        assert_eq!(totals.get("total"), Some(&12));

        // p50 / p99 per flow, nearest rank over what finished.
        for (flow, mut d) in durations.clone() {
            d.sort_unstable();
            let row = format!(
                r#"<tr data-integration="dash" data-flow="{flow}" data-p50="{}" data-p99="{}">"#,
                nearest_rank(&d, 0.5),
                nearest_rank(&d, 0.99)
            );
            assert!(html.contains(&row), "{row} in {html}");
            let runs = between(&html, &row, "</tr>");
            assert!(cells(runs)[1] == d.len().to_string(), "{runs}");
        }
        let slow = between(&html, r#"data-flow="slow" data-p50=""#, "\"");
        assert!(slow.parse::<i64>().unwrap() >= 120, "the slow flow waits for its target: {slow}");

        // Failures by error code.
        for (code, n) in &codes {
            let row = between(&html, &format!(r#"<tr data-code="{code}">"#), "</tr>");
            assert_eq!(cells(row)[1], n.to_string(), "{code}: {row}");
        }
        assert!(html.contains(r#"<dd id="tile-failures">4</dd>"#), "{html}");

        // The queue and the pending delivery.
        assert!(html.contains(r#"<dd id="queue-depth">1</dd>"#), "{html}");
        assert!(html.contains(r#"<dd id="queue-running">1</dd>"#), "{html}");
        assert!(html.contains(&format!(r#"<a class="id" href="/console/executions/{queued}">{queued}</a>"#)), "{html}");
        let kind = pending["kind"].as_str().unwrap_or("webhook");
        let row = between(&html, &format!(r#"<tr data-kind="{kind}">"#), "</tr>");
        assert_eq!(cells(row)[1], "1", "{row}");
        assert!(html.contains(r#"<dd id="tile-pending">1</dd>"#), "{html}");
    }

    // The same figures as JSON.
    let r = browser()
        .get(format!("{}/console/dashboard/data?range=day", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["range"].as_str(), v["bucketMs"].as_i64()), (Some("day"), Some(900_000)), "{v}");
    assert_eq!(v["to"].as_i64().unwrap() - v["from"].as_i64().unwrap(), 86_400_000);
    assert_eq!(v["counts"].as_array().unwrap().iter().map(|c| c["count"].as_i64().unwrap()).sum::<i64>(), 12);
    assert_eq!((v["queue"]["queued"].as_i64(), v["queue"]["running"].as_i64()), (Some(1), Some(1)));
    assert_eq!(v["queue"]["oldest"]["id"], queued.as_str());
    assert_eq!(v["failuresTotal"], 4);
    assert_eq!(v["deliveries"][0]["count"], 1);

    // A range that does not exist.
    let (status, html) = page(&s, &cookie, "/console/dashboard?range=<b>week").await;
    assert_eq!(status, 400);
    assert!(html.contains("&lt;b&gt;week") && !html.contains("<b>week"), "{html}");
    let r = browser()
        .get(format!("{}/console/dashboard/data?range=week", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Another tenant: zeros everywhere.
    let other = s.create_tenant(ADMIN, "other").await;
    let (cookie, _) = sign_in(&s, &other).await;
    let (status, html) = page(&s, &cookie, "/console/dashboard").await;
    assert_eq!(status, 200);
    assert!(hidden_totals(&html).values().all(|n| *n == 0), "{html}");
    for tile in ["executions", "failures", "queued", "running", "pending"] {
        assert!(html.contains(&format!(r#"<dd id="tile-{tile}">0</dd>"#)), "{tile}: {html}");
    }
    assert!(html.contains(r#"<dd id="tile-oldest">none</dd>"#), "{html}");
    assert!(html.contains("No execution finished in the last hour."));
    assert!(html.contains("No failures in the last hour."));
    assert!(html.contains("No delivery is waiting to be sent."));
    assert!(!html.contains("data-integration=\"dash\""), "{html}");
    assert!(!html.contains(&queued) && !html.contains(&running), "{html}");

    target.open_gate();
    s.wait_for(&running, "succeeded").await;
}
