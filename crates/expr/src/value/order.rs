//! Order and equality: jq's order, walked with a tick per node. Shared children compare
//! equal at once, so a shared-subtree value compares in the time it took to build.

use super::Val;
use core::cmp::Ordering;
use jaq_json::{Rc, Val as Raw};

impl PartialEq for Val {
    fn eq(&self, other: &Self) -> bool {
        eq_raw(&self.raw, &other.raw)
    }
}

impl Eq for Val {}

impl PartialOrd for Val {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Val {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_raw(&self.raw, &other.raw)
    }
}

/// Ticks; when the budget is spent, comparisons end at once (the evaluation fails anyway).
pub(super) fn spent() -> bool {
    crate::meter::tick_op().is_err()
}

pub(super) fn eq_raw(a: &Raw, b: &Raw) -> bool {
    if spent() {
        return false;
    }
    match (a, b) {
        (Raw::Arr(x), Raw::Arr(y)) => {
            Rc::ptr_eq(x, y) || (x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| eq_raw(a, b)))
        }
        (Raw::Obj(x), Raw::Obj(y)) => {
            Rc::ptr_eq(x, y) || (x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| eq_raw(v, w))))
        }
        (Raw::Arr(_) | Raw::Obj(_), _) | (_, Raw::Arr(_) | Raw::Obj(_)) => false,
        _ => a == b,
    }
}

pub(super) fn cmp_raw(a: &Raw, b: &Raw) -> Ordering {
    if spent() {
        return Ordering::Equal;
    }
    match (a, b) {
        (Raw::Arr(x), Raw::Arr(y)) => {
            if Rc::ptr_eq(x, y) {
                return Ordering::Equal;
            }
            for (a, b) in x.iter().zip(y.iter()) {
                match cmp_raw(a, b) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            x.len().cmp(&y.len())
        }
        (Raw::Obj(x), Raw::Obj(y)) => {
            if Rc::ptr_eq(x, y) {
                return Ordering::Equal;
            }
            match (x.len(), y.len()) {
                (0, 0) => return Ordering::Equal,
                (0, _) => return Ordering::Less,
                (_, 0) => return Ordering::Greater,
                _ => {}
            }
            // jq: compare the sorted key lists, then the values in key order.
            let mut l: Vec<_> = x.iter().collect();
            let mut r: Vec<_> = y.iter().collect();
            l.sort_by(|(a, _), (b, _)| cmp_raw(a, b));
            r.sort_by(|(a, _), (b, _)| cmp_raw(a, b));
            let keys = l.iter().map(|(k, _)| *k).zip(r.iter().map(|(k, _)| *k));
            for (a, b) in keys {
                match cmp_raw(a, b) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            match l.len().cmp(&r.len()) {
                Ordering::Equal => {}
                o => return o,
            }
            for ((_, a), (_, b)) in l.iter().zip(r.iter()) {
                match cmp_raw(a, b) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            Ordering::Equal
        }
        // Scalars, and containers against other kinds: jaq's order (it does not recurse then).
        _ => a.cmp(b),
    }
}
