//! Store conformance: the same tests against every backend.
//!
//! `conformance!(name, |store: SharedStore| async move { … })` (or `|ctx: Ctx|` for tests that
//! open more nodes) turns one body into `name::sqlite` (a file in a temporary directory) and
//! `name::postgres` (a schema of its own in `FLOWGATE_TEST_POSTGRES_URL`; skipped, and passing,
//! when that is unset).
//!
//! Run: `cargo test -p flowgate-store --test conformance`, with and without
//! `FLOWGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test`.
//!
//! Tests named `bug_…` show a defect of a backend: they fail until it is fixed.

mod common;

use common::*;
use flowgate_store::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Runs one test body on both backends (see the module documentation).
macro_rules! conformance {
    ($name:ident, |$store:ident : SharedStore| $body:expr) => {
        conformance!(@tests $name, |ctx| {
            let $store: SharedStore = ctx.store.clone();
            $body
        });
    };
    ($name:ident, |$ctx:ident : Ctx| $body:expr) => {
        conformance!(@tests $name, |ctx| {
            let $ctx: Ctx = ctx;
            $body
        });
    };
    (@tests $name:ident, |$ctx:ident| $make:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                common::run(common::Backend::Sqlite, |$ctx: common::Ctx| $make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match common::postgres_url() {
                    Some(url) => common::run(common::Backend::Postgres(url), |$ctx: common::Ctx| $make).await,
                    None => common::skip_or_fail("FLOWGATE_TEST_POSTGRES_URL is unset"),
                }
            }
        }
    };
}

fn ids(rows: &[ExecutionRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::Conflict(_)))
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::NotFound))
}

// =============================================================================================
// 1. Claims
// =============================================================================================

conformance!(claims_follow_run_after_then_commit_order, |store: SharedStore| async move {
    let v = setup(&store).await;
    // `x` is committed first but due last; `y` and `z` are due together, `y` committed first.
    insert(&store, vec![exec("x", v, T0 + 30), exec("y", v, T0 + 10)]).await;
    insert(&store, vec![exec("z", v, T0 + 10), exec("w", v, T0 + 20)]).await;
    insert(&store, vec![exec("later", v, T0 + 1_000)]).await;

    let now = T0 + 100;
    let mut order = Vec::new();
    for _ in 0..4 {
        let got = claim_ids(&store, "w1", now, 1).await;
        assert_eq!(got.len(), 1, "one due execution per claim of limit 1, got {got:?}");
        order.extend(got);
    }
    assert_eq!(order, ["y", "z", "w", "x"]);

    // Not due yet: not claimed, whatever the limit.
    assert!(claim_ids(&store, "w1", now, 10).await.is_empty());
    assert!(claim_ids(&store, "w1", T0 + 999, 10).await.is_empty());
    assert_eq!(store.queue_depth().await.unwrap().queued, 1);
    // Due at `run_after` exactly.
    assert_eq!(claim_ids(&store, "w1", T0 + 1_000, 10).await, ["later"]);
    assert!(claim_ids(&store, "w1", T0 + 99_999, 10).await.is_empty());
});

conformance!(claims_respect_the_limit_and_lease_to_the_owner, |store: SharedStore| async move {
    let v = setup(&store).await;
    let replay = NewExecution { trigger_kind: "replay", replay_of: Some("a".into()), ..exec("b", v, T0) };
    insert(&store, vec![exec("a", v, T0), replay, exec("c", v, T0), exec("d", v, T0), exec("e", v, T0)]).await;

    assert!(store.claim("w1", T0, T0 + 1, 0).await.unwrap().is_empty(), "limit 0 claims nothing");
    assert_eq!(store.queue_depth().await.unwrap().queued, 5);

    let claimed = store.claim("w1", T0 + 5, T0 + 60_000, 3).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(claimed.windows(2).all(|w| w[0].seq < w[1].seq), "claims come back in seq order");
    let a = &claimed[0];
    assert_eq!(
        (a.tenant_id.as_str(), a.integration.as_str(), a.flow.as_str(), a.version_id),
        (TENANT, INTEGRATION, FLOW, v)
    );
    assert_eq!(a.trigger_kind, "webhook");
    assert_eq!(a.trigger, "{\"id\":\"a\"}");
    assert_eq!(a.auth_label.as_deref(), Some("ci-key"));
    assert_eq!((a.attempt, a.created_at), (1, T0));
    assert_eq!(a.replay_of, None);
    assert_eq!(claimed[1].trigger_kind, "replay");
    assert_eq!(claimed[1].replay_of.as_deref(), Some("a"));
    assert_eq!(row(&store, "a").await.seq, a.seq);

    for id in ["a", "b", "c"] {
        let r = row(&store, id).await;
        assert_eq!(r.status(), Status::Running, "{id}");
        assert_eq!(r.started_at, Some(T0 + 5), "{id}: started when claimed");
        assert_eq!(r.finished_at, None);
    }
    for id in ["d", "e"] {
        let r = row(&store, id).await;
        assert_eq!((r.status(), r.started_at), (Status::Queued, None), "{id}");
    }
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (2, 3));

    // The leases are w1's, and only w1's.
    assert_eq!(renew_all(&store, "w2", T0 + 90_000).await, 0);
    assert_eq!(renew_all(&store, "w1", T0 + 90_000).await, 3);
    // Claimed executions are not claimed again.
    assert_eq!(claim_ids(&store, "w2", T0 + 5, 10).await, ["d", "e"]);
    assert!(claim_ids(&store, "w3", T0 + 5, 10).await.is_empty());
    assert_eq!(renew_all(&store, "w2", T0 + 90_000).await, 2);
});

conformance!(concurrent_claims_take_each_execution_exactly_once, |store: SharedStore| async move {
    const N: usize = 200;
    const WORKERS: usize = 8;
    let v = setup(&store).await;
    let all: Vec<String> = (0..N).map(|i| format!("c{i:03}")).collect();
    for chunk in all.chunks(50) {
        insert(&store, chunk.iter().map(|id| exec(id, v, T0)).collect()).await;
    }

    let barrier = Arc::new(tokio::sync::Barrier::new(WORKERS));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            barrier.wait().await;
            loop {
                let got = store.claim(&owner, T0 + 1, T0 + 60_000, 7).await.unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|c| c.id));
                tokio::task::yield_now().await;
            }
            (owner, mine)
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut per_owner = Vec::new();
    for t in tasks {
        let (owner, mine) = t.await.unwrap();
        total += mine.len();
        for id in &mine {
            assert!(seen.insert(id.clone()), "{id} was claimed twice (again by {owner})");
        }
        per_owner.push((owner, mine.len()));
    }
    assert_eq!(total, N, "claims per worker: {per_owner:?}");
    assert_eq!(seen, all.iter().cloned().collect::<HashSet<_>>(), "every execution claimed");
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (0, N as i64));
    // Each execution is leased to the worker that got it back from `claim`.
    for (owner, n) in per_owner {
        assert_eq!(renew_all(&store, &owner, T0 + 120_000).await, n as u64, "{owner}");
    }
});

// =============================================================================================
// 2. Fencing and responses
// =============================================================================================

conformance!(finish_is_fenced_by_the_lease_owner, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert_ids(&store, v, &["e1", "q1"]).await;
    assert_eq!(claim_ids(&store, "w1", T0 + 1, 1).await, ["e1"]);

    let failed = Finish {
        id: "e1".into(),
        owner: "w2".into(),
        status: Status::Failed,
        output: Some("{\"o\":1}".into()),
        response: Some("{\"r\":1}".into()),
        error: Some("{\"code\":\"boom\"}".into()),
        failed_step: Some("charge".into()),
        finished_at: T0 + 50,
        holds_order: false,
        scrub: flowgate_store::Scrub::Keep,
    };
    // Another owner: nothing changes.
    store.commit(&WriteBatch { finishes: vec![failed.clone()], ..WriteBatch::default() }).await.unwrap();
    let r = row(&store, "e1").await;
    assert_eq!(r.status(), Status::Running);
    assert_eq!((r.output, r.response, r.error, r.failed_step, r.finished_at), (None, None, None, None, None));
    assert_eq!(renew_all(&store, "w1", T0 + 70_000).await, 1, "w1 still holds the lease");

    // Nobody holds a queued execution's lease: it cannot be finished.
    commit_finishes(&store, vec![finish("q1", "w1", Status::Succeeded, T0 + 50)]).await;
    let q = row(&store, "q1").await;
    assert_eq!((q.status(), q.finished_at), (Status::Queued, None));

    // The holder: every field is written and the lease is cleared.
    store
        .commit(&WriteBatch { finishes: vec![Finish { owner: "w1".into(), ..failed }], ..WriteBatch::default() })
        .await
        .unwrap();
    let r = row(&store, "e1").await;
    assert_eq!(r.status(), Status::Failed);
    assert_eq!(r.output.as_deref(), Some("{\"o\":1}"));
    assert_eq!(r.response.as_deref(), Some("{\"r\":1}"));
    assert_eq!(r.error.as_deref(), Some("{\"code\":\"boom\"}"));
    assert_eq!(r.failed_step.as_deref(), Some("charge"));
    assert_eq!(r.finished_at, Some(T0 + 50));
    assert_eq!(renew_all(&store, "w1", T0 + 80_000).await, 0, "the lease is cleared");

    // A late finish from the former holder changes nothing.
    commit_finishes(&store, vec![finish("e1", "w1", Status::Succeeded, T0 + 99)]).await;
    let r = row(&store, "e1").await;
    assert_eq!((r.status(), r.finished_at), (Status::Failed, Some(T0 + 50)));
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (1, 0));
});

conformance!(park_is_fenced_by_the_lease_owner, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert_ids(&store, v, &["e1"]).await;
    assert_eq!(claim_ids(&store, "w1", T0 + 1, 1).await, ["e1"]);

    let park = |owner: &str, run_after: i64| WriteBatch {
        parks: vec![Park { id: "e1".into(), owner: owner.into(), run_after }],
        ..WriteBatch::default()
    };
    store.commit(&park("w2", T0 + 5_000)).await.unwrap();
    let r = row(&store, "e1").await;
    assert_eq!((r.status(), r.run_after), (Status::Running, T0));
    assert_eq!(renew_all(&store, "w1", T0 + 60_000).await, 1);

    store.commit(&park("w1", T0 + 5_000)).await.unwrap();
    let r = row(&store, "e1").await;
    assert_eq!(r.status(), Status::Queued);
    assert_eq!(r.run_after, T0 + 5_000);
    assert_eq!(r.started_at, Some(T0 + 1), "parking keeps the first start");
    assert_eq!((r.attempt, r.finished_at), (1, None));
    assert_eq!(renew_all(&store, "w1", T0 + 60_000).await, 0, "the lease is cleared");
    assert_eq!(store.next_due().await.unwrap(), Some(T0 + 5_000));

    assert!(claim_ids(&store, "w3", T0 + 4_999, 10).await.is_empty());
    assert_eq!(claim_ids(&store, "w3", T0 + 5_000, 10).await, ["e1"]);
    assert_eq!(row(&store, "e1").await.started_at, Some(T0 + 1));

    // The former holder can no longer park it.
    store.commit(&park("w1", T0 + 9_000)).await.unwrap();
    let r = row(&store, "e1").await;
    assert_eq!((r.status(), r.run_after), (Status::Running, T0 + 5_000));
    assert_eq!(renew_all(&store, "w3", T0 + 60_000).await, 1);
});

conformance!(a_response_is_kept_by_a_finish_without_one, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert_ids(&store, v, &["e1", "e2"]).await;
    assert_eq!(claim_ids(&store, "w1", T0 + 1, 10).await, ["e1", "e2"]);

    let batch = WriteBatch {
        steps: vec![step("e1", "reply", 1, "succeeded", None, Some("{}"))],
        responses: vec![Responded { id: "e1".into(), response: "{\"status\":201}".into() }],
        events: vec![StoreEvent::Responded { id: "e1".into() }],
        ..WriteBatch::default()
    };
    store.commit(&batch).await.unwrap();
    let r = row(&store, "e1").await;
    assert_eq!((r.status(), r.response.as_deref()), (Status::Running, Some("{\"status\":201}")));
    assert_eq!(row(&store, "e2").await.response, None);

    let mut done = finish("e1", "w1", Status::Succeeded, T0 + 9);
    done.output = Some("{\"done\":true}".into());
    commit_finishes(&store, vec![done]).await;
    let r = row(&store, "e1").await;
    assert_eq!(r.status(), Status::Succeeded);
    assert_eq!(r.output.as_deref(), Some("{\"done\":true}"));
    assert_eq!(r.response.as_deref(), Some("{\"status\":201}"), "COALESCE keeps the stored response");

    // A finish that carries a response stores it.
    let mut done = finish("e2", "w1", Status::Succeeded, T0 + 9);
    done.response = Some("{\"b\":2}".into());
    commit_finishes(&store, vec![done]).await;
    assert_eq!(row(&store, "e2").await.response.as_deref(), Some("{\"b\":2}"));
});

// =============================================================================================
// 3. Leases
// =============================================================================================

conformance!(renew_leases_extends_only_the_owners_running_rows, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(
        &store,
        vec![
            running_exec("a", v, "w1", T0 + 100),
            running_exec("b", v, "w1", T0 + 100),
            running_exec("c", v, "w2", T0 + 100),
            exec("q", v, T0),
        ],
    )
    .await;
    let a = row(&store, "a").await;
    assert_eq!((a.status(), a.started_at), (Status::Running, Some(T0)), "inserted running: started at creation");

    assert_eq!(renew_all(&store, "w1", T0 + 10_000).await, 2);
    assert_eq!(renew_all(&store, "nobody", T0 + 10_000).await, 0);
    // Only c's lease is still the old one.
    assert_eq!(store.reap_expired(T0 + 5_000).await.unwrap(), 1);
    assert_eq!(row(&store, "c").await.status(), Status::Queued);
    assert_eq!(row(&store, "a").await.status(), Status::Running);
    assert_eq!(row(&store, "b").await.status(), Status::Running);

    // A finished row is not renewed.
    commit_finishes(&store, vec![finish("a", "w1", Status::Succeeded, T0 + 200)]).await;
    assert_eq!(renew_all(&store, "w1", T0 + 20_000).await, 1);
    // Renewed leases really moved: nothing expires before the new deadline.
    assert_eq!(store.reap_expired(T0 + 20_000).await.unwrap(), 0);
    assert_eq!(store.reap_expired(T0 + 20_001).await.unwrap(), 1);
    assert_eq!(row(&store, "b").await.status(), Status::Queued);
});

conformance!(reap_expired_requeues_only_expired_running_rows, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(
        &store,
        vec![running_exec("r1", v, "w1", T0 + 100), running_exec("r2", v, "w2", T0 + 200), exec("q", v, T0 + 50)],
    )
    .await;
    run_to_end(&store, v, "done", Status::Succeeded, T0 + 10).await;

    assert_eq!(store.reap_expired(T0 + 100).await.unwrap(), 0, "a lease ending now has not expired");
    assert_eq!(store.reap_expired(T0 + 101).await.unwrap(), 1);
    let r1 = row(&store, "r1").await;
    assert_eq!((r1.status(), r1.run_after, r1.attempt), (Status::Queued, T0, 1));
    assert_eq!(row(&store, "r2").await.status(), Status::Running);
    assert_eq!(row(&store, "q").await.status(), Status::Queued);
    assert_eq!(row(&store, "done").await.status(), Status::Succeeded);

    // The former holder lost it: its finish is ignored.
    commit_finishes(&store, vec![finish("r1", "w1", Status::Succeeded, T0 + 120)]).await;
    assert_eq!(row(&store, "r1").await.status(), Status::Queued);

    // Claimable again, in its old place.
    assert_eq!(claim_ids(&store, "w3", T0 + 150, 10).await, ["r1", "q"]);
    assert_eq!(store.reap_expired(T0 + 201).await.unwrap(), 1, "only r2 (r1 and q are w3's until later)");
    assert_eq!(row(&store, "r2").await.status(), Status::Queued);
    assert_eq!(row(&store, "done").await.status(), Status::Succeeded);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (1, 2));
});

conformance!(release_leases_requeues_the_owners_rows_keeping_run_after, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(&store, vec![exec("x", v, T0 + 5), exec("y", v, T0 + 1), exec("z", v, T0 + 9)]).await;
    assert_eq!(claim_ids(&store, "w1", T0 + 10, 2).await, ["x", "y"]);
    assert_eq!(claim_ids(&store, "w2", T0 + 10, 2).await, ["z"]);

    assert_eq!(store.release_leases("w1", T0 + 20).await.unwrap(), 2);
    let x = row(&store, "x").await;
    assert_eq!((x.status(), x.run_after), (Status::Queued, T0 + 5));
    let y = row(&store, "y").await;
    assert_eq!((y.status(), y.run_after), (Status::Queued, T0 + 1));
    assert_eq!(row(&store, "z").await.status(), Status::Running);
    assert_eq!(renew_all(&store, "w1", T0 + 60_000).await, 0);
    assert_eq!(renew_all(&store, "w2", T0 + 60_000).await, 1);
    assert_eq!(store.release_leases("w1", T0 + 30).await.unwrap(), 0);

    // They keep their place in the queue.
    assert_eq!(claim_ids(&store, "w3", T0 + 40, 1).await, ["y"]);
    assert_eq!(claim_ids(&store, "w3", T0 + 40, 1).await, ["x"]);
});

conformance!(renew_leases_extends_only_the_named_executions, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(&store, vec![running_exec("a", v, "w1", T0 + 100), running_exec("b", v, "w1", T0 + 100)]).await;
    // `b` is held by w1 but not run by it (an insert whose commit was in doubt): not renewed.
    assert_eq!(store.renew_leases("w1", &["a".to_owned(), "nope".to_owned()], T0 + 10_000).await.unwrap(), 1);
    assert_eq!(store.renew_leases("w2", &["a".to_owned()], T0 + 10_000).await.unwrap(), 0);
    assert_eq!(store.renew_leases("w1", &[], T0 + 10_000).await.unwrap(), 0);
    assert_eq!(store.reap_expired(T0 + 5_000).await.unwrap(), 1);
    assert_eq!((row(&store, "a").await.status(), row(&store, "b").await.status()), (Status::Running, Status::Queued));
});

conformance!(release_lease_hands_back_one_execution_without_counting_a_crash, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(&store, vec![running_exec("a", v, "w1", T0 + 100), running_exec("b", v, "w1", T0 + 100)]).await;
    assert!(!store.release_lease("w2", "a").await.unwrap(), "not w2's");
    assert!(store.release_lease("w1", "a").await.unwrap());
    assert!(!store.release_lease("w1", "a").await.unwrap(), "already handed back");
    let a = row(&store, "a").await;
    assert_eq!((a.status(), a.crashes), (Status::Queued, 0));
    assert_eq!(row(&store, "b").await.status(), Status::Running);
    assert_eq!(claim_ids(&store, "w2", T0 + 10, 10).await, ["a"]);
});

conformance!(reaping_counts_crashes_and_progress_resets_the_count, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(&store, vec![running_exec("p", v, "w1", T0 + 100)]).await;
    // A node died under it without it writing anything: one crash.
    assert_eq!(store.reap_expired(T0 + 101).await.unwrap(), 1);
    assert_eq!(row(&store, "p").await.crashes, 1);
    let claimed = store.claim("w2", T0 + 200, T0 + 300, 10).await.unwrap();
    assert_eq!((claimed[0].id.as_str(), claimed[0].crashes), ("p", 1));
    // Again at the same point: two in a row.
    assert_eq!(store.reap_expired(T0 + 301).await.unwrap(), 1);
    let claimed = store.claim("w3", T0 + 400, T0 + 500, 10).await.unwrap();
    assert_eq!(claimed[0].crashes, 2);
    // It made progress (a journal entry) before the next crash: the count starts again.
    let batch = WriteBatch { steps: vec![step("p", "s1", 1, "succeeded", None, Some("1"))], ..WriteBatch::default() };
    store.commit(&batch).await.unwrap();
    assert_eq!(store.reap_expired(T0 + 501).await.unwrap(), 1);
    assert_eq!(row(&store, "p").await.crashes, 1);
    // A person's retry starts from zero.
    assert_eq!(claim_ids(&store, "w1", T0 + 600, 10).await, ["p"]);
    commit_finishes(&store, vec![finish("p", "w1", Status::Failed, T0 + 650)]).await;
    let retried = store.retry_execution(TENANT, "p", T0 + 700).await.unwrap();
    assert_eq!((retried.status(), retried.crashes), (Status::Queued, 0));
});

/// The shares of a node's workers (issue 12) as a claim sees them: `acme/shop/orders` runs 4
/// of its 5, `acme` 4 of its 10.
fn shares(tenant_running: usize, flow_running: usize) -> ShareRoom {
    ShareRoom {
        tenant_cap: 10,
        flow_cap: 5,
        tenants: [(TENANT.to_owned(), tenant_running)].into(),
        flows: [(ShareRoom::flow_key(KEY), flow_running)].into(),
    }
}

conformance!(claims_take_no_more_than_a_share_has_room_for, |store: SharedStore| async move {
    let v = setup(&store).await;
    let g = setup_tenant(&store, "globex").await;
    // A deep backlog of one flow (more than a claim looks at from the head of the queue), then
    // a little of another flow of the same tenant and of another tenant, all due.
    let deep: Vec<NewExecution> = (0..400).map(|n| exec(&format!("deep{n:03}"), v, T0)).collect();
    for chunk in deep.chunks(100) {
        insert(&store, chunk.to_vec()).await;
    }
    let other = |id: &str| NewExecution { flow: "other".into(), ..exec(id, v, T0 + 1) };
    let globex = |id: &str| NewExecution { tenant_id: "globex".into(), ..exec(id, g, T0 + 2) };
    insert(&store, vec![other("o1"), other("o2"), other("o3"), globex("g1"), globex("g2")]).await;

    let claim = |shares: ShareRoom| {
        let store = store.clone();
        async move {
            let filter = ClaimFilter::new(0..i64::MAX, shares);
            let claimed = store.claim_in("w1", T0 + 10, T0 + 60_000, 64, &filter).await.unwrap();
            claimed.into_iter().map(|c| c.id).collect::<Vec<_>>()
        }
    };
    // The deep flow has room for one more, its tenant for six: the other flow's three are
    // found behind the backlog, and the other tenant's two.
    assert_eq!(claim(shares(4, 4)).await, ["deep000", "o1", "o2", "o3", "g1", "g2"]);
    insert(&store, vec![other("o4"), globex("g3")]).await;
    // The deep flow at its share: none of it, the rest as before.
    assert_eq!(claim(shares(4, 5)).await, ["o4", "g3"]);
    insert(&store, vec![other("o5"), globex("g4")]).await;
    // The tenant at its share: only the other tenant's.
    assert_eq!(claim(shares(10, 0)).await, ["g4"]);
    // No shares: a claim takes the oldest, whatever their flow.
    let all = claim(ShareRoom::default()).await;
    assert_eq!(all.len(), 64);
    assert_eq!(all[..2], ["deep001", "deep002"]);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (400 - 65 + 1, 64 + 6 + 2 + 1), "o5 waits with the rest");
});

conformance!(flows_behind_a_busy_backlog_take_turns, |store: SharedStore| async move {
    let v = setup(&store).await;
    // The busy flow's backlog fills the head of the queue; two other flows wait behind it.
    let of = |flow: &str, n: usize| -> Vec<NewExecution> {
        (0..n).map(|i| NewExecution { flow: flow.into(), ..exec(&format!("{flow}{i:03}"), v, T0) }).collect()
    };
    insert(&store, of("busy", 100)).await;
    insert(&store, of("b", 20)).await;
    insert(&store, of("c", 20)).await;
    let busy = ShareRoom {
        tenant_cap: 1_000,
        flow_cap: 2,
        tenants: HashMap::new(),
        flows: [(ShareRoom::flow_key(FlowKey { tenant: TENANT, integration: INTEGRATION, flow: "busy" }), 2)].into(),
    };
    let mut rounds = Vec::new();
    for _ in 0..4 {
        let filter = ClaimFilter::new(0..i64::MAX, busy.clone());
        let claimed = store.claim_in("w1", T0 + 10, T0 + 60_000, 2, &filter).await.unwrap();
        rounds.push(claimed.into_iter().map(|c| c.id).collect::<Vec<_>>());
    }
    // Each claim goes on after the flow the last one served: the two flows take turns, each
    // oldest first, and the busy flow gets nothing.
    assert_eq!(rounds, [["b000", "b001"], ["c000", "c001"], ["b002", "b003"], ["c002", "c003"]]);
});

conformance!(next_due_and_queue_depth, |store: SharedStore| async move {
    let v = setup(&store).await;
    assert_eq!(store.next_due().await.unwrap(), None);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (0, 0));

    insert(&store, vec![exec("a", v, T0 + 50), exec("b", v, T0 + 30), exec("c", v, T0 + 70)]).await;
    assert_eq!(store.next_due().await.unwrap(), Some(T0 + 30));
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (3, 0));

    assert_eq!(claim_ids(&store, "w1", T0 + 40, 10).await, ["b"]);
    assert_eq!(store.next_due().await.unwrap(), Some(T0 + 50));
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (2, 1));

    commit_finishes(&store, vec![finish("b", "w1", Status::Succeeded, T0 + 45)]).await;
    store.cancel_execution(TENANT, "a", T0 + 46).await.unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(T0 + 70));
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (1, 0));

    // A running execution counts as running, and its run_after is not "due".
    insert(&store, vec![running_exec("r", v, "w1", T0 + 60_000)]).await;
    assert_eq!(store.next_due().await.unwrap(), Some(T0 + 70));
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (1, 1));
});

conformance!(expire_all_leases_only_on_a_single_owner_store, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(&store, vec![running_exec("a", v, "w1", T0 + 60_000), exec("q", v, T0)]).await;
    if store.shared() {
        // Live nodes hold the leases of a shared store: it refuses.
        assert!(store.expire_all_leases().await.is_err());
        assert_eq!(store.reap_expired(T0).await.unwrap(), 0);
        assert_eq!(row(&store, "a").await.status(), Status::Running);
    } else {
        assert_eq!(store.expire_all_leases().await.unwrap(), 1);
        assert_eq!(row(&store, "a").await.status(), Status::Running);
        assert_eq!(store.reap_expired(T0).await.unwrap(), 1);
        assert_eq!(row(&store, "a").await.status(), Status::Queued);
    }
});

// =============================================================================================
// 4. Batches, journal, logs
// =============================================================================================

conformance!(one_batch_carries_every_kind_of_write, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(&store, vec![running_exec("p1", v, "w1", T0 + 60_000), running_exec("p2", v, "w1", T0 + 60_000)]).await;

    let batch = WriteBatch {
        inserts: vec![exec("n1", v, T0), exec("n2", v, T0 + 10)],
        steps: vec![
            step("p1", "a", 1, "succeeded", Some("{\"in\":1}"), Some("1")),
            step("p1", "b", 2, "succeeded", None, Some("2")),
        ],
        logs: vec![log("p1", T0 + 1, "one"), log("p1", T0 + 2, "two")],
        finishes: vec![Finish { output: Some("2".into()), ..finish("p1", "w1", Status::Succeeded, T0 + 30) }],
        parks: vec![Park { id: "p2".into(), owner: "w1".into(), run_after: T0 + 500 }],
        responses: vec![Responded { id: "p1".into(), response: "{\"ok\":true}".into() }],
        events: vec![StoreEvent::Work, StoreEvent::Finished { id: "p1".into() }],
        states: vec![state(FLOW, "{}", T0)],
        deliveries: vec![NewDelivery {
            id: "p1:a:1".into(),
            tenant_id: TENANT.into(),
            integration: INTEGRATION.into(),
            flow: FLOW.into(),
            execution_id: Some("p1".into()),
            step_id: Some("a".into()),
            kind: "webhook".into(),
            name: "crm".into(),
            request: "{}".into(),
            message_id: "msg_1".into(),
            schedule: "[0]".into(),
            next_at: T0,
            created_at: T0,
        }],
    };
    store.commit(&batch).await.unwrap();
    assert!(store.trigger_state(KEY).await.unwrap().is_some());
    assert_eq!(store.deliveries_of("p1").await.unwrap().len(), 1);

    assert_eq!(row(&store, "n1").await.status(), Status::Queued);
    assert_eq!(row(&store, "n2").await.run_after, T0 + 10);
    let p1 = row(&store, "p1").await;
    assert_eq!(p1.status(), Status::Succeeded);
    assert_eq!(p1.output.as_deref(), Some("2"));
    assert_eq!(p1.response.as_deref(), Some("{\"ok\":true}"));
    assert_eq!(p1.finished_at, Some(T0 + 30));
    let p2 = row(&store, "p2").await;
    assert_eq!((p2.status(), p2.run_after), (Status::Queued, T0 + 500));
    let journal = store.journal("p1").await.unwrap();
    assert_eq!(journal.iter().map(|s| s.step_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let logs = store.logs("p1").await.unwrap();
    assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["one", "two"]);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (3, 0));
});

conformance!(a_failed_batch_writes_nothing, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert(&store, vec![exec("dup", v, T0), running_exec("p", v, "w1", T0 + 60_000)]).await;

    // Several statements, the insert fails (duplicate id): the transaction writes nothing.
    let batch = WriteBatch {
        inserts: vec![exec("fresh", v, T0), exec("dup", v, T0)],
        steps: vec![step("p", "a", 1, "succeeded", None, Some("1"))],
        logs: vec![log("p", T0, "hello")],
        finishes: vec![finish("p", "w1", Status::Succeeded, T0 + 1)],
        responses: vec![Responded { id: "p".into(), response: "{}".into() }],
        ..WriteBatch::default()
    };
    assert!(store.commit(&batch).await.is_err(), "a duplicate execution id must fail the batch");
    assert!(store.execution(None, "fresh").await.unwrap().is_none());
    assert!(store.journal("p").await.unwrap().is_empty());
    assert!(store.logs("p").await.unwrap().is_empty());
    let p = row(&store, "p").await;
    assert_eq!((p.status(), p.response), (Status::Running, None));

    // One multi-row statement is atomic too.
    let batch = WriteBatch { inserts: vec![exec("f2", v, T0), exec("dup", v, T0)], ..WriteBatch::default() };
    assert!(store.commit(&batch).await.is_err());
    assert!(store.execution(None, "f2").await.unwrap().is_none());
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (1, 1));

    // The store still works after a failed batch.
    store.commit(&WriteBatch { inserts: vec![exec("f3", v, T0)], ..WriteBatch::default() }).await.unwrap();
    assert_eq!(row(&store, "f3").await.status(), Status::Queued);
});

conformance!(batches_larger_than_one_statement, |store: SharedStore| async move {
    const N: usize = 150; // > 2 × 64 rows: three statements of each kind
    let v = setup(&store).await;
    let all: Vec<String> = (0..N).map(|i| format!("b{i:03}")).collect();
    let batch = WriteBatch {
        inserts: all.iter().map(|id| exec(id, v, T0)).collect(),
        steps: (0..N).map(|i| step("b000", &format!("s{i:03}"), i as i64 + 1, "succeeded", None, Some("1"))).collect(),
        // `at` decreases: the order of the logs is the order they were written, not their time.
        logs: (0..N).map(|i| log("b000", T0 + 1_000 - i as i64, &format!("line {i}"))).collect(),
        ..WriteBatch::default()
    };
    store.commit(&batch).await.unwrap();
    assert_eq!(store.queue_depth().await.unwrap().queued, N as i64);
    let journal = store.journal("b000").await.unwrap();
    assert_eq!(journal.len(), N);
    assert!(journal.iter().enumerate().all(|(i, s)| s.seq == i as i64 + 1 && s.step_id == format!("s{i:03}")));
    let logs = store.logs("b000").await.unwrap();
    let expected: Vec<String> = (0..N).map(|i| format!("line {i}")).collect();
    assert_eq!(logs.iter().map(|l| l.message.clone()).collect::<Vec<_>>(), expected);

    // Commit order is the order within the batch, across its statements.
    let claimed = store.claim("w1", T0, T0 + 60_000, 1_000).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), all);

    // 100 finishes and 50 parks in one batch (more than one statement each).
    let batch = WriteBatch {
        finishes: all[..100].iter().map(|id| finish(id, "w1", Status::Succeeded, T0 + 5)).collect(),
        parks: all[100..].iter().map(|id| Park { id: id.clone(), owner: "w1".into(), run_after: T0 + 77 }).collect(),
        ..WriteBatch::default()
    };
    store.commit(&batch).await.unwrap();
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (50, 0));
    let page = store
        .executions(&ExecutionQuery {
            tenant: TENANT.into(),
            status: Some(Status::Succeeded),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(row(&store, "b149").await.run_after, T0 + 77);
    assert_eq!(row(&store, "b064").await.finished_at, Some(T0 + 5));

    // A failure in the third statement undoes the first two.
    let mut inserts: Vec<NewExecution> = (0..130).map(|i| exec(&format!("n{i:03}"), v, T0)).collect();
    inserts[129].id = "b000".into();
    assert!(store.commit(&WriteBatch { inserts, ..WriteBatch::default() }).await.is_err());
    assert!(store.execution(None, "n000").await.unwrap().is_none());
    assert!(store.execution(None, "n100").await.unwrap().is_none());
    assert_eq!(store.queue_depth().await.unwrap().queued, 50);
});

conformance!(single_statement_batches, |store: SharedStore| async move {
    let v = setup(&store).await;
    store.commit(&WriteBatch::default()).await.unwrap();
    assert_eq!(store.queue_depth().await.unwrap().queued, 0);

    // Each of these batches is one statement (no transaction around it).
    let b = WriteBatch {
        inserts: vec![
            exec("q", v, T0),
            running_exec("r1", v, "w1", T0 + 60_000),
            running_exec("e", v, "w1", T0 + 60_000),
        ],
        ..WriteBatch::default()
    };
    store.commit(&b).await.unwrap();
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (1, 2));

    let b = WriteBatch { steps: vec![step("e", "a", 1, "succeeded", None, Some("1"))], ..WriteBatch::default() };
    store.commit(&b).await.unwrap();
    assert_eq!(store.journal("e").await.unwrap().len(), 1);
    let b = WriteBatch { logs: vec![log("e", T0, "hi")], ..WriteBatch::default() };
    store.commit(&b).await.unwrap();
    assert_eq!(store.logs("e").await.unwrap().len(), 1);
    let b = WriteBatch {
        responses: vec![Responded { id: "e".into(), response: "\"yes\"".into() }],
        ..WriteBatch::default()
    };
    store.commit(&b).await.unwrap();
    assert_eq!(row(&store, "e").await.response.as_deref(), Some("\"yes\""));
    let b = WriteBatch { events: vec![StoreEvent::Work], ..WriteBatch::default() };
    store.commit(&b).await.unwrap();
    let b = WriteBatch {
        parks: vec![Park { id: "r1".into(), owner: "w1".into(), run_after: T0 + 9 }],
        ..WriteBatch::default()
    };
    store.commit(&b).await.unwrap();
    assert_eq!(row(&store, "r1").await.run_after, T0 + 9);
    commit_finishes(&store, vec![finish("e", "w1", Status::Filtered, T0 + 3)]).await;
    let e = row(&store, "e").await;
    assert_eq!((e.status(), e.finished_at, e.response.as_deref()), (Status::Filtered, Some(T0 + 3), Some("\"yes\"")));
    let depth = store.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (2, 0));
    assert_eq!(store.next_due().await.unwrap(), Some(T0));
});

conformance!(journal_is_ordered_by_seq_and_fill_inputs_restores_inputs, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert_ids(&store, v, &["e", "other"]).await;
    let trigger = row(&store, "e").await.trigger;

    let failed = StepRecord { error: Some("{\"code\":\"http\"}".into()), ..step("e", "b", 2, "failed", None, None) };
    let retried = StepRecord { attempt: 2, ..step("e", "b", 3, "succeeded", None, Some("2")) };
    let switch =
        StepRecord { response: Some("{\"r\":1}".into()), ..step("e", "sw", 4, "succeeded", Some("9"), Some("3")) };
    // Committed out of order, over two batches.
    let first = WriteBatch {
        steps: vec![
            retried,
            step("e", "c", 5, "skipped", None, Some("3")),
            step("e", "a", 1, "succeeded", None, Some("1")),
        ],
        ..WriteBatch::default()
    };
    store.commit(&first).await.unwrap();
    let second = WriteBatch {
        steps: vec![switch, failed, step("other", "a", 1, "succeeded", Some("{}"), Some("0"))],
        ..WriteBatch::default()
    };
    store.commit(&second).await.unwrap();

    let mut journal = store.journal("e").await.unwrap();
    assert_eq!(journal.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(
        journal.iter().map(|s| (s.step_id.as_str(), s.attempt, s.status.as_str())).collect::<Vec<_>>(),
        [("a", 1, "succeeded"), ("b", 1, "failed"), ("b", 2, "succeeded"), ("sw", 1, "succeeded"), ("c", 1, "skipped")]
    );
    assert!(journal.iter().all(|s| s.execution_id == "e" && s.round == 1));
    assert_eq!(journal[1].error.as_deref(), Some("{\"code\":\"http\"}"));
    assert_eq!(journal[3].response.as_deref(), Some("{\"r\":1}"));
    assert_eq!((journal[2].started_at, journal[2].finished_at), (T0 + 30, T0 + 35));
    assert_eq!(journal[0].input, None, "omitted inputs stay omitted in the store");

    fill_inputs(&mut journal, &trigger);
    let inputs: Vec<_> = journal.iter().map(|s| s.input.clone().unwrap()).collect();
    assert_eq!(inputs, [trigger.as_str(), "1", "1", "9", "3"]);

    // A later round, and an attempt recorded again (a resumed step) replaces the old one.
    let next = WriteBatch {
        steps: vec![
            StepRecord { round: 2, ..step("e", "b", 6, "succeeded", None, Some("4")) },
            StepRecord { output: Some("2b".into()), attempt: 2, ..step("e", "b", 3, "succeeded", None, None) },
        ],
        ..WriteBatch::default()
    };
    store.commit(&next).await.unwrap();
    let journal = store.journal("e").await.unwrap();
    assert_eq!(journal.len(), 6);
    assert_eq!(journal[2].output.as_deref(), Some("2b"));
    assert_eq!((journal[5].round, journal[5].seq), (2, 6));
    assert_eq!(store.journal("other").await.unwrap().len(), 1);
    assert!(store.journal("nope").await.unwrap().is_empty());
});

conformance!(logs_come_back_in_the_order_written, |store: SharedStore| async move {
    let v = setup(&store).await;
    insert_ids(&store, v, &["e", "other"]).await;
    let batch = WriteBatch {
        logs: vec![
            log("e", T0 + 30, "first"),
            log("e", T0 + 10, "second"),
            log("other", T0, "x"),
            log("e", T0 + 20, "third"),
        ],
        ..WriteBatch::default()
    };
    store.commit(&batch).await.unwrap();
    let batch = WriteBatch {
        logs: vec![LogRecord {
            execution_id: "e".into(),
            at: T0 + 5,
            level: "warn".into(),
            step_id: None,
            message: "fourth".into(),
        }],
        ..WriteBatch::default()
    };
    store.commit(&batch).await.unwrap();

    let logs = store.logs("e").await.unwrap();
    assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["first", "second", "third", "fourth"]);
    assert_eq!(logs.iter().map(|l| l.at - T0).collect::<Vec<_>>(), [30, 10, 20, 5]);
    assert!(logs.iter().all(|l| l.execution_id == "e"));
    assert_eq!((logs[0].level.as_str(), logs[0].step_id.as_deref()), ("info", Some("log")));
    assert_eq!((logs[3].level.as_str(), logs[3].step_id.as_deref()), ("warn", None));
    assert_eq!(store.logs("other").await.unwrap().len(), 1);
    assert!(store.logs("nope").await.unwrap().is_empty());
});

// =============================================================================================
// 5. Executions API
// =============================================================================================

conformance!(execution_lookup_is_restricted_by_tenant, |store: SharedStore| async move {
    let v = setup(&store).await;
    let vg = setup_tenant(&store, "globex").await;
    let replay = NewExecution { trigger_kind: "replay", replay_of: Some("orig".into()), ..exec("a", v, T0 + 7) };
    insert(&store, vec![replay, NewExecution { tenant_id: "globex".into(), ..exec("g", vg, T0) }]).await;

    let a = store.execution(Some(TENANT), "a").await.unwrap().expect("own execution");
    assert!(a.seq > 0);
    assert_eq!(
        (a.id.as_str(), a.tenant_id.as_str(), a.integration.as_str(), a.flow.as_str()),
        ("a", TENANT, INTEGRATION, FLOW)
    );
    assert_eq!((a.version_id, a.version), (v, 1));
    assert_eq!((a.status(), a.trigger_kind.as_str(), a.trigger.as_str()), (Status::Queued, "replay", "{\"id\":\"a\"}"));
    assert_eq!(a.auth_label.as_deref(), Some("ci-key"));
    assert_eq!((a.attempt, a.run_after, a.created_at), (1, T0 + 7, T0));
    assert_eq!((a.started_at, a.finished_at), (None, None));
    assert_eq!((a.output, a.response, a.error, a.failed_step), (None, None, None, None));
    assert_eq!(a.replay_of.as_deref(), Some("orig"));
    assert!(!a.cancel_requested);

    assert!(store.execution(Some("globex"), "a").await.unwrap().is_none(), "another tenant sees nothing");
    assert!(store.execution(Some("nobody"), "a").await.unwrap().is_none());
    assert!(store.execution(None, "a").await.unwrap().is_some());
    assert!(store.execution(Some(TENANT), "g").await.unwrap().is_none());
    assert_eq!(store.execution(Some("globex"), "g").await.unwrap().unwrap().tenant_id, "globex");
    assert!(store.execution(None, "nope").await.unwrap().is_none());

    // The version number is joined from the version the execution runs on.
    let v2 = store.put_integration(&new_version(TENANT, INTEGRATION, "h2", &[])).await.unwrap().record().clone();
    insert(&store, vec![exec("b", v2.id, T0)]).await;
    assert_eq!(row(&store, "b").await.version, 2);
    assert_eq!(row(&store, "a").await.version, 1);
});

conformance!(executions_pages_newest_first_with_filters, |store: SharedStore| async move {
    let v = setup(&store).await;
    let crm = store.put_integration(&new_version(TENANT, "crm", "h1", &[])).await.unwrap().record().id;
    let vg = setup_tenant(&store, "globex").await;
    let at = |id: &str, integration: &str, version_id: i64, flow: &str| NewExecution {
        integration: integration.into(),
        flow: flow.into(),
        ..exec(id, version_id, T0)
    };
    insert(&store, vec![at("e1", "shop", v, "orders"), at("e2", "shop", v, "refunds"), at("e3", "crm", crm, "orders")])
        .await;
    run_to_end(&store, v, "e4", Status::Failed, T0 + 4).await;
    insert(&store, vec![at("e5", "shop", v, "orders"), at("e6", "crm", crm, "sync"), at("e7", "shop", v, "orders")])
        .await;
    insert(&store, vec![NewExecution { tenant_id: "globex".into(), ..exec("g1", vg, T0) }]).await;

    let q = |f: fn(&mut ExecutionQuery)| {
        let mut q = ExecutionQuery { tenant: TENANT.into(), limit: 3, ..Default::default() };
        f(&mut q);
        q
    };
    let page1 = store.executions(&q(|_| {})).await.unwrap();
    assert_eq!(ids(&page1), ["e7", "e6", "e5"]);
    assert!(page1.windows(2).all(|w| w[0].seq > w[1].seq));
    let page2 = store.executions(&ExecutionQuery { before: Some(page1[2].seq), ..q(|_| {}) }).await.unwrap();
    assert_eq!(ids(&page2), ["e4", "e3", "e2"]);
    let page3 = store.executions(&ExecutionQuery { before: Some(page2[2].seq), ..q(|_| {}) }).await.unwrap();
    assert_eq!(ids(&page3), ["e1"]);
    let page4 = store.executions(&ExecutionQuery { before: Some(page3[0].seq), ..q(|_| {}) }).await.unwrap();
    assert!(page4.is_empty());

    let all = |f: fn(&mut ExecutionQuery)| {
        let mut q = ExecutionQuery { tenant: TENANT.into(), limit: 100, ..Default::default() };
        f(&mut q);
        q
    };
    let r = store.executions(&all(|q| q.integration = Some("shop".into()))).await.unwrap();
    assert_eq!(ids(&r), ["e7", "e5", "e4", "e2", "e1"]);
    let r = store.executions(&all(|q| q.flow = Some("orders".into()))).await.unwrap();
    assert_eq!(ids(&r), ["e7", "e5", "e4", "e3", "e1"]);
    let r = store
        .executions(&all(|q| {
            q.integration = Some("shop".into());
            q.flow = Some("orders".into());
        }))
        .await
        .unwrap();
    assert_eq!(ids(&r), ["e7", "e5", "e4", "e1"]);
    let r = store.executions(&all(|q| q.status = Some(Status::Failed))).await.unwrap();
    assert_eq!(ids(&r), ["e4"]);
    assert_eq!(r[0].status, "failed");
    let filtered = |before: Option<i64>| ExecutionQuery {
        tenant: TENANT.into(),
        integration: Some("shop".into()),
        flow: Some("orders".into()),
        status: Some(Status::Queued),
        before,
        limit: 2,
        ..Default::default()
    };
    let r = store.executions(&filtered(None)).await.unwrap();
    assert_eq!(ids(&r), ["e7", "e5"]);
    let r = store.executions(&filtered(Some(r[1].seq))).await.unwrap();
    assert_eq!(ids(&r), ["e1"]);
    let r = store.executions(&all(|q| q.status = Some(Status::Cancelled))).await.unwrap();
    assert!(r.is_empty());

    let r =
        store.executions(&ExecutionQuery { tenant: "globex".into(), limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(ids(&r), ["g1"]);
    assert!(store.executions(&all(|q| q.limit = 0)).await.unwrap().is_empty());
    assert!(
        store
            .executions(&ExecutionQuery { tenant: "nobody".into(), limit: 9, ..Default::default() })
            .await
            .unwrap()
            .is_empty()
    );
});

conformance!(last_run_is_the_latest_finished_execution_of_the_flow, |store: SharedStore| async move {
    let v = setup(&store).await;
    let vg = setup_tenant(&store, "globex").await;
    assert!(store.last_run(KEY).await.unwrap().is_none());

    run_to_end(&store, v, "e1", Status::Succeeded, T0 + 10).await;
    assert_eq!(store.last_run(KEY).await.unwrap().unwrap().id, "e1");
    run_to_end(&store, v, "e2", Status::Filtered, T0 + 20).await;
    assert_eq!(store.last_run(KEY).await.unwrap().unwrap().id, "e2");
    run_to_end(&store, v, "e3", Status::Failed, T0 + 30).await;
    let last = store.last_run(KEY).await.unwrap().unwrap();
    assert_eq!((last.id.as_str(), last.status(), last.finished_at), ("e3", Status::Failed, Some(T0 + 30)));

    // Not finished (queued, running) or cancelled: not a run.
    insert(&store, vec![exec("e4", v, T0), running_exec("e5", v, "w1", T0 + 60_000), exec("e6", v, T0)]).await;
    store.cancel_execution(TENANT, "e6", T0 + 40).await.unwrap();
    assert_eq!(store.last_run(KEY).await.unwrap().unwrap().id, "e3");

    // Another flow, another tenant.
    insert(&store, vec![NewExecution { flow: "sync".into(), ..running_exec("s1", v, "w1", T0 + 60_000) }]).await;
    commit_finishes(&store, vec![finish("s1", "w1", Status::Succeeded, T0 + 50)]).await;
    insert(&store, vec![NewExecution { tenant_id: "globex".into(), ..running_exec("g1", vg, "w1", T0 + 60_000) }])
        .await;
    commit_finishes(&store, vec![finish("g1", "w1", Status::Succeeded, T0 + 60)]).await;
    assert_eq!(store.last_run(KEY).await.unwrap().unwrap().id, "e3");
    assert_eq!(store.last_run(FlowKey { flow: "sync", ..KEY }).await.unwrap().unwrap().id, "s1");
    assert_eq!(store.last_run(FlowKey { tenant: "globex", ..KEY }).await.unwrap().unwrap().id, "g1");
    assert!(store.last_run(FlowKey { integration: "crm", ..KEY }).await.unwrap().is_none());
});

conformance!(retry_only_from_failed_or_cancelled, |store: SharedStore| async move {
    let v = setup(&store).await;
    setup_tenant(&store, "globex").await;
    insert(&store, vec![running_exec("f", v, "w1", T0 + 60_000)]).await;
    let failed = Finish {
        output: Some("{\"partial\":1}".into()),
        error: Some("{\"code\":\"x\"}".into()),
        failed_step: Some("charge".into()),
        ..finish("f", "w1", Status::Failed, T0 + 10)
    };
    commit_finishes(&store, vec![failed.clone()]).await;

    assert!(is_not_found(store.retry_execution("globex", "f", T0 + 100).await), "another tenant's execution");
    assert_eq!(row(&store, "f").await.status(), Status::Failed);
    assert!(is_not_found(store.retry_execution(TENANT, "nope", T0 + 100).await));

    let r = store.retry_execution(TENANT, "f", T0 + 100).await.unwrap();
    assert_eq!((r.status(), r.attempt, r.run_after), (Status::Queued, 2, T0 + 100));
    assert_eq!((r.error, r.failed_step, r.finished_at, r.output), (None, None, None, None));
    assert!(!r.cancel_requested);
    let stored = row(&store, "f").await;
    assert_eq!((stored.status(), stored.attempt, stored.error, stored.finished_at), (Status::Queued, 2, None, None));

    let claimed = store.claim("w1", T0 + 100, T0 + 60_000, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|c| (c.id.as_str(), c.attempt)).collect::<Vec<_>>(),
        [("f", 2)],
        "the new round is claimable"
    );
    // Queued or running: not retryable. (Queued: see also
    // `issue_3_a_refused_retry_or_cancel_unlocks_the_row_at_once`.)
    assert!(is_conflict(store.retry_execution(TENANT, "f", T0 + 101).await));
    insert(&store, vec![exec("q", v, T0)]).await;
    assert!(is_conflict(store.retry_execution(TENANT, "q", T0 + 101).await));
    assert_eq!(row(&store, "q").await.attempt, 1);
    assert_eq!(row(&store, "f").await.attempt, 2);
    commit_finishes(&store, vec![Finish { finished_at: T0 + 110, ..failed }]).await;
    assert_eq!(store.retry_execution(TENANT, "f", T0 + 120).await.unwrap().attempt, 3);

    // Cancelled (while queued): retryable.
    insert(&store, vec![exec("c", v, T0)]).await;
    store.cancel_execution(TENANT, "c", T0 + 5).await.unwrap();
    let r = store.retry_execution(TENANT, "c", T0 + 6).await.unwrap();
    assert_eq!((r.status(), r.attempt, r.finished_at), (Status::Queued, 2, None));

    // Cancelled while running: the retry clears the request.
    insert(&store, vec![running_exec("k", v, "w1", T0 + 60_000)]).await;
    assert!(store.cancel_execution(TENANT, "k", T0 + 7).await.unwrap().cancel_requested);
    commit_finishes(&store, vec![finish("k", "w1", Status::Cancelled, T0 + 8)]).await;
    let r = store.retry_execution(TENANT, "k", T0 + 9).await.unwrap();
    assert_eq!((r.status(), r.cancel_requested), (Status::Queued, false));
    assert!(!store.cancel_requested("k").await.unwrap());

    // Succeeded and filtered: not retryable.
    run_to_end(&store, v, "ok", Status::Succeeded, T0 + 10).await;
    run_to_end(&store, v, "fl", Status::Filtered, T0 + 10).await;
    assert!(is_conflict(store.retry_execution(TENANT, "ok", T0 + 11).await));
    assert!(is_conflict(store.retry_execution(TENANT, "fl", T0 + 11).await));
    assert_eq!(row(&store, "ok").await.attempt, 1);
});

conformance!(cancel_depends_on_the_status, |store: SharedStore| async move {
    let v = setup(&store).await;
    setup_tenant(&store, "globex").await;
    insert(&store, vec![exec("q", v, T0 + 1_000), running_exec("r", v, "w1", T0 + 60_000)]).await;
    run_to_end(&store, v, "done", Status::Succeeded, T0 + 1).await;

    assert!(is_not_found(store.cancel_execution(TENANT, "nope", T0).await));
    assert!(is_not_found(store.cancel_execution("globex", "q", T0).await), "another tenant's execution");
    assert_eq!(row(&store, "q").await.status(), Status::Queued);

    // Queued: cancelled at once.
    let q = store.cancel_execution(TENANT, "q", T0 + 5).await.unwrap();
    assert_eq!((q.status(), q.finished_at, q.cancel_requested), (Status::Cancelled, Some(T0 + 5), false));
    assert!(!store.cancel_requested("q").await.unwrap());
    assert!(claim_ids(&store, "w2", T0 + 5_000, 10).await.is_empty(), "a cancelled execution is not claimed");
    assert_eq!(store.queue_depth().await.unwrap().queued, 0);

    // Running: asked to stop; it stays running and its owner ends it.
    assert!(!store.cancel_requested("r").await.unwrap());
    let r = store.cancel_execution(TENANT, "r", T0 + 6).await.unwrap();
    assert_eq!((r.status(), r.cancel_requested, r.finished_at), (Status::Running, true, None));
    assert!(store.cancel_requested("r").await.unwrap());
    assert!(row(&store, "r").await.cancel_requested);
    assert!(store.cancel_execution(TENANT, "r", T0 + 7).await.unwrap().cancel_requested, "asking twice is fine");
    commit_finishes(&store, vec![finish("r", "w1", Status::Cancelled, T0 + 8)]).await;
    assert_eq!(row(&store, "r").await.status(), Status::Cancelled);

    // Ended: conflict, unchanged.
    for id in ["done", "q", "r"] {
        assert!(is_conflict(store.cancel_execution(TENANT, id, T0 + 9).await), "{id}");
    }
    let done = row(&store, "done").await;
    assert_eq!((done.status(), done.finished_at), (Status::Succeeded, Some(T0 + 1)));
    assert!(!store.cancel_requested("nope").await.unwrap());
});

// =============================================================================================
// 6. Integrations
// =============================================================================================

conformance!(integration_versions, |store: SharedStore| async move {
    assert!(store.create_tenant(TENANT, "Acme", T0).await.unwrap());
    assert!(store.create_tenant("globex", "Globex", T0).await.unwrap());

    let v1 = match store.put_integration(&new_version(TENANT, "shop", "h1", &[("orders", "new-order")])).await.unwrap()
    {
        PutOutcome::Created(r) => r,
        other => panic!("expected a new version, got {other:?}"),
    };
    assert_eq!((v1.tenant_id.as_str(), v1.slug.as_str(), v1.version, v1.hash.as_str()), (TENANT, "shop", 1, "h1"));
    let sent = new_version(TENANT, "shop", "h1", &[]);
    assert_eq!(
        (v1.format.as_str(), v1.source.as_str(), v1.document.as_str()),
        ("yaml", sent.source.as_str(), sent.document.as_str())
    );
    assert_eq!(v1.created_at, T0);

    // Same hash: unchanged (the hash decides, not the text).
    let same =
        NewVersion { source: "changed text, same hash".into(), now: T0 + 5, ..new_version(TENANT, "shop", "h1", &[]) };
    match store.put_integration(&same).await.unwrap() {
        PutOutcome::Unchanged(r) => assert_eq!((r.id, r.version, r.source.as_str()), (v1.id, 1, v1.source.as_str())),
        other => panic!("expected unchanged, got {other:?}"),
    }

    let v2 =
        store.put_integration(&NewVersion { now: T0 + 10, ..new_version(TENANT, "shop", "h2", &[]) }).await.unwrap();
    assert!(matches!(v2, PutOutcome::Created(_)));
    let v2 = v2.record().clone();
    assert_eq!((v2.version, v2.created_at), (2, T0 + 10));
    assert_ne!(v2.id, v1.id);
    let cur = store.integration(TENANT, "shop").await.unwrap().unwrap();
    assert_eq!((cur.id, cur.version, cur.hash.as_str()), (v2.id, 2, "h2"));
    // Old versions stay readable.
    let old = store.version(v1.id).await.unwrap().unwrap();
    assert_eq!((old.version, old.hash.as_str(), old.slug.as_str()), (1, "h1", "shop"));
    assert_eq!(store.version(v2.id).await.unwrap().unwrap().version, 2);
    assert!(store.version(v2.id + 1_000).await.unwrap().is_none());
    // Equal to an older version but not the current one: a new version.
    let v3 = store.put_integration(&new_version(TENANT, "shop", "h1", &[])).await.unwrap();
    assert!(matches!(v3, PutOutcome::Created(ref r) if r.version == 3), "{v3:?}");

    // Numbering is per integration.
    let crm = store.put_integration(&new_version(TENANT, "crm", "h9", &[])).await.unwrap();
    assert_eq!(crm.record().version, 1);
    let g = store.put_integration(&new_version("globex", "shop", "h1", &[])).await.unwrap();
    assert_eq!(g.record().version, 1);

    let listed = store.integrations(TENANT).await.unwrap();
    assert_eq!(listed.iter().map(|r| (r.slug.as_str(), r.version)).collect::<Vec<_>>(), [("crm", 1), ("shop", 3)]);
    let listed = store.integrations("globex").await.unwrap();
    assert_eq!(listed.iter().map(|r| (r.slug.as_str(), r.version)).collect::<Vec<_>>(), [("shop", 1)]);
    assert!(store.integrations("nobody").await.unwrap().is_empty());
    let all = store.all_integrations().await.unwrap();
    assert_eq!(
        all.iter().map(|r| (r.tenant_id.as_str(), r.slug.as_str())).collect::<Vec<_>>(),
        [(TENANT, "crm"), (TENANT, "shop"), ("globex", "shop")]
    );
    assert!(store.integration(TENANT, "nope").await.unwrap().is_none());
    assert!(store.integration("globex", "crm").await.unwrap().is_none());
});

conformance!(webhook_paths_are_unique_per_tenant, |store: SharedStore| async move {
    assert!(store.create_tenant(TENANT, "Acme", T0).await.unwrap());
    assert!(store.create_tenant("globex", "Globex", T0).await.unwrap());
    let shop1 = store
        .put_integration(&new_version(TENANT, "shop", "h1", &[("orders", "new-order"), ("refunds", "refund")]))
        .await
        .unwrap()
        .record()
        .clone();

    // Another integration of the tenant: conflict, and nothing stored.
    let taken = store.put_integration(&new_version(TENANT, "crm", "h1", &[("hello", "hi"), ("orders", "sync")])).await;
    assert!(is_conflict(taken), "a path of another integration");
    assert!(store.integration(TENANT, "crm").await.unwrap().is_none());
    // The same path in another tenant is fine.
    let g = store.put_integration(&new_version("globex", "crm", "h1", &[("orders", "sync")])).await.unwrap();
    assert!(matches!(g, PutOutcome::Created(_)));
    // The integration itself may keep its paths; a new version replaces its routes.
    let shop2 = store.put_integration(&new_version(TENANT, "shop", "h2", &[("orders", "new-order")])).await.unwrap();
    assert_eq!(shop2.record().version, 2);
    // `refunds` is free now.
    let crm = store.put_integration(&new_version(TENANT, "crm", "h1", &[("refunds", "x")])).await.unwrap();
    assert_eq!(crm.record().version, 1);
    assert!(is_conflict(store.put_integration(&new_version(TENANT, "crm", "h2", &[("orders", "sync")])).await));
    assert_eq!(store.integration(TENANT, "crm").await.unwrap().unwrap().version, 1, "a refused version is not stored");

    // Deleting an integration frees its paths; its versions stay.
    assert!(store.delete_integration(TENANT, "shop").await.unwrap());
    assert!(store.integration(TENANT, "shop").await.unwrap().is_none());
    assert!(!store.delete_integration(TENANT, "shop").await.unwrap());
    assert!(!store.delete_integration(TENANT, "nope").await.unwrap());
    assert!(!store.delete_integration("globex", "shop").await.unwrap());
    assert_eq!(store.version(shop1.id).await.unwrap().unwrap().version, 1);
    assert_eq!(store.integrations(TENANT).await.unwrap().iter().map(|r| r.slug.as_str()).collect::<Vec<_>>(), ["crm"]);
    assert_eq!(store.all_integrations().await.unwrap().len(), 2);
    let crm2 = store.put_integration(&new_version(TENANT, "crm", "h3", &[("orders", "sync")])).await.unwrap();
    assert!(matches!(crm2, PutOutcome::Created(ref r) if r.version == 2), "{crm2:?}");
    // …and the deleted integration, back, finds them taken.
    assert!(is_conflict(store.put_integration(&new_version(TENANT, "shop", "h4", &[("orders", "new-order")])).await));
    let back = store.put_integration(&new_version(TENANT, "shop", "h4", &[("shop", "new-order")])).await.unwrap();
    assert!(matches!(back, PutOutcome::Created(_)));
    assert!(store.integration(TENANT, "shop").await.unwrap().is_some());
});

// =============================================================================================
// 7. Tokens, settings, tenants
// =============================================================================================

conformance!(tokens_are_found_by_hash_until_revoked, |store: SharedStore| async move {
    assert!(store.create_tenant(TENANT, "Acme", T0).await.unwrap());
    assert!(store.create_tenant("globex", "Globex", T0).await.unwrap());
    let token = |id: &str, tenant: &str, hash: &str, at: i64| NewToken {
        id: id.into(),
        tenant_id: tenant.into(),
        name: format!("{id} name"),
        token_hash: hash.into(),
        prefix: format!("fgt_{id}"),
        created_at: at,
    };
    store.create_token(&token("tok2", TENANT, "hash2", T0 + 1)).await.unwrap();
    store.create_token(&token("tok1", TENANT, "hash1", T0)).await.unwrap();
    store.create_token(&token("tok3", "globex", "hash3", T0)).await.unwrap();

    let t = store.token_by_hash("hash1").await.unwrap().expect("token by hash");
    assert_eq!(
        (t.id.as_str(), t.tenant_id.as_str(), t.name.as_str(), t.prefix.as_str()),
        ("tok1", TENANT, "tok1 name", "fgt_tok1")
    );
    assert_eq!((t.created_at, t.revoked_at), (T0, None));
    assert!(store.token_by_hash("nope").await.unwrap().is_none());
    let list = store.tokens(TENANT).await.unwrap();
    assert_eq!(list.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["tok1", "tok2"]);
    assert_eq!(store.tokens("globex").await.unwrap().len(), 1);
    assert!(store.tokens("nobody").await.unwrap().is_empty());

    assert!(!store.revoke_token("globex", "tok1", T0 + 50).await.unwrap(), "another tenant cannot revoke it");
    assert!(store.token_by_hash("hash1").await.unwrap().is_some());
    assert!(store.revoke_token(TENANT, "tok1", T0 + 50).await.unwrap());
    assert!(store.token_by_hash("hash1").await.unwrap().is_none(), "a revoked token is not found");
    assert!(!store.revoke_token(TENANT, "tok1", T0 + 60).await.unwrap(), "already revoked");
    assert!(!store.revoke_token(TENANT, "nope", T0 + 60).await.unwrap());
    let list = store.tokens(TENANT).await.unwrap();
    assert_eq!(
        list.iter().map(|t| (t.id.as_str(), t.revoked_at)).collect::<Vec<_>>(),
        [("tok1", Some(T0 + 50)), ("tok2", None)],
        "revoked tokens are listed"
    );
    assert!(store.token_by_hash("hash2").await.unwrap().is_some());

    // A hash is one token.
    assert!(store.create_token(&token("tok4", TENANT, "hash2", T0)).await.is_err());
    assert_eq!(store.tokens(TENANT).await.unwrap().len(), 2);
});

conformance!(settings_and_tenants, |store: SharedStore| async move {
    store.ping().await.unwrap();
    assert!(store.tenants().await.unwrap().is_empty());
    assert!(store.create_tenant("globex", "Globex", T0 + 1).await.unwrap());
    assert!(store.create_tenant(TENANT, "Acme", T0).await.unwrap());
    assert!(!store.create_tenant(TENANT, "Someone else", T0 + 2).await.unwrap(), "a tenant is created once");
    let tenants = store.tenants().await.unwrap();
    assert_eq!(
        tenants.iter().map(|t| (t.id.as_str(), t.name.as_str(), t.created_at)).collect::<Vec<_>>(),
        [(TENANT, "Acme", T0), ("globex", "Globex", T0 + 1)]
    );

    assert_eq!(store.setting("secret").await.unwrap(), None);
    assert_eq!(store.init_setting("secret", "first").await.unwrap(), "first");
    assert_eq!(store.init_setting("secret", "second").await.unwrap(), "first", "the first value stays");
    assert_eq!(store.setting("secret").await.unwrap().as_deref(), Some("first"));
    assert_eq!(store.init_setting("other", "x").await.unwrap(), "x");
    assert_eq!(store.setting("secret").await.unwrap().as_deref(), Some("first"));
});

// =============================================================================================
// 8. Events and leadership
// =============================================================================================

conformance!(notified_events_reach_every_node_in_order, |ctx: Ctx| async move {
    let store = ctx.store.clone();
    if !store.shared() {
        assert!(store.subscribe().is_none(), "a single-process store has no events");
        store.notify(&[StoreEvent::Work, StoreEvent::Finished { id: "x".into() }]).await.unwrap();
        return;
    }
    let node2 = ctx.another_node().await.expect("a second node");
    let mut rx1 = store.subscribe().expect("events");
    let mut rx2 = node2.subscribe().expect("events");

    // Other schemas of the database may talk on the channel too: the events are told apart by
    // unique ids.
    let id = unique("fin");
    let sent = vec![
        StoreEvent::Work,
        StoreEvent::Finished { id: id.clone() },
        StoreEvent::Responded { id: id.clone() },
        StoreEvent::Cancel { id: id.clone(), attempt: 3 },
        StoreEvent::Integration { tenant: TENANT.into(), slug: id.clone() },
    ];
    store.notify(&sent).await.unwrap();
    let last = sent.last().unwrap().clone();
    for (name, rx) in [("sender", &mut rx1), ("other node", &mut rx2)] {
        let got = recv_until(rx, |e| *e == last).await;
        assert!(got.len() >= sent.len(), "{name}: {got:?}");
        assert_eq!(got[got.len() - sent.len()..], sent[..], "{name}: the events arrive together and in order");
    }

    // From the other node, in order of sending.
    let (a, b) = (unique("a"), unique("b"));
    node2.notify(&[StoreEvent::Finished { id: a.clone() }]).await.unwrap();
    node2.notify(&[StoreEvent::Finished { id: b.clone() }]).await.unwrap();
    let got = recv_until(&mut rx1, |e| *e == StoreEvent::Finished { id: b.clone() }).await;
    let mine: Vec<_> =
        got.iter().filter(|e| matches!(e, StoreEvent::Finished { id } if *id == a || *id == b)).collect();
    assert_eq!(mine, [&StoreEvent::Finished { id: a }, &StoreEvent::Finished { id: b }]);
});

conformance!(batch_events_arrive_after_their_commit, |ctx: Ctx| async move {
    let store = ctx.store.clone();
    let v = setup(&store).await;
    insert(&store, vec![exec("dup", v, T0)]).await;
    if !store.shared() {
        // Nobody to tell: the events are dropped, the writes are not.
        let batch =
            WriteBatch { inserts: vec![exec("e", v, T0)], events: vec![StoreEvent::Work], ..WriteBatch::default() };
        store.commit(&batch).await.unwrap();
        assert_eq!(row(&store, "e").await.status(), Status::Queued);
        return;
    }
    let node2 = ctx.another_node().await.expect("a second node");
    let mut rx = node2.subscribe().expect("events");

    // A batch that fails sends nothing.
    let rolled_back = unique("rolled_back");
    let bad = WriteBatch {
        inserts: vec![exec("bad", v, T0), exec("dup", v, T0)],
        events: vec![StoreEvent::Finished { id: rolled_back.clone() }],
        ..WriteBatch::default()
    };
    assert!(store.commit(&bad).await.is_err());

    // A batch that commits: when its events arrive, its writes are visible to the other node.
    let id = unique("good");
    let good = WriteBatch {
        inserts: vec![exec(&id, v, T0)],
        steps: vec![step(&id, "a", 1, "succeeded", None, Some("1"))],
        events: vec![StoreEvent::Work, StoreEvent::Finished { id: id.clone() }],
        ..WriteBatch::default()
    };
    store.commit(&good).await.unwrap();
    let got = recv_until(&mut rx, |e| *e == StoreEvent::Finished { id: id.clone() }).await;
    assert!(node2.execution(None, &id).await.unwrap().is_some(), "the event came before its writes");
    assert_eq!(node2.journal(&id).await.unwrap().len(), 1);
    assert_eq!(got[got.len() - 2], StoreEvent::Work);
    assert!(
        !got.contains(&StoreEvent::Finished { id: rolled_back.clone() }),
        "an event of a rolled-back batch was sent: {got:?}"
    );

    // Many events in one batch (several NOTIFY payloads): all of them, in order.
    let many: Vec<StoreEvent> = (0..500).map(|i| StoreEvent::Finished { id: format!("{id}-{i:04}") }).collect();
    let batch = WriteBatch { events: many.clone(), ..WriteBatch::default() };
    store.commit(&batch).await.unwrap();
    let last = many.last().unwrap().clone();
    let got = recv_until(&mut rx, |e| *e == last).await;
    let mine: Vec<_> = got.into_iter().filter(|e| many.contains(e)).collect();
    assert_eq!(mine, many);
    assert!(!got_rolled_back(&mut rx, &rolled_back), "an event of a rolled-back batch was sent later");
});

/// Drains what has arrived; true if it includes `Finished { id }`.
fn got_rolled_back(rx: &mut tokio::sync::broadcast::Receiver<StoreEvent>, id: &str) -> bool {
    let mut found = false;
    while let Ok(e) = rx.try_recv() {
        found |= e == StoreEvent::Finished { id: id.into() };
    }
    found
}

conformance!(one_leader_per_store, |ctx: Ctx| async move {
    let store = ctx.store.clone();
    if !store.shared() {
        assert!(store.lead().await.unwrap(), "the only process leads");
        assert!(store.lead().await.unwrap());
        return;
    }
    let node2 = ctx.another_node().await.expect("a second node");
    assert!(store.lead().await.unwrap(), "the first node to ask leads");
    assert!(store.lead().await.unwrap(), "the leader keeps leading");
    assert!(!node2.lead().await.unwrap(), "a second node does not lead while the first does");
    assert!(!node2.lead().await.unwrap());
    assert!(store.lead().await.unwrap());

    store.close().await;
    // The lock goes with the leader's session, which the server ends a moment after the close.
    lead_within(&node2, "the second node, after the leader closed").await;
    assert!(node2.lead().await.unwrap());
});

conformance!(each_schema_elects_its_own_leader, |ctx: Ctx| async move {
    // A schema is a deployment of its own (`schema=` "lets tests and several deployments share
    // one database"): each must elect its own leader, or the others never reap their expired
    // leases. (Fixed in 40f15fa: the lock key includes a hash of the schema.)
    let store = ctx.store.clone();
    if !store.shared() {
        assert!(store.lead().await.unwrap());
        return;
    }
    let other = ctx.another_deployment().await.expect("another schema");
    let other_node = ctx.another_node().await.expect("a second node");
    assert!(store.lead().await.unwrap(), "deployment A");
    assert!(other.lead().await.unwrap(), "deployment B (another schema) must get its own leader");
    assert!(!other_node.lead().await.unwrap(), "a second node of A still does not lead");
});

conformance!(shared_reports_the_backend, |ctx: Ctx| async move {
    assert_eq!(ctx.store.shared(), ctx.is_postgres());
    assert_eq!(ctx.store.subscribe().is_some(), ctx.is_postgres());
});

// =============================================================================================
// Regressions: defects this suite found in the PostgreSQL store, fixed in issue 3
// =============================================================================================

conformance!(issue_3_a_refused_retry_or_cancel_unlocks_the_row_at_once, |ctx: Ctx| async move {
    // A refused `retry_execution` (Conflict) or `cancel_execution` (NotFound for another
    // tenant) must leave the execution as it was, unlocked: claimable at once. PostgreSQL
    // returns the error out of a transaction that took `SELECT … FOR UPDATE` on the row;
    // dropping the sqlx transaction only queues the ROLLBACK, sent when the pool takes the
    // connection back (in a spawned task), so for a moment after the call returned the row is
    // still locked: a `claim` (SKIP LOCKED) skips it, a finish or renew waits for it.
    // The lock is observed from a plain connection right after the call (the store's own
    // `claim` pings a pooled connection first, which often gives the ROLLBACK time to land).
    let store = ctx.store.clone();
    let v = setup(&store).await;
    setup_tenant(&store, "globex").await;
    let mut probe = ctx.raw_connection().await;
    let mut locked = Vec::new();
    for i in 0..40 {
        let id = format!("q{i:02}");
        insert(&store, vec![exec(&id, v, T0)]).await;
        if i % 2 == 0 {
            assert!(is_conflict(store.retry_execution(TENANT, &id, T0 + 1).await), "a queued execution");
        } else {
            assert!(is_not_found(store.cancel_execution("globex", &id, T0 + 1).await), "another tenant's");
        }
        if let Some(conn) = probe.as_mut() {
            let free: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT 1 FROM executions WHERE id = $1 FOR UPDATE SKIP LOCKED) AS x",
            )
            .bind(&id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            if free == 0 {
                locked.push(id.clone());
            }
        }
        let got = claim_ids(&store, "w1", T0 + 1, 10).await;
        if got != [id.as_str()] {
            locked.push(format!("{id} (claim)"));
            // Let the rollback land, then take it, for the next round.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(claim_ids(&store, "w1", T0 + 1, 10).await, [id.as_str()]);
        }
    }
    assert!(locked.is_empty(), "still locked after a refused retry/cancel returned: {locked:?}");
});

conformance!(issue_3_a_step_recorded_twice_in_one_batch_keeps_the_last, |store: SharedStore| async move {
    // A step attempt may be recorded again (a resumed step rewrites what a crash left; the
    // store replaces it). When both records land in one group commit, SQLite's
    // `INSERT OR REPLACE` keeps the last; PostgreSQL's `INSERT … ON CONFLICT DO UPDATE` fails
    // the whole statement ("cannot affect row a second time"), and with it every other write
    // of the batch.
    let v = setup(&store).await;
    insert(&store, vec![running_exec("e", v, "w1", T0 + 60_000)]).await;
    let b = WriteBatch {
        inserts: vec![exec("unrelated", v, T0)],
        steps: vec![
            step("e", "a", 1, "failed", None, None),
            step("other", "x", 1, "succeeded", None, Some("0")),
            step("e", "a", 2, "succeeded", None, Some("1")),
        ],
        logs: vec![log("e", T0, "hello")],
        ..WriteBatch::default()
    };
    let r = store.commit(&b).await;
    assert!(r.is_ok(), "the batch failed: {r:?}");
    let j = store.journal("e").await.unwrap();
    assert_eq!(
        j.iter().map(|s| (s.seq, s.status.as_str())).collect::<Vec<_>>(),
        [(2, "succeeded")],
        "the last record wins"
    );
    assert!(store.execution(None, "unrelated").await.unwrap().is_some());
    assert_eq!(store.logs("e").await.unwrap().len(), 1);
});

conformance!(issue_3_events_stay_within_their_schema, |ctx: Ctx| async move {
    // Deployments in separate schemas of one database elect separate leaders (the lock key
    // hashes the schema), but all talk on the one channel `flowgate_events`: each node gets
    // every other deployment's Work, Finished, Cancel and Integration events (spurious claims
    // and reads; ids of another deployment's executions).
    let store = ctx.store.clone();
    if !store.shared() {
        assert!(store.subscribe().is_none());
        return;
    }
    let other = ctx.another_deployment().await.expect("another schema");
    let mut rx = store.subscribe().expect("events");
    let foreign = StoreEvent::Finished { id: unique("foreign") };
    other.notify(std::slice::from_ref(&foreign)).await.unwrap();
    // Sent after the foreign one: once it arrives, the foreign one would have.
    let marker = StoreEvent::Finished { id: unique("marker") };
    store.notify(std::slice::from_ref(&marker)).await.unwrap();
    let got = recv_until(&mut rx, |e| *e == marker).await;
    assert!(!got.contains(&foreign), "an event of another schema arrived: {got:?}");
});

fn state(flow: &str, state: &str, at: i64) -> TriggerState {
    TriggerState {
        tenant_id: TENANT.into(),
        integration: INTEGRATION.into(),
        flow: flow.into(),
        state: state.into(),
        updated_at: at,
    }
}

conformance!(trigger_state_commits_with_its_executions, |store: SharedStore| async move {
    let v = setup(&store).await;
    assert_eq!(store.trigger_state(KEY).await.unwrap(), None);
    // Alone: one statement.
    store
        .commit(&WriteBatch { states: vec![state(FLOW, r#"{"slot":1}"#, T0)], ..WriteBatch::default() })
        .await
        .unwrap();
    assert_eq!(store.trigger_state(KEY).await.unwrap(), Some(state(FLOW, r#"{"slot":1}"#, T0)));
    // With executions, the last write of a flow in a batch wins.
    let batch = WriteBatch {
        inserts: vec![exec("s1", v, T0), exec("s2", v, T0)],
        states: vec![
            state(FLOW, r#"{"slot":2}"#, T0 + 1),
            state("other", "{}", T0 + 1),
            state(FLOW, r#"{"slot":3}"#, T0 + 2),
        ],
        ..WriteBatch::default()
    };
    store.commit(&batch).await.unwrap();
    assert_eq!(store.trigger_state(KEY).await.unwrap().unwrap().state, r#"{"slot":3}"#);
    assert!(store.trigger_state(FlowKey { flow: "other", ..KEY }).await.unwrap().is_some());
    // A failed batch writes no state either.
    let batch = WriteBatch {
        inserts: vec![exec("s3", v, T0), exec("s1", v, T0)],
        states: vec![state(FLOW, r#"{"slot":4}"#, T0 + 3)],
        ..WriteBatch::default()
    };
    assert!(store.commit(&batch).await.is_err());
    assert_eq!(store.trigger_state(KEY).await.unwrap().unwrap().state, r#"{"slot":3}"#);
    // Deduplicated inserts still write the state (the slot was taken before).
    let keyed = |id: &str| NewExecution {
        dedup: Some(Dedup { key: "slot:5".into(), expires_at: T0 + 1_000 }),
        ..exec(id, v, T0)
    };
    store.commit(&WriteBatch { inserts: vec![keyed("k1")], ..WriteBatch::default() }).await.unwrap();
    let out = store
        .commit(&WriteBatch {
            inserts: vec![keyed("k2")],
            states: vec![state(FLOW, r#"{"slot":5}"#, T0 + 4)],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(out.duplicates, vec![("k2".to_owned(), "k1".to_owned())]);
    assert!(store.execution(None, "k2").await.unwrap().is_none());
    assert_eq!(store.trigger_state(KEY).await.unwrap().unwrap().state, r#"{"slot":5}"#);
    // Reset.
    assert!(store.delete_trigger_state(KEY).await.unwrap());
    assert!(!store.delete_trigger_state(KEY).await.unwrap());
    assert_eq!(store.trigger_state(KEY).await.unwrap(), None);
    // Deleting the integration deletes its states.
    assert!(store.delete_integration(TENANT, INTEGRATION).await.unwrap());
    assert_eq!(store.trigger_state(FlowKey { flow: "other", ..KEY }).await.unwrap(), None);
});

conformance!(email_addresses_are_unique_across_tenants, |store: SharedStore| async move {
    assert!(store.create_tenant(TENANT, "Acme", T0).await.unwrap());
    assert!(store.create_tenant("globex", "Globex", T0).await.unwrap());
    let with_mail = |tenant: &str, slug: &str, hash: &str, emails: &[(&str, &str)]| NewVersion {
        emails: emails.iter().map(|(a, f)| EmailRoute { address: (*a).into(), flow: (*f).into() }).collect(),
        ..new_version(tenant, slug, hash, &[])
    };
    store.put_integration(&with_mail(TENANT, "shop", "h1", &[("orders@in.example", "orders")])).await.unwrap();
    // Another tenant: refused without naming the holder's flow.
    let err = store.put_integration(&with_mail("globex", "crm", "h1", &[("orders@in.example", "leads")])).await;
    match err {
        Err(Error::Conflict(m)) => {
            assert!(m.contains("orders@in.example") && m.contains("another tenant") && !m.contains("shop"), "{m}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store.integration("globex", "crm").await.unwrap().is_none(), "nothing stored");
    // Another integration of the same tenant: refused, naming it.
    match store.put_integration(&with_mail(TENANT, "crm", "h1", &[("orders@in.example", "leads")])).await {
        Err(Error::Conflict(m)) => assert!(m.contains("`orders` of integration `shop`"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The same integration may move the address to another flow; a new version replaces them.
    store.put_integration(&with_mail(TENANT, "shop", "h2", &[("orders@in.example", "orders-v2")])).await.unwrap();
    store.put_integration(&with_mail(TENANT, "shop", "h3", &[("sales@in.example", "orders")])).await.unwrap();
    // The old address is free again.
    store.put_integration(&with_mail("globex", "crm", "h1", &[("orders@in.example", "leads")])).await.unwrap();
    // Deleting frees its addresses.
    assert!(store.delete_integration("globex", "crm").await.unwrap());
    store.put_integration(&with_mail(TENANT, "crm", "h1", &[("orders@in.example", "leads")])).await.unwrap();
});

conformance!(flow_switches_are_kept_per_flow, |store: SharedStore| async move {
    setup(&store).await;
    assert!(store.flow_switches().await.unwrap().is_empty());
    store.set_flow_active(FlowKey { flow: "a", ..KEY }, false, T0).await.unwrap();
    store.set_flow_active(FlowKey { flow: "b", ..KEY }, true, T0).await.unwrap();
    store.set_flow_active(FlowKey { flow: "a", ..KEY }, true, T0 + 1).await.unwrap();
    let got: Vec<(String, bool, i64)> =
        store.flow_switches().await.unwrap().into_iter().map(|s| (s.flow, s.active, s.updated_at)).collect();
    assert_eq!(got, vec![("a".into(), true, T0 + 1), ("b".into(), true, T0)]);
    assert!(store.delete_integration(TENANT, INTEGRATION).await.unwrap());
    assert!(store.flow_switches().await.unwrap().is_empty());
});

fn deployment(tenant: &str, integration: &str, config: &str, deployed: bool, at: i64) -> Deployment {
    Deployment {
        tenant_id: tenant.into(),
        integration: integration.into(),
        config: config.into(),
        deployed,
        deployed_version: None,
        updated_at: at,
    }
}

conformance!(deployments_versions_and_children, |store: SharedStore| async move {
    let v1 = setup(&store).await;
    assert_eq!(store.deployment(KEY.integration()).await.unwrap(), None);
    store.put_deployment(&deployment(TENANT, INTEGRATION, r#"{"a":1}"#, true, T0)).await.unwrap();
    let d = Deployment { deployed_version: Some(v1), ..deployment(TENANT, INTEGRATION, r#"{"a":2}"#, false, T0 + 1) };
    store.put_deployment(&d).await.unwrap();
    assert_eq!(store.deployment(KEY.integration()).await.unwrap(), Some(d.clone()));
    assert_eq!(store.deployments().await.unwrap(), vec![d]);

    // Versions, newest first, with their sealed secrets.
    let v2 = store
        .put_integration(&NewVersion {
            secrets: Some("fgs1:k:x".into()),
            ..new_version(TENANT, INTEGRATION, "h2", &[])
        })
        .await
        .unwrap()
        .record()
        .clone();
    assert_eq!(v2.secrets.as_deref(), Some("fgs1:k:x"));
    let all = store.versions(TENANT, INTEGRATION).await.unwrap();
    assert_eq!(all.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(all[0].secrets.as_deref(), Some("fgs1:k:x"));
    assert_eq!(store.version(v2.id).await.unwrap().unwrap().secrets.as_deref(), Some("fgs1:k:x"));
    assert!(store.versions("globex", INTEGRATION).await.unwrap().is_empty());

    // Children of a call step.
    insert(&store, vec![exec("parent", v1, T0)]).await;
    insert(
        &store,
        vec![
            NewExecution { parent_id: Some("parent".into()), ..exec("child-1", v1, T0) },
            NewExecution { parent_id: Some("parent".into()), ..exec("child-2", v1, T0) },
        ],
    )
    .await;
    let kids = store.children(TENANT, "parent").await.unwrap();
    assert_eq!(kids.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), vec!["child-1", "child-2"]);
    assert_eq!(kids[0].parent_id.as_deref(), Some("parent"));
    assert!(store.children("globex", "parent").await.unwrap().is_empty(), "tenants are sealed");

    // Settings.
    store.put_setting("k", "1").await.unwrap();
    store.put_setting("k", "2").await.unwrap();
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("2"));

    // Re-sealing touches every sealed text in one go; a failure changes nothing.
    let seen = std::sync::Mutex::new(Vec::new());
    let n = store
        .reseal_all(&|s: Sealed<'_>| {
            seen.lock().unwrap().push((s.kind, s.text.to_owned()));
            Ok(format!("re:{}", s.text))
        })
        .await
        .unwrap();
    assert_eq!(n, 2, "{:?}", seen.lock().unwrap());
    assert_eq!(store.deployment(KEY.integration()).await.unwrap().unwrap().config, r#"re:{"a":2}"#);
    assert_eq!(store.version(v2.id).await.unwrap().unwrap().secrets.as_deref(), Some("re:fgs1:k:x"));
    let failed =
        store.reseal_all(&|s: Sealed<'_>| if s.kind == "version" { Err("no".into()) } else { Ok("x".into()) }).await;
    assert!(failed.is_err());
    assert_eq!(store.deployment(KEY.integration()).await.unwrap().unwrap().config, r#"re:{"a":2}"#, "rolled back");

    // Deleting the integration deletes its deployment; versions stay for its executions.
    assert!(store.delete_integration(TENANT, INTEGRATION).await.unwrap());
    assert_eq!(store.deployment(KEY.integration()).await.unwrap(), None);
    assert!(store.version(v1).await.unwrap().is_some());
});

conformance!(a_connection_refresh_is_one_lease_and_stores_with_its_end, |store: SharedStore| async move {
    use flowgate_store::{ConnectionKey, NewTokens};
    let key = ConnectionKey { tenant: "t1", integration: "crm", connection: "books" };
    // The first taker gets the lease (the row is made); a second owner does not, until it expires.
    let row = store.lease_connection_refresh(key, "node-a", 1_000, 31_000).await.unwrap().expect("leased");
    assert_eq!((row.version, row.status.as_str()), (0, "new"));
    assert!(store.lease_connection_refresh(key, "node-b", 2_000, 32_000).await.unwrap().is_none());
    // Stored under the lease: a new version, active, the lease ended.
    let tokens = NewTokens {
        access_token: "sealed-a",
        refresh_token: Some("sealed-r"),
        extras: Some("{\"realmId\":\"9\"}"),
        expires_at: Some(3_600_000),
        fingerprint: "f1",
        now: 2_500,
    };
    assert_eq!(store.store_connection_tokens(key, "node-a", tokens).await.unwrap(), Some(1));
    // A lease that was lost stores nothing.
    assert_eq!(store.store_connection_tokens(key, "node-b", tokens).await.unwrap(), None);
    let row = store.connection_tokens(key).await.unwrap().unwrap();
    assert_eq!((row.version, row.status.as_str(), row.refresh_owner.as_deref()), (1, "active", None));
    assert_eq!(row.refresh_token.as_deref(), Some("sealed-r"));
    // A later refresh without a new refresh token keeps the stored one; an expired lease is taken over.
    store.lease_connection_refresh(key, "node-a", 3_000, 33_000).await.unwrap().expect("leased again");
    let row = store.lease_connection_refresh(key, "node-b", 40_000, 70_000).await.unwrap().expect("taken over");
    assert_eq!(row.refresh_owner.as_deref(), Some("node-b"));
    let keep = NewTokens { access_token: "sealed-b", refresh_token: None, extras: None, ..tokens };
    assert_eq!(store.store_connection_tokens(key, "node-b", keep).await.unwrap(), Some(2));
    let row = store.connection_tokens(key).await.unwrap().unwrap();
    assert_eq!((row.access_token.as_deref(), row.refresh_token.as_deref()), (Some("sealed-b"), Some("sealed-r")));
    assert_eq!(row.extras.as_deref(), Some("{\"realmId\":\"9\"}"));
    // A provider's message is kept whatever it holds (a NUL PostgreSQL cannot store is scrubbed).
    store.lease_connection_refresh(key, "node-a", 80_000, 110_000).await.unwrap().expect("leased");
    store.end_connection_refresh(key, "node-a", "needs_reconnect", "invalid_grant: bad\0token", 81_000).await.unwrap();
    let row = store.connection_tokens(key).await.unwrap().unwrap();
    assert_eq!(row.status, "needs_reconnect");
    assert!(row.message.as_deref().unwrap().starts_with("invalid_grant: bad"), "{:?}", row.message);
    assert_eq!(row.refresh_owner, None);
    // Listed per integration; another tenant sees nothing.
    assert_eq!(
        store
            .list_connection_tokens(flowgate_store::IntegrationKey { tenant: "t1", integration: "crm" })
            .await
            .unwrap()
            .len(),
        1
    );
    let other = flowgate_store::IntegrationKey { tenant: "t2", integration: "crm" };
    assert!(store.list_connection_tokens(other).await.unwrap().is_empty());
});

conformance!(executions_in_a_time_range_dense_or_sparse, |store: SharedStore| async move {
    // A range with more executions than the store's probe (2,000) is read down the seq index,
    // a smaller one through the creation time; both must list exactly the range, newest first,
    // page after page.
    let v = setup(&store).await;
    let vg = setup_tenant(&store, "globex").await;
    let made: Vec<NewExecution> =
        (0..2_500).map(|i| NewExecution { created_at: T0 + i, ..exec(&format!("x{i:04}"), v, T0) }).collect();
    insert(&store, made).await;
    insert(&store, vec![NewExecution { tenant_id: "globex".into(), created_at: T0 + 2_000, ..exec("g", vg, T0) }])
        .await;
    let listed = |from: Option<i64>, to: Option<i64>| {
        let store = store.clone();
        async move {
            let mut out = Vec::new();
            let mut before = None;
            loop {
                let q = ExecutionQuery { tenant: TENANT.into(), limit: 500, from, to, before, ..Default::default() };
                let page = store.executions(&q).await.unwrap();
                let Some(last) = page.last() else { break };
                before = Some(last.seq);
                out.extend(page.into_iter().map(|r| r.id));
            }
            out
        }
    };
    let want = |r: std::ops::Range<i64>| r.rev().map(|i| format!("x{i:04}")).collect::<Vec<_>>();
    assert_eq!(listed(Some(T0 + 100), None).await, want(100..2_500), "dense, open-ended");
    assert_eq!(listed(Some(T0 + 100), Some(T0 + 2_300)).await, want(100..2_300), "dense, bounded");
    assert_eq!(listed(Some(T0 + 10), Some(T0 + 20)).await, want(10..20), "sparse");
    assert_eq!(listed(None, Some(T0 + 5)).await, want(0..5), "sparse, up to");
    assert!(listed(Some(T0 + 5_000), None).await.is_empty(), "nothing in the range");
});

// =============================================================================================
// Dry runs
// =============================================================================================

fn dry_run(id: &str, created_at: i64) -> flowgate_store::dry_runs::DryRun {
    flowgate_store::dry_runs::DryRun {
        id: id.into(),
        tenant_id: TENANT.into(),
        integration: INTEGRATION.into(),
        version: "1".into(),
        request: "{}".into(),
        node_id: "n1".into(),
        status: "done".into(),
        total: 0,
        done: 0,
        same: 0,
        different: 0,
        would_fail: 0,
        unanswered: 0,
        error: None,
        created_at,
        updated_at: created_at,
        finished_at: None,
    }
}

/// Creates a dry run with `n` results (numbered 1..=n).
async fn dry_run_with_results(store: &SharedStore, id: &str, created_at: i64, n: i64) {
    store.create_dry_run(&dry_run(id, created_at)).await.unwrap();
    let results: Vec<flowgate_store::dry_runs::DryRunResult> = (1..=n)
        .map(|k| flowgate_store::dry_runs::DryRunResult {
            dry_run_id: id.into(),
            n: k,
            execution_id: format!("{id}-x{k}"),
            flow: FLOW.into(),
            outcome: "same".into(),
            detail: "{}".into(),
        })
        .collect();
    let counts = flowgate_store::dry_runs::DryRunCounts { total: n, done: n, same: n, ..Default::default() };
    store.add_dry_run_results(id, &results, counts, created_at + 1).await.unwrap();
}

async fn dry_run_result_count(store: &SharedStore, id: &str) -> usize {
    store.dry_run_results(id, None, 0, 1_000_000).await.unwrap().len()
}

conformance!(expired_dry_runs_go_with_their_results_in_batches, |store: SharedStore| async move {
    // More results than one batch (5,000), a run with a few, an expired run without any, and
    // two kept: one created exactly at the cutoff (not before it) and one after.
    dry_run_with_results(&store, "dry_old_big", T0, 12_345).await;
    dry_run_with_results(&store, "dry_old_small", T0 + 10, 3).await;
    store.create_dry_run(&dry_run("dry_old_empty", T0 + 20)).await.unwrap();
    dry_run_with_results(&store, "dry_at_cutoff", T0 + 500, 4).await;
    dry_run_with_results(&store, "dry_new", T0 + 1_000, 7_001).await;
    assert_eq!(dry_run_result_count(&store, "dry_old_big").await, 12_345);

    assert_eq!(store.purge_dry_runs(T0 + 500).await.unwrap(), 3, "the three runs created before the cutoff");
    for id in ["dry_old_big", "dry_old_small", "dry_old_empty"] {
        assert!(store.dry_run(TENANT, id).await.unwrap().is_none(), "{id} is gone");
        assert_eq!(dry_run_result_count(&store, id).await, 0, "{id}'s results are gone");
    }
    let kept = store.dry_run(TENANT, "dry_new").await.unwrap().expect("the new run is kept");
    assert_eq!((kept.total, kept.done, kept.same), (7_001, 7_001, 7_001));
    assert_eq!(dry_run_result_count(&store, "dry_new").await, 7_001);
    let results = store.dry_run_results("dry_new", None, 0, 1_000_000).await.unwrap();
    assert_eq!(results.iter().map(|r| r.n).collect::<Vec<_>>(), (1..=7_001).collect::<Vec<_>>());
    assert!(store.dry_run(TENANT, "dry_at_cutoff").await.unwrap().is_some(), "created at the cutoff: kept");
    assert_eq!(dry_run_result_count(&store, "dry_at_cutoff").await, 4);

    // Again: nothing more to delete.
    assert_eq!(store.purge_dry_runs(T0 + 500).await.unwrap(), 0);
    assert_eq!(dry_run_result_count(&store, "dry_new").await, 7_001);
    // A later cutoff takes the rest.
    assert_eq!(store.purge_dry_runs(T0 + 1_001).await.unwrap(), 2);
    assert_eq!(dry_run_result_count(&store, "dry_new").await, 0);
    assert_eq!(dry_run_result_count(&store, "dry_at_cutoff").await, 0);
});

conformance!(purging_dry_runs_is_many_short_transactions, |store: SharedStore| async move {
    // A reader watching while an expired run of many results is purged sees it go in steps
    // (the first result left moves up, batch after batch), never all at once: no single
    // transaction holds the writer for the whole run.
    dry_run_with_results(&store, "dry_huge", T0, 60_000).await;
    let purge = tokio::spawn({
        let store = store.clone();
        async move { store.purge_dry_runs(T0 + 1).await.unwrap() }
    });
    let mut partial = None;
    loop {
        let first = store.dry_run_results("dry_huge", None, 0, 1).await.unwrap();
        match first.first() {
            Some(r) if r.n > 1 => partial = partial.or(Some(r.n)),
            Some(_) => {}
            None => break,
        }
        if purge.is_finished() {
            break;
        }
    }
    assert_eq!(purge.await.unwrap(), 1);
    assert!(partial.is_some(), "the results went in one transaction");
    assert_eq!(dry_run_result_count(&store, "dry_huge").await, 0);
    assert!(store.dry_run(TENANT, "dry_huge").await.unwrap().is_none());
});
