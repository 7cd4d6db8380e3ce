//! What the kinds' tests share: one step compiled as a flow's first step would be, and run
//! with a real [`Evaluator`], its [`Outcome`] turned into owned data that is easy to compare.

use crate::{
    Calls, CompiledStep, LogEntry, NoCalls, Outcome, PlanCx, Response, StepConfig, StepCx, StepDef, StepError,
    compile_steps,
};
use flowgate_expr::{Budget, Evaluator, Scope};
use flowgate_model::step::decode_steps;
use flowgate_model::{Diagnostic, Diags, Path};
use serde_json::{Map, Value};

/// Where the step under test sits: problems are reported as `steps[0].<kind>…`.
pub(crate) fn steps_path() -> Path {
    Path::root().key("steps")
}

/// A step list decoded and compiled, and every problem found on the way.
pub(crate) struct Compiled {
    /// The steps that compiled.
    pub steps: Vec<CompiledStep>,
    /// The problems, located.
    pub diags: Vec<Diagnostic>,
}

/// Decodes `step` (`{id, <kind>: config, …}`) as a flow's only step — through
/// [`StepConfig`]'s decoding, as a flow's steps are — and compiles it.
pub(crate) fn compile(step: Value) -> Compiled {
    compile_list(Value::Array(vec![step]))
}

/// Decodes and compiles a list of steps.
pub(crate) fn compile_list(steps: Value) -> Compiled {
    compile_in(steps, &[], &[])
}

/// Decodes and compiles a list of steps in a flow whose integration declares `connections`
/// (name, kind) and whose own connections are `flow_connections`.
pub(crate) fn compile_in(steps: Value, connections: &[(&str, &str)], flow_connections: &[&str]) -> Compiled {
    let mut diags = Diags::default();
    let defs = decode(&steps, &mut diags);
    let cx = PlanCx { retry: None, limits: &[], connections, flow_connections, concurrent: false };
    let steps = compile_steps(&defs, &cx, &steps_path(), &mut diags);
    Compiled { steps, diags: diags.into_vec() }
}

/// Connections for tests: every name known in `credentials` answers them; a refusal makes
/// the next answer use `refreshed` (when given), as a token refresh would.
pub(crate) struct TestConnections {
    pub credentials: std::collections::HashMap<String, crate::connection::Credentials>,
    pub refreshed: std::sync::Mutex<Option<crate::connection::Credentials>>,
    pub refusals: std::sync::atomic::AtomicUsize,
}

impl TestConnections {
    /// `name` answers a bearer `token` with `extras`.
    pub fn bearer(name: &str, token: &str, extras: Value) -> TestConnections {
        let mut c = crate::connection::Credentials { version: 1, extras, ..Default::default() };
        c.headers.push((http::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("header")));
        TestConnections {
            credentials: [(name.to_owned(), c)].into_iter().collect(),
            refreshed: std::sync::Mutex::new(None),
            refusals: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl crate::connection::Connections for TestConnections {
    async fn credentials(&self, name: &str) -> Result<crate::connection::Credentials, StepError> {
        if let Some(fresh) = self
            .refreshed
            .lock()
            .unwrap()
            .clone()
            .filter(|_| self.refusals.load(std::sync::atomic::Ordering::SeqCst) > 0)
        {
            return Ok(fresh);
        }
        self.credentials.get(name).cloned().ok_or_else(|| StepError::fatal("connection_unknown", name.to_owned()))
    }

    async fn refused(&self, _: &str, _: i64) {
        self.refusals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Decodes a list of steps (found at `steps`), without compiling them.
pub(crate) fn decode(steps: &Value, diags: &mut Diags) -> Vec<StepDef> {
    decode_steps::<StepConfig>(steps, &steps_path(), diags)
}

/// `step` compiled; panics on any problem.
#[track_caller]
pub(crate) fn compile_one(step: Value) -> CompiledStep {
    let Compiled { mut steps, diags } = compile(step);
    assert!(diags.is_empty(), "unexpected problems: {diags:#?}");
    assert_eq!(steps.len(), 1, "one step compiles");
    steps.remove(0)
}

/// The problems of `step`, as `(path, message)`; panics when there are none.
#[track_caller]
pub(crate) fn problems(step: Value) -> Vec<(String, String)> {
    let diags = compile(step).diags;
    assert!(!diags.is_empty(), "expected problems, found none");
    diags.into_iter().map(|d| (d.path, d.message)).collect()
}

/// Whether some problem sits at `path` and its message contains `text`.
pub(crate) fn has_problem(problems: &[(String, String)], path: &str, text: &str) -> bool {
    problems.iter().any(|(p, m)| p == path && m.contains(text))
}

/// What a step's attempt came to, owned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ran {
    /// [`Outcome::Output`].
    Output(Value),
    /// [`Outcome::Pass`].
    Pass,
    /// [`Outcome::Filtered`].
    Filtered,
    /// [`Outcome::Branch`]: the ids of the branch's steps.
    Branch(Option<Vec<String>>),
    /// [`Outcome::Send`].
    Send(Sent),
    /// [`Outcome::Delay`].
    Delay(crate::delay::Delay),
    /// [`Outcome::Wait`].
    Wait(std::time::Duration),
    /// [`Outcome::Each`]: the items, the ids of the steps each runs, and how many at once.
    Each { items: Vec<Value>, steps: Vec<String>, concurrency: usize },
    /// [`Outcome::Parallel`]: each branch's name and the ids of its steps.
    Parallel(Vec<(String, Vec<String>)>),
}

/// What a step sends, as the engine receives it.
pub(crate) use crate::Outbound as Sent;

impl From<Outcome<'_>> for Ran {
    fn from(o: Outcome<'_>) -> Ran {
        match o {
            Outcome::Output(v) => Ran::Output(v),
            Outcome::Pass => Ran::Pass,
            Outcome::Filtered => Ran::Filtered,
            Outcome::Branch(steps) => Ran::Branch(steps.map(|s| s.iter().map(|c| c.id.clone()).collect())),
            Outcome::Send(o) => Ran::Send(o),
            Outcome::Delay(d) => Ran::Delay(d),
            Outcome::Wait(t) => Ran::Wait(t),
            Outcome::Each(e) => Ran::Each {
                items: e.items,
                steps: e.steps.iter().map(|c| c.id.clone()).collect(),
                concurrency: e.concurrency,
            },
            Outcome::Parallel(p) => Ran::Parallel(
                p.branches.iter().map(|(n, s)| (n.clone(), s.iter().map(|c| c.id.clone()).collect())).collect(),
            ),
        }
    }
}

/// One attempt: what it came to, and what it left in the [`StepCx`].
#[derive(Debug)]
pub(crate) struct Run {
    /// The outcome, or the step's error.
    pub result: Result<Ran, StepError>,
    /// `cx.logs` afterwards.
    pub logs: Vec<LogEntry>,
    /// `cx.response` afterwards.
    pub response: Option<Response>,
}

impl Run {
    /// The outcome; panics on an error.
    #[track_caller]
    pub fn ok(&self) -> &Ran {
        match &self.result {
            Ok(r) => r,
            Err(e) => panic!("the step failed: {e:?}"),
        }
    }

    /// The output; panics on an error or another outcome.
    #[track_caller]
    pub fn output(&self) -> &Value {
        match self.ok() {
            Ran::Output(v) => v,
            other => panic!("expected an output, got {other:?}"),
        }
    }

    /// The message sent; panics on an error or another outcome.
    #[track_caller]
    pub fn sent(&self) -> &Sent {
        match self.ok() {
            Ran::Send(s) => s,
            other => panic!("expected a message to send, got {other:?}"),
        }
    }

    /// The error; panics when the step succeeded.
    #[track_caller]
    pub fn err(&self) -> &StepError {
        match &self.result {
            Err(e) => e,
            Ok(r) => panic!("expected an error, got {r:?}"),
        }
    }
}

/// What steps run with: a real evaluator and HTTP client, and the variables of the scope.
pub(crate) struct Harness {
    evaluator: Evaluator,
    http: reqwest::Client,
    policy: crate::outbound::OutboundPolicy,
    trigger: Value,
    steps: Map<String, Value>,
    config: Value,
    connections: Option<std::sync::Arc<dyn crate::connection::Connections>>,
}

impl Harness {
    /// Every variable null (`$steps` empty), the default outbound policy.
    pub fn new() -> Harness {
        Harness {
            evaluator: Evaluator::new(Budget::DEFAULT, 1),
            http: crate::util::http_client(),
            policy: crate::outbound::OutboundPolicy::default(),
            trigger: Value::Null,
            steps: Map::new(),
            config: Value::Null,
            connections: None,
        }
    }

    /// With connections.
    pub fn connections(mut self, connections: std::sync::Arc<dyn crate::connection::Connections>) -> Harness {
        self.connections = Some(connections);
        self
    }

    /// With an outbound policy (the default allows every address).
    pub fn outbound(mut self, policy: crate::outbound::OutboundPolicy) -> Harness {
        self.policy = policy;
        self
    }

    /// With `$steps` (an object of step outputs by id).
    pub fn steps(mut self, steps: Value) -> Harness {
        let Value::Object(steps) = steps else { panic!("$steps is an object") };
        self.steps = steps;
        self
    }

    /// With `$config`.
    pub fn config(mut self, config: Value) -> Harness {
        self.config = config;
        self
    }

    /// With `$trigger`.
    pub fn trigger(mut self, trigger: Value) -> Harness {
        self.trigger = trigger;
        self
    }

    /// Runs one attempt of `step` on `input`, unable to start children.
    pub async fn run(&self, step: &CompiledStep, input: Value) -> Run {
        self.run_with(step, input, &NoCalls).await
    }

    /// Runs one attempt of `step` on `input`, children started by `calls`. As the engine
    /// does: the idempotency key is `exec-1:<step id>`, the timeout the step's.
    pub async fn run_with(&self, step: &CompiledStep, input: Value, calls: &dyn Calls) -> Run {
        let key = format!("exec-1:{}", step.id);
        let scope = Scope { trigger: &self.trigger, steps: &self.steps, config: &self.config, ..Scope::empty() };
        let mut cx = StepCx {
            scope,
            evaluator: &self.evaluator,
            http: &self.http,
            idempotency_key: &key,
            timeout: step.timeout,
            logs: Vec::new(),
            response: None,
            outbound: &self.policy,
            calls,
            connections: match &self.connections {
                Some(c) => &**c,
                None => &crate::connection::NoConnections,
            },
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        };
        let result = step.body.run(&input, &mut cx).await.map(Ran::from);
        Run { result, logs: cx.logs, response: cx.response }
    }
}

/// Compiles `step` (no problems allowed) and runs it once on `input` with a fresh
/// [`Harness`].
pub(crate) async fn run(step: Value, input: Value) -> Run {
    Harness::new().run(&compile_one(step), input).await
}
