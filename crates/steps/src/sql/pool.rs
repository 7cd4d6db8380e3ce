//! The node's database pools: one per database URL, shared by every execution, created on
//! first use. Connect options are built from the URL here, never by the drivers' own URL
//! parsers, so a tenant's URL cannot pick up the server's environment (`PGPASSWORD`,
//! `~/.pgpass`, `PGHOST`…) or point the driver at files (`sslkey=…`, a socket).

use crate::StepError;
use crate::outbound::OutboundPolicy;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlSslMode};
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// Connections one pool opens at most.
const MAX_CONNECTIONS: u32 = 4;
/// An idle connection is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Longest a step waits for a connection (the attempt's timeout usually ends it first).
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A database's pool.
#[derive(Clone)]
pub(super) enum Db {
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL or MariaDB, and which of the two it is once known (see `run::Flavour`).
    Mysql(MySqlPool, Arc<AtomicU8>),
    /// A SQLite file.
    Sqlite(SqlitePool),
}

/// Pools by URL (and the address the host was pinned to, when the policy resolved it).
static POOLS: LazyLock<Mutex<HashMap<String, Pooled>>> = LazyLock::new(Default::default);

/// A pool, and whether the runtime it was made on still runs: its connections' sockets
/// belong to that runtime, so a pool outliving it (a process with several runtimes, such as
/// a test binary) is replaced rather than handed out.
struct Pooled {
    db: Db,
    alive: Arc<AtomicBool>,
}

/// Marks its pool dead when dropped: it sits in a task of the pool's runtime, which drops it
/// when the runtime shuts down.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// The pool of the database a connection's credentials name (`database`: `postgres`,
/// `mysql` or `sqlite`; `url` with the password, or `sqlite:<path>`), its host checked
/// against `policy` first.
///
/// # Errors
/// `sql_refused` for a host the policy refuses; `sql_connection` for a URL the step cannot
/// use (the URL itself is never in the message).
pub(super) async fn pool(database: &str, url: &str, policy: &OutboundPolicy) -> Result<Db, StepError> {
    if database == "sqlite" {
        let Some(path) = url.strip_prefix("sqlite:").filter(|p| !p.is_empty()) else {
            return Err(connection_error("the sqlite connection names no file"));
        };
        let key = url.to_owned();
        return Ok(cached(key, || {
            let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
            Db::Sqlite(pool_options().connect_lazy_with(options))
        }));
    }
    let (default_port, what) = match database {
        "postgres" => (5432, "PostgreSQL"),
        "mysql" => (3306, "MySQL"),
        _ => return Err(connection_error("the connection is not a database connection (postgres, mysql, sqlite)")),
    };
    let parsed = url::Url::parse(url).map_err(|e| connection_error(&format!("invalid {what} URL ({e})")))?;
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(connection_error(&format!("the {what} URL names no host"))),
    };
    let port = parsed.port().unwrap_or(default_port);
    // The same check as an HTTP step's URL; a name is resolved once and the connection made
    // to the address checked (a second lookup could answer differently).
    let pinned = policy
        .resolve_checked(&host, port)
        .await
        .map_err(|m| StepError::fatal("sql_refused", format!("{what}: {m}")))?;
    let key = match pinned {
        Some(ip) => format!("{url}\n{ip}"),
        None => url.to_owned(),
    };
    if let Some(p) = POOLS.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
        && p.alive.load(Ordering::Relaxed)
    {
        return Ok(p.db.clone());
    }
    let connect_to = pinned.map_or(host, |ip: IpAddr| ip.to_string());
    let db = if database == "postgres" {
        let options = postgres_options(&parsed, &connect_to, port)?;
        Db::Postgres(pool_options().connect_lazy_with(options))
    } else {
        let options = mysql_options(&parsed, &connect_to, port)?;
        Db::Mysql(pool_options().connect_lazy_with(options), Arc::default())
    };
    Ok(cached(key, || db))
}

/// The pool under `key`, made by `make` when there is none yet (or its runtime is gone).
fn cached(key: String, make: impl FnOnce() -> Db) -> Db {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pools.get(&key)
        && p.alive.load(Ordering::Relaxed)
    {
        return p.db.clone();
    }
    let alive = Arc::new(AtomicBool::new(true));
    let guard = Alive(alive.clone());
    tokio::spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
    let db = make();
    pools.insert(key, Pooled { db: db.clone(), alive });
    db
}

fn pool_options<DB: sqlx::Database>() -> PoolOptions<DB> {
    // The pool pings a connection when it comes back (sqlx always does); a second ping
    // before each use would cost every step a round trip.
    PoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .min_connections(0)
        .idle_timeout(Some(IDLE_TIMEOUT))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
}

fn connection_error(message: &str) -> StepError {
    StepError::fatal("sql_connection", message.to_owned())
}

/// The URL's user, password and database, percent-decoded.
fn credentials(url: &url::Url) -> Result<(Option<String>, String, Option<String>), StepError> {
    let decode = |s: &str| {
        crate::util::percent_decode(s)
            .ok_or_else(|| connection_error("the URL's user, password or database is not UTF-8"))
    };
    let user = Some(url.username()).filter(|u| !u.is_empty()).map(decode).transpose()?;
    let password = decode(url.password().unwrap_or(""))?;
    let database = Some(url.path().trim_start_matches('/')).filter(|d| !d.is_empty()).map(decode).transpose()?;
    Ok((user, password, database))
}

fn postgres_options(url: &url::Url, host: &str, port: u16) -> Result<PgConnectOptions, StepError> {
    let (user, password, database) = credentials(url)?;
    let user = user.unwrap_or_else(|| "postgres".into());
    // Every setting that could come from the server's environment is set from the URL:
    // no password means an empty one, never `PGPASSWORD`'s.
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(host)
        .port(port)
        .password(&password)
        .database(database.as_deref().unwrap_or(&user))
        .username(&user)
        .ssl_mode(PgSslMode::Disable)
        .application_name("flowgate");
    for (key, value) in url.query_pairs() {
        match &*key {
            "sslmode" if matches!(&*value, "disable" | "allow" | "prefer") => {}
            "sslmode" => return Err(no_tls()),
            "application_name" => options = options.application_name(&value),
            other => return Err(unknown_parameter(other, "sslmode, application_name")),
        }
    }
    Ok(options)
}

fn mysql_options(url: &url::Url, host: &str, port: u16) -> Result<MySqlConnectOptions, StepError> {
    let (user, password, database) = credentials(url)?;
    let mut options = MySqlConnectOptions::new()
        .host(host)
        .port(port)
        .username(user.as_deref().unwrap_or("root"))
        .ssl_mode(MySqlSslMode::Disabled)
        // `||` keeps the server's meaning (sqlx would make it concatenation).
        .pipes_as_concat(false);
    if !password.is_empty() {
        options = options.password(&password);
    }
    if let Some(d) = &database {
        options = options.database(d);
    }
    for (key, value) in url.query_pairs() {
        match &*key {
            "ssl-mode" | "sslmode"
                if value.eq_ignore_ascii_case("disabled") || value.eq_ignore_ascii_case("preferred") => {}
            "ssl-mode" | "sslmode" => return Err(no_tls()),
            "charset" => options = options.charset(&value),
            other => return Err(unknown_parameter(other, "ssl-mode, charset")),
        }
    }
    Ok(options)
}

fn no_tls() -> StepError {
    connection_error("TLS to databases is not supported yet: use sslmode=disable (or prefer) on a trusted network")
}

fn unknown_parameter(name: &str, known: &str) -> StepError {
    let name: String = name.chars().take(40).collect();
    connection_error(&format!("unsupported URL parameter `{name}` (supported: {known})"))
}
