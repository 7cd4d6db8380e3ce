//! A fake of the Microsoft Dataverse (Dynamics 365) Web API v9.2, at `/api/data/v9.2/`:
//! in-memory tables, OData queries with paging, creates, upserts with ETag conditions,
//! deletes, `WhoAmI`, service-protection throttling, and Bearer tokens of an [`OAuthServer`].
//!
//! Any entity set name works (`accounts`, `contacts`, `new_widgets`, …). A record is a JSON
//! object whose primary key is `{singular}id` ([`primary_key`]), a lower-case GUID, and which
//! carries `createdon`, `modifiedon`, `versionnumber` and, in answers, `@odata.etag`
//! (`W/"<versionnumber>"`). Version numbers come from one counter for the whole fake, as
//! Dataverse's row versions do, so each update raises a record's number.
//!
//! Each request goes through, in order: counting, the Bearer token (401 with a
//! `WWW-Authenticate: Bearer` challenge and no body), [`DynamicsServer::throttle_next`]'s
//! 429s, the OData headers, then the operation.
//!
//! **Stricter than Dataverse:** every request must carry `OData-MaxVersion: 4.0`,
//! `OData-Version: 4.0` and an `Accept` that includes `application/json`; otherwise the fake
//! answers 400. Dataverse itself tolerates their absence, but its documentation says to send
//! them, and a client that forgets them gets other answer shapes from the real service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use indexmap::IndexMap;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::clock;
use crate::oauth::{self, OAuthServer};
use crate::serve::{Bound, Running};

mod filter;
mod request;
#[cfg(test)]
mod tests;
use request::*;

use filter::{Filter, SortKey};

/// The path the Web API is served under.
pub const API_PATH: &str = "/api/data/v9.2";
/// The largest page Dataverse answers, and the default one (`Prefer: odata.maxpagesize`).
pub const MAX_PAGE_SIZE: usize = 5000;

/// Dataverse error codes the fake answers with.
pub mod codes {
    /// The record does not exist (404).
    pub const OBJECT_NOT_FOUND: &str = "0x80040217";
    /// A record with the same key already exists (412 on create-only upserts and creates).
    pub const DUPLICATE_RECORD: &str = "0x80040237";
    /// `If-Match` named another version of the record (412).
    pub const VERSION_MISMATCH: &str = "0x80060882";
    /// Service protection: too many requests in the window (429).
    pub const THROTTLED: &str = "0x80072322";
    /// The URL or its query options are malformed or unsupported, or OData headers are missing (400).
    pub const BAD_REQUEST: &str = "0x80060888";
    /// The body is not a JSON object or holds an invalid value (400).
    pub const INVALID_ARGUMENT: &str = "0x80040203";
}

/// The primary-key column of an entity set: its singular name plus `id` (`accounts` →
/// `accountid`, `opportunities` → `opportunityid`, `new_widgets` → `new_widgetid`).
pub fn primary_key(set: &str) -> String {
    format!("{}id", singular(set))
}

fn singular(set: &str) -> String {
    if let Some(stem) = set.strip_suffix("ies") {
        format!("{stem}y")
    } else {
        set.strip_suffix('s').unwrap_or(set).to_owned()
    }
}

/// A running Dataverse fake; it stops accepting connections when dropped.
pub struct DynamicsServer {
    shared: Arc<Shared>,
    _running: Running,
}

impl DynamicsServer {
    /// Starts the fake on `127.0.0.1:<ephemeral port>` in a task of the current tokio runtime,
    /// accepting the access tokens `oauth` issues.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if the loopback interface cannot be bound.
    pub async fn start(oauth: &OAuthServer) -> DynamicsServer {
        let bound = Bound::loopback().await;
        let base_url = bound.base_url();
        let shared = Arc::new(Shared {
            oauth: oauth.shared(),
            api_url: format!("{base_url}{API_PATH}"),
            base_url,
            who_am_i: [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()],
            inner: Mutex::new(Inner::default()),
        });
        let router = Router::new()
            .route(&format!("{API_PATH}/{{resource}}"), any(api))
            .fallback(|| async { DvError::new(StatusCode::NOT_FOUND, codes::BAD_REQUEST, "no such resource") })
            .with_state(shared.clone());
        let running = bound.serve(router);
        DynamicsServer { shared, _running: running }
    }

    /// The organization URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The Web API's URL, `http://127.0.0.1:<port>/api/data/v9.2` (no trailing slash).
    pub fn api_url(&self) -> String {
        self.shared.api_url.clone()
    }

    /// Stores a record in `set` as a create would and returns its id. The primary key is taken
    /// from `record` when present (replacing any record with that id), otherwise a new GUID.
    /// `nav@odata.bind` values are stored as `_nav_value`, as for requests.
    ///
    /// # Panics
    /// If `record` is not a JSON object or holds an invalid key or binding.
    pub fn insert(&self, set: &str, record: Value) -> String {
        let Value::Object(body) = record else { panic!("DynamicsServer::insert: a JSON object") };
        let mut inner = self.shared.lock();
        let key = primary_key(set);
        let id = match body.get(&key) {
            Some(value) => parse_guid_value(value).expect("DynamicsServer::insert: the primary key is a GUID"),
            None => Uuid::new_v4().to_string(),
        };
        inner.tables.entry(set.to_owned()).or_default().shift_remove(&id);
        inner.create(set, &id, body).expect("DynamicsServer::insert: a valid record");
        id
    }

    /// The record `id` of `set` as a retrieve would answer it (with `@odata.etag`).
    pub fn get(&self, set: &str, id: &str) -> Option<Value> {
        let inner = self.shared.lock();
        inner.tables.get(set)?.get(&id.to_ascii_lowercase()).map(Record::representation)
    }

    /// Every record of `set`, in creation order, as a retrieve would answer them.
    pub fn all(&self, set: &str) -> Vec<Value> {
        let inner = self.shared.lock();
        inner.tables.get(set).map(|table| table.values().map(Record::representation).collect()).unwrap_or_default()
    }

    /// Makes the next `count` authenticated requests answer 429 with `Retry-After:
    /// <retry_after_secs>` and error [`codes::THROTTLED`], as Dataverse's service protection
    /// limits do.
    pub fn throttle_next(&self, count: u32, retry_after_secs: u64) {
        self.shared.lock().throttle = (count > 0).then_some((count, retry_after_secs));
    }

    /// How many requests reached the Web API path, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.shared.lock().requests
    }

    /// How many of [`requests`](Self::requests) used `method` (`"GET"`, `"PATCH"`, …).
    pub fn requests_with_method(&self, method: &str) -> u64 {
        self.shared.lock().requests_by_method.get(&method.to_ascii_uppercase()).copied().unwrap_or(0)
    }
}

struct Shared {
    oauth: Arc<oauth::Shared>,
    base_url: String,
    api_url: String,
    /// `WhoAmI`'s business unit, user and organization ids.
    who_am_i: [Uuid; 3],
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn entity_url(&self, set: &str, id: &str) -> String {
        format!("{}/{set}({id})", self.api_url)
    }

    fn context_url(&self, fragment: &str) -> String {
        format!("{}/$metadata#{fragment}", self.api_url)
    }

    fn unauthorized(&self) -> Response {
        // Dataverse names the authority and the resource to ask a token for; its 401 has no body.
        let challenge =
            format!("Bearer authorization_uri={}, resource_id={}/", self.oauth.authorize_url(), self.base_url);
        let challenge = HeaderValue::from_str(&challenge).expect("URLs are valid header values");
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]).into_response()
    }

    fn who_am_i(&self) -> Response {
        let [business_unit, user, organization] = self.who_am_i;
        let body = json!({
            "@odata.context": self.context_url("Microsoft.Dynamics.CRM.WhoAmIResponse"),
            "BusinessUnitId": business_unit,
            "UserId": user,
            "OrganizationId": organization,
        });
        json_response(StatusCode::OK, &body)
    }

    fn list(&self, set: &str, options: &QueryOptions, prefer: &Preferences, raw_query: &str) -> Response {
        let inner = self.lock();
        let mut rows: Vec<&Record> = match inner.tables.get(set) {
            Some(table) => {
                table.values().filter(|r| options.filter.as_ref().is_none_or(|f| f.matches(&r.fields))).collect()
            }
            None => Vec::new(),
        };
        if !options.orderby.is_empty() {
            // Stable: ties keep creation order.
            rows.sort_by(|a, b| {
                options.orderby.iter().fold(std::cmp::Ordering::Equal, |ordering, key| {
                    ordering.then_with(|| {
                        let order = filter::sort_order(a.fields.get(&key.field), b.fields.get(&key.field));
                        if key.descending { order.reverse() } else { order }
                    })
                })
            });
        }
        let matched = rows.len();
        let key = primary_key(set);
        // `$top` and paging don't combine: with `$top`, the preference is not applied.
        let (page, next_skip, applied_page_size) = match options.top {
            Some(top) => (&rows[..top.min(matched)], None, None),
            None => {
                let asked = prefer.max_page_size.filter(|n| (1..=MAX_PAGE_SIZE).contains(n));
                let size = asked.unwrap_or(MAX_PAGE_SIZE);
                let start = options.skip.min(matched);
                let end = (start + size).min(matched);
                (&rows[start..end], (end < matched).then_some(end), asked)
            }
        };

        let mut body = Map::new();
        body.insert("@odata.context".into(), json!(self.context_url(&select_fragment(set, options))));
        if options.count {
            // Dataverse counts at most 5,000 rows.
            body.insert("@odata.count".into(), json!(matched.min(MAX_PAGE_SIZE)));
        }
        let values: Vec<Value> = page.iter().map(|r| r.projected(options.select.as_deref(), &key)).collect();
        body.insert("value".into(), Value::Array(values));
        if let Some(skip) = next_skip {
            let page_number = skip / applied_page_size.unwrap_or(MAX_PAGE_SIZE) + 1;
            // Dataverse's skip token is an XML paging cookie; clients must use the link as is.
            let cookie = format!("<cookie pagenumber=\"{page_number}\" skip=\"{skip}\" istracking=\"False\" />");
            let mut kept: Vec<&str> = raw_query
                .split('&')
                .filter(|p| !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken="))
                .collect();
            let token = format!("$skiptoken={}", utf8_percent_encode(&cookie, NON_ALPHANUMERIC));
            kept.push(&token);
            body.insert("@odata.nextLink".into(), json!(format!("{}/{set}?{}", self.api_url, kept.join("&"))));
        }
        let mut response = json_response(StatusCode::OK, &Value::Object(body));
        if let Some(size) = applied_page_size {
            let applied = HeaderValue::from_str(&format!("odata.maxpagesize={size}")).expect("a number");
            response.headers_mut().insert(PREFERENCE_APPLIED, applied);
        }
        response
    }

    fn retrieve(
        &self,
        set: &str,
        key: &Key,
        options: &QueryOptions,
        conditions: &Conditions,
    ) -> Result<Response, DvError> {
        let inner = self.lock();
        let id = inner.find(set, key).ok_or_else(|| not_found(set, key))?;
        let record = &inner.tables[set][&id];
        if conditions.if_none_match.as_deref().is_some_and(|etag| etag_matches(etag, record.version)) {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        Ok(json_response(StatusCode::OK, &self.entity_body(set, record, options)))
    }

    /// A single record's answer body: its context, then the record.
    fn entity_body(&self, set: &str, record: &Record, options: &QueryOptions) -> Value {
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            json!(self.context_url(&format!("{}/$entity", select_fragment(set, options)))),
        );
        if let Value::Object(fields) = record.projected(options.select.as_deref(), &primary_key(set)) {
            body.extend(fields);
        }
        Value::Object(body)
    }

    fn create(
        &self,
        set: &str,
        body: &[u8],
        options: &QueryOptions,
        prefer: &Preferences,
    ) -> Result<Response, DvError> {
        let body = parse_object(body)?;
        let key = primary_key(set);
        let id = match body.get(&key) {
            Some(value) => parse_guid_value(value)?,
            None => Uuid::new_v4().to_string(),
        };
        let mut inner = self.lock();
        if inner.tables.get(set).is_some_and(|table| table.contains_key(&id)) {
            return Err(duplicate());
        }
        inner.create(set, &id, body)?;
        Ok(self.written(&inner, set, &id, StatusCode::CREATED, options, prefer))
    }

    fn upsert(
        &self,
        set: &str,
        key: &Key,
        body: &[u8],
        options: &QueryOptions,
        prefer: &Preferences,
        conditions: &Conditions,
    ) -> Result<Response, DvError> {
        let mut body = parse_object(body)?;
        let key_field = primary_key(set);
        let mut inner = self.lock();
        match inner.find(set, key) {
            Some(id) => {
                if conditions.if_none_match.as_deref() == Some("*") {
                    return Err(duplicate());
                }
                let record = &inner.tables[set][&id];
                if let Some(etag) = conditions.if_match.as_deref().filter(|e| *e != "*")
                    && !etag_matches(etag, record.version)
                {
                    return Err(version_mismatch());
                }
                if let Some(value) = body.get(&key_field)
                    && parse_guid_value(value)? != id
                {
                    return Err(DvError::new(
                        StatusCode::BAD_REQUEST,
                        codes::INVALID_ARGUMENT,
                        format!("{key_field} in the body differs from the one in the URL"),
                    ));
                }
                inner.update(set, &id, body)?;
                Ok(self.written(&inner, set, &id, StatusCode::OK, options, prefer))
            }
            // `If-Match` asks for an update only.
            None if conditions.if_match.is_some() => Err(not_found(set, key)),
            None => {
                let id = match key {
                    Key::Id(id) => id.clone(),
                    Key::Alternate(pairs) => {
                        for (name, value) in pairs {
                            body.insert(name.clone(), value.clone());
                        }
                        Uuid::new_v4().to_string()
                    }
                };
                body.remove(&key_field);
                inner.create(set, &id, body)?;
                Ok(self.written(&inner, set, &id, StatusCode::CREATED, options, prefer))
            }
        }
    }

    /// The answer to a create or update: 204 with `OData-EntityId`, or the record with
    /// `Prefer: return=representation` (201 for a create, 200 for an update).
    fn written(
        &self,
        inner: &Inner,
        set: &str,
        id: &str,
        status: StatusCode,
        options: &QueryOptions,
        prefer: &Preferences,
    ) -> Response {
        let mut response = if prefer.return_representation {
            let mut response = json_response(status, &self.entity_body(set, &inner.tables[set][id], options));
            response.headers_mut().insert(PREFERENCE_APPLIED, HeaderValue::from_static("return=representation"));
            response
        } else {
            StatusCode::NO_CONTENT.into_response()
        };
        let entity_id = HeaderValue::from_str(&self.entity_url(set, id)).expect("a URL is a valid header value");
        response.headers_mut().insert(ODATA_ENTITY_ID, entity_id);
        response
    }

    fn delete(&self, set: &str, key: &Key, conditions: &Conditions) -> Result<Response, DvError> {
        let mut inner = self.lock();
        let id = inner.find(set, key).ok_or_else(|| not_found(set, key))?;
        let table = inner.tables.get_mut(set).expect("found above");
        if let Some(etag) = conditions.if_match.as_deref().filter(|e| *e != "*")
            && !etag_matches(etag, table[&id].version)
        {
            return Err(version_mismatch());
        }
        table.shift_remove(&id);
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

const ODATA_ENTITY_ID: HeaderName = HeaderName::from_static("odata-entityid");
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
const ODATA_VERSION: HeaderName = HeaderName::from_static("odata-version");
const ODATA_MAX_VERSION: HeaderName = HeaderName::from_static("odata-maxversion");

/// Columns Dataverse maintains itself; values sent for them are ignored.
const SYSTEM_COLUMNS: [&str; 3] = ["createdon", "modifiedon", "versionnumber"];

#[derive(Default)]
struct Inner {
    /// Entity set → id → record, in creation order.
    tables: HashMap<String, IndexMap<String, Record>>,
    /// The last row version handed out.
    version: u64,
    /// Requests left to throttle, and their `Retry-After` in seconds.
    throttle: Option<(u32, u64)>,
    requests: u64,
    requests_by_method: HashMap<String, u64>,
}

struct Record {
    /// The columns, primary key and system columns included.
    fields: Map<String, Value>,
    version: u64,
}

impl Record {
    /// The record as answered: `@odata.etag` first, then every column.
    fn representation(&self) -> Value {
        let mut out = Map::new();
        out.insert("@odata.etag".into(), json!(etag(self.version)));
        out.extend(self.fields.clone());
        Value::Object(out)
    }

    /// The record restricted to `$select` (absent columns answer `null`, as Dataverse's do);
    /// the primary key is always included.
    fn projected(&self, select: Option<&[String]>, key: &str) -> Value {
        let Some(select) = select else { return self.representation() };
        let mut out = Map::new();
        out.insert("@odata.etag".into(), json!(etag(self.version)));
        for column in select {
            out.insert(column.clone(), self.fields.get(column).cloned().unwrap_or(Value::Null));
        }
        out.insert(key.to_owned(), self.fields.get(key).cloned().unwrap_or(Value::Null));
        Value::Object(out)
    }
}

impl Inner {
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn find(&self, set: &str, key: &Key) -> Option<String> {
        let table = self.tables.get(set)?;
        match key {
            Key::Id(id) => table.contains_key(id).then(|| id.clone()),
            Key::Alternate(pairs) => table
                .iter()
                .find(|(_, record)| {
                    pairs.iter().all(|(name, value)| {
                        record.fields.get(name).and_then(|v| filter::compare_values(v, value))
                            == Some(std::cmp::Ordering::Equal)
                    })
                })
                .map(|(id, _)| id.clone()),
        }
    }

    fn create(&mut self, set: &str, id: &str, body: Map<String, Value>) -> Result<(), DvError> {
        let key = primary_key(set);
        let now = clock::utc_seconds();
        let version = self.next_version();
        let mut fields = Map::new();
        fields.insert(key.clone(), json!(id));
        apply_body(&mut fields, body, &key)?;
        fields.insert("createdon".into(), json!(now));
        fields.insert("modifiedon".into(), json!(now));
        fields.insert("versionnumber".into(), json!(version));
        self.tables.entry(set.to_owned()).or_default().insert(id.to_owned(), Record { fields, version });
        Ok(())
    }

    fn update(&mut self, set: &str, id: &str, body: Map<String, Value>) -> Result<(), DvError> {
        let key = primary_key(set);
        let version = self.next_version();
        let record = self.tables.get_mut(set).and_then(|t| t.get_mut(id)).expect("the caller found it");
        apply_body(&mut record.fields, body, &key)?;
        record.version = version;
        record.fields.insert("modifiedon".into(), json!(clock::utc_seconds()));
        record.fields.insert("versionnumber".into(), json!(version));
        Ok(())
    }
}

/// Copies a request body's columns into a record: `nav@odata.bind: "/set(id)"` becomes
/// `_nav_value: id`; other annotations, the primary key and system columns are skipped.
fn apply_body(fields: &mut Map<String, Value>, body: Map<String, Value>, key: &str) -> Result<(), DvError> {
    for (name, value) in body {
        if let Some(navigation) = name.strip_suffix("@odata.bind") {
            let bound = match &value {
                Value::Null => Value::Null,
                Value::String(reference) => json!(bound_id(reference).ok_or_else(|| {
                    DvError::new(
                        StatusCode::BAD_REQUEST,
                        codes::INVALID_ARGUMENT,
                        format!("{name} must reference a record as /<set>(<id>)"),
                    )
                })?),
                _ => {
                    return Err(DvError::new(
                        StatusCode::BAD_REQUEST,
                        codes::INVALID_ARGUMENT,
                        format!("{name} must be a string"),
                    ));
                }
            };
            fields.insert(format!("_{navigation}_value"), bound);
        } else if !(name.contains('@') || name == key || SYSTEM_COLUMNS.contains(&name.as_str())) {
            fields.insert(name, value);
        }
    }
    Ok(())
}

/// The GUID in `/accounts(<guid>)`, `accounts(<guid>)` or an absolute URL ending so.
fn bound_id(reference: &str) -> Option<String> {
    let inner = reference.strip_suffix(')')?.rsplit_once('(')?.1;
    Uuid::try_parse(inner).ok().map(|id| id.to_string())
}

fn parse_guid_value(value: &Value) -> Result<String, DvError> {
    value
        .as_str()
        .and_then(|s| Uuid::try_parse(s).ok())
        .map(|id| id.to_string())
        .ok_or_else(|| DvError::new(StatusCode::BAD_REQUEST, codes::INVALID_ARGUMENT, "the primary key must be a GUID"))
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, DvError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DvError::new(StatusCode::BAD_REQUEST, codes::INVALID_ARGUMENT, "the body must be a JSON object")),
    }
}

fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match`/`If-None-Match` value names `version` (weak or strong form).
fn etag_matches(header: &str, version: u64) -> bool {
    let header = header.trim();
    header == "*" || header.strip_prefix("W/").unwrap_or(header) == format!("\"{version}\"")
}

/// `accounts` or `accounts(name,accountid)`: the context fragment of a (projected) set.
fn select_fragment(set: &str, options: &QueryOptions) -> String {
    match &options.select {
        Some(columns) => format!("{set}({})", columns.join(",")),
        None => set.to_owned(),
    }
}

fn not_found(set: &str, key: &Key) -> DvError {
    let entity = singular(set);
    let message = match key {
        Key::Id(id) => format!("{entity} With Id = {id} Does Not Exist"),
        Key::Alternate(_) => format!("A record with the specified key values does not exist in {entity} entity"),
    };
    DvError::new(StatusCode::NOT_FOUND, codes::OBJECT_NOT_FOUND, message)
}

fn duplicate() -> DvError {
    DvError::new(
        StatusCode::PRECONDITION_FAILED,
        codes::DUPLICATE_RECORD,
        "A record with matching key values already exists.",
    )
}

fn version_mismatch() -> DvError {
    DvError::new(
        StatusCode::PRECONDITION_FAILED,
        codes::VERSION_MISMATCH,
        "The version of the existing record doesn't match the RowVersion property provided.",
    )
}

/// An error in Dataverse's shape: `{"error":{"code":"0x…","message":"…"}}`.
#[derive(Debug)]
struct DvError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl DvError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> DvError {
        DvError { status, code, message: message.into() }
    }
}

impl IntoResponse for DvError {
    fn into_response(self) -> Response {
        json_response(self.status, &json!({"error": {"code": self.code, "message": self.message}}))
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let content_type = HeaderValue::from_static("application/json; odata.metadata=minimal");
    (status, [(header::CONTENT_TYPE, content_type)], body.to_string()).into_response()
}
