//! A running sink, the caller's side: a bounded queue and counters, and starting the
//! transport's delivery task (what the task side shares is in `task`).
//!
//! Each sink owns its queue and its task, so a slow or failing log source only ever fills its
//! own queue. The caller never waits: a record that does not fit is dropped and counted.
//!
//! Every record the queue accepted is eventually *settled* — delivered or dropped — exactly
//! once; [`Sink::flush`] waits for the settled count to catch up with the accepted count.

use crate::config::{self, SinkConfig, Transport};
use crate::event::LogEvent;
pub use crate::task::{AddressGuard, Redact};
use crate::task::{Ctx, Shared};
use crate::{file, http, syslog};
use serde::Serialize;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Records a sink queues unless told otherwise.
pub const DEFAULT_QUEUE: usize = 10_000;
/// Longest wait between two delivery attempts unless told otherwise.
pub const DEFAULT_MAX_RETRY: Duration = Duration::from_secs(30);
/// How long [`Sink::stop`] lets queued records drain before giving up on them.
pub const STOP_FLUSH: Duration = Duration::from_secs(2);

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
