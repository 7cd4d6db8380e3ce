//! The `call` step: a child execution of another flow — of the same integration version, or
//! of the current, live version of another integration of the tenant — and the wait for its
//! result.
//!
//! The child is submitted with the identity `call:<parent>:<step>:<round>`, so however often
//! the step runs (a retry after a timeout, a resume after a crash) it starts one child per
//! round and then waits for that one. The child records its parent (`parent_id`), and its
//! `$trigger.call` says who called it and how deep the chain is; chains deeper than
//! [`MAX_DEPTH`] are refused, so a flow calling itself cannot run away.
//!
//! Fan-out is bounded too (issue 13): ten `call` steps calling their own flow eight deep
//! would otherwise start 10⁸ executions from one event. Every execution a chain of calls
//! starts takes a token from its root's bucket (a shared token bucket in the store, so all
//! nodes count together): `--max-call-tree` ([`MAX_TREE`]) at once, refilled at as many an hour. A full
//! bucket is the same as none, so buckets idle for a day are swept with expired dedup keys.

use crate::{Engine, Inner, Submission, SubmitOptions, SyncOutcome, Wait};
use async_trait::async_trait;
use flowgate_steps::{Calls, StepError};
use flowgate_store::{IntegrationKey, Status};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Longest chain of calls.
pub const MAX_DEPTH: u64 = 8;
/// Executions the calls below one root execution may start at once (then as many an hour).
pub const MAX_TREE: u32 = 10_000;
/// The bucket, in the store's rate limits, counting the calls below `root`.
pub(crate) fn tree_bucket(root: &str) -> String {
    format!("{TREE_BUCKET_PREFIX}{root}")
}
/// Buckets of call trees live under the integration `""` (no user limit can) with this prefix.
pub const TREE_BUCKET_PREFIX: &str = "calls/";
/// How long a child's identity is remembered.
const CHILD_IDENTITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// What the `call` steps of one execution's step need to start children: borrowed from the
/// execution for the length of an attempt (nothing is copied unless a child starts).
pub(crate) struct ChildCalls<'a> {
    pub inner: &'a Arc<Inner>,
    pub parent: &'a str,
    pub parent_flow: &'a str,
    /// The parent's tenant: a called integration is looked up there only.
    pub tenant: &'a str,
    /// The parent's integration: a call naming it is a call within it.
    pub integration: &'a str,
    pub step: &'a str,
    pub round: i64,
    pub version_id: i64,
    /// The parent's own depth (0 for an execution no call started).
    pub depth: u64,
    /// The execution at the top of the parent's chain of calls.
    pub root: &'a str,
}

#[async_trait]
impl Calls for ChildCalls<'_> {
    async fn admit(&self) -> Result<(), StepError> {
        if self.depth + 1 > MAX_DEPTH {
            return Err(StepError::fatal("call_depth", format!("calls nest deeper than {MAX_DEPTH} flows")));
        }
        let now = self.inner.clock.now_ms();
        let most = self.inner.settings.max_call_tree;
        let per_second = f64::from(most) / 3600.0;
        let refused = self
            .inner
            .store
            // A call tree's bucket is the tenant's own (no integration): trees cross integrations.
            .take_token(
                IntegrationKey { tenant: self.tenant, integration: "" },
                &tree_bucket(self.root),
                per_second,
                most,
                now,
            )
            .await
            .map_err(|e| StepError::retryable("call_submit", format!("cannot count the calls: {e}")))?;
        if refused.is_some() {
            return Err(StepError::fatal(
                "call_fanout",
                format!(
                    "the calls below execution {} started {most} executions, the most one event may start \
                     (then {most} an hour; --max-call-tree)",
                    self.root
                ),
            ));
        }
        Ok(())
    }

    async fn call(
        &self,
        integration: Option<&str>,
        flow_slug: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, StepError> {
        let integration = integration.filter(|i| *i != self.integration);
        let flow = match integration {
            None => self.inner.flow_for(self.version_id, flow_slug).await.ok_or_else(|| {
                StepError::fatal("call_flow", format!("no flow `{flow_slug}` in this integration version"))
            })?,
            Some(slug) => {
                let ci =
                    self.inner.registry.integration(self.tenant, slug).ok_or_else(|| {
                        StepError::fatal("call_flow", format!("no integration `{slug}` in this tenant"))
                    })?;
                if !ci.live() {
                    // It may be deployed (or given its missing values) soon.
                    return Err(StepError::retryable(
                        "call_not_live",
                        format!("integration `{slug}` is not live (undeployed or missing config values)"),
                    ));
                }
                ci.flows.get(flow_slug).cloned().ok_or_else(|| {
                    StepError::fatal("call_flow", format!("no flow `{flow_slug}` in integration `{slug}`"))
                })?
            }
        };
        let trigger = json!({
            "body": body,
            "call": {
                "parentExecutionId": self.parent,
                "parentFlow": self.parent_flow,
                "parentStep": self.step,
                "depth": self.depth + 1,
                "root": self.root,
            },
        });
        let engine = Engine { inner: self.inner.clone() };
        let identity = format!("call:{}:{}:{}", self.parent, self.step, self.round);
        let submitted = engine
            .submit(Submission {
                flow,
                trigger,
                kind: "call",
                auth_label: None,
                replay_of: None,
                wait: Wait::End,
                options: SubmitOptions {
                    parent: Some(self.parent.to_owned()),
                    identity: Some((identity, CHILD_IDENTITY)),
                    ..SubmitOptions::default()
                },
            })
            .await
            .map_err(|e| StepError::retryable("call_submit", format!("cannot start `{flow_slug}`: {e}")))?;
        let child = submitted.id.clone();
        let outcome = match submitted.waiter {
            Some(w) => match tokio::time::timeout(timeout, w).await {
                Ok(Ok(o)) => Some(o),
                _ => None,
            },
            // Started by an earlier attempt: read it from the store.
            None => engine.outcome_of_end(&child, timeout).await,
        };
        let Some(SyncOutcome::Finished { status, output, error, .. }) = outcome else {
            engine.forget_waiter(&child);
            return Err(StepError {
                details: Some(json!({ "executionId": child })),
                ..StepError::retryable("call_timeout", format!("`{flow_slug}` ({child}) has not finished yet"))
            });
        };
        match status {
            Status::Succeeded => Ok(output.unwrap_or(Value::Null)),
            Status::Filtered => Ok(output.unwrap_or(Value::Null)),
            other => {
                let code = error.as_ref().and_then(|e| e["code"].as_str()).unwrap_or("unknown").to_owned();
                Err(StepError {
                    details: Some(json!({ "executionId": child, "status": other.as_str(), "error": code })),
                    ..StepError::fatal("call_failed", format!("`{flow_slug}` ({child}) ended {}", other.as_str()))
                })
            }
        }
    }
}
