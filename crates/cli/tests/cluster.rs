//! Cluster test (issue 3): three nodes share one PostgreSQL. Webhooks go to all of them; one
//! node is SIGKILLed mid-load. Every acknowledged event must complete exactly once (the dead
//! node's executions resume elsewhere once their leases expire), no completed step may run
//! twice, and a sync webhook must be answered by the node that received it even when another
//! node runs it (node 3 has no worker role, so everything it receives runs elsewhere).
//!
//! Needs `FLOWGATE_TEST_POSTGRES_URL`; says it was skipped when that is unset.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{Nodes, free_port, get_json, serve, skip_or_fail, wait_until};

const TOKEN: &str = "fgt_cluster_test_token";
const EVENTS: usize = 300;

#[derive(Default)]
struct Upstream {
    hits: Mutex<HashMap<String, u32>>,
    /// Per order key, the event numbers in the order they arrived.
    ordered: Mutex<HashMap<String, Vec<u64>>>,
}

async fn upstream() -> (String, Arc<Upstream>) {
    let state = Arc::new(Upstream::default());
    let record = |slow: bool| {
        move |State(s): State<Arc<Upstream>>, headers: HeaderMap| async move {
            if slow {
                // Latency of a slow upstream (steps in flight at the kill), not synchronisation.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            *s.hits.lock().unwrap().entry(key).or_default() += 1;
            axum::Json(json!({ "ok": true }))
        }
    };
    let ordered = |State(s): State<Arc<Upstream>>, axum::Json(v): axum::Json<Value>| async move {
        // A little latency, so that out-of-order delivery would show.
        tokio::time::sleep(Duration::from_millis(v["n"].as_u64().unwrap_or(0) % 7)).await;
        let key = v["key"].as_str().unwrap_or("").to_owned();
        s.ordered.lock().unwrap().entry(key).or_default().push(v["n"].as_u64().unwrap_or(0));
        axum::Json(json!({ "ok": true }))
    };
    let app = axum::Router::new()
        .route("/a", post(record(true)))
        .route("/b", post(record(false)))
        .route("/ordered", post(ordered))
        .with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

fn spawn_node(dir: &std::path::Path, port: u16, database: &str, roles: &str) -> Child {
    serve(dir, port, TOKEN)
        .args(["--roles", roles, "--lease-ms", "2000", "--pool-size", "4"])
        .env("FLOWGATE_DATABASE_URL", database)
        // Nodes sharing a database share the master key that seals its secrets.
        .env("FLOWGATE_MASTER_KEY", "7f".repeat(32))
        .spawn()
        .expect("start flowgate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_survive_a_sigkill() {
    let Some(pg) = std::env::var("FLOWGATE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        skip_or_fail("FLOWGATE_TEST_POSTGRES_URL is unset");
        return;
    };
    flowgate_steps::util::install_tls();
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sep = if pg.contains('?') { '&' } else { '?' };
    let database = format!("{pg}{sep}schema=fgc_{secs}_{}", std::process::id());
    let (up_url, up) = upstream().await;
    let client = reqwest::Client::new();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let bases: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    // Node 1 first (it migrates and bootstraps), then the others.
    let mut nodes = Nodes(vec![spawn_node(dirs[0].path(), ports[0], &database, "api,worker,scheduler")]);
    wait_until("node 1", async || {
        client.get(format!("{}/readyz", bases[0])).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    nodes.0.push(spawn_node(dirs[1].path(), ports[1], &database, "api,worker,scheduler"));
    nodes.0.push(spawn_node(dirs[2].path(), ports[2], &database, "api,scheduler"));
    for b in &bases[1..] {
        wait_until("nodes 2 and 3", async || {
            client.get(format!("{b}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    let doc = format!(
        "integration: cluster\nflows:\n  - flow: work\n    trigger: {{ webhook: {{ path: work }} }}\n    steps:\n      - {{ id: a, http: {{ method: POST, url: \"{up_url}/a\", json: \"{{{{ .body }}}}\" }} }}\n      - {{ id: mid, transform: '{{ n: $trigger.body.n }}' }}\n      - {{ id: b, http: {{ method: POST, url: \"{up_url}/b\", json: \"{{{{ . }}}}\" }} }}\n  - flow: quote\n    trigger: {{ webhook: {{ path: quote, respond: {{ mode: sync, timeout: 10s }} }} }}\n    steps:\n      - {{ id: price, transform: '{{ total: ($trigger.body.qty * 2) }}' }}\n      - {{ id: reply, respond: {{ status: 201, body: \"{{{{ . }}}}\" }} }}\n  - flow: ordered\n    orderBy: '$trigger.body.key'\n    trigger: {{ webhook: {{ path: ordered }} }}\n    steps:\n      - {{ id: deliver, http: {{ method: POST, url: \"{up_url}/ordered\", json: \"{{{{ $trigger.body }}}}\" }} }}\n"
    );
    let r = client
        .put(format!("{}/v1/integrations/cluster", bases[0]))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // The other nodes learn about it by NOTIFY.
    for b in &bases {
        wait_until("the integration on every node", async || {
            client
                .post(format!("{b}/hooks/default/quote"))
                .json(&json!({ "qty": 1 }))
                .send()
                .await
                .is_ok_and(|r| r.status() == 201)
        })
        .await;
    }

    // Sync webhooks on node 3 (no worker): another node runs them, node 3 answers.
    for qty in 1..=10 {
        let r =
            client.post(format!("{}/hooks/default/quote", bases[2])).json(&json!({ "qty": qty })).send().await.unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({ "total": qty * 2 }));
    }

    // Async load on all nodes; node 2 is killed a third of the way in.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut killed = false;
    for wave in 0..(EVENTS / 30) {
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let n = wave * 30 + i;
                let base = bases[n % 3].clone();
                let (client, acked) = (client.clone(), acked.clone());
                tokio::spawn(async move {
                    if let Ok(r) =
                        client.post(format!("{base}/hooks/default/work")).json(&json!({ "n": n })).send().await
                        && r.status() == 202
                    {
                        let v: Value = r.json().await.unwrap();
                        acked.lock().unwrap().push(v["executionId"].as_str().unwrap().to_owned());
                    }
                })
            })
            .collect();
        if !killed && wave == EVENTS / 30 / 3 {
            // Not synchronisation: lets this wave's requests get under way so the kill lands
            // mid-load; the assertions hold whatever it catches in flight.
            tokio::time::sleep(Duration::from_millis(10)).await;
            nodes.0[1].kill().unwrap(); // SIGKILL, with executions in flight
            nodes.0[1].wait().unwrap();
            killed = true;
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > EVENTS / 2, "too few events acknowledged: {}", acked.len());

    // Everything acknowledged completes, the dead node's work included.
    let mut pending: HashSet<String> = acked.iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "{} executions did not finish", pending.len());
        let mut done = Vec::new();
        for id in pending.iter().take(60) {
            let v: Value = get_json(&client, &format!("{}/v1/executions/{id}", bases[0]), TOKEN).await;
            match v["status"].as_str().unwrap_or("") {
                "succeeded" => done.push(id.clone()),
                "queued" | "running" => {}
                other => panic!("execution {id} ended {other}: {v}"),
            }
        }
        for id in done {
            pending.remove(&id);
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let hits = up.hits.lock().unwrap().clone();
    let mut resent = 0;
    for id in &acked {
        let v: Value = get_json(&client, &format!("{}/v1/executions/{id}", bases[2]), TOKEN).await;
        let succeeded: Vec<&str> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "succeeded")
            .map(|s| s["stepId"].as_str().unwrap())
            .collect();
        assert_eq!(succeeded, vec!["a", "mid", "b"], "journal of {id}: {v}");
        for step in ["a", "b"] {
            let n = hits.get(&format!("{id}:{step}")).copied().unwrap_or(0);
            assert!(n >= 1, "{id}:{step} never reached the upstream");
            resent += n as usize - 1;
        }
    }
    // An ordered flow keeps its order across the surviving nodes: 8 keys × 25 events, each key
    // sent in order (alternating between nodes 1 and 3), keys concurrently.
    let (keys, per_key) = (8usize, 25u64);
    let senders: Vec<_> = (0..keys)
        .map(|k| {
            let (client, bases) = (client.clone(), bases.clone());
            tokio::spawn(async move {
                for n in 0..per_key {
                    let base = &bases[if n % 2 == 0 { 0 } else { 2 }];
                    let r = client
                        .post(format!("{base}/hooks/default/ordered"))
                        .json(&json!({ "key": format!("k{k}"), "n": n }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 202);
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    wait_until("ordered deliveries", async || {
        up.ordered.lock().unwrap().values().map(Vec::len).sum::<usize>() == keys * per_key as usize
    })
    .await;
    for (key, seen) in up.ordered.lock().unwrap().iter() {
        assert_eq!(*seen, (0..per_key).collect::<Vec<_>>(), "order of key {key} across nodes");
    }
    println!(
        "cluster test: {} events acknowledged of {EVENTS}, node 2 SIGKILLed, {resent} step re-sends with the same key; \
         {keys} ordered keys x {per_key} events delivered in order across nodes",
        acked.len()
    );
}
