//! Building values: the conversions jaq needs (`From` scalars, ranges, collected arrays),
//! each knowing the depth of what it builds.

use super::{MAX_VALUE_DEPTH, Val};
use crate::meter::Exhausted;
use jaq_json::{Rc, Val as Raw};

impl From<bool> for Val {
    fn from(b: bool) -> Self {
        Val::scalar(Raw::from(b))
    }
}

impl From<isize> for Val {
    fn from(i: isize) -> Self {
        Val::scalar(Raw::from(i))
    }
}

impl From<usize> for Val {
    fn from(i: usize) -> Self {
        Val::scalar(Raw::from(i))
    }
}

impl From<f64> for Val {
    fn from(f: f64) -> Self {
        Val::scalar(Raw::from(f))
    }
}

impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::scalar(Raw::from(s))
    }
}

impl From<jaq_core::val::Range<Val>> for Val {
    fn from(r: jaq_core::val::Range<Val>) -> Self {
        let inner = [&r.start, &r.end].iter().filter_map(|x| x.as_ref().map(|v| v.depth)).max().unwrap_or(0);
        let raw = Raw::from(r.start.map(|v| v.raw)..r.end.map(|v| v.raw));
        Val { raw, depth: inner + 1 }
    }
}

impl FromIterator<Val> for Val {
    fn from_iter<T: IntoIterator<Item = Val>>(iter: T) -> Self {
        let iter = iter.into_iter();
        let mut out = Vec::with_capacity(iter.size_hint().0.min(1 << 16));
        let mut inner = 0u16;
        for (i, x) in iter.enumerate() {
            inner = inner.max(x.depth);
            out.push(x.raw);
            // A huge collection (`[range(1e9)]`, `explode` of a big string) stops growing
            // once the budget is spent; the evaluation fails at its next operation.
            if i % 1024 == 1023 && crate::meter::tick_op().is_err() {
                break;
            }
        }
        let depth = inner.saturating_add(1);
        if depth > MAX_VALUE_DEPTH {
            crate::meter::flag(Exhausted::Depth);
        }
        Val { raw: Raw::Arr(Rc::new(out)), depth }
    }
}
