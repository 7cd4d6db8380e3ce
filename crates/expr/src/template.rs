//! Value templates: plain JSON/YAML values whose strings may embed `{{ expr }}`.
//!
//! A string that is exactly one `{{ expr }}` yields the expression's JSON value; otherwise
//! each embedded value is written as text (strings raw, the rest as compact JSON, like jq's
//! `tostring`). Nothing is URL-encoded unless the expression says so (`@uri`). Parts without
//! any `{{` are kept as literals and cost nothing to evaluate.

use crate::jq::{Bound, Expr, Scope, Uses};
use crate::sandbox::Budget;
use crate::{CompileError, EvalError, collect};
use serde_json::{Map, Value};

/// A compiled template (or a bare expression, see [`Template::expr`]).
#[derive(Debug)]
pub struct Template {
    root: Node,
    uses: Uses,
}

#[derive(Debug)]
enum Node {
    Literal(Value),
    Expr(Expr),
    Text(Vec<Piece>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug)]
enum Piece {
    Text(String),
    Expr(Expr),
}

/// A template error: where in the value (a path of keys and indexes) and what went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// Keys and indexes from the template's root to the string at fault.
    pub path: Vec<PathSeg>,
    /// What went wrong.
    pub error: CompileError,
}

/// One step in a path inside a value.
#[derive(Debug, Clone, PartialEq)]
pub enum PathSeg {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

impl Template {
    /// Compiles a value template.
    ///
    /// # Errors
    /// Every embedded expression that does not compile and every unterminated `{{`.
    pub fn compile(value: &Value) -> Result<Template, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let mut path = Vec::new();
        let root = compile_node(value, &mut path, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut uses = Uses::none();
        visit_exprs(&root, &mut |e| uses.union(&e.uses));
        Ok(Template { root, uses })
    }

    /// A template that is one bare jq expression (for fields that *are* logic: `transform`,
    /// `filter`, `when`, …).
    ///
    /// # Errors
    /// When the expression does not compile.
    pub fn expr(src: &str) -> Result<Template, CompileError> {
        let e = Expr::compile(src)?;
        let uses = e.uses.clone();
        Ok(Template { root: Node::Expr(e), uses })
    }

    /// A template that always yields `value`.
    pub fn literal(value: Value) -> Template {
        Template { root: Node::Literal(value), uses: Uses::none() }
    }

    /// True when the template has no expression in it.
    pub fn is_literal(&self) -> bool {
        matches!(self.root, Node::Literal(_))
    }

    /// The value of a template without expressions.
    pub fn as_literal(&self) -> Option<&Value> {
        match &self.root {
            Node::Literal(v) => Some(v),
            _ => None,
        }
    }

    /// Converts the input and the variables this template mentions into jaq values.
    pub fn bind(&self, input: &Value, scope: &Scope<'_>) -> Bound {
        Bound::new(input, scope, &self.uses)
    }

    /// Evaluates on bound values with `budget`, on the calling thread.
    ///
    /// # Errors
    /// A run-time error, an exhausted budget, or a result too deep to convert.
    pub fn eval_bound(&self, bound: &Bound, budget: Budget) -> Result<Value, EvalError> {
        if let Node::Literal(v) = &self.root {
            return Ok(v.clone());
        }
        crate::jq::run_metered(budget, || eval_node(&self.root, bound))
    }

    /// Binds and evaluates on the calling thread.
    ///
    /// # Errors
    /// As [`Template::eval_bound`].
    pub fn eval(&self, input: &Value, scope: &Scope<'_>, budget: Budget) -> Result<Value, EvalError> {
        if let Node::Literal(v) = &self.root {
            return Ok(v.clone());
        }
        // Converting the input is part of the evaluation: it is metered with it.
        crate::jq::run_metered(budget, || eval_node(&self.root, &self.bind(input, scope)))
    }

    /// Binds and evaluates under `budget` on the calling thread, and hands back the bound
    /// values for another attempt (the [`crate::Evaluator`]'s second, on its pool).
    pub(crate) fn eval_keeping_bound(
        &self,
        input: &Value,
        scope: &Scope<'_>,
        budget: Budget,
    ) -> (Option<Bound>, Result<Value, EvalError>) {
        if let Node::Literal(v) = &self.root {
            return (None, Ok(v.clone()));
        }
        let mut kept = None;
        let r = crate::jq::run_metered(budget, || {
            let bound = self.bind(input, scope);
            let r = eval_node(&self.root, &bound);
            kept = Some(bound);
            r
        });
        (kept, r)
    }
}

fn visit_exprs<'a>(node: &'a Node, f: &mut impl FnMut(&'a Expr)) {
    match node {
        Node::Literal(_) => {}
        Node::Expr(e) => f(e),
        Node::Text(pieces) => pieces.iter().for_each(|p| {
            if let Piece::Expr(e) = p {
                f(e)
            }
        }),
        Node::Array(items) => items.iter().for_each(|n| visit_exprs(n, f)),
        Node::Object(kvs) => kvs.iter().for_each(|(_, n)| visit_exprs(n, f)),
    }
}

fn eval_node(node: &Node, bound: &Bound) -> Result<Value, EvalError> {
    Ok(match node {
        Node::Literal(v) => v.clone(),
        Node::Expr(e) => collect(e.run(bound).map_err(|err| located(err, e))?),
        Node::Text(pieces) => {
            let mut out = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Expr(e) => match collect(e.run(bound).map_err(|err| located(err, e))?) {
                        Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(out)
        }
        Node::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| eval_node(n, bound).map_err(|e| within(e, &format!("[{i}]"))))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(kvs) => {
            let mut m = Map::with_capacity(kvs.len());
            for (k, n) in kvs {
                m.insert(k.clone(), eval_node(n, bound).map_err(|e| within(e, k))?);
            }
            Value::Object(m)
        }
    })
}

/// A run-time error named by its expression: jq's own message (`cannot use null as string`)
/// does not say which of a step's expressions failed. Where it sits in the template is added
/// by [`within`] as the error passes up — only on the error path, so evaluating costs nothing
/// more when nothing fails.
fn located(err: EvalError, expr: &Expr) -> EvalError {
    let EvalError::Runtime(message) = err else { return err };
    let mut src: String = expr.source().split_whitespace().collect::<Vec<_>>().join(" ");
    if src.len() > 120 {
        let cut = (0..=117).rev().find(|&i| src.is_char_boundary(i)).unwrap_or(0);
        src.truncate(cut);
        src.push('…');
    }
    EvalError::Located { message, expression: src, at: String::new() }
}

/// Puts a step of the path (`key` or `[i]`) in front of where a located error sits.
fn within(err: EvalError, step: &str) -> EvalError {
    match err {
        EvalError::Located { message, expression, at } => {
            let at = match (at.is_empty(), at.starts_with('[')) {
                (true, _) => step.to_owned(),
                (false, true) => format!("{step}{at}"),
                (false, false) => format!("{step}.{at}"),
            };
            EvalError::Located { message, expression, at }
        }
        other => other,
    }
}

fn compile_node(v: &Value, path: &mut Vec<PathSeg>, errors: &mut Vec<TemplateError>) -> Node {
    match v {
        Value::String(s) if s.contains("{{") => compile_string(s, path, errors),
        Value::Array(items) => {
            let nodes: Vec<Node> = items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    path.push(PathSeg::Index(i));
                    let n = compile_node(x, path, errors);
                    path.pop();
                    n
                })
                .collect();
            if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                Node::Literal(v.clone())
            } else {
                Node::Array(nodes)
            }
        }
        Value::Object(o) => {
            let nodes: Vec<(String, Node)> = o
                .iter()
                .map(|(k, x)| {
                    path.push(PathSeg::Key(k.clone()));
                    let n = compile_node(x, path, errors);
                    path.pop();
                    (k.clone(), n)
                })
                .collect();
            if nodes.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                Node::Literal(v.clone())
            } else {
                Node::Object(nodes)
            }
        }
        other => Node::Literal(other.clone()),
    }
}

fn compile_string(s: &str, path: &[PathSeg], errors: &mut Vec<TemplateError>) -> Node {
    let parts = match split(s) {
        Ok(parts) => parts,
        Err(error) => {
            errors.push(TemplateError { path: path.to_vec(), error });
            return Node::Literal(Value::Null);
        }
    };
    let mut pieces = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::Text(t) => pieces.push(Piece::Text(t)),
            Part::Expr { src, offset } => match Expr::compile(src.trim()) {
                Ok(e) => pieces.push(Piece::Expr(e)),
                Err(mut error) => {
                    let lead = src.len() - src.trim_start().len();
                    error.offset = error.offset.map(|o| o + offset + lead);
                    errors.push(TemplateError { path: path.to_vec(), error })
                }
            },
        }
    }
    if let [Piece::Expr(_)] = pieces.as_slice() {
        let Some(Piece::Expr(e)) = pieces.pop() else { unreachable!() };
        Node::Expr(e)
    } else {
        Node::Text(pieces)
    }
}

#[derive(Debug, PartialEq)]
enum Part<'a> {
    Text(String),
    /// An expression's text and its byte offset in the whole string.
    Expr {
        src: &'a str,
        offset: usize,
    },
}

/// Splits a string into text and `{{ … }}` expressions. Braces, brackets and parentheses
/// are balanced and jq string literals skipped, so `{{ {a: {b: "}}"}} }}` is one expression.
fn split(s: &str) -> Result<Vec<Part<'_>>, CompileError> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' && b.get(i + 1) == Some(&b'{') {
            let start = i + 2;
            let end = scan_expr(b, start).ok_or_else(|| CompileError {
                message: "`{{` is not closed by a matching `}}`".into(),
                offset: Some(i),
            })?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            let src = &s[start..end];
            if src.trim().is_empty() {
                return Err(CompileError { message: "empty `{{ }}`".into(), offset: Some(i) });
            }
            parts.push(Part::Expr { src, offset: start });
            i = end + 2;
        } else {
            let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
            text.push_str(&s[i..i + ch_len]);
            i += ch_len;
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// From `start` (just after `{{`), finds the index of the closing `}}`.
fn scan_expr(b: &[u8], start: usize) -> Option<usize> {
    // Stack of open delimiters; `"` entries mark string literals, whose `\(` open code again.
    let mut stack: Vec<u8> = Vec::new();
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        if stack.last() == Some(&b'"') {
            match c {
                b'\\' if b.get(i + 1) == Some(&b'(') => {
                    stack.push(b'(');
                    i += 2;
                    continue;
                }
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            b'}' if stack.is_empty() && b.get(i + 1) == Some(&b'}') => return Some(i),
            b'"' | b'(' | b'[' | b'{' => stack.push(c),
            b')' | b']' | b'}' => {
                stack.pop()?;
            }
            b'#' => {
                // jq comment: runs to the end of the line.
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn splits_text_and_expressions() {
        let parts = split("a {{ .x }} b").unwrap();
        assert_eq!(
            parts,
            vec![Part::Text("a ".into()), Part::Expr { src: " .x ", offset: 4 }, Part::Text(" b".into())]
        );
    }

    #[test]
    fn balances_braces_and_strings() {
        let parts = split(r#"{{ {a: {b: "}}"}} }}"#).unwrap();
        assert_eq!(parts, vec![Part::Expr { src: r#" {a: {b: "}}"}} "#, offset: 2 }]);
        let parts = split(r#"{{ "x\(.a | {b: 1})" }}!"#).unwrap();
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn reports_unclosed() {
        assert!(split("{{ .a ").is_err());
        assert!(split("{{ }}").is_err());
    }
}
