//! Arithmetic on [`Val`]: only type combinations jaq accepts reach jaq (its errors would
//! print whole values); the sizes of what they build are checked first.

use super::order::cmp_raw;
use super::print::Shown;
use super::{R, Val, is_int, is_str, reserve, tick, unwrap_or_clone};
use jaq_core::{Error, ValR, ops};
use jaq_json::{Map, Num, Rc, Val as Raw};

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
