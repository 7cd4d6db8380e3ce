//! Step kinds and the execution model over HTTP: transform, filter, when, switch, log,
//! onError, the journal and logs of an execution, a flow's last run, retries with backoff,
//! the retry/replay/cancel API, and the expression guard rails.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, assert_error, send};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `(stepId, round, attempt, status)` of every journal entry.
fn journal(ex: &Value) -> Vec<(String, i64, i64, String)> {
    ex["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["stepId"].as_str().unwrap().to_owned(),
                s["round"].as_i64().unwrap(),
                s["attempt"].as_i64().unwrap(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `(stepId, status)` of every journal entry.
fn statuses(ex: &Value) -> Vec<(String, String)> {
    journal(ex).into_iter().map(|(id, _, _, st)| (id, st)).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

const PIPELINE: &str = r#"
integration: steps-demo
flows:
  - flow: pipeline
    trigger: { manual: {} }
    steps:
      - id: start
        log: "start {{ .body.n }}"
      - id: doubled
        transform: '{ n: (.body.n * 2), kind: .body.kind }'
      - id: only-positive
        filter: '.n > 0'
      - id: big-note
        when: '.n > 100'
        log: { level: warn, message: "big {{ .n }}" }
      - id: route
        switch:
          - when: '.kind == "a"'
            steps:
              - { id: a1, transform: '. + { branch: "a" }' }
              - { id: a2, transform: '. + { a2: true }' }
          - when: '.kind == "b"'
            steps:
              - { id: b1, transform: '. + { branch: "b" }' }
          - default:
              - { id: d1, transform: '. + { branch: "default" }' }
      - id: risky
        transform: 'if $trigger.body.explode then error("kaboom") else . + { safe: true } end'
        onError: continue
      - id: final
        transform: '{ route: $steps.route, risky: $steps.risky, skippedPassedInput: ($steps["big-note"] == $steps["only-positive"]) }'
  - flow: no-match
    trigger: { manual: {} }
    steps:
      - id: route
        switch:
          - when: '.body.x == 1'
            steps: [ { id: one, transform: '"one"' } ]
      - { id: after, transform: '{ passed: . }' }
  - flow: fails
    trigger: { manual: {} }
    steps:
      - { id: note, log: { level: info, message: "about to fail for {{ .body.who }}" } }
      - { id: boom, transform: 'error("nope")' }
      - { id: never, log: "not reached" }
"#;

backends!(transform_filter_when_switch_log_and_on_error);
async fn transform_filter_when_switch_log_and_on_error() {
    let s = TestServer::start().await;
    s.apply(PIPELINE).await;

    // Branch a; `when` false skips big-note, which passes its input through.
    let r = s.run_flow("steps-demo", "pipeline", json!({ "n": 1, "kind": "a" })).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["output"]["route"], json!({ "n": 2, "kind": "a", "branch": "a", "a2": true }));
    assert_eq!(r["output"]["risky"], json!({ "n": 2, "kind": "a", "branch": "a", "a2": true, "safe": true }));
    assert_eq!(r["output"]["skippedPassedInput"], true);
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(
        statuses(&ex),
        pairs(&[
            ("start", "succeeded"),
            ("doubled", "succeeded"),
            ("only-positive", "succeeded"),
            ("big-note", "skipped"),
            ("a1", "succeeded"),
            ("a2", "succeeded"),
            ("route", "succeeded"),
            ("risky", "succeeded"),
            ("final", "succeeded"),
        ])
    );
    assert_eq!(ex["triggerKind"], "manual");
    let logs: Vec<(&str, &str, &str)> = ex["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["level"].as_str().unwrap(), l["stepId"].as_str().unwrap(), l["message"].as_str().unwrap()))
        .collect();
    assert_eq!(logs, [("info", "start", "start 1")]);
    let flow = s.get_json("/v1/integrations/steps-demo/flows/pipeline").await;
    assert_eq!(flow["lastRunStatus"], "success");
    assert_eq!(flow["lastExecutionId"], r["executionId"]);
    assert!(flow["lastRunLog"].as_str().unwrap().contains("[info] start 1"), "{flow}");
    let kinds: Vec<(&str, &str)> = flow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds[..3], [("start", "log"), ("doubled", "transform"), ("only-positive", "filter")]);

    // Branch b; `when` true runs big-note; the failing step continues with {error}.
    let r = s.run_flow("steps-demo", "pipeline", json!({ "n": 60, "kind": "b", "explode": true })).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["output"]["route"], json!({ "n": 120, "kind": "b", "branch": "b" }));
    let risky = &r["output"]["risky"];
    assert_eq!(risky["error"]["code"], "expression_error", "{risky}");
    assert!(risky["error"]["message"].as_str().unwrap().contains("kaboom"), "{risky}");
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    let st = statuses(&ex);
    assert!(st.contains(&("big-note".into(), "succeeded".into())), "{st:?}");
    assert!(st.contains(&("b1".into(), "succeeded".into())), "{st:?}");
    assert!(st.contains(&("risky".into(), "continued".into())), "{st:?}");
    assert!(!st.iter().any(|(id, _)| id == "a1" || id == "d1"), "only the taken branch runs: {st:?}");
    let logs: Vec<(&str, &str)> = ex["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["level"].as_str().unwrap(), l["message"].as_str().unwrap()))
        .collect();
    assert_eq!(logs, [("info", "start 60"), ("warn", "big 120")]);
    let flow = s.get_json("/v1/integrations/steps-demo/flows/pipeline").await;
    assert!(flow["lastRunLog"].as_str().unwrap().contains("[warn] big 120"), "{flow}");

    // Default branch.
    let r = s.run_flow("steps-demo", "pipeline", json!({ "n": 5, "kind": "zzz" })).await;
    assert_eq!(r["output"]["route"]["branch"], "default", "{r}");

    // Filtered: lastRunStatus "skipped"; nothing after the filter runs.
    let r = s.run_flow("steps-demo", "pipeline", json!({ "n": -1, "kind": "a" })).await;
    assert_eq!(r["status"], "filtered", "{r}");
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(
        statuses(&ex),
        pairs(&[("start", "succeeded"), ("doubled", "succeeded"), ("only-positive", "succeeded")])
    );
    let flow = s.get_json("/v1/integrations/steps-demo/flows/pipeline").await;
    assert_eq!(flow["lastRunStatus"], "skipped");
    assert!(flow["lastRunLog"].as_str().unwrap().contains("start -1"), "{flow}");

    // A switch with no matching case and no default outputs its input.
    let r = s.run_flow("steps-demo", "no-match", json!({ "x": 2 })).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["output"]["passed"]["body"], json!({ "x": 2 }));
    let r = s.run_flow("steps-demo", "no-match", json!({ "x": 1 })).await;
    assert_eq!(r["output"], json!({ "passed": "one" }));

    // A failure: lastRunStatus "error", the log and the error in lastRunLog.
    let r = s.run_flow("steps-demo", "fails", json!({ "who": "Ann" })).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["step"], "boom");
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(ex["failedStep"], "boom");
    assert_eq!(statuses(&ex), pairs(&[("note", "succeeded"), ("boom", "failed")]));
    let flow = s.get_json("/v1/integrations/steps-demo/flows/fails").await;
    assert_eq!(flow["lastRunStatus"], "error");
    let log = flow["lastRunLog"].as_str().unwrap();
    assert!(log.contains("[info] about to fail for Ann"), "{log}");
    assert!(log.contains("error in step boom") && log.contains("nope"), "{log}");
    assert!(!log.contains("not reached"), "{log}");
}

const RETRIES: &str = r#"
integration: retries
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: flaky
    trigger: { manual: {} }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/flaky" }
        retry: { attempts: 3, backoff: { initial: 10ms, max: 50ms } }
  - flow: bad-request
    trigger: { manual: {} }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/bad" }
        retry: { attempts: 3, backoff: { initial: 10ms, max: 50ms } }
  - flow: throttled
    trigger: { manual: {} }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/throttled" }
        retry: { attempts: 3, backoff: { initial: 10ms, max: 50ms } }
  - flow: patient
    trigger: { manual: {} }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/patient" }
        retry: { attempts: 2, backoff: { initial: 10ms, max: 50ms } }
  - flow: refused
    trigger: { manual: {} }
    steps:
      - id: call
        http: { url: "http://127.0.0.1:1/nothing-listens-here" }
        retry: { attempts: 2, backoff: { initial: 10ms, max: 50ms } }
  - flow: exhausted
    trigger: { manual: {} }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/down" }
        retry: { attempts: 2, backoff: { initial: 10ms, max: 50ms } }
"#;

backends!(http_retries);
async fn http_retries() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.fail_then("/flaky", 2, 503, MockResponse::json(200, json!({ "ok": true })));
    up.on("/bad", MockResponse::json(400, json!({ "error": "bad input" })));
    up.queue("/throttled", [MockResponse::text(429, "slow down").header("Retry-After", "0")]);
    up.on("/throttled", MockResponse::json(200, json!({ "ok": "throttled" })));
    up.queue("/patient", [MockResponse::text(429, "slow down").header("Retry-After", "1")]);
    up.on("/patient", MockResponse::json(200, json!({ "ok": "patient" })));
    up.on("/down", MockResponse::text(502, "bad gateway"));
    s.apply(&RETRIES.replace("BASE", &up.url)).await;

    // 503, 503, 200.
    let r = s.run_flow("retries", "flaky", json!(null)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["output"]["body"], json!({ "ok": true }));
    assert_eq!(up.hits("/flaky"), 3);
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    let j = journal(&ex);
    assert_eq!(
        j,
        vec![
            ("call".into(), 1, 1, "failed".into()),
            ("call".into(), 1, 2, "failed".into()),
            ("call".into(), 1, 3, "succeeded".into())
        ]
    );
    assert_eq!(ex["steps"][0]["error"]["code"], "http_status");
    assert_eq!(ex["steps"][0]["error"]["details"]["status"], 503);
    // Every attempt carries the same idempotency key.
    let keys: Vec<String> =
        up.requests("/flaky").iter().map(|r| r.header("idempotency-key").unwrap_or("").to_owned()).collect();
    assert_eq!(keys, vec![format!("{}:call", r["executionId"].as_str().unwrap()); 3]);

    // 400: not retried.
    let r = s.run_flow("retries", "bad-request", json!(null)).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(up.hits("/bad"), 1);
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(journal(&ex), vec![("call".into(), 1, 1, "failed".into())]);
    assert_eq!(ex["failedStep"], "call");
    assert_eq!(ex["error"]["code"], "http_status");
    assert_eq!(ex["error"]["details"]["status"], 400);

    // 429 with Retry-After: 0 is retried.
    let r = s.run_flow("retries", "throttled", json!(null)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(up.hits("/throttled"), 2);

    // 429 with Retry-After: 1 waits at least that long, beyond the 10ms backoff.
    let r = s.run_flow("retries", "patient", json!(null)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    let first_end = time_ms(&ex["steps"][0]["finishedAt"]);
    let second_start = time_ms(&ex["steps"][1]["startedAt"]);
    assert!(
        second_start - first_end >= 900,
        "Retry-After: 1 not honoured: {} ms between attempts",
        second_start - first_end
    );

    // Connection errors are retried.
    let r = s.run_flow("retries", "refused", json!(null)).await;
    assert_eq!(r["status"], "failed", "{r}");
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(journal(&ex), vec![("call".into(), 1, 1, "failed".into()), ("call".into(), 1, 2, "failed".into())]);
    assert_eq!(ex["error"]["code"], "http_connect");

    // Attempts used up: failed after exactly `attempts` tries.
    let r = s.run_flow("retries", "exhausted", json!(null)).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(up.hits("/down"), 2);
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(journal(&ex), vec![("call".into(), 1, 1, "failed".into()), ("call".into(), 1, 2, "failed".into())]);
}

const TIMING: &str = r#"
integration: timing
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: parked
    trigger: { webhook: { path: parked } }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/parked" }
        retry: { attempts: 2, backoff: { initial: 10ms, max: 50ms } }
      - id: after
        transform: '{ got: .body, round: $execution.attempt }'
  - flow: bounded
    timeout: 300ms
    trigger: { manual: {} }
    steps:
      - id: wait
        http: { url: "{{ $config.base }}/slow-a" }
  - flow: step-timeout
    trigger: { manual: {} }
    steps:
      - id: wait
        http: { url: "{{ $config.base }}/slow-b", timeout: 200ms }
        retry: { attempts: 2, backoff: { initial: 10ms, max: 50ms } }
"#;

backends!(parked_retries_and_timeouts);
/// A retry delay longer than the inline maximum (2 s) parks the execution in the queue; it
/// resumes after the delay. Flow and step timeouts end slow work.
async fn parked_retries_and_timeouts() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.queue("/parked", [MockResponse::text(503, "later").header("Retry-After", "3")]);
    up.on("/parked", MockResponse::json(200, json!({ "ok": "later" })));
    up.on("/slow-a", MockResponse::json(200, json!({})).delay(Duration::from_secs(3)));
    up.on("/slow-b", MockResponse::json(200, json!({})).delay(Duration::from_secs(3)));
    s.apply(&TIMING.replace("BASE", &up.url)).await;

    let (status, _, v) = send(s.post_hook("parked").json(&json!({}))).await;
    assert_eq!(status, 202, "{v}");
    let id = v["executionId"].as_str().unwrap().to_owned();
    up.wait_hits("/parked", 1).await;
    common::eventually("the execution to be parked in the queue", || async {
        (s.execution(&id).await["status"] == "queued").then_some(())
    })
    .await;

    // Meanwhile: the flow's timeout ends an execution whose step is still waiting…
    let started = Instant::now();
    let r = s.run_flow("timing", "bounded", json!(null)).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], "execution_timeout", "{r}");
    assert!(started.elapsed() < Duration::from_secs(2), "the flow timeout took {:?}", started.elapsed());
    // …and a step's timeout fails each attempt.
    let r = s.run_flow("timing", "step-timeout", json!(null)).await;
    assert_eq!(r["status"], "failed", "{r}");
    let code = r["error"]["code"].as_str().unwrap_or("");
    assert!(code == "http_timeout" || code == "step_timeout", "{r}");
    assert_eq!(up.hits("/slow-b"), 2);

    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["output"], json!({ "got": { "ok": "later" }, "round": 1 }));
    assert_eq!(
        journal(&ex),
        vec![
            ("call".into(), 1, 1, "failed".into()),
            ("call".into(), 1, 2, "succeeded".into()),
            ("after".into(), 1, 1, "succeeded".into())
        ]
    );
    let gap = time_ms(&ex["steps"][1]["startedAt"]) - time_ms(&ex["steps"][0]["finishedAt"]);
    assert!(gap >= 2900, "Retry-After: 3 not honoured: {gap} ms between attempts");
    assert_eq!(up.hits("/parked"), 2);
}

const DURABLE: &str = r#"
integration: durable
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: resumable
    trigger: { webhook: { path: resumable } }
    steps:
      - id: before
        http: { url: "{{ $config.base }}/before" }
      - id: slow
        http: { url: "{{ $config.base }}/slow-once", timeout: 60s }
      - id: after
        transform: '{ before: $steps.before.body, slow: .body }'
"#;

backends!(restart_resumes_interrupted_and_queued_work);
/// A graceful stop interrupts running work and hands it back to the queue; the next start on
/// the same data directory resumes it from its journal, serves the same integrations and
/// tokens, and honours status URLs signed before the restart.
async fn restart_resumes_interrupted_and_queued_work() {
    let s = TestServer::start_with(|st| st.max_concurrency = 1).await;
    let up = MockUpstream::start().await;
    up.on("/before", MockResponse::json(200, json!({ "b": 1 })));
    up.queue("/slow-once", [MockResponse::json(200, json!({ "never": "seen" })).delay(Duration::from_secs(60))]);
    up.on("/slow-once", MockResponse::json(200, json!({ "s": 2 })));
    s.apply(&DURABLE.replace("BASE", &up.url)).await;

    let (_, _, v) = send(s.post_hook("resumable").json(&json!({ "n": 1 }))).await;
    let first = v["executionId"].as_str().unwrap().to_owned();
    let status_path = v["statusUrl"].as_str().unwrap().trim_start_matches(&s.url).to_owned();
    up.wait_hits("/slow-once", 1).await;
    let (_, _, v) = send(s.post_hook("resumable").json(&json!({ "n": 2 }))).await;
    let second = v["executionId"].as_str().unwrap().to_owned();
    assert_eq!(s.execution(&second).await["status"], "queued");

    let s = s.restart(|st| st.max_concurrency = 1).await;
    let ex = s.wait_for(&first, "succeeded").await;
    assert_eq!(ex["output"], json!({ "before": { "b": 1 }, "slow": { "s": 2 } }));
    s.wait_for(&second, "succeeded").await;
    assert_eq!(up.hits("/before"), 2, "the completed step of the interrupted execution must not run again");
    let slow = up.requests("/slow-once");
    assert_eq!(slow.len(), 3);
    let key = format!("{first}:slow");
    let resent = slow.iter().filter(|r| r.header("idempotency-key") == Some(key.as_str())).count();
    assert_eq!(resent, 2, "the interrupted step is re-sent once, with the same idempotency key");
    assert_eq!(slow[0].header("idempotency-key"), Some(key.as_str()));

    // Same tokens, integrations, webhooks and status URL signatures after the restart.
    assert_eq!(s.get_json("/v1/integrations").await["items"][0]["integration"], "durable");
    let (status, _, v) = send(s.client.get(format!("{}{status_path}", s.url))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "succeeded");
    let (status, _, v) = send(s.post_hook("resumable").json(&json!({ "n": 3 }))).await;
    assert_eq!(status, 202, "{v}");
    s.wait_for(v["executionId"].as_str().unwrap(), "succeeded").await;
}

const HTTP_FEATURES: &str = r#"
integration: http-features
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: features
    trigger: { manual: {} }
    steps:
      - id: get-json
        http:
          url: "{{ $config.base }}/json"
          headers: { X-Trace: "t-{{ $trigger.body.n }}", X-Skip: null }
          query: { tag: ["a", "b"], skip: null, n: "{{ $trigger.body.n }}" }
      - id: post-form
        http: { method: POST, url: "{{ $config.base }}/form", form: { name: "{{ $trigger.body.name }}", n: 5 }, idempotencyKey: false }
      - id: put-text
        http:
          method: PUT
          url: "{{ $config.base }}/text"
          body: "plain {{ $trigger.body.name }}"
          headers: { Content-Type: text/plain }
          idempotencyKey: X-Request-Id
      - id: not-found-ok
        http: { method: DELETE, url: "{{ $config.base }}/gone", success: ["2xx", 404] }
      - id: encoded
        http: { url: "{{ $config.base }}/enc/{{ $trigger.body.name | @uri }}/{{ $trigger.body.name }}", success: [404] }
      - id: summary
        transform: '{ json: $steps["get-json"].body, text: $steps["put-text"].body, gone: $steps["not-found-ok"].status, ct: $steps["get-json"].headers["content-type"] }'
"#;

backends!(http_step_requests_and_responses);
/// The http step's request building and response reading, as seen by the upstream.
async fn http_step_requests_and_responses() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.on("/json", MockResponse::json(200, json!({ "ok": 1 })));
    up.on("/form", MockResponse::json(200, json!({})));
    up.on("/text", MockResponse::text(200, "stored"));
    up.on("/gone", MockResponse::status(404));
    s.apply(&HTTP_FEATURES.replace("BASE", &up.url)).await;

    let r = s.run_flow("http-features", "features", json!({ "n": 7, "name": "Ann Lee" })).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["output"], json!({ "json": { "ok": 1 }, "text": "stored", "gone": 404, "ct": "application/json" }));
    let id = r["executionId"].as_str().unwrap();

    let get = &up.requests("/json")[0];
    assert_eq!(get.method, "GET");
    assert_eq!(get.query.as_deref(), Some("tag=a&tag=b&n=7"));
    assert_eq!(get.header("x-trace"), Some("t-7"));
    assert!(get.header("x-skip").is_none(), "null headers are left out");
    assert_eq!(get.header("idempotency-key"), Some(format!("{id}:get-json").as_str()));
    assert!(get.header("user-agent").unwrap_or("").starts_with("flowgate/"));

    let form = &up.requests("/form")[0];
    assert_eq!(form.method, "POST");
    assert_eq!(form.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(std::str::from_utf8(&form.body).unwrap(), "name=Ann+Lee&n=5");
    assert!(form.header("idempotency-key").is_none(), "idempotencyKey: false sends none");

    let text = &up.requests("/text")[0];
    assert_eq!(text.method, "PUT");
    assert_eq!(std::str::from_utf8(&text.body).unwrap(), "plain Ann Lee");
    assert_eq!(text.header("content-type"), Some("text/plain"));
    assert_eq!(text.header("x-request-id"), Some(format!("{id}:put-text").as_str()));
    assert!(text.header("idempotency-key").is_none());

    assert_eq!(up.requests("/gone")[0].method, "DELETE");
    // Only what the expression encodes (`@uri`) is encoded; the URL parser escapes the space.
    let enc: Vec<_> = up.all_requests().into_iter().filter(|r| r.path.starts_with("/enc/")).collect();
    assert_eq!(enc.len(), 1);
    assert_eq!(enc[0].path, "/enc/Ann%20Lee/Ann%20Lee");
}

const RESPOND_THEN_FAIL: &str = r#"
integration: respond-then-fail
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: rtp
    trigger: { webhook: { path: rtp, respond: { mode: sync, timeout: 10s } } }
    steps:
      - { id: reply, respond: { status: 201, body: { accepted: "{{ .body.n }}" } } }
      - id: push
        http: { method: POST, url: "{{ $config.base }}/push-later", json: "{{ .body }}" }
        retry: { attempts: 1 }
"#;

backends!(issue_2_retry_keeps_the_response_already_given);
/// Regression: retrying an execution whose `respond` step already answered drops that answer: the
/// retry clears the stored `response`, and the resumed run reuses the respond step's journal
/// output without restoring its response. Afterwards the execution shows `response: null`
/// and its status URL shows the last step's output as `result` instead of what the caller
/// was answered.
async fn issue_2_retry_keeps_the_response_already_given() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.queue("/push-later", [MockResponse::text(500, "down")]);
    up.on("/push-later", MockResponse::json(200, json!({ "pushed": true })));
    s.apply(&RESPOND_THEN_FAIL.replace("BASE", &up.url)).await;

    let (status, headers, v) = send(s.post_hook("rtp").json(&json!({ "n": 1 }))).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v, json!({ "accepted": 1 }));
    let id = headers["x-flowgate-execution-id"].to_str().unwrap().to_owned();
    let ex = s.wait_for(&id, "failed").await;
    assert_eq!(ex["response"]["status"], 201);
    let status_url = ex["statusUrl"].as_str().unwrap().to_owned();

    let (status, _, _) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{id}/retry"))).await;
    assert_eq!(status, 202);
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(up.hits("/push-later"), 2);
    let (_, _, st) = send(s.client.get(&status_url)).await;
    assert_eq!(ex["response"]["status"], 201, "the response given before the retry is lost: {ex:#}");
    assert_eq!(st["result"], json!({ "accepted": 1 }), "{st}");
}

const VARIABLES: &str = r#"
integration: variables
config:
  base: { type: string, default: "http://upstream.example" }
  limit: { type: number, default: 5 }
  enabled: { type: boolean, default: true }
  extra: { type: json, default: { region: eu, tags: [a, b] } }
flows:
  - flow: inbound
    trigger: { webhook: { path: vars/in } }
    steps: [ { id: x, transform: '.' } ]
  - flow: show
    trigger: { manual: {} }
    steps:
      - id: first-step
        transform: '{ input: .body }'
      - id: vars
        transform: >-
          { config: $config, flow: { me: $flow.webhookUrl, inbound: $flow.webhookUrls.inbound,
            integration: $flow.integration, flow: $flow.flow, version: $flow.version, tenant: $flow.tenant },
            execution: { id: $execution.id, attempt: $execution.attempt, trigger: $execution.trigger },
            previous: $steps["first-step"].input, triggerBody: $trigger.body }
"#;

backends!(expression_variables_and_public_url);
/// `$config`, `$flow`, `$execution`, `$steps` and `$trigger` in expressions; webhook URLs
/// use the configured public URL.
async fn expression_variables_and_public_url() {
    let s = TestServer::start_with(|st| st.public_url = Some("https://flows.example.com/".into())).await;
    let applied = s.apply(VARIABLES).await;
    assert_eq!(applied["flows"][0]["webhookUrl"], "https://flows.example.com/hooks/default/vars/in");
    let r = s.run_flow("variables", "show", json!({ "k": "v" })).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let id = r["executionId"].as_str().unwrap();
    assert_eq!(
        r["output"],
        json!({
            "config": { "base": "http://upstream.example", "limit": 5, "enabled": true, "extra": { "region": "eu", "tags": ["a", "b"] } },
            "flow": { "me": null, "inbound": "https://flows.example.com/hooks/default/vars/in", "integration": "variables", "flow": "show", "version": 1, "tenant": "default" },
            "execution": { "id": id, "attempt": 1, "trigger": "manual" },
            "previous": { "k": "v" },
            "triggerBody": { "k": "v" },
        })
    );
    let ex = s.execution(id).await;
    assert!(
        ex["statusUrl"].as_str().unwrap().starts_with(&format!("https://flows.example.com/status/{id}?sig=")),
        "{ex}"
    );
    let (status, _, v) = send(s.post_hook("vars/in").json(&json!({}))).await;
    assert_eq!(status, 202, "{v}");
    assert!(v["statusUrl"].as_str().unwrap().starts_with("https://flows.example.com/status/"), "{v}");
}

/// Milliseconds since the epoch of an RFC 3339 UTC time with a fraction (`…T12:34:56.789Z`).
fn time_ms(v: &Value) -> i64 {
    let t = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let (date, rest) = t.split_once('T').expect("T");
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, "0"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let h: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    // Days from civil (Howard Hinnant).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + h[0]) * 60 + h[1]) * 60_000 + h[2] * 1000 + ms
}

const RECOVERY: &str = r#"
integration: recovery
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: two-step
    trigger: { webhook: { path: two-step } }
    steps:
      - id: fetch
        http: { url: "{{ $config.base }}/source" }
      - id: push
        http: { method: POST, url: "{{ $config.base }}/sink", json: "{{ .body }}" }
        retry: { attempts: 1 }
      - id: done
        transform: '{ pushed: $steps.push.body, fetched: $steps.fetch.body }'
  - flow: slow
    trigger: { webhook: { path: slow } }
    steps:
      - id: wait
        http: { url: "{{ $config.base }}/slow", timeout: 60s }
  - flow: quick
    trigger: { webhook: { path: quick } }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/quick" }
"#;

backends!(retry_replay_of_failed_execution);
async fn retry_replay_of_failed_execution() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.on("/source", MockResponse::json(200, json!({ "v": 1 })));
    up.on("/sink", MockResponse::json(422, json!({ "error": "rejected" })));
    s.apply(&RECOVERY.replace("BASE", &up.url)).await;

    let (status, _, v) = send(s.post_hook("two-step").json(&json!({ "go": true }))).await;
    assert_eq!(status, 202, "{v}");
    let id = v["executionId"].as_str().unwrap().to_owned();
    let ex = s.wait_for(&id, "failed").await;
    assert_eq!(ex["failedStep"], "push");
    assert_eq!(ex["error"]["code"], "http_status");
    assert_eq!(ex["error"]["details"]["status"], 422);
    assert_eq!((up.hits("/source"), up.hits("/sink")), (1, 1));

    // Fix the upstream and retry from the failed step.
    up.on("/sink", MockResponse::json(200, json!({ "ok": true })));
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{id}/retry"))).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["attempt"], 2);
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["output"], json!({ "pushed": { "ok": true }, "fetched": { "v": 1 } }));
    assert_eq!(ex["failedStep"], Value::Null);
    assert_eq!(ex["error"], Value::Null);
    assert_eq!(up.hits("/source"), 1, "the step before the failed one must not run again");
    assert_eq!(up.hits("/sink"), 2);
    let sink = up.requests("/sink");
    assert_eq!(sink[1].json(), json!({ "v": 1 }), "the retried step gets the recorded output of the step before");
    assert_eq!(sink[0].header("idempotency-key"), sink[1].header("idempotency-key"));
    assert_eq!(
        journal(&ex),
        vec![
            ("fetch".into(), 1, 1, "succeeded".into()),
            ("push".into(), 1, 1, "failed".into()),
            ("push".into(), 2, 1, "succeeded".into()),
            ("done".into(), 2, 1, "succeeded".into()),
        ]
    );

    // A succeeded execution cannot be retried.
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{id}/retry"))).await;
    assert_eq!(status, 409, "{v}");
    assert_error(&v, "conflict");
    let (status, _, v) =
        send(s.api(reqwest::Method::POST, "/v1/executions/0190a0a0-0000-7000-8000-000000000000/retry")).await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "not_found");

    // Replay: a new execution from the start with the same trigger.
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{id}/replay"))).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["replayOf"], id.as_str());
    let replay = v["executionId"].as_str().unwrap().to_owned();
    assert_ne!(replay, id);
    let ex = s.wait_for(&replay, "succeeded").await;
    assert_eq!(ex["replayOf"], id.as_str());
    assert_eq!(ex["triggerKind"], "replay");
    assert_eq!(ex["trigger"]["body"], json!({ "go": true }));
    assert_eq!(up.hits("/source"), 2, "a replay runs every step again");
    assert_eq!(up.hits("/sink"), 3);
    let (status, _, _) = send(s.api(reqwest::Method::POST, "/v1/executions/nope/replay")).await;
    assert_eq!(status, 404);
}

backends!(cancel_running_and_queued_executions);
async fn cancel_running_and_queued_executions() {
    let s = TestServer::start_with(|st| st.max_concurrency = 1).await;
    let up = MockUpstream::start().await;
    up.on("/slow", MockResponse::json(200, json!({})).delay(Duration::from_secs(30)));
    up.on("/quick", MockResponse::json(200, json!({ "quick": true })));
    s.apply(&RECOVERY.replace("BASE", &up.url)).await;

    // The only worker is busy with a slow call…
    let (_, _, v) = send(s.post_hook("slow").json(&json!({}))).await;
    let running = v["executionId"].as_str().unwrap().to_owned();
    up.wait_hits("/slow", 1).await;
    assert_eq!(s.execution(&running).await["status"], "running");
    // …so the next one is queued.
    let (_, _, v) = send(s.post_hook("quick").json(&json!({}))).await;
    let queued = v["executionId"].as_str().unwrap().to_owned();
    assert_eq!(s.execution(&queued).await["status"], "queued");

    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{queued}/cancel"))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "cancelled");

    // Neither a running nor a queued execution can be retried.
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{running}/retry"))).await;
    assert_eq!(status, 409, "{v}");
    assert_error(&v, "conflict");

    let started = Instant::now();
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{running}/cancel"))).await;
    assert_eq!(status, 200, "{v}");
    let ex = s.wait_for(&running, "cancelled").await;
    assert!(started.elapsed() < Duration::from_secs(5), "cancelling a running execution took {:?}", started.elapsed());
    assert_eq!(ex["error"]["code"], "cancelled");

    // An ended execution cannot be cancelled.
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{running}/cancel"))).await;
    assert_eq!(status, 409, "{v}");
    assert_error(&v, "conflict");

    // The freed worker runs new work; the cancelled queued one never ran.
    let (_, _, v) = send(s.post_hook("quick").json(&json!({}))).await;
    let next = v["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&next, "succeeded").await;
    assert_eq!(up.hits("/quick"), 1);
    assert_eq!(s.execution(&queued).await["status"], "cancelled");

    // A cancelled execution can be retried.
    let (status, _, v) = send(s.api(reqwest::Method::POST, &format!("/v1/executions/{queued}/retry"))).await;
    assert_eq!(status, 202, "{v}");
    s.wait_for(&queued, "succeeded").await;
    assert_eq!(up.hits("/quick"), 2);
}

const GUARD: &str = r#"
integration: guard
flows:
  - flow: runaway
    trigger: { webhook: { path: runaway, respond: { mode: sync, timeout: 20s } } }
    steps:
      - { id: spin, transform: 'last(range(1e15))' }
  - flow: quick
    trigger: { webhook: { path: quick, respond: { mode: sync, timeout: 5s } } }
    steps:
      - { id: fast, transform: '{ ok: true, n: $trigger.body.n }' }
"#;

backends!(expression_guard);
async fn expression_guard() {
    let s = TestServer::start_with(|st| st.expression_timeout = Duration::from_millis(200)).await;
    s.apply(GUARD).await;

    let started = Instant::now();
    let runaways: Vec<_> = (0..3).map(|_| tokio::spawn(send(s.post_hook("runaway").json(&json!({}))))).collect();
    // Meanwhile, other requests are served promptly.
    for n in 0..5 {
        let t = Instant::now();
        let (status, _, v) = send(s.post_hook("quick").json(&json!({ "n": n }))).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v, json!({ "ok": true, "n": n }));
        assert!(t.elapsed() < Duration::from_millis(2000), "a quick request took {:?} while runaways ran", t.elapsed());
        let t = Instant::now();
        let (status, _, _) = send(s.client.get(format!("{}/healthz", s.url))).await;
        assert_eq!(status, 200);
        assert!(t.elapsed() < Duration::from_millis(1000), "/healthz took {:?}", t.elapsed());
    }
    for r in runaways {
        let (status, _, v) = r.await.unwrap();
        assert_eq!(status, 500, "{v}");
        assert_error(&v, "execution_failed");
        assert_eq!(v["error"]["details"]["errorCode"], "expression_budget", "{v}");
        let id = v["error"]["details"]["executionId"].as_str().unwrap();
        let ex = s.wait_for(id, "failed").await;
        assert_eq!(ex["failedStep"], "spin");
        assert_eq!(ex["error"]["code"], "expression_budget");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "runaway expressions took {:?}", started.elapsed());

    // Recursive definitions are refused when applied.
    let recursive = r#"
integration: recursive
flows:
  - flow: f
    trigger: { manual: {} }
    steps:
      - { id: loop, transform: 'def f: f; f' }
"#;
    let (status, v) = s.put_integration("recursive", recursive).await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, "validation_failed");
    let problems = v["error"]["details"]["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p["path"] == "flows[0].steps[0].transform"), "{v}");
    let (status, _, _) = send(s.api(reqwest::Method::GET, "/v1/integrations/recursive")).await;
    assert_eq!(status, 404, "a refused definition is not stored");
}
