//! The monitor's filters and one row of its table: the page renders its rows with it and the
//! live stream sends the same markup, so an updated row looks like a loaded one.

use crate::layout;
use flowgate_store::{ExecutionQuery, ExecutionRow, Status};
use maud::{Markup, html};
use serde::Deserialize;

/// The monitor's filters (`?integration=&flow=&status=&cursor=`), as the API takes them.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct Filters {
    #[serde(default)]
    pub(crate) integration: Option<String>,
    #[serde(default)]
    pub(crate) flow: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl Filters {
    /// The store query for a page of `limit` rows; `Err` names a filter that is not valid.
    pub(crate) fn query(&self, tenant: &str, limit: u32) -> Result<ExecutionQuery, String> {
        let status = match given(&self.status) {
            None => None,
            Some(s) => Some(Status::parse(&s).ok_or_else(|| format!("unknown status `{s}`"))?),
        };
        let before = match given(&self.cursor) {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| "invalid cursor".to_owned())?),
        };
        Ok(ExecutionQuery {
            tenant: tenant.to_owned(),
            integration: given(&self.integration),
            flow: given(&self.flow),
            status,
            before,
            limit,
        })
    }

    /// The query string of these filters with another cursor.
    pub(crate) fn with_cursor(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in [("integration", &self.integration), ("flow", &self.flow), ("status", &self.status)] {
            if let Some(v) = given(v) {
                pairs.push((k, v));
            }
        }
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_owned()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// How long it ran (or has run until its last update), in milliseconds.
pub(crate) fn took(r: &ExecutionRow) -> Option<i64> {
    Some(r.finished_at? - r.started_at.unwrap_or(r.created_at))
}

/// One row of the monitor.
pub(crate) fn render(r: &ExecutionRow) -> Markup {
    html! {
        tr id=(format!("ex-{}", r.id)) data-seq=(r.seq) {
            td data-label="Time" { (layout::time(r.created_at)) }
            td data-label="Integration" { (r.integration) }
            td data-label="Flow" { (r.flow) }
            td data-label="Status" { (layout::status_badge(&r.status)) }
            td data-label="Trigger" { (r.trigger_kind) }
            td data-label="Duration" { @if let Some(ms) = took(r) { (layout::duration(ms)) } }
            td data-label="Execution" { a.id href=(format!("/console/executions/{}", r.id)) { (r.id) } }
        }
    }
}
