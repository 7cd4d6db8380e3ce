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
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{Node, free_port, get_json, serve, wait_ready, wait_until};

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
                // Latency of a slow upstream (steps in flight at a kill), not synchronisation.
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

fn spawn_server(dir: &std::path::Path, port: u16) -> Child {
    spawn_server_with(
        dir,
        port,
        &[
            // Five SIGKILLs within a second look, to a node, like a poison execution taking it
            // down: an execution running alone at two of them would be failed `crashed_node`.
            // This test is about losing nothing; the limit is tested on its own below.
            "--crash-limit",
            "0",
        ],
    )
}

fn spawn_server_with(dir: &std::path::Path, port: u16, extra: &[&str]) -> Child {
    serve(dir, port, TOKEN).args(extra).spawn().expect("start flowgate")
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
                        // A provider's pause before retrying (the deadline above bounds it).
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    for _ in 0..kills {
        // Not synchronisation: lets the continuous load run between kills.
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
    let mut pending: HashSet<String> = acked.iter().cloned().collect();
    wait_all_succeeded(&client, &base, &mut pending, "acknowledged executions").await;

    // No completed step ran twice; every step reached the upstream.
    let hits = up.hits.lock().unwrap().clone();
    let mut resent = 0;
    for id in &acked {
        let v: Value = get_json(&client, &format!("{base}/v1/executions/{id}"), TOKEN).await;
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
        let v: Value = get_json(&client, &format!("{base}/v1/executions?flow=f&limit=500{cursor}"), TOKEN).await;
        for item in v["items"].as_array().unwrap() {
            assert_eq!(item["status"], "succeeded", "every execution succeeded: {item}");
        }
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

/// Issue 18: a loop SIGKILLed mid-way goes on where it was. Its finished items are not run
/// again (each item's `http` step reaches the target once, but for the few in flight at a
/// kill, re-sent with the same key), every item has one entry, and the output is whole and
/// in the items' order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_killed_midway_goes_on_without_redoing_finished_items() {
    const ITEMS: usize = 300;
    const KILLS: usize = 3;
    flowgate_steps::util::install_tls();
    let (up_url, up) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut child = Node(spawn_server(dir.path(), port));
    wait_ready(&client, &base).await;
    let doc = format!(
        "integration: crash-loop\nflows:\n  - flow: f\n    trigger: {{ manual: {{}} }}\n    steps:\n      - id: each\n        foreach:\n          items: '.body.items'\n          concurrency: 4\n          collect: '.body.ok'\n          steps:\n            - {{ id: push, http: {{ method: POST, url: \"{up_url}/a\", json: \"{{{{ . }}}}\" }} }}\n"
    );
    let r = client
        .put(format!("{base}/v1/integrations/crash-loop"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = client
        .post(format!("{base}/v1/integrations/crash-loop/flows/f/run"))
        .bearer_auth(TOKEN)
        .json(&json!({ "body": { "items": (0..ITEMS).collect::<Vec<_>>() } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned();
    for k in 1..=KILLS {
        // Kill once a share of the items reached the target: mid-loop, with items in flight.
        let want = k * ITEMS / (KILLS + 1);
        wait_until("items to reach the target", async || up.hits.lock().unwrap().len() >= want).await;
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        child = Node(spawn_server(dir.path(), port));
        wait_ready(&client, &base).await;
    }
    let mut pending = HashSet::from([id.clone()]);
    wait_all_succeeded(&client, &base, &mut pending, "the loop").await;
    let v: Value = get_json(&client, &format!("{base}/v1/executions/{id}"), TOKEN).await;
    assert_eq!(v["output"], json!(vec![true; ITEMS]), "the whole output, in order");
    let hits = up.hits.lock().unwrap().clone();
    let mut resent = 0;
    for i in 0..ITEMS {
        let n = hits.get(&format!("{id}:each[{i}].push")).copied().unwrap_or(0);
        assert!(n >= 1, "item {i} never reached the target");
        resent += n as usize - 1;
        let entries = v["steps"].as_array().unwrap().iter().filter(|s| s["stepId"] == format!("each[{i}]")).count();
        assert_eq!(entries, 1, "item {i} has one entry");
    }
    // Only the items in flight at a kill (at most the concurrency) are sent again.
    assert!(resent <= KILLS * 4, "{resent} re-sends");
    println!("loop kill test: {ITEMS} items, {KILLS} SIGKILLs, {resent} re-sends with the same key");
}

/// Issue 12: an execution that takes the process down every time it runs (here its `http`
/// step's target SIGKILLs the node; in the field a bug or an exhausted resource) must not
/// crash-loop the node. It is resumed apart from other work, and after `--crash-limit` (3)
/// crashes in a row without progress it is failed `crashed_node`, visible and retryable;
/// the executions that were interrupted with it complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_execution_is_failed_not_resumed_forever() {
    flowgate_steps::util::install_tls();
    // The target: `/kill` SIGKILLs the node (while armed), `/slow` answers after 300 ms.
    let pid = Arc::new(Mutex::new(0u32));
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let kills = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = {
        let (pid, armed, kills) = (pid.clone(), armed.clone(), kills.clone());
        axum::Router::new()
            .route(
                "/kill",
                post(move || {
                    let (pid, armed, kills) = (pid.clone(), armed.clone(), kills.clone());
                    async move {
                        if armed.load(std::sync::atomic::Ordering::SeqCst) {
                            let pid = *pid.lock().unwrap();
                            kills.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                            // Holds the request open: the node dies without an answer.
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        axum::Json(json!({ "ok": true }))
                    }
                }),
            )
            .route(
                "/slow",
                post(|| async {
                    // A slow target (innocent executions in flight at a kill), not synchronisation.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    axum::Json(json!({ "ok": true }))
                }),
            )
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let spawn = || {
        let child = spawn_server_with(dir.path(), port, &[]);
        *pid.lock().unwrap() = child.id();
        Node(child)
    };
    let mut node = spawn();
    wait_ready(&client, &base).await;
    let doc = format!(
        "integration: poison\nflows:\n  - flow: bad\n    trigger: {{ webhook: {{ path: bad }} }}\n    steps:\n      - {{ id: boom, http: {{ method: POST, url: \"{up}/kill\" }} }}\n  - flow: good\n    trigger: {{ webhook: {{ path: good }} }}\n    steps:\n      - {{ id: wait, http: {{ method: POST, url: \"{up}/slow\" }} }}\n"
    );
    let r = client
        .put(format!("{base}/v1/integrations/poison"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let submit = |path: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client.post(format!("{base}/hooks/default/{path}")).json(&json!({})).send().await.unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned()
        }
    };
    // Innocent executions in flight when the poison one first strikes.
    let mut good = Vec::new();
    for _ in 0..8 {
        good.push(submit("good").await);
    }
    let bad = submit("bad").await;

    // Each time the node dies, start it again (as systemd would), until the poison one is
    // failed and the node stays up.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = |id: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client.get(format!("{base}/v1/executions/{id}")).bearer_auth(TOKEN).send().await.ok()?;
            r.json::<Value>().await.ok()
        }
    };
    let bad_view = loop {
        assert!(
            Instant::now() < deadline,
            "the poison execution was not failed; {} kills",
            kills.load(std::sync::atomic::Ordering::SeqCst)
        );
        if node.0.try_wait().unwrap().is_some() {
            // It may die again before it is ready: the loop comes back here.
            node = spawn();
        }
        if let Some(v) = status(bad.clone()).await
            && v["status"] == "failed"
        {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(bad_view["error"]["code"], "crashed_node", "{bad_view}");
    assert!(bad_view["error"]["message"].as_str().unwrap().contains("`boom`"), "{bad_view}");
    assert_eq!(kills.load(std::sync::atomic::Ordering::SeqCst), 3, "killed at each of its 3 runs, then not run again");
    // The node stays up, and the innocent executions complete.
    for id in &good {
        loop {
            assert!(Instant::now() < deadline, "innocent execution {id} did not complete");
            assert!(node.0.try_wait().unwrap().is_none(), "the node died again");
            match status(id.clone()).await {
                Some(v) if v["status"] == "succeeded" => break,
                Some(v) if v["status"] == "failed" => panic!("an innocent execution failed: {v}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
    // Fixed (the target no longer kills): a person retries it, and it completes.
    armed.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = client.post(format!("{base}/v1/executions/{bad}/retry")).bearer_auth(TOKEN).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    loop {
        assert!(Instant::now() < deadline, "the retried execution did not complete");
        if let Some(v) = status(bad.clone()).await
            && v["status"] == "succeeded"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A private PostgreSQL server of this test's own (`initdb`, `pg_ctl`), which it can crash.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivatePg {
    /// Starts one, or says why it cannot (no PostgreSQL binaries here).
    fn start() -> Result<PrivatePg, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no /usr/lib/postgresql: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .ok_or("no initdb under /usr/lib/postgresql")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let pg = PrivatePg { dir, bin, port: free_port() };
        // initdb refuses to run as root: as the `postgres` user when we are root.
        let _ = Command::new("chown").args(["-R", "postgres"]).arg(pg.dir.path()).status();
        let out = pg.pg("initdb", &["-A", "trust", "-U", "postgres", "--no-sync", "-D"], true)?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        pg.up()?;
        Ok(pg)
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn pg(&self, tool: &str, args: &[&str], with_data: bool) -> Result<std::process::Output, String> {
        let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if with_data {
            argv.push(self.data().display().to_string());
        }
        let tool = self.bin.join(tool).display().to_string();
        let mut cmd = if unsafe_is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &tool]);
            c
        } else {
            Command::new(&tool)
        };
        cmd.args(&argv).output().map_err(|e| format!("{tool}: {e}"))
    }

    fn up(&self) -> Result<(), String> {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let out = self.pg("pg_ctl", &["-w", "-l", "/dev/null", "-o", &opts, "start", "-D"], true)?;
        if !out.status.success() {
            return Err(format!("pg_ctl start failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// Crashes it: an immediate shutdown, as from a power cut or a killed postmaster.
    fn crash(&self) {
        let _ = self.pg("pg_ctl", &["-m", "immediate", "stop", "-D"], true);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.crash();
    }
}

fn unsafe_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Issue 12: the database crashes (immediate shutdown, twice, 4 s each) under steady webhook
/// load from senders that retry with the same `Idempotency-Key`. Commits whose outcome the
/// node never learnt, journals it could not write and leases it could not renew must not
/// leave executions orphaned: every acknowledged event completes, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_crash_orphans_nothing() {
    let pg = match PrivatePg::start() {
        Ok(pg) => pg,
        Err(why) if std::env::var("FLOWGATE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("FLOWGATE_REQUIRE_SERVICES=1 but no private PostgreSQL can be started: {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    flowgate_steps::util::install_tls();
    let (up_url, up) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let _node = Node(spawn_server_with(dir.path(), port, &["--database", &pg.url(), "--lease-ms", "10000"]));
    wait_ready(&client, &base).await;
    let doc = format!(
        "integration: outage\nflows:\n  - flow: f\n    trigger: {{ webhook: {{ path: outage }} }}\n    steps:\n      - {{ id: a, http: {{ method: POST, url: \"{up_url}/b\", json: \"{{{{ .body }}}}\" }} }}\n      - {{ id: mid, transform: '{{ n: $trigger.body.n }}' }}\n"
    );
    let r = client
        .put(format!("{base}/v1/integrations/outage"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/yaml")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks: Arc<Mutex<HashMap<usize, HashSet<String>>>> = Arc::default();
    let acks_all = acks.clone();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (client, base, acks, next, stop) =
                (client.clone(), base.clone(), acks.clone(), next.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        assert!(Instant::now() < deadline, "event {n} was never acknowledged");
                        let r = client
                            .post(format!("{base}/hooks/default/outage"))
                            .header("idempotency-key", format!("event-{n}"))
                            .json(&json!({ "n": n }))
                            .timeout(Duration::from_secs(8))
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
                        // A provider's pause before retrying (the deadline above bounds it).
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for _ in 0..2 {
        // Not synchronisation: the load runs a while before the crash, ...
        tokio::time::sleep(Duration::from_millis(1500)).await;
        pg.crash();
        // ... and the database stays down 4 s (the outage under test).
        tokio::time::sleep(Duration::from_secs(4)).await;
        pg.up().unwrap();
    }
    // The node works again: events are acknowledged after the database came back.
    let at_recovery = acks.lock().unwrap().len();
    wait_until("events to be acknowledged again after the database came back", async || {
        acks.lock().unwrap().len() >= at_recovery + 20
    })
    .await;
    // The load goes on while we wait: a lease renewed for whatever the node holds (rather
    // than what it runs) would keep an orphan alive for as long as there is work.
    let acked: Vec<String> = acks.lock().unwrap().values().flat_map(|ids| ids.iter().cloned()).collect();
    assert!(acked.len() > 50, "the load ran: {} events acknowledged", acked.len());
    // Every acknowledged event completes, well within a lease's time.
    let mut pending: HashSet<String> = acked.iter().cloned().collect();
    wait_all_succeeded(&client, &base, &mut pending, "acknowledged executions").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let acks = acks_all.lock().unwrap().clone();
    for (n, ids) in &acks {
        assert_eq!(ids.len(), 1, "event {n} was acknowledged as several executions: {ids:?}");
    }
    // Let the last ones finish before counting: the executions acknowledged since the ones
    // awaited above (thousands: the load went on all that time) end too. Their number makes
    // this a drain, so it waits for the queue to empty rather than asking after each one;
    // the listing below checks each one succeeded.
    let waited = Instant::now();
    let deadline = waited + Duration::from_secs(120);
    loop {
        let mut unfinished = 0;
        for status in ["queued", "running", "waiting"] {
            let v: Value =
                get_json(&client, &format!("{base}/v1/executions?flow=f&status={status}&limit=1"), TOKEN).await;
            unfinished += v["items"].as_array().unwrap().len();
        }
        if unfinished == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the last acknowledged executions did not finish within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("the executions acknowledged during the wait finished {:?} later", waited.elapsed());
    // Once each: one execution per event, and the step reached the target for each.
    let mut total = 0;
    let mut cursor = String::new();
    loop {
        let v: Value = get_json(&client, &format!("{base}/v1/executions?flow=f&limit=500{cursor}"), TOKEN).await;
        for item in v["items"].as_array().unwrap() {
            assert_eq!(item["status"], "succeeded", "every execution succeeded: {item}");
        }
        total += v["items"].as_array().unwrap().len();
        match v["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(total, acks.len(), "one execution per acknowledged event");
    let hits = up.hits.lock().unwrap().clone();
    for id in &acked {
        assert!(hits.contains_key(&format!("{id}:a")), "{id}'s step never reached the target");
    }
    println!("database outage: {} events acknowledged across 2 crashes, all completed once", acks.len());
}

/// Waits (60 s at most: well within a lease's time, with room for a loaded machine) until
/// every execution in `pending` succeeded; any other end fails the test, and so does the
/// deadline, showing a few of the executions that did not finish.
async fn wait_all_succeeded(client: &reqwest::Client, base: &str, pending: &mut HashSet<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        if Instant::now() > deadline {
            let mut stuck = Vec::new();
            for id in pending.iter().take(5) {
                let v: Value = get_json(client, &format!("{base}/v1/executions/{id}"), TOKEN).await;
                stuck.push(v);
            }
            panic!("{} of {what} never completed, e.g. {stuck:#?}", pending.len());
        }
        forget_succeeded(client, base, pending).await;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Drops from `pending` the executions (up to 200 a call) that succeeded; any other end fails
/// the test.
async fn forget_succeeded(client: &reqwest::Client, base: &str, pending: &mut HashSet<String>) {
    let mut done = Vec::new();
    for id in pending.iter().take(200) {
        let Ok(r) = client.get(format!("{base}/v1/executions/{id}")).bearer_auth(TOKEN).send().await else {
            continue;
        };
        let v: Value = r.json().await.unwrap();
        match v["status"].as_str() {
            Some("succeeded") => done.push(id.clone()),
            Some("queued" | "running") | None => {}
            Some(other) => panic!("execution {id} ended {other}: {v}"),
        }
    }
    for id in done {
        pending.remove(&id);
    }
}
