//! Dry runs (issue 20): reading recorded executions with their journals in pages, and the
//! runs' progress and results, kept for their retention.
//!
//! Expanded into both backends' `impl Store` (see [`super`]); statements use `$n`
//! placeholders.

/// This area's methods, appended to the `impl Store` being built (`super::chain!`).
macro_rules! methods {
    ($rest:tt ($ty:ty, $db:ty, $read:ident, $write:ident) { $($acc:tt)* }) => {
        $crate::shared::chain! { $rest ($ty, $db, $read, $write) { $($acc)*

            async fn recordings(&self, tenant: &str, ids: &[String]) -> Result<Vec<$crate::dry_runs::Recording>> {
                use sqlx::QueryBuilder;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions e JOIN integration_versions v ON v.id = e.version_id \
                     WHERE e.tenant_id = "
                ));
                qb.push_bind(tenant).push(" AND e.id");
                push_ids(&mut qb, ids);
                let rows: Vec<ExecutionRow> = qb.build_query_as().fetch_all(&self.$read).await?;
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT execution_id, step_id, round, attempt, seq, status, input, output, error, response, started_at, \
                     finished_at FROM step_attempts WHERE execution_id",
                );
                push_ids(&mut qb, ids);
                qb.push(" ORDER BY execution_id, seq, round, attempt");
                let entries: Vec<StepRecord> = qb.build_query_as().fetch_all(&self.$read).await?;
                let mut journals: std::collections::HashMap<String, Vec<StepRecord>> = std::collections::HashMap::new();
                for e in entries {
                    journals.entry(e.execution_id.clone()).or_default().push(e);
                }
                let mut by_id: std::collections::HashMap<String, ExecutionRow> =
                    rows.into_iter().map(|r| (r.id.clone(), r)).collect();
                Ok(ids
                    .iter()
                    .filter_map(|id| {
                        let execution = by_id.remove(id)?;
                        let journal = journals.remove(id).unwrap_or_default();
                        Some($crate::dry_runs::Recording { execution, journal })
                    })
                    .collect())
            }

            async fn create_dry_run(&self, run: &$crate::dry_runs::DryRun) -> Result<()> {
                sqlx::query(
                    "INSERT INTO dry_runs (id, tenant_id, integration, version, request, node_id, status, total, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                )
                .bind(&run.id)
                .bind(&run.tenant_id)
                .bind(&run.integration)
                .bind(&run.version)
                .bind(&run.request)
                .bind(&run.node_id)
                .bind(&run.status)
                .bind(run.total)
                .bind(run.created_at)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn add_dry_run_results(
                &self,
                id: &str,
                results: &[$crate::dry_runs::DryRunResult],
                counts: $crate::dry_runs::DryRunCounts,
                at: i64,
            ) -> Result<()> {
                use sqlx::QueryBuilder;
                let mut tx = self.$write.begin().await?;
                // Six binds a row: well under either backend's limit per statement.
                for chunk in results.chunks(500) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO dry_run_results (dry_run_id, n, execution_id, flow, outcome, detail) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(id)
                            .push_bind(r.n)
                            .push_bind(&r.execution_id)
                            .push_bind(&r.flow)
                            .push_bind(&r.outcome)
                            .push_bind($crate::nul::clean(SCRUB_NUL, r.detail.as_str()));
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                sqlx::query(
                    "UPDATE dry_runs SET total = $1, done = $2, same = $3, different = $4, would_fail = $5, unanswered = $6, \
                     updated_at = $7 WHERE id = $8",
                )
                .bind(counts.total)
                .bind(counts.done)
                .bind(counts.same)
                .bind(counts.different)
                .bind(counts.would_fail)
                .bind(counts.unanswered)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn finish_dry_run(&self, id: &str, status: &str, error: Option<&str>, at: i64) -> Result<()> {
                sqlx::query("UPDATE dry_runs SET status = $1, error = $2, finished_at = $3 WHERE id = $4 AND status = 'running'")
                    .bind(status)
                    .bind(error.map(|e| $crate::nul::clean(SCRUB_NUL, e)))
                    .bind(at)
                    .bind(id)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn dry_run(&self, tenant: &str, id: &str) -> Result<Option<$crate::dry_runs::DryRun>> {
                Ok(sqlx::query_as(
                    "SELECT id, tenant_id, integration, version, request, node_id, status, total, done, same, different, \
                     would_fail, unanswered, error, created_at, updated_at, finished_at FROM dry_runs WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn dry_run_results(
                &self,
                id: &str,
                outcome: Option<&str>,
                after: i64,
                limit: u32,
            ) -> Result<Vec<$crate::dry_runs::DryRunResult>> {
                let sql = if outcome.is_some() {
                    "SELECT dry_run_id, n, execution_id, flow, outcome, detail FROM dry_run_results \
                     WHERE dry_run_id = $1 AND outcome = $2 AND n > $3 ORDER BY n LIMIT $4"
                } else {
                    "SELECT dry_run_id, n, execution_id, flow, outcome, detail FROM dry_run_results \
                     WHERE dry_run_id = $1 AND (CAST($2 AS TEXT) IS NULL) AND n > $3 ORDER BY n LIMIT $4"
                };
                Ok(sqlx::query_as(sql)
                    .bind(id)
                    .bind(outcome)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn interrupt_dry_runs(&self, node: Option<&str>, at: i64) -> Result<u64> {
                Ok(sqlx::query(
                    "UPDATE dry_runs SET status = 'interrupted', finished_at = $1 \
                     WHERE status = 'running' AND (CAST($2 AS TEXT) IS NULL OR node_id = $2)",
                )
                .bind(at)
                .bind(node)
                .execute(&self.$write)
                .await?
                .rows_affected())
            }

            async fn purge_dry_runs(&self, before: i64) -> Result<u64> {
                // In short statements, each its own transaction: a run of a million results
                // never holds the write lock (SQLite's one writer) against the live committer
                // for longer than one batch takes; the pool hands the connection on between
                // them.
                const BATCH: i64 = 5_000;
                let expired: Vec<(String,)> =
                    sqlx::query_as("SELECT id FROM dry_runs WHERE created_at < $1 ORDER BY created_at, id")
                        .bind(before)
                        .fetch_all(&self.$read)
                        .await?;
                let mut runs = 0;
                for (id,) in expired {
                    // A run's results, the first `BATCH` of them (by `n`) at a time.
                    loop {
                        let gone = sqlx::query(
                            "DELETE FROM dry_run_results WHERE dry_run_id = $1 AND n IN \
                             (SELECT n FROM dry_run_results WHERE dry_run_id = $1 ORDER BY n LIMIT $2)",
                        )
                        .bind(&id)
                        .bind(BATCH)
                        .execute(&self.$write)
                        .await?
                        .rows_affected();
                        if gone < BATCH as u64 {
                            break;
                        }
                    }
                    // Then the run, with whatever was added meanwhile (nothing, unless it was
                    // still running): no result outlives its run.
                    let mut tx = self.$write.begin().await?;
                    sqlx::query("DELETE FROM dry_run_results WHERE dry_run_id = $1")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    runs += sqlx::query("DELETE FROM dry_runs WHERE id = $1 AND created_at < $2")
                        .bind(&id)
                        .bind(before)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                }
                Ok(runs)
            }

        } }
    };
}

pub(crate) use methods;
