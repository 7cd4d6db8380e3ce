//! Unit tests for expressions, templates and the sandbox.

use super::*;
use serde_json::{Map, json};

fn eval(src: &str, input: Value) -> Result<Value, EvalError> {
    Expr::compile(src).unwrap().eval(&input, &Scope::empty(), Budget::DEFAULT)
}

#[test]
fn evaluates_jq() {
    assert_eq!(eval(".a + 1", json!({"a": 1})).unwrap(), json!(2));
    assert_eq!(
        eval("{ name: .n, email: (.e | ascii_downcase) }", json!({"n": "Ann", "e": "A@X.IO"})).unwrap(),
        json!({"name": "Ann", "email": "a@x.io"})
    );
    assert_eq!(eval(".[]", json!([1, 2])).unwrap(), json!([1, 2]));
    assert_eq!(eval("empty", json!(1)).unwrap(), Value::Null);
    assert_eq!(eval(".qty * 12.5", json!({"qty": 4})).unwrap(), json!(50));
    assert_eq!(eval("\"a b\" | @uri", json!(null)).unwrap(), json!("a%20b"));
}

#[test]
fn binds_globals_in_order() {
    let steps: Map<String, Value> = json!({"a": {"x": 1}, "only-active": 2}).as_object().unwrap().clone();
    let (t, c, f, e, i) = (json!("T"), json!({"k": "C"}), json!("F"), json!({"id": "E"}), json!("I"));
    let st = json!({"cursor": "S"});
    let scope = Scope {
        trigger: &t,
        steps: &steps,
        outer: &[],
        config: &c,
        flow: &f,
        execution: &e,
        item: Some(&i),
        state: Some(&st),
    };
    let expr = Expr::compile(
        r#"[$trigger, $steps.a.x, $steps["only-active"], $config.k, $flow, $execution.id, $item, $state.cursor]"#,
    )
    .unwrap();
    assert_eq!(expr.eval(&json!(null), &scope, Budget::DEFAULT).unwrap(), json!(["T", 1, 2, "C", "F", "E", "I", "S"]));
    let all = Expr::compile("$steps | keys").unwrap();
    assert_eq!(all.eval(&json!(null), &scope, Budget::DEFAULT).unwrap(), json!(["a", "only-active"]));
}

#[test]
fn reports_compile_errors_with_offsets() {
    let err = Expr::compile(".a | frobnicate").unwrap_err();
    assert!(err.message.contains("undefined filter `frobnicate`"), "{err:?}");
    assert_eq!(err.offset, Some(5));
    let err = Expr::compile(".a | (").unwrap_err();
    assert!(err.message.starts_with("syntax error"), "{err:?}");
    let err = Expr::compile("$steps.only-active").unwrap_err();
    assert!(err.message.contains(r#"$steps["only-active"]"#), "{err:?}");
    let err = Expr::compile("$nope").unwrap_err();
    assert!(err.message.contains("undefined variable"), "{err:?}");
}

#[test]
fn rejects_recursion() {
    for src in ["def f: f; f", "def f: 1 + f; f", "def f(g): def h: f(g); h; f(.)", "def f: def g: f; g; 1"] {
        let err = Expr::compile(src).unwrap_err();
        assert!(err.message.contains("calls itself"), "{src}: {err:?}");
    }
    // Not recursion: shadowing and filter parameters.
    for src in ["def f: 1; def g: def f: 2; f; g", "def f: def f: 1; f; f", "def g: def f(g): g; f(1); g"] {
        Expr::compile(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    }
}

#[test]
fn stops_runaway_loops() {
    let fast = Budget { time: std::time::Duration::from_millis(200), iterations: u64::MAX, ..Budget::DEFAULT };
    for src in [
        "last(range(1e15))",
        "[repeat(1)] | length",
        "last(recurse(. + 1))",
        "until(false; . + 1)",
        "[while(true; .)] | length",
        "try last(range(1e15)) catch last(range(1e15))",
        "[limit(1e15; repeat(1))] | length",
        "last(range(0; 1e15; 1))",
        "first(range(1e15; 0; -1) | select(. < 0))",
    ] {
        let err = Expr::compile(src).unwrap().eval(&json!(0), &Scope::empty(), fast).unwrap_err();
        assert_eq!(err, EvalError::Budget(Exhausted::Time), "{src}");
    }
    let few = Budget { time: std::time::Duration::from_secs(5), iterations: 1000, ..Budget::DEFAULT };
    let err = Expr::compile("[range(5000)] | length").unwrap().eval(&json!(0), &Scope::empty(), few).unwrap_err();
    assert_eq!(err, EvalError::Budget(Exhausted::Iterations));
    assert_eq!(
        Expr::compile("[range(500)] | length").unwrap().eval(&json!(0), &Scope::empty(), few).unwrap(),
        json!(500)
    );
}

#[test]
fn disables_dangerous_builtins() {
    assert_eq!(eval("env", json!(null)).unwrap(), json!({}));
    assert!(eval("halt", json!(null)).is_err());
    assert_eq!(eval("debug | . + 1", json!(1)).unwrap(), json!(2));
    assert!(Expr::compile("$ENV").is_err());
    assert!(Expr::compile("input").is_err());
}

#[test]
fn caps_nesting_and_output_depth() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    assert!(Expr::compile(&deep).unwrap_err().message.contains("nest"));
    // What is returned can be read back (journaled outputs are parsed again on resume).
    let ok = eval("reduce range(127) as $i (null; [.])", json!(null)).unwrap();
    serde_json::from_str::<Value>(&ok.to_string()).unwrap();
    let err = eval("reduce range(128) as $i (null; [.])", json!(null)).unwrap_err();
    assert!(matches!(err, EvalError::Output(_)), "{err:?}");
    let err = eval("reduce range(1000) as $i (null; [.])", json!(null)).unwrap_err();
    assert_eq!(err, EvalError::Budget(Exhausted::Depth));
}

#[test]
fn templates_yield_values_or_text() {
    let t = Template::compile(&json!({
        "whole": "{{ .n }}",
        "text": "n={{ .n }} o={{ .o }} s={{ .s }}",
        "obj": "{{ {a: {b: 1}} }}",
        "plain": "no braces",
        "list": ["{{ .s }}", 1],
    }))
    .unwrap();
    let out = t.eval(&json!({"n": 5, "o": {"x": [1]}, "s": "str"}), &Scope::empty(), Budget::DEFAULT).unwrap();
    assert_eq!(
        out,
        json!({"whole": 5, "text": "n=5 o={\"x\":[1]} s=str", "obj": {"a": {"b": 1}},
                           "plain": "no braces", "list": ["str", 1]})
    );
    assert!(Template::compile(&json!("static")).unwrap().is_literal());
}

#[test]
fn template_errors_have_paths() {
    let errs = Template::compile(&json!({"a": ["ok", "{{ .x | nope }}"], "b": "{{ .y"})).unwrap_err();
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].path, vec![PathSeg::Key("a".into()), PathSeg::Index(1)]);
    assert_eq!(errs[0].error.offset, Some(8));
    assert_eq!(errs[1].path, vec![PathSeg::Key("b".into())]);
}

#[test]
fn evaluator_moves_slow_expressions_to_the_pool() {
    let ev = Evaluator::new(
        Budget { time: std::time::Duration::from_secs(5), iterations: 10_000_000, ..Budget::DEFAULT },
        1,
    );
    let t = std::sync::Arc::new(Template::expr("[range(200000)] | length").unwrap());
    let out = futures::executor::block_on(ev.eval(&t, &json!(null), &Scope::empty())).unwrap();
    assert_eq!(out, json!(200000));
    let t = std::sync::Arc::new(Template::expr("reduce range(250) as $i (null; [.]) | 1").unwrap());
    let out = futures::executor::block_on(ev.eval(&t, &json!(null), &Scope::empty())).unwrap();
    assert_eq!(out, json!(1));
}

mod hostile;

/// Issue 16: an expression is compiled with only the library definitions it reaches. Each of
/// these reaches its definitions by another way (directly, through other definitions, a
/// format, a shadowed generator, a variable, a path) and must mean what it meant with the
/// whole library.
#[test]
fn a_pruned_expression_means_what_it_meant_with_the_whole_library() {
    let input = json!({"items": [{"sku": "b", "qty": 2, "tags": ["x"]}, {"sku": "a", "qty": 0}], "name": "Ann Lee"});
    let cases = [
        "[.items[] | select(.qty > 0) | {sku, qty}] | sort_by(.sku) | map(.qty) | add",
        "[paths] | length",
        "[paths(type == \"number\")] | length",
        "walk(if type == \"number\" then . + 1 else . end)",
        "to_entries | map(.key) | join(\",\")",
        "with_entries(.value |= type)",
        ".name | @base64 | @base64d",
        "\"\\(.name | ascii_upcase)!\" | test(\"ANN\")",
        "[limit(3; range(10))]",
        "[range(0; 10; 3)]",
        "[.items | recurse | numbers]",
        "[.. | strings] | unique",
        "first(.items[]).sku, last(.items[]).qty",
        "reduce .items[] as $i (0; . + $i.qty)",
        "[foreach .items[] as $i (0; . + 1)]",
        ".items | group_by(.qty > 0) | map(length)",
        "[.name | splits(\" \")] | map(ascii_downcase)",
        "tojson | fromjson | .name",
        "getpath([\"items\", 0, \"sku\"]), (del(.items) | keys), (to_entries | from_entries | keys)",
        ".items | any(.qty == 0), all(.qty >= 0), (map(.qty) | min, max)",
        "[.items[] | .tags // [] | length] | add",
        "input_line_number? // \"none\"",
        "try error(\"boom\") catch .",
        "[combinations(2)] | length",
        "(.name | ltrimstr(\"Ann \") | rtrimstr(\"e\")), (.name | split(\" \") | reverse)",
        "now | type",
        "@json \"v: \\(.items[0].sku)\"",
    ];
    for src in cases {
        let pruned = Expr::compile(src).map(|e| e.eval(&input, &Scope::empty(), Budget::DEFAULT));
        let whole = Expr::compile_whole(src).map(|e| e.eval(&input, &Scope::empty(), Budget::DEFAULT));
        assert_eq!(format!("{pruned:?}"), format!("{whole:?}"), "{src}");
        assert!(matches!(pruned, Ok(Ok(_))) || src.contains("input_line_number"), "{src}: {pruned:?}");
    }
    // Undefined names are still named, with the same hint.
    let pruned = Expr::compile(".items | lenght").unwrap_err();
    let whole = Expr::compile_whole(".items | lenght").unwrap_err();
    assert_eq!(pruned.message, whole.message);
}

/// Issue 14: an undefined name offers the closest known one, like unknown keys do.
#[test]
fn undefined_names_suggest_the_closest_known_one() {
    let err = Expr::compile(".items | lenght").unwrap_err();
    assert!(err.message.contains("did you mean `length`"), "{err:?}");
    let err = Expr::compile("$confg.url").unwrap_err();
    assert!(err.message.contains("did you mean `$config`"), "{err:?}");
    let err = Expr::compile("frobnicate_everything").unwrap_err();
    assert!(!err.message.contains("did you mean"), "nothing close: {err:?}");
}

/// Issue 14: a run-time error names its expression and where in the template it is (jq's
/// own message does not say which of a step's expressions failed); the message itself stays
/// as given, since flows read it back (`$steps.x.error.message`).
#[test]
fn runtime_errors_name_the_expression_and_its_place() {
    let t = Template::compile(&json!({ "body": { "name": "{{ .customer.name | ascii_upcase }}" }, "n": 1 })).unwrap();
    let err = t.eval(&json!({ "customer": {} }), &Scope::empty(), Budget::DEFAULT).unwrap_err();
    assert!(err.to_string().ends_with(", in `.customer.name | ascii_upcase` at body.name"), "{err}");
    assert_eq!(err.location(), Some(json!({ "expression": ".customer.name | ascii_upcase", "at": "body.name" })));
    let t = Template::compile(&json!(["ok", "{{ error(\"custom\") }}"])).unwrap();
    let err = t.eval(&json!(null), &Scope::empty(), Budget::DEFAULT).unwrap_err();
    assert_eq!(err.message(), "custom", "the flow's own message, as written");
    assert_eq!(err.to_string(), "custom, in `error(\"custom\")` at [1]");
    let t = Template::expr(".a.b + 1").unwrap();
    let err = t.eval(&json!({ "a": { "b": "x" } }), &Scope::empty(), Budget::DEFAULT).unwrap_err();
    assert_eq!(err.location(), Some(json!({ "expression": ".a.b + 1" })), "{err}");
}

#[test]
fn a_hint_after_a_character_of_several_bytes_does_not_panic() {
    // Found by fuzzing: the hint for a hyphenated id looked back past a multi-byte character
    // and sliced inside it.
    let src = "%t \\ueies$_es$__loc__(\0\0wc__(\0\0w\u{f6}rd.u-e----pl-W\u{e}";
    assert!(Expr::compile(src).is_err());
    let err = Expr::compile("\u{f6}.only-active").unwrap_err().to_string();
    assert!(err.contains("[\"only-active\"]"), "{err}");
}
