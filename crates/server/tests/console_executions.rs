//! The console's executions area (issue 19, item 5) over HTTP, on both backends: the
//! monitor's filters (integration, flow, status, trigger kind, time range, id and delivery
//! identity search) and the API's same filters, keyset paging under a filter, the live
//! stream under a filter, bulk retry and replay of the filtered set after a dry-run count,
//! the execution page (timeline, grouped loop items, children, deliveries with Resend) and
//! its confirmed actions (Retry, Replay on the original or latest version, Cancel, Skip),
//! CSRF on every POST, and a second tenant seeing none of it.

#[macro_use]
mod common;
mod console_support;

use common::{MockResponse, MockUpstream, TOKEN, TestServer, eventually, send};
use console_support::{browser, csrf_of, page, post_form, sign_in};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const ADMIN: &str = "fga_console_exec_admin";

const OPS: &str = r#"
integration: ops
flows:
  - flow: good
    trigger: { manual: {} }
    steps:
      - { id: shape, transform: '{ v: 1, given: $trigger.body }' }
  - flow: bad
    trigger: { manual: {} }
    steps:
      - { id: note, log: "about to fail" }
      - { id: boom, transform: 'error("nope")' }
  - flow: other-bad
    trigger: { manual: {} }
    steps: [ { id: boom, transform: 'error("other")' } ]
  - flow: hooked
    trigger: { webhook: { path: ops/hooked } }
    steps: [ { id: echo, transform: '.body' } ]
  - flow: parent
    trigger: { manual: {} }
    steps:
      - id: each
        foreach:
          items: '$trigger.body.items'
          steps:
            - { id: double, transform: '{ n: $item }' }
      - { id: child, call: { flow: good, input: { from: "parent" } } }
  - flow: keyed
    orderBy: '$trigger.body.key'
    trigger: { webhook: { path: ops/keyed } }
    steps:
      - { id: check, when: '$trigger.body.fail == true', transform: 'error("bad key")' }
  - flow: push
    trigger: { manual: {} }
    steps:
      - { id: send, webhook: { name: Partner, endpoint: "BASE/in", wait: true } }
"#;

fn ops(base: &str) -> String {
    OPS.replace("BASE", base)
}

/// Runs a flow and returns its execution id (it has ended).
async fn run(s: &TestServer, flow: &str, body: Value) -> String {
    s.run_flow("ops", flow, body).await["executionId"].as_str().expect("an execution id").to_owned()
}

/// Posts a webhook (optionally with an `Idempotency-Key`); the execution id.
async fn hook(s: &TestServer, path: &str, body: Value, key: Option<&str>) -> String {
    let mut req = s.post_hook(path).json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let (status, _, v) = send(req).await;
    assert_eq!(status, 202, "{v}");
    v["executionId"].as_str().unwrap().to_owned()
}

/// The execution ids of the monitor rows in a page.
fn rows(html: &str) -> Vec<String> {
    html.split(r#"<tr id="ex-"#).skip(1).map(|r| r.split('"').next().unwrap().to_owned()).collect()
}

fn set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

/// The ids the monitor lists with the query `q` (first page).
async fn listed(s: &TestServer, cookie: &str, q: &str) -> BTreeSet<String> {
    let (status, html) = page(s, cookie, &format!("/console/executions?{q}")).await;
    assert_eq!(status, 200, "{q}: {html}");
    set(&rows(&html))
}

/// The ids `GET /v1/executions?{q}` lists.
async fn api_listed(s: &TestServer, q: &str) -> BTreeSet<String> {
    let v = s.get_json(&format!("/v1/executions?limit=500&{q}")).await;
    v["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

backends!(each_filter_narrows_the_monitor_and_the_api);
async fn each_filter_narrows_the_monitor_and_the_api() {
    let s = TestServer::start().await;
    s.apply(&ops("http://127.0.0.1:9")).await;
    let early = vec![run(&s, "good", json!({})).await, run(&s, "good", json!({})).await];
    tokio::time::sleep(Duration::from_millis(40)).await;
    let mid = now_ms();
    tokio::time::sleep(Duration::from_millis(40)).await;
    let failed = run(&s, "bad", json!({})).await;
    let keyed = hook(&s, "ops/hooked", json!({ "n": 1 }), Some("order-<b>42</b>")).await;
    let plain = hook(&s, "ops/hooked", json!({ "n": 2 }), None).await;
    s.wait_for(&keyed, "succeeded").await;
    s.wait_for(&plain, "succeeded").await;
    let r = s.api(Method::POST, &format!("/v1/executions/{}/replay", early[0])).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let replay = r.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&replay, "succeeded").await;
    let all = set(&[early.clone(), vec![failed.clone(), keyed.clone(), plain.clone(), replay.clone()]].concat());

    let (cookie, _) = sign_in(&s, TOKEN).await;
    let later = set(&[failed.clone(), keyed.clone(), plain.clone(), replay.clone()]);
    let one = |id: &str| set(&[id.to_owned()]);
    let rfc = flowgate_engine::clock::rfc3339;
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (String::new(), all.clone()),
        ("integration=ops".into(), all.clone()),
        ("flow=hooked".into(), set(&[keyed.clone(), plain.clone()])),
        ("status=failed".into(), one(&failed)),
        ("triggerKind=webhook".into(), set(&[keyed.clone(), plain.clone()])),
        ("triggerKind=manual".into(), set(&[early.clone(), vec![failed.clone()]].concat())),
        ("triggerKind=replay".into(), one(&replay)),
        (format!("from={mid}"), later.clone()),
        (format!("to={mid}"), set(&early)),
        (format!("from={}", urlencode(&rfc(mid))), later.clone()),
        (format!("to={}", urlencode(&rfc(mid))), set(&early)),
        ("range=1h".into(), all.clone()),
        (format!("search={}", early[1]), one(&early[1])),
        (format!("search={}", urlencode("order-<b>42</b>")), one(&keyed)),
        ("search=no-such-thing".into(), BTreeSet::new()),
        (format!("flow=good&triggerKind=manual&to={mid}"), set(&early)),
        (format!("flow=good&from={mid}"), one(&replay)),
    ];
    for (q, want) in &cases {
        assert_eq!(&listed(&s, &cookie, q).await, want, "console ?{q}");
        // `range` is the console's shorthand; the API takes `from`.
        if !q.starts_with("range") {
            assert_eq!(&api_listed(&s, q).await, want, "API ?{q}");
        }
    }
    // The console's date-time field (no zone: UTC), to the minute.
    let minute = rfc(mid + 120_000)[..16].to_owned();
    assert_eq!(listed(&s, &cookie, &format!("to={}", urlencode(&minute))).await, all);
    // The filters show what is chosen, hostile text escaped.
    let (_, html) = page(
        &s,
        &cookie,
        "/console/executions?triggerKind=webhook&range=24h&search=%22%3E%3Cscript%3Ex%3C%2Fscript%3E",
    )
    .await;
    assert!(html.contains(r#"<option value="webhook" selected>webhook</option>"#), "{html}");
    assert!(html.contains(r#"<option value="24h" selected>Last 24 hours</option>"#), "{html}");
    assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""), "{html}");
    assert!(!html.contains("<script>x"), "{html}");

    // Nonsense is refused with a reason, by the console and the API alike.
    for q in ["triggerKind=bogus", "from=yesterday", "to=soon", "range=1y", "from=10&to=5", "cursor=x"] {
        let (status, html) = page(&s, &cookie, &format!("/console/executions?{q}")).await;
        assert_eq!(status, 400, "{q}: {html}");
    }
    for q in ["from=yesterday", "to=2026-13-45T00:00:00Z"] {
        let (status, _, v) = send(s.api(Method::GET, &format!("/v1/executions?{q}"))).await;
        assert_eq!(status, 400, "{q}: {v}");
    }
}

fn urlencode(v: &str) -> String {
    serde_urlencoded::to_string([("x", v)]).unwrap()[2..].to_owned()
}

/// `&amp;` back to `&` in an attribute value.
fn unescape(v: &str) -> String {
    v.replace("&amp;", "&")
}

backends!(paging_under_a_filter_lists_every_row_once);
async fn paging_under_a_filter_lists_every_row_once() {
    let s = TestServer::start().await;
    s.apply(&ops("http://127.0.0.1:9")).await;
    let mut hooked = Vec::new();
    for n in 0..57 {
        hooked.push(hook(&s, "ops/hooked", json!({ "n": n }), None).await);
        if n % 10 == 0 {
            run(&s, "good", json!({})).await;
        }
    }
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let mut seen = Vec::new();
    let mut path = "/console/executions?triggerKind=webhook".to_owned();
    let mut pages = 0;
    loop {
        let (status, html) = page(&s, &cookie, &path).await;
        assert_eq!(status, 200);
        seen.extend(rows(&html));
        pages += 1;
        match html.split(r#"rel="next" href=""#).nth(1) {
            Some(rest) => path = unescape(rest.split('"').next().unwrap()),
            None => break,
        }
        assert!(path.contains("triggerKind=webhook") && path.contains("cursor="), "{path}");
    }
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), hooked.len(), "every row once");
    assert_eq!(set(&seen), set(&hooked));
    // The API's pages under the same filter, too.
    let mut api_seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = s.get_json(&format!("/v1/executions?flow=hooked&triggerKind=webhook&limit=20&cursor={cursor}")).await;
        api_seen.extend(v["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match v["nextCursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(api_seen.len(), hooked.len());
    assert_eq!(set(&api_seen), set(&hooked));
}

backends!(the_live_stream_keeps_to_the_filters);
async fn the_live_stream_keeps_to_the_filters() {
    let s = TestServer::start().await;
    s.apply(&ops("http://127.0.0.1:9")).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let mut r = browser()
        .get(format!("{}/console/executions/stream?triggerKind=webhook&range=1h", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let manual = run(&s, "good", json!({})).await;
    let webhook = hook(&s, "ops/hooked", json!({}), None).await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    while !text.contains(&format!(r#""id":"{webhook}""#)) {
        match tokio::time::timeout_at(deadline, r.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no row for {webhook} in the stream ({other:?}): {text}"),
        }
    }
    // One more tick: the manual run (older) never comes.
    let _ = tokio::time::timeout(Duration::from_millis(1500), async {
        while let Ok(Some(chunk)) = r.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(!text.contains(&manual), "a row outside the filters appeared live: {text}");

    // A row that stops matching is sent as `gone`: a queued execution held behind a failed
    // head of its order key, under `status=queued`, runs once the head is skipped.
    let head = hook(&s, "ops/keyed", json!({ "key": "k", "fail": true }), None).await;
    s.wait_for(&head, "failed").await;
    let held = hook(&s, "ops/keyed", json!({ "key": "k" }), None).await;
    let mut r = browser()
        .get(format!("{}/console/executions/stream?status=queued&flow=keyed", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    let mut skipped = false;
    while !text.contains("event: gone") {
        if !skipped && text.contains(&format!(r#""id":"{held}""#)) {
            let (status, _, v) = send(s.api(Method::POST, &format!("/v1/executions/{head}/skip"))).await;
            assert_eq!(status, 200, "{v}");
            skipped = true;
        }
        match tokio::time::timeout_at(deadline, r.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no gone event ({other:?}): {text}"),
        }
    }
    assert!(skipped, "{text}");
    let gone = text.split("event: gone").nth(1).unwrap();
    assert!(gone.contains(&format!(r#"{{"id":"{held}"}}"#)), "{text}");
    assert!(!text.contains(&head), "the failed head never matched: {text}");
    let bad = browser()
        .get(format!("{}/console/executions/stream?triggerKind=nope", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// The `/console/executions/bulk/{job}` a bulk POST redirected to.
fn job_of(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap();
    to.strip_prefix("/console/executions/bulk/").expect("a bulk job page").to_owned()
}

async fn job_done(s: &TestServer, job: &str) -> Value {
    eventually("the bulk job to finish", || async {
        let v = s.get_json(&format!("/v1/bulk/{job}")).await;
        (!v["finishedAt"].is_null()).then_some(v)
    })
    .await
}

backends!(bulk_retry_and_replay_of_the_filtered_set);
async fn bulk_retry_and_replay_of_the_filtered_set() {
    let s = TestServer::start().await;
    s.apply(&ops("http://127.0.0.1:9")).await;
    let mut bad = Vec::new();
    for _ in 0..3 {
        bad.push(run(&s, "bad", json!({})).await);
    }
    let other = run(&s, "other-bad", json!({})).await;
    let good = vec![run(&s, "good", json!({ "n": 1 })).await, run(&s, "good", json!({ "n": 2 })).await];
    let (cookie, _) = sign_in(&s, TOKEN).await;

    // The monitor offers the bulk actions with its filters.
    let (_, html) = page(&s, &cookie, "/console/executions?flow=bad").await;
    assert!(
        html.contains(r#"action="/console/executions/bulk""#)
            && html.contains(r#"<input type="hidden" name="flow" value="bad">"#),
        "{html}"
    );

    // The dry run counts what matches (a retry takes the failed ones).
    let (status, html) = page(&s, &cookie, "/console/executions/bulk?kind=retry&flow=bad").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Retry 3 failed executions?"), "{html}");
    assert!(html.contains(r#"name="expected" value="3""#), "{html}");
    let csrf = csrf_of(&html);
    let (_, html) = page(&s, &cookie, "/console/executions/bulk?kind=retry&integration=ops").await;
    assert!(html.contains("Retry 4 failed executions?"), "{html}");
    let (_, html) = page(&s, &cookie, "/console/executions/bulk?kind=retry&flow=good").await;
    assert!(html.contains("No execution matches") && !html.contains(r#"name="expected""#), "{html}");
    let (status, _) = page(&s, &cookie, "/console/executions/bulk?kind=explode").await;
    assert_eq!(status, 400);
    // The API's dry run agrees.
    let (_, _, v) =
        send(s.api(Method::POST, "/v1/executions/retry").json(&json!({ "flow": "bad", "dryRun": true }))).await;
    assert_eq!(v["count"], 3, "{v}");

    // Without the CSRF token nothing happens; a count that no longer holds is shown again.
    let r = post_form(&s, &cookie, "/console/executions/bulk", "kind=retry&flow=bad&expected=3").await;
    assert_eq!(r.status(), 403);
    let r = post_form(&s, &cookie, "/console/executions/bulk", &format!("csrf={csrf}&kind=retry&flow=bad&expected=2"))
        .await;
    assert_eq!(r.status(), 409);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("changed since the count you confirmed (2)") && html.contains("Retry 3 failed executions?"),
        "{html}"
    );
    for id in bad.iter().chain([&other]) {
        assert_eq!(s.execution(id).await["attempt"], 1, "nothing retried yet");
    }

    // Confirmed: exactly those are retried (they fail again: same event).
    let r = post_form(&s, &cookie, "/console/executions/bulk", &format!("csrf={csrf}&kind=retry&flow=bad&expected=3"))
        .await;
    let job = job_of(&r);
    let v = job_done(&s, &job).await;
    assert_eq!((v["kind"].as_str(), v["total"].as_i64(), v["done"].as_i64()), (Some("retry"), Some(3), Some(3)), "{v}");
    for id in &bad {
        eventually("the retried execution to fail again", || async {
            let ex = s.execution(id).await;
            (ex["attempt"] == 2 && ex["status"] == "failed").then_some(())
        })
        .await;
    }
    assert_eq!(s.execution(&other).await["attempt"], 1, "outside the filter");
    let (status, html) = page(&s, &cookie, &format!("/console/executions/bulk/{job}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<dd id="job-total">3</dd>"#) && html.contains(r#"<dd id="job-done">3</dd>"#), "{html}");

    // Bulk replay of the filtered set (any status), through the same engine job.
    let (_, html) = page(&s, &cookie, "/console/executions/bulk?kind=replay&flow=good&triggerKind=manual").await;
    assert!(html.contains("Replay 2 executions?"), "{html}");
    let r = post_form(
        &s,
        &cookie,
        "/console/executions/bulk",
        &format!("csrf={csrf}&kind=replay&flow=good&triggerKind=manual&expected=2"),
    )
    .await;
    let job = job_of(&r);
    assert_eq!(job_done(&s, &job).await["done"], 2);
    let replays = eventually("the replays to be listed", || async {
        let v = s.get_json("/v1/executions?triggerKind=replay").await;
        let items = v["items"].as_array().unwrap().clone();
        (items.len() == 2).then_some(items)
    })
    .await;
    let of: BTreeSet<String> = replays.iter().map(|e| e["replayOf"].as_str().unwrap().to_owned()).collect();
    assert_eq!(of, set(&good));
}

backends!(replay_runs_the_original_or_the_latest_version);
async fn replay_runs_the_original_or_the_latest_version() {
    let s = TestServer::start().await;
    s.apply(&ops("http://127.0.0.1:9")).await;
    let first = run(&s, "good", json!({})).await;
    assert_eq!(s.execution(&first).await["version"], 1);
    s.apply(&ops("http://127.0.0.1:9").replace("v: 1", "v: 2")).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (_, html) = page(&s, &cookie, &format!("/console/executions/{first}")).await;
    assert!(html.contains(r#"<option value="original">its original version (1)</option>"#), "{html}");
    let csrf = csrf_of(&html);

    for (version, v, n) in [("original", 1, 1), ("latest", 2, 2)] {
        let url = format!("/console/executions/{first}/replay");
        // First a confirmation, saying which version.
        let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}&version={version}")).await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        let words =
            if version == "original" { "its original version (version 1)" } else { "the flow&#39;s latest version" };
        assert!(html.contains(words) || html.contains(&words.replace("&#39;", "'")), "{html}");
        assert!(html.contains(&format!(r#"name="version" value="{version}""#)), "{html}");
        assert!(html.contains(r#"name="confirmed" value="yes""#));
        // Then the replay.
        let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}&version={version}&confirmed=yes")).await;
        assert_eq!(r.status(), 303);
        let new = r.headers()["location"].to_str().unwrap().trim_start_matches("/console/executions/").to_owned();
        let ex = s.wait_for(&new, "succeeded").await;
        assert_eq!((ex["version"].as_i64(), ex["output"]["v"].as_i64()), (Some(n), Some(v)), "{version}: {ex:#}");
        assert_eq!(ex["replayOf"], first.as_str());
    }
    let r =
        post_form(&s, &cookie, &format!("/console/executions/{first}/replay"), &format!("csrf={csrf}&version=newest"))
            .await;
    assert_eq!(r.status(), 400);
}

backends!(retry_cancel_and_skip_are_confirmed_first);
async fn retry_cancel_and_skip_are_confirmed_first() {
    let s = TestServer::start().await;
    s.apply(&ops("http://127.0.0.1:9")).await;
    let failed = run(&s, "bad", json!({})).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (_, html) = page(&s, &cookie, &format!("/console/executions/{failed}")).await;
    let csrf = csrf_of(&html);

    // Retry: a confirmation naming the failed step, then the engine's retry.
    let url = format!("/console/executions/{failed}/retry");
    let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("from step <strong>boom</strong>?") && html.contains(">Confirm retry</button>"), "{html}");
    assert_eq!(s.execution(&failed).await["attempt"], 1, "not yet");
    let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 303);
    eventually("the retry", || async { (s.execution(&failed).await["attempt"] == 2).then_some(()) }).await;

    // Skip: a failed head of an order key; the one behind it then runs.
    let head = hook(&s, "ops/keyed", json!({ "key": "k", "fail": true }), None).await;
    s.wait_for(&head, "failed").await;
    let next = hook(&s, "ops/keyed", json!({ "key": "k" }), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.execution(&next).await["status"], "queued", "held behind the failed head");
    let (_, html) = page(&s, &cookie, &format!("/console/executions/{head}")).await;
    assert!(html.contains(&format!(r#"action="/console/executions/{head}/skip""#)), "{html}");
    assert!(html.contains("blocks the executions after it"), "{html}");
    let url = format!("/console/executions/{head}/skip");
    let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<code>k</code>"));
    let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 303);
    s.wait_for(&next, "succeeded").await;
    assert_eq!(s.execution(&head).await["status"], "failed", "it stays failed");
    let (_, html) = page(&s, &cookie, &format!("/console/executions/{head}")).await;
    assert!(!html.contains(&format!(r#"action="/console/executions/{head}/skip""#)), "no longer blocks");
    // Skipping again: the engine's refusal.
    let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 409);

    // Cancel of a finished one: the engine's refusal after the confirmation.
    let done = run(&s, "good", json!({})).await;
    let url = format!("/console/executions/{done}/cancel");
    assert_eq!(post_form(&s, &cookie, &url, &format!("csrf={csrf}")).await.status(), 200);
    assert_eq!(post_form(&s, &cookie, &url, &format!("csrf={csrf}&confirmed=yes")).await.status(), 409);
}

backends!(the_execution_page_shows_timeline_items_children_and_deliveries);
async fn the_execution_page_shows_timeline_items_children_and_deliveries() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.on("/in", MockResponse::json(200, json!({ "thanks": "<b>ok</b>" })));
    s.apply(&ops(&up.url)).await;
    let parent = run(&s, "parent", json!({ "items": [1, 2, 3] })).await;
    let detail = s.wait_for(&parent, "succeeded").await;
    let child = detail["children"][0]["id"].as_str().expect("a child").to_owned();
    let (cookie, _) = sign_in(&s, TOKEN).await;

    let (status, html) = page(&s, &cookie, &format!("/console/executions/{parent}")).await;
    assert_eq!(status, 200);
    // The timeline: a bar per entry, on one scale, items under their loop step.
    assert!(html.contains(r#"<figure class="timeline" id="timeline""#), "{html}");
    for step in ["each", "child", "each[0].double", "each[2].double"] {
        assert!(html.contains(&format!(r#"data-step="{step}""#)), "{step} in {html}");
    }
    assert!(html.contains(r#"<li class="tl-row item" data-step="each[1].double""#), "{html}");
    assert!(html.contains(r#"class="tl-fill st-succeeded""#), "{html}");
    let bars = html.matches("<svg class=\"tl-bar\"").count();
    assert_eq!(bars, detail["steps"].as_array().unwrap().len(), "one bar per journal entry");
    assert!(!html.contains(" style="), "no inline style");
    // The items are grouped under the loop step in the steps list.
    let group = html.split(r#"<li class="items" data-step="each">"#).nth(1).expect("an items group");
    assert!(group.split("</li>\n").next().unwrap().contains("each[0].double") || group.contains("each[0].double"));
    // The child it called, linked.
    assert!(
        html.contains(r#"id="children""#) && html.contains(&format!(r#"href="/console/executions/{child}""#)),
        "{html}"
    );
    let (_, child_html) = page(&s, &cookie, &format!("/console/executions/{child}")).await;
    assert!(child_html.contains(&format!(r#"<a id="parent" href="/console/executions/{parent}">"#)), "{child_html}");

    // Deliveries, their attempts, and Resend (confirmed).
    let push = run(&s, "push", json!({})).await;
    let ex = s.wait_for(&push, "succeeded").await;
    let delivery = ex["deliveries"][0]["id"].as_str().expect("a delivery").to_owned();
    assert_eq!(up.hits("/in"), 1);
    let (_, html) = page(&s, &cookie, &format!("/console/executions/{push}")).await;
    assert!(html.contains(r#"id="deliveries""#) && html.contains(&delivery), "{html}");
    assert!(html.contains("Attempts (1)") && html.contains("&lt;b&gt;ok&lt;/b&gt;"), "{html}");
    let csrf = csrf_of(&html);
    let url = format!("/console/executions/{push}/deliveries/{delivery}/resend");
    assert!(html.contains(&format!(r#"action="{url}""#)), "{html}");
    assert_eq!(post_form(&s, &cookie, &url, "").await.status(), 403);
    let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains(">Confirm resend</button>"));
    assert_eq!(up.hits("/in"), 1, "not yet");
    let r = post_form(&s, &cookie, &url, &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 303);
    up.wait_hits("/in", 2).await;
    // A delivery of another execution is not reachable through this one.
    let r = post_form(
        &s,
        &cookie,
        &format!("/console/executions/{parent}/deliveries/{delivery}/resend"),
        &format!("csrf={csrf}&confirmed=yes"),
    )
    .await;
    assert_eq!(r.status(), 404);
}

backends!(every_post_needs_the_csrf_token);
async fn every_post_needs_the_csrf_token() {
    let s = TestServer::start().await;
    s.apply(&ops("http://127.0.0.1:9")).await;
    let failed = run(&s, "bad", json!({})).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let paths = [
        "/console/executions/bulk".to_owned(),
        format!("/console/executions/{failed}/retry"),
        format!("/console/executions/{failed}/replay"),
        format!("/console/executions/{failed}/cancel"),
        format!("/console/executions/{failed}/skip"),
        format!("/console/executions/{failed}/deliveries/dl_x/resend"),
    ];
    for p in &paths {
        for form in ["kind=retry&confirmed=yes&expected=1", "csrf=forged&kind=retry&confirmed=yes&expected=1"] {
            let r = post_form(&s, &cookie, p, form).await;
            assert_eq!(r.status(), 403, "{p} {form}");
        }
    }
    let ex = s.execution(&failed).await;
    assert_eq!(ex["attempt"], 1);
    assert_eq!(s.get_json("/v1/executions").await["items"].as_array().unwrap().len(), 1, "nothing replayed");
}

backends!(a_second_tenant_sees_none_of_it);
async fn a_second_tenant_sees_none_of_it() {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    let up = MockUpstream::start().await;
    up.on("/in", MockResponse::json(200, json!({})));
    s.apply(&ops(&up.url)).await;
    let failed = run(&s, "bad", json!({})).await;
    let keyed = hook(&s, "ops/hooked", json!({}), Some("secret-delivery")).await;
    let push = run(&s, "push", json!({})).await;
    let delivery = s.wait_for(&push, "succeeded").await["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let (mine, _) = sign_in(&s, TOKEN).await;
    let (_, html) = page(&s, &mine, "/console/executions/bulk?kind=retry").await;
    let my_csrf = csrf_of(&html);
    let r = post_form(&s, &mine, "/console/executions/bulk", &format!("csrf={my_csrf}&kind=retry&expected=1")).await;
    let job = job_of(&r);

    let other = s.create_tenant(ADMIN, "other").await;
    let (cookie, _) = sign_in(&s, &other).await;
    for q in ["", "integration=ops", &format!("search={failed}"), "search=secret-delivery", "triggerKind=webhook"] {
        assert!(listed(&s, &cookie, q).await.is_empty(), "?{q}");
    }
    let (_, _, v) =
        send(reqwest::Client::new().get(format!("{}/v1/executions?search=secret-delivery", s.url)).bearer_auth(&other))
            .await;
    assert_eq!(v["items"], json!([]), "{v}");
    let (_, html) = page(&s, &cookie, "/console/executions/bulk?kind=retry").await;
    assert!(html.contains("No execution matches"), "{html}");
    let (_, html) = page(&s, &cookie, "/console/executions/bulk?kind=replay&integration=ops").await;
    assert!(html.contains("No execution matches"), "{html}");
    let csrf = csrf_of(&html);
    let r = post_form(&s, &cookie, "/console/executions/bulk", &format!("csrf={csrf}&kind=replay&expected=3")).await;
    assert_eq!(r.status(), 409, "nothing to replay");
    assert_eq!(page(&s, &cookie, &format!("/console/executions/bulk/{job}")).await.0, 404);
    for id in [&failed, &keyed, &push] {
        assert_eq!(page(&s, &cookie, &format!("/console/executions/{id}")).await.0, 404);
        for action in ["retry", "replay", "cancel", "skip"] {
            let r =
                post_form(&s, &cookie, &format!("/console/executions/{id}/{action}"), &format!("csrf={csrf}")).await;
            assert_eq!(r.status(), 404, "{action} {id}");
            let r = post_form(
                &s,
                &cookie,
                &format!("/console/executions/{id}/{action}"),
                &format!("csrf={csrf}&confirmed=yes"),
            )
            .await;
            assert_eq!(r.status(), 404, "{action} {id}");
        }
    }
    let r = post_form(
        &s,
        &cookie,
        &format!("/console/executions/{push}/deliveries/{delivery}/resend"),
        &format!("csrf={csrf}&confirmed=yes"),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(up.hits("/in"), 1);
    assert_eq!(s.get_json("/v1/executions?triggerKind=replay").await["items"], json!([]));
}
