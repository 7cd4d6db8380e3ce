//! An execution becomes a test case (issue 20, part 1): `GET /v1/executions/{id}/as-test`
//! gives a `tests:` case — the recorded trigger, the side-effecting steps mocked with what they
//! recorded (per loop item), the recorded outputs and answer as expectations, secrets as
//! markers — which, appended to the document, passes the integration's tests without calling
//! anything, and fails once the flow's logic changes. Both backends.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, assert_error, send};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "sk_live_Qw3Er5Ty7Ui9Op2As";

fn shop(url: &str) -> String {
    format!(
        r#"integration: shop
config:
  apiKey: {{ type: secret, required: true }}
flows:
  - flow: orders
    trigger: {{ webhook: {{ path: orders, respond: {{ mode: sync, timeout: 10s }} }} }}
    steps:
      - id: customer
        retry: {{ attempts: 1 }}
        http:
          url: "{url}/customers/{{{{ $trigger.body.customer }}}}"
          headers: {{ X-Api-Key: "{{{{ $config.apiKey }}}}" }}
      - {{ id: mapped, transform: '{{ name: .body.name, vip: .body.vip, key: .body.key }}' }}
      - id: route
        switch:
          - when: '.vip'
            steps:
              - {{ id: gold, transform: '. + {{ tier: "gold" }}' }}
          - default:
              - {{ id: plain, transform: '. + {{ tier: "std" }}' }}
      - id: each
        foreach:
          items: '$trigger.body.lines'
          steps:
            - {{ id: line, transform: '{{ sku: .sku, qty: (.qty * 2) }}' }}
            - id: push
              retry: {{ attempts: 1 }}
              http: {{ method: POST, url: "{url}/lines/{{{{ .sku }}}}", json: "{{{{ . }}}}" }}
      - id: answer
        respond: {{ status: 201, body: {{ name: "{{{{ $steps.mapped.name }}}}", ids: "{{{{ [.[] | .body.id] }}}}" }} }}
  - flow: fragile
    trigger: {{ webhook: {{ path: fragile }} }}
    steps:
      - {{ id: prep, transform: '{{ n: .body.n }}' }}
      - {{ id: soft, onError: continue, retry: {{ attempts: 1 }}, http: {{ url: "{url}/soft" }} }}
      - {{ id: after, transform: '{{ code: .error.code, status: .error.details.status }}' }}
      - {{ id: call, retry: {{ attempts: 1 }}, http: {{ method: POST, url: "{url}/boom", json: "{{{{ . }}}}" }} }}
  - flow: slow
    trigger: {{ webhook: {{ path: slow }} }}
    steps:
      - {{ id: wait, http: {{ url: "{url}/held" }} }}
  - flow: quiet
    diagnostics: errors
    trigger: {{ webhook: {{ path: quiet }} }}
    steps:
      - {{ id: t, transform: '{{ n: .body.n }}' }}
"#
    )
}

async fn upstream() -> MockUpstream {
    let up = MockUpstream::with(|r| {
        if let Some(id) = r.path.strip_prefix("/customers/") {
            // The target echoes the API key: the secret lands in the step's output.
            let key = r.header("x-api-key").unwrap_or("").to_owned();
            MockResponse::json(200, json!({ "id": id, "name": "Ann", "vip": true, "key": key }))
        } else if let Some(sku) = r.path.strip_prefix("/lines/") {
            MockResponse::json(201, json!({ "id": format!("p-{sku}"), "got": r.json() }))
        } else if r.path == "/soft" {
            MockResponse::json(503, json!({ "busy": true }))
        } else if r.path == "/boom" {
            MockResponse::json(500, json!({ "oops": true }))
        } else {
            MockResponse::status(404)
        }
    })
    .await;
    up.on("/held", MockResponse::json(200, json!({})).held());
    up
}

async fn deploy(s: &TestServer) {
    let (status, _, v) =
        send(s.api(Method::PUT, "/v1/integrations/shop/deployment").json(&json!({ "config": { "apiKey": SECRET } })))
            .await;
    assert!(status == 200 || status == 201, "{v}");
}

async fn as_test(s: &TestServer, id: &str, query: &str) -> (u16, Value) {
    let (status, _, v) = send(s.api(Method::GET, &format!("/v1/executions/{id}/as-test{query}"))).await;
    (status, v)
}

/// The integration's tests, run on the server with the deployment's values.
async fn run_tests(s: &TestServer) -> Value {
    let (status, _, v) = send(s.api(Method::POST, "/v1/integrations/shop/test")).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Applies `doc` with `cases` (YAML list items) under `tests:`.
async fn apply_with_tests(s: &TestServer, doc: &str, cases: &[&str]) {
    let text = format!("{doc}tests:\n{}", cases.concat());
    let (status, v) = s.put_integration("shop", &text).await;
    assert!((200..300).contains(&status), "{v}\n{text}");
}

backends!(an_execution_becomes_a_test_that_passes_and_can_fail);
async fn an_execution_becomes_a_test_that_passes_and_can_fail() {
    let up = upstream().await;
    let s = TestServer::start().await;
    let doc = shop(&up.url);
    s.apply(&doc).await;
    deploy(&s).await;
    let (status, headers, answer) = send(
        s.post_hook("orders")
            .header("x-request-source", "shopfront")
            .header("authorization", format!("Bearer {SECRET}"))
            .query(&[("channel", "web")])
            .json(&json!({ "customer": 7, "lines": [{ "sku": "a", "qty": 1 }, { "sku": "b", "qty": 2 }] })),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer, json!({ "name": "Ann", "ids": ["p-a", "p-b"] }));
    let id = headers["x-flowgate-execution-id"].to_str().unwrap().to_owned();
    s.wait_for(&id, "succeeded").await;
    let sent = up.total_hits();

    let (status, v) = as_test(&s, &id, "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["format"].as_str(), v["flow"].as_str(), v["integration"].as_str()),
        (Some("yaml"), Some("orders"), Some("shop"))
    );
    assert_eq!(v["version"], 1, "{v}");
    let case = v["case"].as_str().unwrap().to_owned();
    let test = &v["test"];
    // Secrets stay markers, in the text and in the JSON.
    assert!(!case.contains(SECRET) && !test.to_string().contains(SECRET), "{case}");
    assert!(case.contains("«secret:config.apiKey»"), "{case}");
    // The trigger as received, without credentials or transport headers.
    assert_eq!(test["trigger"]["body"]["customer"], 7, "{test:#}");
    assert_eq!(test["trigger"]["headers"]["x-request-source"], "shopfront", "{test:#}");
    assert_eq!(test["trigger"]["query"], json!({ "channel": "web" }), "{test:#}");
    for h in ["authorization", "host", "content-length"] {
        assert!(test["trigger"]["headers"].get(h).is_none(), "{h}: {test:#}");
    }
    // Side-effecting steps mocked, per loop item; pure ones expected.
    let mocks = test["mocks"].as_object().expect("mocks");
    assert_eq!(mocks.keys().collect::<Vec<_>>(), ["customer", "each[0].push", "each[1].push"], "{test:#}");
    assert_eq!(mocks["each[1].push"]["body"]["id"], "p-b");
    assert_eq!(mocks["customer"]["body"]["key"], "«secret:config.apiKey»");
    let expect = &test["expect"];
    assert_eq!(expect["status"], "succeeded");
    let steps = expect["steps"].as_object().expect("steps");
    for key in ["mapped", "gold", "each[0].line", "each[1].line", "answer"] {
        assert!(steps.contains_key(key), "{key}: {test:#}");
    }
    assert!(!steps.contains_key("each") && !steps.contains_key("plain"), "{test:#}");
    assert_eq!(steps["mapped"], json!({ "name": "Ann", "vip": true, "key": "«secret:config.apiKey»" }));
    assert_eq!(steps["each[1].line"], json!({ "sku": "b", "qty": 4 }));
    assert_eq!(expect["respond"]["status"], 201);
    assert_eq!(expect["respond"]["body"], json!({ "name": "Ann", "ids": ["p-a", "p-b"] }));
    // The text is that case, in the document's format.
    let parsed = flowgate_model::source::parse(&format!("tests:\n{case}"), flowgate_model::Format::Yaml).unwrap();
    assert_eq!(&parsed.value["tests"][0], test, "{case}");
    // JSON on request.
    let (status, j) = as_test(&s, &id, "?format=json").await;
    assert_eq!(status, 200, "{j}");
    assert_eq!(serde_json::from_str::<Value>(j["case"].as_str().unwrap()).unwrap(), *test);
    let (status, bad) = as_test(&s, &id, "?format=toml").await;
    assert_eq!(status, 400, "{bad}");
    assert_error(&bad, "bad_request");

    // Appended to the document, it passes on the server (the secret's value known)…
    apply_with_tests(&s, &doc, &[&case]).await;
    let report = run_tests(&s).await;
    assert_eq!(report["passed"], true, "{report:#}\n{case}");
    assert_eq!(report["results"][0]["status"], "succeeded", "{report:#}");
    // … and with `flowgate test`, where the secret is unknown and stays a marker on both sides.
    let text = format!("{doc}tests:\n{case}");
    let local = flowgate_engine::testing::run_tests(
        &text,
        flowgate_model::Format::Yaml,
        &serde_json::Map::new(),
        None,
        &flowgate_engine::EngineSettings::default(),
    )
    .await
    .expect("the document validates");
    assert!(local.passed, "{local:#?}");
    assert_eq!(up.total_hits(), sent, "a test called the target");

    // A changed transform fails the same case.
    let changed = doc.replace("name: .body.name,", "name: (.body.name | ascii_upcase),");
    assert_ne!(changed, doc);
    apply_with_tests(&s, &changed, &[&case]).await;
    let report = run_tests(&s).await;
    assert_eq!(report["passed"], false, "{report:#}");
    let failures = report["results"][0]["failures"].as_array().unwrap();
    assert!(failures.iter().any(|f| f["path"] == "steps.mapped.name" && f["actual"] == "ANN"), "{report:#}");
    assert!(!report.to_string().contains(SECRET), "{report}");
    assert_eq!(up.total_hits(), sent, "a test called the target");
}

backends!(a_failed_execution_becomes_a_test_with_mock_errors);
async fn a_failed_execution_becomes_a_test_with_mock_errors() {
    let up = upstream().await;
    let s = TestServer::start().await;
    let doc = shop(&up.url);
    s.apply(&doc).await;
    deploy(&s).await;
    let (status, _, v) = send(s.post_hook("fragile").json(&json!({ "n": 3 }))).await;
    assert_eq!(status, 202, "{v}");
    let id = v["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&id, "failed").await;

    let (status, v) = as_test(&s, &id, "").await;
    assert_eq!(status, 200, "{v}");
    let test = &v["test"];
    assert_eq!(test["expect"]["status"], "failed", "{test:#}");
    assert!(test.get("mocks").is_none(), "{test:#}");
    let errors = test["mockErrors"].as_object().expect("mockErrors");
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["soft", "call"], "{test:#}");
    assert_eq!(errors["call"]["code"], errors["soft"]["code"], "{test:#}");
    assert!(errors["call"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{test:#}");
    assert_eq!(test["expect"]["steps"]["after"]["status"], 503, "{test:#}");
    assert!(test["expect"].get("output").is_none(), "{test:#}");
    let case = v["case"].as_str().unwrap().to_owned();

    let sent = up.total_hits();
    apply_with_tests(&s, &doc, &[&case]).await;
    let report = run_tests(&s).await;
    assert_eq!(report["passed"], true, "{report:#}\n{case}");
    assert_eq!(report["results"][0]["status"], "failed", "{report:#}");
    assert_eq!(up.total_hits(), sent, "a test called the target");
}

backends!(only_ended_recorded_executions_of_the_tenant_become_tests);
async fn only_ended_recorded_executions_of_the_tenant_become_tests() {
    let up = upstream().await;
    let s = TestServer::start_with(|st| st.admin_token = Some("fga_as_test".into())).await;
    s.apply(&shop(&up.url)).await;
    deploy(&s).await;

    // Still running: a clear 409.
    let (status, _, v) = send(s.post_hook("slow").json(&json!({}))).await;
    assert_eq!(status, 202, "{v}");
    let slow = v["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&slow, "running").await;
    let (status, v) = as_test(&s, &slow, "").await;
    assert_eq!(status, 409, "{v}");
    assert_error(&v, "conflict");
    assert!(v["error"]["message"].as_str().unwrap().contains("running"), "{v}");
    up.open_gate();
    s.wait_for(&slow, "succeeded").await;
    let (status, v) = as_test(&s, &slow, "").await;
    assert_eq!(status, 200, "{v}");

    // A flow that keeps no outputs of its successful runs: 422.
    let (status, _, v) = send(s.post_hook("quiet").json(&json!({ "n": 1 }))).await;
    assert_eq!(status, 202, "{v}");
    let quiet = v["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&quiet, "succeeded").await;
    let (status, v) = as_test(&s, &quiet, "").await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, "not_recorded");
    assert!(v["error"]["message"].as_str().unwrap().contains("diagnostics"), "{v}");

    // Another tenant's execution, or none: 404.
    let other = s.create_tenant("fga_as_test", "other").await;
    let (status, _, v) =
        send(s.client.get(format!("{}/v1/executions/{slow}/as-test", s.url)).bearer_auth(&other)).await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, "not_found");
    let (status, v) = as_test(&s, "nope", "").await;
    assert_eq!(status, 404, "{v}");
}

backends!(a_huge_recording_is_refused_before_it_is_parsed);
/// An execution whose recording (trigger and journal) is over 16 MB is a 422 `too_large`
/// saying how big it is and the limit, not parsed and turned into an even larger case; a small
/// one of the same flow still becomes a test.
async fn a_huge_recording_is_refused_before_it_is_parsed() {
    let s = TestServer::start().await;
    s.apply(
        "integration: big\nflows:\n  - flow: f\n    trigger: { webhook: { path: big } }\n    steps:\n      - { id: twice, transform: '{ a: .body.s, b: .body.s }' }\n",
    )
    .await;
    let run = async |s: &TestServer, len: usize| {
        let (status, _, v) = send(s.post_hook("big").json(&json!({ "s": "x".repeat(len) }))).await;
        assert_eq!(status, 202, "{v}");
        let id = v["executionId"].as_str().unwrap().to_owned();
        s.wait_for(&id, "succeeded").await;
        id
    };
    // 6 MB received, 12 MB of step output (and as the execution's output): 30 MB recorded,
    // each part under its own limit.
    let huge = run(&s, 6 * 1024 * 1024).await;
    let (status, v) = as_test(&s, &huge, "").await;
    assert_eq!(status, 422, "{}", v.to_string().chars().take(300).collect::<String>());
    assert_error(&v, "too_large");
    assert_eq!(v["error"]["details"]["limit"], 16 * 1024 * 1024, "{v}");
    let bytes = v["error"]["details"]["bytes"].as_u64().unwrap();
    assert!(bytes > 18 * 1024 * 1024, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    let size = format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0));
    assert!(message.contains(&size) && message.contains("up to 16.0 MB"), "{message}");
    // A small one: its case.
    let small = run(&s, 10).await;
    let (status, v) = as_test(&s, &small, "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["test"]["expect"]["steps"]["twice"], json!({ "a": "xxxxxxxxxx", "b": "xxxxxxxxxx" }), "{v}");
}

const LITERAL: &str = "LiteralBearerToken4242";

backends!(a_literal_marker_in_a_test_case_is_stored_as_a_marker);
/// A sealed literal's marker in a test case (as a case made from an execution holds it) is
/// put back for the check, and stored as the marker again: neither the document nor the source
/// of the version shows the value; the case still passes on the server.
async fn a_literal_marker_in_a_test_case_is_stored_as_a_marker() {
    let s = TestServer::start().await;
    let doc = format!(
        "integration: lit\nflows:\n  - flow: f\n    trigger: {{ webhook: {{ path: lit, auth: {{ bearer: {{ token: \"{LITERAL}\" }} }} }} }}\n    steps:\n      - {{ id: t, transform: '{{ a: .body.a }}' }}\n"
    );
    s.apply(&doc).await;
    let read = s.get_json("/v1/integrations/lit").await;
    let source = read["source"].as_str().unwrap().to_owned();
    assert!(!source.contains(LITERAL), "{source}");
    let marker = read["document"]["flows"][0]["trigger"]["webhook"]["auth"]["bearer"]["token"]
        .as_str()
        .expect("the token's marker")
        .to_owned();
    assert!(marker.starts_with("«secret:"), "{read:#}");

    // The document as read back, with a case holding the marker.
    let with_case = format!(
        "{source}tests:\n  - name: marked\n    flow: f\n    trigger: {{ body: {{ a: \"{marker}\" }} }}\n    expect: {{ status: succeeded, steps: {{ t: {{ a: \"{marker}\" }} }} }}\n"
    );
    let (status, v) = s.put_integration("lit", &with_case).await;
    assert!((200..300).contains(&status), "{v}");
    let read = s.get_json("/v1/integrations/lit").await;
    assert!(!read.to_string().contains(LITERAL), "the literal is shown: {read:#}");
    assert_eq!(read["document"]["tests"][0]["trigger"]["body"]["a"], marker, "{read:#}");
    for path in ["/v1/integrations/lit/versions", "/v1/integrations/lit/versions/2"] {
        let v = s.get_json(path).await;
        assert!(!v.to_string().contains(LITERAL), "{path} shows the literal: {v:#}");
    }
    // The credential still works, and the case passes (the marker is the value again).
    let (status, _, v) = send(s.post_hook("lit").bearer_auth(LITERAL).json(&json!({ "a": 1 }))).await;
    assert_eq!(status, 202, "{v}");
    let (status, _, report) = send(s.api(Method::POST, "/v1/integrations/lit/test")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["passed"], true, "{report:#}");
    assert!(!report.to_string().contains(LITERAL), "{report}");
}
