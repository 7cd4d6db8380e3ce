//! Measures the store's commit path: round-trip cost and batch commits (not part of CI).
use flowgate_store::sqlite::{Durability, SqliteStore};
use flowgate_store::{NewExecution, Status, Store, WriteBatch};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("b.db"), Durability::Full).await.unwrap();
    store.create_tenant("t", "t", 0).await.unwrap();
    let big = r#"{"method":"POST","path":"bench/pipeline","headers":{"host":"127.0.0.1:18088","content-length":"86","content-type":"application/json"},"query":{},"body":{"id":7,"name":"Ann Example","email":"Ann@Example.com","qty":3,"active":true},"receivedAt":"2026-11-23T17:00:00.000Z","contentType":"application/json"}"#;
    let trigger = if std::env::var("SMALL").is_ok() { "{}" } else { big };
    for batch in [1usize, 8, 32, 64, 256] {
        let n = 4000 / batch.max(1);
        let t = Instant::now();
        for i in 0..n {
            let inserts = (0..batch)
                .map(|j| NewExecution {
                    id: format!("{batch}-{i}-{j}-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
                    tenant_id: "t".into(),
                    integration: "bench".into(),
                    flow: "pipeline".into(),
                    version_id: 1,
                    status: Status::Queued,
                    lease_owner: None,
                    lease_until: None,
                    trigger_kind: "webhook",
                    trigger: trigger.into(),
                    auth_label: None,
                    run_after: 0,
                    created_at: 0,
                    replay_of: None,
                    order_key: None,
                    max_running: None,
                    dedup: None,
                    parent_id: None,
                    traceparent: None,
                })
                .collect();
            store.commit(&WriteBatch { inserts, ..Default::default() }).await.unwrap();
        }
        let el = t.elapsed();
        println!(
            "batch {batch:>3}: {:.3} ms/commit, {:.0} rows/s",
            el.as_secs_f64() * 1000.0 / n as f64,
            (n * batch) as f64 / el.as_secs_f64()
        );
    }
}
