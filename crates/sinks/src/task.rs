//! A sink's delivery task side: what the caller's handle and the task share (counters,
//! flush and stop signals), and the task's end of the queue ([`Ctx`]). Each transport
//! (`file`, `http`, `syslog`) runs on a `Ctx`; the [`Sink`](crate::Sink) handle starts them.

use crate::event::LogEvent;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A function applied to the message and string fields of every record before it is
/// formatted, to mask secrets.
pub type Redact = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Decides whether a host name, resolved to an address, may be reached.
pub type AddressGuard = Arc<dyn Fn(&str, std::net::IpAddr) -> bool + Send + Sync>;

/// What the caller's side and the task share.
pub(crate) struct Shared {
    pub(crate) kind: &'static str,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    /// Records the queue took.
    pub(crate) accepted: AtomicU64,
    /// Records delivered or dropped by the task.
    pub(crate) settled: AtomicU64,
    /// While `settled` is below this, the task sends what it has without waiting for a batch
    /// to fill: someone is flushing.
    pub(crate) flush_target: AtomicU64,
    pub(crate) flush_requested: Notify,
    pub(crate) progress: Notify,
    /// Whether the latest attempt failed; failures are logged when a streak starts, not on
    /// every retry, so an outage does not flood the application's own log.
    pub(crate) failing: AtomicBool,
    pub(crate) last_error: Mutex<Option<(String, i64)>>,
    pub(crate) started_ms: i64,
}

impl Shared {
    pub(crate) fn new(kind: &'static str) -> Shared {
        Shared {
            kind,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            flush_target: AtomicU64::new(0),
            flush_requested: Notify::new(),
            progress: Notify::new(),
            failing: AtomicBool::new(false),
            last_error: Mutex::new(None),
            started_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }

    pub(crate) fn delivered(&self, n: usize) {
        if n == 0 {
            return;
        }
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(sink = self.kind, "A log sink delivers again.");
        }
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        self.count_metric("sent", n);
        self.settle(n);
    }

    /// Gives up on `n` accepted records.
    pub(crate) fn dropped(&self, n: usize, error: &str) {
        if n == 0 {
            return;
        }
        self.record_error(error);
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        self.count_metric("dropped", n);
        self.settle(n);
    }

    /// Counts an attempt that failed and will be retried.
    pub(crate) fn failed_attempt(&self, error: &str) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        self.record_error(error);
    }

    fn record_error(&self, error: &str) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                sink = self.kind,
                error,
                "A log sink fails to deliver; further failures are only counted until it recovers."
            );
        }
        *self.last_error.lock().expect("sink error lock") = Some((error.to_string(), now_ms()));
    }

    fn settle(&self, n: usize) {
        self.settled.fetch_add(n as u64, Ordering::SeqCst);
        self.progress.notify_waiters();
    }

    pub(crate) fn count_metric(&self, outcome: &'static str, n: usize) {
        metrics::counter!("flowgate_log_records_total", "sink" => self.kind, "outcome" => outcome).increment(n as u64);
    }

    /// Whether someone waits in [`Sink::flush`] for records not yet settled.
    fn flushing(&self) -> bool {
        self.settled.load(Ordering::SeqCst) < self.flush_target.load(Ordering::SeqCst)
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Why [`Ctx::receive`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Records were appended to the buffer.
    Records,
    /// The deadline passed (or a flush is waiting, which makes every deadline "now").
    Due,
    /// Someone asked for a flush; re-evaluate.
    Flush,
    /// Every handle is gone and the queue is empty.
    Closed,
    /// [`Sink::stop`] gave up waiting.
    Abort,
}

/// A delivery task's end of the sink.
pub(crate) struct Ctx {
    pub(crate) rx: mpsc::Receiver<LogEvent>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) abort: CancellationToken,
    pub(crate) closing: CancellationToken,
    pub(crate) redact: Option<Redact>,
    pub(crate) max_retry: Duration,
}

impl Ctx {
    /// Waits for records and appends up to `limit` (at least 1) of them to `buf`, or returns
    /// at `due` — immediately when a flush is waiting — with nothing new.
    pub async fn receive(&mut self, buf: &mut Vec<LogEvent>, limit: usize, due: Option<Instant>) -> Wake {
        let due = due.map(|d| if self.shared.flushing() { Instant::now() } else { d });
        let before = buf.len();
        // Biased: a stop wins over everything, and queued records over a due batch, so a
        // flush drains the queue in full batches.
        tokio::select! {
            biased;
            _ = self.abort.cancelled() => Wake::Abort,
            n = self.rx.recv_many(buf, limit.max(1)) => {
                if n == 0 {
                    return Wake::Closed;
                }
                if let Some(redact) = &self.redact {
                    buf[before..].iter_mut().for_each(|e| e.redact(redact.as_ref()));
                }
                Wake::Records
            }
            _ = sleep_until_some(due) => Wake::Due,
            _ = self.shared.flush_requested.notified() => Wake::Flush,
        }
    }

    /// Waits `wait` before a retry. False when the sink is stopping (aborted, or every handle
    /// is gone): the caller then gives up instead of retrying.
    pub async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            _ = self.abort.cancelled() => false,
            _ = self.closing.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// Whether [`Sink::stop`] gave up waiting: the task should end now.
    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Resolves when [`Sink::stop`] gave up waiting.
    pub async fn aborted(&self) {
        self.abort.cancelled().await;
    }

    /// Ends the task after a stop: what it holds and what is still queued is dropped.
    pub fn abandon(mut self, held: usize) {
        self.rx.close();
        let mut queued = 0;
        while self.rx.try_recv().is_ok() {
            queued += 1;
        }
        self.shared.dropped(held + queued, "the sink stopped before these records could be delivered");
    }

    /// The next backoff step: doubled, capped at `max_retry`.
    pub fn next_backoff(&self, backoff: Duration) -> Duration {
        (backoff * 2).min(self.max_retry)
    }

    /// The first backoff step: 500 ms, or `max_retry` when that is shorter.
    pub fn first_backoff(&self) -> Duration {
        Duration::from_millis(500).min(self.max_retry)
    }
}

async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
