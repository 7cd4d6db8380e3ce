//! One compiled jq expression, and the variables it is evaluated with.
//!
//! An [`Expr`] is compiled once per flow version; evaluating it converts only the input and
//! the variables the expression actually mentions (found by scanning its text), so a filter
//! like `$steps.customer.body.active` does not pay for every other step's output.

use crate::convert::{from_val, to_val};
use crate::sandbox::{self, Budget, D, Exhausted};
use crate::value::Val;
use crate::{CompileError, EvalError};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, unwrap_valr};
use serde_json::{Map, Value};

/// The variables bound in every expression, in the order they are passed to jaq.
pub const GLOBALS: [&str; 7] = ["$trigger", "$steps", "$config", "$flow", "$execution", "$item", "$state"];
const STEPS: usize = 1;

/// What an expression sees besides its input `.`.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// The trigger event (`$trigger`).
    pub trigger: &'a Value,
    /// Outputs of the steps that have run so far, by step id (`$steps`).
    pub steps: &'a Map<String, Value>,
    /// Inside a `foreach` item or a `parallel` branch: the outputs of the steps around it
    /// (outermost first); `steps` then holds the item's or branch's own, which come first.
    pub outer: &'a [std::sync::Arc<Map<String, Value>>],
    /// The integration's config values (`$config`).
    pub config: &'a Value,
    /// Facts about the flow (`$flow`).
    pub flow: &'a Value,
    /// Facts about the execution (`$execution`).
    pub execution: &'a Value,
    /// The current item inside a `foreach` (`$item`).
    pub item: Option<&'a Value>,
    /// What a poll trigger keeps between polls (`$state`), in its request templates.
    pub state: Option<&'a Value>,
}

impl Scope<'static> {
    /// A scope where every variable is null: for expressions that only read `.`.
    pub fn empty() -> Scope<'static> {
        static NULL: Value = Value::Null;
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        Scope {
            trigger: &NULL,
            steps: EMPTY.get_or_init(Map::new),
            outer: &[],
            config: &NULL,
            flow: &NULL,
            execution: &NULL,
            item: None,
            state: None,
        }
    }
}

/// Which variables an expression mentions.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Uses {
    globals: [bool; 7],
    /// When `$steps` is only used as `$steps.id` / `$steps["id"]`: those ids; else `None`.
    step_ids: Option<Vec<String>>,
}

impl Uses {
    fn scan(src: &str) -> Uses {
        let mut uses = Uses { step_ids: Some(Vec::new()), ..Uses::default() };
        for (i, g) in GLOBALS.iter().enumerate() {
            let mut rest = src;
            while let Some(pos) = rest.find(g) {
                let after = &rest[pos + g.len()..];
                rest = after;
                if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    continue; // `$stepsX` is another variable
                }
                uses.globals[i] = true;
                if i == STEPS {
                    match step_ref(after) {
                        Some(id) => {
                            if let Some(ids) = &mut uses.step_ids
                                && !ids.iter().any(|x| x == id)
                            {
                                ids.push(id.to_owned());
                            }
                        }
                        None => uses.step_ids = None,
                    }
                }
            }
        }
        uses
    }

    pub(crate) fn union(&mut self, other: &Uses) {
        for i in 0..GLOBALS.len() {
            self.globals[i] |= other.globals[i];
        }
        match (&mut self.step_ids, &other.step_ids) {
            (Some(a), Some(b)) => {
                for id in b {
                    if !a.contains(id) {
                        a.push(id.clone());
                    }
                }
            }
            (a, _) => *a = None,
        }
    }

    pub(crate) fn none() -> Uses {
        Uses { step_ids: Some(Vec::new()), ..Uses::default() }
    }
}

/// `.id` or `["id"]` right after `$steps`: the id, else `None`.
fn step_ref(after: &str) -> Option<&str> {
    let after = after.trim_start();
    if let Some(rest) = after.strip_prefix('.') {
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        // `.foo-bar` parses as `.foo - bar`; a hyphen right after is not a plain reference.
        (end > 0 && !rest[end..].starts_with('-')).then(|| &rest[..end])
    } else if let Some(rest) = after.strip_prefix('[') {
        let rest = rest.trim_start().strip_prefix('"')?;
        let end = rest.find(['"', '\\'])?;
        rest[end..].strip_prefix('"')?.trim_start().starts_with(']').then(|| &rest[..end])
    } else {
        None
    }
}

/// The input and variables of one evaluation, converted to jaq values (cheap to clone).
#[derive(Clone)]
pub struct Bound {
    pub(crate) input: Val,
    pub(crate) vars: [Val; 7],
}

impl Bound {
    pub(crate) fn new(input: &Value, scope: &Scope<'_>, uses: &Uses) -> Bound {
        let pick = |i: usize, v: &Value| if uses.globals[i] { to_val(v) } else { Val::default() };
        let steps = if !uses.globals[STEPS] {
            Val::default()
        } else if let Some(ids) = &uses.step_ids {
            crate::convert::object_of(ids.iter().filter_map(|id| {
                scope.steps.get_key_value(id).or_else(|| scope.outer.iter().rev().find_map(|m| m.get_key_value(id)))
            }))
        } else if scope.outer.is_empty() {
            to_val(&Value::Object(scope.steps.clone()))
        } else {
            let mut all = Map::new();
            for m in scope.outer.iter().map(|m| &**m).chain([scope.steps]) {
                all.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            to_val(&Value::Object(all))
        };
        Bound {
            input: to_val(input),
            vars: [
                pick(0, scope.trigger),
                steps,
                pick(2, scope.config),
                pick(3, scope.flow),
                pick(4, scope.execution),
                scope.item.map_or(Val::default(), |v| pick(5, v)),
                scope.state.map_or(Val::default(), |v| pick(6, v)),
            ],
        }
    }
}

type StdDef = jaq_core::load::parse::Def<&'static str>;

/// The standard library's definitions, parsed once (parsing them for every expression
/// cost about a millisecond each, which a definition of thousands of expressions pays),
/// with the names each one mentions.
///
/// jaq compiles every definition it is given into each expression's program, so one
/// expression held the whole library (~90 KB, ~0.4 ms to compile): a node with thousands
/// of flows held and compiled it thousands of times. An expression is compiled with only
/// the definitions and natives it can reach from the names in its text ([`Library::reach`]).
struct Library {
    defs: Vec<StdDef>,
    /// The names each definition's body mentions: every quoted text of its parse tree,
    /// which includes every call and variable (and some strings — more is harmless).
    mentions: Vec<Vec<String>>,
    /// Definitions by name, in library order (later ones shadow earlier ones).
    by_name: std::collections::HashMap<&'static str, Vec<usize>>,
}

impl Library {
    fn get() -> &'static Library {
        static LIBRARY: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
        LIBRARY.get_or_init(|| {
            let defs: Vec<StdDef> = jaq_core::defs()
                .chain(jaq_std::defs())
                .chain(jaq_json::defs())
                .chain(jaq_core::load::parse(sandbox::TICKING_DEFS, |p| p.defs()).unwrap_or_default())
                .collect();
            let mentions = defs.iter().map(|d| quoted_names(&format!("{:?}", d.body))).collect();
            let mut by_name = std::collections::HashMap::<&'static str, Vec<usize>>::new();
            for (i, d) in defs.iter().enumerate() {
                by_name.entry(d.name).or_default().push(i);
            }
            Library { defs, mentions, by_name }
        })
    }

    /// The names an expression can reach: those in its text, and those the definitions of
    /// these mention, transitively.
    fn reach<'a>(&'a self, src: &'a str) -> (Vec<bool>, std::collections::HashSet<&'a str>) {
        let mut names: std::collections::HashSet<&str> = words(src).collect();
        let mut todo: Vec<&str> = names.iter().copied().collect();
        let mut keep = vec![false; self.defs.len()];
        while let Some(name) = todo.pop() {
            for &i in self.by_name.get(name).into_iter().flatten() {
                if !std::mem::replace(&mut keep[i], true) {
                    for m in &self.mentions[i] {
                        if names.insert(m) {
                            todo.push(m);
                        }
                    }
                }
            }
        }
        (keep, names)
    }
}

/// Every identifier-like word of a text (names of filters, variables, formats).
fn words(src: &str) -> impl Iterator<Item = &str> {
    let is_start = |c: char| c.is_ascii_alphabetic() || matches!(c, '_' | '$' | '@');
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut rest = src;
    std::iter::from_fn(move || {
        let start = rest.find(is_start)?;
        let tail = &rest[start..];
        let len = 1 + tail[1..].find(|c: char| !is_part(c)).unwrap_or(tail.len() - 1);
        rest = &tail[len..];
        Some(&tail[..len])
    })
}

/// The quoted texts of a parse tree's `Debug` form that could be names.
fn quoted_names(debug: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut parts = debug.split('"');
    parts.next();
    // Between every other pair of quotes: the quoted text (names never hold quotes).
    while let Some(quoted) = parts.next() {
        if words(quoted).next() == Some(quoted) {
            out.push(quoted.to_owned());
        }
        parts.next();
    }
    out.sort();
    out.dedup();
    out
}

/// The standard library's definitions (to name them in hints).
fn std_defs() -> impl Iterator<Item = &'static StdDef> {
    Library::get().defs.iter()
}

/// A compiled jq expression.
pub struct Expr {
    src: Box<str>,
    filter: jaq_core::Filter<D>,
    pub(crate) uses: Uses,
    /// How many operators it chains (see `sandbox::count_terms`): long chains run on a big stack.
    pub(crate) terms: usize,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.src).finish()
    }
}

impl Expr {
    /// Compiles `src`.
    ///
    /// # Errors
    /// A syntax error, an undefined name, a recursive definition or a text that nests too
    /// deeply; the error carries the byte offset in `src` where known.
    pub fn compile(src: &str) -> Result<Expr, CompileError> {
        sandbox::check_nesting(src).map_err(|m| CompileError { message: m, offset: None })?;
        let terms = sandbox::count_terms(src).map_err(|m| CompileError { message: m, offset: None })?;
        sandbox::with_stack_for(terms, || Expr::compile_checked(src, terms))
    }

    fn compile_checked(src: &str, terms: usize) -> Result<Expr, CompileError> {
        let library = Library::get();
        let (keep, names) = library.reach(src);
        let reached = library.defs.iter().zip(&keep).filter(|(_, k)| **k).map(|(d, _)| d.clone());
        let reached_funs = |name: &&str| names.contains(name);
        match Expr::compile_with(src, terms, reached, reached_funs) {
            Ok(expr) => Ok(expr),
            // Something reached by a way the scan of names does not see: the whole library
            // decides (and names the error, if there is one).
            Err(_) => Expr::compile_with(src, terms, library.defs.iter().cloned(), |_: &&str| true),
        }
    }

    /// Compiles `src` with the whole library (what every expression got before pruning).
    #[cfg(test)]
    pub(crate) fn compile_whole(src: &str) -> Result<Expr, CompileError> {
        let terms = sandbox::count_terms(src).map_err(|m| CompileError { message: m, offset: None })?;
        Expr::compile_with(src, terms, Library::get().defs.iter().cloned(), |_: &&str| true)
    }

    fn compile_with(
        src: &str,
        terms: usize,
        defs: impl Iterator<Item = StdDef>,
        wanted: impl Fn(&&str) -> bool,
    ) -> Result<Expr, CompileError> {
        let funs = jaq_core::funs()
            .chain(jaq_std::funs().filter(|(name, _, _)| !sandbox::REPLACED_NATIVES.contains(name)))
            .chain(sandbox::natives())
            .filter(|(name, _, _)| wanted(name));
        let arena = Arena::default();
        let modules =
            Loader::new(defs).load(&arena, File { code: src, path: () }).map_err(|errs| load_error(src, errs))?;
        sandbox::check_recursion(src).map_err(|m| CompileError { message: m, offset: None })?;
        let filter =
            Compiler::default().with_funs(funs).with_global_vars(GLOBALS).compile(modules).map_err(|errs| {
                let (name, undefined) = errs.into_iter().flat_map(|(_, e)| e).next().expect("an error");
                let mut message = format!("undefined {} `{name}`", undefined.as_str());
                if let Some(close) = closest_name(name) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                hint(src, CompileError { message, offset: offset_of(src, name) })
            })?;
        Ok(Expr { src: src.into(), filter, uses: Uses::scan(src), terms })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Runs the expression on bound values under the budget metered on this thread, and
    /// returns all its outputs.
    pub(crate) fn run(&self, bound: &Bound) -> Result<Vec<Value>, EvalError> {
        sandbox::with_stack_for(self.terms, || self.run_here(bound))
    }

    fn run_here(&self, bound: &Bound) -> Result<Vec<Value>, EvalError> {
        let ctx = Ctx::<D>::new(&self.filter.lut, Vars::new(bound.vars.iter().cloned()));
        let mut outs = Vec::new();
        for out in self.filter.id.run((ctx, bound.input.clone())).map(unwrap_valr) {
            match out {
                Ok(v) => outs.push(v),
                Err(e) => return Err(error_of(&e)),
            }
        }
        outs.iter().map(from_val).collect()
    }

    /// Evaluates with the given budget on the calling thread; for tests and the CLI.
    ///
    /// # Errors
    /// A run-time error, an exhausted budget, or a result too deep to convert.
    pub fn eval(&self, input: &Value, scope: &Scope<'_>, budget: Budget) -> Result<Value, EvalError> {
        // Converting the input is part of the evaluation: it is metered with it.
        run_metered(budget, || self.run(&Bound::new(input, scope, &self.uses)).map(crate::collect))
    }
}

/// Runs `f` under `budget`; an exhausted budget wins over whatever `f` returned, since a
/// budget error may have been caught by a `try` inside the expression.
pub(crate) fn run_metered<T>(budget: Budget, f: impl FnOnce() -> Result<T, EvalError>) -> Result<T, EvalError> {
    match crate::meter::metered(budget, f) {
        (_, Some(e)) => Err(EvalError::Budget(e)),
        (r, None) => r,
    }
}

impl From<Exhausted> for EvalError {
    fn from(e: Exhausted) -> Self {
        EvalError::Budget(e)
    }
}

fn error_of(e: &jaq_core::Error<Val>) -> EvalError {
    let text = e.to_string();
    // jaq quotes string errors as JSON; show the text itself.
    EvalError::Runtime(serde_json::from_str::<String>(&text).unwrap_or(text))
}

/// The known name (a filter or a variable) closest to an undefined one, when one is close
/// enough to be a typo (`lenght` → `length`, `$confg` → `$config`).
fn closest_name(name: &str) -> Option<String> {
    let candidates: Vec<String> = if name.starts_with('$') {
        GLOBALS.iter().map(|g| (*g).to_owned()).collect()
    } else {
        std_defs()
            .map(|d| d.name.to_owned())
            .chain(jaq_core::funs::<D>().map(|(n, _, _)| n.to_owned()))
            .chain(jaq_std::funs::<D>().map(|(n, _, _)| n.to_owned()))
            .chain(sandbox::natives().map(|(n, _, _)| n.to_owned()))
            .collect()
    };
    let limit = if name.len() <= 4 { 1 } else { 2 };
    candidates
        .into_iter()
        .filter(|c| c != name && !c.starts_with('_'))
        .map(|c| (edit_distance(name, &c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn offset_of(src: &str, part: &str) -> Option<usize> {
    let (s, p) = (src.as_ptr() as usize, part.as_ptr() as usize);
    (p >= s && p + part.len() <= s + src.len()).then(|| p - s)
}

fn load_error(src: &str, errs: jaq_core::load::Errors<&str, ()>) -> CompileError {
    use jaq_core::load::Error;
    let first = errs.into_iter().map(|(_, e)| e).next();
    let err = match first {
        Some(Error::Lex(es)) => es.into_iter().next().map(|(expect, found)| CompileError {
            message: format!("syntax error: expected {}", expect.as_str()),
            offset: offset_of(src, found),
        }),
        Some(Error::Parse(es)) => es.into_iter().next().map(|(expect, found)| {
            let found_text = if found.is_empty() { "end of input".to_owned() } else { format!("`{found}`") };
            CompileError {
                message: format!("syntax error: expected {}, found {found_text}", expect.as_str()),
                offset: offset_of(src, found),
            }
        }),
        Some(Error::Io(es)) => es.into_iter().next().map(|(path, msg)| CompileError {
            message: format!("cannot load module `{path}`: {msg}"),
            offset: offset_of(src, path),
        }),
        None => None,
    };
    hint(src, err.unwrap_or(CompileError { message: "invalid expression".into(), offset: None }))
}

/// Adds the bracket form when the text has a dotted reference to an id with hyphens
/// (`$steps.only-active` parses as `$steps.only - active`).
fn hint(src: &str, mut err: CompileError) -> CompileError {
    let bytes = src.as_bytes();
    let mut i = 0;
    while let Some(pos) = src[i..].find('.') {
        let start = i + pos + 1;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b'-') {
            end += 1;
        }
        let ident = &src[start..end];
        if ident.contains('-') && !ident.starts_with('-') && !ident.ends_with('-') {
            let base = &src[..start - 1];
            // Past the last character that is not part of the variable (it may be several bytes).
            let var_start = base
                .char_indices()
                .rev()
                .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                .map_or(0, |(p, c)| p + c.len_utf8());
            let var = &base[var_start..];
            err.message.push_str(&format!(
                "; ids with hyphens must be written in brackets: {var}[\"{ident}\"] instead of {var}.{ident}"
            ));
            break;
        }
        i = start;
    }
    err
}
