//! A secret stays a secret when a document changes its variable's type (review of issue 20):
//! a value stored sealed in the deployment is redacted in everything recorded or shown,
//! whatever type the version (or the draft being dry-run) gives its variable, and the
//! deployment never shows it. Both backends.

#[macro_use]
mod common;

use common::{TestServer, send};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SECRET: &str = "SuperSecretApiKey123";
const MARKER: &str = "«secret:config.apiKey»";

/// The integration with `apiKey` of type `kind`; the transform outputs the key (and `extra`).
fn doc(kind: &str, extra: &str) -> String {
    format!(
        r#"integration: keys
config:
  apiKey: {{ type: {kind}, required: true }}
  region: {{ type: string, default: eu }}
flows:
  - flow: f
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: t, transform: '{{ k: $config.apiKey, up: ($config.apiKey | ascii_upcase), n: $trigger.body.n{extra} }}' }}
"#
    )
}

fn assert_sealed(what: &str, text: &str) {
    for form in [SECRET.to_owned(), SECRET.to_uppercase()] {
        assert!(!text.contains(&form), "{what} holds the secret ({form}): {}", &text[..text.len().min(3000)]);
    }
}

async fn put_config(s: &TestServer, config: Value) -> Value {
    let (status, _, v) =
        send(s.api(reqwest::Method::PUT, "/v1/integrations/keys/deployment").json(&json!({ "config": config }))).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Polls a dry run until it is no longer running; the run with its results (one page).
async fn finished(s: &TestServer, id: &str) -> Value {
    let begun = Instant::now();
    loop {
        let run = s.get_json(&format!("/v1/dry-runs/{id}?limit=1000")).await;
        if run["status"] != "running" {
            return run;
        }
        assert!(begun.elapsed() < Duration::from_secs(30), "still running: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_secret_changed_to_a_string_stays_sealed() {
    let s = TestServer::start().await;
    s.apply(&doc("secret", "")).await;
    let v = put_config(&s, json!({ "apiKey": SECRET })).await;
    assert_sealed("the deployment", &v.to_string());
    for n in 1..=3 {
        let v = s.run_flow("keys", "f", json!({ "n": n })).await;
        assert_eq!(v["status"], "succeeded", "{v}");
        assert_sealed("a run", &v.to_string());
    }

    // (a) A draft that makes it a string (and changes something else, so that there is a
    // difference to show): re-run with the sealed value, which stays a marker.
    let draft = doc("string", ", v: 2");
    let (status, _, v) =
        send(s.api(reqwest::Method::POST, "/v1/integrations/keys/dry-runs").json(&json!({ "source": draft }))).await;
    assert_eq!(status, 202, "{v}");
    let run = finished(&s, v["id"].as_str().unwrap()).await;
    assert_sealed("the dry run", &run.to_string());
    assert_eq!(run["status"], "done", "{run}");
    assert_eq!((run["total"].as_i64(), run["different"].as_i64()), (Some(3), Some(3)), "{run}");
    for r in run["results"].as_array().unwrap() {
        let changes = r["changes"].as_array().unwrap();
        let t = changes.iter().find(|c| c["at"] == "steps.t").unwrap_or_else(|| panic!("{r}"));
        assert_eq!(t["diff"], json!([{ "path": ".v", "now": 2 }]), "only `v` differs, not the key: {r}");
    }

    // (b) Applied: the deployment shows it set, never its value; runs record the marker.
    s.apply(&doc("string", "")).await;
    let view = s.get_json("/v1/integrations/keys/deployment").await;
    assert_sealed("the deployment", &view.to_string());
    assert_eq!(view["live"], true, "{view}");
    assert_eq!(view["config"]["apiKey"]["set"], true, "{view}");
    assert_eq!(view["config"]["apiKey"]["sealed"], true, "{view}");
    assert_eq!(view["config"]["region"]["value"], "eu", "other values are shown: {view}");
    let run = s.run_flow("keys", "f", json!({ "n": 4 })).await;
    assert_sealed("a run of the new version", &run.to_string());
    let id = run["executionId"].as_str().unwrap().to_owned();
    let ex = s.execution(&id).await;
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_sealed("the execution's journal", &ex.to_string());
    assert!(ex.to_string().contains(MARKER), "the key is recorded as its marker: {ex}");
    let (_, _, case) = send(s.api(reqwest::Method::GET, &format!("/v1/executions/{id}/as-test"))).await;
    assert_sealed("the execution as a test", &case.to_string());
    assert_sealed("the listing", &s.get_json("/v1/executions?flow=f").await.to_string());
    // A test case of the stored integration that fails on the key: its failure shows a marker.
    let tested = format!(
        "{}tests:\n  - {{ name: shows the key, flow: f, trigger: {{ body: {{ n: 1 }} }}, expect: {{ steps: {{ t: {{ k: wrong }} }} }} }}\n",
        doc("string", "")
    );
    s.apply(&tested).await;
    let (status, _, report) = send(s.api(reqwest::Method::POST, "/v1/integrations/keys/test")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["passed"], false, "{report}");
    assert_sealed("a failing test's report", &report.to_string());
    assert!(report.to_string().contains(MARKER), "the key shows as its marker: {report}");

    // Another value set: the stored one stays sealed (a type change never unseals it).
    let v = put_config(&s, json!({ "region": "us" })).await;
    assert_sealed("the deployment", &v.to_string());
    assert_eq!(v["config"]["apiKey"]["sealed"], true, "{v}");
    let run = s.run_flow("keys", "f", json!({ "n": 5 })).await;
    assert_sealed("a run after reconfiguring", &run.to_string());
    let ex = s.execution(run["executionId"].as_str().unwrap()).await;
    assert_sealed("its journal", &ex.to_string());

    // A new value given for what is now a string is a string: stored and shown as such.
    let v = put_config(&s, json!({ "apiKey": "plain-now" })).await;
    assert_eq!(v["config"]["apiKey"]["value"], "plain-now", "{v}");
    assert!(v["config"]["apiKey"].get("sealed").is_none(), "{v}");
    s.stop().await;
}
backends!(a_secret_changed_to_a_string_stays_sealed);
