//! Records of the queue: its depth, what a claim may take, and what a worker claimed.

use serde::Serialize;

/// Executions waiting and running.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueueDepth {
    /// Queued.
    pub queued: i64,
    /// Running.
    pub running: i64,
}

/// Which queued executions a claim may take (see `Store::claim_in`).
#[derive(Debug, Clone)]
pub struct ClaimFilter {
    /// Only executions whose `crashes` count is in this range.
    pub crashes: std::ops::Range<i64>,
    /// Not those of these tenants.
    pub busy_tenants: Vec<String>,
    /// Not those of these flows, as `tenant/integration/flow`.
    pub busy_flows: Vec<String>,
}

impl Default for ClaimFilter {
    fn default() -> Self {
        ClaimFilter { crashes: 0..i64::MAX, busy_tenants: Vec::new(), busy_flows: Vec::new() }
    }
}

impl ClaimFilter {
    /// The SQL condition (starting with ` AND`) for the crash lane and the exclusions, and
    /// the lists it names, to bind in order from placeholder `first` (`placeholder(n)` writes
    /// one; `in_list(p)` the set of a bound list: `json_each` in SQLite, `unnest` in
    /// PostgreSQL).
    pub(crate) fn sql(
        &self,
        first: usize,
        placeholder: impl Fn(usize) -> String,
        in_list: impl Fn(&str) -> String,
    ) -> (String, Vec<&[String]>) {
        // The lane's numbers are ours, not input: written into the text (one statement per lane).
        let mut sql = format!(" AND crashes >= {} AND crashes < {}", self.crashes.start, self.crashes.end);
        if self.crashes.start > 0 {
            // Spelled as the suspects' partial index says, so that the planner may use it.
            sql.push_str(" AND crashes > 0");
        }
        let mut lists: Vec<&[String]> = Vec::new();
        if !self.busy_tenants.is_empty() {
            sql.push_str(&format!(" AND tenant_id NOT IN {}", in_list(&placeholder(first + lists.len()))));
            lists.push(&self.busy_tenants);
        }
        if !self.busy_flows.is_empty() {
            sql.push_str(&format!(
                " AND (tenant_id || '/' || integration || '/' || flow) NOT IN {}",
                in_list(&placeholder(first + lists.len()))
            ));
            lists.push(&self.busy_flows);
        }
        (sql, lists)
    }
}

/// An execution a worker just claimed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// Commit order.
    pub seq: i64,
    /// Execution id.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub integration: String,
    /// Flow slug.
    pub flow: String,
    /// Version id it runs on.
    pub version_id: i64,
    /// `webhook`, `manual`, `test` or `replay`.
    pub trigger_kind: String,
    /// The trigger event, JSON.
    pub trigger: String,
    /// Label of the API key used.
    pub auth_label: Option<String>,
    /// Round.
    pub attempt: i64,
    /// Created.
    pub created_at: i64,
    /// The execution this replays.
    pub replay_of: Option<String>,
    /// How many times in a row its node died under it without it making progress (see
    /// `Store::reap_expired`).
    pub crashes: i64,
}
