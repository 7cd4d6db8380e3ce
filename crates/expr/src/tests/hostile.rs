//! Expressions written to hurt the node (issue 12): each must fail with a budget error in
//! about its budget, never overflow the stack, never run away with memory or time. And the
//! metered values must still behave like jq.

use crate::memory::Metered;
use crate::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

// The memory budget is measured by the allocator: this test binary installs it like the
// `flowgate` binary does.
#[global_allocator]
static ALLOCATOR: Metered<std::alloc::System> = Metered(std::alloc::System);

const SMALL: Budget = Budget { time: Duration::from_millis(300), iterations: 10_000_000, memory: 64 * 1024 * 1024 };

trait UnwrapErr {
    fn unwrap_err_or_else(self, src: &str) -> EvalError;
}

impl UnwrapErr for Result<Value, EvalError> {
    fn unwrap_err_or_else(self, src: &str) -> EvalError {
        match self {
            Ok(v) => panic!("{src}: expected an error, got {v}"),
            Err(e) => e,
        }
    }
}

fn run(src: &str, input: Value) -> (Result<Value, EvalError>, Duration) {
    let expr = Expr::compile(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let started = Instant::now();
    let r = expr.eval(&input, &Scope::empty(), SMALL);
    (r, started.elapsed())
}

/// Fails with one of `kinds`, within a few times the time budget.
fn refused(src: &str, kinds: &[Exhausted]) {
    let (r, took) = run(src, json!(null));
    match r {
        Err(EvalError::Budget(e)) if kinds.contains(&e) => {}
        other => panic!("{src}: expected one of {kinds:?}, got {other:?}"),
    }
    assert!(took < Duration::from_secs(3), "{src} took {took:?}");
}

#[test]
fn deep_values_are_refused_while_they_are_built() {
    // The issue's example: a 200,000-deep value used to overflow the stack when dropped.
    refused(r#"reduce ("x"*200000|explode|.[]) as $c (null; [.]) | length"#, &[Exhausted::Depth]);
    refused("reduce range(100000) as $i (null; {a: .})", &[Exhausted::Depth]);
    refused(r#"reduce range(100000) as $i ({}; {a: .}) | tojson | length"#, &[Exhausted::Depth]);
    // Path updates recurse along the path: a path longer than the value fails at its end
    // (jaq does not create missing levels), and a deep value is within the depth limit.
    for src in [r#"{} | setpath([range(100000)|"a"]; 1)"#, r#"[[]] | getpath([range(100000)|0]) = 1"#] {
        let (r, took) = run(src, json!(null));
        assert!(r.is_err() && took < Duration::from_secs(1), "{src}: {r:?}");
    }
    let (r, _) =
        run(r#"reduce range(200) as $i (0; {a: .}) | getpath([range(200)|"a"]) |= 1 | [paths] | length"#, json!(null));
    assert_eq!(r, Ok(json!(200)));
    // Parsed from text.
    let (r, _) = run(r#"("[" * 100000) + ("]" * 100000) | fromjson"#, json!(null));
    let e = r.unwrap_err().to_string();
    assert!(e.contains("nested 100000 levels"), "{e}");
}

#[test]
fn every_loop_respects_the_time_budget() {
    // `.[]`, `reduce` and `explode` never ticked before: 9 million steps ran past the budget.
    let src = r#"reduce ((("x"*3000|explode|.[]) as $a | ("x"*3000|explode|.[]))) as $b (0;.+1)"#;
    refused(src, &[Exhausted::Time]);
    let (r, took) = run("[.[] as $x | .[] as $y | .[] | $x + $y] | length", json!((0..1000).collect::<Vec<_>>()));
    assert!(matches!(r, Err(EvalError::Budget(Exhausted::Time | Exhausted::Memory))), "{r:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (r, took) = run("[.[] as $x | .[] | . + $x] | length", json!((0..3000).collect::<Vec<_>>()));
    assert!(matches!(r, Err(EvalError::Budget(Exhausted::Time | Exhausted::Memory))), "{r:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    refused("[limit(1e9; repeat(1))] | length", &[Exhausted::Time, Exhausted::Memory]);
    refused("last(range(1e9) | tostring)", &[Exhausted::Time]);
    refused(r#"[range(1e6)] | sort_by(-.) | group_by(. % 7) | length"#, &[Exhausted::Time, Exhausted::Memory]);
}

#[test]
fn shared_values_cannot_multiply_work() {
    // 60 steps build a value of 2^60 leaves: printing, comparing, merging or searching it
    // naively would never end.
    let dag = "(reduce range(60) as $i (0; [., .]))";
    refused(&format!("{dag} | tojson | length"), &[Exhausted::Time, Exhausted::Memory]);
    refused(&format!("{dag} | tostring | length"), &[Exhausted::Time, Exhausted::Memory]);
    refused(&format!("{dag} as $a | (reduce range(60) as $i (0; [., .])) as $b | $a < $b"), &[Exhausted::Time]);
    refused(&format!("{dag} as $a | (reduce range(60) as $i (0; [., .])) as $b | $a == $b"), &[Exhausted::Time]);
    refused(&format!("{dag} | contains(reduce range(59) as $i ([1]; [.]))"), &[Exhausted::Time]);
    refused(&format!("{dag} | tobytes | length"), &[Exhausted::Time, Exhausted::Memory]);
    refused(&format!("[{dag}] | flatten | length"), &[Exhausted::Time, Exhausted::Memory]);
    let obj = "(reduce range(60) as $i ({}; {a: ., b: .}))";
    refused(
        &format!("{obj} * (reduce range(60) as $i ({{}}; {{a: ., b: .}})) | length"),
        &[Exhausted::Time, Exhausted::Memory],
    );
    refused(&format!("[{dag}, 1] - [{dag}] | length"), &[Exhausted::Time]);
    // Converting such a result to JSON is metered too.
    refused(dag, &[Exhausted::Time, Exhausted::Memory]);
}

#[test]
fn memory_is_bounded() {
    refused(r#"reduce range(40) as $i ("x"; . + .) | length"#, &[Exhausted::Memory]);
    refused(r#""x" * 1000000000 | length"#, &[Exhausted::Memory]);
    refused(r#"[range(1e8)] | length"#, &[Exhausted::Memory, Exhausted::Time]);
    refused(
        r#"[range(1e6) | "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + tostring] | length"#,
        &[Exhausted::Memory, Exhausted::Time],
    );
    refused(r#"[range(30) as $i | "x" * 4000000] | add | length"#, &[Exhausted::Memory]);
    refused(r#"("x" * 10000000) | explode | length"#, &[Exhausted::Memory, Exhausted::Time]);
    // A big input counts: converting it for jq is part of the evaluation.
    let big = json!((0..6_000_000).collect::<Vec<_>>());
    let (r, _) = run("length", big);
    // (On a loaded machine the deadline may come first: either way it stops.)
    assert!(matches!(r, Err(EvalError::Budget(Exhausted::Memory | Exhausted::Time))), "{r:?}");
    // A legitimate one fits.
    let items = json!((0..20_000).map(|i| json!({"id": i, "name": format!("n{i}")})).collect::<Vec<_>>());
    // (With time to spare: the test machine may be busy; memory is what is checked here.)
    let expr = Expr::compile("[.[] | select(.id % 2 == 0) | {id, upper: (.name | ascii_upcase)}] | length").unwrap();
    let r = expr.eval(&items, &Scope::empty(), Budget { time: Duration::from_secs(20), ..SMALL });
    assert_eq!(r, Ok(json!(10_000)));
}

#[test]
fn errors_do_not_print_whole_values() {
    let big = json!({"k": "v".repeat(100_000), "list": (0..10_000).collect::<Vec<_>>()});
    for src in [". + 1", ". - 1", ".[[]]", ". | ascii_downcase", "length as $n | . * $n", "-."] {
        let (r, _) = run(src, big.clone());
        let e = r.unwrap_err_or_else(src).to_string();
        assert!(e.len() < 600, "{src}: {} bytes: {}", e.len(), &e[..200.min(e.len())]);
    }
    let (r, _) = run("{(.list): 1}", big);
    assert!(r.unwrap_err().to_string().contains("object keys must be strings"));
}

#[test]
fn metered_values_behave_like_jq() {
    let cases: &[(&str, Value, Value)] = &[
        ("[3,1,2] | sort", json!(null), json!([1, 2, 3])),
        (r#"[{"a":2},{"a":1},{"b":0}] | sort"#, json!(null), json!([{"a": 1}, {"a": 2}, {"b": 0}])),
        ("[1,[2],{}, null, true, \"s\", false] | sort", json!(null), json!([null, false, true, 1, "s", [2], {}])),
        ("[1,2,1,3] | unique", json!(null), json!([1, 2, 3])),
        ("[1,2,3,4] | group_by(. % 2)", json!(null), json!([[2, 4], [1, 3]])),
        ("{b: 1, a: [1, {c: null}]} | tojson", json!(null), json!(r#"{"b":1,"a":[1,{"c":null}]}"#)),
        (r#""a\"b\n" | tojson"#, json!(null), json!(r#""a\"b\n""#)),
        (r#"[1.5, -2, 1e3, 100] | tojson"#, json!(null), json!("[1.5,-2,1e3,100]")),
        (r#""x\(1 + 1)y\([1])""#, json!(null), json!("x2y[1]")),
        (r#"{a: {b: 1, c: 2}} * {a: {b: 3}, d: 4}"#, json!(null), json!({"a": {"b": 3, "c": 2}, "d": 4})),
        ("[1,2,3,2] - [2]", json!(null), json!([1, 3])),
        (r#""foobar" | contains("bar")"#, json!(null), json!(true)),
        (r#"{a: [1, 2, {b: 3}]} | contains({a: [{b: 3}]})"#, json!(null), json!(true)),
        (r#"[1, [2]] | contains([[3]])"#, json!(null), json!(false)),
        (r#"{a: 1} | has("a"), has("b")"#, json!(null), json!([true, false])),
        ("[0, 1] | has(1), has(2), has(-1)", json!(null), json!([true, false, true])),
        (r#""a,b, cd, efg" | indices(", ")"#, json!(null), json!([3, 7])),
        ("[0,1,2,1,3,1,2] | indices(1), indices([1,2])", json!(null), json!([[1, 3, 5], [1, 5]])),
        ("[1,2,3] | bsearch(2), bsearch(0), bsearch(4)", json!(null), json!([1, -1, -4])),
        ("[null, -3, \"ab\", [1,2], {a:1}] | map(length)", json!(null), json!([0, 3, 2, 2, 1])),
        (r#""[1,2] {\"a\":3}" | [fromjson]"#, json!(null), json!([[1, 2], {"a": 3}])),
        ("[65, 66] | tobytes | tostring", json!(null), json!("AB")),
        (".[2:4] |= [9]", json!([0, 1, 2, 3, 4]), json!([0, 1, 9, 4])),
        (r#""abcdef" | .[1:3]"#, json!(null), json!("bc")),
        (".[1:] | .[0]", json!([1, 2, 3]), json!(2)),
        ("del(.a) | to_entries", json!({"a": 1, "b": 2}), json!([{"key": "b", "value": 2}])),
        ("with_entries(.value += 1)", json!({"a": 1}), json!({"a": 2})),
        (r#"[paths]"#, json!({"a": [1, {"b": 2}]}), json!([["a"], ["a", 0], ["a", 1], ["a", 1, "b"]])),
        (r#"setpath(["a", 0, "b"]; 5)"#, json!({"a": [{"b": 1}]}), json!({"a": [{"b": 5}]})),
        (r#"delpaths([["a", 0]])"#, json!({"a": [1, 2]}), json!({"a": [2]})),
        (r#"walk(if type == "number" then . + 1 else . end)"#, json!([1, {"a": 2}]), json!([2, {"a": 3}])),
        ("flatten", json!([1, [2, [3, [4]]]]), json!([1, 2, 3, 4])),
        ("[.[] | tostring] | join(\"-\")", json!([1, "a", null]), json!("1-a-null")),
        ("add, min, max", json!([3, 1, 2]), json!([6, 1, 3])),
        ("keys, keys_unsorted", json!({"b": 1, "a": 2}), json!([["a", "b"], ["b", "a"]])),
        (r#"@base64, (@base64 | @base64d)"#, json!("hi"), json!(["aGk=", "hi"])),
        (r#"test("b+"), [splits(", *")], sub("a"; "x")"#, json!("abba, c"), json!([true, ["abba", "c"], "xbba, c"])),
        (r#".a.b |= . + 1 | .c = [5] | .c[0] = 6"#, json!({"a": {"b": 1}}), json!({"a": {"b": 2}, "c": [6]})),
        (r#"to_entries | from_entries"#, json!({"x": [1]}), json!({"x": [1]})),
        (r#"[.[] | select(. > 1)] | length"#, json!([1, 2, 3]), json!(2)),
        (r#"[limit(3; range(10))], first(range(5; 9)), ([range(5)] | last)"#, json!(null), json!([[0, 1, 2], 5, 4])),
        (r#"{(.k): .v, "n": 1}"#, json!({"k": "key", "v": 2}), json!({"key": 2, "n": 1})),
        (r#"[.[] | . as [$a, $b] | $a + $b]"#, json!([[1, 2], [3, 4]]), json!([3, 7])),
        (r#"try error("boom") catch ."#, json!(null), json!("boom")),
        (r#"try (1 + "a") catch ."#, json!(null), json!("cannot calculate 1 + \"a\"")),
        (r#"[.[] | tojson]"#, json!([{"a": 1.25}, "é"]), json!([r#"{"a":1.25}"#, "\"é\""])),
        (r#""abc" | explode | implode"#, json!(null), json!("abc")),
        (r#""x" * 3, ("ab" / "")"#, json!(null), json!(["xxx", ["a", "b"]])),
        (r#"[.[] | . % 3] | unique | length"#, json!([1, 2, 3, 4, 5, 6]), json!(3)),
        ("10 / 4, 7 % 3, -(2)", json!(null), json!([2.5, 1, -2])),
        ("[.[] | ascii_downcase] | sort | .[0]", json!(["B", "a"]), json!("a")),
        (r#"getpath(["a", "b"])"#, json!({"a": {"b": 7}}), json!(7)),
        (r#"[..] | length"#, json!({"a": [1, {"b": 2}]}), json!(5)),
        (r#".[] += 1"#, json!({"a": 1, "b": 2}), json!({"a": 2, "b": 3})),
        (r#"map_values(empty)"#, json!({"a": 1}), json!({})),
        (r#"[.[] | {id}] | tojson"#, json!([{"id": 1, "x": 2}]), json!(r#"[{"id":1}]"#)),
    ];
    for (src, input, expected) in cases {
        let (r, _) = run(src, input.clone());
        assert_eq!(r.as_ref(), Ok(expected), "{src}");
        // And exactly what jaq itself answers on its own values.
        assert_eq!(r, jaq_itself(src, input), "{src}: differs from jaq");
    }
}

#[test]
fn budgets_do_not_leak_between_evaluations() {
    refused(r#"reduce range(40) as $i ("x"; . + .) | length"#, &[Exhausted::Memory]);
    let (r, _) = run("[range(1000)] | length", json!(null));
    assert_eq!(r, Ok(json!(1000)));
    // Nothing is metered outside an evaluation.
    assert_eq!(memory::live(), 0);
}

/// The outputs of `src` evaluated by plain jaq (its own values and natives, no sandbox),
/// collected as our evaluations are.
fn jaq_itself(src: &str, input: &Value) -> Result<Value, EvalError> {
    use jaq_core::load::{Arena, File, Loader};
    use jaq_core::{Compiler, Ctx, Vars, data::JustLut, unwrap_valr};
    use jaq_json::Val;
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs).load(&arena, File { code: src, path: () }).unwrap();
    let filter = Compiler::default().with_funs(funs).compile(modules).unwrap();
    let ctx = Ctx::<JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let input: Val = serde_json::from_value(input.clone()).unwrap();
    let mut outs = Vec::new();
    for out in filter.id.run((ctx, input)).map(unwrap_valr) {
        match out {
            Ok(v) => outs.push(crate::convert::from_val(&crate::value::Val::measured(v))?),
            Err(e) => {
                let text = e.to_string();
                return Err(EvalError::Runtime(serde_json::from_str::<String>(&text).unwrap_or(text)));
            }
        }
    }
    Ok(collect(outs))
}

/// Found by fuzzing (issue 12): chains of operators (not brackets) nest jaq's parser,
/// compiler and evaluator one frame per link; 12,000 links overflowed the stack at compile
/// time, 32,000 `.a` at evaluation. Over the limit: a clear error; under it: compiled and run
/// on a stack big enough, even from a thread with a small one.
#[test]
fn operator_chains_are_bounded_and_run_on_a_big_enough_stack() {
    for src in [
        format!("{}1", "-".repeat(12_000)),
        vec!["."; 12_000].join("|"),
        ".a".repeat(32_000),
        vec!["1"; 9_000].join(","),
        format!("{}1", "try ".repeat(5_000)),
    ] {
        let err = Expr::compile(&src).unwrap_err();
        assert!(err.message.contains("operators; the limit is"), "{}: {err:?}", &src[..20]);
    }
    // A string literal full of commas is not a chain.
    let long_text = format!("\"{}\" | length", "a,".repeat(20_000));
    assert_eq!(Expr::compile(&long_text).unwrap().eval(&json!(null), &Scope::empty(), SMALL), Ok(json!(40_000)));
    // Within the limit, on a small stack.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let chain = format!("{} 0", ". as $x | ".repeat(1_300));
            let e = Expr::compile(&chain).unwrap();
            assert_eq!(e.eval(&json!(1), &Scope::empty(), SMALL), Ok(json!(0)));
            let path = format!("{} // 7", ".a".repeat(3_900));
            let e = Expr::compile(&path).unwrap();
            assert_eq!(e.eval(&json!({}), &Scope::empty(), SMALL), Ok(json!(7)));
            let neg = format!("{}1", "-".repeat(3_900));
            assert_eq!(Expr::compile(&neg).unwrap().eval(&json!(null), &Scope::empty(), SMALL), Ok(json!(1)));
        })
        .unwrap()
        .join()
        .unwrap();
}
