//! `dynamics`: Microsoft Dynamics 365 / Dataverse Web API v9.2 through a `dynamics365`
//! connection (Azure AD client credentials; the engine keeps the token).
//!
//! ```yaml
//! - id: accounts
//!   dynamics: { op: list, entity: accounts, select: [name, accountnumber], filter: "statecode eq 0", top: 50, maxPages: 10 }
//! - id: account
//!   dynamics: { op: update, entity: accounts, id: "{{ .accountid }}", body: { name: "{{ .name }}" }, etag: '{{ .["@odata.etag"] }}' }
//! ```
//! Operations: `list` (`select`, `filter`, `orderby`, `top`, `expand`, paging through
//! `@odata.nextLink` with `Prefer: odata.maxpagesize` up to `maxPages`; output `{value,
//! count, nextLink}`), `get` (`id`), `create` (`body`; the record back, `Prefer:
//! return=representation`), `update` (`id`, `body`; `If-Match: *` or `etag` for optimistic
//! concurrency), `upsert` (`id`, `body`), `delete` (`id`; output `{deleted, id}`). An `id`
//! is a GUID or an alternate key (`accountnumber='A-1'`). Every request carries the OData
//! headers; the connection is the step's `connection`, else the flow's `dynamics365` one.
//!
//! Failures: Dataverse's `{"error": {"code", "message"}}` becomes the step's error
//! (`dynamics_error`, its code in `details`); `412` is `dynamics_conflict`, `404`
//! `dynamics_not_found` (neither retried); `429` and `503` wait for `Retry-After` and retry
//! (service protection limits); other `5xx` retry.

mod run;
#[cfg(test)]
mod tests;

use crate::util;
use flowgate_model::{Diags, Dur, Path};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// The Web API's path under an environment's URL.
pub const API_PATH: &str = "/api/data/v9.2";
/// Records per page asked for when a list sets no `pageSize`.
const DEFAULT_PAGE_SIZE: u32 = 500;
/// Pages a list reads when it sets no `maxPages`.
const DEFAULT_MAX_PAGES: u32 = 10;

/// What a `dynamics` step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DynamicsOp {
    /// Records of an entity set, page after page.
    List,
    /// One record by id.
    Get,
    /// A new record.
    Create,
    /// Changes to an existing record.
    Update,
    /// Changes to a record, created when absent.
    Upsert,
    /// Deletes a record.
    Delete,
}

/// A Dataverse Web API call.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct DynamicsConfig {
    /// `list`, `get`, `create`, `update`, `upsert` or `delete`.
    pub op: DynamicsOp,
    /// The entity set (plural, e.g. `accounts`, `contacts`); may embed `{{ expr }}`.
    pub entity: String,
    /// The record: a GUID or an alternate key (`accountnumber='A-1'`); may embed `{{ expr }}`.
    #[serde(default)]
    pub id: Option<String>,
    /// The record's fields (create, update, upsert); any value, templates inside.
    #[serde(default)]
    pub body: Option<Value>,
    /// Columns to return (`$select`).
    #[serde(default)]
    pub select: Vec<String>,
    /// `$filter`, e.g. `statecode eq 0`; may embed `{{ expr }}`.
    #[serde(default)]
    pub filter: Option<String>,
    /// `$orderby`, e.g. `name asc`.
    #[serde(default)]
    pub orderby: Option<String>,
    /// `$top`: at most this many records.
    #[serde(default)]
    pub top: Option<u32>,
    /// `$expand`, e.g. `primarycontactid($select=fullname)`.
    #[serde(default)]
    pub expand: Option<String>,
    /// Records per page (`Prefer: odata.maxpagesize`). Default 500.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Pages a list reads at most (the output's `nextLink` says where it stopped). Default 10.
    #[serde(default)]
    pub max_pages: Option<u32>,
    /// `update`: the record's `@odata.etag`; the update fails with `dynamics_conflict` when
    /// the record changed since. Default `*` (any version, the record must exist).
    #[serde(default)]
    pub etag: Option<String>,
    /// The `dynamics365` connection (default: the flow's).
    #[serde(default)]
    pub connection: Option<String>,
    /// Longest one attempt (all its pages) may take. Default 30s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// A rate limit of the integration (`limits:`) each attempt takes a token from.
    #[serde(default)]
    pub limit: Option<String>,
}

impl crate::Kind for DynamicsConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, cx: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn crate::Step>> {
        use DynamicsOp::*;
        let needs_id = matches!(self.op, Get | Update | Upsert | Delete);
        let needs_body = matches!(self.op, Create | Update | Upsert);
        let op = format!("{:?}", self.op).to_ascii_lowercase();
        if needs_id && self.id.is_none() {
            diags.error(&path.key("id"), format!("`{op}` needs the record's `id`"));
        }
        if !needs_id && self.id.is_some() {
            diags.error(&path.key("id"), format!("`{op}` takes no `id`"));
        }
        if needs_body && self.body.is_none() {
            diags.error(&path.key("body"), format!("`{op}` needs a `body` (the record's fields)"));
        }
        if !needs_body && self.body.is_some() {
            diags.error(&path.key("body"), format!("`{op}` takes no `body`"));
        }
        if self.op != List {
            for (key, set) in [
                ("select", !self.select.is_empty() && self.op != Get),
                ("filter", self.filter.is_some()),
                ("orderby", self.orderby.is_some()),
                ("top", self.top.is_some()),
                ("pageSize", self.page_size.is_some()),
                ("maxPages", self.max_pages.is_some()),
            ] {
                if set {
                    diags.error(&path.key(key), format!("`{key}` is for `list`, not `{op}`"));
                }
            }
        }
        if self.etag.is_some() && self.op != Update {
            diags.error(&path.key("etag"), "`etag` is for `update`");
        }
        for (key, v) in [("pageSize", self.page_size), ("maxPages", self.max_pages), ("top", self.top)] {
            if v == Some(0) {
                diags.error(&path.key(key), format!("`{key}` must be at least 1"));
            }
        }
        if !self.entity.contains("{{") && !is_name(&self.entity) {
            diags.error(
                &path.key("entity"),
                format!("invalid entity set `{}`: expected a name like `accounts`", self.entity),
            );
        }
        for (i, c) in self.select.iter().enumerate() {
            if !is_name(c) {
                diags.error(&path.key("select").index(i), format!("invalid column `{c}`"));
            }
        }
        let connection = cx.connection_for(&["dynamics365"], self.connection.as_deref(), path, diags);
        let spec = json!({
            "entity": self.entity,
            "id": self.id,
            "body": self.body.clone().unwrap_or(Value::Null),
            "filter": self.filter,
            "orderby": self.orderby,
            "expand": self.expand,
            "etag": self.etag,
        });
        let spec = util::template(&spec, path, diags)?;
        Some(Box::new(run::Dynamics {
            op: self.op,
            spec,
            select: self.select.join(","),
            top: self.top,
            page_size: self.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
            max_pages: self.max_pages.unwrap_or(DEFAULT_MAX_PAGES),
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

/// A Dataverse name: letters, digits, `_`.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
