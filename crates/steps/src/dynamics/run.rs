//! A `dynamics` step's requests: the URL and OData headers per operation, paging, and
//! Dataverse's errors as step errors.

use super::{API_PATH, DynamicsOp};
use crate::connector::{self, ApiAnswer, ApiRequest, text};
use crate::{Outcome, Step, StepCx, StepError};
use async_trait::async_trait;
use flowgate_expr::Template;
use serde_json::{Value, json};
use std::sync::Arc;

pub(crate) struct Dynamics {
    pub(crate) op: DynamicsOp,
    pub(crate) spec: Arc<Template>,
    pub(crate) select: String,
    pub(crate) top: Option<u32>,
    pub(crate) page_size: u32,
    pub(crate) max_pages: u32,
    pub(crate) connection: String,
}

#[async_trait]
impl Step for Dynamics {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let spec = cx.evaluator.eval(&self.spec, input, &cx.scope).await?;
        let credentials = cx.connections.credentials(&self.connection).await?;
        let base = credentials.extras["baseUrl"].as_str().unwrap_or("").trim_end_matches('/').to_owned();
        let entity = text(&spec["entity"]);
        if entity.is_empty() || !entity.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StepError::fatal("dynamics_request", format!("invalid entity set `{entity}`")));
        }
        let mut path = format!("{base}{API_PATH}/{entity}");
        if !spec["id"].is_null() {
            path.push('(');
            path.push_str(&key_segment(&text(&spec["id"]))?);
            path.push(')');
        }
        let mut url = reqwest::Url::parse(&path).map_err(|e| {
            StepError::fatal("dynamics_request", format!("invalid Dataverse URL from the connection: {e}"))
        })?;
        let mut headers = vec![
            (http::HeaderName::from_static("odata-maxversion"), "4.0".to_owned()),
            (http::HeaderName::from_static("odata-version"), "4.0".to_owned()),
            (http::header::ACCEPT, "application/json".to_owned()),
        ];
        let body = (!spec["body"].is_null()).then(|| spec["body"].clone());
        let method = match self.op {
            DynamicsOp::List | DynamicsOp::Get => reqwest::Method::GET,
            DynamicsOp::Create => reqwest::Method::POST,
            DynamicsOp::Update | DynamicsOp::Upsert => reqwest::Method::PATCH,
            DynamicsOp::Delete => reqwest::Method::DELETE,
        };
        match self.op {
            DynamicsOp::Create | DynamicsOp::Upsert => {
                headers.push((http::HeaderName::from_static("prefer"), "return=representation".into()));
            }
            DynamicsOp::Update => {
                headers.push((http::HeaderName::from_static("prefer"), "return=representation".into()));
                // `If-Match` makes PATCH an update only: never a create of a deleted record.
                let etag = spec["etag"].as_str().filter(|e| !e.is_empty()).unwrap_or("*").to_owned();
                headers.push((http::header::IF_MATCH, etag));
            }
            DynamicsOp::List => {
                headers
                    .push((http::HeaderName::from_static("prefer"), format!("odata.maxpagesize={}", self.page_size)));
            }
            DynamicsOp::Get | DynamicsOp::Delete => {}
        }
        if matches!(self.op, DynamicsOp::List | DynamicsOp::Get) {
            let mut q = url.query_pairs_mut();
            if !self.select.is_empty() {
                q.append_pair("$select", &self.select);
            }
            for (key, name) in [("filter", "$filter"), ("orderby", "$orderby"), ("expand", "$expand")] {
                if let Some(v) = spec[key].as_str().filter(|v| !v.is_empty()) {
                    q.append_pair(name, v);
                }
            }
            if let Some(top) = self.top {
                q.append_pair("$top", &top.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        if self.op != DynamicsOp::List {
            let req = ApiRequest { method, url, headers, body };
            let answer = connector::send(cx, &self.connection, credentials, req, "Dataverse").await?;
            check(&answer)?;
            let id = spec["id"].clone();
            return Ok(Outcome::Output(match self.op {
                DynamicsOp::Delete => json!({ "deleted": true, "id": id }),
                _ if answer.body.is_null() => json!({ "id": entity_id(&answer).map_or(id, Value::String) }),
                _ => answer.body,
            }));
        }
        // A list: page after page through @odata.nextLink, up to maxPages.
        let mut records = Vec::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(page) = next.take() {
            if pages == self.max_pages {
                next = Some(page);
                break;
            }
            let credentials = cx.connections.credentials(&self.connection).await?;
            let req = ApiRequest { method: reqwest::Method::GET, url: page, headers: headers.clone(), body: None };
            let answer = connector::send(cx, &self.connection, credentials, req, "Dataverse").await?;
            check(&answer)?;
            pages += 1;
            if let Some(items) = answer.body["value"].as_array() {
                records.extend(items.iter().cloned());
            }
            next = match answer.body["@odata.nextLink"].as_str() {
                // The next page must stay on the environment the connection names.
                Some(link) => Some(same_origin(&base, link)?),
                None => None,
            };
        }
        let count = records.len();
        Ok(Outcome::Output(
            json!({ "value": records, "count": count, "pages": pages, "nextLink": next.map(|u| u.to_string()) }),
        ))
    }

    fn side_effects(&self) -> bool {
        !matches!(self.op, DynamicsOp::List | DynamicsOp::Get)
    }
}

/// A record key in a URL: a GUID as it is, an alternate key (`name='v'`) with its quotes,
/// nothing that could leave the parentheses.
fn key_segment(id: &str) -> Result<String, StepError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(StepError::fatal("dynamics_request", "the record's `id` is empty"));
    }
    if id.contains(['(', ')', '/', '?', '#']) {
        return Err(StepError::fatal("dynamics_request", format!("invalid record id `{id}`")));
    }
    Ok(utf8_percent(id))
}

fn utf8_percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~'=,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The record id of `OData-EntityId` (`…/accounts(<id>)`), when a write answered 204.
fn entity_id(answer: &ApiAnswer) -> Option<String> {
    let h = answer.headers.get("odata-entityid")?.to_str().ok()?;
    let inner = h.rsplit_once('(')?.1.strip_suffix(')')?;
    Some(inner.to_owned())
}

fn same_origin(base: &str, link: &str) -> Result<reqwest::Url, StepError> {
    let base = reqwest::Url::parse(base).map_err(|e| StepError::fatal("dynamics_request", e.to_string()))?;
    let next =
        base.join(link).map_err(|e| StepError::fatal("dynamics_paging", format!("invalid @odata.nextLink: {e}")))?;
    if next.origin() != base.origin() {
        return Err(StepError::fatal("dynamics_paging", "@odata.nextLink points outside the environment"));
    }
    Ok(next)
}

/// Dataverse's answer as a step error when it is one.
fn check(answer: &ApiAnswer) -> Result<(), StepError> {
    if (200..300).contains(&answer.status) {
        return Ok(());
    }
    let code = answer.body["error"]["code"].as_str().unwrap_or("").to_owned();
    let said = answer.body["error"]["message"].as_str().map(str::to_owned).unwrap_or_else(|| match &answer.body {
        Value::String(s) => s.chars().take(300).collect(),
        _ => String::new(),
    });
    let details = json!({ "status": answer.status, "code": code, "message": said });
    let message = format!(
        "Dataverse answered {}: {said}{}",
        answer.status,
        if code.is_empty() { String::new() } else { format!(" ({code})") }
    );
    let (kind, retryable) = match answer.status {
        412 => ("dynamics_conflict", false),
        404 => ("dynamics_not_found", false),
        401 | 403 => ("dynamics_unauthorized", false),
        429 | 503 => ("dynamics_throttled", true),
        s if s >= 500 => ("dynamics_error", true),
        _ => ("dynamics_error", false),
    };
    Err(StepError { code: kind.into(), message, retryable, retry_after: answer.retry_after, details: Some(details) })
}
