//! A [`WriteBatch`] as SQL: the multi-row statements of one group commit, written once for
//! both backends.
//!
//! [`batch_statements!`] expands, in a backend's module, to `fn batch_statements` building
//! that backend's `QueryBuilder`s; the backend says whether an upsert may touch one row twice
//! in a statement (`DEDUP_UPSERTS`: SQLite may, PostgreSQL refuses). Rows of the `VALUES`
//! lists are named by a `WITH` clause, which both dialects read alike (a `VALUES` alias with
//! column names is PostgreSQL's only).

use crate::types::{StepRecord, TriggerState, WriteBatch};
use std::collections::HashSet;

/// Most rows in one multi-row statement. Batches up to this size are one statement, which is
/// atomic on its own (no BEGIN/COMMIT round trips); each distinct size is prepared once and
/// cached (SQLite allows 32,766 parameters; 64 rows × 19 columns is far below).
pub(crate) const MAX_ROWS: usize = 64;

/// What a statement of a batch writes (to check finishes against lost leases).
#[derive(PartialEq, Eq)]
pub(crate) enum Writes {
    Rows,
    Finishes(u64),
}

/// Warns when finishes were fenced off: their executions' leases had passed to another node.
pub(crate) fn check_finishes(writes: &Writes, affected: u64) {
    if let Writes::Finishes(n) = writes
        && affected < *n
    {
        tracing::warn!(lost = n - affected, "Finishes ignored: their leases were lost.");
    }
}

/// The batch's journal entries, one per (execution, step, round, attempt) where `dedup` (the
/// last written wins: a node re-running an execution whose lease it lost may record the same
/// attempt twice), all of them otherwise.
pub(crate) fn steps_of(batch: &WriteBatch, dedup: bool) -> Vec<&StepRecord> {
    if !dedup {
        return batch.steps.iter().collect();
    }
    let mut seen = HashSet::with_capacity(batch.steps.len());
    let mut out: Vec<&StepRecord> = batch
        .steps
        .iter()
        .rev()
        .filter(|s| seen.insert((s.execution_id.as_str(), s.step_id.as_str(), s.round, s.attempt)))
        .collect();
    out.reverse();
    out
}

/// The batch's trigger states, one per flow where `dedup` (the last wins), all otherwise.
pub(crate) fn states_of(batch: &WriteBatch, dedup: bool) -> Vec<&TriggerState> {
    if !dedup {
        return batch.states.iter().collect();
    }
    let mut seen = HashSet::with_capacity(batch.states.len());
    batch
        .states
        .iter()
        .rev()
        .filter(|t| seen.insert((t.tenant_id.as_str(), t.integration.as_str(), t.flow.as_str())))
        .collect()
}

/// `fn batch_statements(batch, skip) -> Vec<(Writes, QueryBuilder<$db>)>`: the statements of a
/// batch, in order; `skip` names new executions not to insert (repeated deliveries).
macro_rules! batch_statements {
    ($db:ty) => {
        fn batch_statements<'a>(
            batch: &'a WriteBatch,
            skip: &std::collections::HashSet<&str>,
        ) -> Vec<($crate::shared::batch::Writes, sqlx::QueryBuilder<'a, $db>)> {
            use $crate::shared::batch::{MAX_ROWS, Writes, states_of, steps_of};
            use sqlx::QueryBuilder;
            let mut out = Vec::new();
            let inserts: Vec<&NewExecution> = batch.inserts.iter().filter(|e| !skip.contains(e.id.as_str())).collect();
            for chunk in inserts.chunks(MAX_ROWS) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO executions (id, tenant_id, integration, flow, version_id, status, lease_owner, lease_until, \
                     trigger_kind, trigger, auth_label, run_after, created_at, started_at, replay_of, order_key, holds_order, \
                     max_running, parent_id, traceparent) ",
                );
                qb.push_values(chunk.iter().copied(), |mut b, e| {
                    let started = (e.status == Status::Running).then_some(e.created_at);
                    b.push_bind(&e.id)
                        .push_bind(&e.tenant_id)
                        .push_bind(&e.integration)
                        .push_bind(&e.flow)
                        .push_bind(e.version_id)
                        .push_bind(e.status.as_str())
                        .push_bind(&e.lease_owner)
                        .push_bind(e.lease_until)
                        .push_bind(e.trigger_kind)
                        .push_bind(&e.trigger)
                        .push_bind(&e.auth_label)
                        .push_bind(e.run_after)
                        .push_bind(e.created_at)
                        .push_bind(started)
                        .push_bind(&e.replay_of)
                        .push_bind(&e.order_key)
                        .push_bind(e.order_key.is_some())
                        .push_bind(e.max_running)
                        .push_bind(&e.parent_id)
                        .push_bind(&e.traceparent);
                });
                out.push((Writes::Rows, qb));
            }
            for chunk in steps_of(batch, DEDUP_UPSERTS).chunks(MAX_ROWS) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO step_attempts (execution_id, step_id, round, attempt, seq, status, input, output, error, \
                     response, started_at, finished_at) ",
                );
                qb.push_values(chunk.iter().copied(), |mut b, s| {
                    b.push_bind(&s.execution_id)
                        .push_bind(&s.step_id)
                        .push_bind(s.round)
                        .push_bind(s.attempt)
                        .push_bind(s.seq)
                        .push_bind(&s.status)
                        .push_bind(&s.input)
                        .push_bind(&s.output)
                        .push_bind(&s.error)
                        .push_bind(&s.response)
                        .push_bind(s.started_at)
                        .push_bind(s.finished_at);
                });
                // A resumed step may re-record an attempt number a crash left half-written.
                qb.push(
                    " ON CONFLICT (execution_id, step_id, round, attempt) DO UPDATE SET seq = excluded.seq, \
                     status = excluded.status, input = excluded.input, output = excluded.output, error = excluded.error, \
                     response = excluded.response, started_at = excluded.started_at, finished_at = excluded.finished_at",
                );
                out.push((Writes::Rows, qb));
            }
            for chunk in batch.logs.chunks(MAX_ROWS) {
                let mut qb = QueryBuilder::new("INSERT INTO execution_logs (execution_id, at, level, step_id, message) ");
                qb.push_values(chunk, |mut b, l| {
                    b.push_bind(&l.execution_id)
                        .push_bind(l.at)
                        .push_bind(&l.level)
                        .push_bind(&l.step_id)
                        .push_bind(&l.message);
                });
                out.push((Writes::Rows, qb));
            }
            for chunk in batch.responses.chunks(MAX_ROWS) {
                let mut qb = QueryBuilder::new("WITH r (id, response) AS (");
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.id).push_bind(&r.response);
                });
                qb.push(") UPDATE executions SET response = r.response FROM r WHERE executions.id = r.id");
                out.push((Writes::Rows, qb));
            }
            for chunk in batch.finishes.chunks(MAX_ROWS) {
                // Only the lease holder may end an execution: the `lease_owner` check fences a
                // node that lost its lease.
                let mut qb =
                    QueryBuilder::new("WITH f (id, status, output, response, error, failed_step, finished_at, owner, holds_order) AS (");
                qb.push_values(chunk, |mut b, f| {
                    b.push_bind(&f.id)
                        .push_bind(f.status.as_str())
                        .push_bind(&f.output)
                        .push_bind(&f.response)
                        .push_bind(&f.error)
                        .push_bind(&f.failed_step)
                        .push_bind(f.finished_at)
                        .push_bind(&f.owner)
                        .push_bind(f.holds_order);
                });
                qb.push(
                    ") UPDATE executions SET status = f.status, output = f.output, \
                     response = COALESCE(f.response, executions.response), error = f.error, failed_step = f.failed_step, \
                     finished_at = f.finished_at, holds_order = f.holds_order, lease_owner = NULL, lease_until = NULL \
                     FROM f WHERE executions.id = f.id AND executions.lease_owner = f.owner AND executions.status = 'running'",
                );
                out.push((Writes::Finishes(chunk.len() as u64), qb));
            }
            // Step data successful runs do not keep (the flow's `diagnostics`); only for
            // finishes that applied (a finish fenced off by a lost lease leaves the execution
            // running).
            for (scrub, sql) in [
                (
                    Scrub::Io,
                    "UPDATE step_attempts SET input = NULL, output = NULL WHERE status <> 'failed' AND execution_id IN (",
                ),
                (Scrub::All, "DELETE FROM step_attempts WHERE execution_id IN ("),
                (Scrub::All, "DELETE FROM execution_logs WHERE execution_id IN ("),
            ] {
                let ids: Vec<&str> =
                    batch.finishes.iter().filter(|f| f.scrub == scrub).map(|f| f.id.as_str()).collect();
                for chunk in ids.chunks(MAX_ROWS) {
                    let mut qb = QueryBuilder::new(sql);
                    qb.push("SELECT id FROM executions WHERE status IN ('succeeded', 'filtered') AND id IN (");
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    qb.push("))");
                    out.push((Writes::Rows, qb));
                }
            }
            for chunk in batch.parks.chunks(MAX_ROWS) {
                let mut qb = QueryBuilder::new("WITH p (id, run_after, owner) AS (");
                qb.push_values(chunk, |mut b, p| {
                    b.push_bind(&p.id).push_bind(p.run_after).push_bind(&p.owner);
                });
                qb.push(
                    ") UPDATE executions SET status = 'queued', run_after = p.run_after, lease_owner = NULL, \
                     lease_until = NULL FROM p WHERE executions.id = p.id AND executions.lease_owner = p.owner \
                     AND executions.status = 'running'",
                );
                out.push((Writes::Rows, qb));
            }
            for chunk in states_of(batch, DEDUP_UPSERTS).chunks(MAX_ROWS) {
                let mut qb =
                    QueryBuilder::new("INSERT INTO trigger_state (tenant_id, integration, flow, state, updated_at) ");
                qb.push_values(chunk.iter().copied(), |mut b, t| {
                    b.push_bind(&t.tenant_id)
                        .push_bind(&t.integration)
                        .push_bind(&t.flow)
                        .push_bind(&t.state)
                        .push_bind(t.updated_at);
                });
                qb.push(
                    " ON CONFLICT (tenant_id, integration, flow) DO UPDATE SET state = excluded.state, \
                     updated_at = excluded.updated_at",
                );
                out.push((Writes::Rows, qb));
            }
            for chunk in batch.deliveries.chunks(MAX_ROWS) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO deliveries (id, tenant_id, integration, flow, execution_id, step_id, kind, name, request, \
                     message_id, schedule, status, next_at, created_at, updated_at) ",
                );
                qb.push_values(chunk, |mut b, d| {
                    b.push_bind(&d.id)
                        .push_bind(&d.tenant_id)
                        .push_bind(&d.integration)
                        .push_bind(&d.flow)
                        .push_bind(&d.execution_id)
                        .push_bind(&d.step_id)
                        .push_bind(&d.kind)
                        .push_bind(&d.name)
                        .push_bind(&d.request)
                        .push_bind(&d.message_id)
                        .push_bind(&d.schedule)
                        .push_bind("pending")
                        .push_bind(d.next_at)
                        .push_bind(d.created_at)
                        .push_bind(d.created_at);
                });
                qb.push(" ON CONFLICT (id) DO NOTHING");
                out.push((Writes::Rows, qb));
            }
            out
        }
    };
}

/// `commit`, appended to the `impl Store` being built (`super::chain!`): a batch without
/// idempotency keys that fits one statement is sent as it is; otherwise one transaction
/// claims the keys, then writes what is not a repeat.
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn commit(&self, batch: &WriteBatch) -> Result<CommitOutcome> {
                use $crate::shared::batch::{Writes, check_finishes};
                let scrubbed;
                let batch = if SCRUB_NUL && $crate::nul::batch_has_nul(batch) {
                    scrubbed = $crate::nul::scrub_batch(batch);
                    &scrubbed
                } else {
                    batch
                };
                let keyed: Vec<&NewExecution> = batch.inserts.iter().filter(|e| e.dedup.is_some()).collect();
                if keyed.is_empty() {
                    let mut statements = batch_statements(batch, &std::collections::HashSet::new());
                    statements.extend(self.event_statements(batch).map(|qb| (Writes::Rows, qb)));
                    if let [(writes, qb)] = statements.as_mut_slice() {
                        // One statement is atomic on its own: skip BEGIN/COMMIT (two round trips).
                        let r = qb.build().execute(&self.$write).await?;
                        check_finishes(writes, r.rows_affected());
                        return Ok(CommitOutcome::default());
                    }
                    if statements.is_empty() {
                        return Ok(CommitOutcome::default());
                    }
                    let mut tx = self.$write.begin().await?;
                    for (writes, qb) in &mut statements {
                        let r = qb.build().execute(&mut *tx).await?;
                        check_finishes(writes, r.rows_affected());
                    }
                    tx.commit().await?;
                    return Ok(CommitOutcome::default());
                }
                let mut tx = self.$write.begin().await?;
                let mut outcome = CommitOutcome::default();
                let mut skip = std::collections::HashSet::new();
                for e in keyed {
                    let Some(d) = &e.dedup else { continue };
                    // Claim the identity unless a live one holds it (an expired one is taken
                    // over); concurrent claims on other nodes wait on the row and then see ours.
                    let claimed: Option<String> = sqlx::query_scalar(
                        "INSERT INTO dedup_keys (tenant_id, integration, flow, key, execution_id, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, integration, flow, key) \
                         DO UPDATE SET execution_id = excluded.execution_id, expires_at = excluded.expires_at \
                         WHERE dedup_keys.expires_at <= $7 RETURNING execution_id",
                    )
                    .bind(&e.tenant_id)
                    .bind(&e.integration)
                    .bind(&e.flow)
                    .bind(&d.key)
                    .bind(&e.id)
                    .bind(d.expires_at)
                    .bind(e.created_at)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if claimed.as_deref() != Some(e.id.as_str()) {
                        let first: String = sqlx::query_scalar(
                            "SELECT execution_id FROM dedup_keys WHERE tenant_id = $1 AND integration = $2 AND flow = $3 AND key = $4",
                        )
                        .bind(&e.tenant_id)
                        .bind(&e.integration)
                        .bind(&e.flow)
                        .bind(&d.key)
                        .fetch_one(&mut *tx)
                        .await?;
                        outcome.duplicates.push((e.id.clone(), first));
                        skip.insert(e.id.as_str());
                    }
                }
                let mut statements = batch_statements(batch, &skip);
                statements.extend(self.event_statements(batch).map(|qb| (Writes::Rows, qb)));
                for (writes, qb) in &mut statements {
                    let r = qb.build().execute(&mut *tx).await?;
                    check_finishes(writes, r.rows_affected());
                }
                tx.commit().await?;
                Ok(outcome)
            }

        } }
    };
}

pub(crate) use {batch_statements, methods};
