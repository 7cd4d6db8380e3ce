//! How an engine runs: every setting a node is started with (the CLI's `serve` options map
//! onto these), with the defaults a bare `flowgate serve` uses.

use crate::call;
use flowgate_expr::Budget;
use std::time::Duration;

/// How an engine runs.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// This node's name: lease owner of the executions it runs.
    pub node_id: String,
    /// Base of the webhook URLs shown to users (`$flow.webhookUrl`).
    pub public_url: String,
    /// Executions running at once on this node.
    pub max_concurrency: usize,
    /// Percent of them one tenant may hold (the rest stays for others).
    pub tenant_share_pct: u8,
    /// Percent of them one flow may hold.
    pub flow_share_pct: u8,
    /// Lease length; renewed every third of it.
    pub lease: Duration,
    /// Budget of each expression evaluation.
    pub expression_budget: Budget,
    /// Threads that run slow expressions.
    pub expression_threads: usize,
    /// Retry delays up to this are slept inline; longer ones hand the execution back to the
    /// queue and free the worker.
    pub inline_backoff_max: Duration,
    /// Fallback poll of the queue (work from other nodes, expired leases).
    pub poll_interval: Duration,
    /// Run executions on this node (the `worker` role).
    pub workers: bool,
    /// Events being committed at once beyond which ingress answers 503.
    pub max_in_flight: usize,
    /// Queued executions beyond which ingress answers 503.
    pub max_backlog: i64,
    /// Finished executions older than this are deleted (the leader does it in the background).
    pub retention_age: Option<Duration>,
    /// At most this many finished executions are kept in all.
    pub retention_count: Option<u64>,
    /// Executions of dry runs (issue 20) running at once on this node, beside the live
    /// workers; 0: a quarter of `max_concurrency` (at least 1).
    pub dry_run_workers: usize,
    /// How often the leader runs retention and forgets expired delivery identities.
    pub housekeeping_every: Duration,
    /// How often the queue's depth is measured for backpressure.
    pub backlog_every: Duration,
    /// Take part in the leader election and run leader-only work when elected (the
    /// `scheduler` role): putting executions of dead nodes back in the queue, firing
    /// schedules and running polls.
    pub leader: bool,
    /// Domain of the derived inbound e-mail addresses (`<flow>.<integration>.<tenant>@…`).
    pub mail_domain: String,
    /// Longest the scheduler sleeps between looks at the clock (a wall-clock change or an
    /// injected clock is noticed within it).
    pub trigger_tick: Duration,
    /// Seals and opens secrets at rest (config values, literal credentials); default: a key
    /// made for this process only (fine for throwaway engines, not for a server).
    pub sealer: Option<flowgate_secrets::Sealer>,
    /// Run `deploy`/`undeploy` flows when deployments change (off for flow tests).
    pub lifecycle: bool,
    /// Sends e-mail (the `email` step, notifications); none: those deliveries fail.
    pub mailer: Option<flowgate_mailer::Mailer>,
    /// Which addresses outbound requests may reach.
    pub outbound: flowgate_steps::outbound::OutboundPolicy,
    /// Where `file` log sources may write: a relative path lands in `<log_dir>/<tenant>/`,
    /// an absolute one must be inside `log_dir`. None: anywhere (embedding only; the server
    /// always sets it).
    pub log_dir: Option<std::path::PathBuf>,
    /// Where `sqlite` connections' files live: `<files_dir>/<tenant>/<path>`, so tenants
    /// never share one. None: under the current directory (embedding only; the server sets
    /// `<data dir>/files`).
    pub files_dir: Option<std::path::PathBuf>,
    /// Memory for events being received, parsed and run at once on this node, in bytes of
    /// their trees (see [`crate::budget`]).
    pub memory_in_flight: usize,
    /// Largest step output journaled, in bytes of JSON; a larger one fails the step
    /// (`output_too_large`).
    pub max_step_output: usize,
    /// An execution whose node died under it this many times in a row, without progress in
    /// between, is failed (`crashed_node`) instead of resumed again; 0: never. Until then it
    /// is resumed apart from other work (see `dispatch::lanes`).
    pub crash_limit: u32,
    /// Executions the `call` steps below one root execution may start at once, then as
    /// many an hour (see `call`).
    pub max_call_tree: u32,
    /// Signs executions' resume URLs (`$execution.resumeUrl`, the `wait` step): the same on
    /// every node of a cluster (the server gives its status key).
    pub resume_key: std::sync::Arc<[u8]>,
    /// Where executions' spans go (OTLP), if anywhere: see [`crate::traces`].
    pub traces: std::sync::Arc<crate::traces::Traces>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            node_id: format!("node-{}", uuid::Uuid::new_v4().simple()),
            public_url: "http://127.0.0.1:8080".into(),
            max_concurrency: 1024,
            tenant_share_pct: 50,
            flow_share_pct: 25,
            lease: Duration::from_secs(30),
            expression_budget: Budget::DEFAULT,
            expression_threads: 2,
            inline_backoff_max: Duration::from_secs(2),
            poll_interval: Duration::from_secs(5),
            workers: true,
            leader: true,
            max_in_flight: 16 * 1024,
            max_backlog: 5_000_000,
            retention_age: None,
            retention_count: None,
            dry_run_workers: 0,
            housekeeping_every: Duration::from_secs(10),
            backlog_every: Duration::from_secs(2),
            mail_domain: "localhost".into(),
            trigger_tick: Duration::from_secs(1),
            sealer: None,
            lifecycle: true,
            mailer: None,
            outbound: flowgate_steps::outbound::OutboundPolicy::default(),
            log_dir: None,
            files_dir: None,
            crash_limit: 3,
            max_call_tree: call::MAX_TREE,
            memory_in_flight: 256 * 1024 * 1024,
            max_step_output: 16 * 1024 * 1024,
            resume_key: std::sync::Arc::from(rand::random::<[u8; 32]>().as_slice()),
            traces: Default::default(),
        }
    }
}
