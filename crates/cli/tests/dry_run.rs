//! Dry runs from the command line (issue 20) against a real server process, on SQLite and —
//! with `FLOWGATE_TEST_POSTGRES_URL` — PostgreSQL: `apply -f FILE --dry-run` of a new
//! integration applies it; of the same document (after a few recorded executions) reports
//! them all the same and applies (unchanged); of a changed mapping reports the different ones
//! with their diff and applies nothing (exit 1), unless `--yes`; `versions dry-run` of a stored
//! version exits by its results (`--json` with every result); a document whose `tests:` fail
//! is not dry-run. The upstream the flow calls sees no request from any dry run, and output
//! that is not a terminal holds no control characters.

use serde_json::{Value, json};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::{Node, free_port, get_json, skip_or_fail, wait_ready, wait_until};

const TOKEN: &str = "fgt_dry_run_cli_token";

/// The document: an order priced by the upstream (`price`), then mapped (`mapped`: `TOTAL`),
/// with a test case of the mapping (`EXPECTED` its total for qty 2 at price 5).
const DOC: &str = r#"integration: shop
flows:
  - flow: orders
    trigger: { webhook: { path: orders } }
    steps:
      - { id: price, http: { method: GET, url: "URL/prices/{{ .body.qty }}" } }
      - { id: mapped, transform: '{ qty: $trigger.body.qty, total: (TOTAL) }' }
tests:
  - name: a total
    flow: orders
    trigger: { body: { qty: 2 }, headers: {}, query: {} }
    mocks:
      price: { status: 200, headers: {}, body: { price: 5 } }
    expect:
      steps: { mapped: { qty: 2, total: EXPECTED } }
"#;
const TOTAL: &str = "$trigger.body.qty * .body.price";
/// The deliberate change: one more for quantities over 3 (3 of the 6 recorded orders).
const TOTAL_CHANGED: &str = "$trigger.body.qty * .body.price + (if $trigger.body.qty > 3 then 1 else 0 end)";

fn doc(url: &str, total: &str, expected: u32) -> String {
    DOC.replace("URL", url).replace("TOTAL", total).replace("EXPECTED", &expected.to_string())
}

/// An upstream answering every price with 5, counting requests.
async fn upstream() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/prices/{qty}",
        axum::routing::get(move || {
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({ "price": 5 }))
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

/// Runs `flowgate ARGS` against the server (stdout and stderr not terminals).
fn flowgate(base: &str, args: &[&str]) -> Output {
    Command::new(common::BIN)
        .args(args)
        .env("FLOWGATE_URL", base)
        .env("FLOWGATE_TOKEN", TOKEN)
        .output()
        .expect("run flowgate")
}

/// Its stdout and stderr, checked free of control characters (no `\r`, no escape codes).
fn texts(o: &Output) -> (String, String) {
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    for t in [&out, &err] {
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "control characters in output: {t:?}");
    }
    (out, err)
}

/// Runs it and checks its exit code; returns stdout and stderr.
fn expect(code: i32, base: &str, args: &[&str]) -> (String, String) {
    let o = flowgate(base, args);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(code), "flowgate {args:?}\nstdout: {out}\nstderr: {err}");
    (out, err)
}

async fn versions(client: &reqwest::Client, base: &str) -> usize {
    let v = get_json(client, &format!("{base}/v1/integrations/shop/versions"), TOKEN).await;
    v["items"].as_array().map_or(0, Vec::len)
}

async fn scenario(database: Option<String>) {
    flowgate_steps::util::install_tls();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = common::serve(dir.path(), port, TOKEN);
    if let Some(db) = &database {
        serve.env("FLOWGATE_DATABASE_URL", db);
    }
    let _node = Node(serve.spawn().expect("start flowgate"));
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    let (url, hits) = upstream().await;
    let file = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let v1 = file("v1.yaml", doc(&url, TOTAL, 10));
    let v2 = file("v2.yaml", doc(&url, TOTAL_CHANGED, 10));
    let failing = file("failing.yaml", doc(&url, TOTAL_CHANGED, 11));
    let invalid = file("invalid.yaml", doc(&url, TOTAL, 10).replace("id: mapped, transform", "id: mapped, nonsense"));

    // A new integration: the tests run, nothing to compare with, applied.
    let (out, _) = expect(0, &base, &["apply", "-f", &v1, "--dry-run"]);
    assert!(out.contains("ok   a total (orders"), "{out}");
    assert!(out.contains("new on the server"), "{out}");
    assert!(out.contains("shop applied as version 1"), "{out}");

    // Six orders, recorded.
    for qty in 1..=6 {
        let r = client.post(format!("{base}/hooks/default/orders")).json(&json!({ "qty": qty })).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    wait_until("six recorded executions", async || {
        let v =
            get_json(&client, &format!("{base}/v1/executions?integration=shop&flow=orders&status=succeeded"), TOKEN)
                .await;
        v["items"].as_array().map_or(0, Vec::len) == 6
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 6);

    // The same document: all the same, applied (unchanged).
    let (out, err) = expect(0, &base, &["apply", "-f", &v1, "--dry-run"]);
    assert!(out.contains("6 executions of flow orders: 6 same, 0 different, 0 would fail, 0 unanswered"), "{out}");
    assert!(out.contains("shop unchanged at version 1"), "{out}");
    assert!(err.contains("dry run dry_") && err.contains("against 6 recorded executions of flow orders"), "{err}");

    // The changed mapping: three different, with the diff; not applied.
    let (out, _) = expect(1, &base, &["apply", "-f", &v2, "--dry-run"]);
    assert!(out.contains("6 executions of flow orders: 3 same, 3 different, 0 would fail, 0 unanswered"), "{out}");
    assert!(out.contains("(orders): different"), "{out}");
    assert!(out.contains("steps.mapped .total: 20 → 21"), "{out}");
    assert!(out.contains("not applied (use --yes to apply anyway)"), "{out}");
    assert_eq!(versions(&client, &base).await, 1, "nothing applied");
    // The newest two only (quantities 6 and 5), of the flow named.
    let (out, _) = expect(1, &base, &["apply", "-f", &v2, "--dry-run", "--against", "2", "--flow", "orders"]);
    assert!(out.contains("2 executions of flow orders: 0 same, 2 different"), "{out}");
    assert!(out.contains("steps.mapped .total: 30 → 31") && out.contains("steps.mapped .total: 25 → 26"), "{out}");

    // A failing test: nothing dry-run, nothing applied.
    let (out, err) = expect(1, &base, &["apply", "-f", &failing, "--dry-run"]);
    assert!(out.contains("FAIL a total"), "{out}");
    assert!(err.contains("not applied: a test failed") && !err.contains("dry run dry_"), "{err}");
    // An invalid document: its problems, nothing else.
    let (out, err) = expect(1, &base, &["apply", "-f", &invalid, "--dry-run"]);
    assert!(err.contains("not applied") && err.contains("invalid.yaml:"), "{err}");
    assert!(!out.contains("executions of"), "{out}");
    assert_eq!(versions(&client, &base).await, 1, "nothing applied");

    // Accepted with --yes: applied, exit 0.
    let (out, _) = expect(0, &base, &["apply", "-f", &v2, "--dry-run", "--yes"]);
    assert!(out.contains("3 different") && out.contains("applying anyway (--yes)"), "{out}");
    assert!(out.contains("shop applied as version 2"), "{out}");
    assert_eq!(versions(&client, &base).await, 2);

    // A stored version: 2 (live) against what version 1 recorded differs; 1 is the same.
    let (out, _) = expect(1, &base, &["versions", "dry-run", "shop", "2"]);
    assert!(out.contains("6 executions of flow orders: 3 same, 3 different"), "{out}");
    assert!(out.contains("steps.mapped .total: 20 → 21"), "{out}");
    let (out, _) = expect(0, &base, &["versions", "dry-run", "shop", "1", "--json"]);
    let run: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (run["status"].clone(), run["same"].clone(), run["version"].clone()),
        (json!("done"), json!(6), json!("1"))
    );
    assert_eq!(run["results"].as_array().map(Vec::len), Some(6), "{run}");
    assert!(run["results"].as_array().unwrap().iter().all(|r| r["outcome"] == "same"), "{run}");
    let (out, _) = expect(1, &base, &["versions", "dry-run", "shop", "2", "--json", "--against", "1"]);
    let run: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(run["results"][0]["changes"][0]["diff"][0], json!({ "path": ".total", "was": 30, "now": 31 }), "{run}");
    let (_, err) = expect(1, &base, &["versions", "dry-run", "shop", "9"]);
    assert!(err.contains("no version 9"), "{err}");

    // No dry run sent anything.
    assert_eq!(hits.load(Ordering::SeqCst), 6, "a dry run reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_dry_run_on_sqlite() {
    scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_dry_run_on_postgres() {
    let Some(pg) = std::env::var("FLOWGATE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        skip_or_fail("FLOWGATE_TEST_POSTGRES_URL is unset");
        return;
    };
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sep = if pg.contains('?') { '&' } else { '?' };
    scenario(Some(format!("{pg}{sep}schema=fgdry_{secs}_{}", std::process::id()))).await;
}

/// A stand-in server: `GET /v1/integrations/shop` answers 200 when `known` (else, like every
/// unknown route, 404 `no such route`); the dry-runs POST answers `start`; the run reads as
/// `run`; applies (`PUT /v1/integrations/shop`) are counted.
async fn stand_in(known: bool, start: (u16, Value), run: Value) -> (String, Arc<AtomicUsize>) {
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    let puts = Arc::new(AtomicUsize::new(0));
    let counted = puts.clone();
    let no_route = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": { "code": "not_found", "message": "no such route", "details": null } })),
        )
    };
    let integration = move || async move {
        if known {
            (
                StatusCode::OK,
                axum::Json(json!({ "integration": "shop", "version": 1, "flows": [{ "flow": "orders" }] })),
            )
        } else {
            no_route()
        }
    };
    let (start_status, start_body) = start;
    let app = axum::Router::new()
        .route(
            "/v1/integrations/shop",
            get(integration).put(move || {
                let puts = counted.clone();
                async move {
                    puts.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({ "integration": "shop", "version": 2, "created": true, "flows": [] }))
                }
            }),
        )
        .route(
            "/v1/integrations/shop/dry-runs",
            post(move || async move { (StatusCode::from_u16(start_status).unwrap(), axum::Json(start_body)) }),
        )
        .route("/v1/dry-runs/{id}", get(move || async move { axum::Json(run) }))
        .fallback(move || async move { no_route() });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), puts)
}

/// Only the API's own "no such integration" makes a document new: a server (or proxy) without
/// the dry-runs route is an error, and so is a run missing results; nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_dry_run_applies_nothing_it_could_not_compare() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.yaml");
    std::fs::write(&path, doc("http://127.0.0.1:9", TOTAL, 10)).unwrap();
    let file = path.to_str().unwrap().to_owned();
    let args = ["apply", "-f", file.as_str(), "--dry-run"];
    let no_route = json!({ "error": { "code": "not_found", "message": "no such route", "details": null } });
    let started = json!({ "id": "dry_1", "flows": ["orders"], "total": 3 });
    let finished = |done: i64| {
        json!({ "id": "dry_1", "status": "done", "total": 3, "done": done, "same": done, "different": 0,
                "wouldFail": 0, "unanswered": 0, "request": { "flows": ["orders"] }, "results": [] })
    };

    // The integration exists; the dry-runs route does not (an older server).
    let (base, puts) = stand_in(true, (404, no_route.clone()), finished(3)).await;
    let (out, err) = expect(1, &base, &args);
    assert!(err.contains("no such route") && err.contains("no dry runs"), "{err}");
    assert!(!out.contains("new on the server"), "{out}");
    assert_eq!(puts.load(Ordering::SeqCst), 0, "applied");

    // Nothing answers but 404 `no such route`: not a new integration either.
    let (base, puts) = stand_in(false, (404, no_route), finished(3)).await;
    let (out, err) = expect(1, &base, &args);
    assert!(err.contains("no such route") && !out.contains("new on the server"), "{out}\n{err}");
    assert_eq!(puts.load(Ordering::SeqCst), 0, "applied");

    // A finished run with results for 1 of its 3 executions, all the same: not applied.
    let (base, puts) = stand_in(true, (201, started.clone()), finished(1)).await;
    let (out, _) = expect(1, &base, &args);
    assert!(out.contains("results for 1 of its 3 executions"), "{out}");
    assert_eq!(puts.load(Ordering::SeqCst), 0, "applied");
    let (out, _) = expect(1, &base, &["apply", "-f", file.as_str(), "--dry-run", "--yes"]);
    assert!(!out.contains("applying anyway"), "{out}");
    assert_eq!(puts.load(Ordering::SeqCst), 0, "applied");

    // All three the same: applied.
    let (base, puts) = stand_in(true, (201, started), finished(3)).await;
    let (out, _) = expect(0, &base, &args);
    assert!(out.contains("3 same"), "{out}");
    assert_eq!(puts.load(Ordering::SeqCst), 1);
}
