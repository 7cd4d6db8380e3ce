//! The hostile-load suite (issue 12): one test per class of finding. Each attacks a running
//! node as a hostile tenant, a hostile caller or a bad day would, and asserts that the node
//! stays up, answers `/healthz` quickly while the attack runs, and that another tenant's
//! executions keep completing. (A poison execution that kills the process and a database
//! crash are in `crates/cli/tests/crash.rs`: they need a real process and a real server.)

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN: &str = "fga_hostile_admin";
/// The other tenant's sync webhook: its answer and how long it took.
const BYSTANDER: &str = "integration: bystander
flows:
  - flow: echo
    trigger: { webhook: { path: echo, respond: { mode: sync, timeout: 10s } } }
    steps:
      - { id: t, transform: '{ ok: true, n: .body.n }' }
";

async fn bystander_call(s: &TestServer, n: u64) -> Duration {
    let started = Instant::now();
    let (status, _, v) = send(
        s.client.post(format!("{}/hooks/other/echo", s.url)).json(&json!({ "n": n })).timeout(Duration::from_secs(20)),
    )
    .await;
    assert_eq!((status, &v), (200, &json!({ "ok": true, "n": n })), "the other tenant's webhook");
    started.elapsed()
}

async fn healthz_within(s: &TestServer, limit: Duration) -> Duration {
    let started = Instant::now();
    let r = s.client.get(format!("{}/healthz", s.url)).timeout(limit * 4).send().await.expect("healthz answers");
    assert!(r.status().is_success());
    let took = started.elapsed();
    assert!(took < limit, "/healthz took {took:?}");
    took
}

async fn server_with_bystander(tweak: impl FnOnce(&mut flowgate_server::Settings)) -> TestServer {
    server_and_bystander(tweak).await.0
}

/// A server with the bystander tenant `other` and its flow; with that tenant's token.
async fn server_and_bystander(tweak: impl FnOnce(&mut flowgate_server::Settings)) -> (TestServer, String) {
    let s = TestServer::start_with(|st| {
        st.admin_token = Some(ADMIN.into());
        tweak(st);
    })
    .await;
    let other = s.create_tenant(ADMIN, "other").await;
    {
        let (status, v) = s.apply_as(&other, BYSTANDER).await;
        assert!((200..300).contains(&status), "{v}");
    }
    (s, other)
}

backends!(a_definition_cannot_take_the_node_down);
/// Class 1: documents nested deeply in every shape, to validate and to apply.
async fn a_definition_cannot_take_the_node_down() {
    let s = server_with_bystander(|_| {}).await;
    let n = 20_000;
    let docs = [
        format!("integration: deep\nx:\n{}1\n", "- ".repeat(n)),
        format!(
            "integration: deep\nflows:\n{}",
            (0..1000).map(|i| format!("{}k{i}:\n", " ".repeat(i + 1))).collect::<String>()
        ),
        format!("integration: deep\nx: {}1{}\n", "[".repeat(n), "]".repeat(n)),
        format!("{{\"integration\": \"deep\", \"x\": {}1{}}}", "[".repeat(n), "]".repeat(n)),
        // Found by fuzzing: a chain of operators (not brackets) in an expression.
        format!(
            "integration: deep\nflows:\n  - flow: f\n    trigger: {{ manual: {{}} }}\n    steps:\n      - {{ id: t, transform: '{}1' }}\n",
            "-".repeat(12_000)
        ),
        // And a duration beyond what a clock can add.
        "integration: deep\nflows:\n  - flow: f\n    trigger: { manual: {} }\n    timeout: 300000000000000d\n    steps: []\n".to_owned(),
    ];
    for doc in &docs {
        for (method, path) in [(reqwest::Method::POST, "/v1/validate"), (reqwest::Method::PUT, "/v1/integrations/deep")]
        {
            let ct = if doc.starts_with('{') { "application/json" } else { "application/yaml" };
            let (status, _, v) = send(s.api(method.clone(), path).header("content-type", ct).body(doc.clone())).await;
            assert!(status == 422 || status == 400, "{path}: {status} {v}");
            let text = v.to_string();
            assert!(
                ["deeper", "invalid", "operators; the limit is", "the longest accepted"]
                    .iter()
                    .any(|w| text.contains(w)),
                "{path}: {v}"
            );
        }
        healthz_within(&s, Duration::from_secs(1)).await;
    }
    bystander_call(&s, 1).await;
}

backends!(an_expression_cannot_take_the_node_down_or_starve_it);
/// Classes 2 and 3: expressions that build deep values, run unbounded loops, multiply work
/// through shared values or grow memory. They fail with `expression_budget`; meanwhile the
/// node answers and the other tenant's flow runs; nothing is left to crash a restart.
async fn an_expression_cannot_take_the_node_down_or_starve_it() {
    let s = server_with_bystander(|st| st.expression_timeout = Duration::from_millis(500)).await;
    let bad = [
        r#"reduce ("x"*200000|explode|.[]) as $c (null; [.]) | length"#,
        r#"reduce ((("x"*3000|explode|.[]) as $a | ("x"*3000|explode|.[]))) as $b (0;.+1)"#,
        r#"reduce range(40) as $i ("x"; .+.) | length"#,
        r#"reduce range(60) as $i (0; [.,.]) | tojson | length"#,
        r#"(reduce range(60) as $i (0; [.,.])) as $a | (reduce range(60) as $i (0; [.,.])) | . == $a"#,
    ];
    let mut yaml = String::from("integration: evil\nflows:\n");
    for (i, e) in bad.iter().enumerate() {
        yaml.push_str(&format!(
            "  - flow: f{i}\n    trigger: {{ webhook: {{ path: evil/{i} }} }}\n    steps:\n      - {{ id: t, transform: '{}' }}\n",
            e.replace('\'', "''")
        ));
    }
    s.apply(&yaml).await;
    // Several of each at once, while the bystander calls and /healthz is watched.
    let mut ids = Vec::new();
    for i in 0..bad.len() {
        for _ in 0..3 {
            let (status, _, v) = send(s.post_hook(&format!("evil/{i}")).json(&json!({}))).await;
            assert_eq!(status, 202, "{v}");
            ids.push((i, v["executionId"].as_str().unwrap().to_owned()));
        }
    }
    let mut worst = Duration::ZERO;
    for n in 0..10 {
        worst = worst.max(healthz_within(&s, Duration::from_millis(500)).await);
        worst = worst.max(bystander_call(&s, n).await);
    }
    assert!(worst < Duration::from_millis(500), "worst answer while expressions burned: {worst:?}");
    for (i, id) in ids {
        let ex = eventually("the hostile execution to fail", || async {
            let ex = s.execution(&id).await;
            (ex["status"] == "failed").then_some(ex)
        })
        .await;
        assert_eq!(ex["error"]["code"], "expression_budget", "{}: {ex}", bad[i]);
    }
    // A restart resumes nothing that could take it down again.
    let s = s.restart(|st| st.admin_token = Some(ADMIN.into())).await;
    healthz_within(&s, Duration::from_secs(1)).await;
    bystander_call(&s, 99).await;
}

backends!(big_bodies_are_held_to_the_memory_budget);
/// Class 5: memory in flight is bounded by what arrives. With a 2 MiB budget, concurrent
/// 1.5 MiB bodies cannot all be in flight at once: callers beyond the budget get a 503 with
/// `Retry-After` (after a short wait) instead of the node growing without bound; small
/// events of the other tenant still get through, and room comes back as executions end.
async fn big_bodies_are_held_to_the_memory_budget() {
    let up = MockUpstream::start().await;
    up.on("/slow", MockResponse::json(200, json!({ "ok": true })).delay(Duration::from_millis(3000)));
    let s = server_with_bystander(|st| {
        st.memory_in_flight = 2 * 1024 * 1024;
        st.max_body_bytes = 4 * 1024 * 1024;
    })
    .await;
    s.apply(&format!(
        "integration: big\nflows:\n  - flow: f\n    trigger: {{ webhook: {{ path: big }} }}\n    steps:\n      - {{ id: t, transform: 'length' }}\n      - {{ id: wait, http: {{ method: POST, url: \"{}/slow\" }} }}\n",
        up.url
    ))
    .await;
    let body: Vec<u64> = (0..300_000).collect(); // ~1.9 MB of JSON
    let body = serde_json::to_vec(&body).unwrap();
    let sends: Vec<_> = (0..6)
        .map(|_| {
            let req = s.post_hook("big").header("content-type", "application/json").body(body.clone());
            tokio::spawn(send(req))
        })
        .collect();
    let mut accepted = 0;
    let mut refused = 0;
    for t in sends {
        let (status, headers, v) = t.await.unwrap();
        match status {
            202 => accepted += 1,
            503 => {
                assert_error(&v, "unavailable");
                assert_eq!(headers.get("retry-after").and_then(|h| h.to_str().ok()), Some("1"));
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(accepted >= 1 && refused >= 1, "accepted {accepted}, refused {refused}");
    // Small events still pass, and the node answers.
    bystander_call(&s, 7).await;
    healthz_within(&s, Duration::from_secs(1)).await;
    // Once the big executions end, their room is back.
    let (status, _, v) = eventually("room in the budget again", || {
        let req = s.post_hook("big").header("content-type", "application/json").body(body.clone());
        async move {
            let r = send(req).await;
            (r.0 == 202).then_some(r)
        }
    })
    .await;
    assert_eq!(status, 202, "{v}");
}

backends!(a_slow_target_does_not_starve_other_tenants);
/// Class 6: a tenant's flow calls a target that never answers; its executions hold at most
/// its share of the workers, the rest wait in the queue, and the other tenant's sync
/// webhooks and manual runs keep answering at once.
async fn a_slow_target_does_not_starve_other_tenants() {
    // A target that accepts connections and never answers.
    // Raw TCP, not common::MockUpstream: it must never answer, not even with a delayed reply.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}", hang.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = hang.accept().await {
            held.push(c);
        }
    });
    let (s, other_token) = server_and_bystander(|st| st.max_concurrency = 64).await;
    let evil = s.create_tenant(ADMIN, "evil").await;
    let (status, v) = s
        .apply_as(
        &evil,
        &format!(
            "integration: hang\nflows:\n  - flow: f\n    trigger: {{ webhook: {{ path: hang }} }}\n    steps:\n      - {{ id: call, http: {{ method: POST, url: \"{hang_url}/x\", timeout: 30s }} }}\n"
        ),
    )
    .await;
    assert!((200..300).contains(&status), "{v}");
    for n in 0..150 {
        let (status, _, v) = send(s.client.post(format!("{}/hooks/evil/hang", s.url)).json(&json!({ "n": n }))).await;
        assert_eq!(status, 202, "{v}");
    }
    // Wait until the claim loop took what it may: the flow's share of the 64 workers (a
    // quarter) runs against the hanging target, the rest of its events wait in the queue.
    let evil_running = || {
        let req = s.client.get(format!("{}/v1/executions?status=running&limit=500", s.url)).bearer_auth(&evil);
        async move { send(req).await.2["items"].as_array().map_or(0, Vec::len) }
    };
    eventually("the hanging flow to hold its share of the workers", || async {
        (evil_running().await >= 16).then_some(())
    })
    .await;
    let mut took = Vec::new();
    for n in 0..20 {
        took.push(bystander_call(&s, n).await);
    }
    took.sort();
    let (median, worst) = (took[took.len() / 2], took[took.len() - 1]);
    println!("other tenant's sync webhook while a target hangs: median {median:?}, worst {worst:?}");
    assert!(worst < Duration::from_secs(1), "worst {worst:?}");
    // A manual run of another tenant's flow answers at once (it got a 202 after 30 s before).
    let started = Instant::now();
    let run = s.client.post(format!("{}/v1/integrations/bystander/flows/echo/run?wait=true&timeout=5", s.url));
    let (status, _, v) = send(run.bearer_auth(&other_token).json(&json!({ "body": { "n": 5 } }))).await;
    assert_eq!(status, 200, "{v}");
    assert!(started.elapsed() < Duration::from_secs(1), "the manual run took {:?}", started.elapsed());
    // The hanging tenant holds its share, no more: the rest of its events are queued.
    let running = evil_running().await;
    assert!(running <= 32, "the hanging tenant runs {running} of 64 workers");
    healthz_within(&s, Duration::from_millis(500)).await;
}

backends!(a_busy_flow_never_runs_beyond_its_share);
/// Class 6 again, as the queue drains: a flow with a deep backlog against a slow target runs
/// at most its share of the workers (a quarter of 64) at any moment — claims after each
/// finished execution take only the room its share has, not every free worker.
async fn a_busy_flow_never_runs_beyond_its_share() {
    let up = MockUpstream::start().await;
    up.on("/slow", MockResponse::json(200, json!({ "ok": true })).delay(Duration::from_millis(150)));
    let s = server_with_bystander(|st| st.max_concurrency = 64).await;
    s.apply(&format!(
        "integration: busy\nflows:\n  - flow: f\n    trigger: {{ webhook: {{ path: busy }} }}\n    steps:\n      - {{ id: call, http: {{ method: POST, url: \"{}/slow\" }} }}\n",
        up.url
    ))
    .await;
    for n in 0..96 {
        let (status, _, v) = send(s.post_hook("busy").json(&json!({ "n": n }))).await;
        assert_eq!(status, 202, "{v}");
    }
    up.wait_hits("/slow", 96).await;
    let most = up.max_in_flight();
    assert!((8..=16).contains(&most), "the flow ran {most} at once; its share is 16 of 64");
}

backends!(slow_clients_cannot_hold_the_node);
/// Class 7: connections that send half a request and stop. They are closed after the header
/// timeout; at the connection cap the longest-waiting one makes room, so `/healthz` and the
/// other tenant's webhooks keep answering; a body trickled in too slowly gets a 408.
async fn slow_clients_cannot_hold_the_node() {
    let s = server_with_bystander(|st| {
        st.connections.max_connections = 100;
        st.connections.header_timeout = Duration::from_millis(1500);
        st.connections.body_timeout = Duration::from_millis(1500);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(mut c) = tokio::net::TcpStream::connect(s.addr).await {
            let _ = c.write_all(b"POST /hooks/other/echo HTTP/1.1\r\nHost: x\r\nContent-Le").await;
            held.push(c);
        }
    }
    // While they hang: the node answers, the other tenant's webhook works.
    for n in 0..5 {
        healthz_within(&s, Duration::from_millis(1000)).await;
        bystander_call(&s, n).await;
    }
    // Every half-sent request is closed by the server within the header timeout: each read
    // ends (closed, or an answer) by the same deadline, as soon as the server lets go.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2000 + 50);
    let mut open = 0;
    for c in &mut held {
        let mut buf = [0u8; 256];
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(_)) => {} // a 503 (refused at the cap) or 408, then closed
            Err(_) => open += 1,
        }
    }
    assert_eq!(open, 0, "{open} of {} half-sent requests still open", held.len());
    // A body that trickles in: 408.
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"POST /hooks/other/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"n\":").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let _ = c.write_all(b" ").await;
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    answer.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&answer).contains("request_timeout") {
                        break;
                    }
                }
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the trickled body was not cut off");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    bystander_call(&s, 42).await;
}
