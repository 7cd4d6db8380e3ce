//! Shared helpers of the HTTP integration tests: a real server on an ephemeral port with a
//! temporary data directory ([`TestServer`]), and a scriptable upstream that records every
//! request it receives ([`MockUpstream`]).
//!
//! Every test runs on both backends: `backends!(name)` turns `async fn name()` into the tests
//! `name::sqlite` and `name::postgres`. The PostgreSQL one uses `FLOWGATE_TEST_POSTGRES_URL`
//! (a fresh schema per server) and says it was skipped when that is unset.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bootstrap token of the `default` tenant.
pub const TOKEN: &str = "fgt_test_token";

/// How long `wait_for` and friends poll before giving up.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Runs `async fn $name()` as two tests, `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::common::BACKEND.scope($crate::common::Backend::Sqlite, super::$name()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::common::postgres_url() {
                    Some(url) => {
                        $crate::common::BACKEND.scope($crate::common::Backend::Postgres(url), super::$name()).await
                    }
                    None => $crate::common::skip_or_fail("FLOWGATE_TEST_POSTGRES_URL is unset"),
                }
            }
        }
    };
}

/// The database the current test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file in the server's data directory.
    Sqlite,
    /// The PostgreSQL server at this URL (each server gets a fresh schema in it).
    Postgres(String),
}

tokio::task_local! {
    /// The backend of the running test (set by `backends!`; SQLite otherwise).
    pub static BACKEND: Backend;
}

/// `FLOWGATE_TEST_POSTGRES_URL`, if set.
pub fn postgres_url() -> Option<String> {
    std::env::var("FLOWGATE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// A database URL with a schema of its own for one test server, or `None` for SQLite.
fn fresh_database() -> Option<String> {
    let url = match BACKEND.try_with(Backend::clone).unwrap_or(Backend::Sqlite) {
        Backend::Sqlite => return None,
        Backend::Postgres(url) => url,
    };
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let schema = format!("fgt_{secs}_{}_{n}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}schema={schema}"))
}

/// Drops test schemas left by runs more than an hour ago (best effort, once per process).
async fn drop_stale_schemas(url: &str) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let Ok(pool) = sqlx::PgPool::connect(url).await else { return };
        let cutoff = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 3600;
        let names: Vec<String> = sqlx::query_scalar("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'fgt\\_%'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        for name in names {
            let secs: u64 = name.split('_').nth(1).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
            if secs < cutoff {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).execute(&pool).await;
            }
        }
        pool.close().await;
    })
    .await;
}

/// A Flowgate server running in this test's runtime.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// API token of the `default` tenant.
    pub token: String,
    /// A client without default headers.
    pub client: reqwest::Client,
    /// The address bound.
    pub addr: std::net::SocketAddr,
    /// The SMTP receiver's address, when the settings turned it on.
    pub smtp: Option<std::net::SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    dir: Option<tempfile::TempDir>,
    /// The PostgreSQL URL (with its schema) when the test runs on PostgreSQL.
    database: Option<String>,
}

impl TestServer {
    /// A server with the default settings (bootstrap token [`TOKEN`]).
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose settings `tweak` may change (body limit, expression budget, …).
    pub async fn start_with(tweak: impl FnOnce(&mut flowgate_server::Settings)) -> TestServer {
        let database = fresh_database();
        if let (Some(base), Some(_)) = (postgres_url(), &database) {
            drop_stale_schemas(&base).await;
        }
        TestServer::start_in(tempfile::tempdir().expect("tempdir"), database, tweak).await
    }

    /// Stops this server gracefully (waiting for it) and starts a new one on the same data
    /// directory, on a new port.
    pub async fn restart(mut self, tweak: impl FnOnce(&mut flowgate_server::Settings)) -> TestServer {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let stopped = tokio::time::timeout(DEADLINE, task).await.expect("the server stops in time");
            stopped.expect("server task").expect("server run");
        }
        let dir = self.dir.take().expect("data dir");
        let database = self.database.take();
        TestServer::start_in(dir, database, tweak).await
    }

    /// Another node on this server's PostgreSQL database (its own data directory); `None`
    /// on SQLite, which one process owns.
    pub async fn start_peer(&self, tweak: impl FnOnce(&mut flowgate_server::Settings)) -> Option<TestServer> {
        let database = self.database.clone()?;
        // Nodes sharing a database share its master key.
        let key = self.dir.as_ref().and_then(|d| std::fs::read_to_string(d.path().join("master.key")).ok());
        let tweak = move |s: &mut flowgate_server::Settings| {
            s.master_key = key;
            tweak(s);
        };
        Some(TestServer::start_in(tempfile::tempdir().expect("tempdir"), Some(database), tweak).await)
    }

    /// Stops this server gracefully, waits for it, and hands over its data directory (removed
    /// when the result is dropped): every write the server made is in its files by then.
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let stopped = tokio::time::timeout(DEADLINE, task).await.expect("the server stops in time");
            stopped.expect("server task").expect("server run");
        }
        self.dir.take().expect("data dir")
    }

    /// The data directory, when the server runs on SQLite (its database file is in it).
    pub fn data_dir(&self) -> Option<std::path::PathBuf> {
        if self.database.is_some() {
            return None;
        }
        self.dir.as_ref().map(|d| d.path().to_path_buf())
    }

    /// The data directory, whatever the database (the log directory is in it).
    pub fn home(&self) -> std::path::PathBuf {
        self.dir.as_ref().map(|d| d.path().to_path_buf()).expect("a data directory")
    }

    /// Stops this server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(DEADLINE, task).await;
        }
    }

    async fn start_in(
        dir: tempfile::TempDir,
        database: Option<String>,
        tweak: impl FnOnce(&mut flowgate_server::Settings),
    ) -> TestServer {
        flowgate_steps::util::install_tls();
        let mut settings = flowgate_server::Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().to_path_buf(),
            bootstrap_token: Some(TOKEN.into()),
            shutdown_grace: Duration::from_millis(500),
            database: database.clone(),
            pool_size: 4,
            ..Default::default()
        };
        tweak(&mut settings);
        let server = flowgate_server::Server::bind(settings).await.expect("server binds");
        let addr = server.local_addr();
        let smtp = server.smtp_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        TestServer {
            url: format!("http://{addr}"),
            token: TOKEN.into(),
            client,
            addr,
            smtp,
            shutdown: Some(tx),
            task: Some(task),
            dir: Some(dir),
            database,
        }
    }

    /// Creates tenant `id` with the server's admin token `admin`; returns its API token.
    pub async fn create_tenant(&self, admin: &str, id: &str) -> String {
        let (status, _, v) =
            send(self.client.post(format!("{}/v1/tenants", self.url)).bearer_auth(admin).json(&json!({ "id": id })))
                .await;
        assert_eq!(status, 201, "create tenant {id}: {v}");
        v["token"].as_str().expect("a token").to_owned()
    }

    /// Applies a YAML document with another tenant's `token`; the status and the body.
    pub async fn apply_as(&self, token: &str, yaml: &str) -> (u16, Value) {
        let slug = slug_of(yaml);
        let (status, _, v) = send(
            self.client
                .put(format!("{}/v1/integrations/{slug}", self.url))
                .bearer_auth(token)
                .header("content-type", "application/yaml")
                .body(yaml.to_owned()),
        )
        .await;
        (status, v)
    }

    /// A request to the API (`path` starts with `/v1/…`), with the bearer token.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    /// GET an API path with the token; asserts 200 and returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.api(reqwest::Method::GET, path).send().await.expect("GET");
        let status = r.status();
        let body: Value = r.json().await.expect("JSON body");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The webhook URL of `path` in the `default` tenant.
    pub fn hook(&self, path: &str) -> String {
        format!("{}/hooks/default/{path}", self.url)
    }

    /// A POST to a webhook of the `default` tenant.
    pub fn post_hook(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.hook(path))
    }

    /// PUT a YAML definition at `/v1/integrations/{slug}`; returns status and JSON body.
    pub async fn put_integration(&self, slug: &str, yaml: &str) -> (u16, Value) {
        let r = self
            .api(reqwest::Method::PUT, &format!("/v1/integrations/{slug}"))
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await
            .expect("PUT integration");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    /// Applies a YAML definition (slug read from its `integration:` line); asserts 2xx.
    pub async fn apply(&self, yaml: &str) -> Value {
        let slug = slug_of(yaml);
        let (status, body) = self.put_integration(&slug, yaml).await;
        assert!((200..300).contains(&status), "apply {slug}: {status} {body}");
        body
    }

    /// GET /v1/executions/{id}.
    pub async fn execution(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/executions/{id}")).await
    }

    /// Polls the execution until it has `status`; panics after [`DEADLINE`], or at once when
    /// it ended with another status.
    pub async fn wait_for(&self, id: &str, status: &str) -> Value {
        let started = Instant::now();
        loop {
            let ex = self.execution(id).await;
            let now = ex["status"].as_str().unwrap_or("").to_owned();
            if now == status {
                return ex;
            }
            let ended = ["succeeded", "failed", "filtered", "cancelled"].contains(&now.as_str());
            assert!(!ended, "execution {id} ended as {now}, expected {status}: {ex:#}");
            assert!(
                started.elapsed() < DEADLINE,
                "execution {id} still {now} after {DEADLINE:?}, expected {status}: {ex:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a flow through the API (`?wait=true`) and returns the answer.
    pub async fn run_flow(&self, integration: &str, flow: &str, body: Value) -> Value {
        let r = self
            .api(
                reqwest::Method::POST,
                &format!("/v1/integrations/{integration}/flows/{flow}/run?wait=true&timeout=10"),
            )
            .json(&json!({ "body": body }))
            .send()
            .await
            .expect("run");
        let status = r.status();
        let v: Value = r.json().await.expect("JSON body");
        assert_eq!(status, 200, "run {integration}/{flow}: {v}");
        v
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The slug on a document's `integration:` line.
pub fn slug_of(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.strip_prefix("integration:"))
        .map(|s| s.trim().trim_matches('"').to_owned())
        .expect("the document has an `integration:` line")
}

/// Polls `check` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a request and returns its status, headers and body parsed as JSON (`Null` when
/// the body is empty, a string when it is not JSON).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

/// Asserts an error body `{"error": {"code": code, "message": …}}`.
pub fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "expected error code {code}: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
}

// ---------------------------------------------------------------------------------------
// Mock upstream
// ---------------------------------------------------------------------------------------

/// One scripted reply.
#[derive(Clone, Debug)]
pub struct MockResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content type of the body, if any.
    pub content_type: Option<String>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Wait until the mock's gate is opened ([`MockUpstream::open_gate`]) before answering.
    pub hold: bool,
}

impl MockResponse {
    /// A JSON reply.
    pub fn json(status: u16, body: Value) -> MockResponse {
        MockResponse {
            content_type: Some("application/json".into()),
            body: body.to_string().into_bytes(),
            ..MockResponse::status(status)
        }
    }

    /// A text reply.
    pub fn text(status: u16, body: &str) -> MockResponse {
        MockResponse {
            content_type: Some("text/plain".into()),
            body: body.as_bytes().to_vec(),
            ..MockResponse::status(status)
        }
    }

    /// An empty reply.
    pub fn status(status: u16) -> MockResponse {
        MockResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            content_type: None,
            delay: Duration::ZERO,
            hold: false,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> MockResponse {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers only after `d`.
    pub fn delay(mut self, d: Duration) -> MockResponse {
        self.delay = d;
        self
    }

    /// Answers only once the mock's gate is open ([`MockUpstream::open_gate`]).
    pub fn held(mut self) -> MockResponse {
        self.hold = true;
        self
    }
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// Requests in flight at the mock when this one arrived, itself included.
    pub in_flight: usize,
    /// The status it was answered (0 while a behaviour is still deciding).
    pub status: u16,
}

impl Recorded {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body of {} {} is not JSON ({e}): {:?}", self.method, self.path, self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The query parameters (decoded; the last one wins when a name repeats).
    pub fn params(&self) -> HashMap<String, String> {
        serde_urlencoded::from_str(self.query.as_deref().unwrap_or("")).unwrap_or_else(|e| {
            panic!("query of {} {} is not form-encoded ({e}): {:?}", self.method, self.path, self.query)
        })
    }
}

/// How a mock answers the requests no script covers: a closure over the recorded request.
pub type Behaviour = Arc<dyn Fn(&Recorded) -> MockResponse + Send + Sync>;

#[derive(Default)]
struct Script {
    queue: VecDeque<MockResponse>,
    default: Option<MockResponse>,
}

#[derive(Default)]
struct MockState {
    requests: Vec<Recorded>,
    scripts: HashMap<String, Script>,
    behaviour: Option<Behaviour>,
}

struct MockShared {
    state: Mutex<MockState>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    gate: tokio::sync::watch::Sender<bool>,
}

/// An HTTP server on a loopback port that records every request and answers as scripted
/// per path: first from the path's queue, then its default, then the behaviour given to
/// [`MockUpstream::with`] / [`MockUpstream::behave`]; anything else gets 404.
///
/// [`MockUpstream::down`] makes one that refuses connections until [`MockUpstream::listen`].
#[derive(Clone)]
pub struct MockUpstream {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The port.
    pub port: u16,
    shared: Arc<MockShared>,
}

impl MockUpstream {
    /// Starts the mock in the current runtime.
    pub async fn start() -> MockUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let mock = MockUpstream::new(listener.local_addr().expect("mock addr").port());
        mock.serve(listener);
        mock
    }

    /// Starts a mock answering every unscripted request by `behaviour`.
    pub async fn with(behaviour: impl Fn(&Recorded) -> MockResponse + Send + Sync + 'static) -> MockUpstream {
        let mock = MockUpstream::start().await;
        mock.behave(behaviour);
        mock
    }

    /// A mock that does not listen yet (connections are refused) until [`MockUpstream::listen`].
    /// Its port lies outside the ephemeral range, so no outgoing connection takes it meanwhile.
    pub fn down() -> MockUpstream {
        MockUpstream::new(reserve_port())
    }

    fn new(port: u16) -> MockUpstream {
        let (gate, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(MockShared {
            state: Mutex::new(MockState::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            gate,
        });
        MockUpstream { url: format!("http://127.0.0.1:{port}"), port, shared }
    }

    /// Starts listening on the mock's port (for a mock made with [`MockUpstream::down`]).
    pub async fn listen(&self) {
        let started = Instant::now();
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(started.elapsed() < Duration::from_secs(5), "cannot bind port {}: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new().fallback(mock_handler).with_state(self.shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    /// Answers every request no script covers by `behaviour` (replacing an earlier one).
    pub fn behave(&self, behaviour: impl Fn(&Recorded) -> MockResponse + Send + Sync + 'static) -> &Self {
        self.shared.state.lock().unwrap().behaviour = Some(Arc::new(behaviour));
        self
    }

    /// The default reply of `path` (after its queue is used up).
    pub fn on(&self, path: &str, reply: MockResponse) -> &Self {
        self.shared.state.lock().unwrap().scripts.entry(path.to_owned()).or_default().default = Some(reply);
        self
    }

    /// Replies used once each, in order, before the default.
    pub fn queue(&self, path: &str, replies: impl IntoIterator<Item = MockResponse>) -> &Self {
        self.shared.state.lock().unwrap().scripts.entry(path.to_owned()).or_default().queue.extend(replies);
        self
    }

    /// Fails `n` times with `status`, then answers `then` (for good).
    pub fn fail_then(&self, path: &str, n: usize, status: u16, then: MockResponse) -> &Self {
        self.queue(path, (0..n).map(|_| MockResponse::text(status, "upstream failure")));
        self.on(path, then)
    }

    /// Lets held replies ([`MockResponse::held`]) go, now and for good.
    pub fn open_gate(&self) {
        self.shared.gate.send_replace(true);
    }

    /// Every request to `path`, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.shared.state.lock().unwrap().requests.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Every request received.
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// How many requests `path` received.
    pub fn hits(&self, path: &str) -> usize {
        self.requests(path).len()
    }

    /// How many requests the mock received, on any path.
    pub fn total_hits(&self) -> usize {
        self.shared.state.lock().unwrap().requests.len()
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until `path` received at least `n` requests.
    pub async fn wait_hits(&self, path: &str, n: usize) {
        eventually(&format!("{n} request(s) to {path}"), || async { (self.hits(path) >= n).then_some(()) }).await;
    }
}

/// Counts a request out of flight when its handler ends (or is dropped).
struct Leaving(Arc<MockShared>);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn mock_handler(
    State(shared): State<Arc<MockShared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now_in = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _leaving = Leaving(shared.clone());
    shared.max_in_flight.fetch_max(now_in, Ordering::SeqCst);
    let path = uri.path().to_owned();
    let mut recorded = Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
        at: Instant::now(),
        in_flight: now_in,
        status: 0,
    };
    let scripted = {
        let mut st = shared.state.lock().unwrap();
        match st.scripts.get_mut(&path).and_then(|s| s.queue.pop_front().or_else(|| s.default.clone())) {
            // Recorded under the same lock, so records are in the order the script was used.
            Some(reply) => {
                recorded.status = reply.status;
                st.requests.push(recorded.clone());
                Ok(reply)
            }
            None => Err(st.behaviour.clone()),
        }
    };
    let reply = match scripted {
        Ok(reply) => reply,
        Err(behaviour) => {
            // The behaviour runs outside the lock: it may look at the mock's own records.
            let reply = match behaviour {
                Some(b) => b(&recorded),
                None => MockResponse::json(404, json!({ "error": format!("{path} is not scripted") })),
            };
            recorded.status = reply.status;
            shared.state.lock().unwrap().requests.push(recorded);
            reply
        }
    };
    if reply.hold {
        let mut open = shared.gate.subscribe();
        let _ = open.wait_for(|o| *o).await;
    }
    if !reply.delay.is_zero() {
        // Scripted latency of a slow upstream, not synchronisation.
        tokio::time::sleep(reply.delay).await;
    }
    let mut r = (StatusCode::from_u16(reply.status).expect("status"), reply.body).into_response();
    if let Some(ct) = reply.content_type {
        r.headers_mut().insert("content-type", ct.parse().expect("content type"));
    }
    for (k, v) in reply.headers {
        r.headers_mut()
            .insert(axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
    }
    r
}

/// A free port below the ephemeral range (outgoing connections never take it).
fn reserve_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (from, to) = if low > 12_000 { (10_000, low - 1) } else { (61_000, 65_000) };
    for _ in 0..500 {
        let port = rand::random_range(from..=to);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {from}..={to}");
}

/// Says a test is skipped because `why` (a service or tool is missing), or fails it when
/// `FLOWGATE_REQUIRE_SERVICES=1` (CI sets it: a half that did not run must not pass).
#[allow(dead_code)]
pub fn skip_or_fail(why: &str) {
    if std::env::var("FLOWGATE_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("FLOWGATE_REQUIRE_SERVICES=1, but {why}");
    }
    eprintln!("skipped: {why}");
}
