//! Claiming queued work of flows without order or cap, within a node's fair shares.
//!
//! A claim first looks at the head of the queue: the oldest due executions, a window a little
//! larger than the claim, taking those whose tenant and flow have room in their shares
//! (issue 12). That is one indexed range read, and the whole claim when little is busy.
//!
//! When the window is full of executions of tenants or flows at their share — a deep backlog
//! of one flow, say — older work of other flows may lie anywhere behind it. Excluding the busy
//! ones in SQL (`NOT IN`) made every such claim read the whole backlog (200,000 rows, after
//! every finished execution): instead the claim walks the flows that have queued work, one
//! index seek each (`executions_queued_by_flow`), skipping those at their share and taking
//! the oldest of the others. The walk starts after the flow the last one served, so flows take
//! turns. Its cost follows the number of flows with queued work, not the number of queued
//! executions.
//!
//! The functions are expanded into each backend's module (see [`super`]); statements use `$n`
//! placeholders. They run on one connection the caller holds: PostgreSQL's in a transaction
//! (its row locks hold to the commit), SQLite's writer without one (the one writer already
//! keeps other writes out, the update claims only rows still queued, and `BEGIN`/`COMMIT`
//! would be two more hand-offs to its thread per claim). Each backend says `SKIP_LOCKED` (PostgreSQL's row locks, so nodes claiming
//! together take different rows), `SUSPECTS_INDEX` and `BY_FLOW_INDEX` (index hints where
//! SQLite, without statistics, would choose worse).

/// Most flows one claim visits in its walk; the next claim goes on from there.
pub(crate) const WALK_FLOWS: usize = 256;

macro_rules! functions {
    ($db:ty) => {
        /// Claims up to `limit` due queued executions of flows without order or cap for
        /// `lease.owner`, in `filter`'s lane, taking their places in `room` (see `shared::claims`).
        /// `cursor` is the flow the last walk served.
        async fn claim_free(
            conn: &mut <$db as sqlx::Database>::Connection,
            cursor: &std::sync::Mutex<Option<FlowKeyBuf>>,
            lease: Lease<'_>,
            limit: usize,
            filter: &ClaimFilter,
            room: &mut ShareRoom,
        ) -> Result<Vec<Claimed>> {
            use $crate::shared::QUEUED_FREE;
            let Lease { owner, now, until } = lease;
            let lane = filter.lane_sql();
            // Room to pass over a few busy ones (each row read costs); the walk finds the rest.
            let window = limit + 16;
            let index = if filter.crashes.start > 0 { SUSPECTS_INDEX } else { "" };
            let heads: Vec<(i64, String, String, String, bool)> = sqlx::query_as(&format!(
                "SELECT seq, tenant_id, integration, flow, started_at IS NULL FROM executions {index} WHERE {QUEUED_FREE} \
                 AND run_after <= $1{lane} ORDER BY run_after, seq LIMIT $2{SKIP_LOCKED}"
            ))
            .bind(now)
            .bind(window as i64)
            .fetch_all(&mut *conn)
            .await?;
            // (seq, never started: it has no journal to read)
            let mut picked: Vec<(i64, bool)> = Vec::with_capacity(limit);
            for (seq, tenant, integration, flow, fresh) in &heads {
                if picked.len() == limit {
                    break;
                }
                if room.take(FlowKey { tenant, integration, flow }) {
                    picked.push((*seq, *fresh));
                }
            }
            if picked.len() < limit && heads.len() == window {
                walk_flows(conn, cursor, now, limit, &lane, room, &mut picked).await?;
            }
            if picked.is_empty() {
                return Ok(Vec::new());
            }
            let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE executions SET status = 'running', lease_owner = ");
            qb.push_bind(owner)
                .push(", lease_until = ")
                .push_bind(until)
                .push(", started_at = COALESCE(started_at, ")
                .push_bind(now)
                .push(") WHERE status = 'queued' AND seq IN (");
            let mut seqs = qb.separated(", ");
            for (seq, _) in &picked {
                seqs.push_bind(*seq);
            }
            qb.push(") RETURNING ").push($crate::shared::CLAIMED_COLUMNS);
            let mut claimed: Vec<Claimed> = qb.build_query_as().fetch_all(&mut *conn).await?;
            let fresh: std::collections::HashSet<i64> = picked.iter().filter(|p| p.1).map(|p| p.0).collect();
            for c in &mut claimed {
                c.fresh = fresh.contains(&c.seq);
            }
            Ok(claimed)
        }

        /// The walk over flows with queued work (see `shared::claims`): adds to `picked`
        /// the oldest due executions of flows with room, until `limit`.
        async fn walk_flows(
            conn: &mut <$db as sqlx::Database>::Connection,
            cursor: &std::sync::Mutex<Option<FlowKeyBuf>>,
            now: i64,
            limit: usize,
            lane: &str,
            room: &mut ShareRoom,
            picked: &mut Vec<(i64, bool)>,
        ) -> Result<()> {
            use $crate::shared::QUEUED_FREE;
            let start = cursor.lock().map(|c| c.clone()).unwrap_or_default();
            let mut after =
                start.clone().map(|k| (k.tenant, k.integration, k.flow)).unwrap_or_default();
            let mut wrapped = start.is_none();
            let mut skip_tenant = false;
            let mut visited = std::collections::HashSet::new();
            let mut served = None;
            while picked.len() < limit && visited.len() < $crate::shared::claims::WALK_FLOWS {
                // The next flow with queued work, in key order (a skip to the next tenant when
                // this one is at its share).
                // Three seeks, one per column of the key: SQLite seeks a row value `(a, b, c) > …`
                // on its first column only, which walked a flow's whole backlog to get past it.
                let sql = if skip_tenant {
                    format!("SELECT tenant_id, integration, flow FROM executions {BY_FLOW_INDEX} WHERE {QUEUED_FREE} \
                             AND tenant_id > $1 ORDER BY tenant_id, integration, flow LIMIT 1")
                } else {
                    let arm = |n: u8, after: &str| {
                        format!("SELECT * FROM (SELECT {n} AS arm, tenant_id, integration, flow FROM executions {BY_FLOW_INDEX} \
                                 WHERE {QUEUED_FREE} AND {after} ORDER BY tenant_id, integration, flow LIMIT 1) AS a{n}")
                    };
                    format!(
                        "SELECT tenant_id, integration, flow FROM ({} UNION ALL {} UNION ALL {}) AS next ORDER BY arm LIMIT 1",
                        arm(1, "tenant_id = $1 AND integration = $2 AND flow > $3"),
                        arm(2, "tenant_id = $1 AND integration > $2"),
                        arm(3, "tenant_id > $1"),
                    )
                };
                let mut query = sqlx::query_as(&sql).bind(&after.0);
                if !skip_tenant {
                    query = query.bind(&after.1).bind(&after.2);
                }
                let next: Option<(String, String, String)> = query.fetch_optional(&mut *conn).await?;
                skip_tenant = false;
                let Some(flow) = next else {
                    if wrapped {
                        break;
                    }
                    // From the first flow on, up to where this walk began.
                    wrapped = true;
                    after = Default::default();
                    continue;
                };
                if !visited.insert(flow.clone()) {
                    break;
                }
                after = flow;
                let key = FlowKey { tenant: &after.0, integration: &after.1, flow: &after.2 };
                if room.tenant_full(key.tenant) {
                    skip_tenant = true;
                    continue;
                }
                let want = room.room(key).min(limit - picked.len());
                if want == 0 {
                    continue;
                }
                // The window may have taken some of this flow's oldest already.
                let seqs: Vec<(i64, bool)> = sqlx::query_as(&format!(
                    "SELECT seq, started_at IS NULL FROM executions {BY_FLOW_INDEX} WHERE {QUEUED_FREE} AND tenant_id = $1 \
                     AND integration = $2 AND flow = $3 AND run_after <= $4{lane} ORDER BY run_after, seq \
                     LIMIT $5{SKIP_LOCKED}"
                ))
                .bind(key.tenant)
                .bind(key.integration)
                .bind(key.flow)
                .bind(now)
                .bind((want + picked.len()) as i64)
                .fetch_all(&mut *conn)
                .await?;
                let mut took = false;
                for (seq, fresh) in seqs {
                    if picked.len() == limit {
                        break;
                    }
                    if picked.iter().any(|(p, _)| *p == seq) {
                        continue;
                    }
                    if !room.take(key) {
                        break;
                    }
                    picked.push((seq, fresh));
                    took = true;
                }
                if took {
                    served = Some(key.into());
                }
            }
            if let Some(served) = served
                && let Ok(mut cursor) = cursor.lock()
            {
                *cursor = Some(served);
            }
            Ok(())
        }
    };
}

pub(crate) use functions;
