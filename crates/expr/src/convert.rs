//! Conversions between `serde_json::Value` (what the rest of Flowgate holds) and the values
//! expressions run on ([`crate::value::Val`]).
//!
//! Both directions are metered like any other operation (converting a 10 MiB input costs
//! as much as a long expression, and it is counted against the same budget), and results
//! are converted with a depth cap: everything downstream (serialisation, the journal, HTTP
//! bodies) recurses over them.

use crate::EvalError;
use crate::value::Val;
use jaq_json::{Num, Val as Raw};
use serde_json::{Map, Number, Value};

/// Deepest value an expression may return: the deepest nesting `serde_json` reads back by
/// default (127), so whatever is journaled can be read again on resume.
pub const MAX_OUTPUT_DEPTH: usize = 127;

/// Converts a JSON value into a value for expressions.
pub fn to_val(v: &Value) -> Val {
    let mut depth = 0;
    let raw = to_raw(v, 0, &mut depth);
    Val::new(raw, depth)
}

/// Converts `v` (found `at` levels down), recording the deepest level seen.
fn to_raw(v: &Value, at: u16, deepest: &mut u16) -> Raw {
    if matches!(v, Value::Array(_) | Value::Object(_)) {
        *deepest = (*deepest).max(at + 1);
    }
    match v {
        Value::Null => Raw::Null,
        Value::Bool(b) => Raw::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Raw::Num(Num::from_integral(i))
            } else if let Some(u) = n.as_u64() {
                Raw::Num(Num::from_integral(u))
            } else {
                Raw::Num(Num::Float(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => Raw::utf8_str(s.clone().into_bytes()),
        Value::Array(a) => {
            let _ = crate::meter::tick_op();
            Raw::Arr(jaq_json::Rc::new(a.iter().map(|x| to_raw(x, at + 1, deepest)).collect()))
        }
        Value::Object(o) => {
            let _ = crate::meter::tick_op();
            Raw::obj(
                o.iter().map(|(k, v)| (Raw::utf8_str(k.clone().into_bytes()), to_raw(v, at + 1, deepest))).collect(),
            )
        }
    }
}

/// An object of the given entries, converted (`$steps` with only the steps an expression
/// names).
pub(crate) fn object_of<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>) -> Val {
    let mut deepest = 1;
    let map = entries.map(|(k, v)| (Raw::utf8_str(k.clone().into_bytes()), to_raw(v, 1, &mut deepest))).collect();
    Val::new(Raw::obj(map), deepest)
}

/// Converts a value back into JSON, failing when it nests deeper than [`MAX_OUTPUT_DEPTH`]
/// or the evaluation's budget runs out while converting.
pub fn from_val(v: &Val) -> Result<Value, EvalError> {
    from_val_at(v.raw(), 0)
}

/// `depth`: how many containers enclose `v`.
fn from_val_at(v: &Raw, depth: usize) -> Result<Value, EvalError> {
    if matches!(v, Raw::Arr(_) | Raw::Obj(_)) && depth >= MAX_OUTPUT_DEPTH {
        return Err(EvalError::Output(format!("result nests deeper than {MAX_OUTPUT_DEPTH} levels")));
    }
    // A result that shares its parts (`[$x, $x, …]`) is copied in full: meter it.
    crate::meter::tick_op().map_err(EvalError::Budget)?;
    Ok(match v {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(*b),
        Raw::Num(n) => num_to_json(n),
        Raw::TStr(b) | Raw::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Raw::Arr(a) => Value::Array(a.iter().map(|x| from_val_at(x, depth + 1)).collect::<Result<_, _>>()?),
        Raw::Obj(o) => {
            let mut m = Map::with_capacity(o.len());
            for (k, x) in o.iter() {
                let key = match k {
                    Raw::TStr(b) | Raw::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => other.to_string(),
                };
                m.insert(key, from_val_at(x, depth + 1)?);
            }
            Value::Object(m)
        }
    })
}

fn num_to_json(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::Number((*i as i64).into()),
        Num::Float(f) => float_to_json(*f),
        // Big integers and decimals: keep exact integers when they fit, else a float, as jq does.
        other => {
            let text = other.to_string();
            if let Ok(i) = text.parse::<i64>() {
                Value::Number(i.into())
            } else if let Ok(u) = text.parse::<u64>() {
                Value::Number(u.into())
            } else {
                float_to_json(text.parse::<f64>().unwrap_or(f64::NAN))
            }
        }
    }
}

/// jq writes NaN as `null` and infinities as the largest finite doubles.
fn float_to_json(f: f64) -> Value {
    if f.is_nan() {
        Value::Null
    } else if f.is_infinite() {
        Number::from_f64(if f > 0.0 { f64::MAX } else { f64::MIN }).map_or(Value::Null, Value::Number)
    } else if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Number((f as i64).into())
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// jq truthiness: everything but `false` and `null` is true.
pub fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

/// Text of a value as jq's `tostring` writes it: strings raw, everything else as compact JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
