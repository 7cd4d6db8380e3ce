//! Records read from and written to the store. Times are milliseconds since the Unix epoch;
//! JSON payloads travel as text, serialised once by whoever produced them.

use serde::Serialize;

mod connections;
mod keys;
mod outbound;
mod queue;
pub use connections::*;
pub use keys::*;
pub use outbound::*;
pub use queue::*;

/// An execution's lifecycle: `queued → running → succeeded | failed | filtered | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting to be claimed (possibly until `run_after`).
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    /// Ran to the end.
    Succeeded,
    /// A step failed for good.
    Failed,
    /// A `filter` step stopped it.
    Filtered,
    /// A user cancelled it.
    Cancelled,
    /// Waits for something outside it (a delivery being retried), holding no worker; it is
    /// queued again when that ends.
    Waiting,
}

impl Status {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Filtered => "filtered",
            Status::Cancelled => "cancelled",
            Status::Waiting => "waiting",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "filtered" => Status::Filtered,
            "cancelled" => Status::Cancelled,
            "waiting" => Status::Waiting,
            _ => return None,
        })
    }

    /// True once the execution will not run again (unless retried).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Filtered | Status::Cancelled)
    }

    /// Every status.
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Filtered,
        Status::Cancelled,
        Status::Waiting,
    ];
}

/// A tenant.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Tenant {
    /// Its id, used in webhook URLs.
    pub id: String,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: i64,
}

/// A new API token; only its hash is stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Token id (shown in listings, used to revoke).
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// What it is for.
    pub name: String,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The first characters, to recognise it.
    pub prefix: String,
    /// When it was made.
    pub created_at: i64,
}

/// A stored API token (never the token itself).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenInfo {
    /// Token id.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// What it is for.
    pub name: String,
    /// The first characters of the token.
    pub prefix: String,
    /// When it was made.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// A webhook path a flow listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Path under `/hooks/<tenant>/`, without leading slash.
    pub path: String,
    /// The flow's slug.
    pub flow: String,
}

/// A new integration version.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub slug: String,
    /// Content hash (SHA-256 of the normalised document), to skip unchanged re-applies.
    pub hash: String,
    /// `yaml` or `json`.
    pub format: String,
    /// The text as applied.
    pub source: String,
    /// The document as JSON.
    pub document: String,
    /// Its active webhook flows.
    pub routes: Vec<Route>,
    /// Its explicit inbound e-mail addresses (lower case), unique across tenants.
    pub emails: Vec<EmailRoute>,
    /// The document's literal credentials, sealed.
    pub secrets: Option<String>,
    /// Now.
    pub now: i64,
}

/// A sealed text the store keeps, for master key rotation.
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    /// `deployment` (a config object), `version` (a version's literal credentials),
    /// `delivery` (an outbound request), `logSource` (a log source's config), `smtp` (a
    /// tenant's SMTP settings) or `connection` (a connection's token or PKCE verifier).
    pub kind: &'static str,
    /// Owner.
    pub tenant: &'a str,
    /// Integration slug; a delivery's id; a log source's name; for a connection what its
    /// value is bound to after the tenant (`<integration>/connections/<name>[/pkce]`).
    pub integration: &'a str,
    /// The text.
    pub text: &'a str,
}

/// An integration installed in its tenant.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Deployment {
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub integration: String,
    /// Config values, a JSON object; secret values sealed.
    pub config: String,
    /// Deployed (else undeployed: stored, not live).
    pub deployed: bool,
    /// The version its `deploy` flows last ran for.
    pub deployed_version: Option<i64>,
    /// Last changed.
    pub updated_at: i64,
}

/// An explicit inbound e-mail address of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRoute {
    /// The address, lower case.
    pub address: String,
    /// The flow's slug.
    pub flow: String,
}

/// What a schedule or poll keeps between firings (JSON the engine owns).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TriggerState {
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub integration: String,
    /// Flow slug.
    pub flow: String,
    /// The state, JSON.
    pub state: String,
    /// Last written.
    pub updated_at: i64,
}

/// A flow switched on or off through the API.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FlowSwitch {
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub integration: String,
    /// Flow slug.
    pub flow: String,
    /// On or off.
    pub active: bool,
    /// When it was switched.
    pub updated_at: i64,
}

/// A stored integration version.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct VersionRecord {
    /// Version id (unique across integrations).
    pub id: i64,
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub slug: String,
    /// 1, 2, 3… per integration.
    pub version: i64,
    /// Content hash.
    pub hash: String,
    /// `yaml` or `json`.
    pub format: String,
    /// The text as applied.
    pub source: String,
    /// The document as JSON.
    pub document: String,
    /// When it was applied.
    pub created_at: i64,
    /// The document's literal credentials, sealed (source and document hold markers).
    #[serde(skip)]
    pub secrets: Option<String>,
}

/// What `put_integration` did.
#[derive(Debug, Clone)]
pub enum PutOutcome {
    /// A new version was stored and made current.
    Created(VersionRecord),
    /// The document equals the current version; nothing changed.
    Unchanged(VersionRecord),
}

impl PutOutcome {
    /// The current version either way.
    pub fn record(&self) -> &VersionRecord {
        match self {
            PutOutcome::Created(r) | PutOutcome::Unchanged(r) => r,
        }
    }
}

/// A new execution, from a trigger event.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// Execution id (UUID v7).
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub integration: String,
    /// Flow slug.
    pub flow: String,
    /// The integration version it runs on.
    pub version_id: i64,
    /// `Queued`, or `Running` when the inserting node runs it at once (then leased to it).
    pub status: Status,
    /// The lease owner when inserted running.
    pub lease_owner: Option<String>,
    /// The lease expiry when inserted running.
    pub lease_until: Option<i64>,
    /// `webhook`, `manual`, `test` or `replay`.
    pub trigger_kind: &'static str,
    /// The trigger event, JSON.
    pub trigger: String,
    /// Label of the API key the caller used.
    pub auth_label: Option<String>,
    /// Not before.
    pub run_after: i64,
    /// Now.
    pub created_at: i64,
    /// The execution this one replays.
    pub replay_of: Option<String>,
    /// Its order group within the flow (`ordered`/`orderBy`), if any.
    pub order_key: Option<String>,
    /// The flow's concurrency cap, if any.
    pub max_running: Option<i64>,
    /// The delivery's identity, for idempotent ingress.
    pub dedup: Option<Dedup>,
    /// The execution whose `call` step started this one.
    pub parent_id: Option<String>,
    /// The W3C `traceparent` of the span that accepted it (its trace).
    pub traceparent: Option<String>,
}

/// A delivery's identity: a repeat before `expires_at` gets the first execution.
#[derive(Debug, Clone)]
pub struct Dedup {
    /// The identity (scoped to the flow).
    pub key: String,
    /// When it is forgotten.
    pub expires_at: i64,
}

/// What a commit did beyond writing.
#[derive(Debug, Clone, Default)]
pub struct CommitOutcome {
    /// New executions not inserted because their delivery was seen before:
    /// (the new id, the first execution's id).
    pub duplicates: Vec<(String, String)>,
}

/// How much step data a finished execution keeps (the flow's `diagnostics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scrub {
    /// Everything.
    #[default]
    Keep,
    /// Step entries and logs, without inputs and outputs.
    Io,
    /// No step entries and no logs.
    All,
}

/// Which executions a bulk operation or a count applies to.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionFilter {
    /// Owner (set by the server from the caller's token).
    #[serde(skip)]
    pub tenant: String,
    /// Only this integration.
    #[serde(default)]
    pub integration: Option<String>,
    /// Only this flow.
    #[serde(default)]
    pub flow: Option<String>,
    /// Only this status.
    #[serde(default)]
    pub status: Option<String>,
    /// Created at or after (epoch ms).
    #[serde(default)]
    pub from: Option<i64>,
    /// Created before (epoch ms).
    #[serde(default)]
    pub to: Option<i64>,
    /// Only these ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Only this trigger kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_kind: Option<String>,
    /// Only the execution with this id or those this delivery identity led to (as
    /// [`ExecutionQuery::search`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Only executions committed up to this `seq`: a bulk job fixes it when it starts, so the
    /// executions it creates itself (replays of the same flow) are not selected in turn.
    #[serde(default, skip_deserializing)]
    pub through_seq: Option<i64>,
}

/// A bulk retry or replay and its progress.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct BulkJob {
    /// Job id.
    pub id: String,
    /// Owner.
    #[serde(skip)]
    pub tenant_id: String,
    /// `retry` or `replay`.
    pub kind: String,
    /// The filter, JSON.
    pub filter: String,
    /// Executions selected.
    pub total: i64,
    /// Executions handled.
    pub done: i64,
    /// Executions that could not be handled (e.g. no longer retryable).
    pub failed: i64,
    /// `running` or `done`.
    pub status: String,
    /// Started.
    pub created_at: i64,
    /// Ended.
    pub finished_at: Option<i64>,
}

/// Which finished executions a retention pass may delete.
#[derive(Debug, Clone)]
pub enum PruneScope {
    /// Every tenant's.
    All,
    /// One flow's.
    Flow {
        /// Owner.
        tenant: String,
        /// Integration slug.
        integration: String,
        /// Flow slug.
        flow: String,
    },
}

/// One step attempt in the journal.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StepRecord {
    /// The execution.
    #[serde(skip)]
    pub execution_id: String,
    /// The step.
    pub step_id: String,
    /// The execution's round (1, then +1 per retry from the failed step).
    pub round: i64,
    /// The attempt within the round (1, 2, …).
    pub attempt: i64,
    /// Order within the execution.
    pub seq: i64,
    /// `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// Input, JSON; `None` when it is the output of the nearest earlier completed entry
    /// (`succeeded`, `skipped`, `continued`), or the trigger when there is none — see
    /// [`fill_inputs`].
    pub input: Option<String>,
    /// Output, JSON.
    pub output: Option<String>,
    /// Error `{code, message, details}`, JSON.
    pub error: Option<String>,
    /// The answer a `respond` step gave, JSON (restored when the execution resumes).
    pub response: Option<String>,
    /// Start.
    pub started_at: i64,
    /// End.
    pub finished_at: i64,
}

/// A log line.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogRecord {
    /// The execution.
    #[serde(skip)]
    pub execution_id: String,
    /// When.
    pub at: i64,
    /// `debug`, `info`, `warn`, `error`.
    pub level: String,
    /// The step that wrote it.
    pub step_id: Option<String>,
    /// The text.
    pub message: String,
}

/// The end of an execution (or of a round).
#[derive(Debug, Clone)]
pub struct Finish {
    /// The execution.
    pub id: String,
    /// The lease owner finishing it (only the holder may).
    pub owner: String,
    /// Final status.
    pub status: Status,
    /// The last step's output, JSON.
    pub output: Option<String>,
    /// The `respond` step's answer, JSON.
    pub response: Option<String>,
    /// Error summary, JSON.
    pub error: Option<String>,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// Now.
    pub finished_at: i64,
    /// Whether it keeps holding its order group (failed, with `onExhausted: block`).
    pub holds_order: bool,
    /// How much of its step data to keep.
    pub scrub: Scrub,
}

/// Hands a running execution back to the queue until `run_after` (a long backoff).
#[derive(Debug, Clone)]
pub struct Park {
    /// The execution.
    pub id: String,
    /// The lease owner.
    pub owner: String,
    /// Not before.
    pub run_after: i64,
}

/// Events nodes send each other through the store (PostgreSQL's LISTEN/NOTIFY), delivered when
/// the transaction that carries them commits. A single-process store (SQLite) has nobody to
/// tell and drops them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "k", rename_all = "camelCase")]
pub enum StoreEvent {
    /// There is queued work (claim some).
    Work,
    /// An execution ended (whoever waits for it: read it).
    Finished {
        /// The execution.
        id: String,
    },
    /// An execution's `respond` step answered (whoever waits for it: read the response).
    Responded {
        /// The execution.
        id: String,
    },
    /// Stop this execution if you run it.
    Cancel {
        /// The execution.
        id: String,
        /// Its round (a retry of it is not to be stopped).
        #[serde(default)]
        attempt: i64,
    },
    /// An integration changed (reload it).
    Integration {
        /// Its tenant.
        tenant: String,
        /// Its slug.
        slug: String,
    },
    /// A tenant's log sources changed (restart their sinks).
    LogSources {
        /// Its tenant.
        tenant: String,
    },
    /// Events may have been missed (the listener reconnected): re-read what matters.
    Resync,
}

/// A `respond` step's answer, stored at once so a caller waiting on another node can read it.
#[derive(Debug, Clone)]
pub struct Responded {
    /// The execution.
    pub id: String,
    /// The answer, JSON.
    pub response: String,
}

/// Writes committed together in one transaction.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    /// New executions.
    pub inserts: Vec<NewExecution>,
    /// Journal entries.
    pub steps: Vec<StepRecord>,
    /// Log lines.
    pub logs: Vec<LogRecord>,
    /// Finished executions.
    pub finishes: Vec<Finish>,
    /// Executions handed back to the queue.
    pub parks: Vec<Park>,
    /// Answers of `respond` steps, stored before the execution ends.
    pub responses: Vec<Responded>,
    /// Events for the other nodes, sent when the batch commits.
    pub events: Vec<StoreEvent>,
    /// Trigger states, written with the executions they account for.
    pub states: Vec<TriggerState>,
    /// Outbound deliveries to make (ignored when their id exists: a resumed step).
    pub deliveries: Vec<NewDelivery>,
}

impl WriteBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.inserts.is_empty()
            && self.steps.is_empty()
            && self.logs.is_empty()
            && self.finishes.is_empty()
            && self.parks.is_empty()
            && self.states.is_empty()
            && self.deliveries.is_empty()
    }

    /// Moves everything from `other` into this batch.
    pub fn append(&mut self, other: &mut WriteBatch) {
        self.inserts.append(&mut other.inserts);
        self.steps.append(&mut other.steps);
        self.logs.append(&mut other.logs);
        self.finishes.append(&mut other.finishes);
        self.parks.append(&mut other.parks);
        self.responses.append(&mut other.responses);
        self.states.append(&mut other.states);
        self.deliveries.append(&mut other.deliveries);
        for e in other.events.drain(..) {
            // "There is work" once per batch is enough.
            if e != StoreEvent::Work || !self.events.contains(&StoreEvent::Work) {
                self.events.push(e);
            }
        }
    }
}

/// A stored execution.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExecutionRow {
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
    /// The version's number.
    pub version: i64,
    /// Status, as stored.
    pub status: String,
    /// `webhook`, `manual`, `test` or `replay`.
    pub trigger_kind: String,
    /// The trigger event, JSON.
    pub trigger: String,
    /// Label of the API key used.
    pub auth_label: Option<String>,
    /// Round (1, then +1 per retry).
    pub attempt: i64,
    /// Not before.
    pub run_after: i64,
    /// Created.
    pub created_at: i64,
    /// First started.
    pub started_at: Option<i64>,
    /// Finished.
    pub finished_at: Option<i64>,
    /// Last output, JSON.
    pub output: Option<String>,
    /// The respond step's answer, JSON.
    pub response: Option<String>,
    /// Error summary, JSON.
    pub error: Option<String>,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// The execution this replays.
    pub replay_of: Option<String>,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Its order group, if its flow is ordered.
    pub order_key: Option<String>,
    /// Whether it holds its order group (queued, running, or failed and blocking).
    pub holds_order: bool,
    /// The execution whose `call` step started this one.
    pub parent_id: Option<String>,
    /// How many times in a row its node died under it without progress.
    pub crashes: i64,
    /// The W3C `traceparent` of the span that accepted it (its trace).
    pub traceparent: Option<String>,
}

impl ExecutionRow {
    /// The typed status.
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }
}

/// Filters for listing executions.
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    /// Owner.
    pub tenant: String,
    /// Only this integration.
    pub integration: Option<String>,
    /// Only this flow.
    pub flow: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this trigger kind (`webhook`, `schedule`, `replay`, …).
    pub trigger_kind: Option<String>,
    /// Created at or after (epoch ms).
    pub from: Option<i64>,
    /// Created before (epoch ms).
    pub to: Option<i64>,
    /// Only the execution with this id, or those a delivery identity (the ingress's dedup
    /// key, e.g. an `Idempotency-Key`, while it is remembered) led to.
    pub search: Option<String>,
    /// Only executions older than this `seq` (the page cursor).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// Fills the inputs the journal leaves out (`StepRecord::input`), given the entries of one
/// execution in order and its trigger.
/// A journal whose completed entries lost their outputs was scrubbed (`diagnostics: errors`):
/// its inputs stay empty too, rather than showing the trigger as the first step's input.
pub fn fill_inputs(records: &mut [StepRecord], trigger: &str) {
    let completed = |r: &StepRecord| matches!(r.status.as_str(), "succeeded" | "skipped" | "continued");
    if records.iter().any(|r| completed(r) && r.output.is_none()) {
        return;
    }
    let mut last = trigger.to_owned();
    for r in records.iter_mut() {
        if r.input.is_none() {
            r.input = Some(last.clone());
        }
        if completed(r) {
            last = r.output.clone().unwrap_or_else(|| "null".to_owned());
        }
    }
}

/// A token bucket's state now: (tokens available, `Some(ms to wait)` when fewer than one).
pub(crate) fn bucket(
    tokens: f64,
    updated_at: i64,
    paused_until: i64,
    per_ms: f64,
    burst: u32,
    now: i64,
) -> (f64, Option<i64>) {
    if paused_until > now {
        return (tokens, Some(paused_until - now));
    }
    let elapsed = (now - updated_at).max(0) as f64;
    let available = (tokens + elapsed * per_ms).min(f64::from(burst));
    if available >= 1.0 {
        (available, None)
    } else {
        let wait = ((1.0 - available) / per_ms).ceil().max(1.0) as i64;
        (available, Some(wait))
    }
}

/// The OFFSET that finds the oldest execution to keep when keeping the newest `keep`.
pub(crate) fn keep_offset(keep: u64) -> i64 {
    i64::try_from(keep.saturating_sub(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
