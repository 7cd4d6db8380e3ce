//! MySQL/MariaDB: rows read by column type, parameters bound as the server converts them.

use super::*;

// ---------------------------------------------------------------------------------------
// MySQL / MariaDB

/// A row as a JSON object.
pub(in crate::sql) fn mysql_row(row: &MySqlRow) -> Result<Map<String, Value>, StepError> {
    let mut out = Map::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let name = column.name();
        let raw = row.try_get_raw(i).map_err(|e| bad_value(name, "?", e))?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let ty = column.type_info().name().to_owned();
            mysql_value(raw, &ty).map_err(|e| match e {
                ReadError::Unsupported => unsupported(name, &ty),
                ReadError::Bad(why) => bad_value(name, &ty, why),
            })?
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

pub(super) fn mysql_value(raw: MySqlValueRef<'_>, ty: &str) -> Result<Value, ReadError> {
    fn get<'r, T: Decode<'r, MySql>>(raw: MySqlValueRef<'r>) -> Result<T, ReadError> {
        T::decode(raw).map_err(|e| ReadError::Bad(e.to_string()))
    }
    // A zero date (`0000-00-00`), which MySQL allows, is no date: null.
    let zero_date = |raw: MySqlValueRef<'_>| {
        <&[u8] as Decode<MySql>>::decode(raw).is_ok_and(|b| b.is_empty() || b.starts_with(b"0000-00-00"))
    };
    Ok(match ty {
        "BOOLEAN" => Value::Bool(get::<i64>(raw)? != 0),
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => Value::from(get::<i64>(raw)?),
        t if t.ends_with("UNSIGNED") => Value::from(get::<u64>(raw)?),
        "BIT" => Value::from(get::<u64>(raw)?),
        "FLOAT" => float4(get::<f32>(raw)?),
        "DOUBLE" => float(get::<f64>(raw)?),
        "DECIMAL" => Value::String(get::<&str>(raw)?.to_owned()),
        "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            Value::String(get::<&str>(raw)?.to_owned())
        }
        "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            // The protocol marks binary strings and text with a binary collation
            // (`utf8mb4_bin`, MariaDB's JSON) alike, and sqlx does not pass the character
            // set on: printable UTF-8 is taken for text, anything else is bytes.
            let b = get::<&[u8]>(raw)?;
            match std::str::from_utf8(b) {
                Ok(text) if !text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) => {
                    Value::String(text.to_owned())
                }
                _ => base64(b),
            }
        }
        "GEOMETRY" => base64(get::<&[u8]>(raw)?),
        "JSON" => json(get::<&str>(raw)?.as_bytes())?,
        "DATE" if zero_date(raw.clone()) => Value::Null,
        "DATE" => Value::String(date_string(get::<time::Date>(raw)?)),
        "DATETIME" | "TIMESTAMP" if zero_date(raw.clone()) => Value::Null,
        "DATETIME" => {
            let t = get::<time::PrimitiveDateTime>(raw)?;
            Value::String(format!("{}T{}", date_string(t.date()), clock_text(t.time())))
        }
        "TIMESTAMP" => {
            // The session's time zone is UTC (the pool sets it), so this is the instant.
            let t = get::<time::PrimitiveDateTime>(raw)?;
            Value::String(format!("{}T{}Z", date_string(t.date()), clock_text(t.time())))
        }
        "TIME" => {
            // `HH:MM:SS` like the other databases' times (MySQL's go past 24h and below 0).
            let t = get::<sqlx::mysql::types::MySqlTime>(raw)?.to_string();
            let (sign, rest) = t.split_at(usize::from(t.starts_with('-')));
            let pad = if rest.find(':') == Some(1) { "0" } else { "" };
            Value::String(format!("{sign}{pad}{rest}"))
        }
        "NULL" => Value::Null,
        _ => return Err(ReadError::Unsupported),
    })
}

pub(super) fn clock_text(t: time::Time) -> String {
    time_text(
        ((i64::from(t.hour()) * 60 + i64::from(t.minute())) * 60 + i64::from(t.second())) * 1_000_000
            + i64::from(t.microsecond()),
    )
}

/// Binds `v` as MySQL takes it: the server converts to the column's type (a string for a
/// date, a number for a decimal); a list or an object as its JSON text.
pub(in crate::sql) fn mysql_bind(args: &mut MySqlArguments, v: &Value) -> Result<(), BoxDynError> {
    match v {
        Value::Null => args.add(None::<String>),
        Value::Bool(b) => args.add(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => args.add(i),
            (None, Some(u)) => args.add(u),
            // A fraction goes as its decimal text: a DECIMAL column gets it exactly.
            _ => args.add(n.to_string()),
        },
        Value::String(s) => args.add(s.clone()),
        other => args.add(other.to_string()),
    }
}
