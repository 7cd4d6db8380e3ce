//! jaq_json's natives (`length`, `contains`, `has`, `indices`, `bsearch`, `tojson`,
//! `tobytes`, `fromjson`), written again on our values (theirs are typed for its own value).

use super::access::{index_error, index_in};
use super::order::{cmp_raw, eq_raw, spent};
use super::print::{Shown, to_json};
use super::shape::json_nesting;
use super::{DISPLAY_LIMIT, MAX_VALUE_DEPTH, R, Val, budget_error, is_container, is_int, reserve, tick};
use bstr::ByteSlice;
use bytes::{BufMut, BytesMut};
use jaq_core::Error;
use jaq_json::{Num, Val as Raw};

/// `length`.
pub(crate) fn length(v: &Val) -> R {
    Ok(match &v.raw {
        Raw::Null => Val::from(0usize),
        Raw::Num(_) => num_length(&v.raw),
        Raw::TStr(s) => Val::from(s.chars().count()),
        Raw::BStr(b) => Val::from(b.len()),
        Raw::Arr(a) => Val::from(a.len()),
        Raw::Obj(o) => Val::from(o.len()),
        Raw::Bool(_) => return Err(Error::str(format!("{} has no length", Shown(&v.raw)))),
    })
}

fn num_length(raw: &Raw) -> Val {
    // jq: the absolute value of a number.
    match raw {
        Raw::Num(n) if *n < Num::Int(0) => Val::scalar(Raw::Num(-n.clone())),
        other => Val::scalar(other.clone()),
    }
}

/// `contains`: jq's containment, ticking per node.
pub(crate) fn contains(a: &Raw, b: &Raw) -> bool {
    if spent() {
        return false;
    }
    match (a, b) {
        (Raw::BStr(l), Raw::BStr(r)) | (Raw::TStr(l), Raw::TStr(r)) => l.contains_str(&***r),
        (Raw::Arr(l), Raw::Arr(r)) => r.iter().all(|r| l.iter().any(|l| contains(l, r))),
        (Raw::Obj(l), Raw::Obj(r)) => r.iter().all(|(k, r)| l.get(k).is_some_and(|l| contains(l, r))),
        _ => eq_raw(a, b),
    }
}

/// `has($k)`.
pub(crate) fn has(v: &Val, k: &Val) -> R {
    match (&v.raw, &k.raw) {
        (Raw::Obj(o), key) if !is_container(key) => Ok(Val::from(o.contains_key(key))),
        (Raw::Arr(a), i) if is_int(i) => Ok(Val::from(index_in(i, a.len()).is_some())),
        _ => Err(index_error(v, k)),
    }
}

/// `indices($y)`.
pub(crate) fn indices(x: &Val, y: &Val) -> R {
    let found: Vec<usize> = match (&x.raw, &y.raw) {
        (Raw::BStr(_), Raw::BStr(n)) | (Raw::TStr(_), Raw::TStr(n)) if n.is_empty() => Vec::new(),
        (Raw::TStr(h), Raw::TStr(n)) => {
            let mut out = Vec::new();
            for (i, (start, _, _)) in h.char_indices().enumerate() {
                if h.get(start..start + n.len()) == Some(&n[..]) {
                    out.push(i);
                }
                if i % 1024 == 1023 {
                    tick()?;
                }
            }
            out
        }
        (Raw::BStr(h), Raw::BStr(n)) => h.find_iter(&***n).collect(),
        (Raw::Arr(_), Raw::Arr(n)) if n.is_empty() => Vec::new(),
        (Raw::Arr(h), Raw::Arr(n)) => {
            let mut out = Vec::new();
            for (i, w) in h.windows(n.len()).enumerate() {
                if w.iter().zip(n.iter()).all(|(a, b)| eq_raw(a, b)) {
                    out.push(i);
                }
            }
            tick()?;
            out
        }
        (Raw::Arr(h), n) => {
            let out = h.iter().enumerate().filter(|(_, x)| eq_raw(x, n)).map(|(i, _)| i).collect();
            tick()?;
            out
        }
        _ => return Err(index_error(x, y)),
    };
    Ok(found.into_iter().map(Val::from).collect())
}

/// `bsearch($x)`.
pub(crate) fn bsearch(a: &Val, x: &Val) -> R {
    match &a.raw {
        Raw::Arr(arr) => {
            let i = match arr.binary_search_by(|y| cmp_raw(y, &x.raw)) {
                Ok(i) => i as isize,
                Err(i) => -1 - i as isize,
            };
            Ok(Val::from(i))
        }
        _ => Err(Error::typ(a.clone(), "array")),
    }
}

/// `tojson`.
pub(crate) fn tojson(v: &Val) -> R {
    to_json(&v.raw).map(Val::str).map_err(budget_error)
}

/// `tobytes`.
pub(crate) fn tobytes(v: &Val) -> R {
    fn put(raw: &Raw, buf: &mut BytesMut) -> Result<(), ()> {
        if spent() {
            return Err(());
        }
        match raw {
            Raw::Num(n) => buf.put_u8(n.as_isize().and_then(|i| u8::try_from(i).ok()).ok_or(())?),
            Raw::BStr(b) | Raw::TStr(b) => buf.put_slice(b),
            Raw::Arr(a) => a.iter().try_for_each(|x| put(x, buf))?,
            _ => return Err(()),
        }
        Ok(())
    }
    let mut buf = BytesMut::new();
    match put(&v.raw, &mut buf) {
        Ok(()) => Ok(Val::scalar(Raw::byte_str(buf.freeze()))),
        Err(()) => match crate::meter::exhausted() {
            Some(e) => Err(budget_error(e)),
            None => Err(Error::str(format!("cannot convert {} to bytes", Shown(&v.raw)))),
        },
    }
}

/// `fromjson`: jaq's parser, after checking the text does not nest too deeply (the parser
/// recurses per level).
pub(crate) fn fromjson(v: &Val) -> Result<Vec<Val>, Error<Val>> {
    let Raw::TStr(text) = &v.raw else { return Err(Error::typ(v.clone(), "string")) };
    tick()?;
    reserve(text.len().saturating_mul(4))?;
    let depth = json_nesting(text);
    if depth > usize::from(MAX_VALUE_DEPTH) {
        return Err(Error::str(format!(
            "cannot parse JSON nested {depth} levels deep; the limit is {MAX_VALUE_DEPTH}"
        )));
    }
    jaq_json::read::parse_many(text)
        .map(|r| {
            r.map(Val::measured).map_err(|e| {
                let head = Shown(&Raw::TStr(Box::new(text.slice(..text.len().min(DISPLAY_LIMIT)))));
                Error::str(format!("cannot parse {head} as JSON: {e}"))
            })
        })
        .collect()
}
