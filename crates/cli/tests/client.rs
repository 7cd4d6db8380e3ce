//! The client commands against a real server process: `apply` the triggers example, `flows run
//! --input … --wait` a manual flow and a test run of a poll flow, `flows get`, `flows
//! deactivate`/`activate`, `flows state`/`reset-state` and `executions list`.

use serde_json::Value;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "fgt_client_test_token";

/// The server process, killed when the test ends.
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

/// Runs `flowgate ARGS` against the server; returns its output.
fn flowgate(base: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
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

#[test]
fn client_commands_manage_flows() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _node = Node(
        Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path())
            .env("FLOWGATE_BOOTSTRAP_TOKEN", TOKEN)
            .env("FLOWGATE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start flowgate"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
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
