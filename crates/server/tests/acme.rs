//! The whole story of `examples/acme-erp/` against a local "Acme ERP" and a local "Progix":
//! deploy → the deploy flow registers both webhook URLs in Acme ERP → Acme ERP calls them as
//! customers and stock change → the data arrives at Progix; undeploy → the URLs are removed.
//!
//! The fake Acme ERP speaks the API the example is written against: `PUT/DELETE /webhooks`
//! (subscriptions, checked against its API key), `GET /customers/{id}`, and outgoing calls to
//! the registered URLs with the `X-Acme-Key` secret it was given.

#[macro_use]
mod common;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use common::{TestServer, eventually, send};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const EXAMPLE: &str = include_str!("../../../examples/acme-erp/integration.yaml");
const ACME_KEY: &str = "acme-api-key-5551";
const PROGIX_TOKEN: &str = "progix-token-8882";
const HOOK_KEY: &str = "hook-secret-3333";

#[derive(Default)]
struct World {
    /// Acme ERP's registered subscriptions and the secret to send with them.
    subscriptions: Mutex<Option<(Vec<Value>, String)>>,
    /// What Progix received: (path, body).
    progix: Mutex<Vec<(String, Value)>>,
}

fn key_ok(headers: &HeaderMap, name: &str, want: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()) == Some(want)
}

async fn start_world() -> (Arc<World>, String) {
    let world = Arc::new(World::default());
    let app = axum::Router::new()
        .route(
            "/acme/webhooks",
            put(|State(w): State<Arc<World>>, headers: HeaderMap, Json(body): Json<Value>| async move {
                if !key_ok(&headers, "x-api-key", ACME_KEY) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let subs = body["subscriptions"].as_array().cloned().unwrap_or_default();
                *w.subscriptions.lock().unwrap() = Some((subs, body["secret"].as_str().unwrap_or("").to_owned()));
                Json(json!({ "registered": true })).into_response()
            })
            .delete(|State(w): State<Arc<World>>, headers: HeaderMap| async move {
                if !key_ok(&headers, "x-api-key", ACME_KEY) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                *w.subscriptions.lock().unwrap() = None;
                StatusCode::NO_CONTENT.into_response()
            }),
        )
        .route(
            "/acme/customers/{id}",
            get(|headers: HeaderMap, Path(id): Path<u64>| async move {
                if !key_ok(&headers, "x-api-key", ACME_KEY) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                Json(json!({ "id": id, "name": format!("Customer {id}"), "email": format!("C{id}@Acme.Example"), "active": id != 13 }))
                    .into_response()
            }),
        )
        .route(
            "/progix/api/{kind}",
            post(|State(w): State<Arc<World>>, headers: HeaderMap, Path(kind): Path<String>, Json(body): Json<Value>| async move {
                if !key_ok(&headers, "authorization", &format!("Bearer {PROGIX_TOKEN}")) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                w.progix.lock().unwrap().push((kind, body));
                (StatusCode::CREATED, Json(json!({ "id": "p-1" }))).into_response()
            }),
        )
        .with_state(world.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
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
        let p = world.progix.lock().unwrap().clone();
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
