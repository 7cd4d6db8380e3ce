//! The webhook step: the request evaluated and checked, then handed to the engine to send.

use super::check_request;
use crate::test_support::{Harness, Ran, Sent, compile_one, has_problem, problems, run};
use flowgate_model::outbound::DEFAULT_SCHEDULE_SECS;
use serde_json::{Value, json};
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn default_delays() -> Vec<Duration> {
    DEFAULT_SCHEDULE_SECS.iter().map(|s| Duration::from_secs(*s)).collect()
}

#[tokio::test]
async fn a_disabled_webhook_sends_nothing() {
    let r = run(
        json!({"id": "w", "webhook": {"name": "Off", "enabled": false, "endpoint": "{{ $config.missing }}"}}),
        json!({"a": 1}),
    )
    .await;
    assert_eq!(r.ok(), &Ran::Output(json!({"status": "disabled"})));
}

#[tokio::test]
async fn an_enabled_webhook_is_sent() {
    let step = compile_one(json!({"id": "tell-partner", "webhook": {
        "name": "Send customer data",
        "endpoint": "{{ $config.partnerUrl }}/hook",
        "headers": {"X-Tenant": "{{ .tenant }}"},
        "body": {"customer": "{{ . }}"},
        "auth": {"standardWebhooks": {"secret": "{{ $config.partnerSecret }}"}},
        "wait": true,
        "schedule": ["0s", "10s", "1h"],
    }}));
    let h = Harness::new().config(json!({"partnerUrl": "https://partner.example", "partnerSecret": SECRET}));
    let input = json!({"tenant": "t1", "id": 9});
    let r = h.run(&step, input.clone()).await;
    assert_eq!(
        r.sent(),
        &Sent {
            kind: "webhook",
            name: "Send customer data".into(),
            message: json!({
                "url": "https://partner.example/hook",
                "headers": {"X-Tenant": "t1"},
                "body": {"customer": input},
                "auth": {"kind": "standardWebhooks", "secret": SECRET},
            }),
            delays: vec![Duration::ZERO, Duration::from_secs(10), Duration::from_secs(3600)],
            wait: true,
            show_message_id: true,
        }
    );
}

#[tokio::test]
async fn defaults_send_the_input_without_auth_and_do_not_wait() {
    let input = json!({"id": 1});
    let r =
        run(json!({"id": "w", "webhook": {"name": "Plain", "endpoint": "http://receiver.example/in"}}), input.clone())
            .await;
    let sent = r.sent();
    assert_eq!(
        sent.message,
        json!({"url": "http://receiver.example/in", "headers": {}, "body": input, "auth": {"kind": "none"}})
    );
    assert_eq!(sent.delays, default_delays());
    assert!(!sent.wait && sent.show_message_id);
}

#[tokio::test]
async fn credentials_are_evaluated_into_the_request() {
    let step = compile_one(json!({"id": "w", "webhook": {
        "name": "Basic", "endpoint": "https://r.example",
        "auth": {"basic": {"username": "flow", "password": "{{ $config.pw }}"}},
    }}));
    let r = Harness::new().config(json!({"pw": "s3cret"})).run(&step, json!(null)).await;
    assert_eq!(r.sent().message["auth"], json!({"kind": "basic", "username": "flow", "password": "s3cret"}));

    let step = compile_one(json!({"id": "w", "webhook": {
        "name": "Client", "endpoint": "https://r.example",
        "auth": {"clientSecret": {"secret": "{{ $config.cs }}", "field": "clientSecret"}},
    }}));
    let r = Harness::new().config(json!({"cs": "abc"})).run(&step, json!(null)).await;
    assert_eq!(
        r.sent().message["auth"],
        json!({"kind": "clientSecret", "secret": "abc", "header": true, "field": "clientSecret"})
    );
    // An unset config value shows here, not at the receiver.
    let e = Harness::new().run(&step, json!(null)).await.err().clone();
    assert_eq!(e.code, "webhook_request");
}

#[tokio::test]
async fn a_url_that_is_not_http_is_fatal() {
    let step = compile_one(json!({"id": "w", "webhook": {"name": "W", "endpoint": "{{ $config.url }}"}}));
    for url in [json!("ftp://partner.example/hook"), json!("partner.example"), json!(null), json!(42)] {
        let r = Harness::new().config(json!({ "url": url })).run(&step, json!(null)).await;
        let e = r.err();
        assert_eq!(e.code, "webhook_request", "{url}");
        assert!(!e.retryable && e.message.contains("not an http(s) URL"), "{e:?}");
    }
}

#[tokio::test]
async fn a_bad_signing_secret_is_fatal() {
    let step = compile_one(json!({"id": "w", "webhook": {
        "name": "W", "endpoint": "https://r.example",
        "auth": {"standardWebhooks": {"secret": "{{ $config.secret }}"}},
    }}));
    for secret in [json!("whsec_short"), json!("not base64 !"), json!(null)] {
        let r = Harness::new().config(json!({ "secret": secret })).run(&step, json!(null)).await;
        let e = r.err();
        assert_eq!(e.code, "webhook_request", "{secret}");
        assert!(!e.retryable && e.message.contains("whsec_"), "{e:?}");
    }
}

#[test]
fn check_request_accepts_only_requests_a_delivery_can_make() {
    let req = |url: &str, auth: Value| json!({"url": url, "headers": {}, "body": null, "auth": auth});
    assert_eq!(check_request(&req("https://a.example", json!({"kind": "none"}))), Ok(()));
    assert_eq!(check_request(&req("http://a.example", json!({"kind": "standardWebhooks", "secret": SECRET}))), Ok(()));
    assert!(check_request(&req("ftp://a.example", json!({"kind": "none"}))).unwrap_err().contains("ftp://a.example"));
    assert!(check_request(&json!({"auth": {"kind": "none"}})).is_err());
    let bad = [
        json!({"kind": "standardWebhooks", "secret": "whsec_short"}),
        json!({"kind": "clientSecret", "secret": ""}),
        json!({"kind": "clientSecret", "secret": "x".repeat(251)}),
        json!({"kind": "basic", "username": "u", "password": "p".repeat(101)}),
        json!({"kind": "basic", "username": null, "password": "p"}),
    ];
    for auth in bad {
        assert!(check_request(&req("https://a.example", auth.clone())).is_err(), "{auth}");
    }
    assert_eq!(
        check_request(&req("https://a.example", json!({"kind": "clientSecret", "secret": "x".repeat(250)}))),
        Ok(())
    );
    assert_eq!(
        check_request(&req("https://a.example", json!({"kind": "basic", "username": "u", "password": "p"}))),
        Ok(())
    );
}

#[test]
fn literal_mistakes_are_problems() {
    let p = problems(json!({"id": "w", "webhook": {"name": "W", "endpoint": "ftp://x"}}));
    assert!(has_problem(&p, "steps[0].webhook.endpoint", "expected an http:// or https:// URL"), "{p:?}");
    let p = problems(json!({"id": "w", "webhook": {
        "name": "W", "endpoint": "https://x", "auth": {"standardWebhooks": {"secret": "whsec_short"}},
    }}));
    assert!(has_problem(&p, "steps[0].webhook.auth.standardWebhooks.secret", "signing secret"), "{p:?}");
    let p = problems(json!({"id": "w", "webhook": {"name": "W", "endpoint": "https://x", "body": "{{ . | }}"}}));
    assert!(has_problem(&p, "steps[0].webhook.body", "expression does not compile"), "{p:?}");
}
