//! The guard rails around jaq: what a flow's expressions may call and how long they may run.
//!
//! jaq has no limits of its own. An expression could loop forever (`last(range(1e15))`),
//! recurse until the stack overflows (which aborts the whole process), read the server's
//! environment (`env`, where the master key lives) or exit the process (`halt`). This module
//! closes those doors:
//!
//! * every unbounded generator of the standard library (`range`, `repeat`, `recurse(f)`,
//!   `while`, `until`, and the definitions built on them) is redefined to call a native
//!   `__fg_tick` per iteration, which counts iterations and checks the deadline of the
//!   evaluation running on this thread ([`Budget`]); once the budget is spent every further
//!   iteration fails, so no loop can go on;
//! * user definitions may not be recursive (checked when an expression is compiled,
//!   `check_recursion`), so the only loops are the ticking ones above;
//! * `env` returns `{}`, `halt` fails, `debug`/`stderr` produce nothing;
//! * the nesting depth of the expression text is capped before jaq's recursive-descent
//!   parser sees it (`check_nesting`).
//!
//! What remains (documented in `docs/expressions.md`): a single built-in operation that builds
//! a huge value at once (for instance `"x" * 1e9`) runs to completion and is bounded only by
//! memory.

use crate::value::{self, Val, budget_error};
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::native::{Fun, bome, v};
use jaq_core::path::Part;
use jaq_core::{Error, Exn, ValX};

/// The data kind our filters run on: metered JSON values, no extra run-time data.
pub(crate) type D = jaq_core::data::JustLut<Val>;

/// Largest nesting of brackets accepted in an expression's text.
pub const MAX_EXPR_NESTING: usize = 128;
/// Largest expression text accepted, in bytes.
pub const MAX_EXPR_LEN: usize = 64 * 1024;
/// Most operators (`|`, `,`, `+`, `.a`, `try`, …) an expression may chain: jaq parses,
/// compiles and evaluates each chain recursively, one stack frame per link, so 10,000 links
/// (20 KB of `.|.|.…`) would overflow the stack whatever the brackets do.
pub const MAX_EXPR_TERMS: usize = 4000;
/// Expressions with more operators than this are compiled and evaluated on a big stack.
pub(crate) const DEEP_EXPR_TERMS: usize = 200;

use crate::meter::tick;
pub use crate::meter::{Budget, Exhausted};

/// `range/3` with a tick per element (jaq's own is a native without one).
fn ticking_range(mut from: ValX<Val>, to: Val, by: Val) -> impl Iterator<Item = ValX<Val>> {
    use core::cmp::Ordering::{Equal, Greater, Less};
    let cmp = by.partial_cmp(&Val::from(0usize)).unwrap_or(Equal);
    let mut done = false;
    core::iter::from_fn(move || {
        if done {
            return None;
        }
        if let Err(e) = tick() {
            done = true;
            return Some(Err(Exn::from(budget_error(e))));
        }
        match from.clone() {
            Ok(x) => {
                let more = match cmp {
                    Greater => x < to,
                    Less => x > to,
                    Equal => x != to,
                };
                if !more {
                    return None;
                }
                Some(core::mem::replace(&mut from, (x + by.clone()).map_err(Exn::from)))
            }
            e @ Err(_) => {
                done = true;
                Some(e)
            }
        }
    })
}

/// A native of one argument (`f($x)`) on our values: runs `g(input, x)` for each `x`.
fn unary(mut cv: jaq_core::Cv<'_, D>, g: fn(&Val, &Val) -> value::R) -> Box<dyn Iterator<Item = ValX<'_, Val>> + '_> {
    let x = cv.0.pop_var();
    bome(g(&cv.1, &x))
}

/// Native filters we add or replace: the sandbox's own, and jaq_json's (typed for its own
/// value, so written again on ours in [`crate::value`]).
pub(crate) fn natives() -> impl Iterator<Item = Fun<D>> {
    type NativeDef = (&'static str, Box<[jaq_core::Bind]>, jaq_core::RunPtr<D>);
    let funs: [NativeDef; 14] = [
        ("__fg_tick", v(0), |cv| bome(tick().map(|()| cv.1).map_err(budget_error))),
        ("__fg_range", v(3), |mut cv| {
            let by = cv.0.pop_var();
            let to = cv.0.pop_var();
            let from = cv.0.pop_var();
            Box::new(ticking_range(Ok(from), to, by))
        }),
        ("env", v(0), |_| bome(jaq_core::ValT::from_map(core::iter::empty()))),
        ("halt", v(1), |_| bome(Err(Error::str("halt is not available in Flowgate expressions")))),
        ("debug_empty", v(0), |_| Box::new(core::iter::empty())),
        ("stderr_empty", v(0), |_| Box::new(core::iter::empty())),
        ("fromjson", v(0), |cv| match value::fromjson(&cv.1) {
            Ok(vs) => Box::new(vs.into_iter().map(Ok)),
            Err(e) => bome(Err(e)),
        }),
        ("tojson", v(0), |cv| bome(value::tojson(&cv.1))),
        ("tobytes", v(0), |cv| bome(value::tobytes(&cv.1))),
        ("length", v(0), |cv| bome(value::length(&cv.1))),
        ("contains", v(1), |cv| unary(cv, |a, b| Ok(Val::from(value::contains(a.raw(), b.raw()))))),
        ("has", v(1), |cv| unary(cv, value::has)),
        ("indices", v(1), |cv| unary(cv, value::indices)),
        ("bsearch", v(1), |cv| unary(cv, value::bsearch)),
    ];
    funs.into_iter().map(jaq_core::native::run::<D>)
}

/// Names of jaq natives that [`natives`] replaces.
pub(crate) const REPLACED_NATIVES: [&str; 4] = ["env", "halt", "debug_empty", "stderr_empty"];

/// Definitions that shadow the standard library's unbounded generators with ticking ones.
/// Later definitions shadow earlier ones, so these are loaded last.
pub(crate) const TICKING_DEFS: &str = r#"
def range($from; $to; $by): __fg_range($from; $to; $by);
def range($from; $to): __fg_range($from; $to; 1);
def range($to): __fg_range(0; $to; 1);
def repeat(f): def rec: f, (__fg_tick | rec); rec;
def recurse(f): def rec: ., (f | __fg_tick | rec); rec;
def recurse(f; cond): recurse(f | select(cond));
def while(cond; update): def rec: if cond then ., (update | __fg_tick | rec) else empty end; rec;
def until(cond; update): def rec: if cond then . else (update | __fg_tick | rec) end; rec;
def combinations($n): [limit($n; repeat(.))] | combinations;
def transpose: [range([.[] | length] | max) as $i | [.[][$i]]];
"#;

/// Rejects expressions whose brackets nest deeper than [`MAX_EXPR_NESTING`] (jaq's parser is
/// recursive, so a deep enough text would overflow the stack), or whose text is too long.
pub(crate) fn check_nesting(src: &str) -> Result<(), String> {
    if src.len() > MAX_EXPR_LEN {
        return Err(format!("expression is {} bytes long; the limit is {MAX_EXPR_LEN}", src.len()));
    }
    // Strings are not skipped: a bracket inside a string literal only over-counts, and `\(…)`
    // interpolations really do nest.
    let (mut depth, mut max) = (0usize, 0usize);
    for b in src.bytes() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_EXPR_NESTING {
        return Err(format!("brackets nest {max} levels deep; the limit is {MAX_EXPR_NESTING}"));
    }
    Ok(())
}

/// Counts the operators of an expression's code (not of its string literals, but of the code
/// interpolated in them), and rejects more than [`MAX_EXPR_TERMS`].
pub(crate) fn count_terms(src: &str) -> Result<usize, String> {
    let bytes = src.as_bytes();
    let mut terms = 0usize;
    // Each entry: the bracket depth, inside an interpolation, at which its string resumes.
    let mut interpolations: Vec<usize> = Vec::new();
    let (mut in_str, mut depth, mut i) = (false, 0usize, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            match b {
                b'\\' if bytes.get(i + 1) == Some(&b'(') => {
                    interpolations.push(depth);
                    depth += 1;
                    in_str = false;
                    i += 1;
                }
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if b == b')' && interpolations.last() == Some(&depth) {
                        interpolations.pop();
                        in_str = true;
                    }
                }
                b'|' | b',' | b'+' | b'-' | b'*' | b'/' | b'%' | b'=' | b'<' | b'>' | b'.' | b'?' | b';' | b':' => {
                    terms += 1
                }
                b'a'..=b'z' => {
                    let start = i;
                    while i + 1 < bytes.len() && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == b'_') {
                        i += 1;
                    }
                    if matches!(
                        &src[start..=i],
                        "and"
                            | "or"
                            | "try"
                            | "catch"
                            | "reduce"
                            | "foreach"
                            | "if"
                            | "elif"
                            | "then"
                            | "else"
                            | "as"
                            | "def"
                            | "label"
                    ) {
                        terms += 1;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    if terms > MAX_EXPR_TERMS {
        return Err(format!(
            "expression chains {terms} operators; the limit is {MAX_EXPR_TERMS} (split it across steps or definitions)"
        ));
    }
    Ok(terms)
}

/// Runs `f` on a stack big enough for an expression of `terms` operators: jaq's parser,
/// compiler and evaluator recurse once per link of a chain (a few KiB each).
pub(crate) fn with_stack_for<T>(terms: usize, f: impl FnOnce() -> T) -> T {
    if terms <= DEEP_EXPR_TERMS {
        return f();
    }
    // 32 KiB a link covers debug builds; the stack is reserved, not touched.
    let need = terms * 32 * 1024;
    stacker::maybe_grow(need, need * 2, f)
}

/// Rejects user definitions that call themselves, directly or through a nested definition.
/// Without recursion, every loop in an expression goes through a ticking generator.
pub(crate) fn check_recursion(src: &str) -> Result<(), String> {
    // Parse errors are reported by the loader with positions; here we only look for recursion.
    let Some(term) = jaq_core::load::parse(src, |p| p.term()) else { return Ok(()) };
    let mut scope = Vec::new();
    walk(&term, &mut scope)
}

/// A name in scope: (name, arity, is this a definition whose body we are inside?).
type Scope<'s> = Vec<(&'s str, usize, bool)>;

fn walk<'s>(t: &Term<&'s str>, scope: &mut Scope<'s>) -> Result<(), String> {
    match t {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => Ok(()),
        Term::Str(_, parts) => parts.iter().try_for_each(|p| match p {
            jaq_core::load::lex::StrPart::Term(t) => walk(t, scope),
            _ => Ok(()),
        }),
        Term::Arr(t) => t.as_deref().map_or(Ok(()), |t| walk(t, scope)),
        Term::Obj(kvs) => kvs.iter().try_for_each(|(k, v)| {
            walk(k, scope)?;
            v.as_ref().map_or(Ok(()), |v| walk(v, scope))
        }),
        Term::Neg(t) | Term::Label(_, t) => walk(t, scope),
        Term::BinOp(l, op, r) => {
            walk(l, scope)?;
            if let BinaryOp::Pipe(Some(p)) = op {
                walk_pattern(p, scope)?;
            }
            walk(r, scope)
        }
        Term::Fold(_, xs, pat, args) => {
            walk(xs, scope)?;
            walk_pattern(pat, scope)?;
            args.iter().try_for_each(|a| walk(a, scope))
        }
        Term::TryCatch(t, c) => {
            walk(t, scope)?;
            c.as_deref().map_or(Ok(()), |c| walk(c, scope))
        }
        Term::IfThenElse(branches, els) => {
            for (c, t) in branches {
                walk(c, scope)?;
                walk(t, scope)?;
            }
            els.as_deref().map_or(Ok(()), |e| walk(e, scope))
        }
        Term::Def(defs, body) => {
            let mark = scope.len();
            for d in defs {
                scope.push((d.name, d.args.len(), true));
                let params = scope.len();
                // Filter parameters (`f`, not `$x`) shadow outer names inside the body.
                scope.extend(d.args.iter().filter(|a| !a.starts_with('$')).map(|a| (*a, 0, false)));
                walk(&d.body, scope)?;
                scope.truncate(params - 1);
                scope.push((d.name, d.args.len(), false));
            }
            walk(body, scope)?;
            scope.truncate(mark);
            Ok(())
        }
        Term::Call(name, args) => {
            let arity = args.len();
            if let Some(&(_, _, true)) = scope.iter().rev().find(|(n, a, _)| n == name && *a == arity) {
                return Err(format!(
                    "definition `{name}/{arity}` calls itself; recursive definitions are not \
                     allowed (use reduce, foreach, range, until or recurse instead)"
                ));
            }
            args.iter().try_for_each(|a| walk(a, scope))
        }
        Term::Path(t, path) => {
            walk(t, scope)?;
            path.0.iter().try_for_each(|(part, _)| match part {
                Part::Index(i) => walk(i, scope),
                Part::Range(a, b) => {
                    a.as_ref().map_or(Ok(()), |a| walk(a, scope))?;
                    b.as_ref().map_or(Ok(()), |b| walk(b, scope))
                }
            })
        }
    }
}

fn walk_pattern<'s>(p: &Pattern<&'s str>, scope: &mut Scope<'s>) -> Result<(), String> {
    match p {
        Pattern::Var(_) => Ok(()),
        Pattern::Arr(ps) => ps.iter().try_for_each(|p| walk_pattern(p, scope)),
        Pattern::Obj(kps) => kps.iter().try_for_each(|(k, p)| {
            walk(k, scope)?;
            walk_pattern(p, scope)
        }),
    }
}
