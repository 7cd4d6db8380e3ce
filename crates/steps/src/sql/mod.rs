//! `sql`: parameterised statements against PostgreSQL, MySQL/MariaDB or SQLite through a
//! `postgres`, `mysql` or `sqlite` connection (the connection's URL is a credential: handed
//! at run time, redacted from what executions record).
//!
//! ```yaml
//! - id: rows
//!   sql: { connection: db, query: "select id, name from customers where id > $1", params: ["{{ .lastId }}"] }
//! - id: book
//!   sql:
//!     connection: db
//!     result: none
//!     statements:                       # one transaction: all or nothing
//!       - { query: "update stock set qty = qty - $1 where sku = $2", params: ["{{ .qty }}", "{{ .sku }}"] }
//!       - { query: "insert into moves (sku, qty) values ($1, $2)", params: ["{{ .sku }}", "{{ .qty }}"] }
//!       - { query: "select qty from stock where sku = $1", params: ["{{ .sku }}"], result: one }
//! ```
//!
//! Queries are parameterised only: `query` is SQL written in the document, never built from
//! data (a `{{` in it is refused: values go in `params`), with each database's own
//! placeholders — `$1`, `$2`… on PostgreSQL, `?` on MySQL/MariaDB and SQLite (SQLite also
//! takes `?1`, `$1`). `params` is a list of values, templates allowed; on PostgreSQL each
//! value is converted to the type the server infers for its placeholder (a string `"42"`
//! for an `int4`, `"2024-05-01T10:00:00Z"` for a `timestamptz`; a `bytea` takes base64; a
//! `json`/`jsonb` the value as JSON; a list an array), so casts are rarely needed.
//!
//! `result`: `many` (default; the rows, a list of objects: column name → value), `one` (the
//! single row; `sql_no_row` when there is none, `sql_many_rows` when there are more) or
//! `none` (`{"rowsAffected": n}`). With `statements` (a list of `{query, params, result}`,
//! instead of `query`), they run in one transaction — one failing rolls them all back — and
//! the output is the list of their results, each in its own `result` mode (default: the
//! step's). `many` refuses more than 10,000 rows or 16 MB of them (`sql_too_many_rows`: page
//! with `limit`/`offset` in the query).
//!
//! Values: integers as numbers; `float`/`double` as numbers (NaN and infinities as strings);
//! `numeric`/`decimal` as strings, exactly (a JSON number would lose digits); booleans;
//! text; bytes as base64; `timestamptz` and MySQL `timestamp` as RFC 3339 in UTC
//! (`2024-05-01T10:00:00.5Z`), `timestamp`/`datetime` without a zone as the same without an
//! offset, `date` as `2024-05-01`, `time` as `10:00:00`; `json`/`jsonb` as JSON; `uuid`
//! as text; PostgreSQL arrays as lists, enums as text; NULL as null. SQLite columns come as
//! their values are stored (a `BOOLEAN` column's 0/1 as booleans). A type without a mapping
//! fails with `sql_unsupported_type`: cast it in the query (`col::text`).
//!
//! `timeout` bounds the attempt (default 30s) and, when set, each statement on the server:
//! `SET LOCAL statement_timeout` on PostgreSQL (the statement runs in a transaction),
//! `max_statement_time` on MariaDB (`max_execution_time` on MySQL, which bounds `SELECT`s
//! only), an interrupt on SQLite; a statement over it fails with `sql_timeout`.
//!
//! Connections are pooled per database URL on each node (at most 4 per database, closed
//! after 5 minutes idle) and shared by every execution. The database's host must pass the
//! server's outbound policy, like an HTTP step's URL (`sql_refused`). A SQLite connection
//! opens its one file: `ATTACH`, `DETACH` and `VACUUM` are refused in its queries. A
//! connection test ([`probe`]) runs `SELECT 1` on a connection of its own.
//!
//! Failures: a connection that fails, a deadlock or a serialization failure is
//! `sql_unavailable` (retried); a constraint violation, a syntax error or any other error
//! of the database is `sql_error` (not retried), the database's code (SQLSTATE, or MySQL's
//! number) and message in `details`. The step has side effects (the engine journals before
//! it runs, and a resume does not repeat a finished one) unless it is one `query` that
//! starts with `select`, `show`, `values` or `table` and `result` is `many` or `one` (a
//! `with` may hide a write, an `explain analyze` runs its statement: both count as writes).

mod pool;
mod run;
#[cfg(test)]
mod tests;
mod values;

use crate::connection::Credentials;
use crate::outbound::OutboundPolicy;
use crate::{StepError, util};
use flowgate_model::{Diags, Dur, Path};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use sqlx::{ConnectOptions as _, Connection as _, Executor as _};
use std::time::Duration;

/// Rows a `many` result holds at most.
pub const MAX_ROWS: usize = 10_000;
/// Bytes (of their JSON) a `many` result's rows hold at most.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// The connection kinds a `sql` step uses.
const KINDS: &[&str] = &["postgres", "mysql", "sqlite"];

/// What a statement's result is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResultMode {
    /// Every row, a list of objects (column name → value). The default.
    #[default]
    Many,
    /// Exactly one row, an object; none or more is an error.
    One,
    /// `{"rowsAffected": n}`.
    None,
}

/// One statement of a transaction.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct SqlStatement {
    /// The SQL, with placeholders (`$1` on PostgreSQL, `?` on MySQL and SQLite); no templates.
    pub query: String,
    /// One value per placeholder, in order; templates allowed.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Value>>")]
    pub params: Option<Value>,
    /// This statement's result. Default: the step's `result`.
    #[serde(default)]
    pub result: Option<ResultMode>,
}

/// A `sql` step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct SqlConfig {
    /// The `postgres`, `mysql` or `sqlite` connection (default: the flow's).
    #[serde(default)]
    pub connection: Option<String>,
    /// The SQL, with placeholders (`$1` on PostgreSQL, `?` on MySQL and SQLite); no templates.
    #[serde(default)]
    pub query: Option<String>,
    /// One value per placeholder, in order; templates allowed (`"{{ .lastId }}"`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<Value>>")]
    pub params: Option<Value>,
    /// `many` (default: the rows), `one` (the single row) or `none` (`{rowsAffected}`).
    #[serde(default)]
    pub result: ResultMode,
    /// Statements run in one transaction, instead of `query`; the output is the list of
    /// their results.
    #[serde(default)]
    pub statements: Option<Vec<SqlStatement>>,
    /// Longest one attempt may take, and each statement on the server. Default 30s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// A rate limit of the integration (`limits:`) each attempt takes a token from.
    #[serde(default)]
    pub limit: Option<String>,
}

impl crate::Kind for SqlConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, cx: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn crate::Step>> {
        let connection = cx.connection_for(KINDS, self.connection.as_deref(), path, diags);
        let kind = connection.as_deref().and_then(|n| cx.connections.iter().find(|(c, _)| *c == n)).map(|(_, k)| *k);
        // (query, params, result, where it sits) for each statement.
        let mut written: Vec<(&str, Option<&Value>, ResultMode, Path)> = Vec::new();
        let mut bad = false;
        match (&self.query, &self.statements) {
            (Some(_), Some(_)) => {
                diags.error(&path.key("statements"), "set `query` or `statements`, not both");
                bad = true;
            }
            (None, None) => {
                diags.error(path, "needs a `query` (or `statements`, run in one transaction)");
                bad = true;
            }
            (Some(q), None) => written.push((q, self.params.as_ref(), self.result, path.clone())),
            (None, Some(list)) => {
                if list.is_empty() {
                    diags.error(&path.key("statements"), "needs at least one statement");
                    bad = true;
                }
                if self.params.is_some() {
                    diags.error(&path.key("params"), "`params` goes with `query`; each statement has its own");
                    bad = true;
                }
                for (i, s) in list.iter().enumerate() {
                    let at = path.key("statements").index(i);
                    written.push((&s.query, s.params.as_ref(), s.result.unwrap_or(self.result), at));
                }
            }
        }
        let mut statements = Vec::with_capacity(written.len());
        for (query, params, result, at) in written {
            let ok = check_query(query, kind, &at.key("query"), diags);
            let params = match params {
                None => Value::Array(Vec::new()),
                Some(Value::Array(list)) => Value::Array(list.clone()),
                Some(_) => {
                    diags.error(&at.key("params"), "`params` must be a list (one value per placeholder, in order)");
                    bad = true;
                    continue;
                }
            };
            match (ok, util::template(&params, &at.key("params"), diags)) {
                (true, Some(params)) => statements.push(run::Statement { query: query.to_owned(), params, result }),
                _ => bad = true,
            }
        }
        let transaction = self.statements.is_some();
        let side_effects = transaction
            || self.result == ResultMode::None
            || !self
                .query
                .as_deref()
                .and_then(first_keyword)
                .is_some_and(|k| ["select", "show", "values", "table"].iter().any(|r| k.eq_ignore_ascii_case(r)));
        let connection = connection?;
        if bad {
            return None;
        }
        Some(Box::new(run::Sql {
            connection,
            statements,
            transaction,
            statement_timeout: self.timeout.map(|d| d.0),
            side_effects,
        }))
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout.map(|d| d.0)
    }

    fn limit(&self) -> Option<&String> {
        self.limit.as_ref()
    }
}

/// Checks that the database of a `postgres`, `mysql` or `sqlite` connection's credentials
/// answers (a connection test): its URL read and its host checked against `policy` as a
/// step's are (the pool of that URL is the one steps use), then `SELECT 1` on a new
/// connection — not a pooled one, which could be a stale one that hides a database now
/// down, or an open one that hides refused credentials — closed again. Takes at most
/// `within` (and at most 10s). A SQLite file is created when missing, as a step would.
///
/// # Errors
/// A step's: `sql_refused` (the policy), `sql_connection` (a URL that cannot be used),
/// `sql_unavailable` (the database cannot be reached or does not answer in time),
/// `sql_error` (it refused, e.g. the credentials); never with the URL.
pub async fn probe(credentials: &Credentials, policy: &OutboundPolicy, within: Duration) -> Result<(), StepError> {
    let database = credentials.extras["database"].as_str().unwrap_or_default();
    let url = credentials.extras["url"].as_str().unwrap_or_default();
    let db = pool::pool(database, url, policy).await?;
    // A macro, not a generic function: a future generic over the connection's `Executor`
    // is not `Send` for every lifetime (see `run::each!`).
    macro_rules! select_one {
        ($pool:expr, $what:expr) => {
            async {
                let mut conn = $pool.connect_options().connect().await.map_err(|e| run::error(e, $what))?;
                let ran = conn.execute(sqlx::raw_sql("SELECT 1")).await.map(|_| ()).map_err(|e| run::error(e, $what));
                let _ = conn.close().await;
                ran
            }
        };
    }
    let what = match &db {
        pool::Db::Postgres(_) => "PostgreSQL",
        pool::Db::Mysql(..) => "MySQL",
        pool::Db::Sqlite(_) => "SQLite",
    };
    let checked = async {
        match &db {
            pool::Db::Postgres(p) => select_one!(p, what).await,
            pool::Db::Mysql(p, _) => select_one!(p, what).await,
            pool::Db::Sqlite(p) => select_one!(p, what).await,
        }
    };
    match tokio::time::timeout(within.min(pool::ACQUIRE_TIMEOUT), checked).await {
        Ok(answered) => answered,
        Err(_) => Err(StepError::retryable("sql_unavailable", format!("{what}: the database did not answer in time"))),
    }
}

/// Records the problems of a statement's SQL (found at `at`): empty, a template (SQL is never
/// built from data), or on SQLite a statement that opens other files. True when it is fine.
fn check_query(query: &str, kind: Option<&str>, at: &Path, diags: &mut Diags) -> bool {
    if query.trim().is_empty() {
        diags.error(at, "the query is empty");
        return false;
    }
    if query.contains("{{") {
        diags.error(
            at,
            "templates are not allowed in a query (SQL is never built from data): use params, with \
             placeholders ($1, $2… on PostgreSQL; ? on MySQL and SQLite)",
        );
        return false;
    }
    if kind == Some("sqlite")
        && let Some(word) =
            words(query).find(|w| ["attach", "detach", "vacuum"].iter().any(|f| w.eq_ignore_ascii_case(f)))
    {
        diags.error(
            at,
            format!("`{}` is refused on a sqlite connection: it would open other files", word.to_ascii_uppercase()),
        );
        return false;
    }
    true
}

/// The first keyword of `sql` (after comments), if any.
fn first_keyword(sql: &str) -> Option<&str> {
    words(sql).next()
}

/// The bare words of `sql` (keywords and names), outside string literals, quoted names and
/// comments.
fn words(sql: &str) -> impl Iterator<Item = &str> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let b = bytes[i];
            let closing = match b {
                b'\'' => Some(b'\''),
                b'"' => Some(b'"'),
                b'`' => Some(b'`'),
                b'[' => Some(b']'),
                _ => None,
            };
            if let Some(end) = closing {
                i += 1;
                while i < bytes.len() && bytes[i] != end {
                    i += 1;
                }
                i += 1;
            } else if bytes[i..].starts_with(b"--") {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            } else if bytes[i..].starts_with(b"/*") {
                i += 2;
                while i < bytes.len() && !bytes[i..].starts_with(b"*/") {
                    i += 1;
                }
                i += 2;
            } else if b.is_ascii_alphabetic() || b == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$') {
                    i += 1;
                }
                return Some(&sql[start..i]);
            } else if b.is_ascii_digit() || b == b'$' || b == b'?' || b == b':' || b == b'@' {
                // A number or a placeholder: skip it whole, so `$1abc` is no word.
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        None
    })
}
