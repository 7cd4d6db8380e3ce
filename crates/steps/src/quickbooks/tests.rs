//! The `quickbooks` step against the local QuickBooks Online fake (`flowgate-fakes`): every
//! operation, query paging, `requestid` idempotency, `SyncToken`s, faults (with HTTP 200
//! too), throttling, the per-company concurrency limit, and the compile-time checks.

use super::QuickBooksOp;
use crate::CompiledStep;
use crate::test_support::{Harness, Ran, TestConnections, compile_in};
use flowgate_fakes::{OAuthConfig, OAuthServer, QuickBooksServer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

struct Env {
    oauth: OAuthServer,
    qbo: QuickBooksServer,
    realm: String,
    connections: Arc<TestConnections>,
    harness: Harness,
}

/// Each test's own company: the permits per company are process-wide, and tests run in
/// parallel.
fn next_realm() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!("{}", 9_130_000 + NEXT.fetch_add(1, Ordering::SeqCst))
}

/// A connection to the fake's company, with the extras `extras(realm, base_url)` gives.
async fn env_with(extras: impl FnOnce(&str, String) -> Value) -> Env {
    crate::util::install_tls();
    let realm = next_realm();
    let oauth =
        OAuthServer::start(OAuthConfig::default().with_client("app", "secret").with_realm_id(realm.clone())).await;
    let qbo = QuickBooksServer::start(&oauth).await;
    let token = oauth.issue_access_token();
    let connections = Arc::new(TestConnections::bearer("books", &token, extras(&realm, qbo.url())));
    let harness = Harness::new().connections(connections.clone());
    Env { oauth, qbo, realm, connections, harness }
}

async fn env() -> Env {
    env_with(|realm, url| json!({ "baseUrl": url, "realmId": realm, "minorversion": null })).await
}

const BOOKS: &[(&str, &str)] = &[("books", "quickbooks"), ("erp", "dynamics365")];

/// `config` compiled as step `id` of a flow whose connection is `books`.
#[track_caller]
fn step(id: &str, config: Value) -> CompiledStep {
    let mut compiled = compile_in(json!([{ "id": id, "quickbooks": config }]), BOOKS, &["books"]);
    assert!(compiled.diags.is_empty(), "{:#?}", compiled.diags);
    compiled.steps.remove(0)
}

/// One attempt of `step` on `{"name": "Acme"}`.
async fn attempt(e: &Env, step: &CompiledStep) -> Result<Value, crate::StepError> {
    match e.harness.run(step, json!({ "name": "Acme", "n": 3 })).await.result? {
        Ran::Output(v) => Ok(v),
        other => panic!("a quickbooks step outputs a value, got {other:?}"),
    }
}

/// `config` as a step of its own (its own idempotency key, so its own `requestid`), run once.
async fn run(e: &Env, config: Value) -> Result<Value, crate::StepError> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let id = format!("q{}", NEXT.fetch_add(1, Ordering::SeqCst));
    attempt(e, &step(&id, config)).await
}

fn customers(e: &Env, n: usize) {
    for i in 0..n {
        e.qbo.insert(&e.realm, "Customer", json!({ "DisplayName": format!("c-{i:03}"), "Active": i % 5 != 4 }));
    }
}

#[tokio::test]
async fn queries_page_by_page_up_to_max_results() {
    let e = env().await;
    customers(&e, 250);
    let all = run(&e, json!({ "op": "query", "query": "SELECT * FROM Customer", "pageSize": 100 })).await.unwrap();
    assert_eq!(all["count"], 250, "{}", all["count"]);
    assert_eq!(all["value"].as_array().unwrap().len(), 250);
    assert_eq!(all["value"][0]["DisplayName"], "c-000");
    assert_eq!(all["value"][249]["DisplayName"], "c-249");
    assert_eq!(all["more"], false);
    assert_eq!(e.qbo.requests(), 3, "pages of 100, 100 and 50");
    assert_eq!(e.qbo.last_minor_version().as_deref(), Some("75"));

    // maxResults cuts it: 100 then 50, and there may be more.
    let cut = run(&e, json!({ "op": "query", "query": "SELECT * FROM Customer", "pageSize": 100, "maxResults": 150 }))
        .await
        .unwrap();
    assert_eq!(cut["count"], 150);
    assert_eq!(cut["value"][149]["DisplayName"], "c-149");
    assert_eq!(cut["more"], true);
    assert_eq!(e.qbo.requests(), 5);

    // The default page (100) and a filter; a page exactly full asks once more.
    let active =
        run(&e, json!({ "op": "query", "query": "SELECT * FROM Customer WHERE Active = true" })).await.unwrap();
    assert_eq!(active["count"], 200);
    assert_eq!(active["more"], false);
    assert_eq!(e.qbo.requests(), 8);

    // A query that pages itself is sent once, as it is (any case).
    let own = run(&e, json!({ "op": "query", "query": "select * from Customer startposition 11 maxresults 5" }))
        .await
        .unwrap();
    assert_eq!(own["count"], 5);
    assert_eq!(own["value"][0]["DisplayName"], "c-010");
    assert_eq!(e.qbo.requests(), 9);

    // Templates inside; an empty result has no entity key.
    let one =
        run(&e, json!({ "op": "query", "query": "SELECT * FROM Customer WHERE DisplayName = 'c-0{{ .n }}{{ .n }}'" }))
            .await
            .unwrap();
    assert_eq!(one["value"][0]["DisplayName"], "c-033", "{one}");
    let none = run(&e, json!({ "op": "query", "query": "SELECT * FROM Invoice" })).await.unwrap();
    assert_eq!(none, json!({ "value": [], "count": 0, "more": false }));
}

#[tokio::test]
async fn reads_an_entity_by_id() {
    let e = env().await;
    let id = e.qbo.insert(&e.realm, "Customer", json!({ "DisplayName": "Acme" }));
    // Any case of the entity's name: the answer's key is QuickBooks' own (`Customer`).
    let got = run(&e, json!({ "op": "read", "entity": "customer", "id": id })).await.unwrap();
    assert_eq!(got["DisplayName"], "Acme", "{got}");
    assert_eq!(got["Id"], id);
    assert_eq!(got["SyncToken"], "0");
    let missing = run(&e, json!({ "op": "read", "entity": "Customer", "id": "999" })).await.unwrap_err();
    assert_eq!(missing.code, "quickbooks_not_found", "{missing:?}");
    assert!(!missing.retryable);
    let details = missing.details.unwrap();
    assert_eq!(details["status"], 400);
    assert_eq!(details["code"], "610");
    assert_eq!(details["type"], "ValidationFault");
}

#[tokio::test]
async fn a_create_sent_again_by_the_same_step_creates_nothing_more() {
    let e = env().await;
    let create = step(
        "new-customer",
        json!({ "op": "create", "entity": "Customer", "body": { "DisplayName": "{{ .name }}", "Notes": "n={{ .n }}" } }),
    );
    assert!(create.body.side_effects());
    let first = attempt(&e, &create).await.unwrap();
    assert_eq!(first["DisplayName"], "Acme", "{first}");
    assert_eq!(first["Notes"], "n=3");
    // The same step again (a retry, a resume): the same requestid, QuickBooks' first answer.
    let again = attempt(&e, &create).await.unwrap();
    assert_eq!(again["Id"], first["Id"]);
    assert_eq!(e.qbo.creations(), 1);
    assert_eq!(e.qbo.all(&e.realm, "Customer").len(), 1);
    // Another step is another write: here a duplicate name, not retried.
    let other =
        run(&e, json!({ "op": "create", "entity": "Customer", "body": { "DisplayName": "Acme" } })).await.unwrap_err();
    assert_eq!(other.code, "quickbooks_duplicate", "{other:?}");
    assert!(!other.retryable);
    assert_eq!(other.details.unwrap()["code"], "6240");
}

#[test]
fn request_ids_are_stable_per_step_and_operation() {
    let a = super::run::request_id("exec-1:s", QuickBooksOp::Create).unwrap();
    assert_eq!(a.len(), 36);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(super::run::request_id("exec-1:s", QuickBooksOp::Create).unwrap(), a);
    assert_ne!(super::run::request_id("exec-1:s", QuickBooksOp::Update).unwrap(), a);
    assert_ne!(super::run::request_id("exec-2:s", QuickBooksOp::Create).unwrap(), a);
    assert_eq!(super::run::request_id("", QuickBooksOp::Create), None);
}

#[tokio::test]
async fn update_reads_the_sync_token_when_none_is_given() {
    let e = env().await;
    let id = e.qbo.insert(&e.realm, "Customer", json!({ "DisplayName": "Acme", "Notes": "keep" }));
    let updated =
        run(&e, json!({ "op": "update", "entity": "Customer", "id": id, "body": { "DisplayName": "Acme Ltd" } }))
            .await
            .unwrap();
    assert_eq!(updated["DisplayName"], "Acme Ltd", "{updated}");
    assert_eq!(updated["SyncToken"], "1");
    // A sparse update: the other fields stay.
    assert_eq!(updated["Notes"], "keep");
    assert_eq!(e.qbo.requests(), 2, "the read, then the update");
    // With the current SyncToken given, no read first.
    let again = run(&e, json!({ "op": "update", "entity": "Customer", "id": id, "syncToken": "{{ 1 }}", "body": { "Notes": "changed" } }))
        .await
        .unwrap();
    assert_eq!(again["SyncToken"], "2");
    assert_eq!(again["DisplayName"], "Acme Ltd");
    assert_eq!(e.qbo.requests(), 3);
}

#[tokio::test]
async fn a_stale_sync_token_is_a_conflict() {
    let e = env().await;
    let id = e.qbo.insert(&e.realm, "Customer", json!({ "DisplayName": "Acme", "SyncToken": "4" }));
    let err =
        run(&e, json!({ "op": "update", "entity": "Customer", "id": id, "syncToken": "3", "body": { "Notes": "x" } }))
            .await
            .unwrap_err();
    assert_eq!(err.code, "quickbooks_conflict", "{err:?}");
    assert!(!err.retryable);
    assert!(err.message.contains("changed since its SyncToken was read"), "{}", err.message);
    assert_eq!(err.details.unwrap()["code"], "5010");
    assert_eq!(e.qbo.get(&e.realm, "Customer", &id).unwrap()["SyncToken"], "4");
}

#[tokio::test]
async fn delete_reads_the_sync_token_and_deletes() {
    let e = env().await;
    let id = e.qbo.insert(&e.realm, "Invoice", json!({ "DocNumber": "1001", "SyncToken": "2" }));
    let gone = run(&e, json!({ "op": "delete", "entity": "Invoice", "id": id })).await.unwrap();
    assert_eq!(gone["status"], "Deleted", "{gone}");
    assert_eq!(gone["Id"], id);
    assert!(e.qbo.get(&e.realm, "Invoice", &id).is_none());
    let again = run(&e, json!({ "op": "delete", "entity": "Invoice", "id": id, "syncToken": "2" })).await.unwrap_err();
    assert_eq!(again.code, "quickbooks_not_found");
}

#[tokio::test]
async fn a_fault_answered_with_http_200_is_an_error() {
    let e = env().await;
    let id = e.qbo.insert(&e.realm, "Customer", json!({ "DisplayName": "Acme" }));
    e.qbo.fault_with_200_next(1);
    let err = run(&e, json!({ "op": "read", "entity": "Customer", "id": id })).await.unwrap_err();
    assert_eq!(err.code, "quickbooks_error", "{err:?}");
    assert!(!err.retryable);
    let details = err.details.unwrap();
    assert_eq!(details["status"], 200);
    assert_eq!(details["code"], "2020");
    assert_eq!(details["type"], "ValidationFault");
    assert!(details["message"].as_str().unwrap().contains("Required param missing"), "{details}");
}

#[tokio::test]
async fn throttling_is_retryable_after_a_wait() {
    let e = env().await;
    customers(&e, 3);
    e.qbo.throttle_next(1);
    let query = json!({ "op": "query", "query": "SELECT * FROM Customer" });
    let err = run(&e, query.clone()).await.unwrap_err();
    assert_eq!(err.code, "quickbooks_throttled", "{err:?}");
    assert!(err.retryable);
    // The fake sends no Retry-After: QuickBooks' minute.
    assert_eq!(err.retry_after, Some(Duration::from_secs(60)));
    let details = err.details.unwrap();
    assert_eq!((details["status"].clone(), details["code"].clone()), (json!(429), json!("003001")));
    // The next attempt goes through.
    assert_eq!(run(&e, query).await.unwrap()["count"], 3);
}

#[tokio::test]
async fn a_connection_without_a_company_says_to_authorize_it() {
    let e = env_with(|_, url| json!({ "baseUrl": url, "minorversion": null })).await;
    let err = run(&e, json!({ "op": "read", "entity": "Customer", "id": "1" })).await.unwrap_err();
    assert_eq!(err.code, "quickbooks_no_company", "{err:?}");
    assert!(!err.retryable);
    assert!(err.message.contains("authorize the connection"), "{}", err.message);
    assert_eq!(e.qbo.requests(), 0);
}

#[tokio::test]
async fn minorversion_is_the_steps_else_the_connections_else_75() {
    let e = env_with(|realm, url| json!({ "baseUrl": url, "realmId": realm, "minorversion": 65 })).await;
    let id = e.qbo.insert(&e.realm, "Item", json!({ "Name": "Widget" }));
    run(&e, json!({ "op": "read", "entity": "Item", "id": id })).await.unwrap();
    assert_eq!(e.qbo.last_minor_version().as_deref(), Some("65"));
    run(&e, json!({ "op": "read", "entity": "Item", "id": id, "minorversion": 70 })).await.unwrap();
    assert_eq!(e.qbo.last_minor_version().as_deref(), Some("70"));
}

#[tokio::test]
async fn at_most_ten_requests_per_company_are_in_flight() {
    let e = Arc::new(env().await);
    let id = e.qbo.insert(&e.realm, "Customer", json!({ "DisplayName": "Acme" }));
    e.qbo.set_delay(Duration::from_millis(50));
    let read = Arc::new(step("read", json!({ "op": "read", "entity": "Customer", "id": id })));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..25 {
        let (e, read) = (e.clone(), read.clone());
        tasks.spawn(async move { attempt(&e, &read).await.map(|v| v["DisplayName"].clone()) });
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().unwrap(), "Acme");
    }
    let seen = e.qbo.max_concurrent_seen();
    assert!((2..=10).contains(&seen), "{seen} requests in flight at once");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_request_sent_again() {
    let e = env().await;
    let id = e.qbo.insert(&e.realm, "Customer", json!({ "DisplayName": "Acme" }));
    e.oauth.expire_access_tokens();
    let mut fresh = e.connections.credentials["books"].clone();
    fresh.version = 2;
    fresh.headers.clear();
    let token = e.oauth.issue_access_token();
    fresh.headers.push((http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap()));
    *e.connections.refreshed.lock().unwrap() = Some(fresh);
    let got = run(&e, json!({ "op": "read", "entity": "Customer", "id": id })).await.unwrap();
    assert_eq!(got["DisplayName"], "Acme");
    assert_eq!(e.connections.refusals.load(Ordering::SeqCst), 1);
}

#[test]
fn problems_are_located() {
    let problems = |config: Value, flow: &[&str]| -> Vec<(String, String)> {
        compile_in(json!([{ "id": "q", "quickbooks": config }]), BOOKS, flow)
            .diags
            .into_iter()
            .map(|d| (d.path, d.message))
            .collect()
    };
    let at = |p: &[(String, String)], path: &str, text: &str| p.iter().any(|(x, m)| x == path && m.contains(text));
    let books = &["books"][..];
    // read needs an id; delete takes no body; query's settings are for query only.
    let p = problems(
        json!({ "op": "read", "entity": "Customer", "pageSize": 10, "query": "SELECT * FROM Customer" }),
        books,
    );
    assert!(at(&p, "steps[0].quickbooks.id", "needs the entity's `id`"), "{p:?}");
    assert!(at(&p, "steps[0].quickbooks.pageSize", "is for `query`"), "{p:?}");
    assert!(at(&p, "steps[0].quickbooks.query", "is for `query`"), "{p:?}");
    let p = problems(json!({ "op": "delete", "entity": "Customer", "id": "1", "body": { "Notes": "x" } }), books);
    assert!(at(&p, "steps[0].quickbooks.body", "`delete` takes no `body`"), "{p:?}");
    // Unknown keys, with a suggestion.
    let p = problems(json!({ "op": "read", "entity": "Customer", "id": "1", "syncTokn": "1" }), books);
    assert!(at(&p, "steps[0].quickbooks.syncTokn", "unknown key"), "{p:?}");
    // Every op's needs.
    let p = problems(json!({ "op": "create", "body": { "DisplayName": "x" } }), books);
    assert!(at(&p, "steps[0].quickbooks.entity", "needs the `entity`"), "{p:?}");
    let p = problems(json!({ "op": "update", "entity": "Customer", "id": "1" }), books);
    assert!(at(&p, "steps[0].quickbooks.body", "needs a `body`"), "{p:?}");
    let p = problems(
        json!({ "op": "update", "entity": "Customer", "id": "1", "body": { "SyncToken": "0", "Notes": "x" } }),
        books,
    );
    assert!(at(&p, "steps[0].quickbooks.body.SyncToken", "`syncToken`"), "{p:?}");
    let p = problems(json!({ "op": "create", "entity": "Customer", "body": [1] }), books);
    assert!(at(&p, "steps[0].quickbooks.body", "expected an object"), "{p:?}");
    let p = problems(json!({ "op": "create", "entity": "Customer", "syncToken": "0", "body": {} }), books);
    assert!(at(&p, "steps[0].quickbooks.syncToken", "is for `update` and `delete`"), "{p:?}");
    let p = problems(json!({ "op": "query", "entity": "Customer", "pageSize": 1001, "maxResults": 0 }), books);
    assert!(at(&p, "steps[0].quickbooks.query", "needs the `query` text"), "{p:?}");
    assert!(at(&p, "steps[0].quickbooks.entity", "takes no `entity`"), "{p:?}");
    assert!(at(&p, "steps[0].quickbooks.pageSize", "1 to 1000"), "{p:?}");
    assert!(at(&p, "steps[0].quickbooks.maxResults", "at least 1"), "{p:?}");
    // Entity names are letters and digits, unless a template gives them.
    let p = problems(json!({ "op": "read", "entity": "Customer/1?x=", "id": "1" }), books);
    assert!(at(&p, "steps[0].quickbooks.entity", "invalid entity"), "{p:?}");
    assert!(problems(json!({ "op": "read", "entity": "{{ .kind }}", "id": "1" }), books).is_empty());
    // Templates are compiled where they are written.
    let p = problems(json!({ "op": "read", "entity": "Customer", "id": "{{ .id | }}" }), books);
    assert!(at(&p, "steps[0].quickbooks.id", "does not compile"), "{p:?}");
    // The connection: the flow's quickbooks one, or a named one of that kind.
    let p = problems(json!({ "op": "read", "entity": "Customer", "id": "1" }), &["erp"]);
    assert!(at(&p, "steps[0].quickbooks", "no `quickbooks` connection"), "{p:?}");
    let p = problems(json!({ "op": "read", "entity": "Customer", "id": "1", "connection": "erp" }), books);
    assert!(at(&p, "steps[0].quickbooks.connection", "`dynamics365` connection"), "{p:?}");
    // And a good one has no problem.
    let ok = json!({ "op": "update", "entity": "Customer", "id": "{{ .Id }}", "syncToken": "{{ .SyncToken }}", "body": { "DisplayName": "x" } });
    assert!(problems(ok, books).is_empty());
}

#[test]
fn reads_have_no_side_effects() {
    let read = step("r", json!({ "op": "read", "entity": "Customer", "id": "1" }));
    let query = step("s", json!({ "op": "query", "query": "SELECT * FROM Customer" }));
    let update = step("u", json!({ "op": "update", "entity": "Customer", "id": "1", "body": {} }));
    let delete = step("d", json!({ "op": "delete", "entity": "Customer", "id": "1" }));
    assert!(!read.body.side_effects() && !query.body.side_effects());
    assert!(update.body.side_effects() && delete.body.side_effects());
}
