//! One run of a poll trigger: fetch the source (following pages), keep the items not seen
//! before, and commit one execution per new item together with the poll's new state.
//!
//! What "new" means: with `id` only, an item whose id is not remembered; with `cursor` only,
//! an item whose cursor is greater than the greatest seen; with both, an item whose cursor is
//! at least the greatest seen and whose (id, cursor) pair is not remembered — so a source
//! queried with an inclusive `since` does not repeat the boundary items, and an item that
//! changed (same id, greater cursor) runs again.
//!
//! The state (`$state`): `cursor`, `seen` (remembered keys, newest last, at most `remember`),
//! `polls`, `items`, `lastPollAt`, `lastStatus` (`ok` / `error`), `lastError`, `lastItems`,
//! `lastSlot`. A failed poll records its error and changes nothing else: the next one fetches
//! the same items again, and none is lost or repeated.

use super::{PaginateSpec, PollSpec};
use crate::compile::{CompiledFlow, FlowTrigger};
use crate::{Engine, TriggerEvent};
use flowgate_expr::{Scope, Template, to_text};
use flowgate_model::FirstRun;
use flowgate_steps::http::PageOverride;
use flowgate_steps::{StepCx, StepError};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// How long an item's identity is remembered as a second guard against a double poll.
const ITEM_IDENTITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// An item of a response.
struct Item {
    value: Value,
    id: Option<String>,
    cursor: Value,
}

/// Polls once; returns the state it committed (`None` when nothing could be committed).
pub(crate) async fn run(engine: &Engine, flow: &Arc<CompiledFlow>, mut state: Value) -> Option<Value> {
    let FlowTrigger::Poll(spec) = &flow.trigger else { return None };
    let inner = &engine.inner;
    let started = inner.clock.now_ms();
    let first = state["polls"].as_u64().unwrap_or(0) == 0 && state["cursor"].is_null() && seen(&state).is_empty();
    let events = match fetch(engine, flow, spec, &state).await {
        Ok((items, pages)) => {
            let (events, next) = select_new(spec, &state, items, first, started);
            state = next;
            state["lastStatus"] = json!("ok");
            state["lastError"] = Value::Null;
            state["lastPages"] = json!(pages);
            state["lastItems"] = json!(events.len());
            state["items"] = json!(state["items"].as_u64().unwrap_or(0) + events.len() as u64);
            state["polls"] = json!(state["polls"].as_u64().unwrap_or(0) + 1);
            events
        }
        Err(e) => {
            tracing::warn!(flow = %flow.slug, integration = %flow.integration, error_code = %e.code, error = %flow.redactor.redact_text(&e.message), "Poll failed; the next one tries again.");
            state["lastStatus"] = json!("error");
            let message = flow.redactor.redact_text(&e.message).into_owned();
            state["lastError"] = json!({ "code": e.code, "message": message, "at": crate::clock::rfc3339(started) });
            state["failures"] = json!(state["failures"].as_u64().unwrap_or(0) + 1);
            Vec::new()
        }
    };
    state["lastPollAt"] = json!(crate::clock::rfc3339(started));
    let row = flow.state_row(&state, inner.clock.now_ms());
    match engine.submit_many(flow, "poll", events, Some(row)).await {
        Ok(ids) => {
            if !ids.is_empty() {
                tracing::info!(flow = %flow.slug, integration = %flow.integration, executions = ids.len(), "Poll found new items.");
            }
            Some(state)
        }
        Err(e) => {
            // Nothing was written: the next poll sees the same items as new.
            tracing::warn!(error = %e, flow = %flow.slug, "Cannot commit a poll's items; the next poll tries again.");
            None
        }
    }
}

/// The remembered keys.
fn seen(state: &Value) -> Vec<String> {
    state["seen"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Fetches every page (up to the limit) and reads its items.
async fn fetch(
    engine: &Engine,
    flow: &CompiledFlow,
    spec: &PollSpec,
    state: &Value,
) -> Result<(Vec<Item>, u32), StepError> {
    let inner = &engine.inner;
    let empty = Map::new();
    // `$state` as templates see it: what the poll keeps, without the bulky remembered keys.
    let mut shown = state.clone();
    if let Some(o) = shown.as_object_mut() {
        o.remove("seen");
    }
    let scope = Scope {
        trigger: &Value::Null,
        steps: &empty,
        outer: &[],
        config: &flow.config,
        flow: &flow.flow_var,
        execution: &Value::Null,
        item: None,
        state: Some(&shown),
    };
    let connections = crate::connections::ExecutionConnections {
        inner,
        tenant: &flow.tenant,
        integration: &flow.integration,
        specs: &flow.connections,
        handed: &crate::connections::Handed::default(),
    };
    let mut items = Vec::new();
    let mut page = match &spec.paginate {
        Some(PaginateSpec::Page { param, start }) | Some(PaginateSpec::Offset { param, start }) => {
            PageOverride { url: None, query: vec![(param.clone(), start.to_string())] }
        }
        _ => PageOverride::default(),
    };
    let mut offset = match &spec.paginate {
        Some(PaginateSpec::Offset { start, .. }) | Some(PaginateSpec::Page { start, .. }) => *start,
        _ => 0,
    };
    let mut pages = 0;
    loop {
        let mut cx = StepCx {
            scope,
            evaluator: &inner.evaluator,
            http: &inner.http,
            idempotency_key: "",
            timeout: spec.request.timeout(),
            logs: Vec::new(),
            response: None,
            outbound: &inner.settings.outbound,
            calls: &flowgate_steps::NoCalls,
            connections: &connections,
            traceparent: None,
        };
        let response = spec.request.send(&Value::Null, &mut cx, &page).await?;
        pages += 1;
        let listed = eval(engine, &spec.items, &response, &scope).await?;
        let listed = match listed {
            Value::Array(a) => a,
            Value::Null => Vec::new(),
            other => {
                return Err(StepError::fatal(
                    "poll_items",
                    format!("`items` gave {} instead of a list of items", kind_of(&other)),
                ));
            }
        };
        let got = listed.len();
        for value in listed {
            let id = match &spec.id {
                Some(e) => Some(match eval(engine, e, &value, &scope).await? {
                    Value::Null => return Err(StepError::fatal("poll_id", "`id` gave null for an item")),
                    v => to_text(&v),
                }),
                None => None,
            };
            let cursor = match &spec.cursor {
                Some(e) => eval(engine, e, &value, &scope).await?,
                None => Value::Null,
            };
            items.push(Item { value, id, cursor });
        }
        if pages >= spec.max_pages || got == 0 {
            break;
        }
        let next = match &spec.paginate {
            None => break,
            Some(PaginateSpec::NextUrl(e)) => match eval(engine, e, &response, &scope).await? {
                Value::String(u) if !u.is_empty() => PageOverride { url: Some(u), query: Vec::new() },
                _ => break,
            },
            Some(PaginateSpec::LinkHeader) => match response["headers"]["link"].as_str().and_then(next_link) {
                Some(u) => PageOverride { url: Some(u), query: Vec::new() },
                None => break,
            },
            Some(PaginateSpec::Page { param, .. }) => {
                offset += 1;
                PageOverride { url: None, query: vec![(param.clone(), offset.to_string())] }
            }
            Some(PaginateSpec::Offset { param, .. }) => {
                offset += got as u64;
                PageOverride { url: None, query: vec![(param.clone(), offset.to_string())] }
            }
        };
        page = next;
    }
    Ok((items, pages))
}

async fn eval(engine: &Engine, t: &Arc<Template>, input: &Value, scope: &Scope<'_>) -> Result<Value, StepError> {
    Ok(engine.inner.evaluator.eval(t, input, scope).await?)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(header: &str) -> Option<String> {
    // Links are `<url>; param; param`, separated by commas (which URLs may hold, inside <>).
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>')? + start;
        let url = &rest[start + 1..end];
        let after = &rest[end + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=")
                .is_some_and(|v| v.trim_matches('"').split_whitespace().any(|r| r.eq_ignore_ascii_case("next")))
        });
        if is_next {
            return Some(url.to_owned());
        }
        rest = &after[params_end..];
    }
    None
}

/// Orders two cursor values: numbers by value, strings as text (ISO times sort right).
fn cmp_cursor(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The items that start executions, and the state after this poll.
fn select_new(spec: &PollSpec, state: &Value, items: Vec<Item>, first: bool, now: i64) -> (Vec<TriggerEvent>, Value) {
    let stored_cursor = state["cursor"].clone();
    let mut remembered: VecDeque<String> = seen(state).into();
    let mut known: HashSet<String> = remembered.iter().cloned().collect();
    let mut greatest = stored_cursor.clone();
    let mut fresh: Vec<(Item, Option<String>)> = Vec::new();
    for item in items {
        let has_cursor = spec.cursor.is_some();
        if has_cursor
            && !item.cursor.is_null()
            && (greatest.is_null() || cmp_cursor(&item.cursor, &greatest) == Some(Ordering::Greater))
        {
            greatest = item.cursor.clone();
        }
        let past_cursor = |strict: bool| {
            stored_cursor.is_null()
                || match cmp_cursor(&item.cursor, &stored_cursor) {
                    Some(Ordering::Greater) => true,
                    Some(Ordering::Equal) => !strict,
                    _ => false,
                }
        };
        let key = match (&item.id, has_cursor) {
            (Some(id), false) => Some(id.clone()),
            (Some(id), true) => Some(format!("{id}@{}", to_text(&item.cursor))),
            (None, _) => None,
        };
        let new = match (&key, has_cursor) {
            (Some(k), false) => !known.contains(k),
            (Some(k), true) => past_cursor(false) && !known.contains(k),
            (None, true) => past_cursor(true),
            (None, false) => false,
        };
        if let Some(k) = &key
            && new
            && known.insert(k.clone())
        {
            remembered.push_back(k.clone());
        }
        if new {
            fresh.push((item, key));
        }
    }
    while remembered.len() > spec.remember {
        remembered.pop_front();
    }
    if spec.cursor.is_some() {
        // Oldest first, so the executions run in the order things happened.
        fresh.sort_by(|(a, _), (b, _)| cmp_cursor(&a.cursor, &b.cursor).unwrap_or(Ordering::Equal));
    }
    let mut next = state.clone();
    next["cursor"] = greatest;
    next["seen"] = json!(remembered);
    if first && spec.first_run == FirstRun::Now {
        return (Vec::new(), next);
    }
    let polled_at = crate::clock::rfc3339(now);
    let events = fresh
        .into_iter()
        .map(|(item, key)| {
            let identity = key.unwrap_or_else(|| hex::encode(Sha256::digest(item.value.to_string().as_bytes())));
            TriggerEvent {
                trigger: json!({
                    "body": item.value,
                    "id": item.id,
                    "cursor": item.cursor,
                    "polledAt": polled_at,
                }),
                identity: Some((format!("item:{identity}"), ITEM_IDENTITY)),
            }
        })
        .collect();
    (events, next)
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn reads_the_next_link() {
        let h =
            r#"<https://api.example/items?page=2&x=a,b>; rel="next", <https://api.example/items?page=9>; rel="last""#;
        assert_eq!(next_link(h).as_deref(), Some("https://api.example/items?page=2&x=a,b"));
        assert_eq!(
            next_link(r#"<https://a/1>; rel="prev", <https://a/3>; rel="next""#).as_deref(),
            Some("https://a/3")
        );
        assert_eq!(next_link(r#"<https://a/1>; rel="last""#), None);
        assert_eq!(next_link(r#"<https://a/2>; rel="next prefetch""#).as_deref(), Some("https://a/2"));
        assert_eq!(next_link("garbage"), None);
    }
}
