//! The client commands against a real server process: `apply` the triggers example, `flows run
//! --input … --wait` a manual flow and a test run of a poll flow, `flows get`, `flows
//! deactivate`/`activate`, `flows state`/`reset-state` and `executions list`; `deliveries get`/
//! `resend`, `log-sources set`/`list`/`delete` and `smtp set`/`get`/`unset`.

use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

use common::{Node, free_port, wait_listening};

const TOKEN: &str = "fgt_client_test_token";

/// Runs `flowgate ARGS` against the server; returns its output.
fn flowgate(base: &str, args: &[&str]) -> Output {
    Command::new(common::BIN)
        .args(args)
        .env("FLOWGATE_URL", base)
        .env("FLOWGATE_TOKEN", TOKEN)
        .output()
        .expect("run flowgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

/// Starts a server on a free port in `dir`; returns it and its base URL.
fn start(dir: &std::path::Path) -> (Node, String) {
    let port = free_port();
    let node = Node(common::serve(dir, port, TOKEN).spawn().expect("start flowgate"));
    wait_listening(port);
    (node, format!("http://127.0.0.1:{port}"))
}

#[test]
fn client_commands_manage_flows() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, base) = start(dir.path());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/triggers.yaml");
    let applied = ok(flowgate(&base, &["apply", "-f", example]));
    assert!(applied.contains("triggers-demo applied as version 1"), "{applied}");

    let input = dir.path().join("body.json");
    std::fs::write(&input, r#"{"order": 42}"#).unwrap();
    let input = input.to_str().unwrap();
    let out = ok(flowgate(&base, &["flows", "run", "triggers-demo", "by-hand", "--input", input, "--wait"]));
    let v: Value = serde_json::from_str(&out).expect("JSON result");
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["output"]["got"]["order"], 42, "{v}");
    let out = ok(flowgate(&base, &["flows", "run", "triggers-demo", "by-hand"]));
    assert!(out.starts_with("started "), "{out}");
    // Any flow can be test-run with a payload.
    std::fs::write(dir.path().join("item.json"), r#"{"id": "sku-9", "name": "Washer"}"#).unwrap();
    let item = dir.path().join("item.json");
    let out = ok(flowgate(
        &base,
        &["flows", "run", "triggers-demo", "new-items", "--input", item.to_str().unwrap(), "--wait"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["output"], serde_json::json!({ "id": "sku-9", "name": "Washer" }), "{v}");

    let flow: Value =
        serde_json::from_str(&ok(flowgate(&base, &["flows", "get", "triggers-demo", "quarter-hour"]))).unwrap();
    assert_eq!(flow["trigger"]["kind"], "schedule");
    assert_eq!(flow["nextRuns"].as_array().map(Vec::len), Some(5), "{flow}");
    let mail: Value =
        serde_json::from_str(&ok(flowgate(&base, &["flows", "get", "triggers-demo", "orders-by-mail"]))).unwrap();
    assert_eq!(mail["inboundEmailAddress"], "orders-by-mail.triggers-demo.default@localhost");

    assert!(ok(flowgate(&base, &["flows", "deactivate", "triggers-demo", "quarter-hour"])).contains("inactive"));
    let flow: Value =
        serde_json::from_str(&ok(flowgate(&base, &["flows", "get", "triggers-demo", "quarter-hour"]))).unwrap();
    assert_eq!((flow["active"].clone(), flow["nextRuns"].clone()), (Value::Bool(false), serde_json::json!([])));
    assert!(ok(flowgate(&base, &["flows", "activate", "triggers-demo", "quarter-hour"])).contains("is active"));

    let state: Value =
        serde_json::from_str(&ok(flowgate(&base, &["flows", "state", "triggers-demo", "quarter-hour"]))).unwrap();
    assert_eq!(state["flow"], "quarter-hour", "{state}");
    let reset = ok(flowgate(&base, &["flows", "reset-state", "triggers-demo", "new-items"]));
    assert!(reset.contains("triggers-demo/new-items"), "{reset}");
    // Errors: exit code 1 and the API's message.
    let missing = flowgate(&base, &["flows", "get", "triggers-demo", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no flow `nope`"));
    let no_state = flowgate(&base, &["flows", "state", "triggers-demo", "by-hand"]);
    assert_eq!(no_state.status.code(), Some(1));

    let listed = ok(flowgate(&base, &["executions", "list", "--flow", "by-hand"]));
    assert_eq!(listed.lines().filter(|l| l.contains("triggers-demo/by-hand")).count(), 2, "{listed}");
}

#[test]
fn client_commands_manage_what_a_tenant_sends() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, base) = start(dir.path());
    // A webhook to a port nobody listens on, tried once: the delivery fails for good.
    let closed = free_port();
    let doc = dir.path().join("tell.yaml");
    std::fs::write(
        &doc,
        format!(
            "integration: tell\nflows:\n  - flow: ping\n    trigger: {{ manual: {{}} }}\n    logSource: audit\n    steps:\n      - id: push\n        webhook: {{ name: Ping, endpoint: \"http://127.0.0.1:{closed}/hook\", schedule: [0s] }}\n"
        ),
    )
    .unwrap();
    let set = ok(flowgate(&base, &["log-sources", "set", "audit", "--file", "audit.ndjson"]));
    assert!(set.contains("log source audit set"), "{set}");
    ok(flowgate(&base, &["apply", "-f", doc.to_str().unwrap()]));
    let out = ok(flowgate(&base, &["flows", "run", "tell", "ping", "--wait"]));
    let v: Value = serde_json::from_str(&out).expect("JSON result");
    assert_eq!(v["output"]["status"], "queued", "{v}");
    let delivery = v["output"]["deliveryId"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got: Value = serde_json::from_str(&ok(flowgate(&base, &["deliveries", "get", &delivery]))).unwrap();
        if got["status"] == "failed" {
            break got;
        }
        assert!(Instant::now() < deadline, "the delivery did not fail: {got}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(got["attempts"], 1, "{got}");
    assert_eq!(got["history"].as_array().map(Vec::len), Some(1), "{got}");
    assert!(got["lastError"].as_str().unwrap_or("").contains("connect"), "{got}");
    let resent = ok(flowgate(&base, &["deliveries", "resend", &delivery]));
    assert!(resent.contains(&delivery) && resent.contains("pending"), "{resent}");
    let missing = flowgate(&base, &["deliveries", "get", "nope"]);
    assert_eq!(missing.status.code(), Some(1));

    // The run's events reached the file source, in the tenant's folder of the log directory.
    let file = dir.path().join("logs").join("default").join("audit.ndjson");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&file).unwrap_or_default().contains("execution.succeeded") {
        assert!(Instant::now() < deadline, "no records in {}", file.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    let listed = ok(flowgate(&base, &["log-sources", "list"]));
    assert!(listed.starts_with("audit  file  sent "), "{listed}");
    assert!(ok(flowgate(&base, &["log-sources", "delete", "audit"])).contains("deleted"));
    assert_eq!(flowgate(&base, &["log-sources", "get", "audit"]).status.code(), Some(1));

    // The tenant's own SMTP server: shown without its password.
    assert!(ok(flowgate(&base, &["smtp", "get"])).starts_with("none"));
    let set = ok(flowgate(
        &base,
        &["smtp", "set", "smtp+starttls://ann:s3cret@mail.acme.example:587?from=flows%40acme.example"],
    ));
    assert!(set.contains("mail.acme.example:587 (starttls), from flows@acme.example, user ann"), "{set}");
    assert!(!set.contains("s3cret"), "{set}");
    let bad = flowgate(&base, &["smtp", "set", "ftp://mail.acme.example"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid_smtp"), "{}", String::from_utf8_lossy(&bad.stderr));
    ok(flowgate(&base, &["smtp", "unset"]));
    assert!(ok(flowgate(&base, &["smtp", "get"])).starts_with("none"));
}

/// What a newcomer tripped over (issue 14): `integrations list|delete`, `tokens create NAME`,
/// `executions list -q`, `executions replay --version original`, `apply` saying an
/// integration is not live (and what it needs), `tenants` without the admin token saying
/// which token it needs, `test --config` laying values over the defaults.
#[test]
fn client_commands_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, base) = start(dir.path());
    let product = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/acme-erp/integration.yaml");
    let applied = ok(flowgate(&base, &["apply", "-f", product]));
    assert!(
        applied.contains("not live: set acmeBaseUrl, acmeApiKey, progixUrl, progixToken, webhookKey (flowgate deployment set acme-erp-sync"),
        "{applied}"
    );
    let listed = ok(flowgate(&base, &["integrations", "list"]));
    assert!(listed.contains("acme-erp-sync") && listed.contains("not live"), "{listed}");
    assert!(ok(flowgate(&base, &["integrations", "delete", "acme-erp-sync"])).contains("deleted"));
    assert!(ok(flowgate(&base, &["integrations", "list"])).contains("no integrations"));
    let gone = flowgate(&base, &["integrations", "delete", "acme-erp-sync"]);
    assert_eq!(gone.status.code(), Some(1));

    let token = ok(flowgate(&base, &["tokens", "create", "ci-bot"]));
    assert!(token.starts_with("fgt_"), "{token}");
    assert!(ok(flowgate(&base, &["tokens", "create", "--name", "other"])).starts_with("fgt_"));
    assert!(ok(flowgate(&base, &["tokens", "list"])).contains("ci-bot"));

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/triggers.yaml");
    ok(flowgate(&base, &["apply", "-f", example]));
    ok(flowgate(&base, &["flows", "run", "triggers-demo", "by-hand", "--wait"]));
    let id = ok(flowgate(&base, &["executions", "list", "-q", "--limit", "1"]));
    let id = id.trim();
    assert_eq!(id.len(), 36, "one id, nothing else: {id:?}");
    let replayed = ok(flowgate(&base, &["executions", "replay", id, "--version", "original"]));
    assert!(replayed.starts_with(&format!("replaying {id} as ")), "{replayed}");
    let bad = flowgate(&base, &["executions", "replay", id, "--version", "newest"]);
    assert_eq!(bad.status.code(), Some(2), "clap refuses an unknown version");

    // Tenants need the admin token, and say so.
    let out = Command::new(common::BIN)
        .args(["tenants", "list"])
        .env("FLOWGATE_URL", &base)
        .env_remove("FLOWGATE_ADMIN_TOKEN")
        .env("FLOWGATE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--admin-token") && err.contains("FLOWGATE_ADMIN_TOKEN"), "{err}");

    // `test --config`: the given values over the defaults; still missing ones are named.
    let out =
        Command::new(common::BIN).args(["test", product, "--config", "acmeBaseUrl=http://erp.test"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    assert!(stderr.contains("note: required config without a value") && stderr.contains("acmeApiKey"), "{stderr}");
    let out = Command::new(common::BIN)
        .args(["test", product, "--config", "nope=1", "--config", "acmeBaseUrl=[1]"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("config.nope: unknown config variable"), "{stderr}");
    assert!(!stderr.contains("Invalid {"), "no debug dump: {stderr}");
}
