//! Compiling a flow's steps into a plan the engine runs: every expression and template is
//! compiled here, once per flow version, and every problem is recorded with its location.

use crate::{Step, StepDef, util};
use flowgate_expr::Template;
use flowgate_model::{Diags, OnError, Path, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;

/// A step ready to run.
pub struct CompiledStep {
    /// The step's id.
    pub id: String,
    /// Its kind (`http`, `transform`, …), for logs and metrics.
    pub kind: &'static str,
    /// Skip unless this holds.
    pub when: Option<Arc<Template>>,
    /// The retry policy in force: the step's, else the flow's, else the default.
    pub retry: RetryPolicy,
    /// What a failure does to the execution.
    pub on_error: OnError,
    /// Longest one attempt may take.
    pub timeout: Duration,
    /// The integration's rate limit this step takes a token from before each attempt.
    pub limit: Option<String>,
    /// Webhooks sent when it starts and completes.
    pub hooks: Option<Arc<crate::webhook::CompiledHooks>>,
    /// What the step does: its kind, compiled.
    pub body: Box<dyn Step>,
}

impl std::fmt::Debug for CompiledStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledStep").field("id", &self.id).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// Default attempt timeout for steps that do not set one.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// What compiling a flow's steps needs to know about the flow and its integration.
#[derive(Clone, Copy)]
pub struct PlanCx<'a> {
    /// The flow's default retry policy.
    pub retry: Option<&'a RetryPolicy>,
    /// Names of the integration's rate limits.
    pub limits: &'a [String],
    /// The integration's connections: name and kind (`oauth2`, `dynamics365`, …).
    pub connections: &'a [(&'a str, &'a str)],
    /// The flow's primary and secondary connections, in that order.
    pub flow_connections: &'a [&'a str],
    /// The steps run side by side with others of the same execution (in a `parallel`
    /// branch, or a loop with `concurrency` over 1): a step that parks the whole execution
    /// until a call (`wait`) cannot be among them.
    pub concurrent: bool,
}

impl PlanCx<'_> {
    /// Checks that `name` is one of the integration's connections (any kind).
    pub fn check_connection(&self, name: &str, at: &Path, diags: &mut Diags) {
        let names: Vec<&str> = self.connections.iter().map(|(n, _)| *n).collect();
        flowgate_model::integration::check_connection_name(name, &names, at, diags);
    }

    /// The connection a connector step uses: the one it names (`named`, which must be of one
    /// of `kinds`), else the flow's primary or secondary connection of one of `kinds`.
    /// Problems are recorded at `at` (the step's kind key).
    pub fn connection_for(&self, kinds: &[&str], named: Option<&str>, at: &Path, diags: &mut Diags) -> Option<String> {
        let kind_of = |name: &str| self.connections.iter().find(|(n, _)| *n == name).map(|(_, k)| *k);
        let wanted = kinds.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" or ");
        match named {
            Some(name) => match kind_of(name) {
                None => {
                    self.check_connection(name, &at.key("connection"), diags);
                    None
                }
                Some(k) if kinds.contains(&k) => Some(name.to_owned()),
                Some(k) => {
                    diags.error(
                        &at.key("connection"),
                        format!("connection `{name}` is a `{k}` connection; this step needs a {wanted} one"),
                    );
                    None
                }
            },
            None => match self.flow_connections.iter().find(|n| kind_of(n).is_some_and(|k| kinds.contains(&k))) {
                Some(n) => Some((*n).to_owned()),
                None => {
                    diags.error(
                        at,
                        format!(
                            "no {wanted} connection: name one with `connection:`, or set the flow's `connection` (or `connection2`) to one"
                        ),
                    );
                    None
                }
            },
        }
    }
}

/// Compiles `steps` (found at `path`).
pub fn compile_steps(steps: &[StepDef], cx: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Vec<CompiledStep> {
    steps.iter().filter_map(|s| compile_step(s, cx, &path.index(s.index), diags)).collect()
}

fn compile_step(s: &StepDef, cx: &PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<CompiledStep> {
    let flow_retry = cx.retry;
    let o = &s.options;
    let when = o.when.as_deref().and_then(|w| util::expr(w, &path.key("when"), diags));
    let at = path.key(s.kind_name());
    let body = s.kind.compile(cx, &at, diags);
    let hooks = o.hooks.as_ref().map(|h| {
        let at = path.key("hooks");
        Arc::new(crate::webhook::CompiledHooks {
            on_start: h.on_start.as_ref().and_then(|w| crate::webhook::compile(w, &at.key("onStart"), diags)),
            on_complete: h.on_complete.as_ref().and_then(|w| crate::webhook::compile(w, &at.key("onComplete"), diags)),
        })
    });
    let timeout = o.timeout.map(|d| d.0).or_else(|| s.kind.timeout());
    if o.when.is_some() && when.is_none() {
        return None;
    }
    let limit = s.kind.limit().cloned();
    if let Some(name) = &limit
        && !cx.limits.contains(name)
    {
        let known = if cx.limits.is_empty() {
            "the integration declares none".to_owned()
        } else {
            format!("declared: {}", cx.limits.join(", "))
        };
        diags.error(&at.key("limit"), format!("unknown rate limit `{name}` ({known} under `limits:`)"));
    }
    Some(CompiledStep {
        id: o.id.clone(),
        kind: s.kind_name(),
        when,
        retry: o.retry.clone().or_else(|| flow_retry.cloned()).unwrap_or_else(RetryPolicy::default_policy),
        on_error: o.on_error,
        timeout: timeout.unwrap_or(DEFAULT_STEP_TIMEOUT),
        limit,
        hooks,
        body: body?,
    })
}

trait KindName {
    fn kind_name(&self) -> &'static str;
}

impl KindName for StepDef {
    fn kind_name(&self) -> &'static str {
        flowgate_model::StepKind::kind(&self.kind)
    }
}
