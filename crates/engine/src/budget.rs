//! The node's memory budget for events in flight (issue 12).
//!
//! An event costs memory well beyond its size while it is received, parsed, committed and
//! run (its JSON tree, the values expressions see, step outputs): about 10–25 times its
//! bytes for JSON of small values. Without a bound, a hundred concurrent 10 MiB webhooks
//! take a node past 20 GB. So every event holds a [`Reservation`] of its bytes from the
//! moment its body is read until its execution ends (or, when it is queued, until it is
//! committed): ingress grows the reservation as the body streams in, executions claimed
//! from the queue reserve their event's bytes before parsing it. Callers beyond the budget
//! wait a little, then get `503` with `Retry-After`; workers wait until room is made.
//!
//! Counted in KiB (a semaphore permit each); an event larger than the whole budget counts
//! as the whole budget, so it still runs, alone.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit.
const UNIT: usize = 1024;

/// The budget.
#[derive(Debug)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    capacity: u32,
}

/// Part of the budget, given back when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Reservation(Arc<std::sync::Mutex<Option<OwnedSemaphorePermit>>>);

impl Reservation {
    /// KiB held.
    pub fn kib(&self) -> usize {
        self.0.lock().expect("reservation lock").as_ref().map_or(0, |p| p.num_permits())
    }
}

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> MemoryBudget {
        let capacity = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        MemoryBudget { permits: Arc::new(Semaphore::new(capacity as usize)), capacity }
    }

    fn units(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX).min(self.capacity)
    }

    /// Reserves `bytes`, waiting at most `wait`; `None` when there was no room in time.
    pub async fn reserve(&self, bytes: usize, wait: Duration) -> Option<Reservation> {
        let n = self.units(bytes);
        let permit = match self.permits.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(wait, self.permits.clone().acquire_many_owned(n)).await.ok()?.ok()?,
        };
        Some(Reservation(Arc::new(std::sync::Mutex::new(Some(permit)))))
    }

    /// Reserves `bytes`, waiting as long as it takes.
    pub async fn reserve_waiting(&self, bytes: usize) -> Reservation {
        let n = self.units(bytes);
        let permit = self.permits.clone().acquire_many_owned(n).await.ok();
        Reservation(Arc::new(std::sync::Mutex::new(permit)))
    }

    /// Adds room for `bytes` more to `r` (a body still arriving), waiting at most `wait`;
    /// false when there was no room in time (`r` keeps what it had).
    pub async fn grow(&self, r: &Reservation, bytes: usize, wait: Duration) -> bool {
        let held = r.kib() as u32;
        let n = self.units(bytes).min(self.capacity.saturating_sub(held));
        if n == 0 {
            return true;
        }
        let more = match self.permits.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => match tokio::time::timeout(wait, self.permits.clone().acquire_many_owned(n)).await {
                Ok(Ok(p)) => p,
                _ => return false,
            },
        };
        let mut slot = r.0.lock().expect("reservation lock");
        match slot.as_mut() {
            Some(p) => p.merge(more),
            None => *slot = Some(more),
        }
        true
    }

    /// KiB free now (metrics, tests).
    pub fn available_kib(&self) -> usize {
        self.permits.available_permits()
    }
}
