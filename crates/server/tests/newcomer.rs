//! What a new user tripped over (issue 14), each held by a test: sync duplicates say so, a
//! document read back applies again (literal `verify` secrets included), a refused webhook
//! caller learns which credential the webhook expects, and a failure folded into the
//! notification digest is not shown as delivered.

mod common;

use common::*;
use serde_json::json;

backends!(a_repeated_sync_webhook_says_it_is_a_repeat);
/// A repeated `Idempotency-Key` on a sync webhook gets the first answer, marked as a repeat
/// like an async one.
async fn a_repeated_sync_webhook_says_it_is_a_repeat() {
    let s = TestServer::start().await;
    s.apply("integration: echo\nflows:\n  - flow: f\n    trigger: { webhook: { path: echo, respond: { mode: sync, timeout: 10s } } }\n    steps:\n      - { id: t, transform: '{ got: $trigger.body.n }' }\n").await;
    let call = |n: i64| s.post_hook("echo").header("idempotency-key", "k-1").json(&json!({ "n": n }));
    let (status, headers, first) = send(call(1)).await;
    assert_eq!((status, first.clone()), (200, json!({ "got": 1 })));
    assert!(headers.get("x-flowgate-duplicate").is_none());
    let (status, headers, again) = send(call(2)).await;
    assert_eq!((status, again), (200, first), "the first answer");
    assert_eq!(headers.get("x-flowgate-duplicate").map(|h| h.to_str().unwrap()), Some("true"));
}

backends!(a_document_read_back_applies_again);
/// The source the API returns holds markers for literal credentials; applying it again keeps
/// the credentials — also for a `verify` secret, which a marker would not pass as (it is
/// checked once the values are back in). The webhook still verifies with the original key.
async fn a_document_read_back_applies_again() {
    let s = TestServer::start().await;
    let doc = "integration: rt\nflows:\n  - flow: f\n    trigger: { webhook: { path: rt, auth: { bearer: { token: literal-token-123 } }, verify: { standardWebhooks: { secret: \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" } } } }\n    steps: []\n";
    s.apply(doc).await;
    let source = s.get_json("/v1/integrations/rt").await["source"].as_str().unwrap().to_owned();
    assert!(source.contains("«secret:") && !source.contains("whsec_"), "{source}");
    let edited = source.replace("steps: []", "steps: [ { id: t, transform: '1' } ]");
    let (status, v) = s.put_integration("rt", &edited).await;
    assert!((200..300).contains(&status), "{v}");
    assert_eq!(v["version"], 2, "{v}");
    // Unchanged: the same source again is the same version.
    let (status, v) = s.put_integration("rt", &edited).await;
    assert_eq!((status, v["version"].clone()), (200, json!(2)), "{v}");
    // Still guarded by the original credentials.
    let (status, _, v) = send(s.post_hook("rt").bearer_auth("literal-token-123").json(&json!({}))).await;
    assert_eq!((status, v["error"]["code"].clone()), (401, json!("invalid_signature")), "{v}");
    // A marker the integration does not have is refused, saying what to do.
    let (status, v) = s.put_integration("rt", &edited.replace("lit0", "lit9")).await;
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("write the credential itself"), "{v}");
}

backends!(a_refused_webhook_caller_learns_the_expected_scheme);
/// A caller whose credentials are wrong or missing learns how the webhook expects them — the
/// header, the query parameter, the scheme — never the secret.
async fn a_refused_webhook_caller_learns_the_expected_scheme() {
    let s = TestServer::start().await;
    s.apply("integration: auth\nflows:\n  - flow: b\n    trigger: { webhook: { path: b, auth: { bearer: { token: tok-secret-1 } } } }\n    steps: []\n  - flow: k\n    trigger: { webhook: { path: k, auth: { apiKey: { header: X-Api-Key, keys: [{ label: partner, secret: key-secret-1 }] } } } }\n    steps: []\n  - flow: q\n    trigger: { webhook: { path: q, auth: { apiKey: { query: key, keys: [{ label: partner, secret: key-secret-2 }] } } } }\n    steps: []\n").await;
    for (path, expected) in [
        ("b", "an `Authorization: Bearer <token>` header"),
        ("k", "an API key in the `x-api-key` header"),
        ("q", "an API key in the `key` query parameter"),
    ] {
        let (status, _, v) = send(s.post_hook(path).bearer_auth("wrong").json(&json!({}))).await;
        assert_eq!(status, 401, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{path}: {message}");
        assert!(!v.to_string().contains("secret-"), "{v}");
    }
}

/// A node whose master key is not the database's is refused, saying so — and a key file it
/// made for itself on the way is not left behind to mislead the next start.
#[tokio::test]
async fn a_node_refused_for_its_key_leaves_no_key_file() {
    flowgate_steps::util::install_tls();
    let dir = tempfile::tempdir().unwrap();
    let settings = || flowgate_server::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        bootstrap_token: Some("fgt_newcomer_token_0123456789".into()),
        ..Default::default()
    };
    let server = flowgate_server::Server::bind(settings()).await.expect("first start");
    drop(server);
    let key = dir.path().join("master.key");
    assert!(key.exists());
    std::fs::remove_file(&key).unwrap();
    let refused = flowgate_server::Server::bind(settings()).await.err().expect("a node with another key is refused");
    assert!(refused.to_string().contains("sealed with master key"), "{refused}");
    assert!(!key.exists(), "no stray key file");
}
