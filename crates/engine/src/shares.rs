//! Fair shares of a node's workers (issue 12): no tenant, and no flow, may hold more than its
//! share of the node's execution slots, so one tenant's hanging target cannot starve everyone
//! else. A tenant may hold half of them, a flow a quarter (by default); beyond that its
//! events wait in the queue, which claims skip while it is at its share, and other tenants'
//! events keep running at once.
//!
//! Counted on this node only: in a cluster each node shares its own slots. The flow's own
//! `concurrency` (a cap across nodes) is enforced by claims as before.

use flowgate_store::ShareRoom;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Running executions per tenant and per flow on this node.
#[derive(Debug)]
pub(crate) struct Shares {
    counts: Mutex<Counts>,
    tenant_cap: usize,
    flow_cap: usize,
}

#[derive(Debug, Default)]
struct Counts {
    tenants: HashMap<String, usize>,
    flows: HashMap<String, usize>,
}

/// A running execution's place in the shares; given back on drop.
pub(crate) struct Share {
    shares: Arc<Shares>,
    tenant: String,
    flow: String,
    /// Called when a tenant or flow that was at its share has room again.
    on_room: Option<Box<dyn Fn() + Send + Sync>>,
}

impl Shares {
    /// Shares of `slots` workers: `tenant_pct` and `flow_pct` percent of them (at least one).
    pub(crate) fn new(slots: usize, tenant_pct: u8, flow_pct: u8) -> Shares {
        let part = |pct: u8| (slots * usize::from(pct.min(100)) / 100).max(1);
        Shares { counts: Mutex::default(), tenant_cap: part(tenant_pct), flow_cap: part(flow_pct) }
    }

    /// Takes a place if the tenant and the flow are under their shares.
    pub(crate) fn try_take(self: &Arc<Self>, tenant: &str, flow: String) -> Option<Share> {
        let mut c = self.counts.lock().expect("shares lock");
        let t = c.tenants.get(tenant).copied().unwrap_or(0);
        let f = c.flows.get(&flow).copied().unwrap_or(0);
        if t >= self.tenant_cap || f >= self.flow_cap {
            return None;
        }
        *c.tenants.entry(tenant.to_owned()).or_default() += 1;
        *c.flows.entry(flow.clone()).or_default() += 1;
        Some(Share { shares: self.clone(), tenant: tenant.to_owned(), flow, on_room: None })
    }

    /// Takes a place whatever the shares (an execution already claimed).
    pub(crate) fn take(self: &Arc<Self>, tenant: &str, flow: String) -> Share {
        let mut c = self.counts.lock().expect("shares lock");
        *c.tenants.entry(tenant.to_owned()).or_default() += 1;
        *c.flows.entry(flow.clone()).or_default() += 1;
        Share { shares: self.clone(), tenant: tenant.to_owned(), flow, on_room: None }
    }

    /// The room the shares leave, for a claim to count its places in.
    pub(crate) fn room(&self) -> ShareRoom {
        let c = self.counts.lock().expect("shares lock");
        ShareRoom {
            tenant_cap: self.tenant_cap,
            flow_cap: self.flow_cap,
            tenants: c.tenants.clone(),
            flows: c.flows.clone(),
        }
    }
}

impl Share {
    /// Runs `f` when this place is given back and its tenant or flow was at its share.
    pub(crate) fn on_room(mut self, f: impl Fn() + Send + Sync + 'static) -> Share {
        self.on_room = Some(Box::new(f));
        self
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let was_full = {
            let mut c = self.shares.counts.lock().expect("shares lock");
            let mut full = false;
            if let Some(n) = c.tenants.get_mut(&self.tenant) {
                full |= *n >= self.shares.tenant_cap;
                *n -= 1;
                if *n == 0 {
                    c.tenants.remove(&self.tenant);
                }
            }
            if let Some(n) = c.flows.get_mut(&self.flow) {
                full |= *n >= self.shares.flow_cap;
                *n -= 1;
                if *n == 0 {
                    c.flows.remove(&self.flow);
                }
            }
            full
        };
        if was_full && let Some(f) = &self.on_room {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_and_a_flow_hold_at_most_their_share() {
        let s = Arc::new(Shares::new(8, 50, 25));
        let a1: Vec<Share> = (0..2).map(|_| s.try_take("a", "a/i/f1".into()).unwrap()).collect();
        assert!(s.try_take("a", "a/i/f1".into()).is_none(), "the flow holds its quarter");
        let a2: Vec<Share> = (0..2).map(|_| s.try_take("a", "a/i/f2".into()).unwrap()).collect();
        assert!(s.try_take("a", "a/i/f3".into()).is_none(), "the tenant holds its half");
        assert!(s.try_take("b", "b/i/f1".into()).is_some(), "others still get in");
        let room = s.room();
        assert_eq!(room.tenants["a"], room.tenant_cap);
        assert_eq!(room.flows.values().filter(|n| **n >= room.flow_cap).count(), 2);
        drop(a1);
        let room = s.room();
        assert!(room.tenants["a"] < room.tenant_cap);
        assert!(s.try_take("a", "a/i/f3".into()).is_some());
        drop(a2);
    }
}
