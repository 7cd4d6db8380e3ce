//! Where expressions run: inline first, then on a dedicated thread pool if they are slow.
//!
//! Nearly every expression finishes in microseconds, so it runs on the calling thread under a
//! small budget ([`Budget::INLINE`]). If that budget runs out, the evaluation is abandoned and
//! started again from scratch on one of the pool's threads with the full budget; jq is pure,
//! so re-running is safe. The pool's threads have large stacks, because deeply nested
//! results recurse when they are converted and dropped. A runaway therefore never holds an
//! async worker thread for longer than the inline budget.

use crate::EvalError;
use crate::jq::{Bound, Scope};
use crate::sandbox::Budget;
use crate::template::Template;
use serde_json::Value;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Stack size of the pool's threads: deep results recurse when converted and dropped.
const POOL_STACK_BYTES: usize = 256 * 1024 * 1024;

type Job = Box<dyn FnOnce() + Send>;

/// Evaluates templates under a budget, off the async threads when they are slow.
#[derive(Clone)]
pub struct Evaluator {
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
    budget: Budget,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").field("budget", &self.budget).finish()
    }
}

impl Evaluator {
    /// Starts `threads` pool threads; every evaluation gets `budget`.
    ///
    /// # Panics
    /// When the operating system refuses to start a thread.
    pub fn new(budget: Budget, threads: usize) -> Evaluator {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("flowgate-expr-{n}"))
                .stack_size(POOL_STACK_BYTES)
                .spawn(move || {
                    loop {
                        // The guard is dropped before the job runs, so others can take jobs.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every Evaluator is gone
                        }
                    }
                })
                .expect("spawn expression thread");
        }
        Evaluator { jobs: Arc::new(Mutex::new(tx)), budget }
    }

    /// The budget of each evaluation.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Evaluates `t` on `input`: inline if it is quick, else on the pool.
    ///
    /// # Errors
    /// A run-time error, an exhausted budget, or a result too deep to convert.
    pub async fn eval(&self, t: &Arc<Template>, input: &Value, scope: &Scope<'_>) -> Result<Value, EvalError> {
        if let Some(v) = t.as_literal() {
            return Ok(v.clone());
        }
        let inline = Budget {
            time: Budget::INLINE.time.min(self.budget.time),
            iterations: Budget::INLINE.iterations.min(self.budget.iterations),
            memory: self.budget.memory,
        };
        // The conversion of the input is metered with the inline attempt; a second attempt
        // reuses what it converted.
        match t.eval_keeping_bound(input, scope, inline) {
            (Some(bound), Err(EvalError::Budget(e)))
                if e.retry_with_more_time()
                    && (inline.iterations < self.budget.iterations || inline.time < self.budget.time) =>
            {
                self.eval_on_pool(t.clone(), bound).await
            }
            (_, other) => other,
        }
    }

    async fn eval_on_pool(&self, t: Arc<Template>, bound: Bound) -> Result<Value, EvalError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        let budget = self.budget;
        let job: Job = Box::new(move || {
            let _ = tx.send(t.eval_bound(&bound, budget));
        });
        let sent = self.jobs.lock().map_err(|_| EvalError::Runtime("expression pool is gone".into()))?.send(job);
        if sent.is_err() {
            return Err(EvalError::Runtime("expression pool is gone".into()));
        }
        rx.await.unwrap_or_else(|_| Err(EvalError::Runtime("expression evaluation was abandoned".into())))
    }
}
