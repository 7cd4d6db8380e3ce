//! What every binary-level test needs: spawning a `flowgate serve` child process (killed when
//! the test ends, however it ends), a free port, waiting for it to be ready or for anything
//! else with a deadline, and the rule for tests whose service is missing.

#![allow(dead_code)] // each test file uses a part

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_flowgate");

/// How long a node may take to become ready, or anything awaited to happen.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Server processes, killed when the test ends, however it ends.
#[derive(Default)]
pub struct Nodes(pub Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &mut self.0 {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

/// One server process, killed when the test ends.
pub struct Node(pub Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nobody listens on (for now), for a server a test starts (and may restart on the
/// same port).
///
/// Taken below the kernel's ephemeral range (32768–60999 by default), not from it: an
/// outgoing connection of another test running meanwhile draws its source port from that
/// range, and once took a port found free there before the server bound it (the server then
/// failed to start: "connection refused"). Each test binary starts at its own offset, and
/// within one the ports are handed out in turn.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    loop {
        let port = (FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `flowgate serve` on `127.0.0.1:port` in `dir` with the `default` tenant's token `token`,
/// quiet, no master key from the environment; add arguments and variables, then spawn. Its
/// stderr goes to `FLOWGATE_TEST_NODE_LOG` when that names a file (for debugging).
pub fn serve(dir: &Path, port: u16, token: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("FLOWGATE_BOOTSTRAP_TOKEN", token)
        .env("FLOWGATE_LOG", "warn")
        .env_remove("FLOWGATE_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(match std::env::var("FLOWGATE_TEST_NODE_LOG") {
            Ok(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap()),
            Err(_) => Stdio::null(),
        });
    c
}

/// Waits until the node at `base` answers `/readyz` (its database answers).
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).timeout(Duration::from_secs(1)).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server at {base} did not become ready");
}

/// The same, for tests without a runtime: waits until the port accepts connections.
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GETs `url` with the bearer `token` and returns its JSON body (failing the test when there
/// is none).
pub async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

/// Polls `ok` until it holds, failing the test after [`DEADLINE`].
pub async fn wait_until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A test that cannot run here (a service or tool is missing) says it was skipped — or fails
/// under `FLOWGATE_REQUIRE_SERVICES=1` (CI sets it: a half that did not run must not pass).
pub fn skip_or_fail(why: &str) {
    if std::env::var("FLOWGATE_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("FLOWGATE_REQUIRE_SERVICES=1, but {why}");
    }
    eprintln!("skipped: {why}");
}
