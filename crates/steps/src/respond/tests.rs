//! The respond step: sets the answer to the webhook's caller and passes its input on.

use crate::Response;
use crate::test_support::{Harness, compile, compile_one, has_problem, problems, run};
use serde_json::{Map, Value, json};

fn headers(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
}

#[tokio::test]
async fn sets_status_headers_and_body() {
    let input = json!({"id": 5, "name": "Ada"});
    let r = run(
        json!({"id": "reply", "respond": {
            "status": 201,
            "headers": {"X-Id": "{{ .id }}", "Content-Type": "application/vnd.acme+json"},
            "body": {"id": "{{ .id }}", "greeting": "hello {{ .name }}"},
        }}),
        input.clone(),
    )
    .await;
    assert_eq!(r.output(), &input);
    assert_eq!(
        r.response,
        Some(Response {
            status: 201,
            headers: headers(&[("X-Id", "5"), ("Content-Type", "application/vnd.acme+json")]),
            body: json!({"id": 5, "greeting": "hello Ada"}),
        })
    );
    assert!(r.logs.is_empty());
}

#[tokio::test]
async fn defaults_to_200_with_the_input_as_body() {
    let input = json!({"a": [1, 2]});
    let r = run(json!({"id": "reply", "respond": {}}), input.clone()).await;
    assert_eq!(r.response, Some(Response { status: 200, headers: Map::new(), body: input.clone() }));
    let r = run(json!({"id": "reply", "respond": {"body": "plain text"}}), input).await;
    assert_eq!(r.response.unwrap().body, json!("plain text"));
}

#[tokio::test]
async fn a_status_may_be_computed() {
    let step = compile_one(json!({"id": "reply", "respond": {"status": "{{ .code }}", "body": null}}));
    let h = Harness::new();
    for (code, status) in [(json!(202), 202), (json!("404"), 404), (json!(" 599 "), 599), (json!(200), 200)] {
        let r = h.run(&step, json!({ "code": code })).await;
        assert_eq!(r.response.as_ref().map(|a| a.status), Some(status), "{code}");
    }
}

#[tokio::test]
async fn a_status_out_of_range_is_fatal() {
    let step = compile_one(json!({"id": "reply", "respond": {"status": "{{ .code }}"}}));
    let h = Harness::new();
    for code in [json!(101), json!(199), json!(600), json!(-1), json!("abc"), json!(null), json!(200.5)] {
        let r = h.run(&step, json!({ "code": code })).await;
        let e = r.err();
        assert_eq!(e.code, "respond_status", "{code}: {e:?}");
        assert!(!e.retryable);
        assert!(r.response.is_none(), "{code}");
    }
}

#[test]
fn a_literal_status_out_of_range_is_a_problem() {
    for status in [json!(100), json!(199), json!(600), json!(1000)] {
        let p = problems(json!({"id": "reply", "respond": {"status": status}}));
        assert!(has_problem(&p, "steps[0].respond.status", "between 200 and 599"), "{status}: {p:?}");
    }
    let p = problems(json!({"id": "reply", "respond": {"status": true}}));
    assert!(p.iter().any(|(path, _)| path == "steps[0].respond.status"), "{p:?}");
}

#[tokio::test]
async fn a_header_value_with_control_characters_is_fatal() {
    let step = compile_one(json!({"id": "reply", "respond": {"headers": {"X-Note": "{{ .note }}"}}}));
    let h = Harness::new();
    for note in ["a\r\nSet-Cookie: x=1", "line\nbreak", "nul\u{0}"] {
        let r = h.run(&step, json!({ "note": note })).await;
        let e = r.err();
        assert_eq!(e.code, "respond_header", "{note:?}");
        assert!(!e.retryable && e.message.contains("X-Note"), "{e:?}");
        assert!(r.response.is_none());
    }
    let r = h.run(&step, json!({"note": "fine, with spaces"})).await;
    assert_eq!(r.response.unwrap().headers, headers(&[("X-Note", "fine, with spaces")]));
}

#[tokio::test]
async fn null_header_values_are_left_out_and_others_are_text() {
    let step =
        compile_one(json!({"id": "reply", "respond": {"headers": {"X-A": "{{ .a }}", "X-B": "{{ .b }}", "X-C": 3}}}));
    let r = Harness::new().run(&step, json!({"a": null, "b": {"k": 1}})).await;
    assert_eq!(r.response.unwrap().headers, headers(&[("X-B", r#"{"k":1}"#), ("X-C", "3")]));
}

#[tokio::test]
async fn framing_headers_are_refused_and_never_sent() {
    for name in ["Content-Length", "transfer-encoding", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer"] {
        let compiled = compile(json!({"id": "reply", "respond": {"headers": {name: "1", "X-Ok": "yes"}}}));
        let p: Vec<(String, String)> = compiled.diags.iter().map(|d| (d.path.clone(), d.message.clone())).collect();
        assert!(has_problem(&p, &format!("steps[0].respond.headers.{name}"), "a flow cannot set it"), "{p:?}");
        // Refused when the flow is applied; were the step run anyway, the header is dropped.
        let r = Harness::new().run(&compiled.steps[0], json!(null)).await;
        assert_eq!(r.response.unwrap().headers, headers(&[("X-Ok", "yes")]), "{name}");
    }
}

#[test]
fn an_invalid_header_name_is_a_problem() {
    let p = problems(json!({"id": "reply", "respond": {"headers": {"X Bad": "1"}}}));
    assert!(has_problem(&p, "steps[0].respond.headers[\"X Bad\"]", "invalid header name"), "{p:?}");
    let p = problems(json!({"id": "reply", "respond": {"code": 200}}));
    assert!(has_problem(&p, "steps[0].respond.code", "unknown key `code`"), "{p:?}");
}
