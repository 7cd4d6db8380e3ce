//! Kill test (issues 2 and 4): the server runs as a child process under continuous webhook
//! load and is SIGKILLed five times mid-run and restarted. Afterwards every acknowledged event
//! has exactly one completed execution, no completed step ran twice (journal), and the target
//! — which deduplicates by `Idempotency-Key` — applied every step of every execution exactly
//! once; re-sends with the same key (steps in flight at a kill) are counted and printed.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "fgt_crash_test_token";
/// Events and kills in CI; `bench/kill.sh` raises them through the environment.
fn events() -> usize {
    std::env::var("FLOWGATE_KILL_TEST_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(600)
}
fn kills() -> usize {
    std::env::var("FLOWGATE_KILL_TEST_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(5)
}

#[derive(Default)]
struct Upstream {
    hits: Mutex<HashMap<String, u32>>,
}

async fn upstream() -> (String, Arc<Upstream>) {
    let state = Arc::new(Upstream::default());
    let record = |slow: bool| {
        move |State(s): State<Arc<Upstream>>, headers: HeaderMap| async move {
            if slow {
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            *s.hits.lock().unwrap().entry(key).or_default() += 1;
            axum::Json(json!({ "ok": true }))
        }
    };
    let app =
        axum::Router::new().route("/a", post(record(true))).route("/b", post(record(false))).with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

/// The server process, killed when the test ends, however it ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_server(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("FLOWGATE_BOOTSTRAP_TOKEN", TOKEN)
        .env("FLOWGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start flowgate")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).timeout(Duration::from_secs(1)).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_and_reruns_no_completed_step() {
    let (events, kills) = (events(), kills());
    flowgate_steps::util::install_tls();
    let (up_url, up) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // Every call has a deadline: a request stuck on a server that stopped answering fails the
    // test with a message instead of hanging it.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut child = Node(spawn_server(dir.path(), port));
    wait_ready(&client, &base).await;

    let doc = format!(
        "integration: crash\nflows:\n  - flow: f\n    trigger: {{ webhook: {{ path: crash }} }}\n    steps:\n      - {{ id: a, http: {{ method: POST, url: \"{up_url}/a\", json: \"{{{{ .body }}}}\" }} }}\n      - {{ id: mid, transform: '{{ n: $trigger.body.n }}' }}\n      - {{ id: b, http: {{ method: POST, url: \"{up_url}/b\", json: \"{{{{ . }}}}\" }} }}\n"
    );
    let r = client
        .put(format!("{base}/v1/integrations/crash"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // Continuous load: 16 senders, each event retried until acknowledged (as a provider
    // would), with its number as `Idempotency-Key` so a retry after a kill cannot make a
    // second execution. Meanwhile the server is SIGKILLed and restarted five times.
    let acks: Arc<Mutex<HashMap<usize, HashSet<String>>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (client, base, acks, next) = (client.clone(), base.clone(), acks.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= events {
                        return;
                    }
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        assert!(Instant::now() < deadline, "event {n} was never acknowledged");
                        let r = client
                            .post(format!("{base}/hooks/default/crash"))
                            .header("idempotency-key", format!("event-{n}"))
                            .json(&json!({ "n": n }))
                            .timeout(Duration::from_secs(5))
                            .send()
                            .await;
                        if let Ok(r) = r
                            && r.status() == 202
                        {
                            let v: Value = r.json().await.unwrap();
                            acks.lock()
                                .unwrap()
                                .entry(n)
                                .or_default()
                                .insert(v["executionId"].as_str().unwrap().to_owned());
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(150)).await;
        child.0.kill().unwrap(); // SIGKILL, with requests and executions in flight
        child.0.wait().unwrap();
        child = Node(spawn_server(dir.path(), port));
        wait_ready(&client, &base).await;
    }
    for s in senders {
        s.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    assert_eq!(acks.len(), events, "every event is acknowledged in the end");
    for (n, ids) in &acks {
        assert_eq!(ids.len(), 1, "event {n} was acknowledged as several executions: {ids:?}");
    }
    let acked: Vec<String> = acks.values().flat_map(|ids| ids.iter().cloned()).collect();
    let load_done = Instant::now();

    // Every acknowledged event completes.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: HashSet<String> = acked.iter().cloned().collect();
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "{} executions did not finish", pending.len());
        let mut done = Vec::new();
        for id in pending.iter().take(50) {
            let v: Value = client
                .get(format!("{base}/v1/executions/{id}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match v["status"].as_str().unwrap() {
                "succeeded" => done.push(id.clone()),
                "queued" | "running" => {}
                other => panic!("execution {id} ended {other}: {v}"),
            }
        }
        for id in done {
            pending.remove(&id);
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // No completed step ran twice; every step reached the upstream.
    let hits = up.hits.lock().unwrap().clone();
    let mut resent = 0;
    for id in &acked {
        let v: Value = client
            .get(format!("{base}/v1/executions/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    // Only steps in flight at a kill may be re-sent (same key): at most the workers' capacity.
    assert!(resent <= kills * 512, "{resent} re-sends");
    let ids: HashSet<&String> = acked.iter().collect();
    assert_eq!(ids.len(), acked.len(), "duplicate execution ids");
    // No execution beyond one per event: retries after a kill were recognised as repeats.
    let mut total = 0;
    let mut cursor = String::new();
    loop {
        let v: Value = client
            .get(format!("{base}/v1/executions?flow=f&limit=500{cursor}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        total += v["items"].as_array().unwrap().len();
        match v["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(total, events, "one execution per event, no more");
    // The target applies each key once (it deduplicates): applied = distinct keys it saw.
    let applied = hits.len();
    println!(
        "kill test: {events} events sent (retried until acknowledged), {} acknowledged, {} executions, {kills} SIGKILLs, \
         {applied} step calls applied once each, {resent} re-sends with the same key, drained {:.1} s after the load",
        acks.len(),
        acked.len(),
        load_done.elapsed().as_secs_f64()
    );
}
