//! Unit tests: decoding, located problems, the schema.

use super::*;
use crate::decode::decode;
use schemars::{Schema, SchemaGenerator};
use serde_json::Value;

/// A small set of kinds standing in for the `steps` crate.
#[derive(Debug)]
#[allow(dead_code)]
enum Kind {
    Echo(String),
    Group(Vec<StepDef<Kind>>),
}

impl StepKind for Kind {
    const KINDS: &'static [&'static str] = &["echo", "group"];

    fn decode(kind: &str, value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        match kind {
            "echo" => decode::<String>(value, path, diags).map(Kind::Echo),
            _ => Some(Kind::Group(step::decode_steps(value, path, diags))),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Kind::Echo(_) => "echo",
            Kind::Group(_) => "group",
        }
    }

    fn children(&self) -> Vec<(Path, &[StepDef<Self>])> {
        match self {
            Kind::Group(s) => vec![(Path::root(), s.as_slice())],
            Kind::Echo(_) => vec![],
        }
    }

    fn schemas(g: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
        vec![("echo", g.subschema_for::<String>()), ("group", g.subschema_for::<Vec<Value>>())]
    }
}

fn check(text: &str) -> (Option<Integration<Kind>>, Vec<Diagnostic>) {
    let doc = source::parse(text, Format::sniff(text)).map_err(|d| vec![d]).unwrap();
    let mut diags = Diags::new(doc.locations.clone());
    let i = decode_integration::<Kind>(&doc, &mut diags);
    (i, diags.into_vec())
}

#[test]
fn decodes_a_valid_document() {
    let (i, diags) = check(
        "integration: acme\nconfig:\n  base: { type: string, default: \"http://x\" }\nflows:\n  - flow: one\n    trigger:\n      webhook: { path: /a/b, methods: [POST, get], respond: { mode: sync, timeout: 5s } }\n    steps:\n      - id: e\n        echo: hi\n      - id: g\n        group: [ { id: inner, echo: x } ]\n",
    );
    assert!(diags.is_empty(), "{diags:?}");
    let i = i.unwrap();
    assert_eq!(i.flows[0].steps.len(), 2);
    let Trigger::Webhook(w) = &i.flows[0].trigger else { panic!() };
    assert_eq!(w.normalized_path(), "a/b");
    assert_eq!(w.methods, vec![Method::Post, Method::Get]);
    assert_eq!(w.respond.timeout, Dur::secs(5));
    assert_eq!(i.default_config()["base"], "http://x");
}

#[test]
fn reports_every_problem_with_its_location() {
    let text = "integration: Acme\nflows:\n  - flow: one\n    trigger: { webhook: { path: x, metods: [POST] } }\n    steps:\n      - id: a\n        ecko: 1\n      - id: a\n        echo: 2\n        retrys: 3\n      - id: b\n        group:\n          - { id: a, echo: hi }\n  - flow: one\n    trigger: { scedule: {} }\n    steps: []\n";
    let (_, diags) = check(text);
    let text_of =
        |d: &Diagnostic| format!("{}:{} {} {}", d.line.unwrap_or(0), d.column.unwrap_or(0), d.path, d.message);
    let all: Vec<String> = diags.iter().map(text_of).collect();
    let find = |needle: &str| {
        all.iter().find(|s| s.contains(needle)).unwrap_or_else(|| panic!("no `{needle}` in {all:#?}")).clone()
    };
    assert!(find("invalid slug `Acme`").starts_with("1:1 integration"));
    assert!(find("unknown key `metods`").contains("did you mean `methods`"), "{all:#?}");
    assert!(find("unknown key `metods`").starts_with("4:"));
    assert!(find("ecko").starts_with("7:9 flows[0].steps[0].ecko"));
    assert!(find("ecko").contains("did you mean `echo`"));
    assert!(find("`retrys`").starts_with("10:9"));
    assert!(find("duplicate step id `a` (also at flows[0].steps[0])").starts_with("8:"));
    assert!(find("duplicate step id `a` (also at flows[0].steps[0])").contains("flows[0].steps[1].id"));
    assert!(
        all.iter().any(|s| s.contains("flows[0].steps[2].group[0].id") && s.contains("duplicate step id")),
        "{all:#?}"
    );
    assert!(find("duplicate flow `one`").starts_with("14:"));
    assert!(find("unknown kind `scedule`").contains("flows[1].trigger"), "{all:#?}");
}

#[test]
fn json_documents_get_paths_and_positions() {
    let (_, diags) = check(
        r#"{"integration": "a", "flows": [{"flow": "f", "trigger": {"manual": {}}, "steps": [{"id": "1x", "echo": 5}]}]}"#,
    );
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert!(diags.iter().any(|d| d.path == "flows[0].steps[0].echo" && d.message.contains("expected a string")));
    assert!(diags.iter().all(|d| d.line == Some(1)));
}

#[test]
fn syntax_errors_are_located() {
    let err = source::parse("a: [1, 2\nb: 3\n", Format::Yaml).unwrap_err();
    assert!(err.line.is_some() && err.message.starts_with("invalid YAML"), "{err:?}");
    let err = source::parse("{\"a\": }", Format::Json).unwrap_err();
    assert_eq!((err.line, err.column), (Some(1), Some(7)));
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    assert!(source::parse(&deep, Format::Yaml).unwrap_err().message.contains("deeper"));
}

/// Issue 13: a repeated key is an error in both formats, with its line (JSON used to keep
/// the last one silently), at any depth; the same key in two objects is fine.
#[test]
fn duplicate_keys_are_refused_in_json_as_in_yaml() {
    let yaml = source::parse("integration: a\nintegration: b\n", Format::Yaml).unwrap_err();
    assert!(yaml.line.is_some(), "{yaml:?}");
    for (text, line) in [
        ("{\"integration\": \"a\", \"integration\": \"b\"}", 1),
        ("{\"integration\": \"a\",\n \"flows\": [{\"flow\": \"f\",\n  \"steps\": [], \"steps\": []}]}", 3),
    ] {
        let err = source::parse(text, Format::Json).unwrap_err();
        assert!(err.message.contains("duplicate key"), "{err:?}");
        assert_eq!(err.line, Some(line), "{err:?}");
    }
    let ok = source::parse("{\"a\": {\"k\": 1}, \"b\": {\"k\": [1.5, -2, null, true]}}", Format::Json).unwrap();
    assert_eq!(ok.value["b"]["k"][0], 1.5);
    assert_eq!(ok.value["b"]["k"][1], -2);
}

/// Issue 12: nesting of every shape is refused before a tree is built (building and
/// dropping it recursed once per level and overflowed the stack). Run on a thread with a
/// small stack, so a regression fails instead of passing on a big one.
#[test]
fn deep_documents_of_every_shape_are_refused_without_recursion() {
    let n = 20_000;
    let block_seq = format!("x:\n{}", (0..n).map(|i| format!("{}- ", "  ".repeat(i.min(1)))).collect::<String>());
    let block_seq_flat = format!("x:\n{}1\n", "- ".repeat(n));
    let block_map = (0..2000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect::<String>();
    let flow_in_block = format!("a:\n  - {}1{}\n", "[".repeat(n), "]".repeat(n));
    let mixed = format!("x:\n{}", "- {a: ".repeat(n));
    let json = format!("{{\"integration\": {}1{}}}", "[".repeat(n), "]".repeat(n));
    let cases = [
        (block_seq, Format::Yaml),
        (block_seq_flat, Format::Yaml),
        (block_map, Format::Yaml),
        (flow_in_block, Format::Yaml),
        (mixed, Format::Yaml),
        (json, Format::Json),
    ];
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            for (text, format) in cases {
                let err = source::parse(&text, format).unwrap_err();
                assert!(
                    err.message.contains("deeper") || err.message.starts_with("invalid"),
                    "{}: {err:?}",
                    &text[..40]
                );
                assert!(err.line.is_some(), "{err:?}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
    // As deep as allowed still loads.
    let ok = format!("x:\n{}1\n", "- ".repeat(source::MAX_DOCUMENT_DEPTH - 1));
    source::parse(&ok, Format::Yaml).unwrap();
}

#[test]
fn durations_parse() {
    assert_eq!(Dur::parse("100ms").unwrap(), Dur::millis(100));
    assert_eq!(Dur::parse("5min").unwrap(), Dur::secs(300));
    assert_eq!(Dur::parse("5m").unwrap(), Dur::secs(300));
    assert_eq!(Dur::parse("1hr").unwrap(), Dur::secs(3600));
    assert_eq!(Dur::parse("1d").unwrap(), Dur::secs(86400));
    assert_eq!(Dur::parse("1m30s").unwrap(), Dur::secs(90));
    assert!(Dur::parse("5 parsecs").is_err());
    assert_eq!(Dur::secs(300).to_string(), "5m");
    // Found by fuzzing (issue 12): numbers beyond what a Duration holds panicked.
    for huge in ["300000000000000d", "10000000000000000000s10000000000000000000s", "3651d", &"9".repeat(400)] {
        let e = Dur::parse(&format!("{huge}s")).or_else(|_| Dur::parse(huge)).unwrap_err();
        assert!(e.contains("the longest accepted is 3650d") || e.contains("invalid duration"), "{huge}: {e}");
    }
    assert_eq!(Dur::parse("3650d").unwrap(), Dur(crate::duration::MAX_DURATION));
    let from_ms: Result<Dur, _> = serde_json::from_value(serde_json::json!(u64::MAX));
    assert!(from_ms.unwrap_err().to_string().contains("at most 3650d"));
}

#[test]
fn schema_lists_step_kinds_and_forbids_unknown_keys() {
    let s = schema::<Kind>().to_value();
    let text = s.to_string();
    assert!(text.contains("\"echo\"") && text.contains("\"additionalProperties\":false"), "{text}");
    assert!(s["$defs"]["Step"]["oneOf"].as_array().unwrap().len() == 2);
}

#[test]
fn database_connections_decode_and_their_problems_are_located() {
    let flows = "flows:\n  - flow: f\n    trigger: { manual: {} }\n    steps: []\n";
    let (i, diags) = check(&format!(
        "integration: a\nconnections:\n  pg: {{ postgres: {{ url: \"postgresql://u:p@db:5432/app\" }} }}\n  my: {{ mysql: {{ url: \"{{{{ $config.myUrl }}}}\" }} }}\n  maria: {{ mysql: {{ url: \"mariadb://u@db/app\" }} }}\n  lite: {{ sqlite: {{ path: data/app.db }} }}\n{flows}"
    ));
    assert!(diags.is_empty(), "{diags:#?}");
    let kinds: Vec<&str> = i.unwrap().connections.values().map(Connection::kind).collect();
    assert_eq!(kinds, ["postgres", "mysql", "mysql", "sqlite"]);
    let (_, diags) = check(&format!(
        "integration: a\nconnections:\n  pg: {{ postgres: {{ url: \"mysql://u@db/app\" }} }}\n  my: {{ mysql: {{ url: \"mysql:///app\" }} }}\n  lite: {{ sqlite: {{ path: \" \" }} }}\n  bad: {{ postgres: {{ url: \"postgres://db\", pasword: x }} }}\n{flows}"
    ));
    let at = |path: &str, text: &str| diags.iter().any(|d| d.path == path && d.message.contains(text));
    assert!(at("connections.pg.postgres.url", "expected postgres:// or postgresql://"), "{diags:#?}");
    assert!(at("connections.my.mysql.url", "expected mysql:// or mariadb://"), "{diags:#?}");
    assert!(at("connections.lite.sqlite.path", "empty"), "{diags:#?}");
    assert!(at("connections.bad.postgres.pasword", "unknown key"), "{diags:#?}");
    // The URL holds the password: sealed when written literally, never shown in a problem.
    assert!(diags.iter().all(|d| !d.message.contains("u@db")), "{diags:#?}");
    for kind in ["postgres", "mysql"] {
        assert!(connection::SECRET_FIELDS.contains(&(kind, "url")));
    }
    let schema = schema::<Kind>().to_value().to_string();
    for kind in ["\"postgres\"", "\"mysql\"", "\"sqlite\""] {
        assert!(schema.contains(kind), "{kind} in the schema");
    }
}
