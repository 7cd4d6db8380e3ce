//! Webhook ingress over HTTP: the DESIGN example end to end, caller authentication, content
//! types, limits and routing errors, query parameters, async answers with status URLs, and
//! sync answers.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, assert_error, send};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ACME: &str = include_str!("../../../examples/acme-erp.yaml");

backends!(design_example_applies_as_written);
/// The DESIGN example applied as written (config pointing nowhere reachable).
async fn design_example_applies_as_written() {
    let s = TestServer::start().await;
    let (status, body) = s.put_integration("acme-erp", ACME).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(body["created"], true);
    assert_eq!(body["integration"], "acme-erp");
    let flows: Vec<&str> = body["flows"].as_array().unwrap().iter().map(|f| f["flow"].as_str().unwrap()).collect();
    assert_eq!(flows, ["sync-customers", "price-quote"]);
    assert_eq!(body["flows"][0]["webhookUrl"], format!("{}/hooks/default/acme/customers", s.url));

    // The same text again: unchanged.
    let (status, again) = s.put_integration("acme-erp", ACME).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["version"], 1);
    assert_eq!(again["versionId"], body["versionId"]);

    // price-quote needs no upstream: it runs as written.
    let quote =
        |qty: i64, token: &str| s.post_hook("acme/quote").bearer_auth(token).json(&json!({ "sku": "A-1", "qty": qty }));
    let (status, _, big) = send(quote(10, "quote-token")).await;
    assert_eq!(status, 201, "{big}");
    assert_eq!(big["kind"], "big");
    assert_eq!(big["total"].as_f64(), Some(125.0));
    let (status, _, small) = send(quote(2, "quote-token")).await;
    assert_eq!(status, 200, "{small}");
    assert_eq!(small["kind"], "small");
    assert_eq!(small["total"].as_f64(), Some(25.0));
    let (status, headers, denied) = send(quote(2, "wrong-token")).await;
    assert_eq!(status, 401);
    assert_error(&denied, "unauthorized");
    assert_eq!(headers["www-authenticate"], "Bearer");
}

backends!(design_example_runs_end_to_end);
/// The DESIGN example with its config defaults pointing at a mock: sync-customers runs end to
/// end, and an inactive customer is filtered.
async fn design_example_runs_end_to_end() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.on("/customers/7", MockResponse::json(200, json!({ "name": "Ann", "email": "A@X.IO", "active": true })));
    up.on("/customers/8", MockResponse::json(200, json!({ "name": "Bob", "email": "B@X.IO", "active": false })));
    up.on("/api/customers", MockResponse::json(201, json!({ "id": "p-1" })));
    let doc = ACME.replace("https://erp.acme.example", &up.url).replace("https://progix.example", &up.url);
    assert_ne!(doc, ACME, "the example's config defaults were not found");
    s.apply(&doc).await;

    let (status, headers, body) =
        send(s.post_hook("acme/customers").header("X-Api-Key", "acme_key_1").json(&json!({ "id": 7 }))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({ "id": "p-1" }));
    let id = headers["x-flowgate-execution-id"].to_str().unwrap().to_owned();

    let fetched = up.requests("/customers/7");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].method, "GET");
    assert_eq!(fetched[0].header("accept"), Some("application/json"));
    let pushed = up.requests("/api/customers");
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].method, "POST");
    assert_eq!(pushed[0].json(), json!({ "name": "Ann", "email": "a@x.io" }));
    assert_eq!(pushed[0].header("idempotency-key"), Some(format!("{id}:push").as_str()));
    assert!(pushed[0].header("content-type").unwrap_or("").starts_with("application/json"));

    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["authLabel"], "acme-prod");
    assert_eq!(ex["triggerKind"], "webhook");
    assert_eq!(ex["trigger"]["query"]["dryRun"], "false");
    assert_eq!(ex["trigger"]["headers"]["x-api-key"], "[redacted]");
    assert_eq!(ex["response"]["status"], 201);
    let steps: Vec<(&str, &str)> = ex["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stepId"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("customer", "succeeded"),
            ("mapped", "succeeded"),
            ("only-active", "succeeded"),
            ("push", "succeeded"),
            ("reply", "succeeded")
        ]
    );

    // Inactive customer: filtered, nothing pushed.
    let (status, _, body) =
        send(s.post_hook("acme/customers").header("X-Api-Key", "acme_key_1").json(&json!({ "id": 8 }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "filtered");
    let filtered_id = body["executionId"].as_str().expect("executionId").to_owned();
    assert_eq!(up.hits("/customers/8"), 1);
    assert_eq!(up.hits("/api/customers"), 1, "a filtered customer must not be pushed");
    let ex = s.wait_for(&filtered_id, "filtered").await;
    assert_eq!(ex["output"], json!({ "name": "Bob", "email": "b@x.io" }));

    // Wrong key: refused before anything runs.
    let (status, _, body) =
        send(s.post_hook("acme/customers").header("X-Api-Key", "nope-nope-nope").json(&json!({ "id": 7 }))).await;
    assert_eq!(status, 401);
    assert_error(&body, "unauthorized");
    assert_eq!(up.hits("/customers/7"), 1);
}

const AUTH: &str = r#"
integration: auth-modes
config:
  partnerKey: { type: secret, default: "partner-key-from-config" }
flows:
  - flow: open
    trigger: { webhook: { path: auth/none } }
    steps: [ { id: echo, transform: '$trigger' } ]
  - flow: header
    trigger: { webhook: { path: auth/header, auth: { header: { name: X-App, value: secret123 } } } }
    steps: [ { id: echo, transform: '$trigger' } ]
  - flow: bearer
    trigger: { webhook: { path: auth/bearer, auth: { bearer: { token: bearer-secret-1 } } } }
    steps: [ { id: echo, transform: '$trigger' } ]
  - flow: basic
    trigger: { webhook: { path: auth/basic, auth: { basic: { username: ann, password: pw-secret-9 } } } }
    steps: [ { id: echo, transform: '$trigger' } ]
  - flow: keys-header
    trigger:
      webhook:
        path: auth/keys
        auth: { apiKey: { header: X-Key, keys: [ { label: alpha, secret: alpha-key-1 }, { label: beta, secret: beta-key-2 } ] } }
    steps: [ { id: echo, transform: '$trigger' } ]
  - flow: keys-config
    trigger:
      webhook:
        path: auth/ckeys
        auth: { apiKey: { keys: [ { label: from-config, secret: "{{ $config.partnerKey }}" } ] } }
    steps: [ { id: echo, transform: '$trigger' } ]
  - flow: keys-query
    trigger:
      webhook:
        path: auth/qkeys
        auth: { apiKey: { query: key, keys: [ { label: gamma, secret: gamma-key-3 }, { label: delta, secret: delta-key-4 } ] } }
    steps: [ { id: echo, transform: '$trigger' } ]
"#;

/// Accepted with the right credential; the execution's id.
async fn accepted(s: &TestServer, req: reqwest::RequestBuilder) -> String {
    let (status, headers, body) = send(req).await;
    assert_eq!(status, 202, "{body}");
    let id = body["executionId"].as_str().expect("executionId").to_owned();
    assert_eq!(headers["x-flowgate-execution-id"].to_str().unwrap(), id);
    assert!(body["statusUrl"].as_str().unwrap().starts_with(&format!("{}/status/{id}?sig=", s.url)), "{body}");
    id
}

async fn refused(req: reqwest::RequestBuilder) -> reqwest::header::HeaderMap {
    let (status, headers, body) = send(req).await;
    assert_eq!(status, 401, "{body}");
    assert_error(&body, "unauthorized");
    headers
}

/// The stored execution must not contain `secret` anywhere.
fn assert_no_secret(ex: &Value, secret: &str) {
    assert!(!ex.to_string().contains(secret), "the secret `{secret}` is stored in the execution: {ex:#}");
}

backends!(auth_modes);
async fn auth_modes() {
    let s = TestServer::start().await;
    s.apply(AUTH).await;
    let body = json!({ "x": 1 });

    // none
    let id = accepted(&s, s.post_hook("auth/none").json(&body)).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["authLabel"], Value::Null);
    assert_eq!(ex["output"]["body"], body);

    // header
    let id = accepted(&s, s.post_hook("auth/header").header("X-App", "secret123").json(&body)).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["trigger"]["headers"]["x-app"], "[redacted]");
    assert_no_secret(&ex, "secret123");
    refused(s.post_hook("auth/header").header("X-App", "secret124").json(&body)).await;
    refused(s.post_hook("auth/header").header("X-Other", "secret123").json(&body)).await;
    refused(s.post_hook("auth/header").json(&body)).await;

    // bearer
    let id = accepted(&s, s.post_hook("auth/bearer").bearer_auth("bearer-secret-1").json(&body)).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["trigger"]["headers"]["authorization"], "[redacted]");
    assert_no_secret(&ex, "bearer-secret-1");
    let h = refused(s.post_hook("auth/bearer").bearer_auth("bearer-secret-2").json(&body)).await;
    assert_eq!(h["www-authenticate"], "Bearer");
    refused(s.post_hook("auth/bearer").json(&body)).await;
    refused(s.post_hook("auth/bearer").basic_auth("bearer-secret-1", None::<&str>).json(&body)).await;

    // basic
    let id = accepted(&s, s.post_hook("auth/basic").basic_auth("ann", Some("pw-secret-9")).json(&body)).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["trigger"]["headers"]["authorization"], "[redacted]");
    assert_no_secret(&ex, "pw-secret-9");
    let h = refused(s.post_hook("auth/basic").basic_auth("ann", Some("wrong")).json(&body)).await;
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic"), "{h:?}");
    refused(s.post_hook("auth/basic").basic_auth("bob", Some("pw-secret-9")).json(&body)).await;
    refused(s.post_hook("auth/basic").json(&body)).await;

    // API keys in a header: the label of the key used is recorded.
    let id = accepted(&s, s.post_hook("auth/keys").header("X-Key", "beta-key-2").json(&body)).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["authLabel"], "beta");
    assert_eq!(ex["trigger"]["headers"]["x-key"], "[redacted]");
    assert_no_secret(&ex, "beta-key-2");
    let id = accepted(&s, s.post_hook("auth/keys").header("X-Key", "alpha-key-1").json(&body)).await;
    assert_eq!(s.wait_for(&id, "succeeded").await["authLabel"], "alpha");
    refused(s.post_hook("auth/keys").header("X-Key", "gamma-key-3").json(&body)).await;
    refused(s.post_hook("auth/keys").header("X-Api-Key", "alpha-key-1").json(&body)).await;
    refused(s.post_hook("auth/keys").json(&body)).await;

    // A key from the config, in the default header (X-Api-Key).
    let id = accepted(&s, s.post_hook("auth/ckeys").header("X-Api-Key", "partner-key-from-config").json(&body)).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["authLabel"], "from-config");
    assert_no_secret(&ex, "partner-key-from-config");
    refused(s.post_hook("auth/ckeys").header("X-Api-Key", "{{ $config.partnerKey }}").json(&body)).await;

    // API keys in a query parameter; other parameters are kept.
    let id = accepted(&s, s.post_hook("auth/qkeys?key=delta-key-4&page=3").json(&body)).await;
    let ex = s.wait_for(&id, "succeeded").await;
    assert_eq!(ex["authLabel"], "delta");
    assert_eq!(ex["trigger"]["query"]["key"], "[redacted]");
    assert_eq!(ex["trigger"]["query"]["page"], "3");
    assert_no_secret(&ex, "delta-key-4");
    refused(s.post_hook("auth/qkeys?key=delta-key-5").json(&body)).await;
    refused(s.post_hook("auth/qkeys").header("key", "delta-key-4").json(&body)).await;
    refused(s.post_hook("auth/qkeys").json(&body)).await;

    // The listing shows the label too.
    let list = s.get_json("/v1/executions?flow=keys-query").await;
    assert_eq!(list["items"][0]["authLabel"], "delta");
}

const BODIES: &str = r#"
integration: bodies
flows:
  - flow: echo
    trigger: { webhook: { path: echo, methods: [POST, PUT], respond: { mode: sync, timeout: 10s } } }
    steps:
      - id: seen
        transform: '{ body: $trigger.body, encoding: $trigger.bodyEncoding, contentType: $trigger.contentType, method: $trigger.method }'
  - flow: size
    trigger: { webhook: { path: size, respond: { mode: sync, timeout: 10s } } }
    steps:
      - id: length
        transform: '{ length: ($trigger.body | length) }'
  - flow: dormant
    active: false
    trigger: { webhook: { path: dormant } }
    steps: [ { id: x, transform: '.' } ]
"#;

backends!(content_types);
async fn content_types() {
    let s = TestServer::start().await;
    s.apply(BODIES).await;
    let echo = |ct: &str, body: Vec<u8>| s.post_hook("echo").header("content-type", ct).body(body);

    let (status, _, v) = send(s.post_hook("echo").json(&json!({ "a": [1, 2], "b": { "c": null } }))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["body"], json!({ "a": [1, 2], "b": { "c": null } }));
    assert_eq!(v["encoding"], Value::Null);
    assert_eq!(v["method"], "POST");

    let (status, _, v) = send(echo("application/json; charset=utf-8", br#"[1,"two"]"#.to_vec())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["body"], json!([1, "two"]));
    let (status, _, v) = send(echo("application/vnd.api+json", br#"{"data":{"id":"1"}}"#.to_vec())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["body"], json!({ "data": { "id": "1" } }));

    let (status, _, v) =
        send(echo("application/x-www-form-urlencoded", b"name=Ann+Lee&tag=a&tag=b&e=%C3%A9".to_vec())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["body"], json!({ "name": "Ann Lee", "tag": ["a", "b"], "e": "é" }));

    let (status, _, v) = send(echo("text/plain", b"hello {not json}".to_vec())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["body"], "hello {not json}");
    assert_eq!(v["contentType"], "text/plain");

    let (status, _, v) = send(echo("application/xml", b"<order id=\"1\"><qty>2</qty></order>".to_vec())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["body"], "<order id=\"1\"><qty>2</qty></order>");
    assert_eq!(v["encoding"], Value::Null);

    let (status, _, v) = send(echo("application/octet-stream", vec![0, 159, 146, 150, 255])).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["body"], "AJ+Slv8=");
    assert_eq!(v["encoding"], "base64");

    let (status, _, v) = send(s.client.put(s.hook("echo")).header("content-type", "application/json").body("{}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["method"], "PUT");

    // Invalid JSON: 400, and no execution is started.
    let before = s.get_json("/v1/executions?flow=echo").await["items"].as_array().unwrap().len();
    let (status, _, v) = send(echo("application/json", b"{\"a\": 1,".to_vec())).await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "invalid_body");
    let after = s.get_json("/v1/executions?flow=echo").await["items"].as_array().unwrap().len();
    assert_eq!(before, after, "an invalid body must not start an execution");

    // JSON bodies are checked without building a tree and kept as received (issue 12): the
    // same checks hold — not UTF-8, nested deeper than the journal reads back — and a
    // body with extra whitespace reaches the flow as the same value.
    for (bad, says) in [
        (vec![b'"', 0xff, b'"'], "not valid JSON"),
        (format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes(), "nests 200 levels deep"),
        (format!("{}1{}", "[".repeat(127), "]".repeat(127)).into_bytes(), "the limit is 126"),
        (b"[1, 2] 3".to_vec(), "not valid JSON"),
    ] {
        let (status, _, v) = send(echo("application/json", bad)).await;
        assert_eq!(status, 400, "{v}");
        assert_error(&v, "invalid_body");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{v}");
    }
    // As deep as allowed: accepted, and the flow runs on it.
    let deepest = format!("{}1{}", "[".repeat(126), "]".repeat(126));
    let (status, _, v) = send(echo("application/json", deepest.into_bytes())).await;
    assert_eq!(status, 200, "{v}");
    let (status, _, v) =
        send(echo("application/json", b"  { \"a\" : [1, 2 ,3] ,\n \"b\": \"\\u00e9\" }  ".to_vec())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["body"], json!({ "a": [1, 2, 3], "b": "é" }));
    let after = s.get_json("/v1/executions?flow=echo").await["items"].as_array().unwrap().len();
    assert_eq!(after, before + 2, "only the valid ones started executions");

    // Larger than axum's 2 MB default, within Flowgate's 10 MB default limit.
    let big = "x".repeat(3 * 1024 * 1024);
    let (status, _, v) = send(s.post_hook("size").header("content-type", "text/plain").body(big)).await;
    assert_eq!(status, 200, "a 3 MB body must be accepted under the 10 MB default: {v}");
    assert_eq!(v["length"], 3 * 1024 * 1024);
}

backends!(limits_and_routing_errors);
async fn limits_and_routing_errors() {
    let s = TestServer::start_with(|st| st.max_body_bytes = 1024).await;
    s.apply(BODIES).await;

    let (status, _, v) = send(s.post_hook("size").header("content-type", "text/plain").body("y".repeat(1000))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["length"], 1000);
    let (status, _, v) = send(s.post_hook("size").header("content-type", "text/plain").body("y".repeat(4096))).await;
    assert_eq!(status, 413, "{v}");
    assert_error(&v, "payload_too_large");

    // Unknown path, unknown tenant.
    let (status, _, v) = send(s.post_hook("nope").json(&json!({}))).await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "not_found");
    let (status, _, v) = send(s.client.post(format!("{}/hooks/other-tenant/echo", s.url)).json(&json!({}))).await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "not_found");

    // Wrong method: 405 with Allow.
    let (status, headers, v) = send(s.client.get(s.hook("echo"))).await;
    assert_eq!(status, 405, "{v}");
    assert_error(&v, "method_not_allowed");
    assert_eq!(headers["allow"], "POST, PUT");
    let (status, headers, v) = send(s.client.delete(s.hook("size"))).await;
    assert_eq!(status, 405, "{v}");
    assert_eq!(headers["allow"], "POST");

    // Inactive flow: 404.
    let (status, _, v) = send(s.post_hook("dormant").json(&json!({}))).await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "not_found");

    // Unknown routes outside /hooks are JSON 404s too.
    let (status, _, v) = send(s.client.get(format!("{}/no/such/route", s.url))).await;
    assert_eq!(status, 404);
    assert_error(&v, "not_found");
}

backends!(burst_of_webhooks);
/// Many concurrent events: every one is accepted (group commit) and runs.
async fn burst_of_webhooks() {
    let s = TestServer::start().await;
    s.apply(ASYNC).await;
    let n = 80;
    let calls: Vec<_> =
        (0..n).map(|i| tokio::spawn(send(s.post_hook("later").json(&json!({ "a": i, "b": 1 }))))).collect();
    let mut ids = std::collections::HashSet::new();
    for c in calls {
        let (status, _, v) = c.await.unwrap();
        assert_eq!(status, 202, "{v}");
        ids.insert(v["executionId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), n);
    let done = common::eventually("every execution to succeed", || async {
        let v = s.get_json("/v1/executions?flow=later&status=succeeded&limit=500").await;
        let items = v["items"].as_array().unwrap().clone();
        (items.len() == n).then_some(items)
    })
    .await;
    assert!(done.iter().all(|i| ids.contains(i["id"].as_str().unwrap())));
}

const QUERY: &str = r#"
integration: query-params
flows:
  - flow: q
    trigger:
      webhook:
        path: q
        query: { dryRun: { default: "false" }, page: { required: true } }
        respond: { mode: sync, timeout: 10s }
    steps: [ { id: seen, transform: '$trigger.query' } ]
"#;

backends!(query_parameters);
async fn query_parameters() {
    let s = TestServer::start().await;
    s.apply(QUERY).await;
    let (status, _, v) = send(s.post_hook("q?page=2&extra=x%20y").json(&json!({}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({ "page": "2", "extra": "x y", "dryRun": "false" }));

    let (status, _, v) = send(s.post_hook("q?page=1&dryRun=true").json(&json!({}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["dryRun"], "true");

    let (status, _, v) = send(s.post_hook("q?page=1&page=2").json(&json!({}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["page"], json!(["1", "2"]));

    let (status, _, v) = send(s.post_hook("q?dryRun=true").json(&json!({}))).await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "bad_request");
    assert_eq!(v["error"]["details"]["missing"], json!(["page"]));
}

const ASYNC: &str = r#"
integration: async-hooks
flows:
  - flow: later
    trigger: { webhook: { path: later } }
    steps:
      - { id: sum, transform: '{ total: ($trigger.body.a + $trigger.body.b) }' }
"#;

backends!(async_answer_and_status_url);
async fn async_answer_and_status_url() {
    let s = TestServer::start().await;
    s.apply(ASYNC).await;
    let (status, headers, v) = send(s.post_hook("later").json(&json!({ "a": 2, "b": 3 }))).await;
    assert_eq!(status, 202, "{v}");
    let id = v["executionId"].as_str().expect("executionId").to_owned();
    assert_eq!(headers["x-flowgate-execution-id"].to_str().unwrap(), id);
    let status_url = v["statusUrl"].as_str().expect("statusUrl").to_owned();
    assert!(status_url.starts_with(&format!("{}/status/{id}?sig=", s.url)), "{status_url}");

    // The status URL works without a token.
    let result = common::eventually("the status URL to show the result", || async {
        let (code, _, v) = send(s.client.get(&status_url)).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["executionId"], id.as_str());
        (v["status"] == "succeeded").then_some(v)
    })
    .await;
    assert_eq!(result["result"], json!({ "total": 5 }));
    assert!(result["finishedAt"].is_string());
    assert!(
        result.get("trigger").is_none() && result.get("steps").is_none(),
        "no input or journal at the status URL: {result}"
    );
    assert_eq!(s.execution(&id).await["statusUrl"], status_url.as_str());

    // Tampered, missing or borrowed signatures: 404.
    let mut tampered = status_url.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (code, _, v) = send(s.client.get(&tampered)).await;
    assert_eq!(code, 404, "{v}");
    assert_error(&v, "not_found");
    let (code, _, _) = send(s.client.get(format!("{}/status/{id}", s.url))).await;
    assert_eq!(code, 404);
    let sig = status_url.split("sig=").nth(1).unwrap();
    let (_, _, other) = send(s.post_hook("later").json(&json!({ "a": 1, "b": 1 }))).await;
    let other_id = other["executionId"].as_str().unwrap();
    let (code, _, _) = send(s.client.get(format!("{}/status/{other_id}?sig={sig}", s.url))).await;
    assert_eq!(code, 404, "a signature is valid for its own execution only");
}

const SYNC: &str = r#"
integration: sync-hooks
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: responds
    trigger: { webhook: { path: responds, respond: { mode: sync, timeout: 10s } } }
    steps:
      - id: reply
        respond:
          status: 207
          headers: { X-Order: "ord-{{ .body.n }}", X-Kind: "{{ .body.kind }}" }
          body: { order: "{{ .body.n }}", doubled: "{{ .body.n * 2 }}" }
  - flow: text-reply
    trigger: { webhook: { path: text-reply, respond: { mode: sync, timeout: 10s } } }
    steps:
      - { id: reply, respond: { status: 200, body: "hello {{ .body.name }}" } }
  - flow: early
    trigger: { webhook: { path: early, respond: { mode: sync, timeout: 10s } } }
    steps:
      - { id: reply, respond: { status: 200, body: { accepted: true } } }
      - { id: slow, http: { url: "{{ $config.base }}/slow-after-respond" } }
  - flow: last-output
    trigger: { webhook: { path: last-output, respond: { mode: sync, timeout: 10s } } }
    steps:
      - { id: one, transform: '{ n: $trigger.body.n }' }
      - { id: two, transform: '. + { squared: (.n * .n) }' }
  - flow: fails
    trigger: { webhook: { path: fails, respond: { mode: sync, timeout: 10s } } }
    steps:
      - { id: boom, transform: 'error("boom \($trigger.body.n)")' }
  - flow: too-slow
    trigger: { webhook: { path: too-slow, respond: { mode: sync, timeout: 300ms } } }
    steps:
      - { id: wait, http: { url: "{{ $config.base }}/slow" } }
      - { id: reply, respond: { status: 200, body: { late: true } } }
"#;

backends!(sync_answers);
async fn sync_answers() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.on("/slow", MockResponse::json(200, json!({ "slow": true })).delay(Duration::from_secs(3)));
    up.on("/slow-after-respond", MockResponse::json(200, json!({})).delay(Duration::from_secs(3)));
    s.apply(&SYNC.replace("BASE", &up.url)).await;

    // Status, headers and body of the respond step.
    let (status, headers, v) = send(s.post_hook("responds").json(&json!({ "n": 21, "kind": "rush" }))).await;
    assert_eq!(status, 207, "{v}");
    assert_eq!(headers["x-order"], "ord-21");
    assert_eq!(headers["x-kind"], "rush");
    assert_eq!(v, json!({ "order": 21, "doubled": 42 }));
    assert!(headers.contains_key("x-flowgate-execution-id"));

    // A string body is sent as text.
    let (status, headers, v) = send(s.post_hook("text-reply").json(&json!({ "name": "Ann" }))).await;
    assert_eq!(status, 200);
    assert_eq!(v, "hello Ann");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain"), "{headers:?}");

    // The caller is answered when the respond step runs, not when the execution ends.
    let started = Instant::now();
    let (status, headers, v) = send(s.post_hook("early").json(&json!({}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({ "accepted": true }));
    assert!(started.elapsed() < Duration::from_millis(2500), "answered only after {:?}", started.elapsed());
    let early_id = headers["x-flowgate-execution-id"].to_str().unwrap().to_owned();
    assert_eq!(s.execution(&early_id).await["status"], "running");

    // No respond step: 200 with the last step's output.
    let (status, _, v) = send(s.post_hook("last-output").json(&json!({ "n": 7 }))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({ "n": 7, "squared": 49 }));

    // A failed execution: 500 with a summary.
    let (status, headers, v) = send(s.post_hook("fails").json(&json!({ "n": 3 }))).await;
    assert_eq!(status, 500, "{v}");
    assert_error(&v, "execution_failed");
    let id = v["error"]["details"]["executionId"].as_str().expect("details.executionId").to_owned();
    assert_eq!(headers["x-flowgate-execution-id"].to_str().unwrap(), id);
    // Where it failed, not the step's message (it may carry secrets; the API has it).
    assert_eq!(v["error"]["details"]["step"], "boom", "{v}");
    assert_eq!(v["error"]["details"]["errorCode"], "expression_error", "{v}");
    assert!(!v.to_string().contains("boom 3"), "{v}");
    let ex = s.wait_for(&id, "failed").await;
    assert_eq!(ex["failedStep"], "boom");
    assert_eq!(ex["error"]["code"], "expression_error");

    // Longer than respond.timeout: 202 with a status URL, and the execution goes on.
    let started = Instant::now();
    let (status, _, v) = send(s.post_hook("too-slow").json(&json!({}))).await;
    let waited = started.elapsed();
    assert_eq!(status, 202, "{v}");
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_millis(2500), "answered after {waited:?}");
    let id = v["executionId"].as_str().expect("executionId").to_owned();
    let status_url = v["statusUrl"].as_str().expect("statusUrl").to_owned();
    s.wait_for(&id, "succeeded").await;
    let (code, _, st) = send(s.client.get(&status_url)).await;
    assert_eq!(code, 200);
    assert_eq!(st["status"], "succeeded");
    assert_eq!(st["result"], json!({ "late": true }));
    assert_eq!(st["response"]["status"], 200);

    s.wait_for(&early_id, "succeeded").await;
}

const LEAKY: &str = r#"
integration: leaky
config:
  base: { type: string, default: "BASE" }
  upstreamToken: { type: secret, default: "s3cr3t-upstream-token" }
flows:
  - flow: call
    trigger: { webhook: { path: leaky, respond: { mode: sync, timeout: 10s } } }
    steps:
      - id: call
        http: { url: "{{ $config.base }}/reject?token={{ $config.upstreamToken }}" }
        retry: { attempts: 1 }
"#;

backends!(issue_2_failed_sync_answer_does_not_leak_config_secrets);
/// Regression (security): when a step failed, the sync webhook's 500 answer and the unauthenticated
/// status URL carry the step's raw error message, which for an http step includes the full
/// upstream URL, so a `secret` config value used in that URL is handed to the webhook's
/// caller. `error.rs` promises that 5xx answers never return the cause, and config secrets
/// are "never shown back".
async fn issue_2_failed_sync_answer_does_not_leak_config_secrets() {
    let s = TestServer::start().await;
    let up = MockUpstream::start().await;
    up.on("/reject", MockResponse::text(400, "rejected"));
    s.apply(&LEAKY.replace("BASE", &up.url)).await;

    let (status, _, v) = send(s.post_hook("leaky").json(&json!({}))).await;
    assert_eq!(status, 500, "{v}");
    assert_error(&v, "execution_failed");
    assert_eq!(up.requests("/reject")[0].query.as_deref(), Some("token=s3cr3t-upstream-token"));
    let id = v["error"]["details"]["executionId"].as_str().unwrap().to_owned();
    let status_url = s.execution(&id).await["statusUrl"].as_str().unwrap().to_owned();
    let (_, _, st) = send(s.client.get(&status_url)).await;
    assert!(!v.to_string().contains("s3cr3t-upstream-token"), "the sync answer leaks a config secret: {v}");
    assert!(!st.to_string().contains("s3cr3t-upstream-token"), "the status URL leaks a config secret: {st}");
}

/// A flow answering with who it is, at `path`.
fn answering(flow: &str, path: &str, by: &str) -> String {
    format!(
        "  - flow: {flow}\n    trigger:\n      webhook: {{ path: {path}, respond: {{ mode: sync, timeout: 5s }} }}\n    steps:\n      - id: reply\n        respond: {{ status: 200, body: {{ by: {by} }} }}\n"
    )
}

/// Which flow answers at `path` (`None`: 404).
async fn answers(s: &TestServer, path: &str) -> Option<String> {
    let (status, _, v) = send(s.post_hook(path).json(&json!({}))).await;
    match status {
        404 => None,
        200 => Some(v["by"].as_str().expect("by").to_owned()),
        other => panic!("POST {path}: {other} {v}"),
    }
}

backends!(issue_16_routes_follow_every_change);
/// Issue 16: an apply changes only its own integration's routes (the table is no longer
/// rebuilt from every integration); every way a route changes is seen at once, and again
/// after a restart (which builds the table once from all integrations).
async fn issue_16_routes_follow_every_change() {
    let s = TestServer::start().await;
    let a1 = format!(
        "integration: ia\nflows:\n{}{}",
        answering("one", "r/one", "a-one"),
        answering("two", "r/two", "a-two")
    );
    let b1 = format!("integration: ib\nflows:\n{}", answering("one", "r/b", "b-one"));
    s.apply(&a1).await;
    s.apply(&b1).await;
    assert_eq!(answers(&s, "r/one").await.as_deref(), Some("a-one"));
    assert_eq!(answers(&s, "r/two").await.as_deref(), Some("a-two"));
    assert_eq!(answers(&s, "r/b").await.as_deref(), Some("b-one"));

    // A new version moves one path and drops a flow: the old paths go, the other integration stays.
    let a2 = format!("integration: ia\nflows:\n{}", answering("one", "r/uno", "a-uno"));
    s.apply(&a2).await;
    assert_eq!(answers(&s, "r/one").await, None);
    assert_eq!(answers(&s, "r/two").await, None);
    assert_eq!(answers(&s, "r/uno").await.as_deref(), Some("a-uno"));
    assert_eq!(answers(&s, "r/b").await.as_deref(), Some("b-one"));

    // The freed path is taken by the other integration.
    let b2 =
        format!("integration: ib\nflows:\n{}{}", answering("one", "r/b", "b-one"), answering("two", "r/one", "b-two"));
    s.apply(&b2).await;
    assert_eq!(answers(&s, "r/one").await.as_deref(), Some("b-two"));

    // A switch turns one flow's route off and on, and nothing else.
    let (status, _, v) = send(s.api(reqwest::Method::POST, "/v1/integrations/ia/flows/one/deactivate")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(answers(&s, "r/uno").await, None);
    assert_eq!(answers(&s, "r/one").await.as_deref(), Some("b-two"));
    let (status, _, v) = send(s.api(reqwest::Method::POST, "/v1/integrations/ia/flows/one/activate")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(answers(&s, "r/uno").await.as_deref(), Some("a-uno"));

    // Re-applying an integration unchanged keeps its routes.
    s.apply(&b2).await;
    assert_eq!(answers(&s, "r/b").await.as_deref(), Some("b-one"));

    // Deleting one leaves the other's routes.
    let (status, _, v) = send(s.api(reqwest::Method::DELETE, "/v1/integrations/ia")).await;
    assert!(status == 200 || status == 204, "{status} {v}");
    assert_eq!(answers(&s, "r/uno").await, None);
    assert_eq!(answers(&s, "r/b").await.as_deref(), Some("b-one"));
    assert_eq!(answers(&s, "r/one").await.as_deref(), Some("b-two"));

    // A restart builds the same table from the stored integrations.
    let s = s.restart(|_| {}).await;
    assert_eq!(answers(&s, "r/uno").await, None);
    assert_eq!(answers(&s, "r/b").await.as_deref(), Some("b-one"));
    assert_eq!(answers(&s, "r/one").await.as_deref(), Some("b-two"));
}
