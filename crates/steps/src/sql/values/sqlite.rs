//! SQLite: rows read value by value (its types are per value), parameters bound as stored.

use super::*;

// ---------------------------------------------------------------------------------------
// SQLite

/// A row as a JSON object: each value as it is stored (SQLite's types are per value), a
/// `BOOLEAN` column's integers as booleans.
pub(in crate::sql) fn sqlite_row(row: &SqliteRow) -> Result<Map<String, Value>, StepError> {
    let mut out = Map::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let name = column.name();
        let raw = row.try_get_raw(i).map_err(|e| bad_value(name, "?", e))?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let stored = raw.type_info().name().to_owned();
            let declared_bool = column.type_info().name() == "BOOLEAN";
            let bad = |e: BoxDynError| bad_value(name, &stored, e);
            match stored.as_str() {
                "INTEGER" if declared_bool => Value::Bool(<i64 as Decode<Sqlite>>::decode(raw).map_err(bad)? != 0),
                "INTEGER" | "BOOLEAN" => Value::from(<i64 as Decode<Sqlite>>::decode(raw).map_err(bad)?),
                "REAL" | "NUMERIC" => float(<f64 as Decode<Sqlite>>::decode(raw).map_err(bad)?),
                "BLOB" => base64(&<Vec<u8> as Decode<Sqlite>>::decode(raw).map_err(bad)?),
                _ => Value::String(<String as Decode<Sqlite>>::decode(raw).map_err(bad)?),
            }
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

/// Binds `v` as SQLite stores it: booleans as 0/1, a list or an object as its JSON text.
pub(in crate::sql) fn sqlite_bind<'q>(args: &mut SqliteArguments<'q>, v: &Value) -> Result<(), BoxDynError> {
    match v {
        Value::Null => args.add(None::<String>),
        Value::Bool(b) => args.add(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => args.add(i),
            None => args.add(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => args.add(s.clone()),
        other => args.add(other.to_string()),
    }
}
