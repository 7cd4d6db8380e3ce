//! Triggers beyond webhooks (issue 5), over the real path: schedules driven by a manual clock
//! (presets, cron in a time zone across a daylight-saving change, missed slots across a
//! restart, switching off and on, one node of two firing), polls of a local HTTP source (pages
//! by next-URL, `Link` header and offset; new items between polls; a cursor in `$state`;
//! first-run policy; a failing source; each item once across a restart; reset), and manual
//! runs.
//!
//! Time: every server here runs on a [`ManualClock`] with a 20 ms scheduler tick, so a test
//! moves time by minutes or days in an instant and the scheduler notices within a tick.

#[macro_use]
mod common;

use common::{MockResponse, MockUpstream, Recorded, TestServer, eventually};
use flowgate_engine::{Clock, ManualClock};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MIN: i64 = 60_000;
/// 2026-01-05T00:00:00Z, a Monday.
const T0: i64 = 1_767_571_200_000;

fn rfc(ms: i64) -> String {
    flowgate_engine::clock::rfc3339(ms)
}

/// A server on `clock`, its scheduler ticking every 20 ms.
async fn start(clock: &Arc<ManualClock>) -> TestServer {
    let clock = clock.clone();
    TestServer::start_with(move |s| tick(s, clock)).await
}

fn tick(s: &mut flowgate_server::Settings, clock: Arc<ManualClock>) {
    s.clock = Some(clock);
    s.trigger_tick = Duration::from_millis(20);
    // Leadership is looked at every housekeeping interval (at most every 2 s).
    s.housekeeping_every = Duration::from_millis(100);
}

/// Every execution of a flow, oldest first.
async fn executions(s: &TestServer, integration: &str, flow: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/executions?integration={integration}&flow={flow}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = s.get_json(&path).await;
        for e in page["items"].as_array().unwrap() {
            out.push(s.execution(e["id"].as_str().unwrap()).await);
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out.reverse();
    out
}

/// Waits until the flow has exactly `n` executions, all ended; returns them oldest first.
async fn wait_count(s: &TestServer, integration: &str, flow: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} executions of {integration}/{flow}"), || async {
        let list = executions(s, integration, flow).await;
        (list.len() == n && list.iter().all(|e| e["status"] == "succeeded")).then_some(list)
    })
    .await
}

/// For negative checks only ("the scheduler did NOT fire"): doing nothing leaves no trace to
/// poll for, so this gives the scheduler about 15 of its 20 ms ticks to misbehave. Anything
/// that should happen is waited for instead (`wait_count`, `wait_slot`, `wait_polls`).
async fn quiet_ticks() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Waits until the flow's trigger state has `lastSlot` at `slot` (epoch ms): the scheduler
/// accounted for that slot, and what it fired for it (if anything) was committed with it.
async fn wait_slot(s: &TestServer, integration: &str, flow: &str, slot: i64) -> Value {
    eventually(&format!("{integration}/{flow} to account for the slot {}", rfc(slot)), || async {
        let v = s.get_json(&format!("/v1/integrations/{integration}/flows/{flow}/state")).await;
        (v["state"]["lastSlot"] == rfc(slot)).then(|| v["state"].clone())
    })
    .await
}

/// Waits until a poll flow has made `n` successful polls: what the `n`th found was committed
/// with its state, in one transaction.
async fn wait_polls(s: &TestServer, integration: &str, flow: &str, n: u64) -> Value {
    eventually(&format!("poll {n} of {integration}/{flow}"), || async {
        let v = s.get_json(&format!("/v1/integrations/{integration}/flows/{flow}/state")).await;
        (v["state"]["polls"] == n).then(|| v["state"].clone())
    })
    .await
}

/// Waits for the flow's trigger state to exist (the scheduler has seen the flow).
async fn wait_state(s: &TestServer, integration: &str, flow: &str) -> Value {
    eventually(&format!("the trigger state of {integration}/{flow}"), || async {
        let v = s.get_json(&format!("/v1/integrations/{integration}/flows/{flow}/state")).await;
        (!v["state"].is_null()).then(|| v["state"].clone())
    })
    .await
}

fn scheduled_at(e: &Value) -> &str {
    e["trigger"]["scheduledAt"].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------

const EVERY_15: &str = r#"
integration: ticks
flows:
  - flow: quarter
    trigger: { schedule: { every: 15min } }
    steps:
      - id: seen
        transform: '{ at: $trigger.scheduledAt, kind: $execution.trigger }'
"#;

backends!(schedule_fires_each_slot_once);
/// `every: 15min` fires at :00, :15, :30 of the wall clock, once per slot: not again a minute
/// later, not again after a restart; `$trigger` has the slot and the fire time; the flow's API
/// lists the next five slots.
async fn schedule_fires_each_slot_once() {
    let clock = Arc::new(ManualClock::new(T0 + 5 * MIN));
    let s = start(&clock).await;
    s.apply(EVERY_15).await;
    let state = wait_state(&s, "ticks", "quarter").await;
    assert_eq!(state["lastSlot"], rfc(T0), "first sight counts from the latest slot: {state}");
    let flow = s.get_json("/v1/integrations/ticks/flows/quarter").await;
    let next: Vec<String> = (1..=5).map(|i| rfc(T0 + i * 15 * MIN)).collect();
    assert_eq!(flow["nextRuns"], json!(next), "{flow:#}");
    assert_eq!(flow["trigger"]["kind"], "schedule");
    assert_eq!(flow["trigger"]["timezone"], "UTC");
    quiet_ticks().await; // negative: nothing fires before :15
    assert!(executions(&s, "ticks", "quarter").await.is_empty(), "nothing is due before :15");

    clock.advance(Duration::from_millis(10 * MIN as u64));
    let list = wait_count(&s, "ticks", "quarter", 1).await;
    let e = &list[0];
    assert_eq!(scheduled_at(e), rfc(T0 + 15 * MIN));
    assert_eq!(e["trigger"]["firedAt"], rfc(T0 + 15 * MIN));
    assert_eq!(e["trigger"]["missed"], false);
    assert_eq!(e["triggerKind"], "schedule");
    assert_eq!(e["output"], json!({ "at": rfc(T0 + 15 * MIN), "kind": "schedule" }));

    clock.advance(Duration::from_millis(MIN as u64));
    quiet_ticks().await; // negative: the :15 slot does not fire again at :16
    assert_eq!(executions(&s, "ticks", "quarter").await.len(), 1, "one slot, one execution");

    let s = s
        .restart({
            let clock = clock.clone();
            move |st| tick(st, clock)
        })
        .await;
    quiet_ticks().await; // negative: the restarted scheduler does not fire :15 again
    assert_eq!(executions(&s, "ticks", "quarter").await.len(), 1, "a restart does not fire the slot again");

    clock.advance(Duration::from_millis(14 * MIN as u64));
    let list = wait_count(&s, "ticks", "quarter", 2).await;
    assert_eq!(scheduled_at(&list[1]), rfc(T0 + 30 * MIN));
}

const MISSED: &str = r#"
integration: missed
flows:
  - flow: skip
    trigger: { schedule: { every: 15min } }
    steps: [ { id: s, transform: '$trigger' } ]
  - flow: last
    trigger: { schedule: { every: 15min, missed: last } }
    steps: [ { id: s, transform: '$trigger' } ]
  - flow: all
    trigger: { schedule: { every: 15min, missed: all } }
    steps: [ { id: s, transform: '$trigger' } ]
  - flow: few
    trigger: { schedule: { every: 15min, missed: all, maxMissed: 2 } }
    steps: [ { id: s, transform: '$trigger' } ]
"#;

backends!(missed_slots_follow_the_policy);
/// The server is down for an hour (four slots pass): `skip` runs none of them, `last` runs
/// the latest once, `all` runs each oldest first, `maxMissed: 2` the latest two; missed runs
/// say so in `$trigger.missed`. The next slot after that runs normally everywhere.
async fn missed_slots_follow_the_policy() {
    let clock = Arc::new(ManualClock::new(T0 + MIN));
    let s = start(&clock).await;
    s.apply(MISSED).await;
    for f in ["skip", "last", "all", "few"] {
        wait_state(&s, "missed", f).await;
    }
    let s = s
        .restart({
            let clock = clock.clone();
            move |st| {
                // While it is down: an hour and a bit, so even the latest slot is late.
                clock.advance(Duration::from_millis(61 * MIN as u64));
                tick(st, clock)
            }
        })
        .await;
    let slots = |from: i64, to: i64| (from..=to).map(|i| rfc(T0 + i * 15 * MIN)).collect::<Vec<_>>();
    let last = wait_count(&s, "missed", "last", 1).await;
    assert_eq!(scheduled_at(&last[0]), rfc(T0 + 60 * MIN));
    assert_eq!(last[0]["trigger"]["missed"], true);
    let all = wait_count(&s, "missed", "all", 4).await;
    assert_eq!(all.iter().map(|e| scheduled_at(e).to_owned()).collect::<Vec<_>>(), slots(1, 4));
    let few = wait_count(&s, "missed", "few", 2).await;
    assert_eq!(few.iter().map(|e| scheduled_at(e).to_owned()).collect::<Vec<_>>(), slots(3, 4));
    // `skip` accounts for the missed slots without running them: once its state says so,
    // whatever it would have fired is committed.
    wait_slot(&s, "missed", "skip", T0 + 60 * MIN).await;
    assert!(executions(&s, "missed", "skip").await.is_empty(), "skip runs no missed slot");

    clock.advance(Duration::from_millis(14 * MIN as u64)); // T0 + 75 min
    for (flow, n) in [("skip", 1), ("last", 2), ("all", 5), ("few", 3)] {
        let list = wait_count(&s, "missed", flow, n).await;
        assert_eq!(scheduled_at(list.last().unwrap()), rfc(T0 + 75 * MIN), "{flow}");
        assert_eq!(list.last().unwrap()["trigger"]["missed"], false, "{flow}");
    }
}

const OSLO: &str = r#"
integration: oslo
flows:
  - flow: half-past-two
    trigger: { schedule: { cron: "30 2 * * *", timezone: Europe/Oslo } }
    steps: [ { id: s, transform: '$trigger' } ]
  - flow: midnight
    trigger: { schedule: { every: daily, timezone: Europe/Oslo } }
    steps: [ { id: s, transform: '$trigger' } ]
  - flow: weekdays
    trigger: { schedule: { cron: "0 7 * * MON-FRI", timezone: Europe/Oslo } }
    steps: [ { id: s, transform: '$trigger' } ]
"#;

/// 2026-03-28T12:00:00Z, a Saturday; Oslo moves to summer time on Sunday the 29th at 02:00.
const DST_EVE: i64 = 1_774_699_200_000;

fn at(text: &str) -> i64 {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect("RFC 3339");
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

backends!(cron_in_a_time_zone_across_daylight_saving);
/// Europe/Oslo on the night it moves to summer time: 02:30 does not exist that night, so
/// `30 2 * * *` fires once at 03:00 local (01:00 UTC), then at 02:30 CEST (00:30 UTC); `daily`
/// is local midnight (23:00 UTC in winter, 22:00 UTC in summer); weekdays skip the weekend.
/// The computed slots are the ones that fire.
async fn cron_in_a_time_zone_across_daylight_saving() {
    let clock = Arc::new(ManualClock::new(DST_EVE));
    let s = start(&clock).await;
    s.apply(OSLO).await;
    let next = |flow: &'static str| {
        let s = &s;
        async move { s.get_json(&format!("/v1/integrations/oslo/flows/{flow}")).await["nextRuns"].clone() }
    };
    let runs = next("half-past-two").await;
    assert_eq!(runs[0], "2026-03-29T01:00:00.000Z", "the skipped 02:30 fires at 03:00 CEST: {runs}");
    assert_eq!(runs[1], "2026-03-30T00:30:00.000Z", "{runs}");
    let runs = next("midnight").await;
    assert_eq!(runs[0], "2026-03-28T23:00:00.000Z", "{runs}");
    assert_eq!(runs[1], "2026-03-29T22:00:00.000Z", "{runs}");
    let runs = next("weekdays").await;
    assert_eq!(runs[0], "2026-03-30T05:00:00.000Z", "Monday 07:00 CEST: {runs}");
    let flow = s.get_json("/v1/integrations/oslo/flows/half-past-two").await;
    assert_eq!(flow["trigger"]["timezone"], "Europe/Oslo");
    for f in ["half-past-two", "midnight", "weekdays"] {
        wait_state(&s, "oslo", f).await;
    }

    // Local midnight, then the night's one half-past-two.
    clock.advance(Duration::from_millis((at("2026-03-28T23:00:00Z") - DST_EVE) as u64));
    let list = wait_count(&s, "oslo", "midnight", 1).await;
    assert_eq!(scheduled_at(&list[0]), "2026-03-28T23:00:00.000Z");
    clock.advance(Duration::from_millis((at("2026-03-29T01:00:00Z") - at("2026-03-28T23:00:00Z")) as u64));
    let list = wait_count(&s, "oslo", "half-past-two", 1).await;
    assert_eq!(scheduled_at(&list[0]), "2026-03-29T01:00:00.000Z");
    assert_eq!(list[0]["trigger"]["timezone"], "Europe/Oslo");
    quiet_ticks().await; // negative: no second half-past-two that night, no weekday run
    assert_eq!(executions(&s, "oslo", "half-past-two").await.len(), 1, "once that night");
    assert!(executions(&s, "oslo", "weekdays").await.is_empty());
}

backends!(switching_a_schedule_off_and_on);
/// A switched-off schedule does not fire and lists no next runs; switched on again it does
/// not run the slot it missed while off, and fires from the next one.
async fn switching_a_schedule_off_and_on() {
    let clock = Arc::new(ManualClock::new(T0 + MIN));
    let s = start(&clock).await;
    s.apply(EVERY_15).await;
    wait_state(&s, "ticks", "quarter").await;
    let (status, _, v) =
        common::send(s.api(reqwest::Method::POST, "/v1/integrations/ticks/flows/quarter/deactivate")).await;
    assert_eq!(status, 200, "{v}");
    let flow = s.get_json("/v1/integrations/ticks/flows/quarter").await;
    assert_eq!((flow["active"].clone(), flow["nextRuns"].clone()), (json!(false), json!([])), "{flow:#}");

    clock.advance(Duration::from_millis(16 * MIN as u64)); // the :15 slot passes while off
    quiet_ticks().await; // negative: a switched-off schedule leaves no trace to wait for
    assert!(executions(&s, "ticks", "quarter").await.is_empty(), "a switched-off schedule does not fire");

    clock.advance(Duration::from_millis(4 * MIN as u64)); // 00:21
    let (status, _, v) =
        common::send(s.api(reqwest::Method::POST, "/v1/integrations/ticks/flows/quarter/activate")).await;
    assert_eq!(status, 200, "{v}");
    quiet_ticks().await; // negative: switching on (which moved `lastSlot` to :15) runs nothing
    assert!(executions(&s, "ticks", "quarter").await.is_empty(), "the slot missed while off is not run");
    let flow = s.get_json("/v1/integrations/ticks/flows/quarter").await;
    assert_eq!(flow["active"], true);
    assert_eq!(flow["nextRuns"][0], rfc(T0 + 30 * MIN));

    clock.advance(Duration::from_millis(9 * MIN as u64)); // 00:30
    let list = wait_count(&s, "ticks", "quarter", 1).await;
    assert_eq!(scheduled_at(&list[0]), rfc(T0 + 30 * MIN));
    // Unknown flows: 404 with a JSON error.
    let (status, _, v) = common::send(s.api(reqwest::Method::POST, "/v1/integrations/ticks/flows/nope/activate")).await;
    assert_eq!(status, 404);
    common::assert_error(&v, "not_found");
}

/// Two nodes share one PostgreSQL database: one slot fires once, whichever node leads; when
/// the leader stops, the other takes over and the next slot still fires once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_fires_once_across_nodes() {
    let Some(url) = common::postgres_url() else {
        common::skip_or_fail("FLOWGATE_TEST_POSTGRES_URL is unset");
        return;
    };
    common::BACKEND
        .scope(common::Backend::Postgres(url), async {
            let clock = Arc::new(ManualClock::new(T0 + MIN));
            let a = start(&clock).await;
            a.apply(EVERY_15).await;
            let b = a
                .start_peer({
                    let clock = clock.clone();
                    move |st| tick(st, clock)
                })
                .await
                .expect("a peer on PostgreSQL");
            wait_state(&a, "ticks", "quarter").await;
            clock.advance(Duration::from_millis(14 * MIN as u64));
            wait_count(&a, "ticks", "quarter", 1).await;
            quiet_ticks().await; // negative: the other node does not fire the slot too
            assert_eq!(executions(&b, "ticks", "quarter").await.len(), 1, "two nodes, one execution per slot");
            // Whichever led, stop `a`; `b` leads then (if it did not already).
            a.stop().await;
            clock.advance(Duration::from_millis(15 * MIN as u64));
            let list = wait_count(&b, "ticks", "quarter", 2).await;
            assert_eq!(scheduled_at(&list[1]), rfc(T0 + 30 * MIN));
            quiet_ticks().await; // negative: the new leader fires :30 only once
            assert_eq!(executions(&b, "ticks", "quarter").await.len(), 2);
        })
        .await;
}

backends!(invalid_schedules_are_reported_where_they_are);
/// Bad presets, cron expressions, time zones and both-or-neither are 422s that point at the
/// field.
async fn invalid_schedules_are_reported_where_they_are() {
    let s = TestServer::start().await;
    let doc = r#"
integration: bad
flows:
  - flow: a
    trigger: { schedule: { every: 7min } }
    steps: [ { id: s, transform: '.' } ]
  - flow: b
    trigger: { schedule: { cron: "61 * * * *" } }
    steps: [ { id: s, transform: '.' } ]
  - flow: c
    trigger: { schedule: { every: daily, timezone: Mars/Olympus } }
    steps: [ { id: s, transform: '.' } ]
  - flow: d
    trigger: { schedule: { every: daily, cron: "0 0 * * *" } }
    steps: [ { id: s, transform: '.' } ]
  - flow: e
    trigger: { poll: { every: 5min, request: { url: "http://x.example" }, items: '.body' } }
    steps: [ { id: s, transform: '.' } ]
"#;
    let (status, v) = s.put_integration("bad", doc).await;
    assert_eq!(status, 422, "{v}");
    let problems = v["error"]["details"]["problems"].as_array().unwrap();
    let paths: Vec<&str> = problems.iter().map(|p| p["path"].as_str().unwrap()).collect();
    for want in [
        "flows[0].trigger.schedule.every",
        "flows[1].trigger.schedule.cron",
        "flows[2].trigger.schedule.timezone",
        "flows[3].trigger.schedule",
        "flows[4].trigger.poll",
    ] {
        assert!(paths.contains(&want), "no problem at {want}: {problems:#?}");
    }
    assert!(problems.iter().all(|p| p["line"].as_u64().is_some()), "every problem has a line: {problems:#?}");
}

// ---------------------------------------------------------------------------------------
// Polls
// ---------------------------------------------------------------------------------------

/// A local paginated source of items `{id, updatedAt, name}`: the shared mock upstream, its
/// behaviour serving `GET /next`, `/link`, `/offset` and `/since` from `items` (503 while
/// `down`).
#[derive(Clone)]
struct Source {
    items: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
    mock: MockUpstream,
}

impl Source {
    async fn start() -> (Source, String) {
        let items = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let (i, d) = (items.clone(), down.clone());
        let mock = MockUpstream::with(move |r| page(&i, &d, r)).await;
        let url = mock.url.clone();
        (Source { items, down, mock }, url)
    }

    fn add(&self, from: u64, to: u64) {
        let mut items = self.items.lock().unwrap();
        for i in from..=to {
            items.push(json!({ "id": format!("item-{i}"), "updatedAt": format!("2026-01-05T00:{i:02}:00Z"), "name": format!("Item {i}") }));
        }
    }

    /// The query parameters of each request to `path`, in order.
    fn seen(&self, path: &str) -> Vec<HashMap<String, String>> {
        self.mock.requests(path).iter().map(Recorded::params).collect()
    }
}

/// One page of the source: by next-URL in the body (`/next?page=`), `Link` header
/// (`/link?p=`), offset (`/offset?offset=`), two items a page; or every item updated after
/// `since` (all without it), oldest first (`/since`).
fn page(items: &Mutex<Vec<Value>>, down: &AtomicBool, r: &Recorded) -> MockResponse {
    if r.method != "GET" {
        return MockResponse::status(405);
    }
    let q = r.params();
    let num = |name: &str, default: usize| q.get(name).and_then(|p| p.parse().ok()).unwrap_or(default);
    let (start, per) = match r.path.as_str() {
        "/next" => ((num("page", 1) - 1) * 2, 2),
        "/link" => ((num("p", 1) - 1) * 2, 2),
        "/offset" => (num("offset", 0), 2),
        "/since" => (0, usize::MAX),
        _ => return MockResponse::status(404),
    };
    if down.load(Ordering::SeqCst) {
        return MockResponse::text(503, "down for maintenance");
    }
    let (items, total) = {
        let all = items.lock().unwrap();
        (all.iter().skip(start).take(per).cloned().collect::<Vec<Value>>(), all.len())
    };
    match r.path.as_str() {
        "/next" => {
            let page = num("page", 1);
            let next = (page * 2 < total).then(|| format!("/next?page={}", page + 1));
            MockResponse::json(200, json!({ "items": items, "next": next }))
        }
        "/link" => {
            let page = num("p", 1);
            let host = r.header("host").unwrap_or("");
            let mut links = vec![format!("<http://{host}/link?p=1>; rel=\"first\"")];
            if page * 2 < total {
                links.push(format!("<http://{host}/link?p={}>; rel=\"next\"", page + 1));
            }
            MockResponse::json(200, json!(items)).header("link", &links.join(", "))
        }
        "/offset" => MockResponse::json(200, json!({ "data": items })),
        _ => {
            let since = q.get("since").cloned().unwrap_or_default();
            let items: Vec<Value> =
                items.into_iter().filter(|i| i["updatedAt"].as_str().unwrap_or("") > since.as_str()).collect();
            MockResponse::json(200, json!({ "items": items }))
        }
    }
}

fn poll_doc(base: &str) -> String {
    r#"
integration: feed
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: by-id
    trigger:
      poll:
        every: 1min
        request: { url: "{{ $config.base }}/next" }
        items: '.body.items'
        id: '.id'
        paginate: { nextUrl: '.body.next' }
    steps: [ { id: s, transform: '$trigger.body.id' } ]
  - flow: by-link
    trigger:
      poll:
        every: 1min
        request: { url: "{{ $config.base }}/link" }
        items: '.body'
        id: '.id'
        paginate: { linkHeader: true }
    steps: [ { id: s, transform: '$trigger.body.id' } ]
  - flow: by-offset
    trigger:
      poll:
        every: 1min
        request: { url: "{{ $config.base }}/offset", query: { limit: 2 } }
        items: '.body.data'
        id: '.id'
        paginate: { offsetParam: offset, maxPages: 20 }
    steps: [ { id: s, transform: '$trigger.body.id' } ]
"#
    .replace("BASE", base)
}

/// How many executions each item id has, over a flow's executions.
fn per_item(list: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in list {
        *m.entry(e["trigger"]["body"]["id"].as_str().unwrap_or("?").to_owned()).or_insert(0) += 1;
    }
    m
}

fn once_each(from: u64, to: u64) -> BTreeMap<String, usize> {
    (from..=to).map(|i| (format!("item-{i}"), 1)).collect()
}

backends!(polls_run_each_new_item_once_across_pages_and_restarts);
/// Five items over three pages (next-URL in the body, `Link` header, offset parameter): the
/// first poll runs each once (`firstRun: all`); two new items run once at the next poll; after
/// a restart nothing runs again, and an item added then runs once. Resetting the state makes
/// the next poll a first run: every item runs again (issue 14: the items' identities,
/// remembered apart, are forgotten with it).
async fn polls_run_each_new_item_once_across_pages_and_restarts() {
    let (src, base) = Source::start().await;
    src.add(1, 5);
    let clock = Arc::new(ManualClock::new(T0 + 30_000));
    let s = start(&clock).await;
    s.apply(&poll_doc(&base)).await;
    let flows = ["by-id", "by-link", "by-offset"];
    for f in flows {
        wait_state(&s, "feed", f).await;
    }
    let step = |n| clock.advance(Duration::from_millis(n * MIN as u64));
    step(1);
    for f in flows {
        let list = wait_count(&s, "feed", f, 5).await;
        assert_eq!(per_item(&list), once_each(1, 5), "{f}");
        assert_eq!(list[0]["triggerKind"], "poll");
        assert_eq!(list[0]["output"], "item-1", "items run in the order they came");
    }
    let state = s.get_json("/v1/integrations/feed/flows/by-id/state").await["state"].clone();
    assert_eq!(
        (state["polls"].clone(), state["lastPages"].clone(), state["lastStatus"].clone()),
        (json!(1), json!(3), json!("ok")),
        "{state}"
    );
    assert_eq!(state["remembered"], 5, "{state}");

    src.add(6, 7);
    step(1);
    for f in flows {
        assert_eq!(per_item(&wait_count(&s, "feed", f, 7).await), once_each(1, 7), "{f}");
    }

    let s = s
        .restart({
            let clock = clock.clone();
            move |st| tick(st, clock)
        })
        .await;
    step(1);
    // Each flow's poll after the restart committed what it found with its state.
    for f in flows {
        wait_polls(&s, "feed", f, 3).await;
    }
    for f in flows {
        assert_eq!(executions(&s, "feed", f).await.len(), 7, "{f}: nothing runs again after a restart");
    }
    src.add(8, 8);
    step(1);
    for f in flows {
        assert_eq!(per_item(&wait_count(&s, "feed", f, 8).await), once_each(1, 8), "{f}");
    }

    let (status, _, v) = common::send(s.api(reqwest::Method::DELETE, "/v1/integrations/feed/flows/by-id/state")).await;
    assert_eq!((status, v["reset"].clone()), (200, json!(true)), "{v}");
    eventually("the reset state to be re-created", || async {
        let v = s.get_json("/v1/integrations/feed/flows/by-id/state").await["state"].clone();
        (!v.is_null() && v["polls"].is_null()).then_some(())
    })
    .await;
    step(1);
    let list = wait_count(&s, "feed", "by-id", 16).await;
    let again = per_item(&list);
    assert!(again.values().all(|n| *n == 2), "after a reset, firstRun: all runs every item again: {again:?}");
    // by-link's poll of the same slot (its fifth) is committed, with whatever it found.
    wait_polls(&s, "feed", "by-link", 5).await;
    assert_eq!(executions(&s, "feed", "by-link").await.len(), 8, "other flows keep what they saw");
}

fn cursor_doc(base: &str) -> String {
    r#"
integration: changes
config:
  base: { type: string, default: "BASE" }
flows:
  - flow: since
    trigger:
      poll:
        every: 5min
        request: { url: "{{ $config.base }}/since", query: { since: "{{ $state.cursor }}" } }
        items: '.body.items'
        cursor: '.updatedAt'
        firstRun: now
    steps: [ { id: s, transform: '$trigger.body.id' } ]
"#
    .replace("BASE", base)
}

backends!(poll_cursor_first_run_now_and_a_failing_source);
/// `cursor` with `firstRun: now`: the first poll only records the greatest `updatedAt`; the
/// next polls ask for items `since` it (`$state.cursor` in the request) and run only the newer
/// ones. While the source fails, polls record the error and run nothing; after it recovers
/// nothing is lost or repeated. Resetting the state makes the next poll a first run again.
async fn poll_cursor_first_run_now_and_a_failing_source() {
    let (src, base) = Source::start().await;
    src.add(1, 3);
    let clock = Arc::new(ManualClock::new(T0 + MIN));
    let s = start(&clock).await;
    s.apply(&cursor_doc(&base)).await;
    wait_state(&s, "changes", "since").await;
    let step = |n| clock.advance(Duration::from_millis(n * MIN as u64));
    let polls = |n: u64| {
        let s = &s;
        async move {
            eventually(&format!("poll {n}"), || async {
                let v = s.get_json("/v1/integrations/changes/flows/since/state").await["state"].clone();
                (v["polls"].as_u64().unwrap_or(0) + v["failures"].as_u64().unwrap_or(0) >= n).then_some(v)
            })
            .await
        }
    };
    step(5);
    let state = polls(1).await;
    assert_eq!(state["cursor"], "2026-01-05T00:03:00Z", "{state}");
    // The poll's executions (none) were committed with the state `polls` returned.
    assert!(executions(&s, "changes", "since").await.is_empty(), "firstRun: now runs nothing");
    assert_eq!(src.seen("/since")[0].get("since"), None, "no cursor yet: a null parameter is left out");

    src.add(4, 5);
    step(5);
    assert_eq!(per_item(&wait_count(&s, "changes", "since", 2).await), once_each(4, 5));
    assert_eq!(
        src.seen("/since").last().and_then(|q| q.get("since").cloned()).as_deref(),
        Some("2026-01-05T00:03:00Z"),
        "the request carried $state.cursor"
    );

    src.down.store(true, Ordering::SeqCst);
    src.add(6, 6);
    step(5);
    let state = polls(3).await;
    assert_eq!(state["lastStatus"], "error", "{state}");
    assert_eq!(state["lastError"]["code"], "http_status", "{state}");
    assert_eq!(state["cursor"], "2026-01-05T00:05:00Z", "a failed poll keeps the cursor: {state}");
    let flow = s.get_json("/v1/integrations/changes/flows/since").await;
    assert_eq!(flow["triggerState"]["lastStatus"], "error", "visible on the flow: {flow:#}");
    src.down.store(false, Ordering::SeqCst);
    step(5);
    assert_eq!(per_item(&wait_count(&s, "changes", "since", 3).await), once_each(4, 6));

    let (status, _, v) =
        common::send(s.api(reqwest::Method::DELETE, "/v1/integrations/changes/flows/since/state")).await;
    assert_eq!((status, v["reset"].clone()), (200, json!(true)), "{v}");
    eventually("the reset state to be re-created", || async {
        let v = s.get_json("/v1/integrations/changes/flows/since/state").await["state"].clone();
        (!v.is_null() && v["polls"].is_null()).then_some(())
    })
    .await;
    src.add(7, 7);
    step(5);
    let state = polls(1).await;
    assert_eq!(state["cursor"], "2026-01-05T00:07:00Z", "{state}");
    // As above: that first poll's executions (none) were committed with its state.
    assert_eq!(executions(&s, "changes", "since").await.len(), 3, "after a reset, firstRun: now runs nothing again");

    // A flow without state: 409 with a JSON error.
    s.apply(MANUAL).await;
    let (status, _, v) = common::send(s.api(reqwest::Method::GET, "/v1/integrations/hand/flows/go/state")).await;
    assert_eq!(status, 409, "{v}");
    common::assert_error(&v, "no_trigger_state");
}

// ---------------------------------------------------------------------------------------
// Manual runs
// ---------------------------------------------------------------------------------------

const MANUAL: &str = r#"
integration: hand
flows:
  - flow: go
    trigger: { manual: {} }
    steps: [ { id: double, transform: '.body.n * 2' } ]
"#;

backends!(manual_and_test_runs);
/// A manual flow runs only when asked (`manual`); any other flow may be test-run with a given
/// payload, marked `test` in its history.
async fn manual_and_test_runs() {
    let clock = Arc::new(ManualClock::new(T0 + MIN));
    let s = start(&clock).await;
    s.apply(MANUAL).await;
    s.apply(EVERY_15).await;
    let r = s.run_flow("hand", "go", json!({ "n": 2 })).await;
    assert_eq!((r["status"].clone(), r["output"].clone()), (json!("succeeded"), json!(4)), "{r}");
    assert_eq!(s.execution(r["executionId"].as_str().unwrap()).await["triggerKind"], "manual");
    let r = s.run_flow("ticks", "quarter", json!({})).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    // A schedule flow run by hand gets a slot's fields, as if one were due now (issue 14).
    assert_eq!(r["output"]["at"], rfc(clock.now_ms()), "{r}");
    let ex = s.execution(r["executionId"].as_str().unwrap()).await;
    assert_eq!(ex["triggerKind"], "test");
    assert_eq!(ex["createdAt"], rfc(clock.now_ms()), "runs are stamped with the server's clock");
}
