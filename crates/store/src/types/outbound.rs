//! Records of outbound messages (webhooks, e-mails, notifications, their attempts) and of
//! log sources.

/// A message to deliver (a webhook, an e-mail, a notification).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Deterministic: `<execution>:<step>:<round>[:hook]`.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub integration: String,
    /// Flow slug.
    pub flow: String,
    /// The execution it belongs to.
    pub execution_id: Option<String>,
    /// The step that made it.
    pub step_id: Option<String>,
    /// `webhook`, `email` or `notification`.
    pub kind: String,
    /// Its name (the webhook's, or a subject).
    pub name: String,
    /// What to send, sealed (it holds credentials).
    pub request: String,
    /// Stable across attempts (`webhook-id`, `Message-ID`): receivers deduplicate by it.
    pub message_id: String,
    /// Delays before each attempt, ms, JSON.
    pub schedule: String,
    /// First attempt not before.
    pub next_at: i64,
    /// Now.
    pub created_at: i64,
}

/// A stored delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRecord {
    /// Id.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Integration slug.
    pub integration: String,
    /// Flow slug.
    pub flow: String,
    /// Its execution.
    pub execution_id: Option<String>,
    /// Its step.
    pub step_id: Option<String>,
    /// `webhook`, `email`, `notification`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Sealed request.
    pub request: String,
    /// Stable message id.
    pub message_id: String,
    /// Delays, ms, JSON.
    pub schedule: String,
    /// `pending`, `delivered`, `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// Next attempt not before.
    pub next_at: i64,
    /// An execution waits for it.
    pub waiting: bool,
    /// Last HTTP status (or SMTP code).
    pub last_status: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
    /// The delivered attempt's response `{status, body}` (excerpt), JSON.
    pub response: Option<String>,
    /// Made.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryAttempt {
    /// The delivery.
    pub delivery_id: String,
    /// 1, 2, …
    pub attempt: i64,
    /// When it was made.
    pub at: i64,
    /// The answer's status, if one came.
    pub status_code: Option<i64>,
    /// How long it took.
    pub latency_ms: i64,
    /// The start of the answer.
    pub excerpt: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

/// The result of an attempt: the attempt, and the delivery's state after it.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// The attempt.
    pub attempt: DeliveryAttempt,
    /// `pending` (retried at `next_at`), `delivered` or `failed`.
    pub status: String,
    /// Next attempt (when pending).
    pub next_at: i64,
    /// The answer, JSON (when delivered).
    pub response: Option<String>,
}

/// A tenant's log source: where flows with `logSource: <name>` stream their events.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LogSourceRecord {
    /// Owner.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Its sink, JSON.
    pub config: String,
    /// Last changed.
    pub updated_at: i64,
}
