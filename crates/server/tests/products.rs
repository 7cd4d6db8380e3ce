//! Integrations as products (issue 6): secrets sealed at rest and never shown (the SQLite
//! file, the API and the journal are searched for the plaintext), versions pinned to
//! executions with diff and rollback, deployments in two tenants with their own values and
//! URLs, required values keeping an integration off the air, lifecycle flows with
//! `$flow.webhookUrls`, the `call` step, and flow tests on the server.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, assert_error, eventually, send};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "fga_test_admin_token";

async fn start() -> TestServer {
    TestServer::start_with(|s| s.admin_token = Some(ADMIN.into())).await
}

/// PUT a deployment's config; returns status and body.
async fn deploy(s: &TestServer, token: &str, slug: &str, config: Value) -> (u16, Value) {
    let (status, _, v) = send(
        s.client
            .put(format!("{}/v1/integrations/{slug}/deployment", s.url))
            .bearer_auth(token)
            .json(&json!({ "config": config })),
    )
    .await;
    (status, v)
}
// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

const SECRET_TOKEN: &str = "tok_9f8e7d6c5b4a3210fedcba";
const LITERAL_KEY: &str = "literal-key-0123456789";
/// A credential written literally in an http step's headers.
const LITERAL_HEADER: &str = "hdr-literal-abcdef987";

fn secrets_doc(base: &str) -> String {
    r#"
integration: vault
config:
  base: { type: string, default: "BASE" }
  apiToken: { type: secret, required: true, description: "the ERP's API token" }
  region: { type: string, default: eu, allowed: [eu, us] }
flows:
  - flow: sync
    trigger:
      webhook:
        path: vault/sync
        auth: { apiKey: { keys: [{ label: ops, secret: LITERAL }] } }
    steps:
      - id: token
        transform: '{ token: $config.apiToken, n: $trigger.body.n }'
      - id: note
        log: "using {{ $config.apiToken }} for {{ .n }}"
      - id: push
        http:
          method: POST
          url: "{{ $config.base }}/push"
          headers: { Authorization: "Bearer {{ $steps.token.token }}", X-Partner-Key: LITHDR }
          json: { token: "{{ $steps.token.token }}", n: "{{ .n }}" }
        retry: { attempts: 1 }
"#
    .replace("BASE", base)
    .replace("LITERAL", LITERAL_KEY)
    .replace("LITHDR", LITERAL_HEADER)
}

backends!(secrets_are_sealed_at_rest_and_never_shown);
/// A secret config value and a literal webhook key: the integration is not live until the
/// secret is set (its webhook answers 404); then the flow uses both for real (the target
/// gets the token, the key opens the webhook) — yet neither plaintext is in the database file,
/// the integration or deployment the API shows, the execution's journal or its log. A failed
/// run retried from its failed step resumes with the real token, restored from the journal.
async fn secrets_are_sealed_at_rest_and_never_shown() {
    let s = start().await;
    let up = MockUpstream::start().await;
    up.queue("/push", [MockResponse::status(503)]);
    up.on("/push", MockResponse::json(200, json!({ "ok": true })));
    let (status, v) = s.apply_as(&s.token, &secrets_doc(&up.url)).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["deployment"], json!({ "deployed": true, "live": false, "missing": ["apiToken"] }), "{v}");
    let hook = || s.post_hook("vault/sync").header("X-Api-Key", LITERAL_KEY);
    let (status, _, v) = send(hook().json(&json!({ "n": 1 }))).await;
    assert_eq!(status, 404, "not live: {v}");

    // Bad values are all reported, nothing is stored.
    let (status, v) = deploy(&s, &s.token, "vault", json!({ "region": "mars", "nope": 1 })).await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, "invalid_deployment");
    let paths: Vec<&str> =
        v["error"]["details"]["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["config.region", "config.nope", "config.apiToken"], "{v}");
    let (status, v) = deploy(&s, &s.token, "vault", json!({ "apiToken": SECRET_TOKEN })).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["live"].clone(), v["config"]["apiToken"].clone()),
        (json!(true), json!({ "type": "secret", "set": true, "source": "deployment" }))
    );
    assert_eq!(v["config"]["region"], json!({ "type": "string", "value": "eu", "source": "default" }));

    // Wrong key: 401. Right key: runs; the first push fails (503), a retry resumes.
    let (status, _, _) =
        send(s.post_hook("vault/sync").header("X-Api-Key", "literal-key-wrong").json(&json!({}))).await;
    assert_eq!(status, 401);
    let (status, _, v) = send(hook().json(&json!({ "n": 7 }))).await;
    assert_eq!(status, 202, "{v}");
    let id = v["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&id, "failed").await;
    let (status, _, v) = send(s.api(Method::POST, &format!("/v1/executions/{id}/retry"))).await;
    assert_eq!(status, 202, "{v}");
    let ex = s.wait_for(&id, "succeeded").await;
    let pushes = up.requests("/push");
    assert_eq!(pushes.len(), 2);
    for p in &pushes {
        assert_eq!(
            p.header("authorization"),
            Some(format!("Bearer {SECRET_TOKEN}").as_str()),
            "the real token goes out"
        );
        assert_eq!(p.json()["token"], SECRET_TOKEN, "resumed with the value, not the marker");
        assert_eq!(p.header("x-partner-key"), Some(LITERAL_HEADER), "the literal header goes out");
    }

    // Nothing shows the plaintext.
    let shown = [
        ex.to_string(),
        s.get_json("/v1/integrations/vault").await.to_string(),
        s.get_json("/v1/integrations/vault/deployment").await.to_string(),
        s.get_json("/v1/integrations/vault/versions/1").await.to_string(),
        s.get_json("/v1/executions?integration=vault").await.to_string(),
        s.get_json("/v1/integrations/vault/flows/sync").await.to_string(),
    ];
    for text in &shown {
        for secret in [SECRET_TOKEN, LITERAL_KEY, LITERAL_HEADER] {
            assert!(!text.contains(secret), "{secret} is shown: {text}");
        }
    }
    assert_eq!(ex["steps"][0]["output"]["token"], "«secret:config.apiToken»", "{ex:#}");
    assert!(ex["logs"][0]["message"].as_str().unwrap().contains("«secret:config.apiToken»"), "{ex:#}");
    let source = s.get_json("/v1/integrations/vault").await["source"].as_str().unwrap().to_owned();
    assert!(source.contains("secret: «secret:lit0»"), "{source}");

    // The database: no plaintext in the SQLite file or its WAL.
    if let Some(dir) = s.data_dir() {
        for name in ["flowgate.db", "flowgate.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                for secret in [SECRET_TOKEN, LITERAL_KEY, LITERAL_HEADER] {
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                        "{secret} is in {name} in plaintext"
                    );
                }
            }
        }
    }

    // The document read from the API applies again as it is: unchanged, the key still works.
    let (status, v) = s.apply_as(&s.token, &source).await;
    assert_eq!((status, v["created"].clone()), (200, json!(false)), "{v}");
    let (status, _, _) = send(hook().json(&json!({ "n": 8 }))).await;
    assert_eq!(status, 202);
    // A marker the integration does not have is refused.
    let (status, v) = s.apply_as(&s.token, &source.replace("«secret:lit0»", "«secret:lit9»")).await;
    assert_eq!(status, 422, "{v}");
}

// ---------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------

const V1: &str = r#"
integration: ver
flows:
  - flow: f
    trigger: { webhook: { path: ver/f } }
    steps:
      - id: gate
        filter: '$trigger.body.go == true'
      - id: out
        transform: '"v1"'
"#;

backends!(versions_are_pinned_diffed_and_rolled_back);
/// Every change is a version; an execution stays on the version it started on (a retry
/// resumes there) while new events run on the newest; a diff shows the change; a rollback
/// makes a new version with the old content.
async fn versions_are_pinned_diffed_and_rolled_back() {
    let s = start().await;
    s.apply(V1).await;
    let id = {
        let (status, _, v) = send(s.post_hook("ver/f").json(&json!({ "go": "no" }))).await;
        assert_eq!(status, 202);
        v["executionId"].as_str().unwrap().to_owned()
    };
    s.wait_for(&id, "filtered").await;
    let v2 = V1.replace("'\"v1\"'", "'\"v2\"'");
    let (status, v) = s.put_integration("ver", &v2).await;
    assert_eq!((status, v["version"].clone()), (201, json!(2)), "{v}");
    let listed = s.get_json("/v1/integrations/ver/versions").await;
    let numbers: Vec<i64> =
        listed["items"].as_array().unwrap().iter().map(|i| i["version"].as_i64().unwrap()).collect();
    assert_eq!(numbers, vec![2, 1]);
    assert_eq!(listed["items"][0]["current"], true);
    let diff = s.get_json("/v1/integrations/ver/versions/1/diff/2").await;
    assert!(
        diff["diff"].as_str().unwrap().contains("-        transform: '\"v1\"'\n+        transform: '\"v2\"'"),
        "{diff}"
    );
    assert_eq!((diff["added"].clone(), diff["removed"].clone()), (json!(1), json!(1)));

    let r = s.run_flow("ver", "f", json!({ "go": true })).await;
    assert_eq!(r["output"], "v2");
    assert_eq!(s.execution(r["executionId"].as_str().unwrap()).await["version"], 2);
    assert_eq!(s.execution(&id).await["version"], 1, "the old execution stays on its version");
    // A replay runs on the latest version, or on the original one when asked.
    for (query, want) in [("", 2), ("?version=original", 1)] {
        let (status, _, v) = send(s.api(Method::POST, &format!("/v1/executions/{id}/replay{query}"))).await;
        assert_eq!(status, 202, "{v}");
        let replay = s.wait_for(v["executionId"].as_str().unwrap(), "filtered").await;
        assert_eq!(replay["version"], want, "replay{query}");
    }
    let (status, _, v) = send(s.api(Method::POST, &format!("/v1/executions/{id}/replay?version=v9"))).await;
    assert_eq!(status, 400, "{v}");

    let (status, _, v) = send(s.api(Method::POST, "/v1/integrations/ver/versions/1/rollback")).await;
    assert_eq!((status, v["version"].clone(), v["rolledBackTo"].clone()), (201, json!(3), json!(1)), "{v}");
    let r = s.run_flow("ver", "f", json!({ "go": true })).await;
    assert_eq!(r["output"], "v1");
    assert_eq!(
        s.get_json("/v1/integrations/ver/versions/3").await["source"],
        s.get_json("/v1/integrations/ver/versions/1").await["source"]
    );
    let (status, _, v) = send(s.api(Method::GET, "/v1/integrations/ver/versions/9")).await;
    assert_eq!(status, 404);
    assert_error(&v, "not_found");
}

// ---------------------------------------------------------------------------------------
// Tenants, deployments, lifecycle
// ---------------------------------------------------------------------------------------

fn erp_doc() -> &'static str {
    r#"
integration: erp
config:
  erpUrl: { type: string, required: true }
  apiKey: { type: secret, required: true }
  greeting: { type: string, default: "hello" }
flows:
  - flow: customers
    trigger: { webhook: { path: erp/customers } }
    steps: [ { id: s, transform: '{ greeting: $config.greeting, id: $trigger.body.id }' } ]
  - flow: inventory
    trigger: { webhook: { path: erp/inventory } }
    steps: [ { id: s, transform: '$trigger.body' } ]
  - flow: register
    trigger: { deploy: {} }
    steps:
      - id: hooks
        http:
          method: POST
          url: "{{ $config.erpUrl }}/webhooks"
          headers: { X-Api-Key: "{{ $config.apiKey }}" }
          json: { customers: '{{ $flow.webhookUrls.customers }}', inventory: '{{ $flow.webhookUrls.inventory }}', reason: '{{ $trigger.reason }}' }
        retry: { attempts: 1 }
  - flow: unregister
    trigger: { undeploy: {} }
    steps:
      - id: bye
        http: { method: DELETE, url: "{{ $config.erpUrl }}/webhooks", headers: { X-Api-Key: "{{ $config.apiKey }}" } }
"#
}

backends!(two_tenants_deploy_with_their_own_values_and_urls);
/// The admin creates two tenants; each applies the same document and sets its own values:
/// each gets its own webhook URLs, its own `deploy` run registering them (with its own key)
/// in its own ERP, and its own config in its flows. A failed deploy flow shows in the
/// deployment and can be retried; undeploying runs `undeploy` and takes the webhooks down.
async fn two_tenants_deploy_with_their_own_values_and_urls() {
    let s = start().await;
    // Tenant administration needs the admin token, and only it.
    let (status, _, _) =
        send(s.client.post(format!("{}/v1/tenants", s.url)).bearer_auth(&s.token).json(&json!({ "id": "x" }))).await;
    assert_eq!(status, 401, "a tenant token cannot create tenants");
    let (status, _, _) = send(s.client.get(format!("{}/v1/integrations", s.url)).bearer_auth(ADMIN)).await;
    assert_eq!(status, 401, "the admin token is not a tenant token");
    let (acme, globex) = (s.create_tenant(ADMIN, "acme").await, s.create_tenant(ADMIN, "globex").await);
    let (status, _, v) =
        send(s.client.post(format!("{}/v1/tenants", s.url)).bearer_auth(ADMIN).json(&json!({ "id": "acme" }))).await;
    assert_eq!(status, 409, "{v}");
    let listed: Vec<String> = {
        let (_, _, v) = send(s.client.get(format!("{}/v1/tenants", s.url)).bearer_auth(ADMIN)).await;
        v["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(listed, ["acme", "default", "globex"]);

    let (erp_a, erp_g) = (MockUpstream::start().await, MockUpstream::start().await);
    erp_a.on("/webhooks", MockResponse::json(201, json!({ "ok": true })));
    erp_g.queue("/webhooks", [MockResponse::status(500)]);
    erp_g.on("/webhooks", MockResponse::json(201, json!({ "ok": true })));
    for token in [&acme, &globex] {
        let (status, v) = s.apply_as(token, erp_doc()).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["deployment"]["missing"], json!(["erpUrl", "apiKey"]));
    }
    let url = |tenant: &str, path: &str| format!("{}/hooks/{tenant}/{path}", s.url);
    let (status, _, _) = send(s.client.post(url("acme", "erp/customers")).json(&json!({}))).await;
    assert_eq!(status, 404, "not live before its values are set");
    // A missing required value: 422, nothing deployed.
    let (status, v) = deploy(&s, &acme, "erp", json!({ "erpUrl": erp_a.url })).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["details"]["missing"], json!(["apiKey"]));
    let (status, v) =
        deploy(&s, &acme, "erp", json!({ "erpUrl": erp_a.url, "apiKey": "acme-key-1111", "greeting": "hei" })).await;
    assert_eq!((status, v["live"].clone()), (200, json!(true)), "{v}");
    let (status, v) = deploy(&s, &globex, "erp", json!({ "erpUrl": erp_g.url, "apiKey": "globex-key-2222" })).await;
    assert_eq!((status, v["live"].clone()), (200, json!(true)), "{v}");

    // Each deploy flow registered that tenant's URLs with that tenant's key.
    erp_a.wait_hits("/webhooks", 1).await;
    let reg = erp_a.requests("/webhooks")[0].clone();
    assert_eq!(reg.header("x-api-key"), Some("acme-key-1111"));
    assert_eq!(
        reg.json(),
        json!({ "customers": url("acme", "erp/customers"), "inventory": url("acme", "erp/inventory"), "reason": "deploy" })
    );
    erp_g.wait_hits("/webhooks", 1).await;
    assert_eq!(erp_g.requests("/webhooks")[0].header("x-api-key"), Some("globex-key-2222"));
    assert_eq!(erp_g.requests("/webhooks")[0].json()["customers"], url("globex", "erp/customers"));

    // Each tenant's flows run with its own values.
    let (_, _, a) = send(s.client.post(url("acme", "erp/customers")).json(&json!({ "id": 1 }))).await;
    let (_, _, g) = send(s.client.post(url("globex", "erp/customers")).json(&json!({ "id": 2 }))).await;
    let get = |token: &String, id: &Value| {
        let (s, token, id) = (&s, token.clone(), id.as_str().unwrap().to_owned());
        async move {
            eventually("the run", || async {
                let (_, _, v) = send(s.client.get(format!("{}/v1/executions/{id}", s.url)).bearer_auth(&token)).await;
                (v["status"] == "succeeded").then_some(v)
            })
            .await
        }
    };
    assert_eq!(get(&acme, &a["executionId"]).await["output"], json!({ "greeting": "hei", "id": 1 }));
    assert_eq!(get(&globex, &g["executionId"]).await["output"], json!({ "greeting": "hello", "id": 2 }));
    // Sealed: one tenant cannot read another's execution.
    let (status, _, _) = send(
        s.client.get(format!("{}/v1/executions/{}", s.url, a["executionId"].as_str().unwrap())).bearer_auth(&globex),
    )
    .await;
    assert_eq!(status, 404);

    // Globex's deploy flow failed (500): visible in its deployment, retried from there.
    let view = eventually("the failed deploy run", || async {
        let (_, _, v) =
            send(s.client.get(format!("{}/v1/integrations/erp/deployment", s.url)).bearer_auth(&globex)).await;
        (v["lifecycle"][0]["lastStatus"] == "failed").then_some(v)
    })
    .await;
    assert_eq!(view["lifecycle"][0]["flow"], "register");
    let failed = view["lifecycle"][0]["lastExecutionId"].as_str().unwrap().to_owned();
    let (status, _, _) =
        send(s.client.post(format!("{}/v1/executions/{failed}/retry", s.url)).bearer_auth(&globex)).await;
    assert_eq!(status, 202);
    get(&globex, &json!(failed)).await;
    assert_eq!(erp_g.hits("/webhooks"), 2);

    // Changing a value re-runs the deploy flow (reason: config), and so does an upgrade
    // (a changed document applied to a live deployment, which keeps its values).
    let (status, _) = deploy(&s, &acme, "erp", json!({ "greeting": "hallo" })).await;
    assert_eq!(status, 200);
    erp_a.wait_hits("/webhooks", 2).await;
    assert_eq!(erp_a.requests("/webhooks")[1].json()["reason"], "config");
    let (status, v) =
        s.apply_as(&acme, &erp_doc().replace("'$trigger.body' }", "'$trigger.body | . + {v: 2}' }")).await;
    assert_eq!((status, v["version"].clone(), v["deployment"]["live"].clone()), (201, json!(2), json!(true)), "{v}");
    erp_a.wait_hits("/webhooks", 3).await;
    assert_eq!(erp_a.requests("/webhooks")[2].json()["reason"], "upgrade");
    let (_, _, a) = send(s.client.post(url("acme", "erp/customers")).json(&json!({ "id": 9 }))).await;
    assert_eq!(get(&acme, &a["executionId"]).await["output"], json!({ "greeting": "hallo", "id": 9 }), "values kept");
    let (status, _, v) =
        send(s.client.delete(format!("{}/v1/integrations/erp/deployment", s.url)).bearer_auth(&acme)).await;
    assert_eq!((status, v["live"].clone(), v["deployed"].clone()), (200, json!(false), json!(false)), "{v}");
    eventually("the undeploy call", || async {
        erp_a.all_requests().iter().any(|r| r.method == "DELETE" && r.path == "/webhooks").then_some(())
    })
    .await;
    let (status, _, _) = send(s.client.post(url("acme", "erp/customers")).json(&json!({}))).await;
    assert_eq!(status, 404, "undeployed: its webhooks are gone");
    let (status, _, _) = send(s.client.post(url("globex", "erp/customers")).json(&json!({ "id": 3 }))).await;
    assert_eq!(status, 202, "the other tenant is untouched");
}

// ---------------------------------------------------------------------------------------
// Call step and flow tests
// ---------------------------------------------------------------------------------------

const CALLS: &str = r#"
integration: calls
flows:
  - flow: parent
    trigger: { webhook: { path: calls/parent } }
    steps:
      - id: enriched
        call: { flow: enrich, input: { id: "{{ $trigger.body.id }}" } }
      - id: out
        transform: '{ name: $steps.enriched.name, parent: true }'
  - flow: enrich
    trigger: { manual: {} }
    steps:
      - id: lookup
        transform: '{ name: ("customer-" + (.body.id | tostring)) }'
  - flow: broken
    trigger: { manual: {} }
    steps: [ { id: boom, transform: 'error("no such customer")' } ]
  - flow: calls-broken
    trigger: { manual: {} }
    steps: [ { id: c, call: { flow: broken } } ]
tests:
  - name: parent names the customer
    flow: parent
    trigger: { body: { id: 5 } }
    mocks: { enriched: { name: mocked } }
    expect: { output: { name: mocked, parent: true }, jq: [ '$steps.enriched.name == "mocked"' ] }
  - name: a wrong expectation
    flow: enrich
    trigger: { body: { id: 5 } }
    expect: { steps: { lookup: { name: customer-6 } } }
"#;

backends!(call_steps_run_linked_child_executions);
/// A `call` step runs the other flow as a child execution (linked both ways) and takes its
/// output; a failed child fails the step. Flow tests run on the server: mocked steps are not
/// run, a wrong expectation is reported with what was expected and what there was.
async fn call_steps_run_linked_child_executions() {
    let s = start().await;
    s.apply(CALLS).await;
    let (status, _, v) = send(s.post_hook("calls/parent").json(&json!({ "id": 42 }))).await;
    assert_eq!(status, 202);
    let parent = s.wait_for(v["executionId"].as_str().unwrap(), "succeeded").await;
    assert_eq!(parent["output"], json!({ "name": "customer-42", "parent": true }));
    let children = parent["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{parent:#}");
    let child = s.execution(children[0]["id"].as_str().unwrap()).await;
    assert_eq!((child["flow"].clone(), child["triggerKind"].clone()), (json!("enrich"), json!("call")));
    assert_eq!(child["parentExecutionId"], parent["id"]);
    assert_eq!(child["trigger"]["body"], json!({ "id": 42 }), "a lone {{{{ }}}} keeps the value's type");
    assert_eq!(child["trigger"]["call"]["depth"], 1);

    let r = s.run_flow("calls", "calls-broken", json!({})).await;
    assert_eq!(r["status"], "failed", "{r}");
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(ex["error"]["code"], "call_failed", "{ex:#}");

    let (status, _, report) = send(s.api(Method::POST, "/v1/integrations/calls/test")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["passed"], false);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results[0]["passed"], true, "{report:#}");
    assert_eq!(results[1]["passed"], false);
    let f = &results[1]["failures"][0];
    assert_eq!(
        (f["path"].clone(), f["expected"].clone(), f["actual"].clone()),
        (json!("steps.lookup.name"), json!("customer-6"), json!("customer-5")),
        "{report:#}"
    );
    // Tests leave nothing in the tenant's history.
    let listed = s.get_json("/v1/executions?integration=calls&flow=enrich").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "only the real child: {listed}");
    let (status, _, one) =
        send(s.api(Method::POST, "/v1/integrations/calls/test?name=parent%20names%20the%20customer")).await;
    assert_eq!(
        (status, one["passed"].clone(), one["results"].as_array().map(Vec::len)),
        (200, json!(true), Some(1)),
        "{one}"
    );
}

const CALLER: &str = r#"
integration: caller
flows:
  - flow: price
    trigger: { manual: {} }
    steps:
      - id: vat
        call: { integration: tools, flow: vat, input: { net: "{{ .body.net }}" } }
        retry: { attempts: 1 }
      - id: out
        transform: '{ gross: $steps.vat.gross }'
"#;

const TOOLS: &str = r#"
integration: tools
config:
  rate: { type: number, required: true }
flows:
  - flow: vat
    trigger: { manual: {} }
    steps:
      - id: add
        transform: '{ gross: (.body.net * (1 + $config.rate)) }'
"#;

backends!(call_steps_reach_a_shared_integration_of_the_tenant);
/// `call: { integration, flow }` runs a flow of another integration of the same tenant, on
/// its current live version: missing → a clear failure; not live → retryable `call_not_live`;
/// live → the child's output. Another tenant's caller cannot reach it.
async fn call_steps_reach_a_shared_integration_of_the_tenant() {
    let s = start().await;
    s.apply(CALLER).await;
    let failed = |r: &Value, code: &str| {
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(r["error"]["code"], code, "{r}");
    };
    let r = s.run_flow("caller", "price", json!({ "net": 100 })).await;
    failed(&r, "call_flow");
    assert!(r["error"]["message"].as_str().unwrap().contains("no integration `tools`"), "{r}");

    s.apply(TOOLS).await; // stored, not live: `rate` has no value
    let r = s.run_flow("caller", "price", json!({ "net": 100 })).await;
    failed(&r, "call_not_live");
    let (status, v) = deploy(&s, &s.token, "tools", json!({ "rate": 0.25 })).await;
    assert_eq!(status, 200, "{v}");
    let r = s.run_flow("caller", "price", json!({ "net": 100 })).await;
    assert_eq!((r["status"].clone(), r["output"].clone()), (json!("succeeded"), json!({ "gross": 125 })), "{r}");
    let parent = s.execution(r["executionId"].as_str().unwrap()).await;
    let child = s.execution(parent["children"][0]["id"].as_str().unwrap()).await;
    assert_eq!((child["integration"].clone(), child["flow"].clone()), (json!("tools"), json!("vat")), "{child:#}");
    assert_eq!(child["parentExecutionId"], parent["id"]);

    // Sealed per tenant: the same caller in tenant b finds no `tools`.
    let b = s.create_tenant(ADMIN, "tenant-b").await;
    let (status, v) = s.apply_as(&b, CALLER).await;
    assert_eq!(status, 201, "{v}");
    let (status, _, r) = send(
        s.client
            .post(format!("{}/v1/integrations/caller/flows/price/run?wait=true&timeout=10", s.url))
            .bearer_auth(&b)
            .json(&json!({ "body": { "net": 100 } })),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    failed(&r, "call_flow");
}
