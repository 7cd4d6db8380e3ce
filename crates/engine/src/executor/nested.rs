//! Steps that run other steps side by side or many times: a loop's items (`foreach`) and a
//! `parallel` step's branches. Each item or branch runs as a line of its own, forked from
//! the execution: it shares the journal's order, what earlier runs recorded and the handed
//! credentials, keeps its own `$steps` over the outer ones and its own pending entries, and
//! keys its entries under the item or branch (`each[3].push`, `both[a].fetch`). Each
//! finished item or branch is one entry (`each[3]`, `both[a]`): a resume or a retry runs
//! only what had not finished, and puts the step's output together from those entries.
//!
//! Memory stays flat over a long loop: at most `concurrency` items are in flight, each
//! item's own outputs go when it ends, and entries are made durable every
//! [`FLUSH_EVERY`] rather than held to the end.

use super::*;
use flowgate_steps::foreach::Each;
use flowgate_steps::parallel::Branches;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

/// Items and branches of one execution in flight at once, whatever its loops' concurrencies
/// (a loop of 64 in a loop of 64 would be 4,096 requests at once from one event). A loop
/// always has one item going, so nested loops cannot starve each other.
pub(super) const MAX_LINES: usize = 256;

/// Pending journal entries a loop makes durable at once (pure items write nothing else).
const FLUSH_EVERY: usize = 512;

/// A loop's or `parallel` step's own entry holds its output up to this size; beyond, a
/// summary (its output is put together from the items' entries when needed).
const OWN_ENTRY_MAX: usize = 64 * 1024;

/// How a forked line ended, with the line (its pending entries go back to the parent).
type Ended = (usize, Execution, Flow);

impl Execution {
    /// A line for an item or branch, keyed under `prefix`, seeing `outer` as the outputs
    /// around it.
    fn fork(
        &self,
        prefix: String,
        outer: Vec<Arc<Map<String, Value>>>,
        item: Option<Arc<Value>>,
        concurrent: bool,
        done: &Arc<std::sync::Mutex<WriteBatch>>,
    ) -> Execution {
        let mut around = self.around.clone();
        around.push(done.clone());
        Execution {
            around,
            prefix,
            outer,
            item: item.or_else(|| self.item.clone()),
            trace: self.trace,
            span: None,
            lines: {
                self.lines.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.lines.clone()
            },
            concurrent: concurrent || self.concurrent,
            waiting: self.waiting.clone(),
            handed: self.handed.clone(),
            inner: self.inner.clone(),
            id: self.id.clone(),
            flow: self.flow.clone(),
            trigger: self.trigger.clone(),
            round: self.round,
            execution_var: self.execution_var.clone(),
            outputs: Map::new(),
            completed: self.completed.clone(),
            skipped_items: self.skipped_items.clone(),
            attempts: self.attempts.clone(),
            seq: self.seq.clone(),
            pending: WriteBatch::default(),
            response: None,
            claimed: self.claimed,
            // The first entry's input is the item (or the step's input), not the last output.
            input_is_last_output: false,
            mocks: self.mocks.clone(),
            depth: self.depth,
            call_root: self.call_root.clone(),
            round_began: self.round_began,
            lost_store: false,
            _permit: None,
            dry: self.dry.clone(),
        }
    }

    /// Takes back what a line left: its pending entries (into `done`, where the lines still
    /// running make them durable before their next side effect), a lost store, an answer.
    fn absorb(&mut self, mut line: Execution, done: &Arc<std::sync::Mutex<WriteBatch>>) {
        self.lines.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        done.lock().unwrap_or_else(|e| e.into_inner()).append(&mut line.pending);
        self.lost_store |= line.lost_store;
        if self.response.is_none() {
            self.response = line.response.take();
        }
        self.waiting.extend(line.waiting.drain());
    }

    /// Lends this line's `$steps` to the lines it forks (as the innermost outer layer).
    fn lend_outputs(&mut self) -> Vec<Arc<Map<String, Value>>> {
        let mut outer = self.outer.clone();
        outer.push(Arc::new(std::mem::take(&mut self.outputs)));
        outer
    }

    /// Takes this line's `$steps` back once every forked line is gone.
    fn take_back_outputs(&mut self, mut outer: Vec<Arc<Map<String, Value>>>) {
        if let Some(mine) = outer.pop() {
            self.outputs = Arc::try_unwrap(mine).unwrap_or_else(|shared| (*shared).clone());
        }
    }

    /// Records a loop's or `parallel` step's own entry and passes its output on.
    fn finish_nested(
        &mut self,
        step: &CompiledStep,
        attempt: u32,
        input: &Value,
        out: Value,
        summary: Value,
        started: i64,
    ) -> Input {
        if !self.completed.contains_key(&*self.key(step)) {
            let text = out.to_string();
            let fits = text.len() <= OWN_ENTRY_MAX;
            let shown = if fits { text } else { summary.to_string() };
            // Its items' entries came after its input: store it explicitly.
            self.input_is_last_output = false;
            self.record_json(step, attempt, "succeeded", input, Some(shown), None, started);
            // The next step's input is the whole output, which the entry may not hold.
            self.input_is_last_output = fits;
        } else {
            self.input_is_last_output = false;
        }
        self.output(step, out)
    }

    /// A `foreach` step: runs its steps for each item, `concurrency` at a time, and outputs
    /// the list of what each gave.
    pub(super) async fn run_each<'s>(
        &mut self,
        step: &'s CompiledStep,
        attempt: u32,
        each: Each<'s>,
        input: Input,
        started: i64,
    ) -> Result<Input, Flow> {
        let key = self.key(step).into_owned();
        let continue_on_error = each.on_error.unwrap_or(step.on_error) == OnError::Continue;
        let count = each.items.len();
        // What came before is durable before items commit entries of their own.
        if !self.flush().await {
            return Err(Flow::Interrupted);
        }
        let outer = self.lend_outputs();
        // Entries of finished items or branches (and their own): durable with the next flush
        // of any line still running, or the loop's.
        let done: Arc<std::sync::Mutex<WriteBatch>> = Default::default();
        let mut gave: Vec<Option<Value>> = Vec::with_capacity(count);
        let mut failed = 0usize;
        let mut running: FuturesUnordered<Pin<Box<dyn Future<Output = Ended> + Send + 's>>> = FuturesUnordered::new();
        let mut items = each.items.into_iter().enumerate();
        let mut end: Option<Flow> = None;
        let concurrent = each.concurrency > 1;
        loop {
            // Start items while there is room, and nothing stopped the loop.
            while end.is_none()
                && running.len() < each.concurrency
                && (running.is_empty() || self.lines.load(std::sync::atomic::Ordering::Relaxed) < MAX_LINES)
            {
                let Some((i, item)) = items.next() else { break };
                gave.push(None);
                let item_key = format!("{key}[{i}]");
                if let Some(out) = self.completed.get(&item_key) {
                    // Finished in an earlier run: what it gave is in its entry.
                    if !self.skipped_items.contains(&item_key) {
                        gave[i] = Some(out.clone());
                    }
                    continue;
                }
                let item = Arc::new(item);
                let mut line = self.fork(format!("{item_key}."), outer.clone(), Some(item.clone()), concurrent, &done);
                let steps = each.steps;
                running.push(Box::pin(async move {
                    let flow = line.run_steps(steps, item).await;
                    (i, line, flow)
                }));
            }
            let Some((i, line, flow)) = running.next().await else { break };
            let item_key = format!("{key}[{i}]");
            let item_started = self.inner.clock.now_ms();
            match flow {
                Flow::Done(out) => {
                    let contribution = match each.collect {
                        Some(collect) => match self.evaluator().eval(collect, &out, &line.scope()).await {
                            Ok(v) => Ok(v),
                            Err(e) => Err(StepError::from(e)),
                        },
                        None => Ok(out),
                    };
                    self.absorb(line, &done);
                    match contribution {
                        Ok(v) => {
                            self.input_is_last_output = false;
                            self.record_entry(
                                item_key,
                                step.kind,
                                1,
                                "succeeded",
                                &Value::Null,
                                Some(v.to_string()),
                                None,
                                item_started,
                            );
                            gave[i] = Some(v);
                        }
                        Err(error) => {
                            match self.item_failed(
                                step,
                                &item_key,
                                i,
                                error,
                                continue_on_error,
                                &mut gave,
                                item_started,
                            ) {
                                Some(stop) => stop_with(&mut end, stop),
                                None => failed += 1,
                            }
                        }
                    }
                }
                Flow::Filtered(_) => {
                    // A filter inside a loop drops the item.
                    self.absorb(line, &done);
                    self.input_is_last_output = false;
                    self.record_entry(
                        item_key,
                        step.kind,
                        1,
                        "skipped",
                        &Value::Null,
                        Some("null".into()),
                        None,
                        item_started,
                    );
                }
                Flow::Failed { step: at, error } => {
                    self.absorb(line, &done);
                    if !continue_on_error {
                        stop_with(&mut end, Flow::Failed { step: at, error });
                        continue;
                    }
                    let error = StepError { details: Some(json!({ "step": at, "item": i })), ..error };
                    self.item_failed(step, &item_key, i, error, true, &mut gave, item_started);
                    failed += 1;
                }
                Flow::Interrupted => {
                    // The store failed: stop here, as a crash would.
                    self.absorb(line, &done);
                    end = Some(Flow::Interrupted);
                    break;
                }
                other => {
                    // A retry or a delay far off, or (one item at a time only) a wait.
                    self.absorb(line, &done);
                    stop_with(&mut end, other);
                }
            }
            // The item's own entry joins the others, for the next line's flush; a loop of
            // pure items makes them durable every so often itself.
            let waiting = {
                let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                done.append(&mut self.pending);
                done.steps.len()
            };
            if waiting >= FLUSH_EVERY {
                self.pending.append(&mut done.lock().unwrap_or_else(|e| e.into_inner()));
                if !self.flush().await {
                    end = Some(Flow::Interrupted);
                    break;
                }
            }
        }
        // Lines still running (the store failed) are dropped as a crash would stop them: what
        // they made durable stays, a resume finishes them.
        drop(running);
        self.pending.append(&mut done.lock().unwrap_or_else(|e| e.into_inner()));
        self.take_back_outputs(outer);
        if let Some(end) = end {
            return Err(end);
        }
        let out = Value::Array(gave.into_iter().flatten().collect());
        let summary =
            json!({ "items": count, "failed": failed, "note": "the output is the list of the items' entries" });
        Ok(self.finish_nested(step, attempt, &input, out, summary, started))
    }

    /// A loop item that failed: with `onError: continue` its entry holds the error and the
    /// loop goes on (`None`), else the loop fails with it.
    #[allow(clippy::too_many_arguments)]
    fn item_failed(
        &mut self,
        step: &CompiledStep,
        item_key: &str,
        index: usize,
        error: StepError,
        continue_on_error: bool,
        gave: &mut [Option<Value>],
        started: i64,
    ) -> Option<Flow> {
        if !continue_on_error {
            self.input_is_last_output = false;
            self.record_entry(item_key.to_owned(), step.kind, 1, "failed", &Value::Null, None, Some(&error), started);
            return Some(Flow::Failed { step: item_key.to_owned(), error });
        }
        let mut out = error.to_output();
        if out["error"]["details"].is_null() {
            out["error"]["details"] = json!({ "item": index });
        }
        self.input_is_last_output = false;
        self.record_entry(
            item_key.to_owned(),
            step.kind,
            1,
            "continued",
            &Value::Null,
            Some(out.to_string()),
            Some(&error),
            started,
        );
        gave[index] = Some(out);
        None
    }

    /// A `parallel` step: runs every branch at once from the step's input and joins their
    /// outputs by name.
    pub(super) async fn run_branches<'s>(
        &mut self,
        step: &'s CompiledStep,
        attempt: u32,
        branches: Branches<'s>,
        input: Input,
        started: i64,
    ) -> Result<Input, Flow> {
        let key = self.key(step).into_owned();
        let continue_on_error = branches.on_error.unwrap_or(step.on_error) == OnError::Continue;
        if !self.flush().await {
            return Err(Flow::Interrupted);
        }
        let outer = self.lend_outputs();
        // Entries of finished items or branches (and their own): durable with the next flush
        // of any line still running, or the loop's.
        let done: Arc<std::sync::Mutex<WriteBatch>> = Default::default();
        let mut gave: Vec<Option<Value>> = vec![None; branches.branches.len()];
        let mut running: FuturesUnordered<Pin<Box<dyn Future<Output = Ended> + Send + 's>>> = FuturesUnordered::new();
        for (i, (name, steps)) in branches.branches.iter().enumerate() {
            let branch_key = format!("{key}[{name}]");
            if let Some(out) = self.completed.get(&branch_key) {
                gave[i] = Some(out.clone());
                continue;
            }
            let mut line = self.fork(format!("{branch_key}."), outer.clone(), None, true, &done);
            let input = input.clone();
            running.push(Box::pin(async move {
                let flow = line.run_steps(steps, input).await;
                (i, line, flow)
            }));
        }
        let mut end: Option<Flow> = None;
        while let Some((i, line, flow)) = running.next().await {
            let branch_key = format!("{key}[{}]", branches.branches[i].0);
            let branch_started = self.inner.clock.now_ms();
            self.absorb(line, &done);
            match flow {
                Flow::Done(out) => {
                    self.input_is_last_output = false;
                    self.record_entry(
                        branch_key,
                        step.kind,
                        1,
                        "succeeded",
                        &Value::Null,
                        Some(out.to_string()),
                        None,
                        branch_started,
                    );
                    gave[i] = Some(out);
                }
                Flow::Failed { step: at, error } if continue_on_error => {
                    let error = StepError { details: Some(json!({ "step": at })), ..error };
                    let out = error.to_output();
                    self.input_is_last_output = false;
                    self.record_entry(
                        branch_key,
                        step.kind,
                        1,
                        "continued",
                        &Value::Null,
                        Some(out.to_string()),
                        Some(&error),
                        branch_started,
                    );
                    gave[i] = Some(out);
                }
                Flow::Interrupted => {
                    end = Some(Flow::Interrupted);
                    break;
                }
                // The first failure (or a filter) ends the step once the other branches have
                // ended, so what they did is journaled and a retry runs only what failed.
                other => stop_with(&mut end, other),
            }
            done.lock().unwrap_or_else(|e| e.into_inner()).append(&mut self.pending);
        }
        drop(running);
        self.pending.append(&mut done.lock().unwrap_or_else(|e| e.into_inner()));
        self.take_back_outputs(outer);
        if let Some(end) = end {
            return Err(end);
        }
        let out: Map<String, Value> = branches
            .branches
            .iter()
            .zip(gave)
            .map(|((name, _), out)| (name.clone(), out.unwrap_or(Value::Null)))
            .collect();
        let summary = json!({ "branches": out.len(), "note": "the output joins the branches' entries" });
        Ok(self.finish_nested(step, attempt, &input, Value::Object(out), summary, started))
    }
}

/// Keeps the end that matters most once every line in flight has ended: the first failure
/// (or filter, or wait) over a park; of parks, the earliest.
fn stop_with(end: &mut Option<Flow>, new: Flow) {
    *end = match (end.take(), new) {
        (None, new) => Some(new),
        (Some(Flow::Parked { run_after: a }), Flow::Parked { run_after: b }) => {
            Some(Flow::Parked { run_after: a.min(b) })
        }
        (Some(Flow::Parked { .. }), new) => Some(new),
        (Some(kept), _) => Some(kept),
    };
}
