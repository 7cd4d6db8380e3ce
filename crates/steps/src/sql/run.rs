//! A `sql` step's attempt: its parameters evaluated, a connection from the node's pool, the
//! statements (in one transaction when there are several, or a statement timeout on
//! PostgreSQL needs one), the rows as JSON, and the database's errors as step errors.

use super::pool::{self, Db};
use super::values::{self, PgParam};
use super::{MAX_BYTES, MAX_ROWS, ResultMode};
use crate::{Outcome, Step, StepCx, StepError};
use async_trait::async_trait;
use flowgate_expr::Template;
use futures::{Stream, TryStreamExt};
use serde_json::{Map, Value, json};
use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, Database, Either, Executor as _, Statement as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// One statement, compiled.
pub(crate) struct Statement {
    /// The SQL, as written.
    pub(crate) query: String,
    /// The parameters: a template giving a list.
    pub(crate) params: Arc<Template>,
    /// What its result is.
    pub(crate) result: ResultMode,
}

/// A `sql` step, compiled.
pub(crate) struct Sql {
    pub(crate) connection: String,
    pub(crate) statements: Vec<Statement>,
    /// `statements` (one transaction; the output is the list of results) rather than `query`.
    pub(crate) transaction: bool,
    /// The step's `timeout`, also each statement's on the server.
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) side_effects: bool,
}

/// A statement with its parameters' values.
type Work<'a> = (&'a Statement, Vec<Value>);

/// Runs `$run` (a future from `$s: &Statement` and `$params: &[Value]`) for each statement
/// of `$work` in order, stopping at the first failure: the results, or that failure (see
/// [`in_transaction`]). A macro, not a function taking a closure: the futures borrow the
/// connection, and a closure returning them would not be `Send` for every lifetime.
macro_rules! each {
    ($work:expr, $transaction:expr, |$s:ident, $params:ident| $run:expr) => {{
        let mut results = Vec::with_capacity($work.len());
        let mut failed = None;
        for (i, (s, params)) in $work.iter().enumerate() {
            let ($s, $params): (&Statement, &[Value]) = (s, params.as_slice());
            match $run.await {
                Ok(v) => results.push(v),
                Err(e) => {
                    failed = Some(in_transaction(e, i, $work.len(), $transaction));
                    break;
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }};
}

#[async_trait]
impl Step for Sql {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let mut work: Vec<Work<'_>> = Vec::with_capacity(self.statements.len());
        for s in &self.statements {
            match cx.evaluator.eval(&s.params, input, &cx.scope).await? {
                Value::Array(params) => work.push((s, params)),
                other => {
                    return Err(StepError::fatal("sql_params", format!("`params` gave {other}, not a list")));
                }
            }
        }
        let credentials = cx.connections.credentials(&self.connection).await?;
        let database = credentials.extras["database"].as_str().unwrap_or_default();
        let url = credentials.extras["url"].as_str().unwrap_or_default();
        let db = pool::pool(database, url, cx.outbound).await?;
        let timeout = self.statement_timeout;
        let results = match db {
            Db::Postgres(pool) => postgres(&pool, &work, self.transaction, timeout).await?,
            Db::Mysql(pool, flavour) => mysql(&pool, &flavour, &work, self.transaction, timeout).await?,
            Db::Sqlite(pool) => sqlite(&pool, &work, self.transaction, timeout).await?,
        };
        Ok(Outcome::Output(if self.transaction {
            Value::Array(results)
        } else {
            results.into_iter().next().unwrap_or(Value::Null)
        }))
    }

    fn side_effects(&self) -> bool {
        self.side_effects
    }
}

/// A pooled connection that is closed, not put back, unless the attempt finished with it:
/// an attempt cancelled mid-statement (its timeout) leaves it busy or with session settings
/// (a MySQL statement time, a SQLite interrupt) that must not reach the next step.
struct Lease<DB: Database> {
    conn: PoolConnection<DB>,
    finished: bool,
}

impl<DB: Database> Lease<DB> {
    /// A connection, waiting at most the step's `timeout` (else the pool's 10s): a server
    /// that refuses connections is tried again and again until then (it may be restarting).
    async fn acquire(pool: &sqlx::Pool<DB>, what: &str, timeout: Option<Duration>) -> Result<Lease<DB>, StepError> {
        let within = timeout.map_or(pool::ACQUIRE_TIMEOUT, |t| t.min(pool::ACQUIRE_TIMEOUT));
        let conn = match tokio::time::timeout(within, pool.acquire()).await {
            Ok(acquired) => acquired.map_err(|e| error(e, what))?,
            Err(_) => return Err(error(sqlx::Error::PoolTimedOut, what)),
        };
        Ok(Lease { conn, finished: false })
    }
}

impl<DB: Database> Drop for Lease<DB> {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

async fn postgres(
    pool: &sqlx::PgPool,
    work: &[Work<'_>],
    transaction: bool,
    timeout: Option<Duration>,
) -> Result<Vec<Value>, StepError> {
    const WHAT: &str = "PostgreSQL";
    let mut lease = Lease::acquire(pool, WHAT, timeout).await?;
    let results = if transaction || timeout.is_some() {
        // `SET LOCAL` lasts until the transaction ends: nothing stays on the connection (a
        // transaction that fails is rolled back before the connection is used again).
        async {
            let mut tx = lease.conn.begin().await.map_err(|e| error(e, WHAT))?;
            if let Some(t) = timeout {
                let set = format!("SET LOCAL statement_timeout = {}", t.as_millis().max(1));
                (&mut *tx).execute(sqlx::raw_sql(&set)).await.map_err(|e| error(e, WHAT))?;
            }
            let results = each!(work, transaction, |s, params| pg_statement(&mut tx, s, params))?;
            tx.commit().await.map_err(|e| error(e, WHAT))?;
            Ok(results)
        }
        .await
    } else {
        each!(work, transaction, |s, params| pg_statement(&mut lease.conn, s, params))
    };
    lease.finished = true;
    results
}

async fn pg_statement(conn: &mut sqlx::PgConnection, s: &Statement, params: &[Value]) -> Result<Value, StepError> {
    const WHAT: &str = "PostgreSQL";
    // Prepared without types: the server infers each placeholder's, and every value is
    // sent as that type (cached per connection, so this costs a round trip once).
    let prepared = (&mut *conn).prepare_with(&s.query, &[]).await.map_err(|e| error(e, WHAT))?;
    let types = match prepared.parameters() {
        Some(Either::Left(types)) => types.to_vec(),
        _ => Vec::new(),
    };
    check_count(types.len(), params.len())?;
    let mut args = sqlx::postgres::PgArguments::default();
    for (i, (v, ty)) in params.iter().zip(&types).enumerate() {
        let param = PgParam::new(v, ty).map_err(|m| param_error(i, &m))?;
        sqlx::Arguments::add(&mut args, param).map_err(|e| param_error(i, &e.to_string()))?;
    }
    let query = sqlx::query_with(&s.query, args);
    match s.result {
        ResultMode::None => {
            let done = (&mut *conn).execute(query).await.map_err(|e| error(e, WHAT))?;
            Ok(json!({ "rowsAffected": done.rows_affected() }))
        }
        mode => collect(mode, (&mut *conn).fetch(query), values::pg_row, WHAT).await,
    }
}

// ---------------------------------------------------------------------------------------
// MySQL / MariaDB

/// Which server a MySQL pool reaches (they name the statement time differently).
mod flavour {
    pub(super) const UNKNOWN: u8 = 0;
    pub(super) const MARIADB: u8 = 1;
    pub(super) const MYSQL: u8 = 2;
}

async fn mysql(
    pool: &sqlx::MySqlPool,
    flavour: &AtomicU8,
    work: &[Work<'_>],
    transaction: bool,
    timeout: Option<Duration>,
) -> Result<Vec<Value>, StepError> {
    const WHAT: &str = "MySQL";
    let mut lease = Lease::acquire(pool, WHAT, timeout).await?;
    // A session setting (MySQL has no transaction-scoped one), set back before the
    // connection returns to the pool; a lease that does not get there is closed instead.
    let variable = match timeout {
        Some(t) => Some(mysql_timeout(&mut lease.conn, flavour, t).await?),
        None => None,
    };
    let results = if transaction {
        match lease.conn.begin().await {
            Ok(mut tx) => match each!(work, true, |s, params| my_statement(&mut tx, s, params)) {
                Ok(results) => tx.commit().await.map(|()| results).map_err(|e| error(e, WHAT)),
                Err(e) => Err(e),
            },
            Err(e) => Err(error(e, WHAT)),
        }
    } else {
        each!(work, false, |s, params| my_statement(&mut lease.conn, s, params))
    };
    if let Some(variable) = variable {
        let reset = format!("SET SESSION {variable} = DEFAULT");
        if (&mut *lease.conn).execute(sqlx::raw_sql(&reset)).await.is_err() {
            return results;
        }
    }
    lease.finished = true;
    results
}

/// Sets the session's statement time to `t`; the variable's name.
async fn mysql_timeout(
    conn: &mut sqlx::MySqlConnection,
    flavour: &AtomicU8,
    t: Duration,
) -> Result<&'static str, StepError> {
    const WHAT: &str = "MySQL";
    if flavour.load(Ordering::Relaxed) == flavour::UNKNOWN {
        let row = (&mut *conn).fetch_one(sqlx::raw_sql("SELECT VERSION()")).await.map_err(|e| error(e, WHAT))?;
        let version: String = sqlx::Row::try_get(&row, 0).map_err(|e| error(e, WHAT))?;
        let f = if version.to_ascii_lowercase().contains("mariadb") { flavour::MARIADB } else { flavour::MYSQL };
        flavour.store(f, Ordering::Relaxed);
    }
    // MariaDB: seconds, any statement; MySQL: milliseconds, read-only SELECTs only.
    let (variable, value) = if flavour.load(Ordering::Relaxed) == flavour::MARIADB {
        ("max_statement_time", format!("{:.3}", t.as_secs_f64().max(0.001)))
    } else {
        ("max_execution_time", t.as_millis().max(1).to_string())
    };
    let set = format!("SET SESSION {variable} = {value}");
    (&mut *conn).execute(sqlx::raw_sql(&set)).await.map_err(|e| error(e, WHAT))?;
    Ok(variable)
}

async fn my_statement(conn: &mut sqlx::MySqlConnection, s: &Statement, params: &[Value]) -> Result<Value, StepError> {
    const WHAT: &str = "MySQL";
    let prepared = (&mut *conn).prepare(&s.query).await.map_err(|e| error(e, WHAT))?;
    if let Some(Either::Right(n)) = prepared.parameters() {
        check_count(n, params.len())?;
    }
    let mut args = sqlx::mysql::MySqlArguments::default();
    for (i, v) in params.iter().enumerate() {
        values::mysql_bind(&mut args, v).map_err(|e| param_error(i, &e.to_string()))?;
    }
    let query = sqlx::query_with(&s.query, args);
    match s.result {
        ResultMode::None => {
            let done = (&mut *conn).execute(query).await.map_err(|e| error(e, WHAT))?;
            Ok(json!({ "rowsAffected": done.rows_affected() }))
        }
        mode => collect(mode, (&mut *conn).fetch(query), values::mysql_row, WHAT).await,
    }
}

// ---------------------------------------------------------------------------------------
// SQLite

async fn sqlite(
    pool: &sqlx::SqlitePool,
    work: &[Work<'_>],
    transaction: bool,
    timeout: Option<Duration>,
) -> Result<Vec<Value>, StepError> {
    const WHAT: &str = "SQLite";
    let mut lease = Lease::acquire(pool, WHAT, timeout).await?;
    if let Some(t) = timeout {
        // SQLite has no statement timeout: a progress handler interrupts a statement (every
        // thousand virtual-machine steps it looks at the clock) once the time is up.
        let deadline = Instant::now() + t;
        let mut handle = lease.conn.lock_handle().await.map_err(|e| error(e, WHAT))?;
        handle.set_progress_handler(1000, move || Instant::now() < deadline);
    }
    let results = if transaction {
        match lease.conn.begin().await {
            Ok(mut tx) => match each!(work, true, |s, params| lite_statement(&mut tx, s, params)) {
                Ok(results) => tx.commit().await.map(|()| results).map_err(|e| error(e, WHAT)),
                Err(e) => Err(e),
            },
            Err(e) => Err(error(e, WHAT)),
        }
    } else {
        each!(work, false, |s, params| lite_statement(&mut lease.conn, s, params))
    };
    if timeout.is_some() {
        match lease.conn.lock_handle().await {
            Ok(mut handle) => handle.remove_progress_handler(),
            Err(_) => return results,
        }
    }
    lease.finished = true;
    results
}

async fn lite_statement(
    conn: &mut sqlx::SqliteConnection,
    s: &Statement,
    params: &[Value],
) -> Result<Value, StepError> {
    const WHAT: &str = "SQLite";
    let prepared = (&mut *conn).prepare(&s.query).await.map_err(|e| error(e, WHAT))?;
    if let Some(Either::Right(n)) = prepared.parameters() {
        check_count(n, params.len())?;
    }
    let mut args = sqlx::sqlite::SqliteArguments::default();
    for (i, v) in params.iter().enumerate() {
        values::sqlite_bind(&mut args, v).map_err(|e| param_error(i, &e.to_string()))?;
    }
    let query = sqlx::query_with(&s.query, args);
    match s.result {
        ResultMode::None => {
            let done = (&mut *conn).execute(query).await.map_err(|e| error(e, WHAT))?;
            Ok(json!({ "rowsAffected": done.rows_affected() }))
        }
        mode => collect(mode, (&mut *conn).fetch(query), values::sqlite_row, WHAT).await,
    }
}

// ---------------------------------------------------------------------------------------
// What the databases share

/// In a transaction, a statement's failure says which statement it was
/// (`details.statement`, from 0) and that all were rolled back.
fn in_transaction(mut e: StepError, i: usize, of: usize, transaction: bool) -> StepError {
    if transaction {
        e.message = format!("statement {} of {of} (rolled back): {}", i + 1, e.message);
        let mut details = match e.details.take() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        details.insert("statement".into(), Value::from(i));
        e.details = Some(Value::Object(details));
    }
    e
}

/// The rows of a `many` or `one` result, bounded.
async fn collect<R>(
    mode: ResultMode,
    mut rows: impl Stream<Item = Result<R, sqlx::Error>> + Unpin,
    to_json: fn(&R) -> Result<Map<String, Value>, StepError>,
    what: &str,
) -> Result<Value, StepError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.try_next().await.map_err(|e| error(e, what))? {
        if mode == ResultMode::One && !out.is_empty() {
            return Err(StepError::fatal("sql_many_rows", "the query returned more than one row (result: one)"));
        }
        let row = Value::Object(to_json(&row)?);
        bytes += values::json_size(&row);
        if out.len() == MAX_ROWS || bytes > MAX_BYTES {
            return Err(StepError::fatal(
                "sql_too_many_rows",
                format!(
                    "the query returned more than {MAX_ROWS} rows or {} MB: page through them (limit/offset, or a key)",
                    MAX_BYTES / (1024 * 1024)
                ),
            ));
        }
        out.push(row);
    }
    match mode {
        ResultMode::One => {
            out.pop().ok_or_else(|| StepError::fatal("sql_no_row", "the query returned no row (result: one)"))
        }
        _ => Ok(Value::Array(out)),
    }
}

fn check_count(placeholders: usize, given: usize) -> Result<(), StepError> {
    if placeholders == given {
        return Ok(());
    }
    Err(StepError::fatal(
        "sql_params",
        format!("the query has {placeholders} placeholder(s), `params` gives {given} value(s)"),
    ))
}

fn param_error(i: usize, message: &str) -> StepError {
    StepError::fatal("sql_params", format!("params[{i}]: {message}"))
}

/// A database's error as a step error: what another attempt may fix (the connection, a
/// deadlock, a serialization failure, a busy database) is `sql_unavailable` and retried;
/// a statement timeout is `sql_timeout`; anything else the database refused is `sql_error`.
/// `what` names the database (`PostgreSQL`). Messages never hold the URL.
pub(super) fn error(e: sqlx::Error, what: &str) -> StepError {
    use sqlx::Error as E;
    match e {
        E::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            let number = d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|m| m.number());
            let kind = match (what, number) {
                ("MySQL", Some(n)) => match n {
                    1213 | 1205 | 1040 | 1053 => "sql_unavailable",
                    1969 | 3024 => "sql_timeout",
                    _ if code.starts_with("08") => "sql_unavailable",
                    _ => "sql_error",
                },
                ("SQLite", _) => match code.parse::<u32>().map(|c| c & 0xff) {
                    Ok(5 | 6) => "sql_unavailable",
                    Ok(9) => "sql_timeout",
                    _ => "sql_error",
                },
                _ => match code.as_str() {
                    "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" => "sql_unavailable",
                    "57014" => "sql_timeout",
                    c if c.starts_with("08") || c.starts_with("53") => "sql_unavailable",
                    _ => "sql_error",
                },
            };
            let said = d.message().to_owned();
            let mut details = json!({ "code": code, "message": said });
            if let Some(n) = number {
                details["number"] = Value::from(n);
            }
            if let Some(c) = d.constraint() {
                details["constraint"] = Value::from(c);
            }
            let message = match kind {
                "sql_timeout" => format!("{what}: the statement took longer than the step's timeout ({said})"),
                _ if code.is_empty() => format!("{what}: {said}"),
                _ => format!("{what}: {said} ({code})"),
            };
            StepError {
                code: kind.into(),
                message,
                retryable: kind != "sql_error",
                retry_after: None,
                details: Some(details),
            }
        }
        E::PoolTimedOut => StepError::retryable(
            "sql_unavailable",
            format!(
                "{what}: no connection in time (the server refuses or does not answer, or the pool's connections are all busy)"
            ),
        ),
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolClosed | E::WorkerCrashed => {
            StepError::retryable("sql_unavailable", format!("{what}: {e}"))
        }
        E::Configuration(_) => StepError::fatal("sql_connection", format!("{what}: {e}")),
        E::Encode(_) => StepError::fatal("sql_params", format!("{what}: {e}")),
        other => StepError::fatal("sql_error", format!("{what}: {other}")),
    }
}
