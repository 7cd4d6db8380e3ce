//! Poll triggers: an HTTP source fetched on a schedule, its pages followed, and each new
//! item (by identity or by a growing cursor) starting an execution.

use super::schedule::check_timing;
use crate::diag::{Diags, Path};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a poll does on its first run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FirstRun {
    /// Every item of the first poll starts an execution.
    #[default]
    All,
    /// The first poll only records what is there; later items start executions.
    Now,
}

/// How a poll follows pages.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Paginate {
    /// jq expression on the response giving the next page's URL (null or empty: last page).
    #[serde(default)]
    pub next_url: Option<String>,
    /// Follow the `Link` header's `rel="next"`.
    #[serde(default)]
    pub link_header: bool,
    /// A page-number query parameter (`page`), counting from `start` (default 1).
    #[serde(default)]
    pub page_param: Option<String>,
    /// An offset query parameter (`offset`), advanced by the number of items received.
    #[serde(default)]
    pub offset_param: Option<String>,
    /// First page number (`pageParam`) or offset (`offsetParam`). Default 1 for pages, 0 for offsets.
    #[serde(default)]
    pub start: Option<u64>,
    /// Most pages one poll fetches. Default 10.
    #[serde(default)]
    pub max_pages: Option<u32>,
}

/// Most pages a poll fetches by default.
pub const DEFAULT_MAX_PAGES: u32 = 10;

/// Polls an HTTP source at intervals and starts one execution per new item.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct PollTrigger {
    /// How often: a preset or interval as for schedules (`5min`). Or `cron`.
    #[serde(default)]
    pub every: Option<String>,
    /// A cron expression instead of `every`.
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone of `every`/`cron`. Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The request, with the options of the `http` step; templates see `$config` and the poll
    /// state as `$state` (`$state.cursor`).
    pub request: serde_json::Value,
    /// jq expression on the response (`{status, headers, body}`) giving the list of items.
    pub items: String,
    /// jq expression on an item giving its identity: items seen before start nothing.
    #[serde(default)]
    pub id: Option<String>,
    /// jq expression on an item giving a value that grows (`.updatedAt`): only items with a
    /// greater value than the greatest seen start executions; the greatest is `$state.cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Follow pagination.
    #[serde(default)]
    pub paginate: Option<Paginate>,
    /// `all` (default): the first poll's items run; `now`: they are only recorded.
    #[serde(default)]
    pub first_run: FirstRun,
    /// How many item ids are remembered (most recent first). Default 10000.
    #[serde(default)]
    pub remember: Option<u32>,
}

/// Item ids a poll remembers by default.
pub const DEFAULT_REMEMBER: u32 = 10_000;

impl PollTrigger {
    pub(crate) fn check(&self, path: &Path, diags: &mut Diags) {
        check_timing(self.every.as_deref(), self.cron.as_deref(), self.timezone.as_deref(), path, diags);
        if self.id.is_none() && self.cursor.is_none() {
            diags.error(path, "a poll needs `id` (dedupe by item identity) or `cursor` (only items past the last seen value), or both");
        }
        if !self.request.is_object() {
            diags.error(&path.key("request"), "expected a request: { method, url, headers, query, … }");
        }
        if self.remember == Some(0) {
            diags.error(&path.key("remember"), "remember must be at least 1");
        }
        if let Some(p) = &self.paginate {
            let at = path.key("paginate");
            let set = [p.next_url.is_some(), p.link_header, p.page_param.is_some(), p.offset_param.is_some()];
            match set.iter().filter(|b| **b).count() {
                0 => diags.error(&at, "set one of `nextUrl`, `linkHeader`, `pageParam` or `offsetParam`"),
                1 => {}
                _ => diags.error(&at, "set only one of `nextUrl`, `linkHeader`, `pageParam` or `offsetParam`"),
            }
            if p.max_pages == Some(0) {
                diags.error(&at.key("maxPages"), "maxPages must be at least 1");
            }
        }
    }

    /// The compiled schedule (`None` when the trigger does not check).
    pub fn schedule(&self) -> Option<crate::schedule::Schedule> {
        crate::schedule::Schedule::parse(self.every.as_deref(), self.cron.as_deref(), self.timezone.as_deref()).ok()
    }
}
