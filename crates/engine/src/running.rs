//! The executions running on this node, each with the token that cancels it — and the cancels
//! that came for an execution a moment before its worker registered it.
//!
//! An execution is committed (inserted running, or claimed) before its worker registers it
//! here. A cancel in between finds nothing to stop: the store has its flag, but a worker that
//! read that flag back would pay a query for every execution to catch a rare race. Instead a
//! cancel that finds nothing is remembered for a while, and registering looks for it under
//! the same lock, so one of the two always sees the other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a cancel that found nothing running is remembered: far longer than the moment
/// between a commit and its worker starting.
const REMEMBERED: Duration = Duration::from_secs(600);

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Running {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, CancellationToken>,
    /// Cancels that found nothing running: the round they were for, and when they came.
    early: HashMap<String, (i64, Instant)>,
}

impl Running {
    /// Registers a starting execution in its round (`attempt`); true when a cancel came for
    /// that round already (the caller cancels the token). A cancel of an earlier round does
    /// not stop a retry.
    pub(crate) fn register(&self, id: &str, round: i64, token: CancellationToken) -> bool {
        let mut s = self.state.lock().expect("running lock");
        s.tokens.insert(id.to_owned(), token);
        !s.early.is_empty() && s.early.remove(id).is_some_and(|(r, _)| r == round)
    }

    /// The execution ended here.
    pub(crate) fn remove(&self, id: &str) {
        self.state.lock().expect("running lock").tokens.remove(id);
    }

    /// Stops the execution if it runs here, or remembers the cancel of its round for when it
    /// registers.
    pub(crate) fn cancel(&self, id: &str, round: i64) {
        let mut s = self.state.lock().expect("running lock");
        match s.tokens.get(id) {
            Some(token) => token.cancel(),
            None => {
                let now = Instant::now();
                // Cancels of executions that run elsewhere or ended land here too: keep the
                // map small.
                if s.early.len() >= 1024 {
                    s.early.retain(|_, (_, at)| now.duration_since(*at) < REMEMBERED);
                }
                s.early.insert(id.to_owned(), (round, now));
            }
        }
    }

    /// How many run here.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().expect("running lock").tokens.len()
    }

    /// The ids of those that run here.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.state.lock().expect("running lock").tokens.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_before_registering_is_not_lost() {
        let running = Running::default();
        running.cancel("early", 1);
        assert!(running.register("early", 1, CancellationToken::new()), "the early cancel is found");
        assert!(!running.register("other", 1, CancellationToken::new()));
        // Once found, it is forgotten: a later run of the same round is not cancelled.
        running.remove("early");
        assert!(!running.register("early", 1, CancellationToken::new()));
        // A cancel of one round does not stop the next (a retry of a cancelled execution).
        running.cancel("retried", 1);
        assert!(!running.register("retried", 2, CancellationToken::new()));
        let token = CancellationToken::new();
        running.register("late", 1, token.clone());
        running.cancel("late", 1);
        assert!(token.is_cancelled());
        assert_eq!(running.len(), 4);
    }
}
