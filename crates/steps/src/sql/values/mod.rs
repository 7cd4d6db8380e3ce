//! Values between JSON and the databases: rows as JSON objects (column name → value), and
//! `params` bound as each database takes them. PostgreSQL's values are read and written in
//! its binary format here, by the type the server gives (a parameter's inferred type, a
//! column's type), so no value loses digits and a parameter needs no cast for its column.

use crate::StepError;
use base64::Engine as _;
use serde_json::{Map, Number, Value};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow, MySqlValueRef};
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{Arguments, Column, Decode, Row, TypeInfo, ValueRef};
use std::fmt::Write as _;

/// PostgreSQL's built-in types the step maps (`pg_type.oid`).
mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const VOID: u32 = 2278;
}

/// Days from 4713 BC (the Julian day number) to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_JULIAN_DAY: i32 = 2_451_545;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn unsupported(column: &str, ty: &str) -> StepError {
    StepError::fatal(
        "sql_unsupported_type",
        format!(
            "column `{column}` is of type {ty}, which the step cannot read: cast it in the query (e.g. `{column}::text`)"
        ),
    )
}

fn bad_value(column: &str, ty: &str, why: impl std::fmt::Display) -> StepError {
    StepError::fatal("sql_error", format!("column `{column}` ({ty}): cannot read its value: {why}"))
}

/// A float as JSON: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"` (JSON has none).
fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// A `real`/`float4` as the decimal it was written as (`1.1`, not `1.100000023841858`).
fn float4(f: f32) -> Value {
    if f.is_finite() { f.to_string().parse::<f64>().map_or(Value::Null, float) } else { float(f64::from(f)) }
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

mod mysql;
mod postgres;
mod sqlite;

pub(super) use mysql::*;
pub(super) use postgres::*;
pub(super) use sqlite::*;

/// About how many bytes `v` takes as JSON (without escapes), to bound a result cheaply.
pub(super) fn json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| json_size(x) + 1).sum::<usize>(),
        Value::Object(o) => 2 + o.iter().map(|(k, x)| k.len() + 4 + json_size(x)).sum::<usize>(),
    }
}

#[cfg(test)]
pub(super) mod unit {
    //! The binary forms, without a database.
    use super::*;

    #[test]
    fn numerics_round_trip_exactly() {
        for text in [
            "0",
            "1",
            "-1",
            "12.50",
            "0.0001",
            "123456789012345678901234567890.123456789",
            "-0.5",
            "10000",
            "1e3",
            "NaN",
        ] {
            let b = numeric_bytes(text).unwrap_or_else(|| panic!("{text}"));
            let back = numeric_text(&b).ok().unwrap();
            let want = match text {
                "1e3" => "1000",
                t => t,
            };
            assert_eq!(back, want);
        }
        assert!(
            numeric_bytes("1.2.3").is_none() && numeric_bytes("abc").is_none() && numeric_bytes("1e99999").is_none()
        );
    }

    #[test]
    fn dates_and_times_read_and_parse() {
        let (d, us, off) = datetime(&Value::from("2024-02-29T10:20:30.5+02:00")).unwrap();
        assert_eq!((date_string(d), time_text(us), off), ("2024-02-29".into(), "10:20:30.5".into(), Some(7200)));
        assert!(datetime(&Value::from("2023-02-29")).is_none());
        assert_eq!(timestamp_text(0, "Z").ok().unwrap(), "2000-01-01T00:00:00Z");
        assert_eq!(timestamp_text(-1, "").ok().unwrap(), "1999-12-31T23:59:59.999999");
        assert_eq!(interval_text(14, 3, 3_723_500_000), "P1Y2M3DT1H2M3.5S");
        assert_eq!(interval_text(0, 0, 0), "PT0S");
    }
}
