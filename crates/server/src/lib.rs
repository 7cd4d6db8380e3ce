//! Flowgate's HTTP server (DESIGN §5): webhook ingress, the REST API, signed status URLs,
//! health and metrics, and the start-up work (data directory lock, store, bootstrap tenant
//! and token, engine).
//!
//! `Server::bind` prepares everything and binds the listener (port 0 works, for tests);
//! `Server::run` serves until the shutdown future resolves, then stops accepting, lets the
//! engine finish or hand back its work, and closes the store.
//!
//! # Layout
//! - [`listen`]: the accept loop: connection cap, header, body and idle timeouts.
//! - [`hooks`]: `/hooks/{tenant}/{path}` and `/status/{id}`.
//! - [`mail`]: inbound e-mail: the SMTP receiver's recipients and messages become executions.
//! - [`api`]: the `/v1` routes (integrations, flows, executions, tokens, validate, OpenAPI).
//! - [`auth`]: API tokens, the admin token, status signatures (webhook credentials are the
//!   trigger's: `flowgate_engine::triggers::webhook::auth`).
//! - [`body`]: reading request bodies (limit, deadline, memory budget).
//! - [`error`]: the error body every failure uses.
//! - [`present`]: JSON shapes of stored records.
//! - [`metrics`]: Prometheus metrics.
//! - [`openapi`]: the API description.
//!
//! The web console (`/console`) is its own crate, `flowgate-console`, mounted in [`app`].

#![warn(missing_docs)]
// The OpenAPI document is one `json!` literal.
#![recursion_limit = "512"]
// ApiError is large, but errors are the cold path; boxing would only add noise.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod auth;
pub mod body;
pub mod error;
pub mod hooks;
pub mod listen;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod present;

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Router, middleware};
use error::ApiError;
use flowgate_engine::{Engine, EngineSettings, SystemClock};
use flowgate_store::SharedStore;
use flowgate_store::postgres::PgStore;
use flowgate_store::sqlite::{Durability, SqliteStore};
use rand::RngCore;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Server settings (flags / `FLOWGATE_*` variables; see the README's reference).
#[derive(Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory (SQLite file, bootstrap token, lock).
    pub data_dir: PathBuf,
    /// Database URL; default: SQLite in the data directory.
    pub database: Option<String>,
    /// Base of webhook and status URLs shown to users; default `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest webhook or API body, in bytes.
    pub max_body_bytes: usize,
    /// SQLite durability.
    pub durability: Durability,
    /// Token of the `default` tenant created on first start.
    pub bootstrap_token: Option<String>,
    /// Executions running at once.
    pub max_concurrency: usize,
    /// Percent of them one tenant may hold while others wait.
    pub tenant_share_pct: u8,
    /// Percent of them one flow may hold.
    pub flow_share_pct: u8,
    /// What this node does.
    pub roles: Roles,
    /// Lease of a running execution; a dead node's executions resume elsewhere after it.
    pub lease: Duration,
    /// Database connections for queries (PostgreSQL).
    pub pool_size: u32,
    /// Queued executions beyond which webhooks answer 503.
    pub max_backlog: i64,
    /// Finished executions older than this are deleted.
    pub retention_age: Option<Duration>,
    /// At most this many finished executions are kept.
    pub retention_count: Option<u64>,
    /// Recorded executions dry runs re-run at once (0: a quarter of `max_concurrency`).
    pub dry_run_workers: usize,
    /// How often retention runs (and expired delivery identities are forgotten).
    pub housekeeping_every: Duration,
    /// How often the queue's depth is measured for backpressure.
    pub backlog_every: Duration,
    /// How long running executions get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Time budget of one expression evaluation.
    pub expression_timeout: Duration,
    /// Memory budget of one expression evaluation, in bytes (its input converted for jq,
    /// what it builds, its result).
    pub expression_memory: usize,
    /// An execution whose node died under it this many times in a row without progress is
    /// failed (`crashed_node`) instead of resumed again; 0: never.
    pub crash_limit: u32,
    /// Executions the `call` steps below one event's execution may start at once (then as
    /// many an hour).
    pub max_call_tree: u32,
    /// Memory for events (webhook bodies, e-mails, stored events) received, parsed and run
    /// at once, in bytes of their trees; beyond it callers wait briefly, then get 503.
    pub memory_in_flight: usize,
    /// Largest step output journaled, in bytes of JSON.
    pub max_step_output: usize,
    /// Address of the inbound SMTP receiver (off when unset).
    pub smtp_listen: Option<SocketAddr>,
    /// Domain of derived inbound e-mail addresses, and the receiver's name; default `localhost`.
    pub smtp_domain: Option<String>,
    /// Largest inbound e-mail message, in bytes.
    pub max_email_bytes: usize,
    /// Longest the scheduler sleeps between looks at the clock.
    pub trigger_tick: Duration,
    /// How often the claim loop looks for due work (parked executions, expired leases) when
    /// nothing woke it; tests on a manual clock shorten it. Default 5 s.
    pub poll_interval: Duration,
    /// Where executions' traces go (OTLP over HTTP: a collector's base URL, or its full
    /// `…/v1/traces` URL); off when unset.
    pub otlp_endpoint: Option<String>,
    /// Send traces as OTLP/JSON rather than protobuf.
    pub otlp_json: bool,
    /// The clock (tests inject a manual one); default the system clock.
    pub clock: Option<Arc<dyn flowgate_engine::Clock>>,
    /// The master key sealing secrets at rest (`FLOWGATE_MASTER_KEY`); default: the key file
    /// `master.key` in the data directory, made on first start.
    pub master_key: Option<String>,
    /// The server administrator's token (`FLOWGATE_ADMIN_TOKEN`); default: made on first
    /// start and written to `admin-token` in the data directory.
    pub admin_token: Option<String>,
    /// SMTP relay for outgoing mail (`smtp://user:pass@host:port`, `smtp+starttls://…`,
    /// `smtps://…`); default: none (e-mail steps and notifications fail).
    pub smtp_relay: Option<String>,
    /// Which addresses outbound requests may reach (refuse internal ones; allow-list).
    pub outbound: flowgate_steps::outbound::OutboundPolicy,
    /// Where `file` log sources write (each tenant in its own folder); default: `logs` in
    /// the data directory.
    pub log_dir: Option<PathBuf>,
    /// Limits on connections and requests (connection cap, header and body timeouts).
    pub connections: listen::Limits,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.as_ref().map(|_| "[set]"))
            .field("public_url", &self.public_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("durability", &self.durability)
            .field("bootstrap_token", &self.bootstrap_token.as_ref().map(|_| "[redacted]"))
            .field("max_concurrency", &self.max_concurrency)
            .field("roles", &self.roles)
            .field("lease", &self.lease)
            .field("smtp_listen", &self.smtp_listen)
            .field("smtp_domain", &self.smtp_domain)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".parse().expect("address"),
            data_dir: PathBuf::from("./data"),
            database: None,
            public_url: None,
            max_body_bytes: 10 * 1024 * 1024,
            durability: Durability::Full,
            bootstrap_token: None,
            max_concurrency: 1024,
            tenant_share_pct: 50,
            flow_share_pct: 25,
            roles: Roles::ALL,
            lease: Duration::from_secs(30),
            pool_size: 16,
            max_backlog: 5_000_000,
            retention_age: None,
            retention_count: None,
            dry_run_workers: 0,
            housekeeping_every: Duration::from_secs(10),
            backlog_every: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(10),
            expression_timeout: Duration::from_secs(1),
            expression_memory: flowgate_expr::Budget::DEFAULT.memory,
            crash_limit: 3,
            max_call_tree: flowgate_engine::call::MAX_TREE,
            memory_in_flight: 256 * 1024 * 1024,
            max_step_output: 16 * 1024 * 1024,
            smtp_listen: None,
            smtp_domain: None,
            max_email_bytes: 25 * 1024 * 1024,
            trigger_tick: Duration::from_secs(1),
            poll_interval: Duration::from_secs(5),
            otlp_endpoint: None,
            otlp_json: false,
            clock: None,
            master_key: None,
            admin_token: None,
            smtp_relay: None,
            outbound: flowgate_steps::outbound::OutboundPolicy::default(),
            log_dir: None,
            connections: listen::Limits::default(),
        }
    }
}

/// Raises this process's open-files limit so that `wanted` connections fit (plus room for
/// the database, outbound requests and log files), as far as the hard limit allows; returns
/// the connection cap that fits.
fn open_files_for(wanted: usize, workers: usize) -> usize {
    // Each worker may hold an outbound connection; the database, logs and listeners the rest.
    let other_files = workers as u64 + 1024;
    let need = wanted as u64 + other_files;
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((need, need));
    let soft = if soft < need {
        let raised = need.min(hard);
        match rlimit::Resource::NOFILE.set(raised, hard) {
            Ok(()) => raised,
            Err(_) => soft,
        }
    } else {
        soft
    };
    let fits = soft.saturating_sub(other_files).max(64) as usize;
    if fits < wanted {
        tracing::warn!(
            wanted,
            fits,
            "The open-files limit allows fewer connections than --max-connections; capping at what fits."
        );
    }
    fits.min(wanted)
}

/// The roles of a node (`--roles api,worker,scheduler`, all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves webhooks and the REST API (without it: only health and metrics).
    pub api: bool,
    /// Runs executions.
    pub worker: bool,
    /// Takes part in the leader election and runs leader-only work.
    pub scheduler: bool,
}

impl Roles {
    /// Every role.
    pub const ALL: Roles = Roles { api: true, worker: true, scheduler: true };
}

impl std::str::FromStr for Roles {
    type Err = String;

    fn from_str(s: &str) -> Result<Roles, String> {
        let mut r = Roles { api: false, worker: false, scheduler: false };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "api" => r.api = true,
                "worker" => r.worker = true,
                "scheduler" => r.scheduler = true,
                "all" => r = Roles::ALL,
                other => return Err(format!("unknown role `{other}` (expected api, worker, scheduler)")),
            }
        }
        if r == (Roles { api: false, worker: false, scheduler: false }) {
            return Err("at least one role is needed".into());
        }
        Ok(r)
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The engine (and through it the store).
    pub engine: Engine,
    /// Settings in force.
    pub settings: Arc<Settings>,
    /// Base of URLs shown to users.
    pub public_url: Arc<str>,
    /// Key signing status URLs.
    pub status_key: Arc<[u8]>,
    /// Cancelled when the server stops serving (ends the console's live streams).
    pub stopping: tokio_util::sync::CancellationToken,
}

/// What the web console needs from the server: the engine, the cluster's shared key (the
/// status key; the console keeps its signatures apart by a prefix), the public URL and the
/// API's token check.
impl flowgate_console::Host for AppState {
    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn session_key(&self) -> &[u8] {
        &self.status_key
    }

    fn public_url(&self) -> &str {
        &self.public_url
    }

    fn token_hash(&self, token: &str) -> String {
        auth::hash_token(token)
    }

    fn stopping(&self) -> tokio_util::sync::CancellationToken {
        self.stopping.clone()
    }

    fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }
}

impl AppState {
    /// The full status URL of an execution.
    pub fn status_url(&self, id: &str) -> String {
        format!("{}{}", self.public_url, hooks::status_path(&self.status_key, id))
    }

    /// The full webhook URL of a path.
    pub fn webhook_url(&self, tenant: &str, path: &str) -> String {
        flowgate_engine::compile::webhook_url(&self.public_url, tenant, path)
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// Another process uses the data directory.
    #[error("the data directory {0} is in use by another Flowgate process")]
    Locked(PathBuf),
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] flowgate_store::Error),
}

/// The token made for the `default` tenant on first start.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The token.
    pub token: String,
    /// True when it was generated (it must be shown once), false when it came from settings.
    pub generated: bool,
    /// Where a generated token was written.
    pub file: Option<PathBuf>,
}

/// A bound, ready server.
pub struct Server {
    state: AppState,
    listener: TcpListener,
    smtp: Option<TcpListener>,
    store: SharedStore,
    _lock: std::fs::File,
    /// Set when this start created the `default` tenant.
    pub bootstrap: Option<Bootstrap>,
    /// Set when this start made the admin token (shown once).
    pub admin: Option<Bootstrap>,
}

impl Server {
    /// Locks the data directory, opens the store, bootstraps, starts the engine and binds.
    ///
    /// # Errors
    /// A wrong setting, a data directory in use, the store, or the address.
    pub async fn bind(settings: Settings) -> Result<Server, StartError> {
        if !settings.data_dir.exists() {
            // The data directory holds the database, keys and tokens: made its owner's only.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(&settings.data_dir)
                .map_err(|e| StartError::Io(settings.data_dir.display().to_string(), e))?;
        }
        let lock_path = settings.data_dir.join("flowgate.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StartError::Io(lock_path.display().to_string(), e))?;
        if lock.try_lock().is_err() {
            return Err(StartError::Locked(settings.data_dir.clone()));
        }
        let store = open_store(&settings).await?;
        let shared: SharedStore = store.clone();
        let sealer = load_sealer(&shared, &settings).await?;
        let bootstrap = bootstrap(&shared, &settings).await?;
        let admin = bootstrap_admin(&shared, &settings).await?;
        let key_hex = shared.init_setting("status_key", &hex::encode(random_bytes(32))).await?;
        let status_key: Arc<[u8]> =
            hex::decode(key_hex).map_err(|_| StartError::Config("corrupt status_key setting".into()))?.into();
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| StartError::Io(format!("cannot listen on {}", settings.listen), e))?;
        let addr = listener.local_addr().map_err(|e| StartError::Io("local address".into(), e))?;
        let public_url =
            settings.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_owned();
        let engine = Engine::start(
            shared,
            EngineSettings {
                public_url: public_url.clone(),
                // One key for the cluster (a shared setting); `resume:` keeps its signatures
                // apart from status URLs'.
                resume_key: status_key.clone(),
                max_concurrency: settings.max_concurrency,
                tenant_share_pct: settings.tenant_share_pct,
                flow_share_pct: settings.flow_share_pct,
                workers: settings.roles.worker,
                leader: settings.roles.scheduler,
                lease: settings.lease,
                max_backlog: settings.max_backlog,
                retention_age: settings.retention_age,
                retention_count: settings.retention_count,
                dry_run_workers: settings.dry_run_workers,
                housekeeping_every: settings.housekeeping_every,
                backlog_every: settings.backlog_every,
                expression_budget: flowgate_expr::Budget {
                    time: settings.expression_timeout,
                    memory: settings.expression_memory,
                    ..flowgate_expr::Budget::DEFAULT
                },
                crash_limit: settings.crash_limit,
                max_call_tree: settings.max_call_tree,
                memory_in_flight: settings.memory_in_flight,
                max_step_output: settings.max_step_output,
                mail_domain: settings.smtp_domain.clone().unwrap_or_else(|| "localhost".into()),
                sealer: Some(sealer),
                mailer: match settings.smtp_relay.as_deref().filter(|u| !u.is_empty()) {
                    None => None,
                    Some(url) => Some(
                        flowgate_mailer::SmtpConfig::from_url(url)
                            .and_then(flowgate_mailer::Mailer::new)
                            .map_err(|e| StartError::Config(format!("--smtp-relay: {e}")))?,
                    ),
                },
                outbound: settings.outbound.clone(),
                // Absolute, so file log sources get absolute paths whatever the working directory.
                log_dir: Some({
                    let dir = settings.log_dir.clone().unwrap_or_else(|| settings.data_dir.join("logs"));
                    std::path::absolute(&dir).unwrap_or(dir)
                }),
                files_dir: Some({
                    let dir = settings.data_dir.join("files");
                    std::path::absolute(&dir).unwrap_or(dir)
                }),
                trigger_tick: settings.trigger_tick,
                poll_interval: settings.poll_interval,
                traces: Arc::new(match settings.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
                    None => flowgate_engine::traces::Traces::default(),
                    Some(endpoint) => flowgate_engine::traces::Traces::otlp(endpoint, settings.otlp_json, "flowgate")
                        .map_err(|e| StartError::Config(format!("--otlp-endpoint: {e}")))?,
                }),
                ..EngineSettings::default()
            },
            settings.clock.clone().unwrap_or_else(|| Arc::new(SystemClock)),
        )
        .await?;
        let smtp = match settings.smtp_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| StartError::Io(format!("cannot listen for SMTP on {addr}"), e))?,
            ),
            None => None,
        };
        metrics::handle();
        let state = AppState {
            engine,
            settings: Arc::new(settings),
            public_url: public_url.into(),
            status_key,
            stopping: tokio_util::sync::CancellationToken::new(),
        };
        Ok(Server { state, listener, smtp, store, _lock: lock, bootstrap, admin })
    }

    /// The SMTP receiver's address, when it is on.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address bound.
    ///
    /// # Panics
    /// Never in practice: the listener is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The shared state (for tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops gracefully.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let app = app(self.state.clone());
        tracing::info!(addr = %self.local_addr(), public_url = %self.state.public_url, "Flowgate is listening.");
        let stop_smtp = tokio_util::sync::CancellationToken::new();
        let smtp_task = self.smtp.map(|listener| {
            let addr = listener.local_addr().ok();
            tracing::info!(addr = ?addr, domain = %self.state.engine.registry().mail_domain(), "Receiving e-mail over SMTP.");
            tokio::spawn(mail::serve(self.state.clone(), listener, stop_smtp.clone()))
        });
        let limits = listen::Limits {
            max_connections: open_files_for(
                self.state.settings.connections.max_connections,
                self.state.settings.max_concurrency,
            ),
            ..self.state.settings.connections
        };
        // Long-lived responses (the console's live streams) end when serving stops, so they do
        // not hold up the graceful shutdown.
        let stopping = self.state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.cancel();
        };
        listen::serve(self.listener, app, limits, shutdown, self.state.settings.shutdown_grace).await?;
        stop_smtp.cancel();
        if let Some(t) = smtp_task {
            let _ = t.await;
        }
        tracing::info!("Stopping: finishing running executions.");
        self.state.engine.shutdown(self.state.settings.shutdown_grace).await;
        self.store.close().await;
        tracing::info!("Stopped.");
        Ok(())
    }
}

/// Opens the store the settings name (PostgreSQL, or SQLite in the data directory), running
/// its migrations. The caller holds the data directory's lock when it is SQLite.
///
/// # Errors
/// An unsupported URL, or the store.
pub async fn open_store(settings: &Settings) -> Result<SharedStore, StartError> {
    let store: SharedStore = match settings.database.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(PgStore::connect(url, settings.pool_size).await?)
        }
        Some(url) if !url.is_empty() && !url.starts_with("sqlite:") => {
            return Err(StartError::Config(format!(
                "unsupported database URL `{}`: expected postgres://… or sqlite://…",
                url.split(['@', '?']).next().unwrap_or("")
            )));
        }
        other => {
            let path = match other {
                None | Some("") => settings.data_dir.join("flowgate.db"),
                Some(url) => PathBuf::from(url.trim_start_matches("sqlite://").trim_start_matches("sqlite:")),
            };
            Arc::new(SqliteStore::open(&path, settings.durability).await?)
        }
    };
    Ok(store)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    b
}

/// The setting naming the master key the database's secrets are sealed with.
pub const MASTER_KEY_SETTING: &str = "master_key_fingerprint";

/// The master key (with the keys of an unfinished rotation, `master.key.next` and
/// `master.key.old`, so every value opens), checked against the one the database was first
/// used with: a node with another key would seal values no other node can open.
async fn load_sealer(store: &SharedStore, settings: &Settings) -> Result<flowgate_secrets::Sealer, StartError> {
    use flowgate_secrets::{KeySource, MasterKey, Sealer};
    let (key, source) = MasterKey::load(settings.master_key.as_deref(), &settings.data_dir)
        .map_err(|e| StartError::Config(format!("master key: {e}")))?;
    if let KeySource::File { path, created: true } = &source {
        tracing::info!(path = %path.display(), "Created the master key that seals secrets at rest; back it up.");
    }
    let mut previous = Vec::new();
    for extra in ["master.key.next", "master.key.old"] {
        let path = settings.data_dir.join(extra);
        if let Ok(text) = std::fs::read_to_string(&path) {
            match MasterKey::parse(&text) {
                Ok(k) => previous.push(k),
                Err(e) => return Err(StartError::Config(format!("{}: {e}", path.display()))),
            }
        }
    }
    let fingerprint = key.fingerprint();
    let known: Vec<String> =
        std::iter::once(fingerprint.clone()).chain(previous.iter().map(MasterKey::fingerprint)).collect();
    let recorded = store.init_setting(MASTER_KEY_SETTING, &fingerprint).await?;
    if !known.contains(&recorded) {
        // A key file this start just made is useless (and misleading) once refused.
        if let KeySource::File { path, created: true } = &source {
            let _ = std::fs::remove_file(path);
        }
        return Err(StartError::Config(format!(
            "this database's secrets are sealed with master key {recorded}, but this node has key {fingerprint}: \
             set FLOWGATE_MASTER_KEY (or the data directory's master.key) to the key of the other nodes"
        )));
    }
    if recorded != fingerprint {
        // A rotation was left half done: the data may be under either key; keep both.
        tracing::warn!(recorded, current = %fingerprint, "Master key rotation not finished; run `flowgate keys rotate-master` again.");
    }
    Ok(Sealer::new(key).with_previous(previous))
}

/// The admin token: installed from the settings on any start, else made on first start.
async fn bootstrap_admin(store: &SharedStore, settings: &Settings) -> Result<Option<Bootstrap>, StartError> {
    if let Some(token) = &settings.admin_token {
        store.put_setting(auth::ADMIN_TOKEN_SETTING, &auth::hash_token(token)).await?;
        return Ok(None);
    }
    if store.setting(auth::ADMIN_TOKEN_SETTING).await?.is_some() {
        return Ok(None);
    }
    let token = format!("fga_{}", &auth::new_token()[4..]);
    let stored = store.init_setting(auth::ADMIN_TOKEN_SETTING, &auth::hash_token(&token)).await?;
    if stored != auth::hash_token(&token) {
        return Ok(None); // another node made it at the same moment
    }
    let file = settings.data_dir.join("admin-token");
    write_private(&file, &token).map_err(|e| StartError::Io(file.display().to_string(), e))?;
    Ok(Some(Bootstrap { token, generated: true, file: Some(file) }))
}

/// On first start: the `default` tenant and its admin token. A token given in the settings is
/// (re)installed on any start, so a fixed `FLOWGATE_BOOTSTRAP_TOKEN` keeps working.
async fn bootstrap(store: &SharedStore, settings: &Settings) -> Result<Option<Bootstrap>, StartError> {
    let now = SystemClock.now();
    // Nodes of a cluster may start together: only the one whose insert created the tenant
    // bootstraps it.
    let first = store.tenants().await?.is_empty() && store.create_tenant("default", "Default", now).await?;
    if let Some(token) = &settings.bootstrap_token {
        if store.token_by_hash(&auth::hash_token(token)).await?.is_none() {
            match create_token(store, "default", "bootstrap", token, now).await {
                // Another node installed the same token at the same moment.
                Err(StartError::Store(flowgate_store::Error::Conflict(_))) => {}
                other => other?,
            }
        }
        return Ok(first.then(|| Bootstrap { token: token.clone(), generated: false, file: None }));
    }
    if !first {
        return Ok(None);
    }
    let token = auth::new_token();
    create_token(store, "default", "bootstrap", &token, now).await?;
    let file = settings.data_dir.join("bootstrap-token");
    write_private(&file, &token).map_err(|e| StartError::Io(file.display().to_string(), e))?;
    Ok(Some(Bootstrap { token, generated: true, file: Some(file) }))
}

async fn create_token(store: &SharedStore, tenant: &str, name: &str, token: &str, now: i64) -> Result<(), StartError> {
    store
        .create_token(&flowgate_store::NewToken {
            id: format!("tok_{}", uuid::Uuid::new_v4().simple()),
            tenant_id: tenant.to_owned(),
            name: name.to_owned(),
            token_hash: auth::hash_token(token),
            prefix: token.chars().take(12).collect(),
            created_at: now,
        })
        .await?;
    Ok(())
}

/// Writes `text` to `path`, readable by its owner only (mode 0600 on unix).
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).write(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

trait NowMs {
    fn now(&self) -> i64;
}

impl NowMs for SystemClock {
    fn now(&self) -> i64 {
        flowgate_engine::Clock::now_ms(self)
    }
}

/// Builds the whole router (health and metrics only for a node without the `api` role).
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render));
    if state.settings.roles.api {
        router = router
            .route("/hooks/{tenant}/{*path}", any(hooks::hook))
            .route("/status/{id}", get(hooks::status))
            .route("/oauth/callback", get(api::connections::callback))
            .route("/resume/{id}", axum::routing::post(hooks::resume))
            .nest("/v1", api::router())
            // The web console (issue 19), and `/` leads to it.
            .route("/", get(|| async { axum::response::Redirect::to("/console") }))
            .nest("/console", flowgate_console::router(Arc::new(state.clone())));
    }
    router
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(middleware::from_fn(metrics::track))
        .with_state(state)
}

async fn readyz(State(st): State<AppState>) -> Response {
    match st.engine.store().ping().await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Not ready: the store does not answer.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "unavailable", "reason": "the database does not answer" })),
            )
                .into_response()
        }
    }
}

/// A request body read up to the configured limit; too large is a JSON 413.
pub struct ApiBody(pub bytes::Bytes);

impl FromRequest<AppState> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let read = body::read(state, body, &parts.headers, state.settings.max_body_bytes, false).await?;
        Ok(ApiBody(read.bytes))
    }
}
