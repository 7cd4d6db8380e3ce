//! The `dynamics` step against the local Dataverse fake (`flowgate-fakes`): every operation,
//! paging, etags, errors and throttling, and the compile-time checks.

use crate::test_support::{Harness, Ran, TestConnections, compile_in};
use flowgate_fakes::{DynamicsServer, OAuthConfig, OAuthServer};
use serde_json::{Value, json};
use std::sync::Arc;

struct Env {
    _oauth: OAuthServer,
    d365: DynamicsServer,
    harness: Harness,
}

async fn env() -> Env {
    crate::util::install_tls();
    let oauth = OAuthServer::start(OAuthConfig::default().with_client("app", "secret")).await;
    let d365 = DynamicsServer::start(&oauth).await;
    let token = oauth.issue_access_token();
    let connections = TestConnections::bearer("erp", &token, json!({ "baseUrl": d365.url() }));
    Env { _oauth: oauth, d365, harness: Harness::new().connections(Arc::new(connections)) }
}

const ERP: &[(&str, &str)] = &[("erp", "dynamics365"), ("books", "quickbooks")];

async fn run(e: &Env, config: Value) -> Result<Value, crate::StepError> {
    let compiled = compile_in(json!([{ "id": "d", "dynamics": config }]), ERP, &["erp"]);
    assert!(compiled.diags.is_empty(), "{:#?}", compiled.diags);
    match e.harness.run(&compiled.steps[0], json!({ "n": 1 })).await.result? {
        Ran::Output(v) => Ok(v),
        other => panic!("a dynamics step outputs a value, got {other:?}"),
    }
}

#[tokio::test]
async fn creates_reads_updates_and_deletes_a_record() {
    let e = env().await;
    let created =
        run(&e, json!({ "op": "create", "entity": "accounts", "body": { "name": "Contoso", "revenue": "{{ .n }}" } }))
            .await
            .unwrap();
    let id = created["accountid"].as_str().expect("the record comes back").to_owned();
    assert_eq!(created["name"], "Contoso");
    assert_eq!(created["revenue"], 1);
    let got = run(&e, json!({ "op": "get", "entity": "accounts", "id": id, "select": ["name"] })).await.unwrap();
    assert_eq!(got["name"], "Contoso");
    let etag = got["@odata.etag"].as_str().unwrap().to_owned();
    let updated = run(&e, json!({ "op": "update", "entity": "accounts", "id": id, "body": { "name": "Contoso Ltd" }, "etag": etag.clone() }))
        .await
        .unwrap();
    assert_eq!(updated["name"], "Contoso Ltd");
    // The etag read before the update is stale now: a clear conflict, not retried.
    let stale =
        run(&e, json!({ "op": "update", "entity": "accounts", "id": id, "body": { "name": "X" }, "etag": etag }))
            .await
            .unwrap_err();
    assert_eq!(stale.code, "dynamics_conflict", "{stale:?}");
    assert!(!stale.retryable);
    let gone = run(&e, json!({ "op": "delete", "entity": "accounts", "id": id })).await.unwrap();
    assert_eq!(gone, json!({ "deleted": true, "id": id }));
    let missing = run(&e, json!({ "op": "get", "entity": "accounts", "id": id })).await.unwrap_err();
    assert_eq!(missing.code, "dynamics_not_found");
    assert_eq!(missing.details.as_ref().unwrap()["status"], 404);
    // update (If-Match: *) never creates a record that is gone; upsert does.
    let none =
        run(&e, json!({ "op": "update", "entity": "accounts", "id": id, "body": { "name": "Y" } })).await.unwrap_err();
    assert_eq!(none.code, "dynamics_not_found");
    let fresh = "00000000-0000-0000-0000-0000000000aa";
    let upserted =
        run(&e, json!({ "op": "upsert", "entity": "accounts", "id": fresh, "body": { "name": "Fabrikam" } }))
            .await
            .unwrap();
    assert_eq!(upserted["name"], "Fabrikam");
    assert_eq!(e.d365.get("accounts", fresh).unwrap()["name"], "Fabrikam");
}

#[tokio::test]
async fn lists_page_after_page_up_to_max_pages() {
    let e = env().await;
    for i in 0..25 {
        e.d365.insert("accounts", json!({ "name": format!("acc-{i:02}"), "statecode": i % 2 }));
    }
    let all = run(&e, json!({ "op": "list", "entity": "accounts", "select": ["name"], "filter": "statecode eq 0", "orderby": "name asc", "pageSize": 5 }))
        .await
        .unwrap();
    assert_eq!(all["count"], 13, "{all}");
    assert_eq!(all["pages"], 3);
    assert_eq!(all["value"][0]["name"], "acc-00");
    assert!(all["nextLink"].is_null());
    let cut = run(&e, json!({ "op": "list", "entity": "accounts", "pageSize": 5, "maxPages": 2 })).await.unwrap();
    assert_eq!(cut["count"], 10);
    assert!(cut["nextLink"].as_str().is_some_and(|l| l.starts_with(&e.d365.url())), "{cut}");
    let top = run(&e, json!({ "op": "list", "entity": "accounts", "top": 3 })).await.unwrap();
    assert_eq!(top["count"], 3);
}

#[tokio::test]
async fn service_protection_limits_are_retryable_with_retry_after() {
    let e = env().await;
    e.d365.throttle_next(1, 7);
    let err = run(&e, json!({ "op": "list", "entity": "accounts" })).await.unwrap_err();
    assert_eq!(err.code, "dynamics_throttled");
    assert!(err.retryable);
    assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(7)));
    assert!(err.message.contains("0x80072322"), "{}", err.message);
    // The next attempt goes through.
    run(&e, json!({ "op": "list", "entity": "accounts" })).await.unwrap();
}

#[tokio::test]
async fn ids_cannot_leave_their_parentheses() {
    let e = env().await;
    let err = run(&e, json!({ "op": "get", "entity": "accounts", "id": "x)/../contacts(y" })).await.unwrap_err();
    assert_eq!(err.code, "dynamics_request");
    assert_eq!(e.d365.requests(), 0);
}

#[test]
fn problems_are_located() {
    let problems = |config: Value, flow: &[&str]| -> Vec<(String, String)> {
        compile_in(json!([{ "id": "d", "dynamics": config }]), ERP, flow)
            .diags
            .into_iter()
            .map(|d| (d.path, d.message))
            .collect()
    };
    let p = problems(json!({ "op": "get", "entity": "accounts", "body": {}, "top": 3 }), &["erp"]);
    let at = |p: &[(String, String)], path: &str| p.iter().any(|(x, _)| x == path);
    assert!(at(&p, "steps[0].dynamics.id"), "{p:?}");
    assert!(at(&p, "steps[0].dynamics.body"), "{p:?}");
    assert!(at(&p, "steps[0].dynamics.top"), "{p:?}");
    // No dynamics365 connection on the flow, or one of another kind named.
    let p = problems(json!({ "op": "list", "entity": "accounts" }), &["books"]);
    assert!(p.iter().any(|(x, m)| x == "steps[0].dynamics" && m.contains("no `dynamics365` connection")), "{p:?}");
    let p = problems(json!({ "op": "list", "entity": "accounts", "connection": "books" }), &[]);
    assert!(
        p.iter().any(|(x, m)| x == "steps[0].dynamics.connection" && m.contains("`quickbooks` connection")),
        "{p:?}"
    );
    let p = problems(json!({ "op": "list", "entity": "bad set" }), &["erp"]);
    assert!(at(&p, "steps[0].dynamics.entity"), "{p:?}");
}
