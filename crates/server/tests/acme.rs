//! The whole story of `examples/acme-erp/` against a local "Acme ERP" and a local "Progix":
//! deploy → the deploy flow registers both webhook URLs in Acme ERP → Acme ERP calls them as
//! customers and stock change → the data arrives at Progix; undeploy → the URLs are removed.
//!
//! The fake Acme ERP (the shared mock upstream, answering by a behaviour) speaks the API the
//! example is written against: `PUT/DELETE /webhooks` (subscriptions, checked against its API
//! key), `GET /customers/{id}`, and outgoing calls to the registered URLs with the
//! `X-Acme-Key` secret it was given.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, Recorded, TestServer, eventually, send};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const EXAMPLE: &str = include_str!("../../../examples/acme-erp/integration.yaml");
const ACME_KEY: &str = "acme-api-key-5551";
const PROGIX_TOKEN: &str = "progix-token-8882";
const HOOK_KEY: &str = "hook-secret-3333";

/// Acme ERP's registered subscriptions and the secret to send with them.
type Subscriptions = Mutex<Option<(Vec<Value>, String)>>;

/// The fake Acme ERP and Progix: the shared mock upstream answering by [`answer`] (which
/// checks each caller's credentials), with Acme ERP's subscriptions kept here.
struct World {
    /// Acme ERP's registered subscriptions and the secret to send with them.
    subscriptions: Arc<Subscriptions>,
    mock: MockUpstream,
}

impl World {
    /// What Progix accepted: (kind, body), in order.
    fn progix(&self) -> Vec<(String, Value)> {
        self.mock
            .all_requests()
            .into_iter()
            .filter(|r| r.status == 201)
            .filter_map(|r| Some((r.path.strip_prefix("/progix/api/")?.to_owned(), r.json())))
            .collect()
    }
}

fn key_ok(r: &Recorded, name: &str, want: &str) -> bool {
    r.header(name) == Some(want)
}

/// The JSON body of a request that says it is JSON.
fn json_body(r: &Recorded) -> Option<Value> {
    r.header("content-type").is_some_and(|ct| ct.starts_with("application/json")).then(|| r.json())
}

/// `PUT/DELETE /acme/webhooks`, `GET /acme/customers/{id}` (with the API key) and
/// `POST /progix/api/{kind}` (with the bearer token).
fn answer(subscriptions: &Subscriptions, r: &Recorded) -> MockResponse {
    let unauthorized = MockResponse::status(401);
    let path = r.path.as_str();
    if path == "/acme/webhooks" {
        if !["PUT", "DELETE"].contains(&r.method.as_str()) {
            return MockResponse::status(405);
        }
        if !key_ok(r, "x-api-key", ACME_KEY) {
            return unauthorized;
        }
        if r.method == "DELETE" {
            *subscriptions.lock().unwrap() = None;
            return MockResponse::status(204);
        }
        let Some(body) = json_body(r) else { return MockResponse::status(415) };
        let subs = body["subscriptions"].as_array().cloned().unwrap_or_default();
        *subscriptions.lock().unwrap() = Some((subs, body["secret"].as_str().unwrap_or("").to_owned()));
        return MockResponse::json(200, json!({ "registered": true }));
    }
    if let Some(id) = path.strip_prefix("/acme/customers/").filter(|id| !id.contains('/')) {
        if r.method != "GET" {
            return MockResponse::status(405);
        }
        if !key_ok(r, "x-api-key", ACME_KEY) {
            return unauthorized;
        }
        let Ok(id) = id.parse::<u64>() else { return MockResponse::status(400) };
        return MockResponse::json(
            200,
            json!({ "id": id, "name": format!("Customer {id}"), "email": format!("C{id}@Acme.Example"), "active": id != 13 }),
        );
    }
    if path.strip_prefix("/progix/api/").is_some_and(|kind| !kind.is_empty() && !kind.contains('/')) {
        if r.method != "POST" {
            return MockResponse::status(405);
        }
        if !key_ok(r, "authorization", &format!("Bearer {PROGIX_TOKEN}")) {
            return unauthorized;
        }
        if json_body(r).is_none() {
            return MockResponse::status(415);
        }
        return MockResponse::json(201, json!({ "id": "p-1" }));
    }
    MockResponse::status(404)
}

async fn start_world() -> (Arc<World>, String) {
    let subscriptions = Arc::new(Mutex::new(None));
    let subs = subscriptions.clone();
    let mock = MockUpstream::with(move |r| answer(&subs, r)).await;
    let url = mock.url.clone();
    let world = Arc::new(World { subscriptions, mock });
    (world, url)
}

/// Acme ERP tells its subscribers about `event`.
async fn emit(world: &World, event: &str, body: Value) -> Vec<u16> {
    let (subs, secret) = world.subscriptions.lock().unwrap().clone().expect("subscribed");
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for s in subs.iter().filter(|s| s["event"] == event) {
        let r = client.post(s["url"].as_str().unwrap()).header("X-Acme-Key", &secret).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        if status != 202 {
            eprintln!("[acme] {event} answered {status}: {}", r.text().await.unwrap_or_default());
        }
        out.push(status);
    }
    out
}

backends!(acme_erp_example_end_to_end);
async fn acme_erp_example_end_to_end() {
    let s = TestServer::start().await;
    let (world, url) = start_world().await;
    let v = s.apply(EXAMPLE).await;
    assert_eq!(v["deployment"]["live"], false, "not live until configured: {v}");
    let (status, _, v) = send(s.api(reqwest::Method::PUT, "/v1/integrations/acme-erp-sync/deployment").json(&json!({
        "config": {
            "acmeBaseUrl": format!("{url}/acme"),
            "acmeApiKey": ACME_KEY,
            "progixUrl": format!("{url}/progix"),
            "progixToken": PROGIX_TOKEN,
            "webhookKey": HOOK_KEY,
        }
    })))
    .await;
    assert_eq!((status, v["live"].clone()), (200, json!(true)), "{v}");

    // The deploy flow registered each flow's own webhook URL.
    let subs = eventually("the webhook registration", || async { world.subscriptions.lock().unwrap().clone() }).await;
    let customers_url = s.get_json("/v1/integrations/acme-erp-sync/flows/customer-sync").await["webhookUrl"].clone();
    let inventory_url = s.get_json("/v1/integrations/acme-erp-sync/flows/inventory-sync").await["webhookUrl"].clone();
    assert_eq!(
        subs.0,
        vec![
            json!({ "event": "customer.changed", "url": customers_url }),
            json!({ "event": "inventory.changed", "url": inventory_url }),
        ]
    );
    assert_eq!(subs.1, HOOK_KEY, "Acme ERP got the secret to call us with");
    let view = eventually("the deploy run to succeed", || async {
        let v = s.get_json("/v1/integrations/acme-erp-sync/deployment").await;
        (v["lifecycle"][0]["lastStatus"] == "succeeded").then_some(v)
    })
    .await;
    assert_eq!(view["deployedVersion"], 1);

    // Acme ERP calls; the data arrives at Progix.
    assert_eq!(emit(&world, "customer.changed", json!({ "eventId": "ev-1", "customerId": 7 })).await, [202]);
    assert_eq!(
        emit(&world, "customer.changed", json!({ "eventId": "ev-1", "customerId": 7 })).await,
        [202],
        "a repeat"
    );
    assert_eq!(
        emit(&world, "customer.changed", json!({ "eventId": "ev-2", "customerId": 13 })).await,
        [202],
        "inactive"
    );
    assert_eq!(emit(&world, "inventory.changed", json!({ "items": [{ "sku": "A-1", "quantity": 4 }] })).await, [202]);
    let got = eventually("Progix to receive both", || async {
        let p = world.progix();
        (p.len() >= 2).then_some(p)
    })
    .await;
    let customers: Vec<&Value> = got.iter().filter(|(k, _)| k == "customers").map(|(_, b)| b).collect();
    assert_eq!(
        customers,
        [&json!({ "externalId": "7", "name": "Customer 7", "email": "c7@acme.example", "active": true })]
    );
    let inventory: Vec<&Value> = got.iter().filter(|(k, _)| k == "inventory").map(|(_, b)| b).collect();
    assert_eq!(inventory, [&json!({ "warehouse": "main", "items": [{ "sku": "A-1", "onHand": 4 }] })]);
    // The wrong secret is refused.
    let r = reqwest::Client::new()
        .post(customers_url.as_str().unwrap())
        .header("X-Acme-Key", "nope")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Its own tests pass on the server too.
    let (status, _, report) = send(s.api(reqwest::Method::POST, "/v1/integrations/acme-erp-sync/test")).await;
    assert_eq!((status, report["passed"].clone()), (200, json!(true)), "{report:#}");

    // Undeploy: the webhooks are removed from Acme ERP and ours stop answering.
    let (status, _, _) = send(s.api(reqwest::Method::DELETE, "/v1/integrations/acme-erp-sync/deployment")).await;
    assert_eq!(status, 200);
    eventually("the webhooks to be removed", || async { world.subscriptions.lock().unwrap().is_none().then_some(()) })
        .await;
    let r = reqwest::Client::new()
        .post(customers_url.as_str().unwrap())
        .header("X-Acme-Key", HOOK_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
