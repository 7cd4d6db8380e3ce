//! jq expressions and `{{ }}` templates under a small budget.
//!
//! Input: first line = the expression's text, the rest = the JSON input (`null` when it is
//! not valid JSON). The expression is compiled (errors are fine) and evaluated; then the
//! expression's text as a template string, and the JSON input as a template, are compiled
//! and evaluated too. Every evaluation must end within its budget with Ok or Err: never a
//! panic, a hang, a stack overflow or memory beyond the budget.
#![no_main]

use flowgate_expr::{Budget, Expr, Scope, Template};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::time::Duration;

// The crate's metering allocator, as the server installs it, so the memory budget applies.
#[global_allocator]
static A: flowgate_expr::memory::Metered<std::alloc::System> = flowgate_expr::memory::Metered(std::alloc::System);

const BUDGET: Budget = Budget { time: Duration::from_millis(50), iterations: 100_000, memory: 32 * 1024 * 1024 };

fuzz_target!(|data: &[u8]| {
    let (head, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(src) = std::str::from_utf8(head) else { return };
    let input: Value = serde_json::from_slice(rest).unwrap_or(Value::Null);
    let scope = Scope::empty();

    if let Ok(expr) = Expr::compile(src) {
        let _ = expr.eval(&input, &scope, BUDGET);
    }
    // The expression's text as a template string (`"… {{ expr }} …"`).
    if let Ok(template) = Template::compile(&Value::String(src.to_owned())) {
        let _ = template.eval(&input, &scope, BUDGET);
    }
    // The JSON input as a template (its strings may embed `{{ }}`), run on itself.
    if let Ok(template) = Template::compile(&input) {
        let _ = template.eval(&input, &scope, BUDGET);
    }
});
