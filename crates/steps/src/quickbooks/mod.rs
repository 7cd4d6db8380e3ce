//! `quickbooks`: the QuickBooks Online Accounting API v3 through a `quickbooks` connection
//! (OAuth 2.0; the engine keeps the token, and the company — `realmId` — a person chose
//! when they authorized the connection).
//!
//! ```yaml
//! - id: customers
//!   quickbooks: { op: query, query: "SELECT * FROM Customer WHERE Active = true", maxResults: 500 }
//! - id: customer
//!   quickbooks: { op: update, entity: Customer, id: "{{ .Id }}", body: { DisplayName: "{{ .name }}" } }
//! ```
//! Operations: `query` (`query`, the query language; paging with `STARTPOSITION` and
//! `MAXRESULTS` by `pageSize` up to `maxResults`, or sent once as it is when it pages itself;
//! output `{value, count, more}`), `read` (`entity`, `id`), `create` (`entity`, `body`),
//! `update` (`entity`, `id`, `body`; a sparse update: only the fields given change),
//! `delete` (`entity`, `id`; output `{Id, status: "Deleted"}`). Writes output the entity as
//! QuickBooks answers it. `update` and `delete` need the entity's `SyncToken`: `syncToken`,
//! else the step reads the entity first. Writes carry a `requestid` derived from the
//! step's idempotency key, so a write sent again (a retry, a resume) is not done twice.
//! Every request carries `minorversion` (the step's, else the connection's, else 75); the
//! connection is the step's `connection`, else the flow's `quickbooks` one. At most 10
//! requests per company are in flight at once in this process (QuickBooks' limit).
//!
//! Failures: a `Fault` (even in an HTTP 200 answer) becomes the step's error, its code,
//! message, detail and type in `details`: a stale `SyncToken` (5010) is `quickbooks_conflict`,
//! a missing entity (610) `quickbooks_not_found`, a duplicate name (6240)
//! `quickbooks_duplicate` (none retried); `429` or `ThrottleExceeded` (003001) is
//! `quickbooks_throttled`, retried after `Retry-After` (60s when absent); other `5xx` retry
//! as `quickbooks_error`. A connection without a company fails with `quickbooks_no_company`.

mod run;
#[cfg(test)]
mod tests;

use crate::util;
use flowgate_model::{Diags, Dur, Path};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Records a query returns at most (over all its pages) when it sets no `maxResults`.
const DEFAULT_MAX_RESULTS: u32 = 1000;
/// Records per request when a query sets no `pageSize`.
const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest `MAXRESULTS` QuickBooks accepts.
const MAX_PAGE_SIZE: u32 = 1000;
/// The `minorversion` sent when neither the step nor the connection sets one.
pub const DEFAULT_MINOR_VERSION: u32 = 75;

/// What a `quickbooks` step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum QuickBooksOp {
    /// Entities matching a query, page after page.
    Query,
    /// One entity by id.
    Read,
    /// A new entity.
    Create,
    /// Changes to an existing entity (a sparse update).
    Update,
    /// Deletes an entity.
    Delete,
}

impl QuickBooksOp {
    /// The name YAML gives it.
    fn name(self) -> &'static str {
        match self {
            QuickBooksOp::Query => "query",
            QuickBooksOp::Read => "read",
            QuickBooksOp::Create => "create",
            QuickBooksOp::Update => "update",
            QuickBooksOp::Delete => "delete",
        }
    }
}

/// A QuickBooks Online Accounting API call.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct QuickBooksConfig {
    /// `query`, `read`, `create`, `update` or `delete`.
    pub op: QuickBooksOp,
    /// The entity (`Customer`, `Invoice`, `Item`, `Payment`, …; any entity name works);
    /// required except for `query`, whose text names it. May embed `{{ expr }}`.
    #[serde(default)]
    pub entity: Option<String>,
    /// The entity's `Id` (read, update, delete); may embed `{{ expr }}`.
    #[serde(default)]
    pub id: Option<String>,
    /// The entity's fields (create, update); any value, templates inside. For an update
    /// only the fields given change; `Id` and `SyncToken` are the step's to set.
    #[serde(default)]
    pub body: Option<Value>,
    /// `query`: the query language text, e.g. `SELECT * FROM Customer WHERE Active = true`;
    /// may embed `{{ expr }}`. With its own `STARTPOSITION` or `MAXRESULTS` it is sent once,
    /// as it is.
    #[serde(default)]
    pub query: Option<String>,
    /// `query`: at most this many records over all pages (the output's `more` says when it
    /// stopped there). Default 1000.
    #[serde(default)]
    pub max_results: Option<u32>,
    /// `query`: records per request (`MAXRESULTS`), 1 to 1000. Default 100.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// `update`, `delete`: the entity's `SyncToken` as it was read; the write fails with
    /// `quickbooks_conflict` when the entity changed since. Default: the step reads the
    /// entity first and uses its current one. May embed `{{ expr }}`.
    #[serde(default)]
    pub sync_token: Option<String>,
    /// The API's `minorversion` (the fields answers include). Default: the connection's,
    /// else 75.
    #[serde(default)]
    pub minorversion: Option<u32>,
    /// The `quickbooks` connection (default: the flow's).
    #[serde(default)]
    pub connection: Option<String>,
    /// Longest one attempt (all its pages, or the read before a write) may take. Default 30s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// A rate limit of the integration (`limits:`) each attempt takes a token from.
    #[serde(default)]
    pub limit: Option<String>,
}

impl crate::Kind for QuickBooksConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, cx: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn crate::Step>> {
        use QuickBooksOp::*;
        let op = self.op.name();
        let is_query = self.op == Query;
        let needs_id = matches!(self.op, Read | Update | Delete);
        let needs_body = matches!(self.op, Create | Update);
        match (&self.entity, is_query) {
            (None, false) => diags.error(&path.key("entity"), format!("`{op}` needs the `entity` (e.g. `Customer`)")),
            (Some(_), true) => diags.error(&path.key("entity"), "`query` takes no `entity`: the query names it"),
            (Some(e), false) if !e.contains("{{") && !is_name(e) => diags.error(
                &path.key("entity"),
                format!("invalid entity `{e}`: expected a name of letters and digits like `Customer`"),
            ),
            _ => {}
        }
        if needs_id && self.id.is_none() {
            diags.error(&path.key("id"), format!("`{op}` needs the entity's `id`"));
        }
        if !needs_id && self.id.is_some() {
            diags.error(&path.key("id"), format!("`{op}` takes no `id`"));
        }
        if needs_body && self.body.is_none() {
            diags.error(&path.key("body"), format!("`{op}` needs a `body` (the entity's fields)"));
        }
        if !needs_body && self.body.is_some() {
            diags.error(&path.key("body"), format!("`{op}` takes no `body`"));
        }
        match &self.body {
            Some(Value::Object(fields)) if needs_body => {
                for key in ["Id", "SyncToken", "sparse"] {
                    if fields.contains_key(key) {
                        let instead = match key {
                            "Id" => "set the step's `id`",
                            "SyncToken" => "set the step's `syncToken`",
                            _ => "updates are always sparse",
                        };
                        diags.error(&path.key("body").key(key), format!("`{key}` is the step's to set: {instead}"));
                    }
                }
            }
            // A template may give the whole object.
            Some(Value::Object(_) | Value::String(_)) | None => {}
            Some(_) if needs_body => {
                diags.error(&path.key("body"), "expected an object (the entity's fields)");
            }
            Some(_) => {}
        }
        if is_query && self.query.as_deref().is_none_or(|q| q.trim().is_empty()) {
            diags.error(&path.key("query"), "`query` needs the `query` text (e.g. `SELECT * FROM Customer`)");
        }
        if !is_query {
            for (key, set) in [
                ("query", self.query.is_some()),
                ("maxResults", self.max_results.is_some()),
                ("pageSize", self.page_size.is_some()),
            ] {
                if set {
                    diags.error(&path.key(key), format!("`{key}` is for `query`, not `{op}`"));
                }
            }
        }
        if self.sync_token.is_some() && !matches!(self.op, Update | Delete) {
            diags.error(&path.key("syncToken"), format!("`syncToken` is for `update` and `delete`, not `{op}`"));
        }
        if self.max_results == Some(0) {
            diags.error(&path.key("maxResults"), "`maxResults` must be at least 1");
        }
        if let Some(n) = self.page_size
            && !(1..=MAX_PAGE_SIZE).contains(&n)
        {
            diags.error(
                &path.key("pageSize"),
                format!("`pageSize` must be 1 to {MAX_PAGE_SIZE} (QuickBooks' largest page)"),
            );
        }
        let connection = cx.connection_for(&["quickbooks"], self.connection.as_deref(), path, diags);
        let spec = json!({
            "entity": self.entity,
            "id": self.id,
            "body": self.body.clone().unwrap_or(Value::Null),
            "query": self.query,
            "syncToken": self.sync_token,
        });
        let spec = util::template(&spec, path, diags)?;
        Some(Box::new(run::QuickBooks {
            op: self.op,
            spec,
            max_results: self.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
            page_size: self.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
            minorversion: self.minorversion,
            connection: connection?,
        }))
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout.map(|d| d.0)
    }

    fn limit(&self) -> Option<&String> {
        self.limit.as_ref()
    }
}

/// A QuickBooks entity name: letters and digits.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())
}
