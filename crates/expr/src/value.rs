//! The values our jq filters run on: jaq's JSON values, metered.
//!
//! jaq has no limits of its own, and its interpreter never calls back into our code except
//! through the value type. So every expression runs on [`Val`], a thin wrapper around
//! `jaq_json::Val` ("raw" here) through which *every* operation passes: indexing, iterating
//! (`.[]`, `..`, `reduce`, `foreach` all pull children from here), arithmetic, comparison,
//! construction (`[…]`, `{…}`), path updates. Each one
//!
//! * ticks the evaluation's meter (`crate::meter`): the deadline and the memory budget
//!   are checked there, so no loop — whatever drives it — outlives its budget;
//! * keeps the value's nesting depth (an upper bound, cached), and refuses to build values
//!   nested deeper than [`MAX_VALUE_DEPTH`]: deep values are converted, compared, printed and
//!   dropped recursively, and a deep enough one would overflow the stack and abort the
//!   process;
//! * walks containers with our own iterative-or-bounded code (comparison, equality, `contains`,
//!   printing), ticking per node, because values share children: `reduce range(60) as $i
//!   (0; [., .])` costs 60 steps to build and 2^60 to print or compare naively.
//!
//! Object keys must be scalars (jq requires strings; jaq also takes numbers): a container
//! key would be hashed recursively on every lookup.
//!
//! Errors never embed a whole value: [`Val`]'s `Display` (used by jaq's error messages)
//! stops after [`DISPLAY_LIMIT`] bytes.

use crate::meter::Exhausted;
use bstr::ByteSlice;
use bytes::{BufMut, Bytes, BytesMut};
use core::cmp::Ordering;
use jaq_core::box_iter::box_once;
use jaq_core::path::Opt;
use jaq_core::{Error, Exn, ValR, ValX, ops};
use jaq_json::{Map, Num, Rc, Val as Raw};
use std::fmt;

/// Deepest value an expression may build (inputs, intermediate values and results).
pub use crate::meter::MAX_VALUE_DEPTH;
/// How much of a value an error message shows.
pub const DISPLAY_LIMIT: usize = 200;

/// A jaq value with its nesting depth (0 for scalars; an upper bound for containers).
#[derive(Clone, Debug, Default)]
pub struct Val {
    raw: Raw,
    depth: u16,
}

pub(crate) type R = ValR<Val>;

impl Val {
    /// A value whose depth is known.
    pub(crate) fn new(raw: Raw, depth: u16) -> Val {
        Val { raw, depth }
    }

    /// A scalar (or a container whose depth is measured here, once).
    pub(crate) fn measured(raw: Raw) -> Val {
        let depth = raw_depth(&raw);
        Val { raw, depth }
    }

    /// The jaq value.
    pub(crate) fn raw(&self) -> &Raw {
        &self.raw
    }

    fn scalar(raw: Raw) -> Val {
        Val { raw, depth: 0 }
    }

    /// A child taken out of this container: at most one level less deep.
    fn child(&self, raw: Raw) -> Val {
        let depth = if is_container(&raw) { self.depth.saturating_sub(1).max(1) } else { 0 };
        Val { raw, depth }
    }

    /// A value made of parts of `self` (a slice, a changed copy): at most as deep.
    fn like(&self, raw: Raw) -> Val {
        let depth = if is_container(&raw) { self.depth.max(1) } else { 0 };
        Val { raw, depth }
    }

    /// A container of children at most `inner` deep.
    fn container(raw: Raw, inner: u16) -> R {
        let depth = inner.saturating_add(1);
        if depth > MAX_VALUE_DEPTH {
            return Err(depth_error());
        }
        Ok(Val { raw, depth })
    }

    fn str(s: impl Into<Bytes>) -> Val {
        Val::scalar(Raw::utf8_str(s))
    }

    fn type_name(&self) -> &'static str {
        match self.raw {
            Raw::Null => "null",
            Raw::Bool(_) => "boolean",
            Raw::Num(_) => "number",
            Raw::BStr(_) | Raw::TStr(_) => "string",
            Raw::Arr(_) => "array",
            Raw::Obj(_) => "object",
        }
    }
}

fn is_container(raw: &Raw) -> bool {
    matches!(raw, Raw::Arr(_) | Raw::Obj(_))
}

fn is_str(raw: &Raw) -> bool {
    matches!(raw, Raw::BStr(_) | Raw::TStr(_))
}

fn is_int(raw: &Raw) -> bool {
    matches!(raw, Raw::Num(Num::Int(_) | Num::BigInt(_)))
}

/// The depth of a value walked once (values from outside, parsed JSON); stops counting at
/// one past the limit.
pub(crate) fn raw_depth(raw: &Raw) -> u16 {
    fn walk(raw: &Raw, at: u16) -> u16 {
        if at > MAX_VALUE_DEPTH {
            return at;
        }
        match raw {
            Raw::Arr(a) => a.iter().map(|x| walk(x, at + 1)).max().unwrap_or(at + 1),
            Raw::Obj(o) => o.values().map(|x| walk(x, at + 1)).max().unwrap_or(at + 1),
            _ => at,
        }
    }
    walk(raw, 0)
}

pub(crate) fn budget_error(e: Exhausted) -> Error<Val> {
    Error::str(e.message())
}

fn depth_error() -> Error<Val> {
    crate::meter::flag(Exhausted::Depth);
    budget_error(Exhausted::Depth)
}

/// One operation: fails once the evaluation's budget is spent.
fn tick() -> Result<(), Error<Val>> {
    crate::meter::tick_op().map_err(budget_error)
}

/// Room for `bytes` more in the memory budget, checked before a big allocation.
fn reserve(bytes: usize) -> Result<(), Error<Val>> {
    crate::meter::reserve(bytes).map_err(budget_error)
}

// ---------------------------------------------------------------------------------------
// Construction and conversion traits jaq needs.

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

impl jaq_core::ValT for Val {
    fn from_num(n: &str) -> R {
        Raw::from_num(n).map(Val::scalar).map_err(|_| Error::str(format!("cannot parse {n} as number")))
    }

    fn from_map<I: IntoIterator<Item = (Self, Self)>>(iter: I) -> R {
        tick()?;
        let iter = iter.into_iter();
        let mut map = Map::with_capacity_and_hasher(iter.size_hint().0.min(1 << 16), Default::default());
        let mut inner = 0u16;
        for (i, (k, v)) in iter.enumerate() {
            if is_container(&k.raw) {
                return Err(Error::str(format!("object keys must be strings, not {}", k.type_name())));
            }
            inner = inner.max(v.depth);
            map.insert(k.raw, v.raw);
            if i % 1024 == 1023 {
                tick()?;
            }
        }
        Val::container(Raw::obj(map), inner)
    }

    fn key_values(self) -> Box<dyn Iterator<Item = Result<(Val, Val), Error<Val>>>> {
        if let Err(e) = tick() {
            return box_once(Err(e));
        }
        let depth = self.depth;
        let child =
            move |raw: Raw| Val { depth: if is_container(&raw) { depth.saturating_sub(1).max(1) } else { 0 }, raw };
        match self.raw {
            Raw::Arr(a) => Box::new(metered(
                unwrap_or_clone(a).into_iter().enumerate().map(move |(i, x)| (Val::from(i as isize), child(x))),
            )),
            Raw::Obj(o) => {
                Box::new(metered(unwrap_or_clone(o).into_iter().map(move |(k, x)| (Val::scalar(k), child(x)))))
            }
            _ => box_once(Err(Error::typ(self, "iterable (array or object)"))),
        }
    }

    fn values(self) -> Box<dyn Iterator<Item = R>> {
        if let Err(e) = tick() {
            return box_once(Err(e));
        }
        let depth = self.depth;
        let child =
            move |raw: Raw| Val { depth: if is_container(&raw) { depth.saturating_sub(1).max(1) } else { 0 }, raw };
        match self.raw {
            Raw::Arr(a) => Box::new(metered(unwrap_or_clone(a).into_iter().map(child))),
            Raw::Obj(o) => Box::new(metered(unwrap_or_clone(o).into_iter().map(move |(_, x)| child(x)))),
            _ => box_once(Err(Error::typ(self, "iterable (array or object)"))),
        }
    }

    fn index(self, index: &Self) -> R {
        tick()?;
        match (&self.raw, &index.raw) {
            (Raw::Null, _) => Ok(Val::default()),
            (Raw::Arr(_) | Raw::BStr(_), i) if is_int(i) => {
                let out = jaq_core::ValT::index(self.raw.clone(), &index.raw).map_err(|_| index_error(&self, index))?;
                Ok(self.child(out))
            }
            (Raw::Arr(_), Raw::Arr(_)) => {
                // Indices of a sub-array: an array of numbers.
                let out = jaq_core::ValT::index(self.raw.clone(), &index.raw).map_err(|_| index_error(&self, index))?;
                Ok(Val { raw: out, depth: 1 })
            }
            (Raw::Obj(o), k) if !is_container(k) => Ok(self.child(o.get(k).cloned().unwrap_or_default())),
            (Raw::Arr(_) | Raw::BStr(_) | Raw::TStr(_), Raw::Obj(o)) => {
                let key = |k: &str| o.get(&Raw::utf8_str(Bytes::copy_from_slice(k.as_bytes()))).cloned();
                let (start, end) = (key("start").map(Val::measured), key("end").map(Val::measured));
                self.range(start.as_ref()..end.as_ref())
            }
            _ => Err(index_error(&self, index)),
        }
    }

    fn range(self, range: jaq_core::val::Range<&Self>) -> R {
        tick()?;
        if !(matches!(self.raw, Raw::Arr(_)) || is_str(&self.raw)) {
            return Err(Error::typ(self, "rangeable (array or string)"));
        }
        check_bounds(&range)?;
        let out = jaq_core::ValT::range(self.raw.clone(), range.start.map(|v| &v.raw)..range.end.map(|v| &v.raw))
            .map_err(|_| Error::str("invalid range"))?;
        Ok(self.like(out))
    }

    fn map_values<'a, I: Iterator<Item = ValX<'a, Self>>>(self, opt: Opt, f: impl Fn(Self) -> I) -> ValX<'a, Self> {
        tick()?;
        let _nest = Nesting::enter()?;
        let depth = self.depth;
        match self.raw {
            Raw::Arr(a) => {
                let mut inner = 0u16;
                let mut out = Vec::with_capacity(a.len());
                for x in unwrap_or_clone(a) {
                    let child =
                        Val { depth: if is_container(&x) { depth.saturating_sub(1).max(1) } else { 0 }, raw: x };
                    for y in f(child) {
                        let y = y?;
                        inner = inner.max(y.depth);
                        out.push(y.raw);
                    }
                }
                Ok(Val::container(Raw::Arr(Rc::new(out)), inner)?)
            }
            Raw::Obj(o) => {
                let mut inner = 0u16;
                let mut out = Map::with_capacity_and_hasher(o.len(), Default::default());
                for (k, x) in unwrap_or_clone(o) {
                    let child =
                        Val { depth: if is_container(&x) { depth.saturating_sub(1).max(1) } else { 0 }, raw: x };
                    if let Some(y) = f(child).next() {
                        let y = y?;
                        inner = inner.max(y.depth);
                        out.insert(k, y.raw);
                    }
                }
                Ok(Val::container(Raw::obj(out), inner)?)
            }
            raw => opt.fail(Val { raw, depth }, |v| Exn::from(Error::typ(v, "iterable (array or object)"))),
        }
    }

    fn map_index<'a, I: Iterator<Item = ValX<'a, Self>>>(
        mut self,
        index: &Self,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        tick()?;
        if let (Raw::BStr(_) | Raw::TStr(_) | Raw::Arr(_), Raw::Obj(o)) = (&self.raw, &index.raw) {
            let key = |k: &str| o.get(&Raw::utf8_str(Bytes::copy_from_slice(k.as_bytes()))).cloned().map(Val::measured);
            let (start, end) = (key("start"), key("end"));
            return self.map_range(start.as_ref()..end.as_ref(), opt, f);
        }
        let _nest = Nesting::enter()?;
        let depth = self.depth;
        let child_of =
            |raw: Raw| Val { depth: if is_container(&raw) { depth.saturating_sub(1).max(1) } else { 0 }, raw };
        match &mut self.raw {
            Raw::Obj(o) if !is_container(&index.raw) => {
                use indexmap::map::Entry::{Occupied, Vacant};
                let mut inner = depth.saturating_sub(1);
                match Rc::make_mut(o).entry(index.raw.clone()) {
                    Occupied(mut e) => {
                        let v = core::mem::take(e.get_mut());
                        match f(child_of(v)).next().transpose()? {
                            Some(y) => {
                                inner = inner.max(y.depth);
                                e.insert(y.raw);
                            }
                            None => {
                                e.swap_remove();
                            }
                        }
                    }
                    Vacant(e) => {
                        if let Some(y) = f(Val::default()).next().transpose()? {
                            inner = inner.max(y.depth);
                            e.insert(y.raw);
                        }
                    }
                }
                Ok(Val::container(self.raw, inner)?)
            }
            Raw::Arr(a) if is_int(&index.raw) => {
                let len = a.len();
                let i = match index_in(&index.raw, len) {
                    Some(i) => i,
                    None => {
                        let e = Error::str(format!("index {} out of bounds", Shown(&index.raw)));
                        return opt.fail(self, |_| Exn::from(e));
                    }
                };
                let mut inner = depth.saturating_sub(1);
                let a = Rc::make_mut(a);
                let x = core::mem::take(&mut a[i]);
                match f(child_of(x)).next().transpose()? {
                    Some(y) => {
                        inner = inner.max(y.depth);
                        a[i] = y.raw;
                    }
                    None => {
                        a.remove(i);
                    }
                }
                Ok(Val::container(self.raw, inner)?)
            }
            Raw::Obj(_) | Raw::Arr(_) => {
                let e = index_error(&self, index);
                opt.fail(self, |_| Exn::from(e))
            }
            _ => opt.fail(self, |v| Exn::from(Error::typ(v, "iterable (array or object)"))),
        }
    }

    fn map_range<'a, I: Iterator<Item = ValX<'a, Self>>>(
        self,
        range: jaq_core::val::Range<&Self>,
        opt: Opt,
        f: impl Fn(Self) -> I,
    ) -> ValX<'a, Self> {
        tick()?;
        let _nest = Nesting::enter()?;
        if !(matches!(self.raw, Raw::Arr(_)) || is_str(&self.raw)) {
            return opt.fail(self, |v| Exn::from(Error::typ(v, "array")));
        }
        if let Err(e) = check_bounds(&range) {
            return opt.fail(self, |_| Exn::from(e));
        }
        let raw_range = range.start.map(|v| &v.raw)..range.end.map(|v| &v.raw);
        // The slice to update, as jaq cuts it; then jaq splices in what `f` made of it (our
        // `f` runs here, so its exceptions — `break`, errors — stay ours).
        let slice =
            jaq_core::ValT::range(self.raw.clone(), raw_range.clone()).map_err(|_| Error::str("invalid range"))?;
        let y = f(self.like(slice)).next().transpose()?;
        if let Some(y) = &y
            && !(matches!(
                (&self.raw, &y.raw),
                (Raw::Arr(_), Raw::Arr(_)) | (Raw::TStr(_), Raw::TStr(_)) | (Raw::BStr(_), Raw::BStr(_))
            ))
        {
            return Err(Exn::from(Error::typ(y.clone(), if is_str(&self.raw) { "string" } else { "array" })));
        }
        let inner = self.depth.saturating_sub(1).max(y.as_ref().map_or(0, |y| y.depth.saturating_sub(1)));
        let replacement = y.map(|y| y.raw);
        let out =
            jaq_core::ValT::map_range(self.raw, raw_range, Opt::Essential, |_| replacement.clone().map(Ok).into_iter())
                .map_err(|_| Exn::from(Error::str("invalid range update")))?;
        if is_container(&out) { Ok(Val::container(out, inner)?) } else { Ok(Val::scalar(out)) }
    }

    fn as_bool(&self) -> bool {
        !matches!(self.raw, Raw::Null | Raw::Bool(false))
    }

    fn into_string(self) -> Self {
        match self.raw {
            Raw::BStr(b) | Raw::TStr(b) => Val::scalar(Raw::TStr(b)),
            raw => match to_json(&raw) {
                Ok(text) => Val::str(text),
                Err(e) => {
                    crate::meter::flag(e);
                    Val::str("")
                }
            },
        }
    }
}

impl jaq_std::ValT for Val {
    fn into_seq<S: FromIterator<Self>>(self) -> Result<S, Self> {
        let depth = self.depth;
        match self.raw {
            Raw::Arr(a) => {
                let child = move |raw: Raw| Val {
                    depth: if is_container(&raw) { depth.saturating_sub(1).max(1) } else { 0 },
                    raw,
                };
                Ok(unwrap_or_clone(a).into_iter().map(child).collect())
            }
            raw => Err(Val { raw, depth }),
        }
    }

    fn is_int(&self) -> bool {
        jaq_std::ValT::is_int(&self.raw)
    }

    fn as_isize(&self) -> Option<isize> {
        jaq_std::ValT::as_isize(&self.raw)
    }

    fn as_f64(&self) -> Option<f64> {
        jaq_std::ValT::as_f64(&self.raw)
    }

    fn is_utf8_str(&self) -> bool {
        jaq_std::ValT::is_utf8_str(&self.raw)
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        jaq_std::ValT::as_bytes(&self.raw)
    }

    fn as_sub_str(&self, sub: &[u8]) -> Self {
        Val::scalar(jaq_std::ValT::as_sub_str(&self.raw, sub))
    }

    fn from_utf8_bytes(b: impl AsRef<[u8]> + Send + 'static) -> Self {
        Val::scalar(<Raw as jaq_std::ValT>::from_utf8_bytes(b))
    }
}

/// Children pulled one at a time, each a tick; stops at the first failure.
fn metered<T>(iter: impl Iterator<Item = T>) -> impl Iterator<Item = Result<T, Error<Val>>> {
    let mut failed = false;
    iter.map_while(move |x| {
        if failed {
            return None;
        }
        match tick() {
            Ok(()) => Some(Ok(x)),
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn unwrap_or_clone<T: Clone>(a: Rc<T>) -> T {
    Rc::try_unwrap(a).unwrap_or_else(|a| (*a).clone())
}

fn index_error(v: &Val, index: &Val) -> Error<Val> {
    Error::str(format!("cannot index {} with {}", Shown(&v.raw), Shown(&index.raw)))
}

/// Range bounds must be null or integers.
fn check_bounds(range: &jaq_core::val::Range<&Val>) -> Result<(), Error<Val>> {
    for b in [range.start, range.end].into_iter().flatten() {
        if !matches!(b.raw, Raw::Null) && !is_int(&b.raw) {
            return Err(Error::typ(b.clone(), "integer"));
        }
    }
    Ok(())
}

/// An integer index (negative counts from the end) inside `0..len`.
fn index_in(i: &Raw, len: usize) -> Option<usize> {
    let Raw::Num(n) = i else { return None };
    let i = n.as_isize()?;
    let i = if i < 0 { len.checked_sub(i.unsigned_abs())? } else { i as usize };
    (i < len).then_some(i)
}

/// Path updates (`.a.b.c |= f`, `setpath`) recurse once per path element; a path built at
/// run time (`setpath([range(1e6)|"a"]; 1)`) could nest deep enough to overflow the stack.
struct Nesting;

thread_local! {
    static NESTING: core::cell::Cell<u16> = const { core::cell::Cell::new(0) };
}

impl Nesting {
    fn enter() -> Result<Nesting, Error<Val>> {
        NESTING.with(|n| {
            if n.get() >= MAX_VALUE_DEPTH {
                return Err(depth_error());
            }
            n.set(n.get() + 1);
            Ok(Nesting)
        })
    }
}

impl Drop for Nesting {
    fn drop(&mut self) {
        NESTING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

// ---------------------------------------------------------------------------------------
// Arithmetic: only type combinations jaq accepts reach jaq (its errors would print whole
// values); the sizes of what they build are checked first.

fn math_error(l: Val, op: ops::Math, r: Val) -> Error<Val> {
    Error::str(format!("cannot calculate {} {} {}", Shown(&l.raw), op.as_str(), Shown(&r.raw)))
}

fn raw_op(r: ValR<Raw>) -> Result<Raw, Error<Val>> {
    r.map_err(|e| Error::str(Shown(&e.into_val()).to_string()))
}

fn len_bytes(raw: &Raw) -> usize {
    match raw {
        Raw::BStr(b) | Raw::TStr(b) => b.len(),
        Raw::Arr(a) => a.len() * core::mem::size_of::<Raw>(),
        Raw::Obj(o) => o.len() * 2 * core::mem::size_of::<Raw>(),
        _ => 0,
    }
}

impl core::ops::Add for Val {
    type Output = R;
    fn add(self, rhs: Self) -> R {
        tick()?;
        let depth = self.depth.max(rhs.depth);
        match (&self.raw, &rhs.raw) {
            (Raw::Null, _) => Ok(rhs),
            (_, Raw::Null) => Ok(self),
            (Raw::Num(_), Raw::Num(_)) => Ok(Val::scalar(raw_op(self.raw + rhs.raw)?)),
            (Raw::BStr(_), Raw::BStr(_))
            | (Raw::TStr(_), Raw::TStr(_))
            | (Raw::Arr(_), Raw::Arr(_))
            | (Raw::Obj(_), Raw::Obj(_)) => {
                reserve(len_bytes(&self.raw) + len_bytes(&rhs.raw))?;
                Ok(Val { raw: raw_op(self.raw + rhs.raw)?, depth })
            }
            _ => Err(math_error(self, ops::Math::Add, rhs)),
        }
    }
}

impl core::ops::Sub for Val {
    type Output = R;
    fn sub(self, rhs: Self) -> R {
        tick()?;
        match (self.raw, rhs.raw) {
            (Raw::Num(x), Raw::Num(y)) => Ok(Val::scalar(Raw::Num(x - y))),
            (Raw::Arr(l), Raw::Arr(r)) => {
                // jaq's own difference compares with its unmetered order; ours ticks.
                let mut sorted: Vec<&Raw> = r.iter().collect();
                sorted.sort_by(|a, b| cmp_raw(a, b));
                let keep = |x: &Raw| sorted.binary_search_by(|y| cmp_raw(y, x)).is_err();
                let out: Vec<Raw> = l.iter().filter(|x| keep(x)).cloned().collect();
                Ok(Val { raw: Raw::Arr(Rc::new(out)), depth: self.depth })
            }
            (l, r) => Err(math_error(Val::new(l, self.depth), ops::Math::Sub, Val::new(r, rhs.depth))),
        }
    }
}

impl core::ops::Mul for Val {
    type Output = R;
    fn mul(self, rhs: Self) -> R {
        tick()?;
        let depth = self.depth.max(rhs.depth);
        match (&self.raw, &rhs.raw) {
            (Raw::Num(_), Raw::Num(_)) => Ok(Val::scalar(raw_op(self.raw * rhs.raw)?)),
            (s, Raw::Num(n)) | (Raw::Num(n), s) if is_str(s) => {
                // `"x" * 1e9` would allocate a gigabyte in one go: check first.
                let times = match n {
                    Num::Int(i) => (*i).max(0) as usize,
                    Num::BigInt(_) => usize::MAX,
                    _ => return Err(math_error(self, ops::Math::Mul, rhs)),
                };
                reserve(len_bytes(s).saturating_mul(times))?;
                Ok(Val::scalar(raw_op(self.raw * rhs.raw)?))
            }
            (Raw::Obj(_), Raw::Obj(_)) => {
                let (Raw::Obj(mut l), Raw::Obj(r)) = (self.raw, rhs.raw) else { unreachable!() };
                merge_objects(&mut l, r)?;
                Ok(Val { raw: Raw::Obj(l), depth })
            }
            _ => Err(math_error(self, ops::Math::Mul, rhs)),
        }
    }
}

/// `*` on objects: a deep merge, ticking per key (jaq's recursion has no meter).
fn merge_objects(l: &mut Rc<Map>, r: Rc<Map>) -> Result<(), Error<Val>> {
    let l = Rc::make_mut(l);
    for (k, v) in unwrap_or_clone(r) {
        tick()?;
        match (l.get_mut(&k), v) {
            (Some(Raw::Obj(l)), Raw::Obj(r)) => merge_objects(l, r)?,
            (Some(l), r) => *l = r,
            (None, r) => {
                l.insert(k, r);
            }
        }
    }
    Ok(())
}

impl core::ops::Div for Val {
    type Output = R;
    fn div(self, rhs: Self) -> R {
        tick()?;
        match (&self.raw, &rhs.raw) {
            (Raw::Num(_), Raw::Num(_)) => Ok(Val::scalar(raw_op(self.raw / rhs.raw)?)),
            (Raw::TStr(_), Raw::TStr(_)) | (Raw::BStr(_), Raw::BStr(_)) => {
                Ok(Val { raw: raw_op(self.raw / rhs.raw)?, depth: 1 })
            }
            _ => Err(math_error(self, ops::Math::Div, rhs)),
        }
    }
}

impl core::ops::Rem for Val {
    type Output = R;
    fn rem(self, rhs: Self) -> R {
        tick()?;
        match (&self.raw, &rhs.raw) {
            (Raw::Num(_), Raw::Num(y)) if !(is_int(&self.raw) && is_int(&rhs.raw) && *y == Num::Int(0)) => {
                Ok(Val::scalar(raw_op(self.raw % rhs.raw)?))
            }
            _ => Err(math_error(self, ops::Math::Rem, rhs)),
        }
    }
}

impl core::ops::Neg for Val {
    type Output = R;
    fn neg(self) -> R {
        tick()?;
        match self.raw {
            Raw::Num(n) => Ok(Val::scalar(Raw::Num(-n))),
            raw => Err(Error::typ(Val::new(raw, self.depth), "number")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Order and equality: jq's order, walked with a tick per node. Shared children compare
// equal at once, so a shared-subtree value compares in the time it took to build.

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
fn spent() -> bool {
    crate::meter::tick_op().is_err()
}

pub(crate) fn eq_raw(a: &Raw, b: &Raw) -> bool {
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

pub(crate) fn cmp_raw(a: &Raw, b: &Raw) -> Ordering {
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

// ---------------------------------------------------------------------------------------
// Printing: JSON text, ticking per node, with a size cap.

/// Writes `raw` as compact JSON (jq's `tojson`), failing once the memory budget would be
/// exceeded or the time budget is spent.
pub(crate) fn to_json(raw: &Raw) -> Result<Vec<u8>, Exhausted> {
    let mut out = Vec::new();
    write_json(raw, &mut out, usize::MAX)?;
    Ok(out)
}

/// Writes `raw` into `out` until `out` holds `limit` bytes.
fn write_json(raw: &Raw, out: &mut Vec<u8>, limit: usize) -> Result<(), Exhausted> {
    crate::meter::tick_op()?;
    if out.len() >= limit {
        return Ok(());
    }
    if out.len() % 4096 < 64 {
        crate::meter::reserve(4096)?;
    }
    match raw {
        Raw::Arr(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(x, out, limit)?;
                if out.len() >= limit {
                    return Ok(());
                }
            }
            out.push(b']');
        }
        Raw::Obj(o) => {
            out.push(b'{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(k, out, limit)?;
                out.push(b':');
                write_json(x, out, limit)?;
                if out.len() >= limit {
                    return Ok(());
                }
            }
            out.push(b'}');
        }
        scalar => {
            let _ = jaq_json::write::write(out, &jaq_json::write::Pp::default(), 0, scalar);
        }
    }
    Ok(())
}

/// A value in an error message: its first [`DISPLAY_LIMIT`] bytes of JSON.
struct Shown<'a>(&'a Raw);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        // An exhausted budget only shortens the text: the evaluation fails anyway.
        let _ = write_json(self.0, &mut out, DISPLAY_LIMIT + 1);
        if out.len() > DISPLAY_LIMIT {
            out.truncate(DISPLAY_LIMIT);
            f.write_str(&String::from_utf8_lossy(&out))?;
            f.write_str("…")
        } else {
            f.write_str(&String::from_utf8_lossy(&out))
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Shown(&self.raw).fmt(f)
    }
}

// ---------------------------------------------------------------------------------------
// jaq_json's natives, on our values (theirs are typed for its own value).

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

/// The deepest bracket nesting of a JSON text, outside its strings (one pass, no tree).
pub fn json_nesting(text: &[u8]) -> usize {
    json_shape(text).0
}

/// Bytes a JSON text's tree takes in memory, estimated from its size and how many values it
/// holds: a `serde_json::Value` is 32 bytes, its conversion for jq 16 more, and vectors grow
/// by doubling. One pass over the text, no tree.
pub fn json_tree_bytes(text: &[u8]) -> usize {
    const PER_VALUE: usize = 64;
    text.len() + json_shape(text).1.saturating_mul(PER_VALUE)
}

/// (deepest nesting, number of values and keys) of a JSON text.
fn json_shape(text: &[u8]) -> (usize, usize) {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    let mut values = 1usize;
    for &b in text {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' | b':' => values += 1,
            _ => {}
        }
    }
    (max, values)
}
