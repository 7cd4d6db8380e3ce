//! A fake of the QuickBooks Online Accounting API v3, at `/v3/company/{realmId}/`: creates,
//! sparse and full updates with `SyncToken` checks, deletes, reads, queries, `requestid`
//! idempotency, the per-company concurrency limit, throttling and faults, authorized by Bearer
//! tokens of an [`OAuthServer`]; plus webhook payloads and signatures ([`webhooks`]).
//!
//! Any entity name works in URLs (`customer`, `invoice`, `new_thing`): answers use its
//! canonical name ([`canonical_entity_name`]: `Customer`, `SalesReceipt`). Records get a
//! numeric `Id` counted per company and entity, `SyncToken` `"0"` raised by each update,
//! `MetaData.CreateTime`/`LastUpdatedTime`, `domain: "QBO"` and `sparse: false`.
//!
//! Each request goes through, in order: counting (and recording `minorversion`), the Bearer
//! token (401 `AUTHENTICATION` fault), the company (403 `SECURITY` fault for an unknown
//! realm), the concurrency limit (429 for an 11th request in flight for one company), the
//! delay, [`QuickBooksServer::throttle_next`], [`QuickBooksServer::fault_with_200_next`],
//! then the operation. Every fault has QuickBooks' shape:
//! `{"Fault":{"Error":[{"Message","Detail","code","element"}],"type"},"time"}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::clock;
use crate::oauth::{self, OAuthServer};
use crate::serve::{Bound, Running};

mod query;
#[cfg(test)]
mod tests;
pub mod webhooks;

pub use query::{DEFAULT_MAX_RESULTS, MAX_MAX_RESULTS};
pub use webhooks::{EntityChange, WebhookOperation, cloudevents_notification, legacy_notification, sign_webhook};

use query::{Query, QueryError, Selection};

/// How many requests one app may have in flight for one company.
pub const MAX_CONCURRENT_PER_REALM: usize = 10;

/// Fault codes the fake answers with.
pub mod codes {
    /// The Bearer token is missing, unknown or expired (HTTP 401, type `AUTHENTICATION`).
    pub const AUTHENTICATION_FAILED: &str = "3200";
    /// The company is not one this fake serves (HTTP 403, type `SECURITY`).
    pub const AUTHORIZATION_FAILED: &str = "3100";
    /// Too many requests, or more than 10 in flight for a company (HTTP 429).
    pub const THROTTLE_EXCEEDED: &str = "003001";
    /// A required parameter is missing (HTTP 400; HTTP 200 from `fault_with_200_next`).
    pub const REQUIRED_PARAM_MISSING: &str = "2020";
    /// The body is not a JSON object (HTTP 400).
    pub const INVALID_PROPERTY: &str = "2010";
    /// No such entity (HTTP 400, as QuickBooks answers it).
    pub const OBJECT_NOT_FOUND: &str = "610";
    /// The `SyncToken` is not the entity's current one (HTTP 400).
    pub const STALE_OBJECT: &str = "5010";
    /// Another customer, vendor or employee (or item, account, …) has this name (HTTP 400).
    pub const DUPLICATE_NAME: &str = "6240";
    /// The query does not parse (HTTP 400).
    pub const QUERY_PARSE: &str = "4000";
    /// The query parses but a value is out of range, e.g. `MAXRESULTS 1001` (HTTP 400).
    pub const QUERY_VALIDATION: &str = "4001";
    /// The URL or operation is not supported (HTTP 400).
    pub const UNSUPPORTED_OPERATION: &str = "500";
}

/// Entity names as QuickBooks writes them; URLs use them lower-cased.
const ENTITY_NAMES: [&str; 40] = [
    "Account",
    "Attachable",
    "Bill",
    "BillPayment",
    "Budget",
    "Class",
    "CompanyCurrency",
    "CompanyInfo",
    "CreditCardPayment",
    "CreditMemo",
    "Customer",
    "CustomerType",
    "Department",
    "Deposit",
    "Employee",
    "Estimate",
    "ExchangeRate",
    "InventoryAdjustment",
    "Invoice",
    "Item",
    "JournalCode",
    "JournalEntry",
    "Payment",
    "PaymentMethod",
    "Preferences",
    "Purchase",
    "PurchaseOrder",
    "RecurringTransaction",
    "RefundReceipt",
    "ReimburseCharge",
    "SalesReceipt",
    "TaxAgency",
    "TaxCode",
    "TaxRate",
    "Term",
    "TimeActivity",
    "Transfer",
    "Vendor",
    "VendorCredit",
    "Bundle",
];

/// URL segments under a company that are not entities; the fake does not serve them.
const UNSUPPORTED_SEGMENTS: [&str; 4] = ["batch", "cdc", "reports", "upload"];

/// People lists share one name space in QuickBooks: a customer can't take a vendor's name.
const PEOPLE: [&str; 3] = ["Customer", "Vendor", "Employee"];
/// Other lists whose `Name` is unique.
const NAMED_LISTS: [&str; 7] = ["Item", "Account", "Class", "Department", "Term", "PaymentMethod", "TaxAgency"];

/// QuickBooks' name for an entity given in any case (`salesreceipt` → `SalesReceipt`); an
/// unknown name gets its first letter upper-cased.
pub fn canonical_entity_name(name: &str) -> String {
    if let Some(known) = ENTITY_NAMES.iter().find(|known| known.eq_ignore_ascii_case(name)) {
        return (*known).to_owned();
    }
    let mut chars = name.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A running QuickBooks Online fake; it stops accepting connections when dropped.
pub struct QuickBooksServer {
    shared: Arc<Shared>,
    base_url: String,
    _running: Running,
}

impl QuickBooksServer {
    /// Starts the fake on `127.0.0.1:<ephemeral port>` in a task of the current tokio runtime,
    /// accepting the access tokens `oauth` issues. The company of `oauth`'s
    /// [`realm_id`](crate::oauth::OAuthConfig::realm_id), if any, is served from the start.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if the loopback interface cannot be bound.
    pub async fn start(oauth: &OAuthServer) -> QuickBooksServer {
        let bound = Bound::loopback().await;
        let base_url = bound.base_url();
        let oauth = oauth.shared();
        let mut inner = Inner::default();
        if let Some(realm) = oauth.realm_id() {
            inner.companies.entry(realm.to_owned()).or_default();
        }
        let shared = Arc::new(Shared { oauth, inner: Mutex::new(inner) });
        let router = Router::new()
            .route("/v3/company/{realm}/{*rest}", any(company_api))
            .fallback(|| async {
                fault(
                    StatusCode::NOT_FOUND,
                    "ValidationFault",
                    codes::UNSUPPORTED_OPERATION,
                    "Unsupported Operation",
                    "no such resource",
                )
            })
            .with_state(shared.clone());
        let running = bound.serve(router);
        QuickBooksServer { shared, base_url, _running: running }
    }

    /// The server's base URL, `http://127.0.0.1:<port>` (no trailing slash); the API lives at
    /// `{url}/v3/company/{realmId}/`.
    pub fn url(&self) -> String {
        self.base_url.clone()
    }

    /// `{url}/v3/company/{realm_id}` (no trailing slash).
    pub fn company_url(&self, realm_id: &str) -> String {
        format!("{}/v3/company/{realm_id}", self.base_url)
    }

    /// Serves the company `realm_id` (empty to begin with).
    pub fn add_realm(&self, realm_id: &str) {
        self.shared.lock().companies.entry(realm_id.to_owned()).or_default();
    }

    /// Stores an entity as a create would (serving the company if it was not yet) and returns
    /// its `Id`. An `Id` in `record` is kept (replacing that entity); otherwise the next one is
    /// given. Creations made this way are not counted in [`creations`](Self::creations).
    ///
    /// # Panics
    /// If `record` is not a JSON object, or its `Id` is not a number (as text or not).
    pub fn insert(&self, realm_id: &str, entity: &str, record: Value) -> String {
        let Value::Object(mut fields) = record else { panic!("QuickBooksServer::insert: a JSON object") };
        let entity = canonical_entity_name(entity);
        let mut inner = self.shared.lock();
        let company = inner.companies.entry(realm_id.to_owned()).or_default();
        let id = match fields.remove("Id") {
            Some(id) => parse_id(&id).expect("QuickBooksServer::insert: a numeric Id"),
            None => company.next_id(&entity),
        };
        let next = company.next_ids.entry(entity.clone()).or_default();
        *next = (*next).max(id);
        let sync_token = fields.remove("SyncToken").and_then(|t| parse_id(&t)).unwrap_or(0);
        let record = stamp(fields, id, sync_token);
        company.table(&entity).insert(id, record);
        id.to_string()
    }

    /// The entity as a read would answer it.
    pub fn get(&self, realm_id: &str, entity: &str, id: &str) -> Option<Value> {
        let inner = self.shared.lock();
        let id: u64 = id.parse().ok()?;
        let record = inner.companies.get(realm_id)?.entities.get(&canonical_entity_name(entity))?.get(&id)?;
        Some(Value::Object(record.clone()))
    }

    /// Every entity of a kind in a company, by `Id`.
    pub fn all(&self, realm_id: &str, entity: &str) -> Vec<Value> {
        let inner = self.shared.lock();
        let table = inner.companies.get(realm_id).and_then(|c| c.entities.get(&canonical_entity_name(entity)));
        table.map(|t| t.values().cloned().map(Value::Object).collect()).unwrap_or_default()
    }

    /// How many entities requests created (a replayed `requestid` creates nothing).
    pub fn creations(&self) -> u64 {
        self.shared.lock().creations
    }

    /// How many requests reached a company URL, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.shared.lock().requests
    }

    /// The `minorversion` query parameter of the last request that had one.
    pub fn last_minor_version(&self) -> Option<String> {
        self.shared.lock().last_minor_version.clone()
    }

    /// Makes the next `count` requests (past authentication and the concurrency limit) answer
    /// a validation fault, code [`codes::REQUIRED_PARAM_MISSING`], with HTTP **200** — as the
    /// real API sometimes does, so clients must look for `Fault` in 200 answers.
    pub fn fault_with_200_next(&self, count: u32) {
        self.shared.lock().faults_with_200 = count;
    }

    /// Makes the next `count` requests (past authentication and the concurrency limit) answer
    /// 429 with a `ThrottleExceeded` fault, code [`codes::THROTTLE_EXCEEDED`].
    pub fn throttle_next(&self, count: u32) {
        self.shared.lock().throttled = count;
    }

    /// The most requests seen in flight at once for one company, counting a request refused
    /// for exceeding [`MAX_CONCURRENT_PER_REALM`] (so a value above 10 means a client exceeded
    /// the limit).
    pub fn max_concurrent_seen(&self) -> usize {
        self.shared.lock().max_concurrent
    }

    /// Makes every request wait `delay` while it counts as in flight (to make concurrency
    /// observable). `Duration::ZERO` turns it off.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }
}

struct Shared {
    oauth: Arc<oauth::Shared>,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Inner {
    companies: HashMap<String, Company>,
    /// `(realm, requestid)` → the answer first given to it.
    answers_by_request_id: HashMap<(String, String), Answer>,
    requests: u64,
    creations: u64,
    last_minor_version: Option<String>,
    throttled: u32,
    faults_with_200: u32,
    delay: Duration,
    in_flight: HashMap<String, usize>,
    max_concurrent: usize,
}

#[derive(Default)]
struct Company {
    /// Canonical entity name → `Id` → record.
    entities: HashMap<String, BTreeMap<u64, Map<String, Value>>>,
    /// The last `Id` given per entity.
    next_ids: HashMap<String, u64>,
}

impl Company {
    fn next_id(&mut self, entity: &str) -> u64 {
        let next = self.next_ids.entry(entity.to_owned()).or_default();
        *next += 1;
        *next
    }

    fn table(&mut self, entity: &str) -> &mut BTreeMap<u64, Map<String, Value>> {
        self.entities.entry(entity.to_owned()).or_default()
    }

    /// A fault if another entity of the same name space already has the name `fields` sets.
    fn duplicate_name(&self, entity: &str, fields: &Map<String, Value>, except: Option<u64>) -> Option<Answer> {
        let (field, space): (&str, Vec<&str>) = if PEOPLE.contains(&entity) {
            ("DisplayName", PEOPLE.to_vec())
        } else if NAMED_LISTS.contains(&entity) {
            ("Name", vec![entity])
        } else {
            return None;
        };
        let name = fields.get(field)?.as_str()?;
        let taken =
            space.iter().filter_map(|kind| self.entities.get(*kind).map(|t| (*kind, t))).any(|(kind, table)| {
                table.iter().any(|(id, record)| {
                    !(kind == entity && Some(*id) == except)
                        && record
                            .get(field)
                            .and_then(Value::as_str)
                            .is_some_and(|other| other.eq_ignore_ascii_case(name))
                })
            });
        taken.then(|| {
            validation_fault(
                codes::DUPLICATE_NAME,
                "Duplicate Name Exists Error",
                &format!(
                    "The name supplied already exists. : Another {} is already using this name ({name}).",
                    entity.to_lowercase()
                ),
            )
        })
    }
}

/// Columns QuickBooks maintains itself; a request's values for them are ignored.
const SYSTEM_FIELDS: [&str; 5] = ["Id", "SyncToken", "MetaData", "domain", "sparse"];

/// `fields` with QuickBooks' bookkeeping: `domain`, `sparse`, `Id`, `SyncToken`, `MetaData`.
fn stamp(mut fields: Map<String, Value>, id: u64, sync_token: u64) -> Map<String, Value> {
    let created = fields
        .get("MetaData")
        .and_then(|m| m.get("CreateTime"))
        .cloned()
        .unwrap_or_else(|| json!(clock::offset_seconds()));
    for name in SYSTEM_FIELDS {
        fields.remove(name);
    }
    fields.insert("domain".into(), json!("QBO"));
    fields.insert("sparse".into(), json!(false));
    fields.insert("Id".into(), json!(id.to_string()));
    fields.insert("SyncToken".into(), json!(sync_token.to_string()));
    fields.insert("MetaData".into(), json!({"CreateTime": created, "LastUpdatedTime": clock::offset_seconds()}));
    fields
}

/// An `Id` or `SyncToken`: QuickBooks writes them as text, clients sometimes as numbers.
fn parse_id(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// A status and JSON body, kept whole so that a repeated `requestid` can be answered again.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let content_type = HeaderValue::from_static("application/json;charset=UTF-8");
        (self.status, [(header::CONTENT_TYPE, content_type)], self.body.to_string()).into_response()
    }
}

fn fault(status: StatusCode, kind: &str, code: &str, message: &str, detail: &str) -> Answer {
    let body = json!({
        "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}], "type": kind},
        "time": clock::offset_millis(),
    });
    Answer { status, body }
}

fn validation_fault(code: &str, message: &str, detail: &str) -> Answer {
    fault(StatusCode::BAD_REQUEST, "ValidationFault", code, message, detail)
}

fn throttle_fault() -> Answer {
    fault(
        StatusCode::TOO_MANY_REQUESTS,
        "SERVICE",
        codes::THROTTLE_EXCEEDED,
        "ThrottleExceeded",
        "The request limit was reached.",
    )
}

fn not_found(entity: &str, id: &str) -> Answer {
    validation_fault(
        codes::OBJECT_NOT_FOUND,
        "Object Not Found",
        &format!(
            "Object Not Found : Something you're trying to use has been made inactive or deleted ({entity} {id})."
        ),
    )
}

fn missing_param(name: &str) -> Answer {
    validation_fault(
        codes::REQUIRED_PARAM_MISSING,
        "Required param missing, need to supply the required value for the API",
        &format!("Required parameter {name} is missing in the request"),
    )
}

/// An entity answer: `{"Customer": {...}, "time": ...}`.
fn entity_answer(entity: &str, record: Value) -> Answer {
    let mut body = Map::new();
    body.insert(entity.to_owned(), record);
    body.insert("time".into(), json!(clock::offset_millis()));
    Answer { status: StatusCode::OK, body: Value::Object(body) }
}

/// Counts a request as in flight for its company until dropped (the request answered or the
/// client gone).
struct InFlight {
    shared: Arc<Shared>,
    realm: String,
}

impl InFlight {
    /// `None` when the company already has [`MAX_CONCURRENT_PER_REALM`] requests in flight.
    fn enter(shared: &Arc<Shared>, realm: &str) -> Option<InFlight> {
        let mut inner = shared.lock();
        let count = inner.in_flight.entry(realm.to_owned()).or_default();
        *count += 1;
        let now = *count;
        if now > MAX_CONCURRENT_PER_REALM {
            *count -= 1;
        }
        inner.max_concurrent = inner.max_concurrent.max(now);
        (now <= MAX_CONCURRENT_PER_REALM).then(|| InFlight { shared: shared.clone(), realm: realm.to_owned() })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(count) = self.shared.lock().in_flight.get_mut(&self.realm) {
            *count -= 1;
        }
    }
}

async fn company_api(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path((realm, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let known_realm = {
        let mut inner = shared.lock();
        inner.requests += 1;
        if let Some(minor) = params.get("minorversion") {
            inner.last_minor_version = Some(minor.clone());
        }
        inner.companies.contains_key(&realm)
    };
    if !oauth::bearer_token(&headers).is_some_and(|token| shared.oauth.validate_access(token)) {
        let mut response = fault(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION",
            codes::AUTHENTICATION_FAILED,
            "AuthenticationFailed",
            "Token expired or invalid: a valid Bearer access token is required",
        )
        .into_response();
        let challenge = HeaderValue::from_static("Bearer realm=\"Intuit\", error=\"invalid_token\"");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        return response;
    }
    if !known_realm {
        return fault(
            StatusCode::FORBIDDEN,
            "SECURITY",
            codes::AUTHORIZATION_FAILED,
            "ApplicationAuthorizationFailed",
            &format!("The app is not connected to company {realm}"),
        )
        .into_response();
    }
    let Some(_in_flight) = InFlight::enter(&shared, &realm) else { return throttle_fault().into_response() };
    let delay = shared.lock().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    {
        let mut inner = shared.lock();
        if inner.throttled > 0 {
            inner.throttled -= 1;
            return throttle_fault().into_response();
        }
        if inner.faults_with_200 > 0 {
            inner.faults_with_200 -= 1;
            let mut answer = missing_param("(fault injected by the fake)");
            answer.status = StatusCode::OK;
            return answer.into_response();
        }
    }
    dispatch(&shared, &method, &realm, &rest, &params, &body).into_response()
}

fn dispatch(
    shared: &Shared,
    method: &Method,
    realm: &str,
    rest: &str,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Answer {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let unsupported = || {
        validation_fault(
            codes::UNSUPPORTED_OPERATION,
            "Unsupported Operation",
            &format!("Operation {method} /{rest} is not supported by this fake"),
        )
    };
    if segments.first().is_some_and(|s| UNSUPPORTED_SEGMENTS.contains(&s.to_ascii_lowercase().as_str())) {
        return unsupported();
    }
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["query"]) => match params.get("query") {
            Some(text) => run_query(&shared.lock(), realm, text),
            None => missing_param("query"),
        },
        // QuickBooks also takes the query as a `application/text` body.
        (Method::POST, ["query"]) => run_query(&shared.lock(), realm, &String::from_utf8_lossy(body)),
        (Method::GET, [entity, id]) => {
            let entity = canonical_entity_name(entity);
            let inner = shared.lock();
            let record =
                id.parse::<u64>().ok().and_then(|id| inner.companies[realm].entities.get(&entity)?.get(&id).cloned());
            match record {
                Some(record) => entity_answer(&entity, Value::Object(record)),
                None => not_found(&entity, id),
            }
        }
        (Method::POST, [entity]) => write(&mut shared.lock(), realm, entity, params, body),
        _ => unsupported(),
    }
}

/// A create, update or delete, answered once per `requestid`.
fn write(inner: &mut Inner, realm: &str, entity: &str, params: &HashMap<String, String>, body: &[u8]) -> Answer {
    let request_key = params.get("requestid").map(|id| (realm.to_owned(), id.clone()));
    if let Some(answer) = request_key.as_ref().and_then(|key| inner.answers_by_request_id.get(key)) {
        return answer.clone();
    }
    let entity = canonical_entity_name(entity);
    let answer = match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => match params.get("operation").map(String::as_str) {
            Some("delete") => delete(inner, realm, &entity, &fields),
            Some("update") => update(inner, realm, &entity, fields),
            // A create may carry `"Id": null` (serializers of optional fields do).
            None if fields.get("Id").is_some_and(|id| !id.is_null()) => update(inner, realm, &entity, fields),
            None | Some("create") => create(inner, realm, &entity, fields),
            Some(other) => validation_fault(
                codes::UNSUPPORTED_OPERATION,
                "Unsupported Operation",
                &format!("operation={other} is not supported by this fake"),
            ),
        },
        _ => validation_fault(
            codes::INVALID_PROPERTY,
            "Request has invalid or unsupported property",
            "The request body must be a JSON object",
        ),
    };
    if let Some(key) = request_key {
        inner.answers_by_request_id.insert(key, answer.clone());
    }
    answer
}

fn create(inner: &mut Inner, realm: &str, entity: &str, fields: Map<String, Value>) -> Answer {
    let company = inner.companies.get_mut(realm).expect("the realm was checked");
    if let Some(duplicate) = company.duplicate_name(entity, &fields, None) {
        return duplicate;
    }
    let id = company.next_id(entity);
    let mut fields = fields;
    fields.remove("MetaData");
    let record = stamp(fields, id, 0);
    company.table(entity).insert(id, record.clone());
    inner.creations += 1;
    entity_answer(entity, Value::Object(record))
}

/// Finds the entity a body's `Id` names and checks its `SyncToken`.
fn current(company: &Company, entity: &str, fields: &Map<String, Value>) -> Result<(u64, u64), Answer> {
    let id = fields.get("Id").ok_or_else(|| missing_param("Id"))?;
    let sync_token = fields.get("SyncToken").ok_or_else(|| missing_param("SyncToken"))?;
    let id_text = id.as_str().map(str::to_owned).unwrap_or_else(|| id.to_string());
    let id = parse_id(id).ok_or_else(|| not_found(entity, &id_text))?;
    let record = company.entities.get(entity).and_then(|t| t.get(&id)).ok_or_else(|| not_found(entity, &id_text))?;
    let current = record.get("SyncToken").and_then(parse_id).unwrap_or(0);
    if parse_id(sync_token) != Some(current) {
        return Err(validation_fault(
            codes::STALE_OBJECT,
            "Stale Object Error",
            "Stale Object Error : You and another user were working on this at the same time. \
             The other user finished before you did, so your work was not saved.",
        ));
    }
    Ok((id, current))
}

fn update(inner: &mut Inner, realm: &str, entity: &str, fields: Map<String, Value>) -> Answer {
    let company = inner.companies.get_mut(realm).expect("the realm was checked");
    let (id, sync_token) = match current(company, entity, &fields) {
        Ok(found) => found,
        Err(fault) => return fault,
    };
    if let Some(duplicate) = company.duplicate_name(entity, &fields, Some(id)) {
        return duplicate;
    }
    let table = company.table(entity);
    let existing = table.get(&id).expect("found above");
    // A sparse update changes only the fields given; a full one replaces the entity.
    let mut updated = if fields.get("sparse") == Some(&Value::Bool(true)) { existing.clone() } else { Map::new() };
    updated.insert("MetaData".into(), existing["MetaData"].clone());
    for (name, value) in fields {
        if !SYSTEM_FIELDS.contains(&name.as_str()) {
            updated.insert(name, value);
        }
    }
    let record = stamp(updated, id, sync_token + 1);
    table.insert(id, record.clone());
    entity_answer(entity, Value::Object(record))
}

fn delete(inner: &mut Inner, realm: &str, entity: &str, fields: &Map<String, Value>) -> Answer {
    let company = inner.companies.get_mut(realm).expect("the realm was checked");
    let (id, _) = match current(company, entity, fields) {
        Ok(found) => found,
        Err(fault) => return fault,
    };
    company.table(entity).remove(&id);
    entity_answer(entity, json!({"domain": "QBO", "status": "Deleted", "Id": id.to_string()}))
}

fn run_query(inner: &Inner, realm: &str, text: &str) -> Answer {
    let query: Query = match query::parse(text) {
        Ok(query) => query,
        Err(QueryError::Parse(message)) => {
            return validation_fault(
                codes::QUERY_PARSE,
                "Error parsing query",
                &format!("QueryParserError: {message}"),
            );
        }
        Err(QueryError::Validation(message)) => {
            return validation_fault(
                codes::QUERY_VALIDATION,
                "Invalid query",
                &format!("QueryValidationError: {message}"),
            );
        }
    };
    let entity = canonical_entity_name(&query.entity);
    let mut rows: Vec<&Map<String, Value>> = inner.companies[realm]
        .entities
        .get(&entity)
        .map(|table| table.values().filter(|r| query.conditions.iter().all(|c| c.matches(r))).collect())
        .unwrap_or_default();
    // Rows come by Id; ORDERBY sorts stably on top of that.
    rows.sort_by(|a, b| {
        query.order.iter().fold(std::cmp::Ordering::Equal, |ordering, (field, descending)| {
            ordering.then_with(|| {
                let order = match (query::field_text(a, field), query::field_text(b, field)) {
                    (Some(a), Some(b)) => query::compare_text(&a, &b),
                    (a, b) => a.is_some().cmp(&b.is_some()),
                };
                if *descending { order.reverse() } else { order }
            })
        })
    });
    let mut response = Map::new();
    match &query.selection {
        Selection::Count => {
            response.insert("totalCount".into(), json!(rows.len()));
        }
        selection => {
            let page: Vec<Value> = rows
                .into_iter()
                .skip(query.start_position - 1)
                .take(query.max_results)
                .map(|record| match selection {
                    Selection::Columns(columns) => {
                        let mut projected: Map<String, Value> =
                            columns.iter().filter_map(|c| record.get(c).map(|v| (c.clone(), v.clone()))).collect();
                        projected.insert("sparse".into(), json!(true));
                        Value::Object(projected)
                    }
                    _ => Value::Object(record.clone()),
                })
                .collect();
            // An empty result has no entity key and no positions, as QuickBooks answers it.
            if !page.is_empty() {
                let count = page.len();
                response.insert(entity.clone(), Value::Array(page));
                response.insert("startPosition".into(), json!(query.start_position));
                response.insert("maxResults".into(), json!(count));
            }
        }
    }
    Answer { status: StatusCode::OK, body: json!({"QueryResponse": response, "time": clock::offset_millis()}) }
}
