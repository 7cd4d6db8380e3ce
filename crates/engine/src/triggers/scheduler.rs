//! The scheduler: schedule triggers fire and poll triggers poll, on the leader only.
//!
//! The scheduler keeps, for each active schedule or poll flow, the last slot it accounted for
//! and when the next one is due; it sleeps until then (or a tick, or a wake-up when a flow
//! changes). A due schedule becomes executions committed *in the same transaction* as the
//! flow's new state (`trigger_state`), so a crash either fired a slot and remembered it, or
//! did neither: a slot never fires twice across a restart. Each execution also carries the
//! slot as its delivery identity, so two nodes that both believe they lead for a moment
//! (a leadership hand-over on PostgreSQL) cannot fire one slot twice either.
//!
//! Slots that passed while no scheduler ran (the server was down, a leader died) are
//! *missed*: the flow's `missed` policy says whether none (`skip`), the latest (`last`) or
//! each of them (`all`, bounded) runs. A slot is on time when it is at most [`GRACE`] old.
//!
//! A due poll starts a task (`super::poll`) that fetches the source, keeps the new items and
//! commits one execution per item with the poll's new state (cursor, remembered ids).

use super::poll::run as poll;
use crate::compile::{CompiledFlow, FlowTrigger, ScheduleSpec};
use crate::{Engine, Inner, TriggerEvent};
use flowgate_model::Missed;
use flowgate_store::FlowKeyBuf;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::oneshot;

/// A slot at most this old when the scheduler sees it is on time, not missed.
pub(crate) const GRACE: i64 = 60_000;
/// How long a slot's identity is remembered (the guard against a second leader).
const SLOT_IDENTITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the scheduler keeps per flow.
struct Entry {
    flow: Arc<CompiledFlow>,
    /// The trigger's stored state (JSON object).
    state: Value,
    /// Newest slot accounted for (fired or skipped).
    last_slot: i64,
    /// When this flow next needs the scheduler (epoch ms; `i64::MAX`: never).
    next_due: i64,
    /// The poll running now; it sends the state it committed (or `None`) when it ends.
    polling: Option<oneshot::Receiver<Option<Value>>>,
}

pub(crate) async fn scheduler_loop(inner: Arc<Inner>) {
    let engine = Engine { inner: inner.clone() };
    let mut entries: HashMap<FlowKeyBuf, Entry> = HashMap::new();
    let mut seen_generation = u64::MAX;
    loop {
        if inner.stopping.load(Ordering::Relaxed) {
            return;
        }
        if !inner.leading.load(Ordering::Acquire) {
            // Another node schedules; what this one knew may be stale when it leads again.
            entries.clear();
            seen_generation = u64::MAX;
        } else {
            let generation = inner.registry.generation();
            if generation != seen_generation {
                seen_generation = generation;
                sync(&inner, &mut entries).await;
            }
            let now = inner.clock.now_ms();
            for entry in entries.values_mut() {
                collect_poll(entry, now);
                if entry.next_due <= now && entry.polling.is_none() {
                    fire(&engine, entry, now).await;
                }
            }
        }
        let now = inner.clock.now_ms();
        let next = entries.values().map(|e| e.next_due).min().unwrap_or(i64::MAX);
        let sleep = Duration::from_millis((next.saturating_sub(now)).clamp(0, i64::MAX) as u64)
            .min(inner.settings.trigger_tick);
        tokio::select! {
            _ = inner.hard_stop.cancelled() => return,
            _ = inner.trigger_wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Brings the entries in line with the registry: removed and switched-off flows are dropped,
/// and every other one (re)reads its stored state, which an API call (a reset, a switch) may
/// have changed on any node.
async fn sync(inner: &Arc<Inner>, entries: &mut HashMap<FlowKeyBuf, Entry>) {
    let mut wanted: HashMap<FlowKeyBuf, Arc<CompiledFlow>> = HashMap::new();
    for ci in inner.registry.current_integrations() {
        for f in ci.flows.values() {
            if f.trigger.schedule().is_some() && inner.registry.is_active(f) {
                wanted.insert(f.key().into(), f.clone());
            }
        }
    }
    entries.retain(|k, _| wanted.contains_key(k));
    let now = inner.clock.now_ms();
    for (key, flow) in wanted {
        if entries.get(&key).is_some_and(|e| e.polling.is_some()) {
            // A poll is committing its own state; take that when it ends.
            if let Some(e) = entries.get_mut(&key) {
                e.flow = flow;
            }
            continue;
        }
        let stored = match inner.store.trigger_state(key.as_key()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, flow = %key.flow, "Cannot read a trigger's state; will retry.");
                entries.remove(&key);
                continue;
            }
        };
        let mut state = stored.and_then(|s| serde_json::from_str::<Value>(&s.state).ok()).unwrap_or_else(|| json!({}));
        let last_slot = match state["lastSlot"].as_i64() {
            Some(t) => t,
            None => {
                // First sight: slots before now are not "missed". Remember that at once, so a
                // restart before the first slot counts from here.
                let schedule = flow.trigger.schedule().expect("filtered above");
                let t = schedule.latest_at_or_before(now).unwrap_or(now);
                state["lastSlot"] = json!(t);
                let write = flow.state_row(&state, now);
                let batch = flowgate_store::WriteBatch { states: vec![write], ..Default::default() };
                if let Err(e) = inner.committer.commit(batch).await {
                    tracing::warn!(error = %e, flow = %key.flow, "Cannot store a trigger's state; will retry.");
                    entries.remove(&key);
                    continue;
                }
                t
            }
        };
        let next_due = next_due(&flow, last_slot, now);
        entries.insert(key, Entry { flow, state, last_slot, next_due, polling: None });
    }
}

/// When a flow next needs the scheduler: its first slot after the last one accounted for.
fn next_due(flow: &CompiledFlow, last_slot: i64, _now: i64) -> i64 {
    flow.trigger.schedule().and_then(|s| s.next_after(last_slot)).unwrap_or(i64::MAX)
}

/// Takes the state a finished poll committed.
fn collect_poll(entry: &mut Entry, now: i64) {
    let Some(rx) = entry.polling.as_mut() else { return };
    match rx.try_recv() {
        Err(oneshot::error::TryRecvError::Empty) => return,
        Ok(Some(state)) => entry.state = state,
        // The poll committed nothing (or its task ended abnormally): keep the state we had.
        Ok(None) | Err(oneshot::error::TryRecvError::Closed) => {}
    }
    entry.polling = None;
    entry.next_due = next_due(&entry.flow, entry.last_slot, now);
}

/// The flow is due: fire its slots (schedule) or start a poll.
async fn fire(engine: &Engine, entry: &mut Entry, now: i64) {
    let inner = &engine.inner;
    // Switched off since the last sync: do nothing (the next sync drops it).
    if !inner.registry.is_active(&entry.flow) {
        entry.next_due = i64::MAX;
        return;
    }
    let Some(schedule) = entry.flow.trigger.schedule() else { return };
    let latest = schedule.latest_at_or_before(now).unwrap_or(entry.last_slot).max(entry.last_slot);
    match &entry.flow.trigger {
        FlowTrigger::Schedule(spec) => {
            let slots = slots_to_fire(spec, entry.last_slot, latest, now);
            let mut state = entry.state.clone();
            state["lastSlot"] = json!(latest);
            let tz = schedule.timezone().to_owned();
            let events = slots
                .iter()
                .map(|&slot| TriggerEvent {
                    trigger: json!({
                        "scheduledAt": crate::clock::rfc3339(slot),
                        "firedAt": crate::clock::rfc3339(now),
                        "timezone": tz,
                        "schedule": schedule.describe(),
                        "missed": now - slot > GRACE,
                    }),
                    identity: Some((format!("slot:{slot}"), SLOT_IDENTITY)),
                })
                .collect();
            let flow = entry.flow.clone();
            match engine.submit_many(&flow, "schedule", events, Some(flow.state_row(&state, now))).await {
                Ok(ids) => {
                    if !slots.is_empty() {
                        tracing::info!(flow = %flow.slug, integration = %flow.integration, fired = ids.len(), "Schedule fired.");
                    }
                    entry.state = state;
                    entry.last_slot = latest;
                    entry.next_due = next_due(&flow, latest, now);
                }
                Err(e) => {
                    // Nothing was written: the same slots are due again shortly.
                    tracing::warn!(error = %e, flow = %flow.slug, "Cannot fire a schedule; will retry.");
                    entry.next_due = now + 1_000;
                }
            }
        }
        FlowTrigger::Poll(_) => {
            // One poll for however many slots passed; the next is due after `latest`.
            entry.last_slot = latest;
            entry.next_due = i64::MAX; // until the poll ends
            let (engine, flow, mut state) = (engine.clone(), entry.flow.clone(), entry.state.clone());
            state["lastSlot"] = json!(latest);
            let (tx, rx) = oneshot::channel();
            entry.polling = Some(rx);
            tokio::spawn(async move {
                let out = poll::run(&engine, &flow, state).await;
                let _ = tx.send(out);
                engine.inner.trigger_wake.notify_one();
            });
        }
        _ => {}
    }
}

/// The slots in `(last, latest]` that run now, oldest first, by the `missed` policy.
fn slots_to_fire(spec: &ScheduleSpec, last: i64, latest: i64, now: i64) -> Vec<i64> {
    if latest <= last {
        return Vec::new();
    }
    let on_time = now - latest <= GRACE;
    match spec.missed {
        Missed::Skip => {
            if on_time {
                vec![latest]
            } else {
                Vec::new()
            }
        }
        Missed::Last => vec![latest],
        Missed::All => {
            // Walk back from the latest: bounded by `max_missed` however long the downtime.
            let bound = spec.max_missed as usize + usize::from(on_time);
            let mut out = Vec::new();
            let mut at = latest;
            while out.len() < bound && at > last {
                out.push(at);
                match spec.schedule.latest_at_or_before(at - 1) {
                    Some(prev) => at = prev,
                    None => break,
                }
            }
            out.reverse();
            out
        }
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
