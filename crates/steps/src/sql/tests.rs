//! The `sql` step against the real PostgreSQL (`FLOWGATE_TEST_POSTGRES_URL`) and MariaDB or
//! MySQL (`FLOWGATE_TEST_MYSQL_URL`) servers, and SQLite files: parameters, result modes,
//! types, transactions, timeouts, bounds, the outbound policy and the compile-time checks.
//! A test without its server says it is skipped, and fails instead when
//! `FLOWGATE_REQUIRE_SERVICES=1`. Each test uses tables of its own and drops them.

use crate::StepError;
use crate::connection::Credentials;
use crate::outbound::OutboundPolicy;
use crate::test_support::{Harness, Ran, TestConnections, compile_in};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A database under test: its kind, and a harness whose connection `db` reaches it.
struct Db {
    kind: &'static str,
    harness: Harness,
    /// A SQLite file to remove at the end.
    file: Option<std::path::PathBuf>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The URL in `var`; None (the test is skipped) when unset, a failure when services are
/// required (`FLOWGATE_REQUIRE_SERVICES=1`, as `.ci/run` sets).
fn service(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(url) => Some(url),
        None if std::env::var("FLOWGATE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("FLOWGATE_REQUIRE_SERVICES=1, but {var} is unset")
        }
        None => {
            eprintln!("skipped: {var} is unset");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn connections(kind: &str, url: &str) -> Arc<TestConnections> {
    let c = Credentials { version: 1, extras: json!({ "database": kind, "url": url }), ..Default::default() };
    Arc::new(TestConnections {
        credentials: [("db".to_owned(), c)].into_iter().collect(),
        refreshed: std::sync::Mutex::new(None),
        refusals: Default::default(),
    })
}

fn db(kind: &'static str, url: &str) -> Db {
    Db { kind, harness: Harness::new().connections(connections(kind, url)), file: None }
}

/// The URL with a fragment of its own (ignored when connecting), so the test gets a pool of
/// its own: each test has its own runtime, and a pool's connections belong to the runtime
/// that opened them.
fn own_pool(url: &str) -> String {
    format!("{url}#{}", unique("test"))
}

fn postgres() -> Option<Db> {
    service("FLOWGATE_TEST_POSTGRES_URL").map(|u| db("postgres", &own_pool(&u)))
}

fn mysql() -> Option<Db> {
    service("FLOWGATE_TEST_MYSQL_URL").map(|u| db("mysql", &own_pool(&u)))
}

fn sqlite() -> Db {
    let file = std::env::temp_dir().join(format!("{}.db", unique("flowgate_sql")));
    let mut db = db("sqlite", &format!("sqlite:{}", file.display()));
    db.file = Some(file);
    db
}

/// SQLite, and each server that is set.
fn every_database() -> Vec<Db> {
    [Some(sqlite()), postgres(), mysql()].into_iter().flatten().collect()
}

impl Db {
    /// `sql` with `$1`, `$2`… as this database writes placeholders.
    fn sql(&self, sql: &str) -> String {
        if self.kind == "postgres" {
            return sql.to_owned();
        }
        let mut out = String::with_capacity(sql.len());
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                out.push('?');
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Runs a `sql` step (`config`, its queries written with `$n`) on `input`.
    async fn run(&self, mut config: Value, input: Value) -> Result<Value, StepError> {
        let translate = |q: &mut Value| {
            if let Some(text) = q.as_str() {
                *q = Value::String(self.sql(text));
            }
        };
        if let Some(q) = config.get_mut("query") {
            translate(q);
        }
        for s in config.get_mut("statements").and_then(Value::as_array_mut).into_iter().flatten() {
            translate(&mut s["query"]);
        }
        config["connection"] = json!("db");
        let compiled = compile_in(json!([{ "id": "q", "sql": config }]), &[("db", self.kind)], &[]);
        assert!(compiled.diags.is_empty(), "{:#?}", compiled.diags);
        match self.harness.run(&compiled.steps[0], input).await.result? {
            Ran::Output(v) => Ok(v),
            other => panic!("a sql step outputs a value, got {other:?}"),
        }
    }

    /// Runs `query` (no parameters); panics when it fails.
    async fn exec(&self, query: &str) {
        self.run(json!({ "query": query, "result": "none" }), Value::Null)
            .await
            .unwrap_or_else(|e| panic!("{} on {}: {e:?}", query, self.kind));
    }

    /// A table named `prefix_…` with `columns` (SQL column definitions), dropped by
    /// [`Db::drop_table`].
    async fn table(&self, prefix: &str, columns: &str) -> String {
        let name = unique(prefix);
        self.exec(&format!("create table {name} ({columns})")).await;
        name
    }

    async fn drop_table(&self, name: &str) {
        self.exec(&format!("drop table {name}")).await;
    }
}

#[tokio::test]
async fn params_are_bound_never_spliced_into_the_sql() {
    for db in every_database() {
        let t = db.table("fg_params", "id integer primary key, name varchar(100)").await;
        let evil = format!("x'; drop table {t}; --");
        let out = db
            .run(
                json!({ "query": format!("insert into {t} (id, name) values ($1, $2)"), "params": ["{{ .id }}", "{{ .name }}"], "result": "none" }),
                json!({ "id": 7, "name": evil }),
            )
            .await
            .unwrap();
        assert_eq!(out, json!({ "rowsAffected": 1 }), "{}", db.kind);
        // A string for an integer placeholder: each database converts it.
        let row = db
            .run(
                json!({ "query": format!("select id, name from {t} where id = $1"), "params": ["7"], "result": "one" }),
                Value::Null,
            )
            .await
            .unwrap();
        assert_eq!(row, json!({ "id": 7, "name": evil }), "{}", db.kind);
        let by_name = db
            .run(json!({ "query": format!("select id from {t} where name = $1"), "params": [evil] }), Value::Null)
            .await
            .unwrap();
        assert_eq!(by_name, json!([{ "id": 7 }]), "{}: the table is still there, the text stored", db.kind);
        let wrong = db
            .run(
                json!({ "query": format!("select id from {t} where id = $1 and name = $2"), "params": [1] }),
                Value::Null,
            )
            .await
            .unwrap_err();
        assert_eq!(wrong.code, "sql_params", "{}: {wrong:?}", db.kind);
        db.drop_table(&t).await;
    }
}

#[tokio::test]
async fn every_result_mode() {
    for db in every_database() {
        let t = db.table("fg_modes", "id integer primary key, n integer").await;
        let inserted = db
            .run(
                json!({ "query": format!("insert into {t} (id, n) values (1, 10), (2, 20), (3, 20)"), "result": "none" }),
                Value::Null,
            )
            .await
            .unwrap();
        assert_eq!(inserted, json!({ "rowsAffected": 3 }), "{}", db.kind);
        let many = db.run(json!({ "query": format!("select id, n from {t} order by id") }), Value::Null).await.unwrap();
        assert_eq!(many, json!([{ "id": 1, "n": 10 }, { "id": 2, "n": 20 }, { "id": 3, "n": 20 }]), "{}", db.kind);
        let none = db.run(json!({ "query": format!("select id from {t} where n > 100") }), Value::Null).await.unwrap();
        assert_eq!(none, json!([]), "{}", db.kind);
        let one = db
            .run(
                json!({ "query": format!("select n from {t} where id = $1"), "params": [2], "result": "one" }),
                Value::Null,
            )
            .await
            .unwrap();
        assert_eq!(one, json!({ "n": 20 }), "{}", db.kind);
        let missing = db
            .run(
                json!({ "query": format!("select n from {t} where id = $1"), "params": [9], "result": "one" }),
                Value::Null,
            )
            .await
            .unwrap_err();
        assert_eq!((missing.code.as_str(), missing.retryable), ("sql_no_row", false), "{}", db.kind);
        let two = db
            .run(
                json!({ "query": format!("select id from {t} where n = $1"), "params": [20], "result": "one" }),
                Value::Null,
            )
            .await
            .unwrap_err();
        assert_eq!(two.code, "sql_many_rows", "{}", db.kind);
        let updated = db
            .run(
                json!({ "query": format!("update {t} set n = n + 1 where n = $1"), "params": [20], "result": "none" }),
                Value::Null,
            )
            .await
            .unwrap();
        assert_eq!(updated, json!({ "rowsAffected": 2 }), "{}", db.kind);
        db.drop_table(&t).await;
    }
}

#[tokio::test]
async fn a_transaction_commits_all_or_rolls_back_all() {
    for db in every_database() {
        let t = db.table("fg_tx", "id integer primary key, name varchar(20)").await;
        let insert = format!("insert into {t} (id, name) values ($1, $2)");
        let done = db
            .run(
                json!({ "result": "none", "statements": [
                    { "query": insert, "params": [1, "a"] },
                    { "query": insert, "params": [2, "{{ .name }}"] },
                    { "query": format!("select count(*) as n from {t}"), "result": "one" },
                ] }),
                json!({ "name": "b" }),
            )
            .await
            .unwrap();
        assert_eq!(done, json!([{ "rowsAffected": 1 }, { "rowsAffected": 1 }, { "n": 2 }]), "{}", db.kind);
        // The second statement breaks the primary key: the first is rolled back with it.
        let err = db
            .run(
                json!({ "result": "none", "statements": [
                    { "query": insert, "params": [3, "c"] },
                    { "query": insert, "params": [1, "again"] },
                ] }),
                Value::Null,
            )
            .await
            .unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("sql_error", false), "{}: {err:?}", db.kind);
        let details = err.details.as_ref().unwrap();
        assert_eq!(details["statement"], 1, "{}: {err:?}", db.kind);
        assert!(details["code"].as_str().is_some_and(|c| !c.is_empty()), "{}: the database's code: {err:?}", db.kind);
        assert!(err.message.contains("statement 2 of 2 (rolled back)"), "{}: {}", db.kind, err.message);
        let ids = db.run(json!({ "query": format!("select id from {t} order by id") }), Value::Null).await.unwrap();
        assert_eq!(ids, json!([{ "id": 1 }, { "id": 2 }]), "{}: nothing of the failed transaction stays", db.kind);
        db.drop_table(&t).await;
    }
}

#[tokio::test]
async fn postgres_types_map_to_json() {
    let Some(db) = postgres() else { return };
    let mood = unique("fg_mood");
    db.exec(&format!("create type {mood} as enum ('happy', 'sad')")).await;
    let t = db
        .table(
            "fg_pg_types",
            &format!(
                "i int4, b8 int8, s int2, num numeric(40,10), f8 float8, f4 float4, ok bool, txt text, bin bytea,
                 ts timestamp, tz timestamptz, d date, tm time, j json, jb jsonb, u uuid, arr int4[], tags text[],
                 m {mood}, iv interval, ip inet"
            ),
        )
        .await;
    let params = json!([
        2147483647, "9007199254740993", 7, "12345678901234567890.0123456789", 0.1, 1.1, "true", "é ✓",
        "AAEC/w==", "2024-02-29T10:20:30.5", "2024-02-29T10:20:30.123456+02:00", "2024-02-29", "23:59:59",
        { "a": [1, 2] }, { "b": { "c": null } }, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", [1, null, 3], ["x", "y"],
        "sad"
    ]);
    let insert = format!(
        "insert into {t} values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
         interval '1 year 2 months 3 days 04:05:06.5', '10.1.2.3')"
    );
    db.run(json!({ "query": insert, "params": params, "result": "none" }), Value::Null).await.unwrap();
    let row = db.run(json!({ "query": format!("select * from {t}"), "result": "one" }), Value::Null).await.unwrap();
    assert_eq!(
        row,
        json!({
            "i": 2147483647, "b8": 9007199254740993_i64, "s": 7, "num": "12345678901234567890.0123456789",
            "f8": 0.1, "f4": 1.1, "ok": true, "txt": "é ✓", "bin": "AAEC/w==",
            "ts": "2024-02-29T10:20:30.5", "tz": "2024-02-29T08:20:30.123456Z", "d": "2024-02-29", "tm": "23:59:59",
            "j": { "a": [1, 2] }, "jb": { "b": { "c": null } }, "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "arr": [1, null, 3], "tags": ["x", "y"], "m": "sad", "iv": "P1Y2M3DT4H5M6.5S", "ip": "10.1.2.3",
        })
    );
    // NULLs, numerics' scale, computed columns, and what cannot be read said plainly.
    let more = db
        .run(
            json!({ "query": "select null::int as n, 1.50::numeric(5,2) as price, -0.001::numeric as tiny, 'NaN'::float8 as nan, \
                              $1::numeric * 2 as twice, 'infinity'::timestamptz as forever",
                    "params": [0.25], "result": "one" }),
            Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(
        more,
        json!({ "n": null, "price": "1.50", "tiny": "-0.001", "nan": "NaN", "twice": "0.50", "forever": "infinity" })
    );
    let err = db.run(json!({ "query": "select point(1, 2) as p" }), Value::Null).await.unwrap_err();
    assert_eq!(err.code, "sql_unsupported_type", "{err:?}");
    assert!(err.message.contains("`p`") && err.message.contains("::text"), "{}", err.message);
    let err = db
        .run(json!({ "query": format!("select * from {t} where i = $1"), "params": ["seven"] }), Value::Null)
        .await
        .unwrap_err();
    assert_eq!(err.code, "sql_params");
    assert!(err.message.contains("params[0]") && err.message.contains("integer"), "{}", err.message);
    db.drop_table(&t).await;
    db.exec(&format!("drop type {mood}")).await;
}

#[tokio::test]
async fn mysql_types_map_to_json() {
    let Some(db) = mysql() else { return };
    let t = db
        .table(
            "fg_my_types",
            "i int, b8 bigint, u bigint unsigned, num decimal(30,10), f8 double, f4 float, ok boolean, txt varchar(50),
             bin blob, dt datetime(6), ts timestamp(3) null, d date, tm time, j json, e enum('a','b'), y year,
             bt varchar(20) character set utf8mb4 collate utf8mb4_bin",
        )
        .await;
    db.run(
        json!({ "query": format!("insert into {t} values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"),
                "params": [-5, "9007199254740993", 18446744073709551615_u64, "12345678901234567890.0123456789", 0.1, 1.1, true,
                           "é ✓", "\u{1}\u{2}", "2024-02-29 10:20:30.5", "2024-02-29 08:20:30.123", "2024-02-29", "23:59:59",
                           { "a": [1, 2] }, "b", 2024, "Zürich"],
                "result": "none" }),
        Value::Null,
    )
    .await
    .unwrap();
    let row = db.run(json!({ "query": format!("select * from {t}"), "result": "one" }), Value::Null).await.unwrap();
    // MariaDB's JSON is LONGTEXT: it comes back as text (MySQL's own JSON type as JSON). The
    // protocol marks it, and `utf8mb4_bin` text, as binary: printable UTF-8 is read as text.
    let j = match &row["j"] {
        Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or_else(|e| panic!("{e}: {row}")),
        other => other.clone(),
    };
    assert_eq!(j, json!({ "a": [1, 2] }));
    let mut row = row;
    row.as_object_mut().unwrap().remove("j");
    assert_eq!(
        row,
        json!({
            "i": -5, "b8": 9007199254740993_i64, "u": 18446744073709551615_u64, "num": "12345678901234567890.0123456789",
            "f8": 0.1, "f4": 1.1, "ok": true, "txt": "é ✓", "bin": "AQI=", "dt": "2024-02-29T10:20:30.5",
            "ts": "2024-02-29T08:20:30.123Z", "d": "2024-02-29", "tm": "23:59:59", "e": "b", "y": 2024,
            "bt": "Zürich",
        })
    );
    db.drop_table(&t).await;
}

#[tokio::test]
async fn sqlite_values_come_as_stored() {
    let db = sqlite();
    let t = db.table("fg_lite_types", "i integer, r real, t text, b blob, ok boolean, n text").await;
    db.run(
        json!({ "query": format!("insert into {t} values ($1, $2, $3, $4, $5, $6)"),
                "params": [9007199254740993_i64, 0.5, "é ✓", null, true, null], "result": "none" }),
        Value::Null,
    )
    .await
    .unwrap();
    db.exec(&format!("update {t} set b = x'0102'")).await;
    let row = db.run(json!({ "query": format!("select * from {t}"), "result": "one" }), Value::Null).await.unwrap();
    assert_eq!(row, json!({ "i": 9007199254740993_i64, "r": 0.5, "t": "é ✓", "b": "AQI=", "ok": true, "n": null }));
    db.drop_table(&t).await;
}

#[tokio::test]
async fn a_statement_over_its_timeout_fails_quickly() {
    if let Some(db) = postgres() {
        let started = Instant::now();
        let err = db.run(json!({ "query": "select pg_sleep(5)", "timeout": "200ms" }), Value::Null).await.unwrap_err();
        assert_eq!(err.code, "sql_timeout", "{err:?}");
        assert!(err.retryable);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(err.details.as_ref().unwrap()["code"], "57014");
        // The setting lived in the statement's transaction only: the next statement on the
        // pool's connections has no timeout.
        let slow = db.run(json!({ "query": "select pg_sleep(0.3) is null as slept" }), Value::Null).await.unwrap();
        assert_eq!(slow, json!([{ "slept": false }]));
    }
    if let Some(db) = mysql() {
        let started = Instant::now();
        let err = db
            .run(json!({ "query": "select count(*) as n from information_schema.columns a, information_schema.columns b, information_schema.columns c", "timeout": "200ms" }), Value::Null)
            .await
            .unwrap_err();
        assert_eq!(err.code, "sql_timeout", "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        // Set back on the connection afterwards.
        let quick = db.run(json!({ "query": "select @@session.max_statement_time + 0 as t" }), Value::Null).await;
        if let Ok(v) = quick {
            assert_eq!(v[0]["t"].as_f64(), Some(0.0), "{v}");
        }
    }
    let db = sqlite();
    let started = Instant::now();
    let err = db
        .run(
            json!({ "query": "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c", "timeout": "200ms" }),
            Value::Null,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "sql_timeout", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let fine = db.run(json!({ "query": "select 1 as one" }), Value::Null).await.unwrap();
    assert_eq!(fine, json!([{ "one": 1 }]));
}

#[tokio::test]
async fn a_deadlock_is_retryable() {
    for db in [postgres(), mysql()].into_iter().flatten() {
        let t = db.table("fg_lock", "id integer primary key, n integer").await;
        db.exec(&format!("insert into {t} (id, n) values (1, 0), (2, 0)")).await;
        let sleep = if db.kind == "postgres" { "select pg_sleep(0.5)" } else { "select sleep(0.5)" };
        let update = format!("update {t} set n = n + 1 where id = $1");
        // Two transactions take the same rows in opposite orders: the database breaks the
        // deadlock by failing one of them, which another attempt would get through.
        let crossed = |first: i64, second: i64| {
            json!({ "result": "none", "statements": [
                { "query": update, "params": [first] },
                { "query": sleep, "result": "many" },
                { "query": update, "params": [second] },
            ] })
        };
        let (a, b) = tokio::join!(db.run(crossed(1, 2), Value::Null), db.run(crossed(2, 1), Value::Null));
        let failed: Vec<StepError> = [a, b].into_iter().filter_map(Result::err).collect();
        assert_eq!(failed.len(), 1, "{}: {failed:?}", db.kind);
        assert_eq!(
            (failed[0].code.as_str(), failed[0].retryable),
            ("sql_unavailable", true),
            "{}: {failed:?}",
            db.kind
        );
        db.drop_table(&t).await;
    }
}

#[tokio::test]
async fn results_are_bounded() {
    let db = sqlite();
    let err = db
        .run(
            json!({ "query": "with recursive c(x) as (select 1 union all select x + 1 from c where x < 10001) select x from c" }),
            Value::Null,
        )
        .await
        .unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("sql_too_many_rows", false), "{err:?}");
    let ok = db
        .run(
            json!({ "query": "with recursive c(x) as (select 1 union all select x + 1 from c where x < 10000) select x from c" }),
            Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(ok.as_array().unwrap().len(), 10_000);
    let err = db
        .run(
            json!({ "query": "with recursive c(x) as (select 1 union all select x + 1 from c where x < 100) select x, zeroblob(300000) from c" }),
            Value::Null,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "sql_too_many_rows", "16 MB: {err:?}");
}

#[tokio::test]
async fn the_outbound_policy_applies_to_database_hosts() {
    let strict = OutboundPolicy { deny_private: true, allow: Vec::new() };
    for url in ["postgres://u:pw@127.0.0.1:5432/x", "mysql://root@localhost:3306/x", "postgresql://u@[::1]/x"] {
        let kind = if url.starts_with("mysql") { "mysql" } else { "postgres" };
        let db = Db {
            kind,
            harness: Harness::new().outbound(strict.clone()).connections(connections(kind, url)),
            file: None,
        };
        let err = db.run(json!({ "query": "select 1" }), Value::Null).await.unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("sql_refused", false), "{url}: {err:?}");
        assert!(!err.message.contains("pw"), "{}", err.message);
    }
    // Allowed by name or network, it is reached (and here, nothing listens: retried, after
    // trying until the step's timeout).
    let allowed = OutboundPolicy { deny_private: true, allow: vec!["127.0.0.0/8".into()] };
    let db = Db {
        kind: "postgres",
        harness: Harness::new().outbound(allowed).connections(connections("postgres", "postgres://u:pw@127.0.0.1:1/x")),
        file: None,
    };
    let err = db.run(json!({ "query": "select 1", "timeout": "300ms" }), Value::Null).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("sql_unavailable", true), "{err:?}");
    assert!(!err.message.contains("pw"), "{}", err.message);
}

#[tokio::test]
async fn urls_cannot_reach_files_or_the_servers_environment() {
    for (url, said) in [
        ("postgres://u@127.0.0.1/x?sslkey=/etc/shadow", "unsupported URL parameter `sslkey`"),
        ("postgres://u@127.0.0.1/x?host=/var/run/postgresql", "unsupported URL parameter `host`"),
        ("postgres://u@127.0.0.1/x?sslmode=require", "TLS"),
        ("postgres:///x", "names no host"),
    ] {
        let db = db("postgres", url);
        let err = db.run(json!({ "query": "select 1" }), Value::Null).await.unwrap_err();
        assert_eq!(err.code, "sql_connection", "{url}: {err:?}");
        assert!(err.message.contains(said), "{url}: {}", err.message);
    }
}

#[test]
fn side_effects_follow_the_statement() {
    let side_effects = |config: Value| {
        let compiled = compile_in(json!([{ "id": "q", "sql": config }]), &[("db", "postgres")], &["db"]);
        assert!(compiled.diags.is_empty(), "{:#?}", compiled.diags);
        compiled.steps[0].body.side_effects()
    };
    assert!(!side_effects(json!({ "query": "select 1" })));
    assert!(!side_effects(json!({ "query": "  -- the list\n SELECT * FROM t", "result": "one" })));
    assert!(side_effects(json!({ "query": "select 1", "result": "none" })));
    assert!(side_effects(json!({ "query": "delete from t returning id" })));
    assert!(side_effects(json!({ "query": "with d as (delete from t returning id) select * from d" })));
    assert!(side_effects(json!({ "statements": [{ "query": "select 1" }] })));
}

#[test]
fn problems_are_located() {
    const CONNECTIONS: &[(&str, &str)] = &[("db", "postgres"), ("lite", "sqlite"), ("erp", "dynamics365")];
    let problems = |config: Value, flow: &[&str]| -> Vec<(String, String)> {
        compile_in(json!([{ "id": "q", "sql": config }]), CONNECTIONS, flow)
            .diags
            .into_iter()
            .map(|d| (d.path, d.message))
            .collect()
    };
    let at = |p: &[(String, String)], path: &str, text: &str| p.iter().any(|(x, m)| x == path && m.contains(text));
    let p = problems(json!({ "query": "select * from t where id = {{ .id }}" }), &["db"]);
    assert!(at(&p, "steps[0].sql.query", "use params"), "{p:?}");
    let p = problems(json!({ "query": "select $1", "params": "{{ .ids }}" }), &["db"]);
    assert!(at(&p, "steps[0].sql.params", "must be a list"), "{p:?}");
    let p = problems(json!({ "query": "select 1", "statements": [{ "query": "select 2" }] }), &["db"]);
    assert!(at(&p, "steps[0].sql.statements", "not both"), "{p:?}");
    let p = problems(json!({ "result": "none" }), &["db"]);
    assert!(at(&p, "steps[0].sql", "needs a `query`"), "{p:?}");
    let p = problems(
        json!({ "statements": [{ "query": "select 1" }, { "query": "delete from t where id = '{{ .id }}'", "params": {} }] }),
        &["db"],
    );
    assert!(at(&p, "steps[0].sql.statements[1].query", "use params"), "{p:?}");
    let p = problems(json!({ "statements": [{ "query": "select 1", "params": { "a": 1 } }] }), &["db"]);
    assert!(at(&p, "steps[0].sql.statements[0].params", "must be a list"), "{p:?}");
    let p = problems(json!({ "query": "select $1", "params": ["{{ .a | }}"] }), &["db"]);
    assert!(at(&p, "steps[0].sql.params[0]", "does not compile"), "{p:?}");
    let p = problems(json!({ "query": "select 1", "reslt": "one" }), &["db"]);
    assert!(at(&p, "steps[0].sql.reslt", "did you mean `result`"), "{p:?}");
    // No connection of a sql kind on the flow, or one of another kind named.
    let p = problems(json!({ "query": "select 1" }), &["erp"]);
    assert!(at(&p, "steps[0].sql", "no `postgres` or `mysql` or `sqlite` connection"), "{p:?}");
    let p = problems(json!({ "query": "select 1", "connection": "erp" }), &[]);
    assert!(at(&p, "steps[0].sql.connection", "`dynamics365` connection"), "{p:?}");
    // A SQLite connection opens its own file only.
    let p = problems(json!({ "query": "attach database '/etc/x.db' as x", "connection": "lite" }), &[]);
    assert!(at(&p, "steps[0].sql.query", "`ATTACH` is refused"), "{p:?}");
    let p = problems(json!({ "query": "VACUUM INTO '/tmp/copy.db'", "connection": "lite" }), &[]);
    assert!(at(&p, "steps[0].sql.query", "`VACUUM` is refused"), "{p:?}");
    assert!(
        problems(json!({ "query": "select 'attach' as \"vacuum\" from attachments", "connection": "lite" }), &[])
            .is_empty()
    );
}
