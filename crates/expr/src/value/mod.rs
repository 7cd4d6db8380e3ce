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
//!
//! The parts: `construct` (building values: `From`, collecting), `access` (jaq's value
//! traits: indexing, iterating, path updates), `arith` (operators), `order` (equality and
//! jq's order), `print` (JSON text and `Display`), `natives` (jaq_json's built-ins on our
//! values) and `shape` (JSON text measured without parsing). This file holds the type, its
//! depth bookkeeping and the meter hooks they all share.

mod access;
mod arith;
mod construct;
mod natives;
mod order;
mod print;
mod shape;

pub(crate) use natives::{bsearch, contains, fromjson, has, indices, length, tobytes, tojson};
pub use shape::{json_nesting, json_tree_bytes};

use crate::meter::Exhausted;
use bytes::Bytes;
use jaq_core::{Error, ValR};
use jaq_json::{Num, Rc, Val as Raw};

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

/// A container's contents, taken without copying when no one else holds them.
fn unwrap_or_clone<T: Clone>(a: Rc<T>) -> T {
    Rc::try_unwrap(a).unwrap_or_else(|a| (*a).clone())
}
