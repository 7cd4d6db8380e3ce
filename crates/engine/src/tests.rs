//! Engine tests on a real SQLite file: apply, run, journal, resume.

use super::*;
use flowgate_store::Store;
use flowgate_store::sqlite::{Durability, SqliteStore};
use serde_json::json;

const ACME: &str = include_str!("../../../examples/acme-erp.yaml");

async fn engine(dir: &std::path::Path) -> Engine {
    let store = SqliteStore::open(&dir.join("flowgate.db"), Durability::Full).await.unwrap();
    store.create_tenant("t1", "Tenant one", 0).await.unwrap();
    Engine::start(Arc::new(store), EngineSettings::default(), Arc::new(SystemClock)).await.unwrap()
}

fn flow(e: &Engine, integration: &str, flow: &str) -> Arc<CompiledFlow> {
    e.registry().integration("t1", integration).unwrap().flows[flow].clone()
}

async fn run(e: &Engine, f: Arc<CompiledFlow>, trigger: Value) -> (String, SyncOutcome) {
    let s = e
        .submit(Submission {
            flow: f,
            trigger,
            kind: "test",
            auth_label: None,
            replay_of: None,
            wait: Wait::FirstAnswer,
            options: Default::default(),
        })
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), s.waiter.unwrap()).await.unwrap().unwrap();
    (s.id, out)
}

#[tokio::test]
async fn design_example_applies_and_price_quote_runs() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let (outcome, ci) = e.apply("t1", ACME, Format::Yaml).await.unwrap();
    assert!(matches!(outcome, PutOutcome::Created(_)));
    assert_eq!(ci.flows.len(), 2);
    assert!(e.registry().route("t1", "acme/quote").is_some());
    let (_, out) = run(&e, flow(&e, "acme-erp", "price-quote"), json!({"body": {"sku": "A", "qty": 10}})).await;
    let SyncOutcome::Responded(r) = out else { panic!("{out:?}") };
    assert_eq!((r.status, r.body.clone()), (201, json!({"kind": "big", "total": 125})));
    let (_, out) = run(&e, flow(&e, "acme-erp", "price-quote"), json!({"body": {"sku": "A", "qty": 2}})).await;
    let SyncOutcome::Responded(r) = out else { panic!("{out:?}") };
    assert_eq!((r.status, r.body.clone()), (200, json!({"kind": "small", "total": 25})));
    // Re-applying the same text keeps the version.
    let (outcome, _) = e.apply("t1", ACME, Format::Yaml).await.unwrap();
    assert!(matches!(outcome, PutOutcome::Unchanged(_)));
}

#[tokio::test]
async fn filter_failure_and_continue() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let doc = r#"
integration: t
flows:
  - flow: f
    trigger: { manual: {} }
    steps:
      - { id: only-big, filter: '.body.n > 5' }
      - { id: boom, transform: 'error("bad \(.body.n)")', onError: continue }
      - { id: after, transform: '{ seen: $steps.boom.error.message }' }
      - { id: fatal, transform: 'if $trigger.body.n > 50 then error("too big") else . end' }
"#;
    e.apply("t1", doc, Format::Yaml).await.unwrap();
    let f = flow(&e, "t", "f");
    let (_, out) = run(&e, f.clone(), json!({"body": {"n": 1}})).await;
    assert!(matches!(out, SyncOutcome::Finished { status: Status::Filtered, .. }), "{out:?}");
    let (id, out) = run(&e, f.clone(), json!({"body": {"n": 10}})).await;
    let SyncOutcome::Finished { status: Status::Succeeded, output, .. } = out else { panic!("{out:?}") };
    assert_eq!(output.unwrap(), json!({"seen": "bad 10"}));
    let journal = e.store().journal(&id).await.unwrap();
    let statuses: Vec<_> = journal.iter().map(|r| (r.step_id.as_str(), r.status.as_str())).collect();
    assert_eq!(
        statuses,
        vec![("only-big", "succeeded"), ("boom", "continued"), ("after", "succeeded"), ("fatal", "succeeded")]
    );
    let (id, out) = run(&e, f, json!({"body": {"n": 99}})).await;
    let SyncOutcome::Finished { status: Status::Failed, error, .. } = out else { panic!("{out:?}") };
    assert_eq!(error.unwrap()["step"], "fatal");
    let row = e.store().execution(Some("t1"), &id).await.unwrap().unwrap();
    assert_eq!(row.failed_step.as_deref(), Some("fatal"));
}

/// Regression: a caller that stops waiting after its event was handed to the committer (an
/// HTTP client hanging up) must not leave the committed execution leased and never run.
#[tokio::test]
async fn issue_2_abandoned_submit_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    e.apply("t1", "integration: t\nflows:\n  - flow: f\n    trigger: { manual: {} }\n    steps: [ { id: a, transform: '.body' } ]\n", Format::Yaml)
        .await
        .unwrap();
    let f = flow(&e, "t", "f");
    let fut = e.submit(Submission {
        flow: f,
        trigger: json!({"body": 1}),
        kind: "test",
        auth_label: None,
        replay_of: None,
        wait: Wait::No,
        options: Default::default(),
    });
    // Poll once (the event is queued for commit), then drop the future.
    assert!(futures_poll_once(fut).await.is_none());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let q = flowgate_store::ExecutionQuery { tenant: "t1".into(), limit: 10, ..Default::default() };
        let rows = e.store().executions(&q).await.unwrap();
        if rows.len() == 1 && rows[0].status() == Status::Succeeded {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the abandoned execution did not run: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a future once and drops it, returning its output if it was ready.
async fn futures_poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match fut.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
