//! Callers waiting for an execution's answer: sync webhooks and `?wait=true` runs.
//!
//! A waiter is registered before the event is committed and answered by whichever comes
//! first: the `respond` step, or the end of the execution.

use flowgate_steps::Response;
use flowgate_store::Status;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// What a waiting caller gets.
#[derive(Debug, Clone)]
pub enum SyncOutcome {
    /// A `respond` step produced this answer (the execution may still be running).
    Responded(Response),
    /// The execution ended (for [`Wait::End`] waiters: always; else only when no `respond`
    /// step answered first).
    Finished {
        /// How it ended.
        status: Status,
        /// Its last output.
        output: Option<Value>,
        /// The error summary, when it failed.
        error: Option<Value>,
        /// The `respond` step's answer, if one ran.
        response: Option<Response>,
    },
}

/// What a submitter waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Nothing: answer as soon as the event is durable.
    No,
    /// The first answer: a `respond` step, or the end (sync webhooks).
    FirstAnswer,
    /// The end of the execution (`?wait=true` runs).
    End,
}

/// Shards of waiters, to keep lock contention low at high request rates.
const SHARDS: usize = 16;

type Shard = Mutex<HashMap<String, (oneshot::Sender<SyncOutcome>, Wait)>>;

/// Registered waiters by execution id.
pub struct Waiters {
    shards: Vec<Shard>,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

impl Waiters {
    fn shard(&self, id: &str) -> &Shard {
        // UUIDv7 ids end in random hex digits.
        let h = id.bytes().last().map_or(0, |b| b as usize);
        &self.shards[h % SHARDS]
    }

    /// Registers a waiter for `id`.
    pub fn register(&self, id: &str, wait: Wait) -> oneshot::Receiver<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        self.shard(id).lock().expect("waiters lock").insert(id.to_owned(), (tx, wait));
        rx
    }

    /// Answers and removes the waiter for `id`, if it waits for this kind of answer.
    pub fn answer(&self, id: &str, outcome: SyncOutcome) {
        let mut shard = self.shard(id).lock().expect("waiters lock");
        let wants = match (&outcome, shard.get(id)) {
            (_, None) => false,
            (SyncOutcome::Responded(_), Some((_, wait))) => *wait == Wait::FirstAnswer,
            (SyncOutcome::Finished { .. }, Some(_)) => true,
        };
        if wants && let Some((tx, _)) = shard.remove(id) {
            let _ = tx.send(outcome);
        }
    }

    /// Removes the waiter for `id` (its caller gave up).
    pub fn remove(&self, id: &str) {
        self.shard(id).lock().expect("waiters lock").remove(id);
    }

    /// True when someone waits for `id`.
    pub fn is_waiting(&self, id: &str) -> bool {
        self.shard(id).lock().expect("waiters lock").contains_key(id)
    }
}
