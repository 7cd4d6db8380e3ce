//! The Accounting API over HTTP: writes, reads, queries, idempotency, faults, limits and
//! knobs; and the webhook helpers.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::oauth::OAuthConfig;
use crate::test_support::client;

const REALM: &str = "9130";

struct Fixture {
    oauth: OAuthServer,
    qbo: QuickBooksServer,
    token: String,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn fault_code(&self) -> &str {
        self.body["Fault"]["Error"][0]["code"].as_str().unwrap_or_else(|| panic!("not a fault: {}", self.body))
    }
    fn fault_type(&self) -> &str {
        self.body["Fault"]["type"].as_str().unwrap()
    }
}

impl Fixture {
    async fn start() -> Fixture {
        let oauth = OAuthServer::start(OAuthConfig::default().with_client("app", "s3cret").with_realm_id(REALM)).await;
        let qbo = QuickBooksServer::start(&oauth).await;
        let token = oauth.issue_access_token();
        Fixture { oauth, qbo, token }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_in(REALM, method, path)
    }

    fn request_in(&self, realm: &str, method: Method, path: &str) -> RequestBuilder {
        client()
            .request(method, format!("{}/{path}", self.qbo.company_url(realm)))
            .bearer_auth(&self.token)
            .header("Accept", "application/json")
    }

    async fn create(&self, entity: &str, body: Value) -> Reply {
        send(self.request(Method::POST, entity).json(&body)).await
    }

    async fn query(&self, text: &str) -> Reply {
        send(self.request(Method::GET, "query").query(&[("query", text), ("minorversion", "75")])).await
    }
}

async fn send(request: RequestBuilder) -> Reply {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.expect("a JSON body");
    Reply { status, headers, body }
}

fn display_names(reply: &Reply) -> Vec<String> {
    let rows = reply.body["QueryResponse"]["Customer"].as_array().unwrap_or_else(|| panic!("no rows: {}", reply.body));
    rows.iter().map(|r| r["DisplayName"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn canonical_names() {
    assert_eq!(canonical_entity_name("customer"), "Customer");
    assert_eq!(canonical_entity_name("salesreceipt"), "SalesReceipt");
    assert_eq!(canonical_entity_name("JOURNALENTRY"), "JournalEntry");
    assert_eq!(canonical_entity_name("widget"), "Widget");
}

#[tokio::test]
async fn create_answers_the_entity_under_its_canonical_name() {
    let f = Fixture::start().await;
    let reply = f.create("customer", json!({"DisplayName": "Amy's Bird Sanctuary", "Id": null})).await;
    assert_eq!(reply.status, StatusCode::OK);
    let customer = &reply.body["Customer"];
    assert_eq!(customer["DisplayName"], "Amy's Bird Sanctuary");
    assert_eq!((customer["Id"].as_str(), customer["SyncToken"].as_str()), (Some("1"), Some("0")));
    assert_eq!((customer["domain"].as_str(), customer["sparse"].as_bool()), (Some("QBO"), Some(false)));
    assert!(customer["MetaData"]["CreateTime"].is_string() && customer["MetaData"]["LastUpdatedTime"].is_string());
    assert!(reply.body["time"].is_string());
    assert_eq!(f.qbo.get(REALM, "Customer", "1").unwrap(), *customer);

    let second = f.create("customer", json!({"DisplayName": "Bill's Windsurf Shop"})).await;
    assert_eq!(second.body["Customer"]["Id"], "2");
    let receipt = f.create("salesreceipt", json!({"TotalAmt": 10})).await;
    assert_eq!(receipt.body["SalesReceipt"]["Id"], "1", "ids are counted per entity");
    assert_eq!(f.qbo.creations(), 3);
}

#[tokio::test]
async fn a_repeated_requestid_answers_the_first_answer_without_creating() {
    let f = Fixture::start().await;
    let post = |request_id: &'static str, name: &'static str| {
        send(f.request(Method::POST, "invoice").query(&[("requestid", request_id)]).json(&json!({"DocNumber": name})))
    };
    let first = post("r-1", "1001").await;
    let again = post("r-1", "a different body").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body, "the same answer, time included");
    assert_eq!(f.qbo.creations(), 1);
    assert_eq!(f.qbo.all(REALM, "invoice").len(), 1);

    let other = post("r-2", "1002").await;
    assert_eq!(other.body["Invoice"]["Id"], "2");

    // Request ids are per company.
    f.qbo.add_realm("4620");
    let elsewhere = send(
        f.request_in("4620", Method::POST, "invoice").query(&[("requestid", "r-1")]).json(&json!({"DocNumber": "x"})),
    )
    .await;
    assert_eq!(elsewhere.body["Invoice"]["DocNumber"], "x");
    assert_eq!(f.qbo.creations(), 3);
}

#[tokio::test]
async fn sparse_and_full_updates_check_the_sync_token() {
    let f = Fixture::start().await;
    let id = f.qbo.insert(REALM, "customer", json!({"DisplayName": "Cool Cars", "CompanyName": "Cool", "Notes": "n"}));
    let created_at = f.qbo.get(REALM, "customer", &id).unwrap()["MetaData"]["CreateTime"].clone();

    let sparse =
        f.create("customer", json!({"Id": id, "SyncToken": "0", "sparse": true, "CompanyName": "Cooler"})).await;
    assert_eq!(sparse.status, StatusCode::OK, "{}", sparse.body);
    let customer = &sparse.body["Customer"];
    assert_eq!((customer["CompanyName"].as_str(), customer["Notes"].as_str()), (Some("Cooler"), Some("n")));
    assert_eq!(customer["SyncToken"], "1");
    assert_eq!(customer["MetaData"]["CreateTime"], created_at);

    let stale = f.create("customer", json!({"Id": id, "SyncToken": "0", "sparse": true, "Notes": "lost"})).await;
    assert_eq!(
        (stale.status, stale.fault_code(), stale.fault_type()),
        (StatusCode::BAD_REQUEST, "5010", "ValidationFault")
    );
    assert_eq!(stale.body["Fault"]["Error"][0]["Message"], "Stale Object Error");
    assert_eq!(f.qbo.get(REALM, "customer", &id).unwrap()["Notes"], "n");

    let full = f.create("customer", json!({"Id": id, "SyncToken": 1, "DisplayName": "Cool Cars"})).await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.body);
    assert!(full.body["Customer"].get("Notes").is_none(), "a full update replaces the entity");
    assert_eq!(full.body["Customer"]["SyncToken"], "2");

    let missing = f.create("customer", json!({"Id": "99", "SyncToken": "0", "sparse": true})).await;
    assert_eq!((missing.status, missing.fault_code()), (StatusCode::BAD_REQUEST, "610"));
    let no_token = f.create("customer", json!({"Id": id, "sparse": true})).await;
    assert_eq!(no_token.fault_code(), "2020");
    let explicit =
        send(f.request(Method::POST, "customer").query(&[("operation", "update")]).json(&json!({"SyncToken": "2"})))
            .await;
    assert_eq!(explicit.fault_code(), "2020");
    assert_eq!(f.qbo.creations(), 0, "updates are no creations");
}

#[tokio::test]
async fn delete_operation() {
    let f = Fixture::start().await;
    let id = f.qbo.insert(REALM, "invoice", json!({"DocNumber": "1001"}));
    let delete = |token: &'static str| {
        send(
            f.request(Method::POST, "invoice")
                .query(&[("operation", "delete")])
                .json(&json!({"Id": id, "SyncToken": token})),
        )
    };
    let stale = delete("5").await;
    assert_eq!(stale.fault_code(), "5010");
    let deleted = delete("0").await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["Invoice"], json!({"domain": "QBO", "status": "Deleted", "Id": id}));
    assert!(f.qbo.get(REALM, "invoice", &id).is_none());
    let read = send(f.request(Method::GET, &format!("invoice/{id}"))).await;
    assert_eq!(read.fault_code(), "610");
    assert_eq!(delete("0").await.fault_code(), "610");
}

#[tokio::test]
async fn read_and_object_not_found() {
    let f = Fixture::start().await;
    let id = f.qbo.insert(REALM, "item", json!({"Name": "Gardening", "UnitPrice": 25}));
    let read = send(f.request(Method::GET, &format!("item/{id}?minorversion=70"))).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["Item"]["Name"], "Gardening");
    assert_eq!(f.qbo.last_minor_version().as_deref(), Some("70"));

    for path in ["item/77", "item/abc", "customer/1"] {
        let missing = send(f.request(Method::GET, path)).await;
        assert_eq!((missing.status, missing.fault_code()), (StatusCode::BAD_REQUEST, "610"), "{path}");
        assert_eq!(missing.body["Fault"]["Error"][0]["Message"], "Object Not Found");
    }
}

async fn seed_customers(f: &Fixture) {
    for (name, balance, city) in [
        ("Amy", 10, "Bayshore"),
        ("Bill", 300, "Half Moon Bay"),
        ("Cool Cars", 0, "Bayshore"),
        ("Diego", 85, "Sunnyvale"),
    ] {
        f.qbo.insert(
            REALM,
            "customer",
            json!({"DisplayName": name, "Balance": balance, "BillAddr": {"City": city}, "Active": true}),
        );
    }
}

#[tokio::test]
async fn queries_filter_order_and_page() {
    let f = Fixture::start().await;
    seed_customers(&f).await;
    let all = f.query("SELECT * FROM Customer").await;
    assert_eq!(display_names(&all), ["Amy", "Bill", "Cool Cars", "Diego"]);
    assert_eq!(
        (all.body["QueryResponse"]["startPosition"].as_u64(), all.body["QueryResponse"]["maxResults"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(f.qbo.last_minor_version().as_deref(), Some("75"));

    let cases = [
        ("select * from customer where DisplayName = 'bill'", vec!["Bill"]),
        ("SELECT * FROM Customer WHERE BillAddr.City = 'Bayshore' AND Balance > '5'", vec!["Amy"]),
        ("SELECT * FROM Customer WHERE Balance >= '85' ORDERBY Balance DESC", vec!["Bill", "Diego"]),
        ("SELECT * FROM Customer WHERE DisplayName LIKE '%o%' ORDERBY DisplayName", vec!["Cool Cars", "Diego"]),
        ("SELECT * FROM Customer WHERE Id IN ('1', '4')", vec!["Amy", "Diego"]),
        ("SELECT * FROM Customer ORDERBY Balance STARTPOSITION 2 MAXRESULTS 2", vec!["Amy", "Diego"]),
    ];
    for (text, expected) in cases {
        let reply = f.query(text).await;
        assert_eq!(reply.status, StatusCode::OK, "{text}: {}", reply.body);
        assert_eq!(display_names(&reply), expected, "{text}");
    }
    let paged = f.query("SELECT * FROM Customer STARTPOSITION 3 MAXRESULTS 1").await;
    assert_eq!(paged.body["QueryResponse"]["startPosition"], 3);
    assert_eq!(paged.body["QueryResponse"]["maxResults"], 1);

    let empty = f.query("SELECT * FROM Customer WHERE DisplayName = 'Nobody'").await;
    assert_eq!(empty.body["QueryResponse"], json!({}));
    let unknown = f.query("SELECT * FROM Estimate").await;
    assert_eq!(unknown.body["QueryResponse"], json!({}));

    let count = f.query("SELECT COUNT(*) FROM Customer WHERE Active = true").await;
    assert_eq!(count.body["QueryResponse"], json!({"totalCount": 4}));

    let columns = f.query("SELECT Id, DisplayName FROM Customer MAXRESULTS 1").await;
    assert_eq!(columns.body["QueryResponse"]["Customer"][0], json!({"Id": "1", "DisplayName": "Amy", "sparse": true}));

    let posted = send(
        f.request(Method::POST, "query")
            .header("Content-Type", "application/text")
            .body("SELECT * FROM Customer WHERE Balance = '0'"),
    )
    .await;
    assert_eq!(display_names(&posted), ["Cool Cars"]);
}

#[tokio::test]
async fn default_and_maximum_page_sizes() {
    let f = Fixture::start().await;
    for n in 0..105 {
        f.qbo.insert(REALM, "vendor", json!({"DisplayName": format!("Vendor {n}")}));
    }
    let first = f.query("SELECT * FROM Vendor").await;
    assert_eq!(first.body["QueryResponse"]["Vendor"].as_array().unwrap().len(), DEFAULT_MAX_RESULTS);
    let rest = f.query("SELECT * FROM Vendor STARTPOSITION 101 MAXRESULTS 1000").await;
    assert_eq!(rest.body["QueryResponse"]["Vendor"].as_array().unwrap().len(), 5);
    let too_many = f.query("SELECT * FROM Vendor MAXRESULTS 1001").await;
    assert_eq!((too_many.status, too_many.fault_code()), (StatusCode::BAD_REQUEST, codes::QUERY_VALIDATION));
    let garbled = f.query("SELECT * FORM Vendor").await;
    assert_eq!((garbled.status, garbled.fault_code()), (StatusCode::BAD_REQUEST, codes::QUERY_PARSE));
    let missing = send(f.request(Method::GET, "query")).await;
    assert_eq!(missing.fault_code(), "2020");
}

#[tokio::test]
async fn duplicate_names_are_refused_across_people_lists() {
    let f = Fixture::start().await;
    assert_eq!(f.create("customer", json!({"DisplayName": "Acme"})).await.status, StatusCode::OK);
    let again = f.create("customer", json!({"DisplayName": "ACME"})).await;
    assert_eq!((again.status, again.fault_code()), (StatusCode::BAD_REQUEST, codes::DUPLICATE_NAME));
    let vendor = f.create("vendor", json!({"DisplayName": "Acme"})).await;
    assert_eq!(vendor.fault_code(), codes::DUPLICATE_NAME);
    // Renaming an entity to its own name is no conflict.
    let same = f.create("customer", json!({"Id": "1", "SyncToken": "0", "sparse": true, "DisplayName": "Acme"})).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(f.create("item", json!({"Name": "Acme"})).await.status, StatusCode::OK, "items have their own names");
    assert_eq!(f.create("item", json!({"Name": "acme"})).await.fault_code(), codes::DUPLICATE_NAME);
    assert_eq!(f.qbo.creations(), 2);
}

#[tokio::test]
async fn missing_or_expired_tokens_get_an_authentication_fault() {
    let f = Fixture::start().await;
    let anonymous = send(client().get(format!("{}/customer/1", f.qbo.company_url(REALM)))).await;
    assert_eq!(
        (anonymous.status, anonymous.fault_code(), anonymous.fault_type()),
        (StatusCode::UNAUTHORIZED, "3200", "AUTHENTICATION")
    );
    assert_eq!(anonymous.body["Fault"]["Error"][0]["Message"], "AuthenticationFailed");
    assert!(anonymous.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

    f.oauth.expire_access_tokens();
    let expired = f.query("SELECT * FROM Customer").await;
    assert_eq!((expired.status, expired.fault_code()), (StatusCode::UNAUTHORIZED, "3200"));
    assert_eq!(f.qbo.requests(), 2);
}

#[tokio::test]
async fn unknown_companies_are_forbidden() {
    let f = Fixture::start().await;
    let reply = send(f.request_in("1234", Method::GET, "customer/1")).await;
    assert_eq!((reply.status, reply.fault_code(), reply.fault_type()), (StatusCode::FORBIDDEN, "3100", "SECURITY"));
    f.qbo.add_realm("1234");
    assert_eq!(send(f.request_in("1234", Method::GET, "customer/1")).await.fault_code(), "610");
}

#[tokio::test]
async fn fault_with_200_next() {
    let f = Fixture::start().await;
    f.qbo.fault_with_200_next(1);
    let faulted = f.create("customer", json!({"DisplayName": "Ghost"})).await;
    assert_eq!(
        (faulted.status, faulted.fault_code(), faulted.fault_type()),
        (StatusCode::OK, "2020", "ValidationFault")
    );
    assert_eq!(f.qbo.creations(), 0);
    let fine = f.create("customer", json!({"DisplayName": "Ghost"})).await;
    assert_eq!(fine.body["Customer"]["DisplayName"], "Ghost");
}

#[tokio::test]
async fn throttle_next() {
    let f = Fixture::start().await;
    f.qbo.throttle_next(2);
    for _ in 0..2 {
        let reply = f.query("SELECT * FROM Customer").await;
        assert_eq!((reply.status, reply.fault_code()), (StatusCode::TOO_MANY_REQUESTS, codes::THROTTLE_EXCEEDED));
        assert_eq!(reply.body["Fault"]["Error"][0]["Message"], "ThrottleExceeded");
    }
    assert_eq!(f.query("SELECT * FROM Customer").await.status, StatusCode::OK);
}

/// Sends `count` reads at once and returns their statuses.
async fn concurrent_reads(f: &Fixture, count: usize) -> Vec<StatusCode> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let request = f.request(Method::GET, "query").query(&[("query", "SELECT * FROM Customer")]);
        tasks.spawn(async move { request.send().await.unwrap().status() });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn ten_requests_in_flight_per_company_are_allowed() {
    let f = Fixture::start().await;
    f.qbo.set_delay(Duration::from_millis(500));
    let statuses = concurrent_reads(&f, MAX_CONCURRENT_PER_REALM).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert_eq!(f.qbo.max_concurrent_seen(), MAX_CONCURRENT_PER_REALM);
}

#[tokio::test]
async fn an_eleventh_request_in_flight_gets_429() {
    let f = Fixture::start().await;
    // Long enough for all twelve requests to arrive while the first ten wait.
    f.qbo.set_delay(Duration::from_millis(1500));
    let statuses = concurrent_reads(&f, 12).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((ok, throttled), (10, 2), "{statuses:?}");
    assert_eq!(f.qbo.max_concurrent_seen(), 11);
    // Slots are given back when requests finish.
    f.qbo.set_delay(Duration::ZERO);
    assert_eq!(f.query("SELECT * FROM Customer").await.status, StatusCode::OK);
}

#[tokio::test]
async fn unsupported_requests_and_bodies() {
    let f = Fixture::start().await;
    let report = send(f.request(Method::GET, "reports/ProfitAndLoss")).await;
    assert_eq!((report.status, report.fault_code()), (StatusCode::BAD_REQUEST, codes::UNSUPPORTED_OPERATION));
    let batch = f.create("batch", json!({"BatchItemRequest": []})).await;
    assert_eq!(batch.fault_code(), codes::UNSUPPORTED_OPERATION);
    let void = send(f.request(Method::POST, "invoice").query(&[("operation", "void")]).json(&json!({"Id": "1"}))).await;
    assert_eq!(void.fault_code(), codes::UNSUPPORTED_OPERATION);
    let not_object = f.create("customer", json!(["x"])).await;
    assert_eq!((not_object.status, not_object.fault_code()), (StatusCode::BAD_REQUEST, codes::INVALID_PROPERTY));
    let put = send(f.request(Method::PUT, "customer")).await;
    assert_eq!(put.fault_code(), codes::UNSUPPORTED_OPERATION);
    let outside = send(client().get(format!("{}/v2/company", f.qbo.url()))).await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn seeding_helpers() {
    let f = Fixture::start().await;
    assert_eq!(f.qbo.insert("555", "Customer", json!({"Id": "42", "DisplayName": "Seeded", "SyncToken": "3"})), "42");
    let seeded = f.qbo.get("555", "customer", "42").unwrap();
    assert_eq!((seeded["SyncToken"].as_str(), seeded["domain"].as_str()), (Some("3"), Some("QBO")));
    let next = send(f.request_in("555", Method::POST, "customer").json(&json!({"DisplayName": "Next"}))).await;
    assert_eq!(next.body["Customer"]["Id"], "43", "insert registers the company and advances its ids");
    assert_eq!(f.qbo.all("555", "CUSTOMER").len(), 2);
    assert!(f.qbo.all(REALM, "customer").is_empty());
    assert!(f.qbo.get("555", "customer", "7").is_none());
    assert_eq!(f.qbo.creations(), 1);
    assert_eq!(f.qbo.company_url("555"), format!("{}/v3/company/555", f.qbo.url()));
}

#[test]
fn webhook_signature_is_base64_hmac_sha256_of_the_body() {
    // Computed independently (Python's hmac module).
    assert_eq!(
        sign_webhook("verifier-token", br#"{"eventNotifications":[]}"#),
        "PoTD6NkQ7ZMymzly6D5JRrVrHxAE3mCtl20M12uy6iM="
    );
    assert_ne!(
        sign_webhook("other-token", br#"{"eventNotifications":[]}"#),
        sign_webhook("verifier-token", br#"{"eventNotifications":[]}"#)
    );
}

#[test]
fn webhook_payloads() {
    let mut merged = EntityChange::new("1", "Customer", "9", WebhookOperation::Merge);
    merged.deleted_id = Some("8".into());
    let changes = [
        EntityChange::new("1", "Customer", "5", WebhookOperation::Create),
        EntityChange::new("2", "Invoice", "7", WebhookOperation::Void),
        merged,
    ];
    let legacy = legacy_notification(&changes);
    let notifications = legacy["eventNotifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 2, "one notification per company");
    assert_eq!(notifications[0]["realmId"], "1");
    let entities = notifications[0]["dataChangeEvent"]["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 2);
    assert_eq!(
        (entities[0]["name"].as_str(), entities[0]["id"].as_str(), entities[0]["operation"].as_str()),
        (Some("Customer"), Some("5"), Some("Create"))
    );
    assert!(entities[0]["lastUpdated"].is_string());
    assert!(entities[0].get("deletedId").is_none());
    assert_eq!(entities[1]["deletedId"], "8");
    assert_eq!(notifications[1]["dataChangeEvent"]["entities"][0]["operation"], "Void");

    let events = cloudevents_notification(&changes);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 3);
    let event = &events[0];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "qbo.customer.created.v1");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!((event["intuitentityid"].as_str(), event["intuitaccountid"].as_str()), (Some("5"), Some("1")));
    assert_eq!(event["data"], json!({}));
    assert!(event["time"].as_str().unwrap().ends_with('Z'));
    assert_ne!(events[0]["id"], events[1]["id"]);
    assert_eq!(events[1]["type"], "qbo.invoice.voided.v1");
    assert_eq!(events[2]["type"], "qbo.customer.merged.v1");
}
