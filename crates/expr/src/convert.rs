//! Conversions between `serde_json::Value` (what the rest of Flowgate holds) and jaq's `Val`.
//!
//! Results are converted with a depth cap: an expression can build arbitrarily deep values
//! (`reduce range(1e5) as $i (null; [.])`) and everything downstream (serialisation, the
//! journal, HTTP bodies) recurses over them.

use crate::EvalError;
use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value};

/// Deepest value an expression may return.
pub const MAX_OUTPUT_DEPTH: usize = 256;

/// Converts a JSON value into a jaq value.
pub fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Val::Num(Num::from_integral(i))
            } else if let Some(u) = n.as_u64() {
                Val::Num(Num::from_integral(u))
            } else {
                Val::Num(Num::Float(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => Val::utf8_str(s.clone().into_bytes()),
        Value::Array(a) => a.iter().map(to_val).collect(),
        Value::Object(o) => {
            Val::obj(o.iter().map(|(k, v)| (Val::utf8_str(k.clone().into_bytes()), to_val(v))).collect())
        }
    }
}

/// Converts a jaq value back into JSON, failing when it nests deeper than [`MAX_OUTPUT_DEPTH`].
pub fn from_val(v: &Val) -> Result<Value, EvalError> {
    from_val_at(v, 0)
}

fn from_val_at(v: &Val, depth: usize) -> Result<Value, EvalError> {
    if depth > MAX_OUTPUT_DEPTH {
        return Err(EvalError::Output(format!("result nests deeper than {MAX_OUTPUT_DEPTH} levels")));
    }
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_to_json(n),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(a) => Value::Array(a.iter().map(|x| from_val_at(x, depth + 1)).collect::<Result<_, _>>()?),
        Val::Obj(o) => {
            let mut m = Map::with_capacity(o.len());
            for (k, x) in o.iter() {
                let key = match k {
                    Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
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
