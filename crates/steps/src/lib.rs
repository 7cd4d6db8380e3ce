//! Flowgate's step kinds (DESIGN §1): each kind's config, its validation and what it does.
//!
//! A kind is one folder (`http/`, `transform/`, …). The model crate holds steps generically
//! (`StepDef<S>`); this crate closes it with [`StepConfig`] and compiles a flow's steps into a
//! [`plan`] of ready-to-run steps (expressions compiled once per flow version). Retries,
//! backoff, timeouts and journaling are the engine's; a step only *classifies* its failures
//! ([`StepError`]).
//!
//! # Layout
//! - [`plan`]: compiling steps into [`CompiledStep`]s.
//! - [`http`], [`transform`], [`filter`], [`switch`], [`foreach`], [`parallel`], [`log`],
//!   [`respond`], [`call`], [`webhook`], [`email`], …: the kinds, each a folder with its config, compile and run
//!   (an [`Step`] returning an [`Outcome`]); [`outbound`]: the address policy of requests.
//! - [`util`]: helpers shared by kinds (template compilation, the HTTP client).
//! - `test_support` (tests only): one step compiled and run, for each kind's `tests.rs`.

#![warn(missing_docs)]
// `StepError` is what every step fails with, carried by value everywhere a step runs; boxing
// it would cost an allocation per failure for nothing.
#![allow(clippy::result_large_err)]

pub mod amqp;
mod broker;
pub mod call;
pub mod connection;
mod connector;
pub mod delay;
pub mod dynamics;
pub mod email;
pub mod filter;
pub mod foreach;
pub mod http;
pub mod log;
pub mod mqtt;
pub mod nats;
pub mod outbound;
pub mod parallel;
pub mod plan;
pub mod quickbooks;
pub mod respond;
pub mod sql;
pub mod switch;
#[cfg(test)]
pub(crate) mod test_support;
pub mod transform;
pub mod util;
pub mod wait;
pub mod webhook;

pub use plan::{CompiledStep, PlanCx, compile_steps};

use async_trait::async_trait;
use flowgate_expr::{Evaluator, Scope};
use flowgate_model::{Diags, Path, StepDef as ModelStepDef, StepKind};
use schemars::{Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// A flow whose steps are Flowgate's kinds.
pub type Flow = flowgate_model::Flow<StepConfig>;
/// An integration whose steps are Flowgate's kinds.
pub type Integration = flowgate_model::Integration<StepConfig>;
/// A step of one of Flowgate's kinds.
pub type StepDef = ModelStepDef<StepConfig>;

/// A step kind's config: how it is read, described and compiled. Each kind's folder
/// implements it once, and `kinds!` registers the kind with one line.
pub trait Kind: Sized {
    /// Reads the config found under the kind's key (every problem recorded, located).
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self>;
    /// The config's JSON Schema.
    fn schema(generator: &mut SchemaGenerator) -> Schema;
    /// Compiles it (found at `path`): every expression and template once per flow version.
    fn compile(&self, cx: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>>;
    /// The attempt timeout of a step of this kind that sets none of its own.
    fn timeout(&self) -> Option<Duration> {
        None
    }
    /// The integration's rate limit each attempt takes a token from.
    fn limit(&self) -> Option<&String> {
        None
    }
    /// Steps nested in this one, each with its path relative to the kind's key.
    fn children(&self) -> Vec<(Path, &[StepDef])> {
        Vec::new()
    }
}

/// The step kinds, one line each: the variant of [`StepConfig`], the key a step is written
/// with, the config type (a [`Kind`]) and what it does.
macro_rules! kinds {
    ($($variant:ident($key:literal): $config:ty, $doc:literal;)*) => {
        /// The config of one step, by kind.
        #[allow(clippy::large_enum_variant)] // parsed once per apply, never on a hot path
        #[derive(Debug, Clone)]
        pub enum StepConfig {
            $(#[doc = $doc] $variant($config),)*
        }

        impl StepConfig {
            /// Compiles the step's kind (found at `path`).
            pub(crate) fn compile(&self, cx: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
                match self { $(StepConfig::$variant(c) => Kind::compile(c, cx, path, diags),)* }
            }

            /// The kind's own attempt timeout.
            pub(crate) fn timeout(&self) -> Option<Duration> {
                match self { $(StepConfig::$variant(c) => Kind::timeout(c),)* }
            }

            /// The rate limit the kind takes tokens from.
            pub(crate) fn limit(&self) -> Option<&String> {
                match self { $(StepConfig::$variant(c) => Kind::limit(c),)* }
            }
        }

        impl StepKind for StepConfig {
            const KINDS: &'static [&'static str] = &[$($key),*];

            fn decode(kind: &str, value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
                match kind {
                    $($key => <$config as Kind>::decode(value, path, diags).map(StepConfig::$variant),)*
                    _ => None,
                }
            }

            fn kind(&self) -> &'static str {
                match self { $(StepConfig::$variant(_) => $key,)* }
            }

            fn children(&self) -> Vec<(Path, &[ModelStepDef<Self>])> {
                match self { $(StepConfig::$variant(c) => Kind::children(c),)* }
            }

            fn schemas(g: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
                vec![$(($key, <$config as Kind>::schema(g)),)*]
            }
        }
    };
}

kinds! {
    Http("http"): http::HttpConfig, "Calls an HTTP endpoint.";
    Transform("transform"): transform::TransformConfig, "Computes a new value with jq.";
    Filter("filter"): filter::FilterConfig, "Ends the execution as `filtered` unless a jq condition holds.";
    Switch("switch"): switch::SwitchConfig, "Runs the steps of the first case whose condition holds.";
    Log("log"): log::LogConfig, "Writes a line into the execution's log.";
    Respond("respond"): respond::RespondConfig, "Answers the webhook's caller.";
    Call("call"): call::CallConfig, "Runs another flow and waits for its result.";
    Webhook("webhook"): webhook::OutboundWebhookStep, "POSTs JSON to an endpoint, durably, retried on a schedule.";
    Email("email"): email::EmailConfig, "Sends an e-mail, durably, retried.";
    Dynamics("dynamics"): dynamics::DynamicsConfig, "Reads and writes Dynamics 365 (Dataverse Web API) records through a connection.";
    Delay("delay"): delay::DelayConfig, "Waits durably: for a duration or until a time, holding no worker.";
    Wait("wait"): wait::WaitConfig, "Waits, holding no worker, until a POST to the execution's resume URL delivers a body.";
    Quickbooks("quickbooks"): quickbooks::QuickBooksConfig, "Reads and writes QuickBooks Online records through a connection.";
    Sql("sql"): sql::SqlConfig, "Runs parameterised SQL on PostgreSQL, MySQL/MariaDB or SQLite through a connection.";
    Foreach("foreach"): foreach::ForeachConfig, "Runs nested steps once per item of a list, journaled per item.";
    Parallel("parallel"): parallel::ParallelConfig, "Runs branches of steps side by side and joins their outputs.";
    Amqp("amqp"): amqp::AmqpConfig, "Publishes a message to an AMQP broker (RabbitMQ) through a connection, with a publisher confirm.";
    Nats("nats"): nats::NatsConfig, "Publishes a message to a NATS JetStream stream through a connection, waiting for its ack.";
    Mqtt("mqtt"): mqtt::MqttConfig, "Publishes a message to an MQTT broker through a connection (QoS 1 waits for the PUBACK).";
}

/// A step failure, as data: journaled, shown as `{error: {code, message}}`, and classified
/// so the engine knows whether to retry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepError {
    /// A short, stable code (`http_status`, `http_timeout`, `expression_error`, …).
    pub code: String,
    /// What happened.
    pub message: String,
    /// Whether another attempt may succeed.
    #[serde(skip)]
    pub retryable: bool,
    /// The earliest the next attempt should start, when the target said so (`Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// Extra facts (an HTTP status and a response excerpt, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl StepError {
    /// A failure that another attempt will not fix.
    pub fn fatal(code: impl Into<String>, message: impl Into<String>) -> StepError {
        StepError { code: code.into(), message: message.into(), retryable: false, retry_after: None, details: None }
    }

    /// A failure that another attempt may fix.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> StepError {
        StepError { retryable: true, ..StepError::fatal(code, message) }
    }

    /// The step's output under `onError: continue`.
    pub fn to_output(&self) -> Value {
        serde_json::json!({ "error": self })
    }
}

impl From<flowgate_expr::EvalError> for StepError {
    fn from(e: flowgate_expr::EvalError) -> Self {
        // The message as jq (or the flow's `error("…")`) gave it — flows read it back — and
        // which expression failed, and where, in the details.
        StepError { details: e.location(), ..StepError::fatal(e.code(), e.message()) }
    }
}

/// A line a step wrote into the execution's log.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The text.
    pub message: String,
}

/// The answer a `respond` step produced for the webhook's caller.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, by name.
    pub headers: serde_json::Map<String, Value>,
    /// Body: a string is sent as text, anything else as JSON.
    pub body: Value,
}

/// What a step may use while it runs.
pub struct StepCx<'a> {
    /// Variables for expressions.
    pub scope: Scope<'a>,
    /// Evaluates templates under the expression budget.
    pub evaluator: &'a Evaluator,
    /// The shared HTTP client.
    pub http: &'a reqwest::Client,
    /// Stable across attempts and resumes: `<execution>:<step>` (empty for a step without
    /// side effects).
    pub idempotency_key: &'a str,
    /// Longest this attempt may take.
    pub timeout: Duration,
    /// Log lines written by the step.
    pub logs: Vec<LogEntry>,
    /// The response produced by the step, if any.
    pub response: Option<Response>,
    /// Which addresses requests may reach.
    pub outbound: &'a outbound::OutboundPolicy,
    /// Starts child executions (`call`).
    pub calls: &'a dyn Calls,
    /// The integration's connections (credentials by name).
    pub connections: &'a dyn connection::Connections,
    /// The W3C `traceparent` requests of this attempt carry (the attempt's span), so the
    /// target's spans join the execution's trace; none for steps without side effects.
    pub traceparent: Option<&'a str>,
}

/// What a step's attempt comes to. Most kinds compute an [`Outcome::Output`]; the others ask
/// the engine for something only it can do (end the execution, run nested steps, send a
/// durable message), so the executor follows outcomes and never looks at kinds.
pub enum Outcome<'s> {
    /// The step's output: the next step's input.
    Output(Value),
    /// The input passes on unchanged (no copy).
    Pass,
    /// The execution ends here as `filtered`, with the step's input as its output.
    Filtered,
    /// These steps run next (none: the input passes on); the step's output is their last.
    Branch(Option<&'s [CompiledStep]>),
    /// A message to deliver durably; the output says where it stands.
    Send(Outbound),
    /// Go on later: the engine resumes the execution at that time (a durable timer).
    Delay(delay::Delay),
    /// Wait (at most this long) for a call to the execution's resume URL; its body is the
    /// step's output.
    Wait(Duration),
    /// Run nested steps once per item, journaled per item; the output is the items' list.
    Each(foreach::Each<'s>),
    /// Run branches of steps side by side; the output joins theirs by name.
    Parallel(parallel::Branches<'s>),
}

/// A message a step sends through the engine's durable deliveries (committed with the
/// journal before the step succeeds, retried on the message's schedule).
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// The delivery kind (`webhook`, `email`): which sender delivers it.
    pub kind: &'static str,
    /// Its name in listings (a webhook's name, an e-mail's subject).
    pub name: String,
    /// What the sender needs (a request, a message), evaluated.
    pub message: Value,
    /// Delays before each attempt.
    pub delays: Vec<Duration>,
    /// Wait for the outcome (the execution parks as `waiting` when it takes long) and output
    /// it; else the output says it is queued.
    pub wait: bool,
    /// The output names the message id receivers deduplicate by (`webhookId`).
    pub show_message_id: bool,
}

/// Child executions, as the engine starts them for a `call` step.
#[async_trait]
pub trait Calls: Send + Sync {
    /// Starts `flow` (of `integration`, else the caller's) with `body` as its trigger body —
    /// the same child however often this attempt is repeated — and waits for its output.
    ///
    /// # Errors
    /// The child failed, is not finished within the attempt's timeout, or cannot start.
    async fn call(
        &self,
        integration: Option<&str>,
        flow: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, StepError>;

    /// Refuses the call before its input is evaluated (depth, the call tree's budget).
    ///
    /// # Errors
    /// Too deep, or the tree started too many executions.
    async fn admit(&self) -> Result<(), StepError>;
}

/// For runs that cannot start children (tests of single steps, previews).
pub struct NoCalls;

#[async_trait]
impl Calls for NoCalls {
    async fn call(&self, _: Option<&str>, flow: &str, _: Value, _: Duration) -> Result<Value, StepError> {
        Err(StepError::fatal("call_unavailable", format!("cannot call `{flow}` here")))
    }

    async fn admit(&self) -> Result<(), StepError> {
        Ok(())
    }
}

/// One runnable step kind.
#[async_trait]
pub trait Step: Send + Sync {
    /// Runs one attempt on `input` (the previous step's output).
    ///
    /// # Errors
    /// A classified failure; the engine decides about retries.
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError>;

    /// True when running the step twice is visible outside (an HTTP call): the engine makes
    /// the journal durable before it runs, so a resume re-sends at most this one step.
    fn side_effects(&self) -> bool {
        false
    }

    /// True when, on a resume, the step's output is put together again from its nested
    /// entries (a loop's items, a `parallel` step's branches) rather than read from its own
    /// entry, which then need not hold all of it.
    fn rebuilds_output(&self) -> bool {
        false
    }
}
