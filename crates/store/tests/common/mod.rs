//! The harness of the store conformance suite: opens a fresh store for each test on either
//! backend, runs the test body under a deadline, then closes every store it opened and (on
//! PostgreSQL) drops the schemas it made.
//!
//! * SQLite: a file in a temporary directory, `Durability::Full`.
//! * PostgreSQL: `FLOWGATE_TEST_POSTGRES_URL` with a schema of its own per store
//!   (`schema=fgs_<unix-secs>_<pid>_<counter>`); the test is skipped (and passes) when the
//!   variable is unset. Every schema a test made is dropped when it ends.

#![allow(dead_code)]

use flowgate_store::postgres::PgStore;
use flowgate_store::sqlite::{Durability, SqliteStore};
use flowgate_store::*;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a test body may run before it counts as hung.
pub const TEST_DEADLINE: Duration = Duration::from_secs(30);
/// How long event and leadership waits poll before giving up.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which backend a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// The PostgreSQL server at this URL (a fresh schema per test).
    Postgres(String),
}

/// `FLOWGATE_TEST_POSTGRES_URL`, if set.
pub fn postgres_url() -> Option<String> {
    std::env::var("FLOWGATE_TEST_POSTGRES_URL").ok().filter(|u| !u.trim().is_empty())
}

/// A name unique in this process and across runs (`<prefix>_<unix-secs>_<pid>_<counter>`).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{secs}_{}_{n}", std::process::id())
}

fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={schema}")
}

struct Inner {
    backend: Backend,
    /// The PostgreSQL URL of the test's own schema.
    schema_url: Option<String>,
    /// The test's own schema.
    schema: Option<String>,
    /// Every store opened for the test (closed at the end).
    stores: Mutex<Vec<SharedStore>>,
    /// Every schema made for the test (dropped at the end).
    schemas: Mutex<Vec<String>>,
    _dir: Option<tempfile::TempDir>,
}

/// One test's store, and the means to open more nodes on it.
#[derive(Clone)]
pub struct Ctx {
    /// The store under test.
    pub store: SharedStore,
    inner: Arc<Inner>,
}

impl Ctx {
    async fn open(backend: Backend) -> Ctx {
        match &backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = SqliteStore::open(&dir.path().join("flowgate.db"), Durability::Full)
                    .await
                    .expect("open the SQLite store");
                let store: SharedStore = Arc::new(store);
                Ctx {
                    store: store.clone(),
                    inner: Arc::new(Inner {
                        backend,
                        schema_url: None,
                        schema: None,
                        stores: Mutex::new(vec![store]),
                        schemas: Mutex::new(Vec::new()),
                        _dir: Some(dir),
                    }),
                }
            }
            Backend::Postgres(url) => {
                let schema = unique("fgs");
                let schema_url = with_schema(url, &schema);
                let store = connect(&schema_url).await;
                Ctx {
                    store: store.clone(),
                    inner: Arc::new(Inner {
                        backend: backend.clone(),
                        schema_url: Some(schema_url),
                        schema: Some(schema.clone()),
                        stores: Mutex::new(vec![store]),
                        schemas: Mutex::new(vec![schema]),
                        _dir: None,
                    }),
                }
            }
        }
    }

    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres(_))
    }

    /// Another node on the same database and schema (PostgreSQL only).
    pub async fn another_node(&self) -> Option<SharedStore> {
        let url = self.inner.schema_url.as_ref()?;
        let store = connect(url).await;
        self.inner.stores.lock().unwrap().push(store.clone());
        Some(store)
    }

    /// A store of another deployment: same PostgreSQL database, another schema (PostgreSQL
    /// only).
    pub async fn another_deployment(&self) -> Option<SharedStore> {
        let Backend::Postgres(url) = &self.inner.backend else { return None };
        let schema = unique("fgs");
        let store = connect(&with_schema(url, &schema)).await;
        self.inner.schemas.lock().unwrap().push(schema);
        self.inner.stores.lock().unwrap().push(store.clone());
        Some(store)
    }

    /// A plain connection to the test's schema, beside the store (PostgreSQL only): to look at
    /// locks the store holds.
    pub async fn raw_connection(&self) -> Option<sqlx::PgConnection> {
        use sqlx::Connection;
        let Backend::Postgres(url) = &self.inner.backend else { return None };
        let schema = self.inner.schema.as_deref()?;
        let opts: sqlx::postgres::PgConnectOptions = url.parse().expect("database URL");
        Some(sqlx::PgConnection::connect_with(&opts.options([("search_path", schema)])).await.expect("connect"))
    }

    /// Closes every store opened for the test (idempotent).
    pub async fn close_all(&self) {
        let stores: Vec<SharedStore> = self.inner.stores.lock().unwrap().clone();
        for s in stores {
            s.close().await;
        }
    }

    async fn cleanup(&self) {
        self.close_all().await;
        let Backend::Postgres(url) = &self.inner.backend else { return };
        let schemas: Vec<String> = std::mem::take(&mut *self.inner.schemas.lock().unwrap());
        let Ok(pool) = sqlx::PgPool::connect(url).await else { return };
        for s in schemas {
            if let Err(e) = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE")).execute(&pool).await {
                eprintln!("could not drop schema {s}: {e}");
            }
        }
        pool.close().await;
    }
}

async fn connect(url: &str) -> SharedStore {
    Arc::new(PgStore::connect(url, 4).await.unwrap_or_else(|e| panic!("connect to PostgreSQL ({url}): {e}")))
}

/// Runs one test body on `backend`: a fresh store, a deadline, cleanup afterwards (whether
/// the body passed or not), then the body's panic if it had one.
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let ctx = Ctx::open(backend).await;
    let started = Instant::now();
    let task = tokio::spawn(body(ctx.clone()));
    let abort = task.abort_handle();
    let outcome = tokio::time::timeout(TEST_DEADLINE, task).await;
    abort.abort();
    ctx.cleanup().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the test body did not finish: {e}"),
        Err(_) => panic!("the test did not finish within {TEST_DEADLINE:?}"),
    }
    let took = started.elapsed();
    if took > Duration::from_secs(5) {
        eprintln!("slow test: {took:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The tests' clock origin (epoch ms).
pub const T0: i64 = 1_700_000_000_000;
/// The tenant every fixture uses.
pub const TENANT: &str = "acme";
/// The integration every fixture uses.
pub const INTEGRATION: &str = "shop";
/// The flow every fixture uses.
pub const FLOW: &str = "orders";
/// [`FLOW`] of [`INTEGRATION`] of [`TENANT`].
pub const KEY: flowgate_store::FlowKey<'static> =
    flowgate_store::FlowKey { tenant: TENANT, integration: INTEGRATION, flow: FLOW };

/// A new integration version (`hash` decides whether it changes anything).
pub fn new_version(tenant: &str, slug: &str, hash: &str, routes: &[(&str, &str)]) -> NewVersion {
    NewVersion {
        tenant_id: tenant.into(),
        slug: slug.into(),
        hash: hash.into(),
        format: "yaml".into(),
        source: format!("# {slug} {hash}\nflows: {{}}\n"),
        document: format!("{{\"slug\":\"{slug}\",\"hash\":\"{hash}\"}}"),
        routes: routes.iter().map(|(path, flow)| Route { path: (*path).into(), flow: (*flow).into() }).collect(),
        emails: Vec::new(),
        secrets: None,
        now: T0,
    }
}

/// Creates the tenant `acme` and the integration `shop`; returns its version id.
pub async fn setup(store: &SharedStore) -> i64 {
    setup_tenant(store, TENANT).await
}

/// Creates `tenant` and its integration `shop`; returns the version id.
pub async fn setup_tenant(store: &SharedStore, tenant: &str) -> i64 {
    assert!(store.create_tenant(tenant, &format!("Tenant {tenant}"), T0).await.unwrap());
    store.put_integration(&new_version(tenant, INTEGRATION, "h1", &[])).await.unwrap().record().id
}

/// A queued execution of `acme/shop/orders`.
pub fn exec(id: &str, version_id: i64, run_after: i64) -> NewExecution {
    NewExecution {
        id: id.into(),
        tenant_id: TENANT.into(),
        integration: INTEGRATION.into(),
        flow: FLOW.into(),
        version_id,
        status: Status::Queued,
        lease_owner: None,
        lease_until: None,
        trigger_kind: "webhook",
        trigger: format!("{{\"id\":\"{id}\"}}"),
        auth_label: Some("ci-key".into()),
        run_after,
        created_at: T0,
        replay_of: None,
        order_key: None,
        max_running: None,
        dedup: None,
        parent_id: None,
        traceparent: None,
    }
}

/// An execution inserted already running, leased to `owner` until `until`.
pub fn running_exec(id: &str, version_id: i64, owner: &str, until: i64) -> NewExecution {
    NewExecution {
        status: Status::Running,
        lease_owner: Some(owner.into()),
        lease_until: Some(until),
        ..exec(id, version_id, T0)
    }
}

/// Commits `execs` in one batch.
pub async fn insert(store: &SharedStore, execs: Vec<NewExecution>) {
    store.commit(&WriteBatch { inserts: execs, ..WriteBatch::default() }).await.unwrap();
}

/// Inserts one queued execution per id (one batch, in order) due at `T0`.
pub async fn insert_ids(store: &SharedStore, version_id: i64, ids: &[&str]) {
    insert(store, ids.iter().map(|id| exec(id, version_id, T0)).collect()).await;
}

/// A journal entry.
pub fn step(
    execution: &str,
    step_id: &str,
    seq: i64,
    status: &str,
    input: Option<&str>,
    output: Option<&str>,
) -> StepRecord {
    StepRecord {
        execution_id: execution.into(),
        step_id: step_id.into(),
        round: 1,
        attempt: 1,
        seq,
        status: status.into(),
        input: input.map(Into::into),
        output: output.map(Into::into),
        error: None,
        response: None,
        started_at: T0 + seq * 10,
        finished_at: T0 + seq * 10 + 5,
    }
}

/// A log line.
pub fn log(execution: &str, at: i64, message: &str) -> LogRecord {
    LogRecord {
        execution_id: execution.into(),
        at,
        level: "info".into(),
        step_id: Some("log".into()),
        message: message.into(),
    }
}

/// A finish with no payloads.
pub fn finish(id: &str, owner: &str, status: Status, at: i64) -> Finish {
    Finish {
        id: id.into(),
        owner: owner.into(),
        status,
        output: None,
        response: None,
        error: None,
        failed_step: None,
        finished_at: at,
        holds_order: false,
        scrub: Scrub::Keep,
    }
}

/// Commits one batch of finishes.
pub async fn commit_finishes(store: &SharedStore, finishes: Vec<Finish>) {
    store.commit(&WriteBatch { finishes, ..WriteBatch::default() }).await.unwrap();
}

/// Claims everything due at `now` for `owner` (lease until `now + 60 s`); returns the ids.
pub async fn claim_ids(store: &SharedStore, owner: &str, now: i64, limit: usize) -> Vec<String> {
    store.claim(owner, now, now + 60_000, limit).await.unwrap().into_iter().map(|c| c.id).collect()
}

/// The execution `id` (any tenant), which must exist.
/// Renews every lease `owner` holds in the test tenant (the engine names the executions it
/// runs; these tests mean all of them).
pub async fn renew_all(store: &SharedStore, owner: &str, until: i64) -> u64 {
    let q = flowgate_store::ExecutionQuery {
        tenant: TENANT.into(),
        integration: None,
        flow: None,
        status: None,
        before: None,
        limit: 10_000,
        ..Default::default()
    };
    let ids: Vec<String> = store.executions(&q).await.unwrap().into_iter().map(|r| r.id).collect();
    store.renew_leases(owner, &ids, until).await.unwrap()
}

pub async fn row(store: &SharedStore, id: &str) -> ExecutionRow {
    store.execution(None, id).await.unwrap().unwrap_or_else(|| panic!("execution {id} is missing"))
}

/// Inserts `id`, claims it for `owner` and finishes it with `status` at `at`.
pub async fn run_to_end(store: &SharedStore, version_id: i64, id: &str, status: Status, at: i64) {
    insert(store, vec![running_exec(id, version_id, "runner", at + 60_000)]).await;
    commit_finishes(store, vec![finish(id, "runner", status, at)]).await;
    assert_eq!(row(store, id).await.status(), status);
}

/// Receives events until one satisfies `last`; returns all received (the last included).
pub async fn recv_until(
    rx: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    last: impl Fn(&StoreEvent) -> bool,
) -> Vec<StoreEvent> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) => {
                let done = last(&e);
                got.push(e);
                if done {
                    return got;
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => panic!("lagged by {n} events"),
            Ok(Err(e)) => panic!("event stream ended: {e}; received {got:?}"),
            Err(_) => panic!("the awaited event did not arrive within {WAIT:?}; received {got:?}"),
        }
    }
}

/// Asks `store` to lead until it does (a leader that just closed releases the lock when the
/// server ends its session, a moment later); panics after [`WAIT`].
pub async fn lead_within(store: &SharedStore, what: &str) {
    let deadline = Instant::now() + WAIT;
    while !store.lead().await.unwrap() {
        assert!(Instant::now() < deadline, "{what}: did not get the leadership within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
