//! Issue 6 through the binary: `flowgate test` on passing and failing cases (exit codes, the
//! diff it prints), master key rotation with the server stopped (secrets still open, the
//! plaintext never on disk), and the `call` step across a SIGKILL (each parent ends with
//! exactly one child, and resumes waiting for it).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{Node, free_port, get_json, wait_ready};

const TOKEN: &str = "fgt_products_test_token";

fn flowgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate")).args(args).output().expect("run flowgate")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const TESTED: &str = r#"
integration: tested
config:
  base: { type: string, default: "http://127.0.0.1:9/unreachable" }
flows:
  - flow: quote
    trigger: { webhook: { path: tested/quote, respond: { mode: sync } } }
    steps:
      - id: price
        http: { url: "{{ $config.base }}/price/{{ $trigger.body.sku }}" }
      - id: total
        transform: '{ sku: $trigger.body.sku, total: ($steps.price.body.unit * $trigger.body.qty) }'
      - id: big
        filter: '.total > 10'
      - id: reply
        respond: { status: 201, body: { total: "{{ .total }}" } }
tests:
  - name: big orders are answered
    flow: quote
    trigger: { body: { sku: A-1, qty: 4 } }
    mocks: { price: { status: 200, body: { unit: 5 } } }
    expect:
      steps: { total: { total: 20 } }
      respond: { status: 201, body: { total: 20 } }
      jq: [ '$steps.price.body.unit == 5', '.total > 10' ]
  - name: small orders are filtered
    flow: quote
    trigger: { body: { sku: A-1, qty: 1 } }
    mocks: { price: { status: 200, body: { unit: 5 } } }
    expect: { status: filtered }
  - name: a wrong total
    flow: quote
    trigger: { body: { sku: A-1, qty: 3 } }
    mocks: { price: { status: 200, body: { unit: 5 } } }
    expect: { output: { total: 16 }, jq: [ '.sku == "B-2"' ] }
"#;

#[test]
fn flowgate_test_reports_passes_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tested.yaml");
    std::fs::write(&file, TESTED).unwrap();
    let file = file.to_str().unwrap();
    let all = flowgate(&["test", file]);
    let out = text(&all);
    assert_eq!(all.status.code(), Some(1), "{out}");
    assert!(out.contains("ok   big orders are answered"), "{out}");
    assert!(out.contains("ok   small orders are filtered"), "{out}");
    assert!(out.contains("FAIL a wrong total"), "{out}");
    assert!(out.contains("output.total: the output differs"), "{out}");
    assert!(out.contains("- expected 16") && out.contains("+ actual   15"), "{out}");
    assert!(out.contains("jq[0]: `.sku == \"B-2\"` does not hold"), "{out}");
    assert!(out.contains("2 passed, 1 failed"), "{out}");
    let one = flowgate(&["test", file, "--name", "big orders are answered"]);
    assert!(one.status.success(), "{}", text(&one));
    let json = flowgate(&["test", file, "--json", "--name", "a wrong total"]);
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["passed"], false);
    assert_eq!(report["results"][0]["failures"].as_array().map(Vec::len), Some(2));
    // A test naming an unknown step is a located problem.
    std::fs::write(dir.path().join("bad.yaml"), TESTED.replace("mocks: { price:", "mocks: { prize:")).unwrap();
    let bad = flowgate(&["test", dir.path().join("bad.yaml").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("tests[0].mocks.prize: flow `quote` has no step `prize`"), "{}", text(&bad));
}

fn start(dir: &std::path::Path, port: u16) -> Node {
    Node(common::serve(dir, port, TOKEN).spawn().expect("start flowgate"))
}

/// A target recording each request's path, `Authorization` header and `Idempotency-Key`.
#[derive(Default)]
struct Target {
    seen: Mutex<Vec<(String, String, String)>>,
}

async fn target(delay: Duration) -> (String, Arc<Target>) {
    let state = Arc::new(Target::default());
    let handler = move |State(t): State<Arc<Target>>, uri: axum::http::Uri, headers: HeaderMap| async move {
        // A slow target's latency (keeps children in flight at the kill), not synchronisation.
        tokio::time::sleep(delay).await;
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        t.seen.lock().unwrap().push((uri.path().to_owned(), h("authorization"), h("idempotency-key")));
        axum::Json(json!({ "ok": true, "unit": 2 }))
    };
    let app = axum::Router::new().route("/{*path}", post(handler)).with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

const VAULT_KEY: &str = "vault-literal-key-777777";
const VAULT_TOKEN: &str = "vault_secret_token_4242";

fn vault_doc(base: &str) -> String {
    format!(
        r#"
integration: vault
config:
  token: {{ type: secret, required: true }}
flows:
  - flow: push
    trigger: {{ webhook: {{ path: vault/push, auth: {{ bearer: {{ token: {VAULT_KEY} }} }} }} }}
    steps:
      - id: send
        http: {{ method: POST, url: "{base}/push", headers: {{ Authorization: "Bearer {{{{ $config.token }}}}" }} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_keeps_every_secret() {
    flowgate_steps::util::install_tls();
    let (up, seen) = target(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let node = start(dir.path(), port);
    wait_ready(&client, &base).await;
    let r = client
        .put(format!("{base}/v1/integrations/vault"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(vault_doc(&up))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = client
        .put(format!("{base}/v1/integrations/vault/deployment"))
        .bearer_auth(TOKEN)
        .json(&json!({ "config": { "token": VAULT_TOKEN } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let push =
        || client.post(format!("{base}/hooks/default/vault/push")).bearer_auth(VAULT_KEY).json(&json!({})).send();
    assert_eq!(push().await.unwrap().status(), 202);
    // A log source with a collector token and the tenant's SMTP password are sealed too.
    let r = client
        .put(format!("{base}/v1/log-sources/siem"))
        .bearer_auth(TOKEN)
        .json(&json!({ "http": { "url": format!("{up}/logs"), "headers": { "Authorization": "Bearer siem-token-5150" } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = client
        .put(format!("{base}/v1/smtp"))
        .bearer_auth(TOKEN)
        .json(&json!({ "url": "smtp+starttls://flows%40acme.example:smtp-pw-9090@127.0.0.1:2525" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // A connection's token, obtained and stored sealed.
    let oauth =
        flowgate_fakes::OAuthServer::start(flowgate_fakes::OAuthConfig::default().with_client("app", "app-secret"))
            .await;
    let conn_doc = format!(
        "integration: tokens\nconnections:\n  svc:\n    oauth2: {{ grant: client_credentials, tokenUrl: \"{}\", clientId: app, clientSecret: app-secret }}\nflows:\n  - flow: f\n    trigger: {{ manual: {{}} }}\n    steps: [ {{ id: t, transform: '.' }} ]\n",
        oauth.token_url()
    );
    let r = client
        .put(format!("{base}/v1/integrations/tokens"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(conn_doc)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let test_connection =
        || client.post(format!("{base}/v1/integrations/tokens/connections/svc/test")).bearer_auth(TOKEN).send();
    assert_eq!(test_connection().await.unwrap().status(), 200);
    assert_eq!(oauth.token_requests(), 1);
    let old_key = std::fs::read_to_string(dir.path().join("master.key")).unwrap();

    // Refused while the server runs (it holds the data directory).
    let busy = flowgate(&["keys", "rotate-master", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(busy.status.code(), Some(2), "{}", text(&busy));
    drop(node);
    let rotated = flowgate(&["keys", "rotate-master", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    // 4 before, and the tokens integration: its deployment, its version (the literal client
    // secret) and its connection's token.
    assert!(text(&rotated).contains("Re-sealed 7 stored secret sets"), "{}", text(&rotated));
    let new_key = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(std::fs::read_to_string(dir.path().join("master.key.old")).unwrap(), old_key);
    // Without the old key the values open with the new one alone.
    std::fs::remove_file(dir.path().join("master.key.old")).unwrap();

    let _node = start(dir.path(), port);
    wait_ready(&client, &base).await;
    assert_eq!(push().await.unwrap().status(), 202, "the literal credential still opens the webhook");
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.seen.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the pushes did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, auth, _) in seen.seen.lock().unwrap().iter().filter(|(p, _, _)| p == "/push") {
        assert_eq!(auth, &format!("Bearer {VAULT_TOKEN}"), "the secret opens after the rotation");
    }
    // The stored token opens with the new key: no new token request.
    let r = test_connection().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(oauth.token_requests(), 1, "the stored token was used");
    let get = |path: &str| client.get(format!("{base}{path}")).bearer_auth(TOKEN).send();
    let sources: serde_json::Value = get("/v1/log-sources").await.unwrap().json().await.unwrap();
    assert_eq!(sources["items"][0]["config"]["http"]["headers"]["Authorization"], "«redacted»", "{sources}");
    let smtp: serde_json::Value = get("/v1/smtp").await.unwrap().json().await.unwrap();
    assert_eq!((smtp["source"].clone(), smtp["passwordSet"].clone()), (json!("tenant"), json!(true)), "{smtp}");
    for name in ["flowgate.db", "flowgate.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            for secret in [VAULT_KEY, VAULT_TOKEN, "siem-token-5150", "smtp-pw-9090"] {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in {name}");
            }
        }
    }
}

const CALLER: &str = r#"
integration: chain
flows:
  - flow: parent
    trigger: { webhook: { path: chain/parent } }
    steps:
      - id: child
        call: { flow: child, input: { n: "{{ $trigger.body.n }}" } }
      - id: done
        transform: '{ n: $trigger.body.n, child: $steps.child.body.ok }'
  - flow: child
    trigger: { manual: {} }
    steps:
      - id: slow
        http: { method: POST, url: "TARGET/child", json: "{{ .body }}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_steps_survive_a_sigkill() {
    const PARENTS: usize = 40;
    flowgate_steps::util::install_tls();
    let (up, seen) = target(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let node = start(dir.path(), port);
    wait_ready(&client, &base).await;
    let r = client
        .put(format!("{base}/v1/integrations/chain"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(CALLER.replace("TARGET", &up))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut parents = Vec::new();
    for n in 0..PARENTS {
        let v: Value = client
            .post(format!("{base}/hooks/default/chain/parent"))
            .json(&json!({ "n": n }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        parents.push(v["executionId"].as_str().unwrap().to_owned());
    }
    // Kill once the first children got through: others are waiting on the slow target, and
    // their parents on them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no child reached the target");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before_kill = seen.seen.lock().unwrap().len();
    drop(node);
    let _node = start(dir.path(), port);
    wait_ready(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    for id in &parents {
        let ex = loop {
            let ex: Value = get_json(&client, &format!("{base}/v1/executions/{id}"), TOKEN).await;
            match ex["status"].as_str().unwrap() {
                "succeeded" => break ex,
                "queued" | "running" => {}
                other => panic!("parent {id} ended {other}: {ex:#}"),
            }
            assert!(Instant::now() < deadline, "parent {id} did not finish: {ex:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(ex["output"]["child"], true, "{ex:#}");
        let kids: Vec<String> =
            ex["children"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(kids.len(), 1, "parent {id} has {} children: {ex:#}", kids.len());
        children.insert(id.clone(), kids);
    }
    // Each child's request reached the target; re-sends (in flight at the kill) carry the
    // same Idempotency-Key.
    let seen = seen.seen.lock().unwrap().clone();
    let keys: std::collections::HashSet<&str> = seen.iter().map(|(_, _, k)| k.as_str()).collect();
    assert_eq!(keys.len(), PARENTS, "one child step per parent reached the target ({} requests)", seen.len());
    for kids in children.values() {
        assert!(keys.contains(format!("{}:slow", kids[0]).as_str()));
    }
    assert!(before_kill < PARENTS, "the kill came after every child was done");
    println!(
        "call across a SIGKILL: {PARENTS} parents, {PARENTS} children ({before_kill} done at the kill), {} target requests ({} re-sends)",
        seen.len(),
        seen.len() - PARENTS
    );
}

#[test]
fn the_acme_erp_example_tests_pass() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/acme-erp/integration.yaml");
    let out = flowgate(&["test", file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("4 passed, 0 failed"), "{}", text(&out));
}
