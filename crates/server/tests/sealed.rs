//! Sealed (issue 13): no request reaches where policy forbids, no tenant reaches another's
//! data, no secret leaks. One test per class; each attacks as a hostile tenant or caller.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn guarded(allow: &[&str]) -> impl FnOnce(&mut flowgate_server::Settings) {
    let allow: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
    move |s| s.outbound = flowgate_steps::outbound::OutboundPolicy { deny_private: true, allow }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

async fn run_once(s: &TestServer, yaml: &str) -> Value {
    s.apply(yaml).await;
    let slug = slug_of(yaml);
    let r = s
        .api(reqwest::Method::POST, &format!("/v1/integrations/{slug}/flows/f/run?wait=true&timeout=10"))
        .json(&json!({ "body": {} }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let id = v["executionId"].as_str().map(str::to_owned).unwrap_or_default();
    if id.is_empty() { v } else { s.execution(&id).await }
}

backends!(every_redirect_hop_is_checked);
/// Class 1: an allowed host that redirects to an internal address. Every hop is checked
/// like the first URL (IPv4, IPv6, `localhost`), so the internal body is never fetched;
/// redirects between allowed places still work, and loops stop.
async fn every_redirect_hop_is_checked() {
    let inside = MockUpstream::start().await;
    inside.on("/secret", MockResponse::json(200, json!({ "secret": "internal-only" })));
    let front = MockUpstream::start().await;
    // `localhost` is allowed by name (it resolves to loopback); the IP literals are not.
    let s = TestServer::start_with(guarded(&["localhost"])).await;
    let front_port = port_of(&front.url);
    let inside_port = port_of(&inside.url);
    for (path, target) in [
        ("/v4", format!("http://127.0.0.1:{inside_port}/secret")),
        ("/v6", format!("http://[::1]:{inside_port}/secret")),
        ("/dec", format!("http://2130706433:{inside_port}/secret")),
    ] {
        front.on(path, MockResponse::status(302).header("location", &target));
        let ex = run_once(
            &s,
            &format!(
                "integration: redir\nflows:\n  - flow: f\n    trigger: {{ manual: {{}} }}\n    steps:\n      - {{ id: call, http: {{ url: \"http://localhost:{front_port}{path}\" }}, retry: {{ attempts: 1 }} }}\n"
            ),
        )
        .await;
        assert_eq!(ex["status"], "failed", "{path}: {ex:#}");
        let text = ex.to_string();
        assert!(text.contains("internal addresses are refused"), "{path}: {ex:#}");
        assert!(!text.contains("internal-only"), "{path}: the internal body leaked: {ex:#}");
    }
    assert_eq!(inside.hits("/secret"), 0, "the internal target was reached");
    // Allowed to allowed: followed.
    front.on("/hop", MockResponse::status(302).header("location", &format!("http://localhost:{front_port}/end")));
    front.on("/end", MockResponse::json(200, json!({ "ok": 1 })));
    let ex = run_once(
        &s,
        &format!(
            "integration: redir\nflows:\n  - flow: f\n    trigger: {{ manual: {{}} }}\n    steps:\n      - {{ id: call, http: {{ url: \"http://localhost:{front_port}/hop\" }} }}\n"
        ),
    )
    .await;
    assert_eq!(ex["status"], "succeeded", "{ex:#}");
    assert_eq!(ex["output"]["body"], json!({ "ok": 1 }));
    // A loop stops after 10 hops.
    front.on("/loop", MockResponse::status(302).header("location", &format!("http://localhost:{front_port}/loop")));
    let ex = run_once(
        &s,
        &format!(
            "integration: redir\nflows:\n  - flow: f\n    trigger: {{ manual: {{}} }}\n    steps:\n      - {{ id: call, http: {{ url: \"http://localhost:{front_port}/loop\" }}, retry: {{ attempts: 1 }} }}\n"
        ),
    )
    .await;
    assert_eq!(ex["status"], "failed", "{ex:#}");
    assert!(ex.to_string().contains("more than 10 redirects"), "{ex:#}");
    assert!(front.hits("/loop") <= 11, "{} hops", front.hits("/loop"));
}

backends!(flow_tests_run_under_the_nodes_policies);
/// Class 2: `POST …/test` runs on a throwaway engine, which used to have default settings:
/// an un-mocked `http` step reached a loopback address a real run refuses, and the internal
/// answer came back in the result's `actual`. Now a test may do nothing a run may not.
async fn flow_tests_run_under_the_nodes_policies() {
    let inside = MockUpstream::start().await;
    inside.on("/secret", MockResponse::json(200, json!({ "secret": "internal-only" })));
    let s = TestServer::start_with(|st| {
        guarded(&[])(st);
        st.expression_timeout = Duration::from_millis(200);
    })
    .await;
    s.apply(&format!(
        r#"integration: probe
flows:
  - flow: f
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: call, http: {{ url: "{}/secret" }}, retry: {{ attempts: 1 }} }}
  - flow: slow
    trigger: {{ manual: {{}} }}
    steps:
      - {{ id: spin, transform: 'last(range(1e12))' }}
tests:
  - name: leaks
    flow: f
    expect: {{ steps: {{ call: {{ body: {{ secret: x }} }} }} }}
  - name: spins
    flow: slow
    expect: {{ status: succeeded }}
"#,
        inside.url
    ))
    .await;
    let started = std::time::Instant::now();
    let (status, _, v) = send(s.api(reqwest::Method::POST, "/v1/integrations/probe/test")).await;
    assert_eq!(status, 200, "{v}");
    let text = v.to_string();
    assert!(!text.contains("internal-only"), "the internal answer came back: {v:#}");
    assert_eq!(inside.hits("/secret"), 0, "the test reached the internal address");
    assert_eq!(v["passed"], false, "{v:#}");
    // The node's expression budget (200 ms) applied too, not the default second.
    assert!(text.contains("expression_budget") || text.contains("time budget"), "{v:#}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

const SECRET: &str = "sk_live_Zq7Xp9Lm2Vb4Nc8D";

/// Every form of the secret that must never be recorded or shown.
fn forms() -> Vec<String> {
    use base64::Engine as _;
    vec![
        SECRET.to_owned(),
        SECRET.to_uppercase(),
        SECRET.to_lowercase(),
        base64::engine::general_purpose::STANDARD.encode(SECRET),
        base64::engine::general_purpose::STANDARD.encode(format!("api:{SECRET}")),
        hex::encode(SECRET),
    ]
}

fn assert_sealed(what: &str, text: &str) {
    for f in forms() {
        assert!(!text.contains(&f), "{what} holds the secret ({f}): {}", &text[..text.len().min(2000)]);
    }
}

backends!(secrets_do_not_leak_through_any_path);
/// Class 4: a secret config value, used as is and transformed (`ascii_upcase`, `@base64`,
/// `@base64` of `user:secret`), logged, sent, answered by a `respond` step (sync) and raised
/// in a `dedupKey` error. The webhook caller gets the answer the flow gave; nothing recorded
/// or shown by the API, the status URL, `run?wait=true`, `…/test` or an error holds it in any
/// form; and neither does the database file.
async fn secrets_do_not_leak_through_any_path() {
    let up = MockUpstream::start().await;
    up.on("/push", MockResponse::json(200, json!({ "ok": true })));
    let s = TestServer::start().await;
    s.apply(&format!(
        r#"integration: leaky
config:
  apiKey: {{ type: secret, required: true }}
flows:
  - flow: f
    trigger: {{ webhook: {{ path: leaky, respond: {{ mode: sync, timeout: 10s }} }} }}
    steps:
      - id: forms
        transform: '{{ plain: $config.apiKey, up: ($config.apiKey | ascii_upcase), b64: ($config.apiKey | @base64), basic: ("api:" + $config.apiKey | @base64) }}'
      - id: say
        log: {{ message: "key {{{{ $config.apiKey }}}} / {{{{ $steps.forms.b64 }}}}" }}
      - id: push
        http: {{ method: POST, url: "{}/push", headers: {{ Authorization: "Basic {{{{ $steps.forms.basic }}}}" }}, json: "{{{{ $steps.forms }}}}" }}
      - id: answer
        respond: {{ status: 200, body: {{ token: "{{{{ $steps.forms.plain }}}}", up: "{{{{ $steps.forms.up }}}}" }} }}
  - flow: keyed
    trigger: {{ webhook: {{ path: keyed, dedupKey: '$config.apiKey | tonumber' }} }}
    steps:
      - {{ id: t, transform: '.' }}
tests:
  - name: shows
    flow: f
    mocks: {{ push: {{ status: 200, body: {{}} }} }}
    expect: {{ output: {{ token: nope }} }}
"#,
        up.url
    ))
    .await;
    let (status, _, v) = send(
        s.api(reqwest::Method::PUT, "/v1/integrations/leaky/deployment")
            .json(&json!({ "config": { "apiKey": SECRET } })),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    // The caller gets what the flow answered; the target got the real header.
    let (status, headers, answer) = send(s.post_hook("leaky").json(&json!({ "n": 1 }))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token"], SECRET);
    let id = headers.get("x-flowgate-execution-id").unwrap().to_str().unwrap().to_owned();
    let sent = up.requests("/push");
    assert!(sent[0].header("authorization").unwrap().contains(&forms()[4]), "the target got the real header");

    // Nothing recorded or shown holds it.
    let ex = s.wait_for(&id, "succeeded").await;
    assert_sealed("the execution's view", &ex.to_string());
    let status_url = ex["statusUrl"].as_str().unwrap();
    let view: Value = s.client.get(status_url).send().await.unwrap().json().await.unwrap();
    assert_sealed("the status URL", &view.to_string());
    let listing = s.get_json("/v1/executions?flow=f").await;
    assert_sealed("the listing", &listing.to_string());
    let (_, _, run) = send(
        s.api(reqwest::Method::POST, "/v1/integrations/leaky/flows/f/run?wait=true&timeout=10")
            .json(&json!({ "body": {} })),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_sealed("run?wait=true", &run.to_string());
    let (_, _, test) = send(s.api(reqwest::Method::POST, "/v1/integrations/leaky/test")).await;
    assert_eq!(test["passed"], false, "{test}");
    assert_sealed("the test report", &test.to_string());
    let (_, _, source) = send(s.api(reqwest::Method::GET, "/v1/integrations/leaky")).await;
    assert_sealed("the integration", &source.to_string());

    // An unauthenticated caller never sees an evaluation's message (it quoted the value).
    let (status, _, v) = send(s.post_hook("keyed").json(&json!({}))).await;
    assert_eq!(status, 400, "{v}");
    assert_sealed("the refusal", &v.to_string());
    assert!(!v.to_string().contains("cannot parse"), "{v}");

    // The database file (SQLite) holds none of it either: read once the server has stopped,
    // so that everything it wrote is in the files.
    if s.data_dir().is_some() {
        let dir = s.stop_keeping_data().await;
        let files = eventually("the database files to be read whole", || async {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("flowgate.db") {
                    continue;
                }
                match std::fs::read(entry.path()) {
                    Ok(bytes) => files.push((name, bytes)),
                    // SQLite removes its `-wal` and `-shm` files as its last connection closes,
                    // once their pages are in the database file: read them all again.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                    Err(e) => panic!("{name}: {e}"),
                }
            }
            Some(files)
        })
        .await;
        assert!(files.iter().any(|(name, _)| name == "flowgate.db"), "no database file in {:?}", dir.path());
        for (name, bytes) in &files {
            for f in forms() {
                assert!(!bytes.windows(f.len()).any(|w| w == f.as_bytes()), "{name} holds the secret ({f})");
            }
        }
    }
}

const ADMIN: &str = "fga_sealed_admin";
backends!(tenants_do_not_cross_in_any_shared_namespace);
/// Class 3: every namespace two tenants share. E-mail addresses (a tenant cannot claim
/// another's derived address, now or before it exists), log files (not another tenant's
/// folder, by relative or absolute path), webhook paths, delivery identities and rate-limit
/// names (the same in two tenants are two), and records by id (another tenant's execution,
/// delivery or log source is not found).
async fn tenants_do_not_cross_in_any_shared_namespace() {
    let s = TestServer::start_with(|st| {
        st.admin_token = Some(ADMIN.into());
        st.smtp_domain = Some("in.example.com".into());
    })
    .await;
    let a = s.create_tenant(ADMIN, "alpha").await;
    let b = s.create_tenant(ADMIN, "beta").await;

    // E-mail: alpha may not take beta's derived address (beta's flow may not even exist yet).
    let steal = "integration: mail\nflows:\n  - flow: grab\n    trigger: { email: { address: orders.shop.beta@in.example.com } }\n    steps: []\n";
    let (status, v) = s.apply_as(&a, steal).await;
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("tenant `beta`'s own addresses"), "{v}");
    let (status, v) = s.apply_as(&a, &steal.replace("orders.shop.beta", "Orders.Shop.BETA")).await;
    assert_eq!(status, 422, "case does not help: {v}");
    // Its own derived shape, and other addresses, are fine; an explicit address is one tenant's.
    let (status, v) = s.apply_as(&a, &steal.replace("orders.shop.beta", "orders.shop.alpha")).await;
    assert!((200..300).contains(&status), "{v}");
    let mine = "integration: mail2\nflows:\n  - flow: m\n    trigger: { email: { address: sales@in.example.com } }\n    steps: []\n";
    let (status, v) = s.apply_as(&a, mine).await;
    assert!((200..300).contains(&status), "{v}");
    let (status, v) = s.apply_as(&b, mine).await;
    assert_eq!(status, 409, "beta cannot take alpha's explicit address: {v}");

    // Log files: each tenant in its own folder.
    let log_dir = std::path::absolute(s.home().join("logs")).unwrap();
    for path in [
        "../beta/stolen.ndjson".to_owned(),
        log_dir.join("beta").join("stolen.ndjson").display().to_string(),
        log_dir.join("shared.ndjson").display().to_string(),
        log_dir.join("alpha").display().to_string(),
    ] {
        let (status, _, v) = send(
            s.client
                .put(format!("{}/v1/log-sources/audit", s.url))
                .bearer_auth(&a)
                .json(&json!({ "file": { "path": path } })),
        )
        .await;
        assert_eq!(status, 422, "{path}: {v}");
    }
    let (status, _, v) = send(
        s.client
            .put(format!("{}/v1/log-sources/audit", s.url))
            .bearer_auth(&a)
            .json(&json!({ "file": { "path": "audit.ndjson" } })),
    )
    .await;
    assert_eq!(status, 200, "a relative path is the tenant's own: {v}");
    assert!(v.to_string().contains("/alpha/audit.ndjson"), "{v}");
    // … and another tenant does not see it.
    let (status, _, _) = send(s.client.get(format!("{}/v1/log-sources/audit", s.url)).bearer_auth(&b)).await;
    assert_eq!(status, 404);

    // Webhook paths, delivery identities and rate-limit names: the same in both, apart.
    let flows = "integration: shop\nlimits: { api: { rate: 1/s, burst: 1 } }\nflows:\n  - flow: orders\n    trigger: { webhook: { path: orders, dedupKey: '$trigger.body.id' } }\n    steps:\n      - { id: t, transform: '{ who: $flow.tenant }' }\n";
    for t in [&a, &b] {
        let (status, v) = s.apply_as(t, flows).await;
        assert!((200..300).contains(&status), "{v}");
    }
    let mut ids = Vec::new();
    for tenant in ["alpha", "beta"] {
        let (status, headers, v) =
            send(s.client.post(format!("{}/hooks/{tenant}/orders", s.url)).json(&json!({ "id": "same-id" }))).await;
        assert_eq!(status, 202, "{v}");
        assert!(headers.get("x-flowgate-duplicate").is_none(), "the same key in another tenant is not a repeat");
        ids.push(v["executionId"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1]);
    // Records by id: another tenant's are not found.
    for (token, other) in [(&a, &ids[1]), (&b, &ids[0])] {
        let (status, _, _) = send(s.client.get(format!("{}/v1/executions/{other}", s.url)).bearer_auth(token)).await;
        assert_eq!(status, 404);
        for action in ["retry", "replay", "cancel"] {
            let (status, _, _) =
                send(s.client.post(format!("{}/v1/executions/{other}/{action}", s.url)).bearer_auth(token)).await;
            assert_eq!(status, 404, "{action}");
        }
    }
}

backends!(the_small_holes_are_closed);
/// Class 5, the smaller ones: a `respond` step cannot break its answer's framing (framing
/// headers, 1xx, header values with line breaks); path-parameter errors answer in the JSON
/// error shape; a JSON definition with a repeated key is refused like a YAML one; the
/// database and log files are their owner's only; a tenant's SMTP host is checked again at
/// send time (saved while allowed, it now resolves inside: refused, never connected to).
async fn the_small_holes_are_closed() {
    let s = TestServer::start().await;

    // respond: checked when the flow is compiled …
    for (what, step) in [
        ("framing header", "respond: { status: 200, headers: { Transfer-Encoding: chunked }, body: x }"),
        ("length", "respond: { status: 200, headers: { content-length: '5' }, body: x }"),
        ("connection", "respond: { status: 200, headers: { Connection: close }, body: x }"),
        ("1xx", "respond: { status: 101, body: x }"),
    ] {
        let yaml = format!(
            "integration: resp\nflows:\n  - flow: f\n    trigger: {{ webhook: {{ path: resp, respond: {{ mode: sync, timeout: 10s }} }} }}\n    steps:\n      - {{ id: r, {step} }}\n"
        );
        let (status, v) = s.put_integration("resp", &yaml).await;
        assert_eq!(status, 422, "{what}: {v}");
        assert!(v["error"]["details"].to_string().contains("steps[0]"), "{what} located: {v}");
    }
    // … and when it runs: a computed 1xx or a value with a line break fails the run clearly.
    s.apply("integration: resp\nflows:\n  - flow: f\n    trigger: { webhook: { path: resp, respond: { mode: sync, timeout: 10s } } }\n    steps:\n      - { id: r, respond: { status: '{{ $trigger.body.status }}', headers: { X-Note: '{{ $trigger.body.note }}' }, body: ok } }\n").await;
    let (status, headers, _) = send(s.post_hook("resp").json(&json!({ "status": 201, "note": "fine" }))).await;
    assert_eq!((status, headers.get("x-note").map(|h| h.to_str().unwrap().to_owned())), (201, Some("fine".into())));
    for body in [json!({ "status": 103, "note": "x" }), json!({ "status": 200, "note": "a\r\nSet-Cookie: evil=1" })] {
        let (status, headers, v) = send(s.post_hook("resp").json(&body)).await;
        assert!(status >= 500, "{body}: {status} {v}");
        assert!(headers.get("set-cookie").is_none());
    }

    // Path parameters that do not decode: the JSON error shape, not plain text.
    for path in ["/v1/executions/%FF%FE", "/v1/integrations/%C3%28", "/v1/deliveries/%FF"] {
        let (status, headers, v) = send(s.api(reqwest::Method::GET, path)).await;
        assert!((400..500).contains(&status), "{path}: {status}");
        assert!(
            headers.get("content-type").is_some_and(|c| c.to_str().unwrap().starts_with("application/json")),
            "{path}: {headers:?}"
        );
        assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{path}: {v}");
    }

    // A repeated key in a JSON definition.
    let (status, _, v) =
        send(s.api(reqwest::Method::PUT, "/v1/integrations/dup").header("content-type", "application/json").body(
            r#"{"integration": "dup", "flows": [], "flows": [{"flow": "f", "trigger": {"manual": {}}, "steps": []}]}"#,
        ))
        .await;
    assert!((400..500).contains(&status), "{v}");
    assert!(v.to_string().contains("duplicate key `flows`"), "{v}");

    // Files: the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let (status, _, v) = send(
            s.api(reqwest::Method::PUT, "/v1/log-sources/audit").json(&json!({ "file": { "path": "audit.ndjson" } })),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        s.apply("integration: resp2\nflows:\n  - flow: f\n    logSource: audit\n    trigger: { manual: {} }\n    steps:\n      - { id: t, transform: '1' }\n").await;
        s.run_flow("resp2", "f", json!({})).await;
        let log = std::path::PathBuf::from(v["config"]["file"]["path"].as_str().unwrap());
        let log = eventually("the log file", || async { log.exists().then(|| log.clone()) }).await;
        let mut files = vec![log];
        if let Some(data) = s.data_dir() {
            files.extend(["flowgate.db", "flowgate.db-wal"].map(|f| data.join(f)).into_iter().filter(|p| p.exists()));
            assert!(files.len() >= 2, "the database file is checked too");
        }
        for f in files {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }

    // SMTP: saved while the node allowed internal hosts, sent after it stopped allowing them.
    // Raw TCP, not common::MockUpstream: an SMTP port that must never be connected to, not an HTTP upstream.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let fields = json!({ "host": "127.0.0.1", "port": port, "security": "none", "from": "f@acme.example" });
    let (status, _, v) = send(s.api(reqwest::Method::PUT, "/v1/smtp").json(&fields)).await;
    assert_eq!(status, 200, "{v}");
    let s = s.restart(guarded(&[])).await;
    s.apply("integration: mailer\nflows:\n  - flow: f\n    trigger: { manual: {} }\n    steps:\n      - { id: m, email: { to: a@b.example, subject: hi, text: hi } }\n").await;
    let ex = s.run_flow("mailer", "f", json!({})).await;
    let id = ex["id"].as_str().or(ex["executionId"].as_str()).unwrap().to_owned();
    let d = eventually("the e-mail's attempt", || async {
        let ex = s.execution(&id).await;
        (ex["deliveries"][0]["attempts"] == 1).then_some(ex["deliveries"][0].clone())
    })
    .await;
    assert!(d["lastError"].as_str().unwrap().contains("internal addresses are refused"), "{d}");
    assert!(listener.accept().is_err(), "nothing connected to the internal address");
}

backends!(a_call_tree_is_bounded);
/// Class 5, `call` fan-out: a flow calling itself from two steps would start 2⁸ executions
/// (depth alone is capped at 8). The calls below one event share one budget across nodes:
/// past it, calls fail `call_fanout`, and nothing more is started.
async fn a_call_tree_is_bounded() {
    let s = TestServer::start_with(|st| st.max_call_tree = 6).await;
    s.apply("integration: boom\nflows:\n  - flow: b\n    trigger: { manual: {} }\n    steps:\n      - { id: one, call: { flow: b }, retry: { attempts: 1 } }\n      - { id: two, call: { flow: b }, retry: { attempts: 1 } }\n").await;
    let r = s
        .api(reqwest::Method::POST, "/v1/integrations/boom/flows/b/run?wait=true&timeout=30")
        .json(&json!({ "body": {} }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "failed", "{v}");
    // Everything settles, and the whole tree is the root plus at most the budget.
    let all = eventually("the tree to settle", || async {
        let page = s.get_json("/v1/executions?flow=b&limit=100").await;
        let items = page["items"].as_array().unwrap().clone();
        items.iter().all(|i| i["status"] != "running" && i["status"] != "queued").then_some(items)
    })
    .await;
    assert!(all.len() <= 7, "{} executions", all.len());
    assert!(all.len() >= 2, "calls below the budget run");
    let mut refused = 0;
    for i in &all {
        let ex = s.execution(i["id"].as_str().unwrap()).await;
        refused += usize::from(ex.to_string().contains("call_fanout"));
    }
    assert!(refused >= 1, "a call past the budget says why");
    // Another event has its own budget: its root starts children again.
    let r = s
        .api(reqwest::Method::POST, "/v1/integrations/boom/flows/b/run?wait=true&timeout=30")
        .json(&json!({ "body": {} }))
        .send()
        .await
        .unwrap();
    let root = r.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned();
    let ex = s.execution(&root).await;
    assert!(!ex["children"].as_array().unwrap().is_empty(), "the new root started children: {ex:#}");
    assert!(!ex["steps"][0].to_string().contains("call_fanout"), "{ex:#}");
}

backends!(text_with_nul_characters_is_stored_on_every_backend);
/// Found by schemathesis: PostgreSQL text cannot hold NUL, so a body's `"\u0000"` that a
/// step logged (or used as an order or dedup key, or raised as an error) failed every
/// commit of its execution — and of whatever was batched with it — forever. Every path
/// that records data takes it now, on both backends; and so do names given to the API.
async fn text_with_nul_characters_is_stored_on_every_backend() {
    let s = TestServer::start().await;
    s.apply("integration: nul\nflows:\n  - flow: f\n    orderBy: '$trigger.body.x'\n    trigger: { webhook: { path: nul, dedupKey: '$trigger.body.x' } }\n    steps:\n      - { id: l, log: 'got {{ $trigger.body.x }}' }\n      - { id: e, transform: 'if $trigger.body.fail then error($trigger.body.x) else . end' }\n  - flow: g\n    trigger: { webhook: { path: fine } }\n    steps: [ { id: t, transform: '1' } ]\n").await;
    let mut ids = Vec::new();
    for (x, fail) in [("a\u{0}b", true), ("c\u{0}d", false)] {
        let (status, _, v) = send(s.post_hook("nul").json(&json!({ "x": x, "fail": fail }))).await;
        assert_eq!(status, 202, "{v}");
        ids.push(v["executionId"].as_str().unwrap().to_owned());
    }
    let (status, headers, _) = send(s.post_hook("nul").json(&json!({ "x": "c\u{0}d", "fail": false }))).await;
    assert_eq!((status, headers.get("x-flowgate-duplicate").is_some()), (202, true), "the key is remembered");
    let (status, _, v) = send(s.post_hook("fine").json(&json!({}))).await;
    assert_eq!(status, 202, "{v}");
    let other = v["executionId"].as_str().unwrap().to_owned();
    let failed = s.wait_for(&ids[0], "failed").await;
    assert!(failed["logs"].to_string().contains("got a"), "{failed:#}");
    s.wait_for(&ids[1], "succeeded").await;
    s.wait_for(&other, "succeeded").await;

    // Names given to the API.
    let (status, _, v) = send(s.api(reqwest::Method::POST, "/v1/tokens").json(&json!({ "name": "ci\u{0}bot" }))).await;
    assert_eq!(status, 201, "{v}");
}
