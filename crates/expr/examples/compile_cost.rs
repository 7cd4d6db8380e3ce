//! What one compiled expression costs: resident memory and compile time per expression, for
//! a few typical shapes (issue 16: thousands of flows on one node).
//!
//! `cargo run --release -p flowgate-expr --example compile_cost [COUNT]`

use flowgate_expr::Expr;
use std::time::Instant;

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let count: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let shapes = [
        ("path", ".body.customer.id"),
        ("object", "{ id: .body.id, name: .body.name, total: (.body.qty * 12.5) }"),
        ("std calls", "[.body.items[] | select(.qty > 0) | {sku, qty}] | sort_by(.sku) | map(.qty) | add"),
        ("strings", "\"\\(.body.first) \\(.body.last)\" | ascii_downcase | ltrimstr(\" \")"),
    ];
    // Warm up the shared parts (the parsed standard library) before measuring.
    let _ = Expr::compile(".").expect("compiles");
    // Everything stays held, so freed memory is never reused by the next shape's count.
    let mut all = Vec::new();
    for (name, base) in shapes {
        let before = rss_kb();
        let start = Instant::now();
        // A different constant in each keeps any cache from sharing them.
        let held: Vec<Expr> =
            (0..count).map(|i| Expr::compile(&format!("{base} | ({i} as $n | .)")).expect("compiles")).collect();
        let took = start.elapsed();
        let after = rss_kb();
        println!(
            "{name:>10}: {:>6.1} KB and {:>6.1} µs per expression ({count} held)",
            (after.saturating_sub(before)) as f64 / count as f64,
            took.as_secs_f64() * 1e6 / count as f64
        );
        all.push(held);
    }
}
