//! What changed between a recorded execution and its dry run: the end (status, error), each
//! step's output by journal key (a structural JSON diff), the filter and switch decisions
//! and the sync answer. Both sides are compared as recorded, secrets as markers, so what a
//! result shows never holds a secret's value.

use crate::executor::dry::DryRan;
use flowgate_store::StepRecord;
use flowgate_store::dry_runs::Recording;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Journal statuses of a step that completed (its output is passed on).
const COMPLETED: [&str; 3] = ["succeeded", "skipped", "continued"];
/// At most this many differences are listed per step (the rest are counted).
const MAX_DIFFS: usize = 20;
/// A value shown in a difference is cut to about this many bytes of JSON.
const MAX_SHOWN: usize = 2_000;
/// At most this many changes are listed per execution (a loop of thousands of items may
/// change every one; the rest are counted).
const MAX_CHANGES: usize = 100;

/// A switch step of the flow tried: its journal id and its cases, each with the ids of the
/// steps it holds (at any depth).
#[derive(Debug, Clone)]
pub(crate) struct SwitchCases {
    pub id: String,
    pub cases: Vec<(String, Vec<String>)>,
}

/// What the comparison needs of a flow's steps (of the version tried).
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {
    /// Its switch steps.
    pub switches: Vec<SwitchCases>,
    /// Ids of its steps whose output is their input (`filter`): their decisions are
    /// compared, not their outputs, which would repeat the step before's difference.
    pub pass_through: std::collections::HashSet<String>,
}

impl Shape {
    /// The shape of a flow's steps.
    pub(crate) fn of<S: flowgate_model::StepKind>(steps: &[flowgate_model::StepDef<S>]) -> Shape {
        let mut shape = Shape::default();
        switches(steps, &mut shape.switches);
        let mut all = Vec::new();
        kinds_in(steps, &mut all);
        shape.pass_through = all.into_iter().filter(|(_, k)| *k == "filter").map(|(id, _)| id).collect();
        shape
    }
}

/// The step id of a journal key: `each[3].push` → `push`, `each[3]` → `each`.
pub(crate) fn step_id(key: &str) -> &str {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.split('[').next().unwrap_or(last)
}

/// A version's flow as written: its steps by id with their kind and definition (the JSON of
/// the step as stored, markers for literals), and the integration's `config` and
/// `connections`, which the steps' templates read. A step answered from the recording is
/// compared by these: what it would have sent is not known, but that its definition changed is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Written {
    steps: std::collections::HashMap<String, (String, Value)>,
    shared: Value,
}

impl Written {
    /// True when the flow has a step `id` of a pure kind (it runs in a dry run).
    pub(crate) fn is_pure(&self, id: &str) -> bool {
        self.steps.get(id).is_some_and(|(k, _)| crate::answers::is_pure(k))
    }

    /// `flow` of a stored document (JSON).
    pub(crate) fn of(document: &Value, flow: &str) -> Written {
        let mut steps = std::collections::HashMap::new();
        if let Some(f) = document["flows"].as_array().and_then(|a| a.iter().find(|f| f["flow"] == flow)) {
            walk(&f["steps"], &mut steps);
        }
        Written { steps, shared: json!({ "config": document["config"], "connections": document["connections"] }) }
    }
}

fn walk(v: &Value, out: &mut std::collections::HashMap<String, (String, Value)>) {
    use flowgate_model::StepKind;
    match v {
        Value::Object(o) => {
            let kinds = <flowgate_steps::StepConfig as StepKind>::KINDS;
            if let (Some(id), Some(kind)) =
                (o.get("id").and_then(Value::as_str), o.keys().find(|k| kinds.contains(&k.as_str())))
            {
                out.insert(id.to_owned(), (kind.clone(), v.clone()));
            }
            for child in o.values() {
                walk(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        _ => {}
    }
}

/// How one execution compares.
pub(crate) struct Verdict {
    pub outcome: &'static str,
    pub detail: Value,
}

/// One side: each completed step's status and output, the end and the answer.
struct Side {
    steps: BTreeMap<String, (String, Value)>,
    status: String,
    error: Option<Value>,
    response: Option<Value>,
    last_completed: Option<String>,
}

fn side(entries: &[StepRecord], status: &str, error: Option<Value>, response: Option<&str>) -> Side {
    let mut steps = BTreeMap::new();
    let mut last_completed = None;
    for e in entries {
        if COMPLETED.contains(&e.status.as_str()) {
            let out = e.output.as_deref().and_then(|o| serde_json::from_str(o).ok()).unwrap_or(Value::Null);
            steps.insert(e.step_id.clone(), (e.status.clone(), out));
            last_completed = Some(e.step_id.clone());
        }
    }
    let response = response.and_then(|r| serde_json::from_str(r).ok());
    Side { steps, status: status.to_owned(), error, response, last_completed }
}

/// True when a recorded execution kept what a dry run compares: a finished run whose
/// completed steps kept their outputs (a flow with `diagnostics: errors` or `minimal` keeps
/// none of a successful run's).
pub(crate) fn kept(recording: &Recording) -> bool {
    let finished = matches!(recording.execution.status.as_str(), "succeeded" | "failed" | "filtered");
    let outputs =
        recording.journal.iter().filter(|e| COMPLETED.contains(&e.status.as_str())).all(|e| e.output.is_some());
    finished && outputs && !(recording.journal.is_empty() && recording.execution.status != "failed")
}

/// Compares a recording with its dry run; `shape` is the tried flow's, `written` the flow as
/// the recorded version and the tried one wrote it.
pub(crate) fn compare(recording: &Recording, ran: &DryRan, shape: &Shape, written: (&Written, &Written)) -> Verdict {
    let x = &recording.execution;
    let was_error = x.error.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok());
    let was = side(&recording.journal, &x.status, was_error, x.response.as_deref());
    let now = side(&ran.entries, ran.status.as_str(), ran.error.clone(), ran.response.as_deref());
    if !ran.unanswered.is_empty() {
        return Verdict {
            outcome: "unanswered",
            detail: json!({
                "steps": ran.unanswered,
                "message": "these steps have no recorded answer (new in this version, or not reached when recorded); \
                            their effect was not performed and the run stopped there",
            }),
        };
    }
    // Steps answered from the recording: the recording answers them only as they were.
    let (was_written, now_written) = written;
    let mut answered: Vec<&str> = ran
        .entries
        .iter()
        .map(|e| step_id(&e.step_id))
        .filter(|id| now_written.steps.get(*id).is_some_and(|(k, _)| !crate::answers::is_pure(k)))
        .collect();
    answered.sort_unstable();
    answered.dedup();
    let mut changes = Vec::new();
    let mut other_kind = Vec::new();
    for id in &answered {
        let (Some((wk, wd)), Some((nk, nd))) = (was_written.steps.get(*id), now_written.steps.get(*id)) else {
            continue;
        };
        if wk != nk {
            other_kind.push(format!("`{id}` was a `{wk}` step when recorded and is a `{nk}` step now"));
        } else if wd != nd {
            let mut diffs = Vec::new();
            diff("", wd, nd, &mut diffs);
            changes.push(json!({ "at": format!("steps.{id}.definition"), "change": "changed", "diff": diffs,
                "note": "answered from the recording, which was made by the definition before: what it would send now is not known" }));
        }
    }
    if !other_kind.is_empty() {
        return Verdict {
            outcome: "unanswered",
            detail: json!({ "steps": answered.iter().filter(|id| other_kind.iter().any(|m| m.starts_with(&format!("`{id}`")))).collect::<Vec<_>>(),
                "message": format!("nothing recorded answers these steps as they are now: {}", other_kind.join("; ")) }),
        };
    }
    if !answered.is_empty() && was_written.shared != now_written.shared {
        let mut diffs = Vec::new();
        diff("", &was_written.shared, &now_written.shared, &mut diffs);
        changes.push(json!({ "at": "integration", "change": "changed", "diff": diffs,
            "note": "the config or connections the steps answered from the recording read changed" }));
    }
    if was.status != now.status {
        changes.push(json!({ "at": "status", "was": was.status, "now": now.status }));
    }
    let keys: std::collections::BTreeSet<&String> = was.steps.keys().chain(now.steps.keys()).collect();
    for key in keys {
        match (was.steps.get(key), now.steps.get(key)) {
            (Some((ws, _)), Some((ns, _)))
                if (ws == "skipped" && ns == "skipped") || shape.pass_through.contains(step_id(key)) =>
            {
                // Its output is its input: only how it ended is its own.
                if ws != ns {
                    changes.push(
                        json!({ "at": format!("steps.{key}"), "change": "changed", "diff": [], "was": ws, "now": ns }),
                    );
                }
            }
            (Some((ws, wo)), Some((ns, no))) => {
                let mut diffs = Vec::new();
                diff("", wo, no, &mut diffs);
                if ws != ns || !diffs.is_empty() {
                    let mut c = json!({ "at": format!("steps.{key}"), "change": "changed", "diff": diffs });
                    if ws != ns {
                        c["was"] = json!(ws);
                        c["now"] = json!(ns);
                    }
                    changes.push(c);
                }
            }
            (Some((_, wo)), None) => {
                changes.push(json!({ "at": format!("steps.{key}"), "change": "removed", "was": shown(wo) }));
            }
            (None, Some((_, no))) => {
                changes.push(json!({ "at": format!("steps.{key}"), "change": "added", "now": shown(no) }));
            }
            (None, None) => {}
        }
    }
    for (key, (w, n)) in decisions(&was, &now, &shape.switches) {
        if w != n {
            changes.push(json!({ "at": format!("decisions.{key}"), "was": w, "now": n }));
        }
    }
    if was.response != now.response {
        let mut diffs = Vec::new();
        diff(
            "",
            was.response.as_ref().unwrap_or(&Value::Null),
            now.response.as_ref().unwrap_or(&Value::Null),
            &mut diffs,
        );
        changes.push(json!({ "at": "answer", "change": "changed", "diff": diffs }));
    }
    let more = changes.len().saturating_sub(MAX_CHANGES);
    changes.truncate(MAX_CHANGES);
    if more > 0 {
        changes.push(json!({ "at": "more", "more": more }));
    }
    let failed_alike = was.status == "failed"
        && now.status == "failed"
        && was.error.as_ref().map(|e| (&e["step"], &e["code"])) == now.error.as_ref().map(|e| (&e["step"], &e["code"]));
    if now.status == "failed" && !failed_alike {
        return Verdict { outcome: "would_fail", detail: json!({ "error": now.error, "changes": changes }) };
    }
    if changes.is_empty() {
        Verdict { outcome: "same", detail: json!({}) }
    } else {
        Verdict { outcome: "different", detail: json!({ "changes": changes }) }
    }
}

/// Each filter's and switch's decision on both sides, by journal key: a filter `passed` or
/// `stopped` the run; a switch took `case N` or `default` (or `none`).
fn decisions(was: &Side, now: &Side, switches: &[SwitchCases]) -> BTreeMap<String, (Value, Value)> {
    let mut out = BTreeMap::new();
    let filtered = |s: &Side| if s.status == "filtered" { s.last_completed.clone() } else { None };
    for key in [filtered(was), filtered(now)].into_iter().flatten() {
        let decision = |s: &Side| match &filtered(s) {
            Some(k) if *k == key => json!("stopped"),
            _ if s.steps.contains_key(&key) => json!("passed"),
            _ => Value::Null,
        };
        out.insert(key.clone(), (decision(was), decision(now)));
    }
    for sw in switches {
        // Every place the switch ran (its key under a loop's item or a branch, or at the top).
        let places: std::collections::BTreeSet<&String> = was
            .steps
            .keys()
            .chain(now.steps.keys())
            .filter(|k| k.as_str() == sw.id || k.ends_with(&format!(".{}", sw.id)))
            .collect();
        for key in places {
            let prefix = &key[..key.len() - sw.id.len()];
            let taken = |s: &Side| -> Value {
                if !s.steps.contains_key(key) {
                    return Value::Null;
                }
                for (label, ids) in &sw.cases {
                    if ids.iter().any(|id| s.steps.contains_key(&format!("{prefix}{id}"))) {
                        return json!(label);
                    }
                }
                json!("none")
            };
            out.insert(key.clone(), (taken(was), taken(now)));
        }
    }
    out
}

/// The differences between two JSON values: `{path, was, now}` (`path` as in jq: `.a.b[2]`;
/// `.` for the whole value); a key or item missing on one side shows there as absent.
pub(crate) fn diff(at: &str, was: &Value, now: &Value, out: &mut Vec<Value>) {
    if out.len() > MAX_DIFFS {
        out.push(Value::Null); // counted, not shown
        return;
    }
    match (was, now) {
        (Value::Object(w), Value::Object(n)) => {
            for (k, wv) in w {
                let path = format!("{at}{}", key_path(k));
                match n.get(k) {
                    Some(nv) => diff(&path, wv, nv, out),
                    None => out.push(json!({ "path": path, "was": shown(wv) })),
                }
            }
            for (k, nv) in n {
                if !w.contains_key(k) {
                    out.push(json!({ "path": format!("{at}{}", key_path(k)), "now": shown(nv) }));
                }
            }
        }
        (Value::Array(w), Value::Array(n)) => {
            for i in 0..w.len().max(n.len()) {
                let path = format!("{at}[{i}]");
                match (w.get(i), n.get(i)) {
                    (Some(wv), Some(nv)) => diff(&path, wv, nv, out),
                    (Some(wv), None) => out.push(json!({ "path": path, "was": shown(wv) })),
                    (None, Some(nv)) => out.push(json!({ "path": path, "now": shown(nv) })),
                    (None, None) => {}
                }
            }
        }
        (Value::Number(w), Value::Number(n)) if w.as_f64() == n.as_f64() => {}
        _ if was == now => {}
        _ => out.push(json!({ "path": if at.is_empty() { "." } else { at }, "was": shown(was), "now": shown(now) })),
    }
    // Entries past the limit were pushed as nulls: only their count is kept.
    if at.is_empty() {
        let more = out.iter().filter(|v| v.is_null()).count();
        out.retain(|v| !v.is_null());
        if more > 0 {
            out.push(json!({ "more": more }));
        }
    }
}

/// A key as a jq path segment: `.name`, or `."odd key"`.
fn key_path(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { format!(".{k}") } else { format!(".{}", Value::String(k.to_owned())) }
}

/// A value as shown in a difference: cut when large.
fn shown(v: &Value) -> Value {
    let text = v.to_string();
    if text.len() <= MAX_SHOWN {
        return v.clone();
    }
    let mut end = MAX_SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({ "truncated": format!("{}…", &text[..end]), "bytes": text.len() })
}

/// The switch steps of a flow's steps, at any depth.
pub(crate) fn switches<S: flowgate_model::StepKind>(steps: &[flowgate_model::StepDef<S>], out: &mut Vec<SwitchCases>) {
    for s in steps {
        let children = s.kind.children();
        if s.kind.kind() == "switch" {
            let cases = children
                .iter()
                .enumerate()
                .map(|(i, (path, steps))| {
                    let label = if path.to_string().contains("default") {
                        "default".to_owned()
                    } else {
                        format!("case {}", i + 1)
                    };
                    let mut ids = Vec::new();
                    ids_in(steps, &mut ids);
                    (label, ids)
                })
                .collect();
            out.push(SwitchCases { id: s.id().to_owned(), cases });
        }
        for (_, nested) in children {
            switches(nested, out);
        }
    }
}

fn kinds_in<S: flowgate_model::StepKind>(steps: &[flowgate_model::StepDef<S>], out: &mut Vec<(String, &'static str)>) {
    for s in steps {
        out.push((s.id().to_owned(), s.kind.kind()));
        for (_, nested) in s.kind.children() {
            kinds_in(nested, out);
        }
    }
}

fn ids_in<S: flowgate_model::StepKind>(steps: &[flowgate_model::StepDef<S>], out: &mut Vec<String>) {
    for s in steps {
        out.push(s.id().to_owned());
        for (_, nested) in s.kind.children() {
            ids_in(nested, out);
        }
    }
}

#[cfg(test)]
pub(crate) fn diffs(was: &Value, now: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    diff("", was, now, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_listed_with_jq_paths() {
        let was = json!({ "total": 15, "lines": [{ "sku": "a" }, { "sku": "b" }], "odd key": 1, "gone": true });
        let now =
            json!({ "total": 16, "lines": [{ "sku": "a" }, { "sku": "c" }, { "sku": "d" }], "odd key": 1, "new": 2 });
        let d = diffs(&was, &now);
        assert_eq!(
            d,
            vec![
                json!({ "path": ".total", "was": 15, "now": 16 }),
                json!({ "path": ".lines[1].sku", "was": "b", "now": "c" }),
                json!({ "path": ".lines[2]", "now": { "sku": "d" } }),
                json!({ "path": ".gone", "was": true }),
                json!({ "path": ".new", "now": 2 }),
            ]
        );
        assert!(diffs(&json!({ "a": 1.0 }), &json!({ "a": 1 })).is_empty(), "1.0 and 1 are the same number");
        assert_eq!(diffs(&json!(1), &json!("1")), vec![json!({ "path": ".", "was": 1, "now": "1" })]);
        assert_eq!(diffs(&json!({ "a b": 1 }), &json!({ "a b": 2 }))[0]["path"], ".\"a b\"");
    }

    #[test]
    fn many_differences_are_counted_not_listed() {
        let was = Value::Array((0..100).map(|i| json!(i)).collect());
        let now = Value::Array((0..100).map(|i| json!(i + 1)).collect());
        let d = diffs(&was, &now);
        assert!(d.len() <= MAX_DIFFS + 2, "{}", d.len());
        assert!(d.last().unwrap()["more"].as_u64().unwrap() > 0);
    }

    #[test]
    fn large_values_are_cut() {
        let big = json!("x".repeat(10_000));
        let d = diffs(&json!({ "a": big }), &json!({}));
        assert!(d[0]["was"]["truncated"].as_str().unwrap().len() < 2_100);
        assert_eq!(d[0]["was"]["bytes"], 10_002);
    }
}
