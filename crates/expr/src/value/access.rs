//! jaq's value traits on [`Val`]: indexing, iterating, slicing and path updates, each a
//! tick, with depths kept and path recursion bounded.

use super::print::{Shown, to_json};
use super::{MAX_VALUE_DEPTH, R, Val, depth_error, is_container, is_int, is_str, tick, unwrap_or_clone};
use bytes::Bytes;
use jaq_core::box_iter::box_once;
use jaq_core::path::Opt;
use jaq_core::{Error, Exn, ValX};
use jaq_json::{Map, Rc, Val as Raw};

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

pub(super) fn index_error(v: &Val, index: &Val) -> Error<Val> {
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
pub(super) fn index_in(i: &Raw, len: usize) -> Option<usize> {
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
