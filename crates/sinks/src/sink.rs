//! A running sink: the caller's non-blocking side (a bounded queue and counters) and what
//! every delivery task shares — receiving records, settling them, pausing between retries.
//!
//! Each sink owns its queue and its task, so a slow or failing log source only ever fills its
//! own queue. The caller never waits: a record that does not fit is dropped and counted.
//!
//! Every record the queue accepted is eventually *settled* — delivered or dropped — exactly
//! once; [`Sink::flush`] waits for the settled count to catch up with the accepted count.

use crate::config::{self, SinkConfig, Transport};
use crate::event::LogEvent;
use crate::{file, http, syslog};
use serde::Serialize;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Records a sink queues unless told otherwise.
pub const DEFAULT_QUEUE: usize = 10_000;
/// Longest wait between two delivery attempts unless told otherwise.
pub const DEFAULT_MAX_RETRY: Duration = Duration::from_secs(30);
/// How long [`Sink::stop`] lets queued records drain before giving up on them.
pub const STOP_FLUSH: Duration = Duration::from_secs(2);

/// A function applied to the message and string fields of every record before it is
/// formatted, to mask secrets.
pub type Redact = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// How a sink runs, beside where it delivers.
#[derive(Clone)]
pub struct SinkOptions {
    /// Records waiting for delivery before new ones are dropped (default 10 000).
    pub queue: usize,
    /// Cap of the delivery backoff — HTTP retries and syslog reconnects (default 30 s).
    pub max_retry: Duration,
    /// Applied to the message and string fields before formatting.
    pub redact: Option<Redact>,
    /// Which resolved addresses syslog and HTTP deliveries may connect to (`host`, address);
    /// none: any. Checked on every connection, so a name re-pointed inside is refused.
    pub guard: Option<AddressGuard>,
}

/// Decides whether a host name, resolved to an address, may be reached.
pub type AddressGuard = Arc<dyn Fn(&str, std::net::IpAddr) -> bool + Send + Sync>;

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions { queue: DEFAULT_QUEUE, max_retry: DEFAULT_MAX_RETRY, redact: None, guard: None }
    }
}

impl fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkOptions")
            .field("queue", &self.queue)
            .field("max_retry", &self.max_retry)
            .field("redact", &self.redact.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// Counters of one sink.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkStats {
    /// Records delivered.
    pub sent: u64,
    /// Records given up on: the queue was full, the receiver refused them, or the sink stopped
    /// before they could be delivered.
    pub dropped: u64,
    /// Delivery attempts that failed (each retry, each failed connection).
    pub failed_attempts: u64,
    /// Records accepted and not yet delivered or dropped.
    pub queued: u64,
    /// The latest failure.
    pub last_error: Option<String>,
    /// When the latest failure happened, in milliseconds since the Unix epoch.
    pub last_error_at_ms: Option<i64>,
    /// Since when these counters count, in milliseconds since the Unix epoch: they belong to
    /// this node's sink, which starts from zero when the node starts (or the source changes).
    pub counting_since_ms: i64,
}

/// A running sink: `send` never blocks or fails the caller; records that cannot be queued are
/// dropped and counted.
///
/// Clones share the queue and the task. The task ends when [`Sink::stop`] is called on any
/// clone, or once every clone is dropped and the queue has drained.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<LogEvent>,
    shared: Arc<Shared>,
    abort: CancellationToken,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// Tells the task, once the last clone is gone, to stop retrying and just drain.
    _closing: Arc<DropGuard>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink").field("kind", &self.shared.kind).field("stats", &self.stats()).finish()
    }
}

impl Sink {
    /// Validates `config` and spawns the delivery task on the current tokio runtime.
    pub fn start(config: SinkConfig, options: SinkOptions) -> Result<Sink, String> {
        config.validate()?;
        if options.queue == 0 {
            return Err("the queue must hold at least one record".into());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "a sink must be started from within a tokio runtime".to_string())?;
        let (tx, rx) = mpsc::channel(options.queue);
        let shared = Arc::new(Shared::new(config.kind()));
        let abort = CancellationToken::new();
        let closing = CancellationToken::new();
        let ctx = Ctx {
            rx,
            shared: shared.clone(),
            abort: abort.clone(),
            closing: closing.clone(),
            redact: options.redact,
            max_retry: options.max_retry.max(Duration::from_millis(1)),
        };
        let task = match config {
            SinkConfig::Syslog { url, app_name, hostname } => {
                let target = config::parse_syslog_url(&url)?;
                let header = syslog::Header {
                    app_name: app_name.unwrap_or_else(|| config::DEFAULT_APP_NAME.to_string()),
                    hostname: hostname.unwrap_or_else(syslog::local_hostname),
                };
                let guard = options.guard.clone();
                match target.transport {
                    Transport::Udp => runtime.spawn(syslog::run_udp(ctx, target, header, guard)),
                    Transport::Tcp => runtime.spawn(syslog::run_tcp(ctx, target, header, guard)),
                }
            }
            SinkConfig::Http { url, headers, batch_size, flush_ms } => {
                let target = http::Target::new(&url, &headers, options.guard.clone())?;
                let batch_size = batch_size.unwrap_or(config::DEFAULT_BATCH_SIZE);
                let flush = Duration::from_millis(flush_ms.unwrap_or(config::DEFAULT_FLUSH_MS));
                runtime.spawn(http::run(ctx, target, batch_size, flush))
            }
            SinkConfig::File { path } => runtime.spawn(file::run(ctx, path.into())),
        };
        Ok(Sink { tx, shared, abort, task: Arc::new(Mutex::new(Some(task))), _closing: Arc::new(closing.drop_guard()) })
    }

    /// Queues `event` for delivery, or drops and counts it when the queue is full or the sink
    /// stopped. Never waits.
    pub fn send(&self, event: LogEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.shared.accepted.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.count_metric("dropped", 1);
            }
        }
    }

    /// The sink's counters now.
    pub fn stats(&self) -> SinkStats {
        let s = &self.shared;
        // Settled may run ahead of accepted for an instant: `send` counts a record only after
        // the queue took it, and the task may already have delivered it.
        let accepted = s.accepted.load(Ordering::SeqCst);
        let settled = s.settled.load(Ordering::SeqCst);
        let (last_error, last_error_at_ms) = s.last_error.lock().expect("sink error lock").clone().unzip();
        SinkStats {
            sent: s.sent.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            failed_attempts: s.failed_attempts.load(Ordering::Relaxed),
            queued: accepted.saturating_sub(settled),
            last_error,
            last_error_at_ms,
            counting_since_ms: s.started_ms,
        }
    }

    /// `syslog`, `http` or `file`.
    pub fn kind(&self) -> &'static str {
        self.shared.kind
    }

    /// Waits until every record queued so far was delivered or dropped; records sent while
    /// waiting are not waited for. Batching waits are cut short. Returns false when `timeout`
    /// passed first.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let target = self.shared.accepted.load(Ordering::SeqCst);
        self.shared.flush_target.fetch_max(target, Ordering::SeqCst);
        self.shared.flush_requested.notify_one();
        let deadline = Instant::now() + timeout;
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            // Registered before the check, so a settlement in between still wakes us.
            progress.as_mut().enable();
            if self.shared.settled.load(Ordering::SeqCst) >= target {
                return true;
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                return self.shared.settled.load(Ordering::SeqCst) >= target;
            }
        }
    }

    /// Lets queued records drain for up to [`STOP_FLUSH`], then ends the task; whatever was
    /// still queued is counted as dropped. Stops the sink for every clone.
    pub async fn stop(self) {
        self.stop_within(STOP_FLUSH).await;
    }

    /// [`Sink::stop`] with a chosen drain time.
    pub async fn stop_within(self, drain: Duration) {
        self.flush(drain).await;
        self.abort.cancel();
        let task = self.task.lock().expect("sink task lock").take();
        if let Some(task) = task
            && let Err(e) = task.await
            && e.is_panic()
        {
            tracing::error!(sink = self.shared.kind, "A log sink's task panicked.");
        }
    }
}

/// What the caller's side and the task share.
pub(crate) struct Shared {
    kind: &'static str,
    sent: AtomicU64,
    dropped: AtomicU64,
    failed_attempts: AtomicU64,
    /// Records the queue took.
    accepted: AtomicU64,
    /// Records delivered or dropped by the task.
    settled: AtomicU64,
    /// While `settled` is below this, the task sends what it has without waiting for a batch
    /// to fill: someone is flushing.
    flush_target: AtomicU64,
    flush_requested: Notify,
    progress: Notify,
    /// Whether the latest attempt failed; failures are logged when a streak starts, not on
    /// every retry, so an outage does not flood the application's own log.
    failing: AtomicBool,
    last_error: Mutex<Option<(String, i64)>>,
    started_ms: i64,
}

impl Shared {
    fn new(kind: &'static str) -> Shared {
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

    fn count_metric(&self, outcome: &'static str, n: usize) {
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
    rx: mpsc::Receiver<LogEvent>,
    pub shared: Arc<Shared>,
    abort: CancellationToken,
    closing: CancellationToken,
    redact: Option<Redact>,
    pub max_retry: Duration,
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
