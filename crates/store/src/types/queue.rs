//! Records of the queue: its depth, what a claim may take, and what a worker claimed.

use super::FlowKey;
use serde::Serialize;
use std::collections::HashMap;

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
    /// What this node's fair shares leave room for: a claim takes no more executions of a
    /// tenant or a flow than its share has room for.
    pub shares: ShareRoom,
}

impl Default for ClaimFilter {
    /// Any queued execution, whatever the shares.
    fn default() -> Self {
        ClaimFilter { crashes: 0..i64::MAX, shares: ShareRoom::default() }
    }
}

impl ClaimFilter {
    /// A filter for the lane `crashes` within `shares`.
    pub fn new(crashes: std::ops::Range<i64>, shares: ShareRoom) -> ClaimFilter {
        ClaimFilter { crashes, shares }
    }

    /// The lane's SQL condition, starting with ` AND`.
    pub(crate) fn lane_sql(&self) -> String {
        // The lane's numbers are ours, not input: written into the text (one statement per lane).
        let mut sql = format!(" AND crashes >= {} AND crashes < {}", self.crashes.start, self.crashes.end);
        if self.crashes.start > 0 {
            // Spelled as the suspects' partial index says, so that the planner may use it.
            sql.push_str(" AND crashes > 0");
        }
        sql
    }

    /// The lane's condition and the exclusion of tenants and flows at their share in `room` (for the
    /// claims of ordered and capped flows), and the lists it names, to bind in order from
    /// placeholder `first` (`placeholder(n)` writes one; `in_list(p)` the set of a bound
    /// list: `json_each` in SQLite, `unnest` in PostgreSQL).
    pub(crate) fn sql(
        &self,
        room: &ShareRoom,
        first: usize,
        placeholder: impl Fn(usize) -> String,
        in_list: impl Fn(&str) -> String,
    ) -> (String, Vec<Vec<String>>) {
        let mut sql = self.lane_sql();
        let (busy_tenants, busy_flows) = room.busy();
        let mut lists = Vec::new();
        if !busy_tenants.is_empty() {
            sql.push_str(&format!(" AND tenant_id NOT IN {}", in_list(&placeholder(first + lists.len()))));
            lists.push(busy_tenants);
        }
        if !busy_flows.is_empty() {
            sql.push_str(&format!(
                " AND (tenant_id || '/' || integration || '/' || flow) NOT IN {}",
                in_list(&placeholder(first + lists.len()))
            ));
            lists.push(busy_flows);
        }
        (sql, lists)
    }
}

/// A claim's lease: for whom, at what time, and until when it holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease<'a> {
    pub owner: &'a str,
    pub now: i64,
    pub until: i64,
}

/// The room a node's fair shares (issue 12) leave, as a claim counts it: no tenant may run
/// more than `tenant_cap` executions on the node, no flow more than `flow_cap`. Taking a
/// place counts it, so one claim cannot take a flow past its share however much of it is
/// queued.
#[derive(Debug, Clone)]
pub struct ShareRoom {
    /// Most running executions of one tenant.
    pub tenant_cap: usize,
    /// Most running executions of one flow.
    pub flow_cap: usize,
    /// Running executions per tenant.
    pub tenants: HashMap<String, usize>,
    /// Running executions per flow, keyed by [`ShareRoom::flow_key`].
    pub flows: HashMap<String, usize>,
}

impl Default for ShareRoom {
    /// No shares: a claim may take anything.
    fn default() -> Self {
        ShareRoom { tenant_cap: usize::MAX, flow_cap: usize::MAX, tenants: HashMap::new(), flows: HashMap::new() }
    }
}

impl ShareRoom {
    /// A flow's key in [`ShareRoom::flows`]: `tenant/integration/flow` (slugs have no `/`).
    pub fn flow_key(key: FlowKey<'_>) -> String {
        format!("{}/{}/{}", key.tenant, key.integration, key.flow)
    }

    /// Whether the tenant is at its share.
    pub(crate) fn tenant_full(&self, tenant: &str) -> bool {
        self.tenants.get(tenant).copied().unwrap_or(0) >= self.tenant_cap
    }

    /// How many more executions of the flow fit in its share and its tenant's.
    pub(crate) fn room(&self, key: FlowKey<'_>) -> usize {
        self.room_of(key.tenant, &Self::flow_key(key))
    }

    fn room_of(&self, tenant: &str, flow_key: &str) -> usize {
        let tenant = self.tenant_cap.saturating_sub(self.tenants.get(tenant).copied().unwrap_or(0));
        let flow = self.flow_cap.saturating_sub(self.flows.get(flow_key).copied().unwrap_or(0));
        tenant.min(flow)
    }

    /// Takes a place for an execution of the flow if its shares have room.
    pub(crate) fn take(&mut self, key: FlowKey<'_>) -> bool {
        if self.tenant_cap == usize::MAX && self.flow_cap == usize::MAX {
            return true;
        }
        let flow_key = Self::flow_key(key);
        if self.room_of(key.tenant, &flow_key) == 0 {
            return false;
        }
        *self.tenants.entry(key.tenant.to_owned()).or_default() += 1;
        *self.flows.entry(flow_key).or_default() += 1;
        true
    }

    /// Tenants and flows at their share.
    pub(crate) fn busy(&self) -> (Vec<String>, Vec<String>) {
        let tenants = self.tenants.iter().filter(|(_, n)| **n >= self.tenant_cap).map(|(k, _)| k.clone()).collect();
        let flows = self.flows.iter().filter(|(_, n)| **n >= self.flow_cap).map(|(k, _)| k.clone()).collect();
        (tenants, flows)
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
    /// It never started before this claim, so it has no journal to read (set where a claim
    /// knows it; `false` says only that it may have one).
    #[sqlx(skip)]
    pub fresh: bool,
    /// A cancel was asked for while it ran before (on a node that died).
    pub cancel_requested: bool,
    /// The W3C `traceparent` of the span that accepted it (its trace).
    pub traceparent: Option<String>,
}
