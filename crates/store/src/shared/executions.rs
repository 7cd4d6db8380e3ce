//! Reading executions (one, listings, filters for bulk jobs, what blocks an ordered flow),
//! the journal, queue figures, bulk jobs, skipping a blocking failure and retention.
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n`
//! placeholders.

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn execution(&self, tenant: Option<&str>, id: &str) -> Result<Option<ExecutionRow>> {
                execution_in(&self.$read, tenant, id).await
            }

            async fn executions(&self, q: &ExecutionQuery) -> Result<Vec<ExecutionRow>> {
                let tenant = if q.search.is_some() { TENANT_UNINDEXED } else { "e.tenant_id" };
                // A time range is read one of two ways, whichever is cheap for it: few
                // executions in the range → through `(tenant_id, created_at)`, then sorted; many
                // → down the tenant's `seq` index, checking each one's time, which meets enough
                // of them soon. A probe of at most DENSE index entries tells which.
                let mut created = "e.created_at";
                if (q.from.is_some() || q.to.is_some()) && q.search.is_none() {
                    let mut probe = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM (SELECT 1 FROM executions WHERE tenant_id = ");
                    probe.push_bind(&q.tenant);
                    if let Some(t) = q.from {
                        probe.push(" AND created_at >= ").push_bind(t);
                    }
                    if let Some(t) = q.to {
                        probe.push(" AND created_at < ").push_bind(t);
                    }
                    probe.push(" LIMIT ").push_bind(DENSE).push(") r");
                    let n: i64 = probe.build_query_scalar().fetch_one(&self.$read).await?;
                    if n >= DENSE {
                        created = CREATED_UNINDEXED;
                    }
                }
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT {LISTING_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
                     WHERE {tenant} = "
                ));
                qb.push_bind(&q.tenant);
                if let Some(i) = &q.integration {
                    qb.push(" AND e.integration = ").push_bind(i);
                }
                if let Some(f) = &q.flow {
                    qb.push(" AND e.flow = ").push_bind(f);
                }
                if let Some(s) = q.status {
                    qb.push(" AND e.status = ").push_bind(s.as_str());
                }
                if let Some(k) = &q.trigger_kind {
                    qb.push(" AND e.trigger_kind = ").push_bind(k);
                }
                if let Some(t) = q.from {
                    qb.push(format!(" AND {created} >= ")).push_bind(t);
                }
                if let Some(t) = q.to {
                    qb.push(format!(" AND {created} < ")).push_bind(t);
                }
                if let Some(s) = &q.search {
                    qb.push(" AND e.id");
                    push_search(&mut qb, &q.tenant, s);
                }
                if let Some(b) = q.before {
                    qb.push(" AND e.seq < ").push_bind(b);
                }
                qb.push(" ORDER BY e.seq DESC LIMIT ").push_bind(i64::from(q.limit));
                Ok(qb.build_query_as::<ExecutionRow>().fetch_all(&self.$read).await?)
            }

            async fn children(&self, tenant: &str, parent: &str) -> Result<Vec<ExecutionRow>> {
                let sql = format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
                     WHERE e.parent_id = $1 AND {TENANT_UNINDEXED} = $2 ORDER BY e.seq"
                );
                Ok(sqlx::query_as(&sql).bind(parent).bind(tenant).fetch_all(&self.$read).await?)
            }

            async fn last_run(&self, key: FlowKey<'_>) -> Result<Option<ExecutionRow>> {
                let FlowKey { tenant, integration, flow } = key;
                let sql = format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
                     WHERE e.tenant_id = $1 AND e.integration = $2 AND e.flow = $3 \
                     AND e.status IN ('succeeded', 'failed', 'filtered') ORDER BY e.seq DESC LIMIT 1"
                );
                Ok(sqlx::query_as(&sql).bind(tenant).bind(integration).bind(flow).fetch_optional(&self.$read).await?)
            }

            async fn failures_by_flow(&self, tenant: &str, since: i64) -> Result<Vec<(String, String, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT integration, flow, COUNT(*) FROM executions \
                     WHERE tenant_id = $1 AND status = 'failed' AND finished_at >= $2 GROUP BY integration, flow",
                )
                .bind(tenant)
                .bind(since)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn count_executions(&self, filter: &ExecutionFilter) -> Result<(i64, i64)> {
                let mut qb = QueryBuilder::<$db>::new("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM executions WHERE ");
                push_filter(&mut qb, filter);
                Ok(qb.build_query_as().fetch_one(&self.$read).await?)
            }

            async fn execution_ids(&self, filter: &ExecutionFilter, after_seq: i64, limit: u32) -> Result<Vec<(i64, String)>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT seq, id FROM executions WHERE ");
                push_filter(&mut qb, filter);
                qb.push(" AND seq > ").push_bind(after_seq).push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
                Ok(qb.build_query_as().fetch_all(&self.$read).await?)
            }

            async fn blocked(&self, key: FlowKey<'_>) -> Result<Vec<ExecutionRow>> {
                let FlowKey { tenant, integration, flow } = key;
                let sql = format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
                     WHERE e.tenant_id = $1 AND e.integration = $2 AND e.flow = $3 AND e.holds_order AND e.status = 'failed' \
                     ORDER BY e.seq"
                );
                Ok(sqlx::query_as(&sql).bind(tenant).bind(integration).bind(flow).fetch_all(&self.$read).await?)
            }

            async fn cancel_requested(&self, id: &str) -> Result<bool> {
                let v: Option<bool> = sqlx::query_scalar("SELECT cancel_requested FROM executions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?;
                Ok(v.unwrap_or(false))
            }

            async fn skip_execution(&self, tenant: &str, id: &str) -> Result<ExecutionRow> {
                let r = sqlx::query(
                    "UPDATE executions SET holds_order = false WHERE id = $1 AND tenant_id = $2 AND status = 'failed' AND holds_order",
                )
                .bind(id)
                .bind(tenant)
                .execute(&self.$write)
                .await?;
                let row = execution_in(&self.$write, Some(tenant), id).await?.ok_or(Error::NotFound)?;
                if r.rows_affected() == 0 {
                    return Err(Error::Conflict(format!(
                        "only a failed execution that blocks its order key can be skipped; this one is {}",
                        row.status
                    )));
                }
                self.notify(&[StoreEvent::Work]).await?;
                Ok(row)
            }

            async fn journal(&self, execution: &str) -> Result<Vec<StepRecord>> {
                Ok(sqlx::query_as(
                    "SELECT execution_id, step_id, round, attempt, seq, status, input, output, error, response, started_at, \
                     finished_at FROM step_attempts WHERE execution_id = $1 ORDER BY seq, round, attempt",
                )
                .bind(execution)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn next_due(&self) -> Result<Option<i64>> {
                // Asked after every claim round: each half is the first entry of a queue index
                // (its condition spelled as the index's), where `status = 'queued'` alone would
                // read every execution ever kept.
                Ok(sqlx::query_scalar(&format!(
                    "SELECT MIN(m) FROM (SELECT MIN(run_after) AS m FROM executions WHERE {QUEUED_FREE} \
                     UNION ALL SELECT MIN(run_after) AS m FROM executions WHERE {QUEUED_GATED}) q"
                ))
                .fetch_one(&self.$read)
                .await?)
            }

            async fn queue_depth(&self) -> Result<QueueDepth> {
                // Counted in the queue's two indexes (see `next_due`), not in the whole table.
                let queued: i64 = sqlx::query_scalar(&format!(
                    "SELECT (SELECT COUNT(*) FROM executions WHERE {QUEUED_FREE}) \
                     + (SELECT COUNT(*) FROM executions WHERE {QUEUED_GATED})"
                ))
                .fetch_one(&self.$read)
                .await?;
                let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'running'")
                    .fetch_one(&self.$read)
                    .await?;
                Ok(QueueDepth { queued, running })
            }

            async fn create_bulk_job(&self, job: &BulkJob) -> Result<()> {
                sqlx::query(
                    "INSERT INTO bulk_jobs (id, tenant_id, kind, filter, total, done, failed, status, created_at, finished_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&job.id)
                .bind(&job.tenant_id)
                .bind(&job.kind)
                .bind(&job.filter)
                .bind(job.total)
                .bind(job.done)
                .bind(job.failed)
                .bind(&job.status)
                .bind(job.created_at)
                .bind(job.finished_at)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn update_bulk_job(&self, id: &str, done: i64, failed: i64, finished_at: Option<i64>) -> Result<()> {
                sqlx::query(
                    "UPDATE bulk_jobs SET done = $1, failed = $2, finished_at = $3, \
                     status = CASE WHEN CAST($3 AS BIGINT) IS NULL THEN 'running' ELSE 'done' END WHERE id = $4",
                )
                .bind(done)
                .bind(failed)
                .bind(finished_at)
                .bind(id)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn bulk_job(&self, tenant: &str, id: &str) -> Result<Option<BulkJob>> {
                Ok(sqlx::query_as(
                    "SELECT id, tenant_id, kind, filter, total, done, failed, status, created_at, finished_at FROM bulk_jobs \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn prune(&self, scope: &PruneScope, older_than: Option<i64>, keep: Option<u64>, batch: u32) -> Result<u64> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id FROM executions WHERE finished_at IS NOT NULL AND NOT holds_order",
                );
                if let PruneScope::Flow { tenant, integration, flow } = scope {
                    qb.push(" AND tenant_id = ").push_bind(tenant);
                    qb.push(" AND integration = ").push_bind(integration);
                    qb.push(" AND flow = ").push_bind(flow);
                }
                qb.push(" AND (");
                let mut any = false;
                if let Some(t) = older_than {
                    qb.push("finished_at < ").push_bind(t);
                    any = true;
                }
                if let Some(k) = keep {
                    if any {
                        qb.push(" OR ");
                    }
                    qb.push("seq < COALESCE((SELECT seq FROM executions x WHERE x.finished_at IS NOT NULL");
                    if let PruneScope::Flow { tenant, integration, flow } = scope {
                        qb.push(" AND x.tenant_id = ").push_bind(tenant);
                        qb.push(" AND x.integration = ").push_bind(integration);
                        qb.push(" AND x.flow = ").push_bind(flow);
                    }
                    qb.push(" ORDER BY x.seq DESC LIMIT 1 OFFSET ").push_bind(keep_offset(k)).push("), -1)");
                    any = true;
                }
                if !any {
                    return Ok(0);
                }
                qb.push(") ORDER BY seq LIMIT ").push_bind(i64::from(batch));
                let ids: Vec<String> = qb.build_query_scalar().fetch_all(&self.$read).await?;
                if ids.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.$write.begin().await?;
                for sql in ["DELETE FROM step_attempts WHERE execution_id", "DELETE FROM execution_logs WHERE execution_id"] {
                    let mut del = sqlx::QueryBuilder::<$db>::new(sql);
                    push_ids(&mut del, &ids);
                    del.build().execute(&mut *tx).await?;
                }
                let mut del = sqlx::QueryBuilder::<$db>::new("DELETE FROM executions WHERE finished_at IS NOT NULL AND id");
                push_ids(&mut del, &ids);
                let r = del.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(r.rows_affected())
            }

        } }
    };
}

/// The free functions the methods share, expanded in the backend's module: `push_filter`
/// (bulk filters after `WHERE `; the id list is the backend's `push_ids`) and `execution_in`
/// (one execution by id, on any executor: a pool or an open transaction).
macro_rules! functions {
    ($db:ty) => {
        fn push_filter<'a>(qb: &mut sqlx::QueryBuilder<'a, $db>, f: &'a ExecutionFilter) {
            qb.push(if f.search.is_some() { "(tenant_id || '') = " } else { "tenant_id = " }).push_bind(&f.tenant);
            if let Some(i) = &f.integration {
                qb.push(" AND integration = ").push_bind(i);
            }
            if let Some(fl) = &f.flow {
                qb.push(" AND flow = ").push_bind(fl);
            }
            if let Some(s) = &f.status {
                qb.push(" AND status = ").push_bind(s);
            }
            if let Some(t) = f.from {
                qb.push(" AND created_at >= ").push_bind(t);
            }
            if let Some(t) = f.to {
                qb.push(" AND created_at < ").push_bind(t);
            }
            if let Some(seq) = f.through_seq {
                qb.push(" AND seq <= ").push_bind(seq);
            }
            if !f.ids.is_empty() {
                qb.push(" AND id");
                push_ids(qb, &f.ids);
            }
            if let Some(k) = &f.trigger_kind {
                qb.push(" AND trigger_kind = ").push_bind(k);
            }
            if let Some(s) = &f.search {
                qb.push(" AND id");
                push_search(qb, &f.tenant, s);
            }
        }

        /// The tenant's column written so that no index serves it, where another condition
        /// names the few rows wanted (a search's ids, a parent's children): otherwise SQLite,
        /// without statistics, may walk the tenant's whole `(tenant_id, seq)` index checking
        /// each row, where the rows are found by their own key.
        const TENANT_UNINDEXED: &str = "(e.tenant_id || '')";

        /// The creation time written so that no index serves it: a dense time range is read
        /// down the tenant's `seq` index (newest first, no sort), checking each row's time.
        const CREATED_UNINDEXED: &str = "(e.created_at + 0)";

        /// How many executions in a time range make it dense (see `executions`).
        const DENSE: i64 = 2_000;

        /// ` IN (…)`: the execution whose id is `s`, and those the delivery identity `s`
        /// (a dedup key of any of the tenant's flows, while remembered) led to. Both halves
        /// are key lookups: the id's primary key, and `dedup_keys` by tenant and key.
        fn push_search<'a>(qb: &mut sqlx::QueryBuilder<'a, $db>, tenant: &'a str, s: &'a str) {
            qb.push(" IN (SELECT ").push_bind(s);
            qb.push(" UNION ALL SELECT execution_id FROM dedup_keys WHERE tenant_id = ").push_bind(tenant);
            qb.push(" AND key = ").push_bind(s).push(")");
        }

        async fn execution_in<'e, E>(exec: E, tenant: Option<&str>, id: &str) -> Result<Option<ExecutionRow>>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            let sql = format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
                 WHERE e.id = $1 AND (CAST($2 AS TEXT) IS NULL OR e.tenant_id = $2)"
            );
            Ok(sqlx::query_as::<_, ExecutionRow>(&sql).bind(id).bind(tenant).fetch_optional(exec).await?)
        }
    };
}

pub(crate) use {functions, methods};
