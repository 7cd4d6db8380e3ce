//! The node's memory budget for events in flight (issue 12).
//!
//! An event costs memory well beyond its size while it is received, parsed, committed and
//! run (its JSON tree, the values expressions see, step outputs): up to 20–40 times its
//! bytes for JSON of small values. Without a bound, fifty concurrent 10 MiB webhooks take
//! a node past 10 GB. So every event holds a [`Reservation`] of what its tree will cost
//! (`flowgate_expr::value::json_tree_bytes`: its size plus 64 bytes per value) from the
//! moment its body is read until its execution ends (or, when it is queued, until it is
//! committed): ingress grows the reservation as the body streams in, executions claimed
//! from the queue reserve before parsing their event. Callers beyond the budget wait a
//! little, then get `503` with `Retry-After`; workers wait until room is made.
//!
//! Big events (over 1/64 of the budget) may hold at most three quarters of it together, so
//! a stream of large payloads cannot shut small events out; one larger than that counts as
//! that much, so it still runs, alone among the big.
//!
//! Counted in KiB (a semaphore permit each).

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
    /// What big events may hold together (three quarters of `permits`).
    big: Arc<Semaphore>,
    big_capacity: u32,
}

/// Part of the budget, given back when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Reservation(Arc<std::sync::Mutex<Held>>);

#[derive(Debug, Default)]
struct Held {
    all: Option<OwnedSemaphorePermit>,
    big: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// KiB held.
    pub fn kib(&self) -> usize {
        self.0.lock().expect("reservation lock").all.as_ref().map_or(0, |p| p.num_permits())
    }

    fn new(all: Option<OwnedSemaphorePermit>, big: Option<OwnedSemaphorePermit>) -> Reservation {
        Reservation(Arc::new(std::sync::Mutex::new(Held { all, big })))
    }
}

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> MemoryBudget {
        let capacity = u32::try_from(bytes.div_ceil(UNIT).max(4)).unwrap_or(u32::MAX);
        let big_capacity = capacity / 4 * 3;
        MemoryBudget {
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            big: Arc::new(Semaphore::new(big_capacity as usize)),
            big_capacity,
        }
    }

    fn units(bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX)
    }

    /// Whether a reservation of `n` KiB in all is a big event's.
    fn is_big(&self, n: u32) -> bool {
        n > self.capacity / 64
    }

    /// Takes `n` permits of `sem`, waiting at most `wait` (`None`: forever).
    async fn take(sem: &Arc<Semaphore>, n: u32, wait: Option<Duration>) -> Option<OwnedSemaphorePermit> {
        if n == 0 {
            return None;
        }
        match sem.clone().try_acquire_many_owned(n) {
            Ok(p) => Some(p),
            Err(_) => match wait {
                Some(w) => tokio::time::timeout(w, sem.clone().acquire_many_owned(n)).await.ok()?.ok(),
                None => sem.clone().acquire_many_owned(n).await.ok(),
            },
        }
    }

    /// Takes room for `n` KiB more on top of `held`: from the big events' share first when
    /// the total makes it a big event. `Err(())`: no room in time.
    async fn room(
        &self,
        held: u32,
        n: u32,
        held_big: u32,
        wait: Option<Duration>,
    ) -> Result<(Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>), ()> {
        let total = held.saturating_add(n);
        let (n, big_n) = if self.is_big(total) {
            // A big event counts at most the big share, all of it from that share too.
            let cap = self.big_capacity;
            let n = n.min(cap.saturating_sub(held));
            (n, total.min(cap).saturating_sub(held_big))
        } else {
            (n, 0)
        };
        let big = match big_n {
            0 => None,
            m => Some(Self::take(&self.big, m, wait).await.ok_or(())?),
        };
        let all = match n {
            0 => None,
            m => Some(Self::take(&self.permits, m, wait).await.ok_or(())?),
        };
        Ok((all, big))
    }

    /// Reserves `bytes`, waiting at most `wait`; `None` when there was no room in time.
    pub async fn reserve(&self, bytes: usize, wait: Duration) -> Option<Reservation> {
        let (all, big) = self.room(0, Self::units(bytes), 0, Some(wait)).await.ok()?;
        Some(Reservation::new(all, big))
    }

    /// Reserves `bytes`, waiting as long as it takes.
    pub async fn reserve_waiting(&self, bytes: usize) -> Reservation {
        let (all, big) = self.room(0, Self::units(bytes), 0, None).await.unwrap_or((None, None));
        Reservation::new(all, big)
    }

    /// Adds room for `bytes` more to `r` (a body still arriving), waiting at most `wait`;
    /// false when there was no room in time (`r` keeps what it had).
    pub async fn grow(&self, r: &Reservation, bytes: usize, wait: Duration) -> bool {
        let (held, held_big) = {
            let h = r.0.lock().expect("reservation lock");
            (h.all.as_ref().map_or(0, |p| p.num_permits()) as u32, h.big.as_ref().map_or(0, |p| p.num_permits()) as u32)
        };
        let Ok((all, big)) = self.room(held, Self::units(bytes), held_big, Some(wait)).await else { return false };
        let mut h = r.0.lock().expect("reservation lock");
        let h = &mut *h;
        for (slot, more) in [(&mut h.all, all), (&mut h.big, big)] {
            if let Some(more) = more {
                match slot.as_mut() {
                    Some(p) => p.merge(more),
                    None => *slot = Some(more),
                }
            }
        }
        true
    }

    /// KiB free now (metrics, tests).
    pub fn available_kib(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn big_events_leave_room_for_small_ones() {
        let b = MemoryBudget::new(1024 * 1024); // 1,024 KiB: big events over 16 KiB share 768
        let big1 = b.reserve(600 * 1024, W).await.expect("a big event");
        assert!(b.reserve(600 * 1024, W).await.is_none(), "the big share is taken");
        let huge = b.reserve(10 * 1024 * 1024, W).await;
        assert!(huge.is_none(), "even a huge one counts only the big share, and waits");
        // Small events still fit in the quarter kept for them.
        let smalls: Vec<_> = futures_small(&b, 20).await;
        assert_eq!(smalls.len(), 20);
        drop(big1);
        let huge = b.reserve(10 * 1024 * 1024, W).await.expect("alone, it runs");
        assert_eq!(huge.kib(), 768);
        // Growing a small one into a big one moves it into the big share.
        drop(huge);
        let r = b.reserve(4 * 1024, W).await.unwrap();
        assert!(b.grow(&r, 100 * 1024, W).await);
        assert_eq!(r.kib(), 104);
        assert_eq!(b.big.available_permits(), 768 - 104);
    }

    async fn futures_small(b: &MemoryBudget, n: usize) -> Vec<Reservation> {
        let mut out = Vec::new();
        for _ in 0..n {
            if let Some(r) = b.reserve(8 * 1024, W).await {
                out.push(r);
            }
        }
        out
    }
}
