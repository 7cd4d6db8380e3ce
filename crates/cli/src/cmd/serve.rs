//! `flowgate serve`: runs the server until SIGINT or SIGTERM.

use clap::Args as ClapArgs;
use flowgate_server::{Roles, Server, Settings};
use flowgate_store::sqlite::Durability;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Server settings; every flag also reads a `FLOWGATE_*` variable.
#[derive(ClapArgs)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "FLOWGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data directory: the SQLite database, the bootstrap token, the lock file.
    #[arg(long, env = "FLOWGATE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database URL (default: SQLite in the data directory; `sqlite:///path/file.db` for another file).
    #[arg(long, env = "FLOWGATE_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// Base of webhook and status URLs shown to users (default: http://<listen>).
    #[arg(long, env = "FLOWGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest webhook or API request body, in bytes.
    #[arg(long, env = "FLOWGATE_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Connections open at once; at the cap, the one waiting longest without a request in
    /// flight makes room, or the new one gets a 503.
    #[arg(long, env = "FLOWGATE_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Milliseconds a connection may take to send a request's head (or stay idle between
    /// requests) before it is closed.
    #[arg(long, env = "FLOWGATE_HEADER_TIMEOUT_MS", default_value_t = 15_000)]
    header_timeout_ms: u64,
    /// Milliseconds a request's body may take to arrive (then 408).
    #[arg(long, env = "FLOWGATE_BODY_TIMEOUT_MS", default_value_t = 60_000)]
    body_timeout_ms: u64,
    /// Mebibytes of memory for events (request bodies, stored events) being received, parsed
    /// and run at once, counted as the size of their JSON trees; beyond it callers wait
    /// briefly, then get 503 (see docs/reliability.md).
    #[arg(long, env = "FLOWGATE_MAX_IN_FLIGHT_MB", default_value_t = 256)]
    max_in_flight_mb: usize,
    /// Largest step output kept in the journal, in bytes of JSON; a larger one fails the
    /// step with `output_too_large`.
    #[arg(long, env = "FLOWGATE_MAX_STEP_OUTPUT_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_step_output_bytes: usize,
    /// SQLite durability: `full` (a commit survives power loss) or `normal` (survives a crash
    /// of the process; the last commits may be lost on power loss).
    #[arg(long, env = "FLOWGATE_DURABILITY", default_value = "full")]
    durability: Durability,
    /// Executions running at once on this node (an execution waiting on a slow target holds
    /// one; they are cheap).
    #[arg(long, env = "FLOWGATE_MAX_CONCURRENCY", default_value_t = 1024)]
    max_concurrency: usize,
    /// Percent of those one tenant may hold; its further events wait in the queue while other
    /// tenants' run.
    #[arg(long, env = "FLOWGATE_TENANT_SHARE_PCT", default_value_t = 50)]
    tenant_share_pct: u8,
    /// Percent of those one flow may hold.
    #[arg(long, env = "FLOWGATE_FLOW_SHARE_PCT", default_value_t = 25)]
    flow_share_pct: u8,
    /// What this node does: any of `api` (webhooks and the REST API), `worker` (runs
    /// executions), `scheduler` (leader election and leader-only work), comma-separated.
    #[arg(long, env = "FLOWGATE_ROLES", default_value = "api,worker,scheduler")]
    roles: Roles,
    /// Accept events and serve the API, but run no executions (same as leaving out `worker`).
    #[arg(long, env = "FLOWGATE_NO_WORKERS")]
    no_workers: bool,
    /// Milliseconds a running execution's lease lasts; executions of a node that died resume
    /// elsewhere once their lease expires (renewed every third of it).
    #[arg(long, env = "FLOWGATE_LEASE_MS", default_value_t = 30_000)]
    lease_ms: u64,
    /// Database connections for queries (PostgreSQL).
    #[arg(long, env = "FLOWGATE_POOL_SIZE", default_value_t = 16)]
    pool_size: u32,
    /// Queued executions beyond which webhooks answer 503 with Retry-After.
    #[arg(long, env = "FLOWGATE_MAX_BACKLOG", default_value_t = 5_000_000)]
    max_backlog: i64,
    /// Delete finished executions older than this (e.g. 30d); default: keep.
    #[arg(long, env = "FLOWGATE_RETENTION")]
    retention: Option<String>,
    /// Keep at most this many finished executions in all; default: no limit.
    #[arg(long, env = "FLOWGATE_RETENTION_COUNT")]
    retention_count: Option<u64>,
    /// Recorded executions dry runs re-run at once on this node, beside the workers (0: a
    /// quarter of --max-concurrency).
    #[arg(long, env = "FLOWGATE_DRY_RUN_WORKERS", default_value_t = 0)]
    dry_run_workers: usize,
    /// Seconds running executions get to finish at shutdown before they are handed back.
    #[arg(long, env = "FLOWGATE_SHUTDOWN_GRACE", default_value_t = 10)]
    shutdown_grace: u64,
    /// Milliseconds one expression may run.
    #[arg(long, env = "FLOWGATE_EXPRESSION_TIMEOUT_MS", default_value_t = 1000)]
    expression_timeout_ms: u64,
    /// Mebibytes one expression evaluation may hold (its input converted for jq, what it
    /// builds, its result).
    #[arg(long, env = "FLOWGATE_EXPRESSION_MEMORY_MB", default_value_t = 128)]
    expression_memory_mb: usize,
    /// Fail (`crashed_node`) rather than resume an execution that was running every time
    /// its node died, this many times in a row without progress; 0: always resume.
    #[arg(long, env = "FLOWGATE_CRASH_LIMIT", default_value_t = 3)]
    crash_limit: u32,
    /// Executions the `call` steps below one event's execution may start at once (then as
    /// many an hour): bounds how far one event can fan out.
    #[arg(long, env = "FLOWGATE_MAX_CALL_TREE", default_value_t = 10_000)]
    max_call_tree: u32,
    /// Token of the `default` tenant, installed at start (else one is generated on first start).
    #[arg(long, env = "FLOWGATE_BOOTSTRAP_TOKEN", hide_env_values = true)]
    bootstrap_token: Option<String>,
    /// Export executions' traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318);
    /// off unless set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// The OTLP encoding: `http/protobuf` (default) or `http/json`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "http/protobuf", value_parser = ["http/protobuf", "http/json"])]
    otlp_protocol: String,
    /// Receive e-mail over SMTP on this address (e.g. 127.0.0.1:2525); off unless set.
    #[arg(long, env = "FLOWGATE_SMTP_LISTEN")]
    smtp_listen: Option<SocketAddr>,
    /// Domain of the flows' derived inbound addresses (`<flow>.<integration>.<tenant>@DOMAIN`).
    #[arg(long, env = "FLOWGATE_SMTP_DOMAIN", default_value = "localhost")]
    smtp_domain: String,
    /// Largest inbound e-mail message, in bytes.
    #[arg(long, env = "FLOWGATE_MAX_EMAIL_BYTES", default_value_t = 25 * 1024 * 1024)]
    max_email_bytes: usize,
    /// The master key sealing secrets at rest (64 hex or base64 of 32 bytes); default: the
    /// data directory's master.key, made on first start. Nodes sharing a database need the same.
    #[arg(long, env = "FLOWGATE_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
    /// The server administrator's token (creates tenants); default: made on first start and
    /// written to the data directory's admin-token.
    #[arg(long, env = "FLOWGATE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// SMTP relay for outgoing mail (e-mail steps, failure notifications):
    /// `smtp://[user:pass@]host[:port]`, `smtp+starttls://…` or `smtps://…`, `?from=…`.
    #[arg(long, env = "FLOWGATE_SMTP_RELAY", hide_env_values = true)]
    smtp_relay: Option<String>,
    /// Refuse outbound requests (http steps, polls, webhooks) to loopback, private and
    /// link-local addresses (for multi-tenant hosting).
    #[arg(long, env = "FLOWGATE_OUTBOUND_DENY_PRIVATE")]
    outbound_deny_private: bool,
    /// Hosts and networks allowed anyway, comma-separated (`erp.internal,10.1.0.0/16`).
    #[arg(long, env = "FLOWGATE_OUTBOUND_ALLOW", default_value = "")]
    outbound_allow: String,
    /// Where `file` log sources write, each tenant in its own folder (default: `logs` in
    /// the data directory).
    #[arg(long, env = "FLOWGATE_LOG_DIR")]
    log_dir: Option<PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "FLOWGATE_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    init_logs(&a.log_format);
    let settings = Settings {
        listen: a.listen,
        data_dir: a.data_dir,
        database: a.database,
        public_url: a.public_url,
        max_body_bytes: a.max_body_bytes,
        connections: flowgate_server::listen::Limits {
            max_connections: a.max_connections.max(1),
            header_timeout: Duration::from_millis(a.header_timeout_ms.max(100)),
            body_timeout: Duration::from_millis(a.body_timeout_ms.max(100)),
            ..Default::default()
        },
        durability: a.durability,
        bootstrap_token: a.bootstrap_token,
        max_concurrency: a.max_concurrency.max(1),
        tenant_share_pct: a.tenant_share_pct.clamp(1, 100),
        flow_share_pct: a.flow_share_pct.clamp(1, 100),
        roles: Roles { worker: a.roles.worker && !a.no_workers, ..a.roles },
        lease: Duration::from_millis(a.lease_ms.max(300)),
        pool_size: a.pool_size.max(2),
        max_backlog: a.max_backlog.max(1),
        retention_age: match a.retention.as_deref().map(flowgate_model::Dur::parse).transpose() {
            Ok(d) => d.map(|d| d.0),
            Err(e) => {
                eprintln!("error: --retention: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        retention_count: a.retention_count,
        dry_run_workers: a.dry_run_workers,
        shutdown_grace: Duration::from_secs(a.shutdown_grace),
        expression_timeout: Duration::from_millis(a.expression_timeout_ms.max(1)),
        expression_memory: a.expression_memory_mb.max(1).saturating_mul(1024 * 1024),
        crash_limit: a.crash_limit,
        max_call_tree: a.max_call_tree,
        memory_in_flight: a.max_in_flight_mb.max(1).saturating_mul(1024 * 1024),
        max_step_output: a.max_step_output_bytes.max(1024),
        smtp_listen: a.smtp_listen,
        smtp_domain: Some(a.smtp_domain),
        max_email_bytes: a.max_email_bytes.max(1024),
        master_key: a.master_key,
        smtp_relay: a.smtp_relay,
        log_dir: a.log_dir,
        outbound: flowgate_steps::outbound::OutboundPolicy {
            deny_private: a.outbound_deny_private,
            allow: match flowgate_steps::outbound::OutboundPolicy::parse_allow(&a.outbound_allow) {
                Ok(list) => list,
                Err(e) => {
                    eprintln!("error: --outbound-allow: {e}");
                    return Ok(ExitCode::from(2));
                }
            },
        },
        admin_token: a.admin_token,
        otlp_endpoint: a.otlp_endpoint,
        otlp_json: a.otlp_protocol == "http/json",
        ..Settings::default()
    };
    let server = match Server::bind(settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(b) = &server.bootstrap
        && b.generated
    {
        println!("Created tenant `default` and its API token (shown once):\n\n    {}\n", b.token);
        if let Some(f) = &b.file {
            println!("It is also in {} (mode 0600).", f.display());
        }
    }
    if let Some(b) = &server.admin {
        println!("Created the server admin token (manages tenants; shown once):\n\n    {}\n", b.token);
        if let Some(f) = &b.file {
            println!("It is also in {} (mode 0600).", f.display());
        }
    }
    println!("Flowgate listening on http://{}", server.local_addr());
    if let Some(addr) = server.smtp_addr() {
        println!("Receiving e-mail on smtp://{addr}");
    }
    server.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn init_logs(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLOWGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
