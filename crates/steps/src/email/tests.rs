//! The email step: the message evaluated and checked, then handed to the engine to send.

use crate::test_support::{Harness, Sent, compile, compile_one, has_problem, problems, run};
use serde_json::json;
use std::time::Duration;

fn secs(s: &[u64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs(*s)).collect()
}

#[tokio::test]
async fn the_message_is_sent_named_by_its_subject() {
    let step = compile_one(json!({"id": "mail", "email": {
        "to": "ops@progix.example, {{ $config.owner }}",
        "cc": ["{{ .manager }}"],
        "from": "flows@progix.example",
        "replyTo": "support@progix.example",
        "subject": "Synced {{ .name }}",
        "text": "Customer {{ .name }} is in Progix.",
        "attachments": [{"filename": "report.csv", "contentType": "text/csv", "text": "{{ $steps.csv }}"}],
    }}));
    let h = Harness::new().config(json!({"owner": "owner@progix.example"})).steps(json!({"csv": "a,b\n1,2\n"}));
    let r = h.run(&step, json!({"name": "Ada", "manager": "boss@progix.example"})).await;
    assert_eq!(
        r.sent(),
        &Sent {
            kind: "email",
            name: "Synced Ada".into(),
            message: json!({
                "to": "ops@progix.example, owner@progix.example",
                "cc": ["boss@progix.example"],
                "bcc": null,
                "from": "flows@progix.example",
                "replyTo": "support@progix.example",
                "subject": "Synced Ada",
                "text": "Customer Ada is in Progix.",
                "html": null,
                "attachments": [{"filename": "report.csv", "contentType": "text/csv", "text": "a,b\n1,2\n"}],
            }),
            delays: secs(&[0, 30, 300, 1800, 7200, 18000]),
            wait: false,
            show_message_id: false,
        }
    );
}

#[tokio::test]
async fn the_schedule_sets_the_delays() {
    let r = run(
        json!({"id": "mail", "email": {"to": ["a@x.example"], "subject": "S", "html": "<p>hi</p>", "schedule": ["0s", "1m", "1h"]}}),
        json!(null),
    )
    .await;
    let sent = r.sent();
    assert_eq!(sent.delays, secs(&[0, 60, 3600]));
    assert_eq!(sent.message["attachments"], json!([]));
    assert_eq!((sent.message["html"].as_str(), sent.message["text"].as_str()), (Some("<p>hi</p>"), None));
    assert!(!sent.wait && !sent.show_message_id);
}

#[tokio::test]
async fn no_recipient_is_fatal() {
    let step = compile_one(json!({"id": "mail", "email": {"to": "{{ $config.owner }}", "subject": "S", "text": "t"}}));
    for owner in [json!(null), json!(""), json!("   "), json!([]), json!(5)] {
        let r = Harness::new().config(json!({ "owner": owner })).run(&step, json!(null)).await;
        let e = r.err();
        assert_eq!(e.code, "email_request", "{owner}");
        assert!(!e.retryable, "{e:?}");
    }
    let r = Harness::new().config(json!({"owner": ["a@x.example"]})).run(&step, json!(null)).await;
    assert_eq!(r.sent().message["to"], json!(["a@x.example"]));
}

#[test]
fn neither_text_nor_html_is_a_problem() {
    let p = problems(json!({"id": "mail", "email": {"to": "a@x.example", "subject": "S"}}));
    assert!(has_problem(&p, "steps[0].email", "needs `text`, `html` or both"), "{p:?}");
    for body in [json!({"text": "t"}), json!({"html": "<b>h</b>"}), json!({"text": "t", "html": "h"})] {
        let mut config = json!({"to": "a@x.example", "subject": "S"});
        config.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let c = compile(json!({"id": "mail", "email": config}));
        assert!(c.diags.is_empty(), "{body}: {:?}", c.diags);
    }
}

#[test]
fn other_mistakes_are_located() {
    let p = problems(json!({"id": "mail", "email": {"to": "a@x.example", "text": "t"}}));
    assert!(p.iter().any(|(path, m)| path.starts_with("steps[0].email") && m.contains("subject")), "{p:?}");
    let p = problems(json!({"id": "mail", "email": {"to": "a@x.example", "subject": "{{ .a | }}", "text": "t"}}));
    assert!(has_problem(&p, "steps[0].email.subject", "expression does not compile"), "{p:?}");
}
