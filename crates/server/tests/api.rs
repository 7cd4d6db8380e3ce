//! The REST API over HTTP: authentication, integrations (apply, read, delete, validation
//! problems, path clashes), executions listing, tokens, keys, the OpenAPI document,
//! operations endpoints, and manual/test runs.

#[macro_use]
mod common;

use common::{TOKEN, TestServer, assert_error, send};
use reqwest::Method;
use serde_json::{Value, json};

const SIMPLE: &str = r#"
integration: simple
name: Simple one
description: For API tests
flows:
  - flow: hook
    name: The hook
    trigger: { webhook: { path: simple/in, query: { mode: { default: "full" } } } }
    steps:
      - { id: shape, transform: '{ got: $trigger.body, mode: $trigger.query.mode, kind: $execution.trigger }' }
  - flow: by-hand
    trigger: { manual: {} }
    steps:
      - { id: note, log: "manual run for {{ .body.who }}" }
      - { id: greet, transform: '{ hello: .body.who }' }
"#;

backends!(api_requires_a_valid_token);
async fn api_requires_a_valid_token() {
    let s = TestServer::start().await;
    for path in ["/v1/integrations", "/v1/executions", "/v1/tokens", "/v1/executions/x"] {
        let (status, headers, v) = send(s.client.get(format!("{}{path}", s.url))).await;
        assert_eq!(status, 401, "{path}: {v}");
        assert_error(&v, "unauthorized");
        assert_eq!(headers["www-authenticate"], "Bearer");
        let (status, _, v) = send(s.client.get(format!("{}{path}", s.url)).bearer_auth("fgt_not_a_real_token")).await;
        assert_eq!(status, 401, "{path}: {v}");
        assert_error(&v, "unauthorized");
        let (status, _, _) = send(s.client.get(format!("{}{path}", s.url)).basic_auth("x", Some(TOKEN))).await;
        assert_eq!(status, 401, "{path}: a basic credential is not a token");
    }
    let (status, _, v) = send(s.client.put(format!("{}/v1/integrations/simple", s.url)).body(SIMPLE)).await;
    assert_eq!(status, 401, "{v}");
    let (status, _, v) = send(s.api(Method::GET, "/v1/integrations")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["items"], json!([]));
}

backends!(integrations_lifecycle);
async fn integrations_lifecycle() {
    let s = TestServer::start().await;
    let applied = s.apply(SIMPLE).await;
    assert_eq!(applied["version"], 1);
    assert_eq!(applied["name"], "Simple one");

    let list = s.get_json("/v1/integrations").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["integration"], "simple");
    assert_eq!(items[0]["flows"][0]["webhookUrl"], format!("{}/hooks/default/simple/in", s.url));
    assert_eq!(items[0]["flows"][1]["trigger"], "manual");
    assert_eq!(items[0]["flows"][1]["webhookUrl"], Value::Null);

    let one = s.get_json("/v1/integrations/simple").await;
    assert_eq!(one["source"], SIMPLE);
    assert_eq!(one["format"], "yaml");
    assert_eq!(one["description"], "For API tests");
    assert_eq!(one["document"]["flows"][0]["flow"], "hook");

    let flow = s.get_json("/v1/integrations/simple/flows/hook").await;
    assert_eq!(flow["trigger"]["kind"], "webhook");
    assert_eq!(flow["trigger"]["path"], "simple/in");
    assert_eq!(flow["trigger"]["auth"], "none");
    assert_eq!(flow["webhookUrl"], format!("{}/hooks/default/simple/in", s.url));
    assert_eq!(flow["lastRunStatus"], Value::Null);
    let (status, _, v) = send(s.api(Method::GET, "/v1/integrations/simple/flows/nope")).await;
    assert_eq!(status, 404, "{v}");
    let (status, _, v) = send(s.api(Method::GET, "/v1/integrations/nope")).await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "not_found");

    // A changed document is a new version.
    let changed = SIMPLE.replace("For API tests", "For API tests, v2");
    let (status, v) = s.put_integration("simple", &changed).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(s.get_json("/v1/integrations/simple").await["version"], 2);

    // The webhook answers…
    let (status, _, v) = send(s.post_hook("simple/in").json(&json!({ "a": 1 }))).await;
    assert_eq!(status, 202, "{v}");
    let ex = s.wait_for(v["executionId"].as_str().unwrap(), "succeeded").await;
    assert_eq!(ex["version"], 2);
    assert_eq!(ex["output"], json!({ "got": { "a": 1 }, "mode": "full", "kind": "webhook" }));

    // …until the integration is deleted.
    let (status, _, _) = send(s.api(Method::DELETE, "/v1/integrations/simple")).await;
    assert_eq!(status, 204);
    let (status, _, v) = send(s.post_hook("simple/in").json(&json!({ "a": 1 }))).await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "not_found");
    let (status, _, _) = send(s.api(Method::GET, "/v1/integrations/simple")).await;
    assert_eq!(status, 404);
    assert_eq!(s.get_json("/v1/integrations").await["items"], json!([]));
    let (status, _, v) = send(s.api(Method::DELETE, "/v1/integrations/simple")).await;
    assert_eq!(status, 404, "{v}");
    // Its history stays.
    assert_eq!(s.execution(ex["id"].as_str().unwrap()).await["status"], "succeeded");

    // Applying again brings the webhook back.
    let (status, v) = s.put_integration("simple", SIMPLE).await;
    assert_eq!(status, 201, "{v}");
    let (status, _, v) = send(s.post_hook("simple/in").json(&json!({}))).await;
    assert_eq!(status, 202, "{v}");
}

backends!(put_errors);
async fn put_errors() {
    let s = TestServer::start().await;

    // The URL's slug must match the document's.
    let (status, v) = s.put_integration("other-slug", SIMPLE).await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, "validation_failed");

    // Every problem, located.
    let broken = r#"integration: broken
flows:
  - flow: f
    trigger: { manual: {} }
    colour: blue
    steps:
      - id: b
        transform: '.x |'
      - id: a
        transfrom: '.'
      - id: b
        log: "hi"
"#;
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).expect(needle) as u64 + 1;
    let (status, v) = s.put_integration("broken", broken).await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, "validation_failed");
    let problems = v["error"]["details"]["problems"].as_array().expect("details.problems");
    let find = |path: &str| -> &Value {
        problems.iter().find(|p| p["path"] == path).unwrap_or_else(|| panic!("no problem at {path}: {v:#}"))
    };
    for p in problems {
        assert!(p["line"].as_u64().is_some_and(|l| l >= 1), "problem without a line: {p}");
        assert!(p["column"].as_u64().is_some_and(|c| c >= 1), "problem without a column: {p}");
        assert!(p["message"].as_str().is_some_and(|m| !m.is_empty()), "problem without a message: {p}");
    }
    let unknown_key = find("flows[0].colour");
    assert!(unknown_key["message"].as_str().unwrap().contains("unknown key"), "{unknown_key}");
    assert_eq!(unknown_key["line"], line_of("colour"));
    let unknown_kind = find("flows[0].steps[1].transfrom");
    assert!(unknown_kind["message"].as_str().unwrap().contains("did you mean `transform`"), "{unknown_kind}");
    assert_eq!(unknown_kind["line"], line_of("transfrom"));
    let bad_jq = find("flows[0].steps[0].transform");
    assert!(bad_jq["message"].as_str().unwrap().contains("does not compile"), "{bad_jq}");
    assert_eq!(bad_jq["line"], line_of(".x |"));
    let dup = find("flows[0].steps[2].id");
    assert!(dup["message"].as_str().unwrap().contains("duplicate step id"), "{dup}");
    assert_eq!(
        dup["line"],
        broken.lines().enumerate().filter(|(_, l)| l.contains("- id: b")).nth(1).unwrap().0 as u64 + 1
    );
    assert_eq!(problems.len(), 4, "{v:#}");
    let (status, _, _) = send(s.api(Method::GET, "/v1/integrations/broken")).await;
    assert_eq!(status, 404, "an invalid definition is not stored");

    // Not YAML at all.
    let (status, v) = s.put_integration("broken", "integration: [unclosed").await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["details"]["problems"][0]["line"].as_u64().is_some(), "{v}");

    // JSON definitions work too.
    let json_doc = json!({ "integration": "as-json", "flows": [ { "flow": "f", "trigger": { "manual": {} }, "steps": [ { "id": "x", "transform": "." } ] } ] });
    let (status, _, v) = send(s.api(Method::PUT, "/v1/integrations/as-json").json(&json_doc)).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(s.get_json("/v1/integrations/as-json").await["format"], "json");

    // A webhook path held by another integration of the tenant.
    s.apply("integration: first\nflows:\n  - flow: f\n    trigger: { webhook: { path: shared/path } }\n    steps: [ { id: x, transform: '.' } ]\n").await;
    let second = "integration: second\nflows:\n  - flow: g\n    trigger: { webhook: { path: /shared/path/ } }\n    steps: [ { id: x, transform: '.' } ]\n";
    let (status, v) = s.put_integration("second", second).await;
    assert_eq!(status, 409, "{v}");
    assert_error(&v, "conflict");
    assert!(v["error"]["message"].as_str().unwrap().contains("first"), "{v}");
    let (status, _, _) = send(s.api(Method::GET, "/v1/integrations/second")).await;
    assert_eq!(status, 404);
    let (status, v) = s.put_integration("second", &second.replace("/shared/path/", "other/path")).await;
    assert_eq!(status, 201, "{v}");
}

backends!(issue_2_problem_paths_stay_put_after_an_undecodable_step);
/// Regression: a step that cannot be decoded (here an unknown kind) is dropped from the list before
/// the remaining steps are compiled, so the problems of every later step are reported at the
/// wrong index, path, line and column (here the bad jq of steps[1] is blamed on steps[0]).
async fn issue_2_problem_paths_stay_put_after_an_undecodable_step() {
    let s = TestServer::start().await;
    let doc = r#"integration: shifted
flows:
  - flow: f
    trigger: { manual: {} }
    steps:
      - id: a
        transfrom: '.'
      - id: b
        transform: '.x |'
"#;
    let (status, v) = s.put_integration("shifted", doc).await;
    assert_eq!(status, 422, "{v}");
    let problems = v["error"]["details"]["problems"].as_array().expect("details.problems");
    let bad_jq = problems
        .iter()
        .find(|p| p["message"].as_str().unwrap_or("").contains("does not compile"))
        .unwrap_or_else(|| panic!("the bad jq is not reported: {v:#}"));
    assert_eq!(bad_jq["path"], "flows[0].steps[1].transform", "{v:#}");
    assert_eq!(bad_jq["line"], 9, "{v:#}");
}

backends!(validate_endpoint);
async fn validate_endpoint() {
    let s = TestServer::start().await;
    let (status, _, v) =
        send(s.api(Method::POST, "/v1/validate").header("content-type", "application/yaml").body(SIMPLE)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["integration"], "simple");
    assert_eq!(
        v["flows"],
        json!([
            { "flow": "hook", "name": "The hook", "trigger": "webhook", "steps": 1 },
            { "flow": "by-hand", "name": null, "trigger": "manual", "steps": 2 }
        ])
    );
    let (status, _, _) = send(s.api(Method::GET, "/v1/integrations/simple")).await;
    assert_eq!(status, 404, "validate must not store");

    let bad = SIMPLE.replace("transform: '{ got", "transform: '{{ got");
    let (status, _, v) =
        send(s.api(Method::POST, "/v1/validate").header("content-type", "application/yaml").body(bad)).await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, "validation_failed");
    assert_eq!(v["error"]["details"]["problems"][0]["path"], "flows[0].steps[0].transform");

    // A dotted reference to an id with a hyphen: the bracket form is suggested.
    let dotted = SIMPLE.replace("transform: '{ hello: .body.who }'", "transform: '$steps.only-active'");
    let (status, _, v) =
        send(s.api(Method::POST, "/v1/validate").header("content-type", "application/yaml").body(dotted)).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["details"]["problems"][0]["message"].as_str().unwrap().contains(r#"$steps["only-active"]"#),
        "{v}"
    );

    let (status, _, v) = send(s.client.post(format!("{}/v1/validate", s.url)).body(SIMPLE)).await;
    assert_eq!(status, 401, "{v}");
}

const PAGING: &str = r#"
integration: paging
flows:
  - flow: p
    trigger: { manual: {} }
    steps:
      - { id: maybe, transform: 'if .body.fail then error("asked to fail") else .body end' }
  - flow: q
    trigger: { manual: {} }
    steps: [ { id: x, transform: '.body' } ]
"#;

backends!(executions_listing);
async fn executions_listing() {
    let s = TestServer::start().await;
    s.apply(PAGING).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = s.run_flow("paging", "p", json!({ "i": i, "fail": i % 2 == 1 })).await;
        ids.push(r["executionId"].as_str().unwrap().to_owned());
    }
    let r = s.run_flow("paging", "q", json!({ "i": 5 })).await;
    ids.push(r["executionId"].as_str().unwrap().to_owned());
    ids.reverse(); // newest first

    // Pages of two, newest first, every execution once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/executions?limit=2&cursor={c}"),
            None => "/v1/executions?limit=2".to_owned(),
        };
        let page = s.get_json(&path).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let items = |v: &Value| v["items"].as_array().unwrap().clone();
    let p = items(&s.get_json("/v1/executions?flow=p").await);
    assert_eq!(p.len(), 5);
    assert!(p.iter().all(|i| i["flow"] == "p" && i["integration"] == "paging"));
    let failed = items(&s.get_json("/v1/executions?flow=p&status=failed").await);
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|i| i["status"] == "failed" && i["failedStep"] == "maybe"));
    assert_eq!(items(&s.get_json("/v1/executions?status=succeeded").await).len(), 4);
    assert_eq!(items(&s.get_json("/v1/executions?integration=paging&flow=q").await).len(), 1);
    assert_eq!(items(&s.get_json("/v1/executions?integration=nope").await).len(), 0);
    let page = s.get_json("/v1/executions?limit=10").await;
    assert_eq!(page["nextCursor"], Value::Null, "{page}");

    let (status, _, v) = send(s.api(Method::GET, "/v1/executions?status=bogus")).await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "bad_request");
    let (status, _, v) = send(s.api(Method::GET, "/v1/executions?cursor=abc")).await;
    assert_eq!(status, 400, "{v}");
    let (status, _, v) = send(s.api(Method::GET, "/v1/executions?limit=many")).await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "bad_request");
    let (status, _, v) = send(s.api(Method::GET, "/v1/executions/does-not-exist")).await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "not_found");
}

backends!(tokens_and_keys);
async fn tokens_and_keys() {
    let s = TestServer::start().await;
    let (status, _, created) = send(s.api(Method::POST, "/v1/tokens").json(&json!({ "name": "ci" }))).await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("fgt_") && token.len() > 40, "{token}");
    assert_eq!(created["name"], "ci");
    assert_eq!(created["tenant"], "default");

    let (status, _, _) = send(s.client.get(format!("{}/v1/integrations", s.url)).bearer_auth(&token)).await;
    assert_eq!(status, 200, "the new token works");

    let list = s.get_json("/v1/tokens").await;
    assert!(!list.to_string().contains(&token), "the token is shown once only: {list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let mine = items.iter().find(|t| t["id"] == id.as_str()).expect("listed");
    assert_eq!(mine["name"], "ci");
    assert_eq!(mine["current"], false);
    assert_eq!(mine["revokedAt"], Value::Null);
    assert!(token.starts_with(mine["prefix"].as_str().unwrap()));
    assert!(items.iter().any(|t| t["name"] == "bootstrap" && t["current"] == true), "{list}");

    let (status, _, _) = send(s.api(Method::DELETE, &format!("/v1/tokens/{id}"))).await;
    assert_eq!(status, 204);
    let (status, _, v) = send(s.client.get(format!("{}/v1/integrations", s.url)).bearer_auth(&token)).await;
    assert_eq!(status, 401, "a revoked token must not work: {v}");
    assert_error(&v, "unauthorized");
    let list = s.get_json("/v1/tokens").await;
    let mine =
        list["items"].as_array().unwrap().iter().find(|t| t["id"] == id.as_str()).cloned().expect("still listed");
    assert!(mine["revokedAt"].is_string(), "{mine}");
    let (status, _, v) = send(s.api(Method::DELETE, &format!("/v1/tokens/{id}"))).await;
    assert_eq!(status, 404, "{v}");

    let (status, _, v) = send(s.api(Method::POST, "/v1/tokens").json(&json!({}))).await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "invalid_body");
    let (status, _, v) = send(s.api(Method::POST, "/v1/tokens").json(&json!({ "name": "  " }))).await;
    assert_eq!(status, 400, "{v}");
    let (status, _, v) = send(s.api(Method::POST, "/v1/tokens").json(&json!({ "name": "x", "admin": true }))).await;
    assert_eq!(status, 400, "unknown fields are refused: {v}");

    let (status, _, k1) = send(s.api(Method::POST, "/v1/keys")).await;
    assert_eq!(status, 200, "{k1}");
    let (_, _, k2) = send(s.api(Method::POST, "/v1/keys")).await;
    let (k1, k2) = (k1["key"].as_str().unwrap(), k2["key"].as_str().unwrap());
    assert!(k1.starts_with("fgk_") && k1.len() >= 40, "{k1}");
    assert_ne!(k1, k2);
    let (status, _, _) = send(s.client.post(format!("{}/v1/keys", s.url))).await;
    assert_eq!(status, 401);
}

/// Every route the `/v1` router serves (crates/server/src/api/mod.rs), with its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/integrations", &["get"]),
    ("/v1/integrations/{slug}", &["put", "get", "delete"]),
    ("/v1/integrations/{slug}/flows/{flow}", &["get"]),
    ("/v1/integrations/{slug}/flows/{flow}/run", &["post"]),
    ("/v1/integrations/{slug}/flows/{flow}/activate", &["post"]),
    ("/v1/integrations/{slug}/flows/{flow}/deactivate", &["post"]),
    ("/v1/integrations/{slug}/flows/{flow}/state", &["get", "delete"]),
    ("/v1/integrations/{slug}/deployment", &["get", "put", "delete"]),
    ("/v1/integrations/{slug}/versions", &["get"]),
    ("/v1/integrations/{slug}/versions/{n}", &["get"]),
    ("/v1/integrations/{slug}/versions/{a}/diff/{b}", &["get"]),
    ("/v1/integrations/{slug}/versions/{n}/rollback", &["post"]),
    ("/v1/integrations/{slug}/test", &["post"]),
    ("/v1/integrations/{slug}/dry-runs", &["post"]),
    ("/v1/dry-runs/{id}", &["get"]),
    ("/v1/tenants", &["get", "post"]),
    ("/v1/validate", &["post"]),
    ("/v1/executions", &["get"]),
    ("/v1/executions/{id}", &["get"]),
    ("/v1/executions/{id}/retry", &["post"]),
    ("/v1/executions/{id}/replay", &["post"]),
    ("/v1/executions/{id}/cancel", &["post"]),
    ("/v1/executions/{id}/skip", &["post"]),
    ("/v1/executions/{id}/as-test", &["get"]),
    ("/v1/executions/retry", &["post"]),
    ("/v1/executions/replay", &["post"]),
    ("/v1/bulk/{id}", &["get"]),
    ("/v1/deliveries/{id}", &["get"]),
    ("/v1/deliveries/{id}/resend", &["post"]),
    ("/v1/smtp", &["get", "put", "delete"]),
    ("/v1/log-sources", &["get"]),
    ("/v1/log-sources/{name}", &["get", "put", "delete"]),
    ("/v1/tokens", &["get", "post"]),
    ("/v1/tokens/{id}", &["delete"]),
    ("/v1/keys", &["post"]),
    ("/v1/openapi.json", &["get"]),
];

backends!(openapi_document_describes_the_api);
async fn openapi_document_describes_the_api() {
    let s = TestServer::start().await;
    let (status, headers, doc) = send(s.api(Method::GET, "/v1/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in ROUTES {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is not described"));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{} {path} is not described", m.to_uppercase());
        }
    }
    // And everything described under /v1 is served (not the router's fallbacks).
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/v1/")) {
        let concrete = path.replace("{slug}", "nope").replace("{flow}", "nope").replace("{id}", "nope");
        for m in item.as_object().unwrap().keys() {
            if m == "delete" || m == "put" {
                // Check these without side effects: a wrong method would also answer 405.
                continue;
            }
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let (status, _, v) = send(s.api(method.clone(), &concrete)).await;
            assert_ne!(status, 405, "{method} {concrete}: {v}");
            assert!(
                !(status == 404 && v["error"]["message"] == "no such route"),
                "{method} {concrete} is described but not served"
            );
        }
    }
}

backends!(api_errors_are_json);
async fn api_errors_are_json() {
    let s = TestServer::start_with(|st| st.max_body_bytes = 512).await;
    // Wrong method on an API route: JSON 405 naming the allowed methods.
    for (method, path, allowed) in [
        (Method::DELETE, "/v1/executions", "GET"),
        (Method::PUT, "/v1/tokens", "POST"),
        (Method::GET, "/v1/validate", "POST"),
    ] {
        let (status, headers, v) = send(s.api(method.clone(), path)).await;
        assert_eq!(status, 405, "{method} {path}: {v}");
        assert_error(&v, "method_not_allowed");
        let allow = headers.get("allow").map(|h| h.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(allow.contains(allowed), "{method} {path}: Allow is `{allow}`, expected it to list {allowed}");
    }
    // Too large a definition: JSON 413.
    let big = format!("{SIMPLE}# {}\n", "x".repeat(1024));
    let (status, v) = s.put_integration("simple", &big).await;
    assert_eq!(status, 413, "{v}");
    assert_error(&v, "payload_too_large");
    // Malformed JSON body.
    let (status, _, v) =
        send(s.api(Method::POST, "/v1/tokens").header("content-type", "application/json").body("{\"name\": ")).await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "invalid_body");
}

backends!(health_readiness_and_metrics);
async fn health_readiness_and_metrics() {
    let s = TestServer::start().await;
    let (status, _, v) = send(s.client.get(format!("{}/healthz", s.url))).await;
    assert_eq!((status, v), (200, json!({ "status": "ok" })));
    let (status, _, v) = send(s.client.get(format!("{}/readyz", s.url))).await;
    assert_eq!((status, v), (200, json!({ "status": "ready" })));

    s.apply(SIMPLE).await;
    let (_, _, v) = send(s.post_hook("simple/in").json(&json!({}))).await;
    s.wait_for(v["executionId"].as_str().unwrap(), "succeeded").await;
    let metrics = common::eventually("execution metrics", || async {
        let r = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        text.lines()
            .any(|l| {
                l.starts_with("flowgate_executions_total{")
                    && l.contains("flow=\"hook\"")
                    && l.contains("status=\"succeeded\"")
            })
            .then_some(text)
    })
    .await;
    assert!(
        metrics.lines().any(|l| l.starts_with("flowgate_http_requests_total{")
            && l.contains("route=\"/hooks/{tenant}/{*path}\"")
            && l.contains("status=\"202\"")),
        "{metrics}"
    );
    assert!(metrics.contains("flowgate_queue_depth"), "{metrics}");
    assert!(!metrics.contains("simple/in"), "raw paths must not be labels");
}

backends!(manual_and_test_runs);
async fn manual_and_test_runs() {
    let s = TestServer::start().await;
    s.apply(SIMPLE).await;

    let r = s.run_flow("simple", "by-hand", json!({ "who": "Ann" })).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["output"], json!({ "hello": "Ann" }));
    let id = r["executionId"].as_str().unwrap();
    let ex = s.execution(id).await;
    assert_eq!(ex["triggerKind"], "manual");
    assert_eq!(ex["trigger"]["body"], json!({ "who": "Ann" }));
    assert_eq!(ex["logs"][0]["message"], "manual run for Ann");

    // Without wait: 202 with an id.
    let (status, _, v) = send(
        s.api(Method::POST, "/v1/integrations/simple/flows/by-hand/run").json(&json!({ "body": { "who": "Bo" } })),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let ex = s.wait_for(v["executionId"].as_str().unwrap(), "succeeded").await;
    assert_eq!(ex["output"], json!({ "hello": "Bo" }));

    // A webhook flow run through the API is a test run; declared query defaults apply.
    let (status, _, v) = send(
        s.api(Method::POST, "/v1/integrations/simple/flows/hook/run?wait=true")
            .json(&json!({ "body": { "x": 1 }, "headers": { "X-Test": "yes" } })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["output"], json!({ "got": { "x": 1 }, "mode": "full", "kind": "test" }));
    let ex = s.execution(v["executionId"].as_str().unwrap()).await;
    assert_eq!(ex["triggerKind"], "test");
    assert_eq!(ex["trigger"]["headers"]["x-test"], "yes");

    let (status, _, v) = send(s.api(Method::POST, "/v1/integrations/simple/flows/nope/run").json(&json!({}))).await;
    assert_eq!(status, 404, "{v}");
    let (status, _, v) = send(s.api(Method::POST, "/v1/integrations/nope/flows/by-hand/run").json(&json!({}))).await;
    assert_eq!(status, 404, "{v}");
    let (status, _, v) =
        send(s.api(Method::POST, "/v1/integrations/simple/flows/by-hand/run").json(&json!({ "bdy": {} }))).await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, "invalid_body");
    let (status, _, v) =
        send(s.api(Method::POST, "/v1/integrations/simple/flows/by-hand/run?wait=maybe").json(&json!({}))).await;
    assert_eq!(status, 400, "{v}");
}

/// First start without `FLOWGATE_BOOTSTRAP_TOKEN`: the `default` tenant gets a generated
/// token, written to `<data-dir>/bootstrap-token` with mode 0600, which works; a second start
/// on the same data directory creates nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_token_is_generated_once_and_private() {
    flowgate_steps::util::install_tls();
    let dir = tempfile::tempdir().unwrap();
    let settings = || flowgate_server::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        bootstrap_token: None,
        ..Default::default()
    };
    let server = flowgate_server::Server::bind(settings()).await.unwrap();
    let boot = server.bootstrap.clone().expect("first start bootstraps");
    assert!(boot.generated && boot.token.starts_with("fgt_"));
    let file = dir.path().join("bootstrap-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), boot.token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let url = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let r = client.get(format!("{url}/v1/integrations")).bearer_auth(&boot.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(format!("{url}/v1/integrations")).bearer_auth("fgt_wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    let again = flowgate_server::Server::bind(settings()).await.unwrap();
    assert!(again.bootstrap.is_none(), "a second start must not bootstrap again");
}
