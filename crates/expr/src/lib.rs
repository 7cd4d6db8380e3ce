//! jq expressions and `{{ }}` templates for Flowgate (DESIGN §2).
//!
//! Fields that *are* logic (`transform`, `filter`, `when`) hold a bare jq expression; fields
//! that *are* values (URLs, headers, bodies) hold JSON whose strings may embed `{{ expr }}`.
//! Both compile once per flow version into a [`Template`] and are evaluated against an input
//! (`.`) and a [`Scope`] (`$trigger`, `$steps`, `$config`, `$flow`, `$execution`, `$item`).
//!
//! Evaluation is bounded: see [`sandbox`] for what an expression may not do and
//! [`Evaluator`] for how slow expressions are kept off the async threads.
//!
//! # Layout
//! - [`jq`]: one compiled jq expression and the variables it sees.
//! - [`template`]: values with embedded `{{ }}` expressions.
//! - [`sandbox`]: budgets, ticking loops, disabled built-ins, recursion checks.
//! - [`pool`]: the inline-then-pool evaluator.
//! - `meter` (private): the per-thread meter of one evaluation that every operation ticks.
//! - [`value`]: the metered values expressions run on (every operation ticks the budget);
//!   the type, its depth and the meter hooks in `value/mod.rs`, then:
//!   - `value::construct`: building values (`From` scalars, ranges, collected arrays);
//!   - `value::access`: jaq's value traits (indexing, iterating, slicing, path updates);
//!   - `value::arith`: `+ - * / %` and negation, sizes checked before building;
//!   - `value::order`: equality and jq's order, walked with a tick per node;
//!   - `value::print`: JSON text and the size-capped `Display` of error messages;
//!   - `value::natives`: jaq_json's built-ins (`length`, `has`, `tojson`, …) on our values;
//!   - `value::shape`: JSON text measured (nesting, tree size) without parsing it.
//! - [`memory`]: the allocator wrapper that measures what an evaluation holds.
//! - [`convert`]: `serde_json::Value` ↔ those values.
//! - `tests` (tests only): unit tests, and `tests/hostile.rs`, expressions written to hurt.

#![warn(missing_docs)]

pub mod convert;
pub mod jq;
pub mod memory;
mod meter;
pub mod pool;
pub mod sandbox;
pub mod template;
pub mod value;

#[cfg(test)]
mod tests;

pub use convert::{to_text, truthy};
pub use jq::{Expr, GLOBALS, Scope};
pub use pool::Evaluator;
pub use sandbox::{Budget, Exhausted};
pub use template::{PathSeg, Template, TemplateError};

use serde_json::Value;

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    /// What is wrong, and what was expected.
    pub message: String,
    /// Byte offset in the expression's text (or in the template string), where known.
    pub offset: Option<usize>,
}

/// An evaluation that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// jq raised an error (`error("…")`, indexing a number, …).
    #[error("{0}")]
    Runtime(String),
    /// A run-time error of one expression of a template, with which expression it was and
    /// where it sits (jq's own message does not say which of a step's expressions failed).
    /// The message stays as jq (or the flow's `error("…")`) gave it: flows read it back.
    #[error("{message}, in `{expression}`{}", at_suffix(.at))]
    Located {
        /// jq's message, or the flow's own.
        message: String,
        /// The expression's text (whitespace folded, at most 120 characters).
        expression: String,
        /// Where in the template: `body.customer.name`, `[1]`; empty for a bare expression.
        at: String,
    },
    /// The time, iteration, memory or depth budget ran out.
    #[error("{}", .0.message())]
    Budget(Exhausted),
    /// The result cannot be used (too deep).
    #[error("{0}")]
    Output(String),
}

impl EvalError {
    /// A short, stable code for the journal and the API.
    pub fn code(&self) -> &'static str {
        match self {
            EvalError::Runtime(_) | EvalError::Located { .. } => "expression_error",
            EvalError::Budget(_) => "expression_budget",
            EvalError::Output(_) => "expression_output",
        }
    }
}

fn at_suffix(at: &str) -> String {
    if at.is_empty() { String::new() } else { format!(" at {at}") }
}

impl EvalError {
    /// The message alone (without where), as a flow reads it back.
    pub fn message(&self) -> String {
        match self {
            EvalError::Located { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Where the error happened, for an error's `details`: the expression and its place.
    pub fn location(&self) -> Option<serde_json::Value> {
        match self {
            EvalError::Located { expression, at, .. } => {
                let mut v = serde_json::json!({ "expression": expression });
                if !at.is_empty() {
                    v["at"] = serde_json::json!(at);
                }
                Some(v)
            }
            _ => None,
        }
    }
}

/// How the outputs of one expression become one value: none is `null`, one is itself,
/// several are collected into an array.
pub fn collect(mut outs: Vec<Value>) -> Value {
    match outs.len() {
        0 => Value::Null,
        1 => outs.pop().unwrap_or(Value::Null),
        _ => Value::Array(outs),
    }
}
