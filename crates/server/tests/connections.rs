//! Connections (issue 17): an `http` step with `connection:` carries the connection's
//! credentials; OAuth tokens are obtained once for many concurrent executions, refreshed
//! after a `401`, and a refusing token endpoint fails the step with a clear code. Unknown
//! connection names are problems with their location. A connection test contacts the real
//! databases and brokers (`SELECT 1`, a channel, a round trip, a `CONNACK`), fails clearly
//! without the URL's password when they cannot be reached, and says when nothing was
//! contacted.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, TestServer, send};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A token endpoint (`/token`, answering `tok-<n>` for the n-th request after a delay that
/// widens races) and an API (`/api`) that takes only the tokens `accepted` allows.
async fn provider(accepted: impl Fn(&str) -> bool + Send + Sync + 'static) -> (MockUpstream, Arc<AtomicUsize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    let mock = MockUpstream::with(move |r| match r.path.as_str() {
        "/token" => {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            MockResponse::json(
                200,
                json!({ "access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600 }),
            )
            .delay(Duration::from_millis(100))
        }
        "/api" => match r.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) {
            Some(t) if accepted(t) => MockResponse::json(200, json!({ "ok": true, "token": t })),
            _ => MockResponse::json(401, json!({ "error": "invalid_token" })),
        },
        _ => MockResponse::status(404),
    })
    .await;
    (mock, issued)
}

fn integration(mock: &MockUpstream) -> String {
    format!(
        r#"
integration: conn
config:
  secret: {{ type: secret, default: "app-s3cret" }}
connections:
  api:
    oauth2: {{ grant: client_credentials, tokenUrl: "{url}/token", clientId: app, clientSecret: "{{{{ $config.secret }}}}", scopes: [read, write] }}
  keyed:
    apiKey: {{ header: X-Api-Key, value: "k-123" }}
flows:
  - flow: call
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: get, http: {{ connection: api, url: "{url}/api" }} }}
  - flow: keyed
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: get, http: {{ connection: keyed, url: "{url}/keyed" }} }}
"#,
        url = mock.url
    )
}

backends!(fifty_concurrent_executions_share_one_token_request);
async fn fifty_concurrent_executions_share_one_token_request() {
    let (mock, issued) = provider(|t| t == "tok-1").await;
    let s = TestServer::start().await;
    s.apply(&integration(&mock)).await;
    let runs = (0..50).map(|i| s.run_flow("conn", "call", json!({ "i": i })));
    let answers = futures::future::join_all(runs).await;
    for a in &answers {
        assert_eq!(a["status"], "succeeded", "{a}");
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1, "one token request for 50 executions");
    let token = &mock.requests("/token")[0];
    // client_secret_basic with the secret from the config, and the grant's form.
    let basic = token.header("authorization").expect("basic auth");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD.decode(basic.trim_start_matches("Basic ")).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "app:app-s3cret");
    let form = String::from_utf8_lossy(&token.body).into_owned();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("scope=read+write"), "{form}");
    // The API echoes the token it was sent: the journal records a marker instead, and the
    // secret is nowhere either.
    let id = answers[0]["executionId"].as_str().expect("execution id");
    let recorded = s.get_json(&format!("/v1/executions/{id}")).await.to_string();
    assert!(recorded.contains("\"ok\":true"), "{recorded}");
    assert!(!recorded.contains("tok-1") && !recorded.contains("app-s3cret"), "{recorded}");
    assert!(recorded.contains("connection credential"), "the echoed token is a marker: {recorded}");
    let listed = s.get_json("/v1/executions?integration=conn&limit=5").await.to_string();
    assert!(!listed.contains("app-s3cret"));
}

backends!(a_refused_token_is_refreshed_once_and_the_request_sent_again);
async fn a_refused_token_is_refreshed_once_and_the_request_sent_again() {
    // The provider revokes tok-1 early: only tok-2 is accepted.
    let (mock, issued) = provider(|t| t == "tok-2").await;
    let s = TestServer::start().await;
    s.apply(&integration(&mock)).await;
    let a = s.run_flow("conn", "call", json!({})).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(mock.hits("/api"), 2, "refused once, then sent with the new token");
    // Later runs use the new token without asking again.
    let b = s.run_flow("conn", "call", json!({})).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    // A provider that refuses every token: one refresh, then the step fails with the 401.
    let (never, never_issued) = provider(|_| false).await;
    s.apply(&integration(&never)).await;
    let c = s.run_flow("conn", "call", json!({})).await;
    assert_eq!(c["status"], "failed", "{c}");
    assert_eq!(never.hits("/api"), 2);
    assert_eq!(never_issued.load(Ordering::SeqCst), 2);
}

backends!(an_api_key_connection_sends_its_header);
async fn an_api_key_connection_sends_its_header() {
    let mock = MockUpstream::start().await;
    mock.on("/keyed", MockResponse::json(200, json!({ "ok": true })));
    let s = TestServer::start().await;
    s.apply(&integration(&mock)).await;
    let a = s.run_flow("conn", "keyed", json!({})).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    assert_eq!(mock.requests("/keyed")[0].header("x-api-key"), Some("k-123"));
    // The literal key is sealed: the stored source shows a marker, not the key.
    let v = s.get_json("/v1/integrations/conn").await;
    assert!(!v.to_string().contains("k-123"), "{v}");
}

backends!(a_refusing_token_endpoint_fails_the_step_with_a_clear_code);
async fn a_refusing_token_endpoint_fails_the_step_with_a_clear_code() {
    let mock = MockUpstream::start().await;
    mock.on("/token", MockResponse::json(401, json!({ "error": "invalid_client", "error_description": "bad secret" })));
    let s = TestServer::start().await;
    s.apply(&integration(&mock)).await;
    let a = s.run_flow("conn", "call", json!({})).await;
    assert_eq!(a["status"], "failed", "{a}");
    let text = a.to_string();
    assert!(text.contains("connection_token") && text.contains("invalid_client"), "{a}");
    assert!(!text.contains("app-s3cret"), "{a}");
}

backends!(unknown_connections_are_problems_with_their_location);
async fn unknown_connections_are_problems_with_their_location() {
    let s = TestServer::start().await;
    let (status, body) = s
        .put_integration(
            "bad-conn",
            r#"
integration: bad-conn
connections:
  api: { apiKey: { header: X-Key, query: key, value: v } }
flows:
  - flow: f
    connection: erp
    trigger: { manual: {} }
    steps:
      - { id: get, http: { connection: nope, url: "http://example.com/" } }
"#,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let problems: Vec<(String, String)> = body["error"]["details"]["problems"]
        .as_array()
        .or_else(|| body["error"]["details"].as_array())
        .expect("problems")
        .iter()
        .map(|p| (p["path"].as_str().unwrap_or("").to_owned(), p["message"].as_str().unwrap_or("").to_owned()))
        .collect();
    let at = |path: &str| problems.iter().find(|(p, _)| p == path).map(|(_, m)| m.clone());
    assert!(at("flows[0].connection").is_some_and(|m| m.contains("unknown connection `erp`")), "{problems:?}");
    assert!(
        at("flows[0].steps[0].http.connection").is_some_and(|m| m.contains("unknown connection `nope`")),
        "{problems:?}"
    );
    assert!(at("connections.api.apiKey").is_some_and(|m| m.contains("exactly one")), "{problems:?}");
    let _: Value = body;
    let _ = send;
}

/// An integration whose connection `books` is authorized by a person (the fake provider
/// consents at once), and a flow calling an API that takes only the fake's live tokens.
fn authorized_integration(provider: &flowgate_fakes::OAuthServer, api: &MockUpstream) -> String {
    format!(
        r#"
integration: authz
connections:
  books:
    oauth2: {{ grant: authorization_code, authUrl: "{auth}", tokenUrl: "{token}", clientId: app, clientSecret: app-secret, scopes: [accounting] }}
flows:
  - flow: call
    notifyEmails: ops@acme.example
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: get, http: {{ connection: books, url: "{api}/api" }} }}
"#,
        auth = provider.authorize_url(),
        token = provider.token_url(),
        api = api.url
    )
}

/// Follows an authorization as a browser would: Flowgate's URL → the provider (which
/// redirects at once) → Flowgate's callback. Answers the callback's status and page.
async fn authorize(s: &TestServer, slug: &str, name: &str) -> (u16, String, String) {
    let (status, _, v) =
        send(s.api(reqwest::Method::GET, &format!("/v1/integrations/{slug}/connections/{name}/authorize"))).await;
    assert_eq!(status, 200, "{v}");
    let url = v["url"].as_str().expect("url").to_owned();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let consent = browser.get(&url).send().await.expect("provider");
    assert_eq!(consent.status(), 302, "the provider redirects back");
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&format!("{}/oauth/callback?", s.url)), "{back}");
    let page = browser.get(&back).send().await.expect("callback");
    (page.status().as_u16(), page.text().await.unwrap(), back)
}

async fn guarded_api(provider: &Arc<flowgate_fakes::OAuthServer>) -> MockUpstream {
    let p = provider.clone();
    MockUpstream::with(move |r| match r.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) {
        Some(t) if p.validate_access(t) => MockResponse::json(200, json!({ "ok": true })),
        _ => MockResponse::json(401, json!({ "error": "invalid_token" })),
    })
    .await
}

backends!(an_authorization_code_connection_is_authorized_refreshed_and_revoked);
async fn an_authorization_code_connection_is_authorized_refreshed_and_revoked() {
    let provider = Arc::new(
        flowgate_fakes::OAuthServer::start(
            flowgate_fakes::OAuthConfig::default().with_client("app", "app-secret").with_realm_id("9130350000001"),
        )
        .await,
    );
    let api = guarded_api(&provider).await;
    let s = TestServer::start().await;
    s.apply(&authorized_integration(&provider, &api)).await;
    // Before the authorization: the status says so, and a run fails with a clear code.
    let c = s.get_json("/v1/integrations/authz/connections/books").await;
    assert_eq!((c["status"].as_str(), c["grant"].as_str()), (Some("new"), Some("authorization_code")), "{c}");
    let a = s.run_flow("authz", "call", json!({})).await;
    assert_eq!(a["status"], "failed");
    assert!(a.to_string().contains("connection_not_authorized"), "{a}");

    let (status, page, back) = authorize(&s, "authz", "books").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("is authorized and ready"), "{page}");
    // PKCE (S256) and the scopes went to the provider.
    let asked = provider.last_authorize_request().expect("authorize request");
    assert_eq!(asked.code_challenge_method.as_deref(), Some("S256"));
    assert_eq!(asked.scope.as_deref(), Some("accounting"));
    // The state is single use.
    let browser = reqwest::Client::new();
    let again = browser.get(&back).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("unknown, used or expired"));
    // Status: active, with the provider's realmId; no token shown anywhere.
    let c = s.get_json("/v1/integrations/authz/connections/books").await;
    assert_eq!(c["status"], "active", "{c}");
    assert_eq!(c["extras"]["realmId"], "9130350000001", "{c}");
    assert!(c["expiresAt"].is_string(), "{c}");
    let a = s.run_flow("authz", "call", json!({})).await;
    assert_eq!(a["status"], "succeeded", "{a}");

    // The provider expires the access token early: a 401, a refresh (rotating the refresh
    // token), the request again.
    provider.expire_access_tokens();
    let b = s.run_flow("authz", "call", json!({})).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    assert_eq!(provider.token_requests_for("refresh_token"), 1);
    // And again: the rotated refresh token was stored (the old one is retired by now).
    provider.expire_access_tokens();
    let b = s.run_flow("authz", "call", json!({})).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    assert_eq!(provider.token_requests_for("refresh_token"), 2);

    // The grant is revoked: needs_reconnect, a plain message, steps fail with a clear code.
    provider.revoke_all_refresh_tokens();
    provider.expire_access_tokens();
    let c = s.run_flow("authz", "call", json!({})).await;
    assert_eq!(c["status"], "failed", "{c}");
    assert!(c.to_string().contains("connection_needs_reconnect"), "{c}");
    let st = s.get_json("/v1/integrations/authz/connections/books").await;
    assert_eq!(st["status"], "needs_reconnect", "{st}");
    // The flow's notifyEmails are told to authorize it again.
    let id = c["executionId"].as_str().expect("execution id");
    let ex = s.execution(id).await;
    let told = ex["deliveries"].as_array().into_iter().flatten().find(|d| d["kind"] == "notification");
    let told = told.unwrap_or_else(|| panic!("a notification: {ex}"));
    assert!(told.to_string().contains("needs to be authorized again"), "{told}");
    assert!(st["message"].as_str().unwrap_or("").contains("authorize the connection again"), "{st}");
    // Later runs fail at once without asking the provider.
    let before = provider.token_requests();
    let d = s.run_flow("authz", "call", json!({})).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(provider.token_requests(), before);
    // Authorizing again brings it back.
    let (status, page, _) = authorize(&s, "authz", "books").await;
    assert_eq!(status, 200, "{page}");
    let e = s.run_flow("authz", "call", json!({})).await;
    assert_eq!(e["status"], "succeeded", "{e}");
}

backends!(connections_api_lists_tests_and_refuses_what_does_not_apply);
async fn connections_api_lists_tests_and_refuses_what_does_not_apply() {
    let (mock, issued) = provider(|_| true).await;
    let s = TestServer::start_with(|st| st.admin_token = Some("fga_conn_admin".into())).await;
    s.apply(&integration(&mock)).await;
    let all = s.get_json("/v1/integrations/conn/connections").await;
    let names: Vec<(&str, &str, &str)> = all["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["kind"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(names, vec![("api", "oauth2", "new"), ("keyed", "apiKey", "active")]);
    assert!(!all.to_string().contains("s3cret") && !all.to_string().contains("k-123"), "{all}");
    // A test obtains a token without running a flow.
    let (status, _, t) = send(s.api(reqwest::Method::POST, "/v1/integrations/conn/connections/api/test")).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["connection"]["status"], "active", "{t}");
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    assert!(!t.to_string().contains("tok-1"), "{t}");
    // Neither kind has a request of its own to test with, and the answer says so.
    assert!(t["connection"]["tested"].as_str().unwrap().contains("the API was not called"), "{t}");
    let (status, _, t) = send(s.api(reqwest::Method::POST, "/v1/integrations/conn/connections/keyed/test")).await;
    assert_eq!(status, 200, "{t}");
    assert!(t["connection"]["tested"].as_str().unwrap().contains("nothing was contacted"), "{t}");
    assert!(!t.to_string().contains("k-123"), "{t}");
    // The status alone is no test: it says nothing of one.
    assert!(s.get_json("/v1/integrations/conn/connections/keyed").await.get("tested").is_none());
    // A client-credentials connection is not authorized by a person.
    let (status, _, v) = send(s.api(reqwest::Method::GET, "/v1/integrations/conn/connections/api/authorize")).await;
    assert_eq!(status, 400, "{v}");
    let (status, _, v) = send(s.api(reqwest::Method::GET, "/v1/integrations/conn/connections/nope")).await;
    assert_eq!(status, 404, "{v}");
    // Another tenant sees none of it.
    let other = s.create_tenant("fga_conn_admin", "other").await;
    let (status, _, _) =
        send(s.client.get(format!("{}/v1/integrations/conn/connections", s.url)).bearer_auth(&other)).await;
    assert_eq!(status, 404);
    // A callback with a made-up state is refused with a page.
    let r = reqwest::get(format!("{}/oauth/callback?state=forged&code=x", s.url)).await.unwrap();
    assert_eq!(r.status(), 400);
}

backends!(a_dynamics_flow_lists_and_writes_through_its_connection);
async fn a_dynamics_flow_lists_and_writes_through_its_connection() {
    let oauth = flowgate_fakes::OAuthServer::start(
        flowgate_fakes::OAuthConfig::default().with_client("d365-app", "d365-secret"),
    )
    .await;
    let d365 = flowgate_fakes::DynamicsServer::start(&oauth).await;
    for name in ["Contoso", "Fabrikam"] {
        d365.insert("accounts", json!({ "name": name, "statecode": 0 }));
    }
    let s = TestServer::start().await;
    s.apply(&format!(
        r#"
integration: d365
config:
  d365Secret: {{ type: secret, default: d365-secret }}
connections:
  erp:
    dynamics365: {{ url: "{url}", tenantId: contoso-tenant, clientId: d365-app, clientSecret: "{{{{ $config.d365Secret }}}}", tokenUrl: "{token}" }}
flows:
  - flow: mirror
    connection: erp
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: accounts, dynamics: {{ op: list, entity: accounts, select: [name], filter: "statecode eq 0", orderby: "name asc" }} }}
      - {{ id: note, dynamics: {{ op: create, entity: tasks, body: {{ subject: "{{{{ .count }}}} active accounts" }} }} }}
"#,
        url = d365.url(),
        token = oauth.token_url()
    ))
    .await;
    let a = s.run_flow("d365", "mirror", json!({})).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    let tasks = d365.all("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["subject"], "2 active accounts");
    // One client-credentials token for both steps, with the environment's .default scope.
    assert_eq!(oauth.token_requests_for("client_credentials"), 1);
    let status = s.get_json("/v1/integrations/d365/connections/erp").await;
    assert_eq!((status["kind"].as_str(), status["status"].as_str()), (Some("dynamics365"), Some("active")), "{status}");
    // Service protection limits: a 429 with Retry-After is waited out and retried.
    d365.throttle_next(1, 1);
    let b = s.run_flow("d365", "mirror", json!({})).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    let ex = s.execution(b["executionId"].as_str().unwrap()).await;
    let attempts: Vec<(String, i64, String)> = ex["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            (
                st["stepId"].as_str().unwrap().to_owned(),
                st["attempt"].as_i64().unwrap(),
                st["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(attempts[0], ("accounts".to_owned(), 1, "failed".to_owned()), "{attempts:?}");
    assert_eq!(attempts[1], ("accounts".to_owned(), 2, "succeeded".to_owned()), "{attempts:?}");
}

backends!(two_nodes_refresh_a_connection_once);
async fn two_nodes_refresh_a_connection_once() {
    let (mock, issued) = provider(|t| t == "tok-1").await;
    let a = TestServer::start().await;
    // SQLite has one node: this case is PostgreSQL's (a cluster).
    let Some(b) = a.start_peer(|_| {}).await else {
        eprintln!("[connections] two nodes: a PostgreSQL case, nothing to run on SQLite");
        return;
    };
    a.apply(&integration(&mock)).await;
    let on_a = (0..20).map(|i| a.run_flow("conn", "call", json!({ "i": i })));
    let on_b = (0..20).map(|i| b.run_flow("conn", "call", json!({ "i": i })));
    let (ra, rb) = futures::future::join(futures::future::join_all(on_a), futures::future::join_all(on_b)).await;
    for r in ra.iter().chain(&rb) {
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1, "one token request across both nodes");
}

backends!(the_example_syncs_a_dynamics_account_to_a_quickbooks_customer);
async fn the_example_syncs_a_dynamics_account_to_a_quickbooks_customer() {
    use flowgate_fakes::{DynamicsServer, OAuthConfig, OAuthServer, QuickBooksServer};
    let realm = "9130355000000001";
    let oauth = OAuthServer::start(
        OAuthConfig::default()
            .with_client("d365-app", "d365-secret")
            .with_client("qb-app", "qb-secret")
            .with_realm_id(realm),
    )
    .await;
    let d365 = DynamicsServer::start(&oauth).await;
    let qb = QuickBooksServer::start(&oauth).await;
    let account = d365.insert(
        "accounts",
        json!({ "name": "O'Brien Ltd", "emailaddress1": "ap@obrien.example", "telephone1": "+353 1 555 0100" }),
    );
    let s = TestServer::start().await;
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/d365-to-quickbooks/integration.yaml"
    ))
    .expect("the example");
    s.apply(&doc).await;
    let (status, _, v) =
        send(s.api(reqwest::Method::PUT, "/v1/integrations/d365-to-quickbooks/deployment").json(&json!({
            "config": {
                "d365Url": d365.url(), "aadTenant": "contoso", "d365Client": "d365-app", "d365Secret": "d365-secret",
                "d365TokenUrl": oauth.token_url(),
                "qbClient": "qb-app", "qbSecret": "qb-secret",
                "qbBaseUrl": qb.url(), "qbAuthUrl": oauth.authorize_url(), "qbTokenUrl": oauth.token_url(),
                "hookToken": "hook-token-1"
            }
        })))
        .await;
    assert!(status == 200 || status == 201, "{v}");
    let (status, page, _) = authorize(&s, "d365-to-quickbooks", "books").await;
    assert_eq!(status, 200, "{page}");
    let books = s.get_json("/v1/integrations/d365-to-quickbooks/connections/books").await;
    assert_eq!(books["extras"]["realmId"], realm, "{books}");
    // A test calls each API with the connection's credentials (WhoAmI, CompanyInfo).
    for name in ["erp", "books"] {
        let before = (d365.requests(), qb.requests());
        let (status, _, t) =
            send(s.api(reqwest::Method::POST, &format!("/v1/integrations/d365-to-quickbooks/connections/{name}/test")))
                .await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["connection"]["status"], "active", "{t}");
        assert_ne!((d365.requests(), qb.requests()), before, "{name}'s API was called");
    }
    // Credentials the API refuses: a clear failure, not a silent success.
    oauth.expire_access_tokens();
    oauth.revoke_all_refresh_tokens();
    let (status, _, t) =
        send(s.api(reqwest::Method::POST, "/v1/integrations/d365-to-quickbooks/connections/books/test")).await;
    assert_eq!(status, 502, "{t}");
    assert_eq!(
        (t["error"]["code"].as_str(), t["error"]["details"]["code"].as_str()),
        (Some("connection_failed"), Some("connection_needs_reconnect")),
        "{t}"
    );
    let books = s.get_json("/v1/integrations/d365-to-quickbooks/connections/books").await;
    assert_eq!(books["status"], "needs_reconnect", "{books}");
    let (status, page, _) = authorize(&s, "d365-to-quickbooks", "books").await;
    assert_eq!(status, 200, "{page}");

    // Dataverse calls the webhook: the account becomes a customer.
    let call =
        |id: String| s.post_hook("d365/accounts").bearer_auth("hook-token-1").json(&json!({ "accountid": id })).send();
    let r = call(account.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned();
    let ex = s.wait_for(&id, "succeeded").await;
    let customers = qb.all(realm, "Customer");
    assert_eq!(customers.len(), 1, "{ex}");
    assert_eq!(customers[0]["DisplayName"], "O'Brien Ltd");
    assert_eq!(customers[0]["PrimaryEmailAddr"]["Address"], "ap@obrien.example");

    // The account changes: the same customer is updated, not duplicated.
    let mut changed = d365.get("accounts", &account).unwrap();
    changed["emailaddress1"] = json!("billing@obrien.example");
    d365.insert("accounts", changed);
    let r = call(account.clone()).await.unwrap();
    let id = r.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&id, "succeeded").await;
    let customers = qb.all(realm, "Customer");
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["PrimaryEmailAddr"]["Address"], "billing@obrien.example");
    assert_eq!(qb.creations(), 1);
}

backends!(every_connector_operation_runs_through_the_engine);
/// An integration with both connectors' operations in one flow, against the fakes.
async fn every_connector_operation_runs_through_the_engine() {
    use flowgate_fakes::{DynamicsServer, OAuthConfig, OAuthServer, QuickBooksServer};
    let realm = "4620816365000000";
    let oauth = OAuthServer::start(
        OAuthConfig::default()
            .with_client("d365-app", "d365-secret")
            .with_client("qb-app", "qb-secret")
            .with_realm_id(realm),
    )
    .await;
    let d365 = DynamicsServer::start(&oauth).await;
    let qb = QuickBooksServer::start(&oauth).await;
    let s = TestServer::start().await;
    s.apply(&format!(
        r#"
integration: ops
connections:
  erp:
    dynamics365: {{ url: "{d}", tenantId: t, clientId: d365-app, clientSecret: d365-secret, tokenUrl: "{t}" }}
  books:
    quickbooks: {{ clientId: qb-app, clientSecret: qb-secret, baseUrl: "{q}", authUrl: "{a}", tokenUrl: "{t}" }}
flows:
  - flow: dynamics
    connection: erp
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: created, dynamics: {{ op: create, entity: contacts, body: {{ lastname: Berg, emailaddress1: ann@x.example }} }} }}
      - {{ id: got, dynamics: {{ op: get, entity: contacts, id: "{{{{ .contactid }}}}", select: [lastname] }} }}
      - {{ id: updated, dynamics: {{ op: update, entity: contacts, id: "{{{{ $steps.created.contactid }}}}", body: {{ firstname: Ann }}, etag: '{{{{ .["@odata.etag"] }}}}' }} }}
      - {{ id: upserted, dynamics: {{ op: upsert, entity: contacts, id: 00000000-0000-0000-0000-00000000beef, body: {{ lastname: Upserted }} }} }}
      - {{ id: listed, dynamics: {{ op: list, entity: contacts, select: [lastname], orderby: "lastname asc", pageSize: 1 }} }}
      - {{ id: deleted, dynamics: {{ op: delete, entity: contacts, id: "{{{{ $steps.created.contactid }}}}" }} }}
  - flow: quickbooks
    connection: books
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: item, quickbooks: {{ op: create, entity: Item, body: {{ Name: Widget, Type: Service }} }} }}
      - {{ id: read, quickbooks: {{ op: read, entity: Item, id: "{{{{ .Id }}}}" }} }}
      - {{ id: renamed, quickbooks: {{ op: update, entity: Item, id: "{{{{ .Id }}}}", body: {{ Name: Gadget }} }} }}
      - {{ id: found, quickbooks: {{ op: query, query: "SELECT * FROM Item WHERE Name = 'Gadget'" }} }}
      - {{ id: gone, quickbooks: {{ op: delete, entity: Item, id: "{{{{ $steps.item.Id }}}}" }} }}
"#,
        d = d365.url(),
        q = qb.url(),
        a = oauth.authorize_url(),
        t = oauth.token_url()
    ))
    .await;
    let a = s.run_flow("ops", "dynamics", json!({})).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    let ex = s.execution(a["executionId"].as_str().unwrap()).await;
    let out = |id: &str| {
        ex["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["stepId"] == id)
            .map(|st| st["output"].clone())
            .unwrap_or_default()
    };
    assert_eq!(out("got")["lastname"], "Berg");
    assert_eq!(out("updated")["firstname"], "Ann");
    assert_eq!(out("listed")["count"], 2, "two contacts, one per page: {}", out("listed"));
    assert_eq!(out("listed")["pages"], 2);
    assert_eq!(out("deleted")["deleted"], true);
    assert_eq!(d365.all("contacts").len(), 1, "the upserted one is left");

    let (status, page, _) = authorize(&s, "ops", "books").await;
    assert_eq!(status, 200, "{page}");
    let b = s.run_flow("ops", "quickbooks", json!({})).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    let ex = s.execution(b["executionId"].as_str().unwrap()).await;
    let out = |id: &str| {
        ex["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["stepId"] == id)
            .map(|st| st["output"].clone())
            .unwrap_or_default()
    };
    assert_eq!(out("read")["Name"], "Widget");
    assert_eq!(out("renamed")["Name"], "Gadget");
    assert_eq!(out("found")["count"], 1);
    assert_eq!(out("gone")["status"], "Deleted", "{}", out("gone"));
}

backends!(quickbooks_webhooks_are_verified_and_arrive_as_json);
/// QuickBooks' webhooks: signed with the verifier token; both payload shapes arrive as JSON.
async fn quickbooks_webhooks_are_verified_and_arrive_as_json() {
    use flowgate_fakes::quickbooks::{
        EntityChange, WebhookOperation, cloudevents_notification, legacy_notification, sign_webhook,
    };
    let s = TestServer::start().await;
    s.apply(
        r#"
integration: qbo-events
config:
  verifier: { type: secret, default: verifier-token-123 }
flows:
  - flow: events
    trigger: { webhook: { path: qbo/events, verify: { intuit: { secret: "{{ $config.verifier }}" } } } }
    steps:
      - { id: ids, transform: '[ (.body.eventNotifications? // [] | .[].dataChangeEvent.entities[].id), (if (.body | type) == "array" then .body[].intuitentityid else empty end) ]' }
"#,
    )
    .await;
    let change = EntityChange::new("123", "Customer", "58", WebhookOperation::Create);
    for body in
        [legacy_notification(std::slice::from_ref(&change)), cloudevents_notification(std::slice::from_ref(&change))]
    {
        let raw = body.to_string();
        let signed = send(
            s.post_hook("qbo/events")
                .header("content-type", "application/json")
                .header("intuit-signature", sign_webhook("verifier-token-123", raw.as_bytes()))
                .body(raw.clone()),
        )
        .await;
        assert_eq!(signed.0, 202, "{}", signed.2);
        let ex = s.wait_for(signed.2["executionId"].as_str().unwrap(), "succeeded").await;
        assert_eq!(ex["output"], json!(["58"]), "{ex}");
        let forged = send(
            s.post_hook("qbo/events")
                .header("content-type", "application/json")
                .header("intuit-signature", sign_webhook("another-token", raw.as_bytes()))
                .body(raw),
        )
        .await;
        assert_eq!(forged.0, 401, "{}", forged.2);
    }
}

backends!(sql_connections_reach_real_databases_and_keep_tenants_apart);
async fn sql_connections_reach_real_databases_and_keep_tenants_apart() {
    let s = TestServer::start_with(|st| st.admin_token = Some("fga_sql_admin".into())).await;
    let doc = |t: &str| {
        format!(
            r#"
integration: notes
config:
  pg: {{ type: secret, required: true }}
connections:
  lite: {{ sqlite: {{ path: notes/app.db }} }}
  main: {{ postgres: {{ url: "{{{{ $config.pg }}}}" }} }}
flows:
  - flow: note
    trigger: {{ manual: {{}} }}
    steps:
      - id: write
        sql:
          connection: lite
          statements:
            - {{ query: "create table if not exists notes (t text)", result: none }}
            - {{ query: "insert into notes (t) values (?)", params: ["{t}"], result: none }}
      - {{ id: rows, sql: {{ connection: lite, query: "select t from notes order by t" }} }}
      - {{ id: pg, sql: {{ connection: main, query: "select $1::int + 1 as n", params: ["{{{{ $trigger.body.n }}}}"], result: one }} }}
"#
        )
    };
    // PostgreSQL as the connection's database (trust auth: the password is ignored, and must
    // appear nowhere).
    let Some(pg) = common::postgres_url() else {
        common::skip_or_fail("FLOWGATE_TEST_POSTGRES_URL is unset");
        return;
    };
    let pg = pg.replacen("postgres://postgres@", "postgres://postgres:pw-s3cret-77@", 1);
    // A pool per URL per process: each test (its own runtime) gets its own.
    let pg = format!("{pg}?application_name=flowgate-test-{}", std::process::id() ^ rand::random::<u32>());
    let other = s.create_tenant("fga_sql_admin", "other").await;
    for (token, t) in [(s.token.clone(), "from default"), (other.clone(), "from other")] {
        let (status, v) = (
            send(
                s.client
                    .put(format!("{}/v1/integrations/notes", s.url))
                    .bearer_auth(&token)
                    .header("content-type", "application/yaml")
                    .body(doc(t)),
            )
            .await
            .0,
            (),
        );
        assert!(status == 200 || status == 201, "{v:?}");
        let (status, _, v) = send(
            s.client
                .put(format!("{}/v1/integrations/notes/deployment", s.url))
                .bearer_auth(&token)
                .json(&json!({ "config": { "pg": pg } })),
        )
        .await;
        assert!(status == 200 || status == 201, "{v}");
        let (status, _, a) = send(
            s.client
                .post(format!("{}/v1/integrations/notes/flows/note/run?wait=true&timeout=10", s.url))
                .bearer_auth(&token)
                .json(&json!({ "body": { "n": 41 } })),
        )
        .await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["status"], "succeeded", "{a}");
        assert_eq!(a["output"], json!({ "n": 42 }), "{a}");
        let id = a["executionId"].as_str().unwrap();
        let (_, _, ex) = send(s.client.get(format!("{}/v1/executions/{id}", s.url)).bearer_auth(&token)).await;
        let rows = ex["steps"].as_array().unwrap().iter().find(|st| st["stepId"] == "rows").unwrap()["output"].clone();
        // Each tenant's `notes/app.db` is its own file: one row each.
        assert_eq!(rows, json!([{ "t": t }]), "{ex}");
        assert!(!ex.to_string().contains("pw-s3cret-77"), "{ex}");
    }
}

/// Applies integration `slug` with these `connections:` entries (YAML lines indented by two)
/// and a flow that uses none of them.
async fn apply_connections(s: &TestServer, slug: &str, connections: &str) {
    s.apply(&format!(
        r#"
integration: {slug}
connections:{connections}
flows:
  - flow: noop
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: nothing, transform: "." }}
"#
    ))
    .await;
}

/// `POST …/connections/{name}/test` on `slug`: the status and the body.
async fn test_connection(s: &TestServer, slug: &str, name: &str) -> (u16, Value) {
    let (status, _, body) =
        send(s.api(reqwest::Method::POST, &format!("/v1/integrations/{slug}/connections/{name}/test"))).await;
    (status, body)
}

/// Asserts that a test of `name` passed, having done what `tested` says.
async fn assert_tested(s: &TestServer, slug: &str, name: &str, tested: &str) -> Value {
    let (status, t) = test_connection(s, slug, name).await;
    assert_eq!(status, 200, "{name}: {t}");
    assert_eq!(t["connection"]["status"], "active", "{name}: {t}");
    assert!(t["connection"]["tested"].as_str().is_some_and(|d| d.contains(tested)), "{name}: {t}");
    t
}

/// Asserts that a test of `name` failed with the step's `code`, saying `said` and never
/// `secret`.
async fn assert_test_fails(s: &TestServer, slug: &str, name: &str, code: &str, said: &str, secret: &str) {
    let (status, t) = test_connection(s, slug, name).await;
    assert_eq!(status, 502, "{name}: {t}");
    assert_eq!(t["error"]["code"], "connection_failed", "{name}: {t}");
    assert_eq!(t["error"]["details"]["code"], code, "{name}: {t}");
    assert!(t["error"]["message"].as_str().is_some_and(|m| m.contains(said)), "{name}: {t}");
    assert!(!t.to_string().contains(secret), "{name}: {t}");
}

backends!(database_connections_are_tested_with_select_1);
async fn database_connections_are_tested_with_select_1() {
    let Some(pg) = common::postgres_url() else {
        common::skip_or_fail("FLOWGATE_TEST_POSTGRES_URL is unset");
        return;
    };
    // Trust auth: the password is ignored by the server, and must appear nowhere.
    let pg = pg.replacen("postgres://postgres@", "postgres://postgres:pw-s3cret-77@", 1);
    let s = TestServer::start().await;
    let connections = format!(
        r#"
  main: {{ postgres: {{ url: "{pg}" }} }}
  down: {{ postgres: {{ url: "postgres://app:pw-s3cret-88@127.0.0.1:1/app" }} }}
  lite: {{ sqlite: {{ path: tested/app.db }} }}"#
    );
    apply_connections(&s, "dbs", &connections).await;
    let t = assert_tested(&s, "dbs", "main", "ran SELECT 1").await;
    assert!(!t.to_string().contains("pw-s3cret-77"), "{t}");
    assert_tested(&s, "dbs", "lite", "ran SELECT 1").await;
    // Nothing listens on port 1: the test fails, saying why, without the password.
    assert_test_fails(&s, "dbs", "down", "sql_unavailable", "PostgreSQL", "pw-s3cret-88").await;
}

backends!(broker_connections_are_tested_against_the_brokers);
async fn broker_connections_are_tested_against_the_brokers() {
    let vars = ["FLOWGATE_TEST_AMQP_URL", "FLOWGATE_TEST_NATS_URL", "FLOWGATE_TEST_MQTT_URL"];
    let urls: Vec<String> = vars.iter().filter_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty())).collect();
    let [amqp, nats, mqtt] = &urls[..] else {
        common::skip_or_fail(&format!("one of {vars:?} is unset"));
        return;
    };
    let s = TestServer::start().await;
    let connections = format!(
        r#"
  mq: {{ amqp: {{ url: "{amqp}" }} }}
  js: {{ nats: {{ url: "{nats}" }} }}
  iot: {{ mqtt: {{ url: "{mqtt}", clientId: fg-connection-test }} }}
  mq-down: {{ amqp: {{ url: "amqp://app:pw-s3cret-1@127.0.0.1:1/%2f" }} }}
  js-down: {{ nats: {{ url: "nats://app:pw-s3cret-2@127.0.0.1:1" }} }}
  iot-down: {{ mqtt: {{ url: "mqtt://app:pw-s3cret-3@127.0.0.1:1" }} }}"#
    );
    apply_connections(&s, "brokers", &connections).await;
    assert_tested(&s, "brokers", "mq", "opened a channel").await;
    assert_tested(&s, "brokers", "js", "sent a message through it and back").await;
    assert_tested(&s, "brokers", "iot", "CONNACK").await;
    assert_test_fails(&s, "brokers", "mq-down", "amqp_unavailable", "AMQP", "pw-s3cret-1").await;
    assert_test_fails(&s, "brokers", "js-down", "nats_unavailable", "NATS", "pw-s3cret-2").await;
    assert_test_fails(&s, "brokers", "iot-down", "mqtt_unavailable", "MQTT", "pw-s3cret-3").await;
}
