//! Flow test cases, declared beside the flows (`tests:`): a trigger event, mocked outputs of
//! chosen steps (so nothing external is called) and what to expect. `flowgate test` and
//! `POST /v1/integrations/{slug}/test` run them; this module only defines and checks them.
//!
//! ```yaml
//! tests:
//!   - name: active customer is pushed
//!     flow: sync-customers
//!     trigger: { body: { id: 7 } }
//!     mocks: { customer: { status: 200, body: { name: Ann, active: true } } }
//!     mockErrors: { notify: { code: http_status, message: 'HTTP 503' } }   # fails instead
//!     expect:
//!       status: succeeded
//!       steps: { mapped: { name: Ann } }          # equality on the keys given
//!       respond: { status: 201 }
//!       jq: [ '$steps.push.body.id | startswith("p-")' ]   # each must be true
//! ```

use crate::diag::{Diags, Path};
use crate::step::{StepDef, StepKind};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// One test case.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct FlowTest {
    /// What it shows (unique in the integration).
    pub name: String,
    /// The flow it runs.
    pub flow: String,
    /// The trigger event.
    #[serde(default)]
    pub trigger: TestTrigger,
    /// Outputs of steps used instead of running them (an `http` step's output is
    /// `{status, headers, body}`), by step id (wherever the step runs) or by journal key
    /// (`each[3].push`: that loop item's run only).
    #[serde(default)]
    pub mocks: IndexMap<String, Value>,
    /// Failures of steps, by step id or journal key like `mocks`: the step fails with this
    /// error instead of running (its `onError` applies).
    #[serde(default)]
    pub mock_errors: IndexMap<String, MockError>,
    /// What must hold afterwards.
    #[serde(default)]
    pub expect: Expect,
}

/// A step's failure in a test (`mockErrors`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct MockError {
    /// The error's code (`http_status`, `http_timeout`, …).
    pub code: String,
    /// What happened.
    pub message: String,
    /// Extra facts (an HTTP status and a response excerpt, …), as the step would give them.
    #[serde(default)]
    pub details: Option<Value>,
}

/// The trigger event of a test.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct TestTrigger {
    /// `$trigger.body`.
    #[serde(default)]
    pub body: Value,
    /// `$trigger.headers` (names are lower-cased).
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// `$trigger.query`.
    #[serde(default)]
    pub query: Map<String, Value>,
}

/// Expectations. Literal values are compared for equality on the keys they give (an object
/// expects those keys with those values, recursively; anything else must be equal).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Expect {
    /// The execution's final status: `succeeded` (default), `failed`, `filtered`.
    #[serde(default)]
    pub status: Option<String>,
    /// Outputs of steps, by id.
    #[serde(default)]
    pub steps: IndexMap<String, Value>,
    /// The execution's output (its last step's).
    #[serde(default)]
    pub output: Option<Value>,
    /// The `respond` step's answer: `{status, headers, body}`.
    #[serde(default)]
    pub respond: Option<Value>,
    /// jq predicates over the run (`.` is the output; `$steps`, `$trigger`, `$config` are
    /// bound; `$execution.response` is the answer); each must be true.
    #[serde(default)]
    pub jq: Vec<String>,
}

/// Statuses a test may expect.
pub const EXPECTABLE: [&str; 3] = ["succeeded", "failed", "filtered"];

impl FlowTest {
    /// Checks the case against the integration's flows: each `(flow, its steps)`.
    pub(crate) fn check<S: StepKind>(&self, path: &Path, flows: &[(&str, &[StepDef<S>])], diags: &mut Diags) {
        let Some((_, steps)) = flows.iter().find(|(name, _)| *name == self.flow) else {
            let names: Vec<&str> = flows.iter().map(|(name, _)| *name).collect();
            diags.error(&path.key("flow"), format!("no flow `{}` (flows: {})", self.flow, names.join(", ")));
            return;
        };
        let mut ids = Vec::new();
        collect_ids(steps, &mut ids);
        // A step inside a loop or branch may be named by its journal key (`each[2].push`).
        let known = |key: &str| key.split('.').all(|part| ids.contains(&part.split('[').next().unwrap_or(part)));
        let unknown = |at: Path, key: &str, diags: &mut Diags| {
            diags.error(&at, format!("flow `{}` has no step `{key}`", self.flow));
        };
        for id in self.mocks.keys().filter(|k| !known(k)) {
            unknown(path.key("mocks").key(id.clone()), id, diags);
        }
        for id in self.mock_errors.keys() {
            if !known(id) {
                unknown(path.key("mockErrors").key(id.clone()), id, diags);
            } else if self.mocks.contains_key(id) {
                diags.error(
                    &path.key("mockErrors").key(id.clone()),
                    format!("step `{id}` is both in `mocks` and in `mockErrors`"),
                );
            }
        }
        for id in self.expect.steps.keys().filter(|k| !known(k)) {
            unknown(path.key("expect").key("steps").key(id.clone()), id, diags);
        }
        if let Some(s) = &self.expect.status
            && !EXPECTABLE.contains(&s.as_str())
        {
            diags.error(&path.key("expect").key("status"), format!("expected one of: {}", EXPECTABLE.join(", ")));
        }
    }
}

fn collect_ids<'a, S: StepKind>(steps: &'a [StepDef<S>], out: &mut Vec<&'a str>) {
    for s in steps {
        out.push(s.id());
        for (_, children) in s.kind.children() {
            collect_ids(children, out);
        }
    }
}

/// Where `actual` differs from `expected` (equality on the keys `expected` gives): a list of
/// (path, expected, actual), empty when it matches.
pub fn differences(expected: &Value, actual: &Value) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    diff_into("", expected, actual, &mut out);
    out
}

fn diff_into(at: &str, expected: &Value, actual: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                match a.get(k) {
                    Some(av) => diff_into(&path, ev, av, out),
                    None => out.push((path, ev.clone(), Value::Null)),
                }
            }
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => {}
        _ if expected == actual => {}
        _ => out.push((if at.is_empty() { ".".to_owned() } else { at.to_owned() }, expected.clone(), actual.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::differences;
    use serde_json::json;

    #[test]
    fn compares_on_the_keys_given() {
        assert!(differences(&json!({ "a": 1 }), &json!({ "a": 1.0, "b": 2 })).is_empty());
        assert!(differences(&json!({ "a": { "b": [1, 2] } }), &json!({ "a": { "b": [1, 2], "c": 0 } })).is_empty());
        let d = differences(&json!({ "a": { "b": 2 }, "x": "y" }), &json!({ "a": { "b": 3 } }));
        assert_eq!(d, vec![("a.b".into(), json!(2), json!(3)), ("x".into(), json!("y"), json!(null))]);
        assert_eq!(differences(&json!([1]), &json!([1, 2])).len(), 1, "lists must be equal");
        assert_eq!(differences(&json!("a"), &json!("b"))[0].0, ".");
    }
}
