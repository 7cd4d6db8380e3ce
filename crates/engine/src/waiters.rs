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

/// Several callers may wait for one execution (a repeated delivery waits for the first).
type Shard = Mutex<HashMap<String, Vec<(oneshot::Sender<SyncOutcome>, Wait)>>>;

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
        self.shard(id).lock().expect("waiters lock").entry(id.to_owned()).or_default().push((tx, wait));
        rx
    }

    /// Answers and removes the waiters for `id` that wait for this kind of answer.
    pub fn answer(&self, id: &str, outcome: SyncOutcome) {
        let mut shard = self.shard(id).lock().expect("waiters lock");
        let Some(list) = shard.get_mut(id) else { return };
        let responded = matches!(outcome, SyncOutcome::Responded(_));
        let mut keep = Vec::new();
        for (tx, wait) in list.drain(..) {
            if responded && wait != Wait::FirstAnswer {
                keep.push((tx, wait));
            } else {
                let _ = tx.send(outcome.clone());
            }
        }
        if keep.is_empty() {
            shard.remove(id);
        } else {
            *list = keep;
        }
    }

    /// Removes the waiters for `id` whose callers gave up.
    pub fn remove(&self, id: &str) {
        let mut shard = self.shard(id).lock().expect("waiters lock");
        if let Some(list) = shard.get_mut(id) {
            list.retain(|(tx, _)| !tx.is_closed());
            if list.is_empty() {
                shard.remove(id);
            }
        }
    }

    /// True when someone waits for `id`.
    pub fn is_waiting(&self, id: &str) -> bool {
        self.shard(id).lock().expect("waiters lock").contains_key(id)
    }
}
