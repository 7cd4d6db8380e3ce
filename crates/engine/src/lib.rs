//! Flowgate's engine (DESIGN §3): turns trigger events into durable executions and runs them.
//!
//! The path of an event: [`Engine::submit`] writes it through the group [`committer`] and,
//! once durable, hands it straight to a worker (inserted already leased to this node) or,
//! when every worker is busy, leaves it queued for the `dispatch` loop to claim. A worker
//! runs the flow's compiled plan step by step (`executor`), journaling each attempt,
//! retrying with backoff, and answering sync callers through [`waiters`].
//!
//! # Layout
//! The node:
//! - `settings`: [`EngineSettings`], how a node runs, with its defaults.
//! - `node`: the node's shared state (every field documented); `start`: starting and
//!   stopping it.
//! - `submit`: accepting events ([`Engine::submit`]); `operations`: retry, replay, cancel,
//!   skip and bulk jobs on executions.
//! - `integrations`: validating, applying, deleting and reading definitions, flow switches,
//!   trigger state.
//!
//! Definitions:
//! - [`compile`]: documents → compiled flows (validation shares it); [`registry`]: compiled
//!   versions and the webhook routing table.
//! - [`deploy`]: deployments, config values, sealed secrets and lifecycle flows.
//! - [`testing`]: flow tests (`tests:`) on a throwaway engine.
//!
//! Running:
//! - [`committer`]: group commit of all writes.
//! - `dispatch`: claiming queued work, renewing leases, the leader's work; `shares`: fair
//!   shares of the node's workers per tenant and per flow.
//! - `executor`: running one execution; [`call`]: the `call` step's child executions and
//!   call-tree budget; `logs`: the node's log sources.
//! - `events`: what other nodes tell this one (new work, answers, cancels, changes).
//! - [`triggers`]: one module per trigger kind (webhook with its auth and signature schemes,
//!   e-mail, schedule, poll), each its compiled spec and runtime; the leader's scheduler.
//! - [`deliveries`]: outbound messages (webhook calls, e-mails, notifications) sent and
//!   retried durably.
//! - [`waiters`]: sync callers.
//! - [`backoff`], [`clock`]: retry delays and time; [`budget`]: the memory budget for
//!   events in flight.

#![warn(missing_docs)]

pub mod answers;
pub mod as_test;
pub mod backoff;
pub mod budget;
pub mod call;
pub mod clock;
pub mod committer;
pub mod compile;
pub mod connections;
pub mod deliveries;
pub mod deploy;
mod dispatch;
pub mod dry_runs;
mod events;
mod executor;
mod integrations;
mod logs;
mod manual;
mod node;
mod operations;
pub mod registry;
mod running;
mod settings;
mod shares;
mod start;
mod submit;
pub mod testing;
pub mod tokens;
pub mod traces;
pub mod triggers;
pub mod waiters;
pub mod waits;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use compile::{
    AuthSpec, CompiledFlow, CompiledIntegration, Draft, ExecutionPolicy, FlowTrigger, InboundWebhook, KeyLocation,
    Order,
};
pub use integrations::{ApplyError, Checked, version_summary};
pub use manual::{run_event, run_kind};
pub(crate) use node::Inner;
pub use operations::{BulkKind, BulkStart, ReplayError};
pub use settings::EngineSettings;
pub(crate) use submit::TriggerEvent;
pub use submit::{Submission, SubmitError, SubmitOptions, Submitted};
pub use triggers::webhook::verify;
pub use waiters::{SyncOutcome, Wait};

use committer::{CommitError, Committer};
use flowgate_expr::Evaluator;
use flowgate_model::{Diagnostic, Format};
use flowgate_store::{
    Dedup, ExecutionRow, Finish, FlowKey, IntegrationKey, NewExecution, NewVersion, PutOutcome, Scrub, SharedStore,
    Status, StoreEvent, VersionRecord, WriteBatch,
};
use registry::Registry;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The engine of one node.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// Compiled flows and routes.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// A delivery with its attempts (never its request: it holds credentials).
    ///
    /// # Errors
    /// The store.
    pub async fn delivery_view(&self, tenant: &str, id: &str) -> Result<Option<Value>, flowgate_store::Error> {
        let Some(d) = self.inner.store.delivery(tenant, id).await? else { return Ok(None) };
        let attempts = self.inner.store.delivery_attempts(id).await?;
        Ok(Some(deliveries::present(&d, &attempts)))
    }

    /// An execution's deliveries with their attempts.
    ///
    /// # Errors
    /// The store.
    pub async fn deliveries_of(&self, execution: &str) -> Result<Vec<Value>, flowgate_store::Error> {
        let mut out = Vec::new();
        for d in self.inner.store.deliveries_of(execution).await? {
            let attempts = self.inner.store.delivery_attempts(&d.id).await?;
            out.push(deliveries::present(&d, &attempts));
        }
        Ok(out)
    }

    /// Sends a delivered or failed delivery again, with the same message id.
    ///
    /// # Errors
    /// Not found, still pending, or the store.
    pub async fn resend(&self, tenant: &str, id: &str) -> Result<Value, flowgate_store::Error> {
        let d = self.inner.store.resend_delivery(tenant, id, self.inner.clock.now_ms()).await?;
        self.inner.delivery_wake.notify_one();
        let attempts = self.inner.store.delivery_attempts(id).await?;
        Ok(deliveries::present(&d, &attempts))
    }

    /// Reserves `bytes` of the memory budget for an event being received, waiting at most
    /// a couple of seconds; `None`: no room (answer 503). Grow it with [`Engine::grow`].
    pub async fn reserve(&self, bytes: usize) -> Option<budget::Reservation> {
        self.inner.memory.reserve(bytes, submit::BUDGET_WAIT).await
    }

    /// Adds `bytes` to a reservation as more of a body arrives; false: no room.
    pub async fn grow(&self, r: &budget::Reservation, bytes: usize) -> bool {
        self.inner.memory.grow(r, bytes, submit::BUDGET_WAIT).await
    }
}
