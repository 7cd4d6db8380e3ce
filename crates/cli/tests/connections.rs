//! A SIGKILL between a token endpoint's answer and its commit does not brick a connection
//! (issue 17): the provider rotates the refresh token, the node dies before storing the new
//! one, and after a restart the stored (old) refresh token still works — as it does at
//! QuickBooks until the new one is used — so the interrupted execution resumes and succeeds.

use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{Node, free_port, get_json, serve, wait_ready, wait_until};

const TOKEN: &str = "fgt_connections_crash_token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_a_token_answer_and_its_commit_does_not_brick_the_connection() {
    flowgate_steps::util::install_tls();
    let oauth = Arc::new(
        flowgate_fakes::OAuthServer::start(flowgate_fakes::OAuthConfig::default().with_client("app", "app-secret"))
            .await,
    );
    // The API: only the provider's live tokens pass.
    let guard = oauth.clone();
    let api = axum::Router::new().route(
        "/api",
        get(move |headers: axum::http::HeaderMap| {
            let guard = guard.clone();
            async move {
                let token =
                    headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
                match token {
                    Some(t) if guard.validate_access(t) => {
                        (axum::http::StatusCode::OK, axum::Json(json!({ "ok": true })))
                    }
                    _ => (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "invalid_token" }))),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut node = Node(serve(dir.path(), port, TOKEN).spawn().expect("start flowgate"));
    wait_ready(&client, &base).await;
    let doc = format!(
        "integration: books\nconnections:\n  qb:\n    oauth2: {{ grant: authorization_code, authUrl: \"{}\", tokenUrl: \"{}\", clientId: app, clientSecret: app-secret }}\nflows:\n  - flow: call\n    trigger: {{ manual: {{}} }}\n    steps:\n      - {{ id: get, http: {{ connection: qb, url: \"{api_url}/api\" }} }}\n",
        oauth.authorize_url(),
        oauth.token_url()
    );
    let r = client
        .put(format!("{base}/v1/integrations/books"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // A person authorizes the connection (the fake consents at once).
    let v = get_json(&client, &format!("{base}/v1/integrations/books/connections/qb/authorize"), TOKEN).await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let consent = browser.get(v["url"].as_str().expect("url")).send().await.unwrap();
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    let page = browser.get(&back).send().await.unwrap();
    assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
    assert_eq!(oauth.tokens_issued(), 1);

    // The access token expires; the next run refreshes — the provider rotates the refresh
    // token and takes its time answering; the node is killed before the answer arrives.
    oauth.expire_access_tokens();
    oauth.set_answer_delay(Duration::from_secs(30));
    let run = client
        .post(format!("{base}/v1/integrations/books/flows/call/run"))
        .bearer_auth(TOKEN)
        .json(&json!({ "body": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 202);
    let id = run.json::<Value>().await.unwrap()["executionId"].as_str().expect("execution id").to_owned();
    wait_until("the provider to issue the refreshed tokens", async || oauth.tokens_issued() == 2).await;
    node.0.kill().unwrap(); // SIGKILL: the new refresh token never reaches the store
    let _ = node.0.wait();
    oauth.set_answer_delay(Duration::ZERO);

    // After a restart the interrupted execution resumes: its refresh uses the stored (old)
    // refresh token, which the provider still honours because the new one was never used.
    let _node = Node(serve(dir.path(), port, TOKEN).spawn().expect("restart flowgate"));
    wait_ready(&client, &base).await;
    wait_until("the interrupted execution to succeed", async || {
        get_json(&client, &format!("{base}/v1/executions/{id}"), TOKEN).await["status"] == "succeeded"
    })
    .await;
    assert_eq!(oauth.token_requests_for("refresh_token"), 2, "the lost refresh, then one with the old token");
    let status = get_json(&client, &format!("{base}/v1/integrations/books/connections/qb"), TOKEN).await;
    assert_eq!(status["status"], "active", "{status}");
    // And the connection keeps working: the token stored after the restart is live.
    let r = client
        .post(format!("{base}/v1/integrations/books/flows/call/run?wait=true&timeout=10"))
        .bearer_auth(TOKEN)
        .json(&json!({ "body": {} }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(r["status"], "succeeded", "{r}");
}

/// `flowgate connections …` against a server: list, authorize (prints the URL), test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_commands_list_authorize_and_test() {
    flowgate_steps::util::install_tls();
    let oauth =
        flowgate_fakes::OAuthServer::start(flowgate_fakes::OAuthConfig::default().with_client("app", "app-secret"))
            .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let _node = Node(serve(dir.path(), port, TOKEN).spawn().expect("start flowgate"));
    wait_ready(&client, &base).await;
    let doc = format!(
        "integration: cli\nconnections:\n  books:\n    oauth2: {{ grant: authorization_code, authUrl: \"{a}\", tokenUrl: \"{t}\", clientId: app, clientSecret: app-secret }}\n  svc:\n    oauth2: {{ grant: client_credentials, tokenUrl: \"{t}\", clientId: app, clientSecret: app-secret }}\nflows:\n  - flow: f\n    trigger: {{ manual: {{}} }}\n    steps: [ {{ id: t, transform: '.' }} ]\n",
        a = oauth.authorize_url(),
        t = oauth.token_url()
    );
    let r = client
        .put(format!("{base}/v1/integrations/cli"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(common::BIN)
            .args(args)
            .env("FLOWGATE_URL", &base)
            .env("FLOWGATE_TOKEN", TOKEN)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = cli(&["connections", "list", "cli"]);
    assert!(ok, "{text}");
    assert!(text.contains("books") && text.contains("not authorized yet") && text.contains("svc"), "{text}");
    let (ok, text) = cli(&["connections", "authorize", "cli", "books"]);
    assert!(ok, "{text}");
    let url = text.lines().find(|l| l.starts_with("http")).expect("a URL line").to_owned();
    assert!(url.starts_with(&oauth.authorize_url()) && url.contains("code_challenge="), "{url}");
    let (ok, text) = cli(&["connections", "test", "cli", "svc"]);
    assert!(ok, "{text}");
    assert!(text.contains("svc") && text.contains("active"), "{text}");
    let (ok, text) = cli(&["connections", "authorize", "cli", "svc"]);
    assert!(!ok, "a client-credentials connection has nothing to authorize: {text}");
    assert!(text.contains("client-credentials"), "{text}");
}
