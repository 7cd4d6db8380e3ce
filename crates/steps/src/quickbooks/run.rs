//! A `quickbooks` step's requests: the company's URL from the connection, each operation's
//! request, query paging, `requestid`s, the per-company concurrency limit, and QuickBooks'
//! faults as step errors.

use super::{DEFAULT_MINOR_VERSION, QuickBooksOp};
use crate::connector::{self, ApiAnswer, ApiRequest, text};
use crate::{Outcome, Step, StepCx, StepError};
use async_trait::async_trait;
use flowgate_expr::Template;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Requests QuickBooks lets one app have in flight for one company.
const MAX_CONCURRENT_PER_COMPANY: usize = 10;
/// The wait after a throttled request when QuickBooks says no `Retry-After`.
const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(60);
/// Hex characters of a `requestid` (QuickBooks takes at most 50).
const REQUEST_ID_LEN: usize = 36;

pub(crate) struct QuickBooks {
    pub(crate) op: QuickBooksOp,
    pub(crate) spec: Arc<Template>,
    pub(crate) max_results: u32,
    pub(crate) page_size: u32,
    pub(crate) minorversion: Option<u32>,
    pub(crate) connection: String,
}

/// Where one attempt's requests go.
struct Company {
    /// `{baseUrl}/v3/company/{realmId}`.
    base: reqwest::Url,
    minorversion: String,
    /// The company's permits in this process.
    permits: Arc<Semaphore>,
}

#[async_trait]
impl Step for QuickBooks {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let spec = cx.evaluator.eval(&self.spec, input, &cx.scope).await?;
        let company = self.company(cx).await?;
        if self.op == QuickBooksOp::Query {
            return self.query(cx, &company, &text(&spec["query"])).await.map(Outcome::Output);
        }
        let entity = text(&spec["entity"]);
        if entity.is_empty() || !entity.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(StepError::fatal("quickbooks_request", format!("invalid entity `{entity}`")));
        }
        let segment = entity.to_ascii_lowercase();
        let request_id = request_id(cx.idempotency_key, self.op);
        let mut params: Vec<(&str, String)> = request_id.into_iter().map(|id| ("requestid", id)).collect();
        let answer = match self.op {
            QuickBooksOp::Query => unreachable!("answered above"),
            QuickBooksOp::Read => {
                let id = id_of(&spec)?;
                self.call(cx, &company, reqwest::Method::GET, &[&segment, &id], &[], None).await?
            }
            QuickBooksOp::Create => {
                let body = fields_of(&spec)?;
                self.call(cx, &company, reqwest::Method::POST, &[&segment], &params, Some(Value::Object(body))).await?
            }
            QuickBooksOp::Update => {
                let id = id_of(&spec)?;
                let mut body = fields_of(&spec)?;
                let sync_token = self.sync_token(cx, &company, &spec, &entity, &segment, &id).await?;
                body.insert("Id".into(), json!(id));
                body.insert("SyncToken".into(), json!(sync_token));
                body.insert("sparse".into(), json!(true));
                self.call(cx, &company, reqwest::Method::POST, &[&segment], &params, Some(Value::Object(body))).await?
            }
            QuickBooksOp::Delete => {
                let id = id_of(&spec)?;
                let sync_token = self.sync_token(cx, &company, &spec, &entity, &segment, &id).await?;
                params.push(("operation", "delete".into()));
                let body = json!({ "Id": id, "SyncToken": sync_token });
                self.call(cx, &company, reqwest::Method::POST, &[&segment], &params, Some(body)).await?
            }
        };
        Ok(Outcome::Output(entity_of(answer, &entity)))
    }

    fn side_effects(&self) -> bool {
        matches!(self.op, QuickBooksOp::Create | QuickBooksOp::Update | QuickBooksOp::Delete)
    }
}

impl QuickBooks {
    /// The company the connection was authorized for, from its extras.
    async fn company(&self, cx: &StepCx<'_>) -> Result<Company, StepError> {
        let credentials = cx.connections.credentials(&self.connection).await?;
        let extras = &credentials.extras;
        let realm = text(&extras["realmId"]);
        if realm.trim().is_empty() {
            return Err(StepError::fatal(
                "quickbooks_no_company",
                format!(
                    "connection `{}` has no QuickBooks company yet: authorize the connection (sign in to QuickBooks and choose the company) first",
                    self.connection
                ),
            ));
        }
        let base_url = extras["baseUrl"].as_str().unwrap_or("");
        let invalid = |why: String| {
            StepError::fatal(
                "quickbooks_request",
                format!("connection `{}` has an invalid `baseUrl`: {why}", self.connection),
            )
        };
        let mut base = reqwest::Url::parse(base_url).map_err(|e| invalid(format!("`{base_url}`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!("`{base_url}` is not an http(s) URL")));
        }
        base.set_query(None);
        base.set_fragment(None);
        base.path_segments_mut()
            .map_err(|()| invalid(format!("`{base_url}` cannot take a path")))?
            .pop_if_empty()
            .extend(["v3", "company", realm.trim()]);
        let minorversion = match (self.minorversion, &extras["minorversion"]) {
            (Some(v), _) => v.to_string(),
            (None, Value::Null) => DEFAULT_MINOR_VERSION.to_string(),
            (None, v) => text(v),
        };
        Ok(Company { base, minorversion, permits: company_permits(realm.trim()) })
    }

    /// One request under `company`'s base, holding one of the company's permits; the answer's
    /// body, or its fault as the step's error.
    async fn call(
        &self,
        cx: &StepCx<'_>,
        company: &Company,
        method: reqwest::Method,
        segments: &[&str],
        params: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, StepError> {
        let mut url = company.base.clone();
        url.path_segments_mut().expect("checked when the company was read").extend(segments);
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            q.append_pair("minorversion", &company.minorversion);
        }
        let headers = vec![(http::header::ACCEPT, "application/json".to_owned())];
        let credentials = cx.connections.credentials(&self.connection).await?;
        let req = ApiRequest { method, url, headers, body };
        // QuickBooks refuses an 11th request in flight for a company: wait for a permit.
        let _permit = company.permits.acquire().await.map_err(|_| {
            StepError::retryable("quickbooks_error", "QuickBooks: the company's request permits are closed")
        })?;
        let answer = connector::send(cx, &self.connection, credentials, req, "QuickBooks").await?;
        check(&answer)?;
        Ok(answer.body)
    }

    /// A query's records: page after page (`STARTPOSITION`, `MAXRESULTS`) up to `maxResults`,
    /// or one request when the query pages itself.
    async fn query(&self, cx: &StepCx<'_>, company: &Company, text: &str) -> Result<Value, StepError> {
        let text = text.trim().trim_end_matches(';').trim_end();
        if text.is_empty() {
            return Err(StepError::fatal("quickbooks_request", "the `query` is empty"));
        }
        let get = |q: String| async move {
            self.call(cx, company, reqwest::Method::GET, &["query"], &[("query", q)], None).await
        };
        if pages_itself(text) {
            let answer = get(text.to_owned()).await?;
            let (records, total) = records_of(answer);
            let count = total.unwrap_or(records.len() as u64);
            return Ok(json!({ "value": records, "count": count, "more": false }));
        }
        let max = self.max_results as usize;
        let mut records = Vec::new();
        let mut total = None;
        let mut more = false;
        loop {
            let want = (self.page_size as usize).min(max - records.len());
            let answer = get(format!("{text} STARTPOSITION {} MAXRESULTS {want}", records.len() + 1)).await?;
            let (page, page_total) = records_of(answer);
            total = total.or(page_total);
            let got = page.len();
            records.extend(page);
            if got < want {
                break;
            }
            if records.len() >= max {
                records.truncate(max);
                more = true;
                break;
            }
        }
        let count = match total {
            Some(total) if records.is_empty() => total,
            _ => records.len() as u64,
        };
        Ok(json!({ "value": records, "count": count, "more": more }))
    }

    /// The `SyncToken` an update or delete sends: the step's, else the entity's current one.
    async fn sync_token(
        &self,
        cx: &StepCx<'_>,
        company: &Company,
        spec: &Value,
        entity: &str,
        segment: &str,
        id: &str,
    ) -> Result<String, StepError> {
        let given = text(&spec["syncToken"]);
        if !given.trim().is_empty() {
            return Ok(given.trim().to_owned());
        }
        let answer = self.call(cx, company, reqwest::Method::GET, &[segment, id], &[], None).await?;
        let current = entity_of(answer, entity);
        match &current["SyncToken"] {
            Value::Null => Err(StepError::fatal(
                "quickbooks_error",
                format!("QuickBooks answered {entity} {id} without its SyncToken"),
            )),
            v => Ok(text(v)),
        }
    }
}

/// The company's permits, shared by every step of this process.
fn company_permits(realm: &str) -> Arc<Semaphore> {
    static COMPANIES: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let mut companies = COMPANIES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    companies.entry(realm.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(MAX_CONCURRENT_PER_COMPANY))).clone()
}

/// The `requestid` of a write: the same for every attempt and resume of this step (the
/// engine's idempotency key is `<execution>:<step>`), so QuickBooks answers a write sent
/// again with its first answer instead of doing it twice. None without a key: a shared
/// empty key would make different executions' writes replay each other's answers.
pub(super) fn request_id(idempotency_key: &str, op: QuickBooksOp) -> Option<String> {
    if idempotency_key.is_empty() {
        return None;
    }
    let digest = Sha256::digest(format!("{idempotency_key}\n{}", op.name()).as_bytes());
    let mut id = hex::encode(digest);
    id.truncate(REQUEST_ID_LEN);
    Some(id)
}

/// Whether a query sets its own `STARTPOSITION` or `MAXRESULTS`.
fn pages_itself(query: &str) -> bool {
    query
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case("STARTPOSITION") || w.eq_ignore_ascii_case("MAXRESULTS"))
}

/// A query answer's records (under the entity's key, absent when there are none) and its
/// `totalCount` (a `COUNT(*)` query).
fn records_of(answer: Value) -> (Vec<Value>, Option<u64>) {
    let Value::Object(mut body) = answer else { return (Vec::new(), None) };
    let Some(Value::Object(response)) = body.remove("QueryResponse") else { return (Vec::new(), None) };
    let total = response.get("totalCount").and_then(Value::as_u64);
    let records = response.into_iter().find_map(|(_, v)| match v {
        Value::Array(records) => Some(records),
        _ => None,
    });
    (records.unwrap_or_default(), total)
}

/// The entity in an answer (`{"Customer": {…}, "time": …}`): under the entity's name in any
/// case, else the only key beside `time`; else the whole answer.
fn entity_of(answer: Value, entity: &str) -> Value {
    let Value::Object(mut body) = answer else { return answer };
    if let Some(key) = body.keys().find(|k| k.eq_ignore_ascii_case(entity)).cloned() {
        return body.remove(&key).unwrap_or_default();
    }
    let mut others = body.keys().filter(|k| *k != "time");
    if let (Some(key), None) = (others.next(), others.next()) {
        let key = key.clone();
        return body.remove(&key).unwrap_or_default();
    }
    Value::Object(body)
}

fn id_of(spec: &Value) -> Result<String, StepError> {
    let id = text(&spec["id"]).trim().to_owned();
    if id.is_empty() {
        return Err(StepError::fatal("quickbooks_request", "the entity's `id` is empty"));
    }
    Ok(id)
}

fn fields_of(spec: &Value) -> Result<Map<String, Value>, StepError> {
    match &spec["body"] {
        Value::Object(fields) => Ok(fields.clone()),
        other => Err(StepError::fatal(
            "quickbooks_request",
            format!("the `body` must be an object (the entity's fields), not {}", kind_of(other)),
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `key` of an object in any case: QuickBooks writes most faults `Fault.Error[].Message`,
/// its authentication faults `fault.error[].message`.
fn field<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// QuickBooks' answer as a step error when it is one: a `Fault` whatever the status (it
/// sends some with 200), or a status other than 2xx.
fn check(answer: &ApiAnswer) -> Result<(), StepError> {
    let fault = field(&answer.body, "Fault");
    if (200..300).contains(&answer.status) && fault.is_none() {
        return Ok(());
    }
    let error = fault.and_then(|f| field(f, "Error")).and_then(|e| e.get(0));
    let said = |key: &str| error.and_then(|e| field(e, key)).map(text).unwrap_or_default();
    let (code, said_message, detail) = (said("code"), said("Message"), said("Detail"));
    let kind = fault.and_then(|f| field(f, "type")).map(text).unwrap_or_default();
    let said_message = match (&answer.body, fault) {
        (Value::String(s), None) => s.chars().take(300).collect(),
        _ => said_message,
    };
    let details = json!({
        "status": answer.status,
        "code": code,
        "message": said_message,
        "detail": detail,
        "type": kind,
    });
    let mut told = format!("QuickBooks answered {}", answer.status);
    for part in [&said_message, &detail] {
        if !part.is_empty() && !told.ends_with(part.as_str()) {
            told.push_str(": ");
            told.push_str(part);
        }
    }
    if !code.is_empty() {
        told.push_str(&format!(" (fault {code})"));
    }
    let (err_code, retryable, message) = if answer.status == 429 || code == "003001" {
        ("quickbooks_throttled", true, format!("QuickBooks throttled the request; {told}"))
    } else {
        match code.as_str() {
            "5010" => (
                "quickbooks_conflict",
                false,
                format!("the record changed since its SyncToken was read (read it again and redo the change); {told}"),
            ),
            "610" => ("quickbooks_not_found", false, told),
            "6240" => ("quickbooks_duplicate", false, told),
            _ if answer.status >= 500 => ("quickbooks_error", true, told),
            _ => ("quickbooks_error", false, told),
        }
    };
    let retry_after = match err_code {
        "quickbooks_throttled" => Some(answer.retry_after.unwrap_or(DEFAULT_THROTTLE_WAIT)),
        _ => answer.retry_after,
    };
    Err(StepError { code: err_code.into(), message, retryable, retry_after, details: Some(details) })
}
