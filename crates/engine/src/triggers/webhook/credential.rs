//! A webhook credential or signing secret as written: a literal, or a template over `$config`
//! evaluated when the version is compiled (credentials are fixed per deployment).

use flowgate_expr::{Budget, Scope, Template};
use flowgate_model::{Diags, Path};
use serde_json::{Map, Value};

/// The text `written` stands for; `None` when a template gives nothing usable. `what` names
/// it in problems (`credential`, `secret`). An empty value is a problem only when every
/// config value is set: unset ones already keep the integration from going live.
pub(crate) fn resolve(
    written: &str,
    config: &Value,
    values_missing: bool,
    what: &str,
    at: &Path,
    diags: &mut Diags,
) -> Option<String> {
    if !written.contains("{{") {
        return Some(written.to_owned());
    }
    let empty = Map::new();
    let scope = Scope {
        trigger: &Value::Null,
        steps: &empty,
        outer: &[],
        config,
        flow: &Value::Null,
        execution: &Value::Null,
        item: None,
        state: None,
    };
    match Template::compile(&Value::String(written.to_owned()))
        .map_err(|e| e[0].error.message.clone())
        .and_then(|t| t.eval(&Value::Null, &scope, Budget::DEFAULT).map_err(|e| e.to_string()))
    {
        Ok(Value::String(v)) if !v.is_empty() => Some(v),
        Ok(Value::Null) | Ok(Value::String(_)) => {
            if !values_missing {
                diags.error(at, format!("the {what} is empty (is the config value set?)"));
            }
            None
        }
        Ok(other) => Some(flowgate_expr::to_text(&other)),
        Err(e) => {
            diags.error(at, format!("expression does not compile or fails: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::compile::compile_in;
    use flowgate_model::Format;
    use serde_json::{Map, Value, json};

    const DOC: &str = r#"
integration: creds
config:
  token: { type: secret, required: true }
  hookSecret: { type: secret, required: true }
flows:
  - flow: bearer
    trigger: { webhook: { path: b, auth: { bearer: { token: "{{ $config.token }}" } } } }
    steps: [ { id: echo, transform: '.' } ]
  - flow: signed
    trigger: { webhook: { path: s, verify: { github: { secret: "{{ $config.hookSecret }}" } } } }
    steps: [ { id: echo, transform: '.' } ]
"#;

    fn values(token: &str, secret: &str) -> Map<String, Value> {
        json!({ "token": token, "hookSecret": secret }).as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn set_values_resolve_without_problems() {
        if let Err(problems) = compile_in(DOC, Format::Yaml, &values("t0k", "s3cret")) {
            panic!("{problems:?}");
        }
    }

    #[test]
    fn an_empty_value_is_named_as_a_credential_or_a_secret_where_it_is_written() {
        let problems = compile_in(DOC, Format::Yaml, &values("", "")).err().expect("empty values are refused");
        let at = |needle: &str| problems.iter().find(|d| d.message.contains(needle)).map(|d| d.path.clone());
        assert_eq!(at("the credential is empty").as_deref(), Some("flows[0].trigger.webhook.auth.bearer.token"));
        assert_eq!(at("the secret is empty").as_deref(), Some("flows[1].trigger.webhook.verify.github.secret"));
    }
}
