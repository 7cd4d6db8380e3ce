//! Dry runs (issue 20): "what would this version have done to yesterday's orders?". A dry run
//! re-runs recorded executions' events through a version (stored, or a document not yet
//! applied) with every step that is not pure answered from the execution's recording
//! (`executor/dry.rs`), sends nothing, stores nothing but its results, and compares each run
//! with its recording (`compare.rs`): `same`, `different` (with a structural diff),
//! `would_fail` or `unanswered`.
//!
//! A run selects its executions when it starts (the newest of each chosen flow, finished,
//! within the filters), then works through them in pages on this node: one read of the
//! recordings per page, the executions of a page run concurrently under the node's share
//! for dry runs (`EngineSettings::dry_run_workers`, by default a quarter of the workers — not
//! the live queue's slots, order or rate limits), then the page's results and progress in
//! one write. Runs and results are kept [`RETENTION`], tenant-scoped.

mod compare;

use crate::answers::{Answer, Answers};
use crate::compile::CompiledIntegration;
use crate::executor::dry::{DryInput, run_dry};
use crate::{ApplyError, Engine, Inner, deploy};
use compare::Shape;
use flowgate_model::{Diagnostic, Format};
use flowgate_steps::StepError;
use flowgate_store::dry_runs::{DryRun, DryRunCounts, DryRunResult, Recording};
use flowgate_store::{ExecutionQuery, IntegrationKey, Status, VersionRecord};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Executions tried per flow when the request does not say.
pub const DEFAULT_LIMIT: u32 = 500;
/// At most this many executions in one dry run (all flows together).
pub const MAX_SELECTED: usize = 100_000;
/// How long a dry run and its results are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// A running dry run that made no progress for this long has lost its node.
const STALE: Duration = Duration::from_secs(30 * 60);
/// Longest the dry run of one execution may take.
const EXECUTION_LIMIT: Duration = Duration::from_secs(30);
/// Recordings read (and results written) at a time, at most: a page's write drops the SQLite
/// readers' caches, so fewer, larger pages read faster.
const PAGE: usize = 1024;
/// The first page, before the size of a recording is known.
const FIRST_PAGE: usize = 16;
/// Bytes of recordings (events and journals) one page may hold, about: the next page's size
/// follows from the largest recording seen so far, so large events make small pages.
const PAGE_BYTES: usize = 64 << 20;
/// The most one result's detail may hold (bytes of JSON): past it, its first changes.
const MAX_DETAIL: usize = 64 << 10;
/// Dry runs one tenant may have running on a node at once.
pub const MAX_RUNNING_PER_TENANT: usize = 2;
/// Statuses a recording may have: a finished run.
const FINISHED: [&str; 3] = ["succeeded", "failed", "filtered"];

/// What to dry-run.
#[derive(Debug, Clone)]
pub struct DryRunRequest {
    /// A stored version's number (default: the newest, live or not).
    pub version: Option<i64>,
    /// A document not stored (`flowgate apply --dry-run`), instead of a version.
    pub source: Option<String>,
    /// The document's format.
    pub format: Format,
    /// The flows to try (default: those that differ from the live version — or, for the live
    /// version itself, from the one before —; all when none does).
    pub flows: Vec<String>,
    /// Executions created at or after (epoch ms).
    pub from: Option<i64>,
    /// Executions created before (epoch ms).
    pub to: Option<i64>,
    /// Only executions that ended so: `succeeded`, `failed` or `filtered` (default: all three).
    pub status: Option<String>,
    /// The newest this many executions of each flow.
    pub limit: u32,
}

impl Default for DryRunRequest {
    fn default() -> Self {
        DryRunRequest {
            version: None,
            source: None,
            format: Format::Yaml,
            flows: Vec::new(),
            from: None,
            to: None,
            status: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// Why a dry run could not start.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// No such integration or version.
    #[error("{0}")]
    NotFound(String),
    /// The document (or the stored version, for this deployment) does not validate.
    #[error("the definition is invalid")]
    Invalid(Vec<Diagnostic>),
    /// The request itself is wrong (a flow the version does not have, a bad status).
    #[error("{0}")]
    Bad(String),
    /// The tenant has [`MAX_RUNNING_PER_TENANT`] dry runs running here already.
    #[error("{MAX_RUNNING_PER_TENANT} dry runs of this tenant are running already; try again when one has finished")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] flowgate_store::Error),
}

/// A dry run as started: the record, and the flows it tries.
#[derive(Debug, Clone)]
pub struct DryRunStarted {
    /// The run (its id, `total`).
    pub run: DryRun,
    /// The flows tried.
    pub flows: Vec<String>,
}

/// What a dry run's job needs, shared by its executions' tasks.
struct JobCx {
    inner: Arc<Inner>,
    ci: Arc<CompiledIntegration>,
    /// The tried version's flows as written.
    written: HashMap<String, compare::Written>,
    shapes: HashMap<String, Shape>,
}

impl Engine {
    /// Starts a dry run of `slug`'s version (or document) against its recorded executions;
    /// it goes on in the background (`Engine::dry_run` shows its progress).
    ///
    /// # Errors
    /// No such integration or version, an invalid document, a bad request, the store.
    pub async fn start_dry_run(
        &self,
        tenant: &str,
        slug: &str,
        req: DryRunRequest,
    ) -> Result<DryRunStarted, DryRunError> {
        let inner = &self.inner;
        if let Some(s) = &req.status
            && !FINISHED.contains(&s.as_str())
        {
            return Err(DryRunError::Bad(format!("`status` must be one of: {}", FINISHED.join(", "))));
        }
        if req.limit == 0 {
            return Err(DryRunError::Bad("`limit` must be at least 1".into()));
        }
        let versions = inner.store.versions(tenant, slug).await?;
        if versions.is_empty() {
            return Err(DryRunError::NotFound(format!("no integration `{slug}`")));
        }
        let deployment = inner.store.deployment(IntegrationKey { tenant, integration: slug }).await?;
        let build = |record: VersionRecord| {
            deploy::build(record, deployment.as_ref(), &inner.sealer, &inner.settings.public_url)
                .map(Arc::new)
                .map_err(DryRunError::Invalid)
        };
        let (ci, label) = match (&req.source, req.version) {
            (Some(_), Some(_)) => return Err(DryRunError::Bad("give `version` or `source`, not both".into())),
            (Some(text), None) => {
                let checked = self.check(tenant, text, req.format).await.map_err(|e| match e {
                    ApplyError::Invalid(p) => DryRunError::Invalid(p),
                    ApplyError::Conflict(m) => DryRunError::Bad(m),
                    ApplyError::Store(e) => DryRunError::Store(e),
                })?;
                if checked.slug != slug {
                    return Err(DryRunError::Bad(format!(
                        "the document defines integration `{}`, not `{slug}`",
                        checked.slug
                    )));
                }
                let mut document = checked.draft.document.clone();
                let literals = deploy::extract_literals(&mut document);
                // Bound to no stored version: the draft is built as a version would be.
                let record = VersionRecord {
                    id: 0,
                    tenant_id: tenant.to_owned(),
                    slug: slug.to_owned(),
                    version: 0,
                    hash: checked.draft.hash.clone(),
                    format: if req.format == Format::Json { "json" } else { "yaml" }.into(),
                    source: String::new(),
                    document: document.to_string(),
                    created_at: inner.clock.now_ms(),
                    secrets: deploy::seal_literals(&inner.sealer, tenant, slug, &literals),
                };
                (build(record)?, "draft".to_owned())
            }
            (None, v) => {
                let record = match v {
                    Some(n) => versions
                        .iter()
                        .find(|r| r.version == n)
                        .cloned()
                        .ok_or_else(|| DryRunError::NotFound(format!("integration `{slug}` has no version {n}")))?,
                    None => versions.iter().max_by_key(|r| r.version).cloned().expect("versions is not empty"),
                };
                let label = record.version.to_string();
                (build(record)?, label)
            }
        };
        // Compared with what is live (the deployed version, else the newest); a version that is
        // live already, with the one before it.
        let live = deployment
            .as_ref()
            .and_then(|d| d.deployed_version)
            .and_then(|id| versions.iter().find(|r| r.id == id))
            .or_else(|| versions.iter().max_by_key(|r| r.version));
        let base = match live {
            Some(l) if l.id == ci.record.id => {
                versions.iter().filter(|r| r.version < l.version).max_by_key(|r| r.version)
            }
            other => other,
        };
        let flows = if req.flows.is_empty() {
            let changed = changed_flows(&ci.record.document, base.map(|r| r.document.as_str()));
            if changed.is_empty() { ci.flows.keys().cloned().collect() } else { changed }
        } else {
            for f in &req.flows {
                if !ci.flows.contains_key(f) {
                    let names: Vec<&str> = ci.flows.keys().map(String::as_str).collect();
                    return Err(DryRunError::Bad(format!(
                        "version {label} has no flow `{f}` (flows: {})",
                        names.join(", ")
                    )));
                }
            }
            let mut flows = req.flows.clone();
            let mut seen = std::collections::HashSet::new();
            flows.retain(|f| seen.insert(f.clone()));
            flows
        };
        let place = RunningPlace::take(&inner.dry_runs, tenant).ok_or(DryRunError::Busy)?;
        let selected = self.select(tenant, slug, &flows, &req).await?;
        let request = json!({
            "flows": flows,
            "from": req.from,
            "to": req.to,
            "status": req.status,
            "limit": req.limit,
        });
        let run = DryRun {
            id: format!("dry_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: tenant.to_owned(),
            integration: slug.to_owned(),
            version: label,
            request: request.to_string(),
            node_id: inner.settings.node_id.clone(),
            status: "running".into(),
            total: selected.len() as i64,
            done: 0,
            same: 0,
            different: 0,
            would_fail: 0,
            unanswered: 0,
            error: None,
            created_at: inner.clock.now_ms(),
            updated_at: inner.clock.now_ms(),
            finished_at: None,
        };
        inner.store.create_dry_run(&run).await?;
        let shapes = ci.definition.flows.iter().map(|f| (f.flow.clone(), Shape::of(&f.steps))).collect();
        let document: Value = serde_json::from_str(&ci.record.document).unwrap_or(Value::Null);
        let written = flows.iter().map(|f| (f.clone(), compare::Written::of(&document, f))).collect();
        let cx = Arc::new(JobCx { inner: inner.clone(), ci, shapes, written });
        let (id, tenant) = (run.id.clone(), tenant.to_owned());
        inner.tracker.spawn(async move {
            run_job(cx, id, tenant, selected).await;
            drop(place);
        });
        Ok(DryRunStarted { run, flows })
    }

    /// The newest finished executions of each flow within the filters: (flow, id), at most
    /// [`MAX_SELECTED`] in all.
    async fn select(
        &self,
        tenant: &str,
        slug: &str,
        flows: &[String],
        req: &DryRunRequest,
    ) -> Result<Vec<(String, String)>, flowgate_store::Error> {
        const LISTING: u32 = 500;
        let mut selected = Vec::new();
        for flow in flows {
            let mut query = ExecutionQuery {
                tenant: tenant.to_owned(),
                integration: Some(slug.to_owned()),
                flow: Some(flow.clone()),
                status: req.status.as_deref().and_then(Status::parse),
                from: req.from,
                to: req.to,
                limit: LISTING,
                ..ExecutionQuery::default()
            };
            let mut taken = 0u32;
            loop {
                let page = self.inner.store.executions(&query).await?;
                let full = page.len() == LISTING as usize;
                query.before = page.last().map(|r| r.seq);
                for row in page {
                    if FINISHED.contains(&row.status.as_str()) && taken < req.limit && selected.len() < MAX_SELECTED {
                        selected.push((row.id, row.flow));
                        taken += 1;
                    }
                }
                if !full || taken >= req.limit || selected.len() >= MAX_SELECTED {
                    break;
                }
            }
        }
        Ok(selected)
    }

    /// A dry run of `tenant`.
    ///
    /// # Errors
    /// The store.
    pub async fn dry_run(&self, tenant: &str, id: &str) -> Result<Option<DryRun>, flowgate_store::Error> {
        let run = self.inner.store.dry_run(tenant, id).await?;
        let now = self.inner.clock.now_ms();
        match run {
            // Its node died without a trace (a cluster node named anew at its restart does not
            // recognise it as its own).
            Some(r) if r.status == "running" && now - r.updated_at > STALE.as_millis() as i64 => {
                self.inner.store.finish_dry_run(id, "interrupted", None, now).await?;
                self.inner.store.dry_run(tenant, id).await
            }
            other => Ok(other),
        }
    }

    /// A page of a dry run's results (after `after`, optionally of one outcome); `None` when
    /// `tenant` has no such run.
    ///
    /// # Errors
    /// The store.
    pub async fn dry_run_results(
        &self,
        tenant: &str,
        id: &str,
        outcome: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Option<Vec<DryRunResult>>, flowgate_store::Error> {
        if self.inner.store.dry_run(tenant, id).await?.is_none() {
            return Ok(None);
        }
        self.inner.store.dry_run_results(id, outcome, after, limit).await.map(Some)
    }
}

/// The dry runs running on a node, per tenant.
pub(crate) type Running = Arc<std::sync::Mutex<HashMap<String, usize>>>;

/// A tenant's place among the dry runs running on this node, given back when dropped.
struct RunningPlace {
    running: Running,
    tenant: String,
}

impl RunningPlace {
    fn take(running: &Running, tenant: &str) -> Option<RunningPlace> {
        let mut map = running.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(tenant.to_owned()).or_default();
        if *n >= MAX_RUNNING_PER_TENANT {
            return None;
        }
        *n += 1;
        Some(RunningPlace { running: running.clone(), tenant: tenant.to_owned() })
    }
}

impl Drop for RunningPlace {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

/// The flows whose definition differs between two documents (stored JSON); every flow of
/// `tried` when there is nothing to compare with.
fn changed_flows(tried: &str, live: Option<&str>) -> Vec<String> {
    let flows = |doc: &str| -> Vec<(String, Value)> {
        let v: Value = serde_json::from_str(doc).unwrap_or(Value::Null);
        v["flows"]
            .as_array()
            .map(|a| a.iter().map(|f| (f["flow"].as_str().unwrap_or("").to_owned(), f.clone())).collect())
            .unwrap_or_default()
    };
    let tried = flows(tried);
    let Some(live) = live.map(flows) else { return tried.into_iter().map(|(n, _)| n).collect() };
    tried
        .into_iter()
        .filter(|(name, def)| live.iter().find(|(n, _)| n == name).is_none_or(|(_, d)| d != def))
        .map(|(n, _)| n)
        .collect()
}

/// Works through a dry run's executions, page by page, and ends it.
async fn run_job(cx: Arc<JobCx>, id: String, tenant: String, selected: Vec<(String, String)>) {
    let inner = cx.inner.clone();
    let mut counts = DryRunCounts { total: selected.len() as i64, ..DryRunCounts::default() };
    let mut n = 0i64;
    let mut failure = None;
    // The next page's recordings are read while this one runs.
    let read = |page: Vec<(String, String)>| {
        let (inner, tenant) = (inner.clone(), tenant.clone());
        let ids: Vec<String> = page.iter().map(|(id, _)| id.clone()).collect();
        (page, tokio::spawn(async move { inner.store.recordings(&tenant, &ids).await }))
    };
    let mut rest: &[(String, String)] = &selected;
    let mut take = |size: usize| {
        let (page, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        (!page.is_empty()).then(|| page.to_vec())
    };
    // Each execution's own concurrency: a run takes at most a quarter of the node's dry-run
    // slots, so other tenants' runs (and its own second) still get theirs.
    let own = Arc::new(tokio::sync::Semaphore::new((slots(&inner.settings) / 4).max(1)));
    let mut largest = 0usize;
    let mut recorded: HashMap<(i64, String), Arc<compare::Written>> = HashMap::new();
    let mut next = take(FIRST_PAGE).map(read);
    while let Some((page, reading)) = next.take() {
        if inner.hard_stop.is_cancelled() || inner.stop_claims.is_cancelled() {
            let _ = inner.store.finish_dry_run(&id, "interrupted", None, inner.clock.now_ms()).await;
            return;
        }
        let recordings = match reading.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                failure = Some(format!("cannot read the recorded executions: {e}"));
                break;
            }
            Err(e) => {
                failure = Some(format!("cannot read the recorded executions: {e}"));
                break;
            }
        };
        largest = recordings.iter().map(recording_bytes).fold(largest, usize::max);
        let size = (PAGE_BYTES / largest.max(1)).clamp(1, PAGE);
        next = take(size).map(read);
        // The recorded versions' flows as written, read once per version.
        for rec in &recordings {
            let x = &rec.execution;
            if let std::collections::hash_map::Entry::Vacant(slot) = recorded.entry((x.version_id, x.flow.clone())) {
                let document = match inner.store.version(x.version_id).await {
                    Ok(Some(v)) => serde_json::from_str(&v.document).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                slot.insert(Arc::new(compare::Written::of(&document, &x.flow)));
            }
        }
        let mut by_id: HashMap<String, Recording> =
            recordings.into_iter().map(|r| (r.execution.id.clone(), r)).collect();
        let mut tasks = Vec::with_capacity(page.len());
        for (execution_id, flow) in page {
            let Some(rec) = by_id.remove(&execution_id) else {
                // Deleted since it was selected (retention): counted, not silently dropped.
                let gone = json!({ "message": "the execution was deleted before it could be re-run" });
                tasks.push((execution_id, flow, tokio::spawn(async move { ("unanswered", gone) })));
                continue;
            };
            let permits = tokio::select! {
                biased;
                _ = inner.stop_claims.cancelled() => None,
                permits = async {
                    let mine = own.clone().acquire_owned().await.ok()?;
                    let node = inner.dry_permits.clone().acquire_owned().await.ok()?;
                    Some((mine, node))
                } => permits,
            };
            // Stopping: what started is collected (and interrupted) below.
            let Some(permits) = permits else { break };
            let cx = cx.clone();
            let was =
                recorded.get(&(rec.execution.version_id, rec.execution.flow.clone())).cloned().unwrap_or_default();
            let task = tokio::spawn(async move {
                let _permits = permits;
                dry_run_one(&cx, &rec, &was).await
            });
            tasks.push((execution_id, flow, task));
        }
        let mut results = Vec::with_capacity(tasks.len());
        let mut tasks = tasks.into_iter();
        while let Some((execution_id, flow, mut task)) = tasks.next() {
            // A node that stops does not wait for a dry run: what finished is kept.
            let joined = if task.is_finished() {
                Some((&mut task).await)
            } else {
                tokio::select! {
                    biased;
                    _ = inner.stop_claims.cancelled() => None,
                    joined = &mut task => Some(joined),
                }
            };
            let Some(joined) = joined else {
                task.abort();
                tasks.for_each(|(_, _, t)| t.abort());
                let at = inner.clock.now_ms();
                let _ = inner.store.add_dry_run_results(&id, &results, DryRunCounts { done: n, ..counts }, at).await;
                let _ = inner.store.finish_dry_run(&id, "interrupted", None, inner.clock.now_ms()).await;
                return;
            };
            let (outcome, detail) = joined.unwrap_or_else(|e| {
                (
                    "would_fail",
                    json!({ "error": { "code": "dry_run_crashed", "message": format!("the dry run of this execution stopped: {e}") } }),
                )
            });
            n += 1;
            match outcome {
                "same" => counts.same += 1,
                "different" => counts.different += 1,
                "would_fail" => counts.would_fail += 1,
                _ => counts.unanswered += 1,
            }
            let mut detail = detail.to_string();
            if detail.len() > MAX_DETAIL {
                // A loop of thousands of changed items: the first changes, and how big it was.
                let first: Vec<Value> = serde_json::from_str::<Value>(&detail)
                    .ok()
                    .and_then(|d| d["changes"].as_array().map(|c| c.iter().take(5).cloned().collect()))
                    .unwrap_or_default();
                let cut = json!({ "changes": first, "truncated": true, "bytes": detail.len(),
                    "error": serde_json::from_str::<Value>(&detail).ok().map(|d| d["error"].clone()) });
                detail = cut.to_string();
            }
            results.push(DryRunResult {
                dry_run_id: id.clone(),
                n,
                execution_id,
                flow,
                outcome: outcome.to_owned(),
                detail,
            });
        }
        counts.done = n;
        if inner.stop_claims.is_cancelled() {
            let _ = inner.store.add_dry_run_results(&id, &results, counts, inner.clock.now_ms()).await;
            let _ = inner.store.finish_dry_run(&id, "interrupted", None, inner.clock.now_ms()).await;
            return;
        }
        if let Err(e) = inner.store.add_dry_run_results(&id, &results, counts, inner.clock.now_ms()).await {
            failure = Some(format!("cannot record the results: {e}"));
            break;
        }
    }
    let now = inner.clock.now_ms();
    let status = if failure.is_some() { "failed" } else { "done" };
    if let Err(e) = inner.store.finish_dry_run(&id, status, failure.as_deref(), now).await {
        tracing::warn!(error = %e, dry_run = %id, "Cannot record the end of a dry run.");
    }
    tracing::info!(dry_run = %id, done = counts.done, same = counts.same, different = counts.different,
        would_fail = counts.would_fail, unanswered = counts.unanswered, "Dry run finished.");
}

/// About how much memory a recording takes (its texts).
fn recording_bytes(r: &Recording) -> usize {
    let x = &r.execution;
    let texts = [&x.output, &x.response, &x.error].iter().map(|t| t.as_ref().map_or(0, String::len)).sum::<usize>();
    let journal: usize = r
        .journal
        .iter()
        .map(|e| {
            e.step_id.len()
                + [&e.input, &e.output, &e.error, &e.response]
                    .iter()
                    .map(|t| t.as_ref().map_or(0, String::len))
                    .sum::<usize>()
        })
        .sum();
    x.trigger.len() + texts + journal + 512
}

/// Dry-runs one recorded execution and compares: (outcome, detail).
async fn dry_run_one(cx: &JobCx, rec: &Recording, was: &compare::Written) -> (&'static str, Value) {
    let x = &rec.execution;
    let Some(flow) = cx.ci.flows.get(&x.flow).cloned() else {
        return ("unanswered", json!({ "message": format!("the version has no flow `{}`", x.flow) }));
    };
    if !compare::kept(rec) {
        return (
            "unanswered",
            json!({ "message": "the execution's journal was not kept (its flow's `diagnostics` keeps no outputs of \
                               successful runs), so it cannot be re-run" }),
        );
    }
    let trigger = match serde_json::from_str(&flow.redactor.restore_json_text(&x.trigger)) {
        Ok(t) => t,
        Err(e) => return ("unanswered", json!({ "message": format!("the recorded event cannot be read: {e}") })),
    };
    let nothing = compare::Written::default();
    let now = cx.written.get(&x.flow).unwrap_or(&nothing);
    let answers = answers(rec, &flow.redactor, now);
    let ran = run_dry(
        &cx.inner,
        DryInput {
            id: x.id.clone(),
            flow: flow.clone(),
            trigger,
            trigger_kind: x.trigger_kind.clone(),
            created_at: x.created_at,
            answers: Arc::new(answers),
        },
        EXECUTION_LIMIT,
    )
    .await;
    let none = Shape::default();
    let verdict = compare::compare(rec, &ran, cx.shapes.get(&x.flow).unwrap_or(&none), (was, now));
    (verdict.outcome, verdict.detail)
}

/// What each step of a recording gave, by journal key (its last word): an output, or the
/// failure it ended with (`continued`, or `failed` with nothing after). Secrets restored.
fn answers(rec: &Recording, redactor: &flowgate_secrets::Redactor, now: &compare::Written) -> Answers {
    let mut answers = Answers::by_key();
    let mut skipped = Vec::new();
    for e in &rec.journal {
        // A step that runs for real needs no answer (its output is not read again).
        if now.is_pure(compare::step_id(&e.step_id)) {
            continue;
        }
        let output = || {
            e.output
                .as_deref()
                .and_then(|o| serde_json::from_str::<Value>(&redactor.restore_json_text(o)).ok())
                .unwrap_or(Value::Null)
        };
        let error = || {
            let v: Value = e
                .error
                .as_deref()
                .and_then(|o| serde_json::from_str(&redactor.restore_json_text(o)).ok())
                .unwrap_or(Value::Null);
            StepError {
                details: v.get("details").cloned().filter(|d| !d.is_null()),
                ..StepError::fatal(
                    v["code"].as_str().unwrap_or("recorded_failure"),
                    v["message"].as_str().unwrap_or("the step failed when recorded"),
                )
            }
        };
        match e.status.as_str() {
            "succeeded" => answers.insert(e.step_id.clone(), Answer::Output(output())),
            "continued" | "failed" => answers.insert(e.step_id.clone(), Answer::Error(error())),
            "skipped" => skipped.push(e.step_id.clone()),
            _ => {}
        }
    }
    // A step the recording skipped (`when`) gave nothing to answer with.
    for k in skipped {
        answers.remove(&k);
    }
    answers
}

/// Executions dry runs may re-run at once on a node with these settings.
pub(crate) fn slots(settings: &crate::EngineSettings) -> usize {
    match settings.dry_run_workers {
        0 => (settings.max_concurrency / 4).max(1),
        n => n,
    }
}

/// Marks the dry runs this node was running when it stopped (it restarted), and forgets runs
/// past their retention.
pub(crate) async fn tidy(inner: &Inner, at_start: bool) {
    let now = inner.clock.now_ms();
    // A store of its own (SQLite): every run that was running stopped with this process.
    let node = inner.store.shared().then_some(inner.settings.node_id.as_str());
    if at_start && let Err(e) = inner.store.interrupt_dry_runs(node, now).await {
        tracing::warn!(error = %e, "Cannot mark interrupted dry runs.");
    }
    if let Err(e) = inner.store.purge_dry_runs(now - RETENTION.as_millis() as i64).await {
        tracing::warn!(error = %e, "Cannot delete old dry runs.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_runs_a_few_dry_runs_at_once_and_others_are_not_held_up() {
        let running = Running::default();
        let a1 = RunningPlace::take(&running, "a").expect("first");
        let _a2 = RunningPlace::take(&running, "a").expect("second");
        assert!(RunningPlace::take(&running, "a").is_none(), "a third waits");
        let _b = RunningPlace::take(&running, "b").expect("another tenant is not held up");
        drop(a1);
        assert!(RunningPlace::take(&running, "a").is_some(), "a place is given back");
    }

    #[test]
    fn only_the_flows_that_differ_are_tried() {
        let doc = |total: &str| {
            json!({ "flows": [
                { "flow": "a", "steps": [{ "id": "x", "transform": total }] },
                { "flow": "b", "steps": [{ "id": "y", "transform": "." }] },
            ] })
            .to_string()
        };
        assert_eq!(changed_flows(&doc(".n + 1"), Some(&doc(".n"))), ["a"]);
        assert!(changed_flows(&doc(".n"), Some(&doc(".n"))).is_empty());
        assert_eq!(changed_flows(&doc(".n"), None), ["a", "b"]);
    }
}
