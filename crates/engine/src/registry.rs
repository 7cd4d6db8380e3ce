//! The flows a node serves: the current version of every integration, older versions that
//! executions still run on, and the webhook routing table.
//!
//! Routing is the ingress hot path, so the table is an immutable map behind an `ArcSwap`:
//! a lookup is a pointer load and two hash probes, with no lock; applying an integration
//! builds a new table and swaps it in.

use crate::compile::{CompiledFlow, CompiledIntegration, FlowTrigger};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Routes = HashMap<String, HashMap<String, Arc<CompiledFlow>>>;

/// Compiled integrations and webhook routes.
#[derive(Default)]
pub struct Registry {
    routes: ArcSwap<Routes>,
    current: Mutex<HashMap<(String, String), Arc<CompiledIntegration>>>,
    versions: Mutex<HashMap<i64, Arc<CompiledIntegration>>>,
}

impl Registry {
    /// Makes `ci` the current version of its integration.
    pub fn install(&self, ci: Arc<CompiledIntegration>) {
        let key = (ci.record.tenant_id.clone(), ci.record.slug.clone());
        self.versions.lock().expect("registry lock").insert(ci.record.id, ci.clone());
        let mut current = self.current.lock().expect("registry lock");
        // Two applies racing: the later version wins whatever order they finish in.
        if current.get(&key).is_some_and(|c| c.record.version > ci.record.version) {
            return;
        }
        current.insert(key, ci);
        self.rebuild(&current);
    }

    /// Caches an older version (executions may still run on it).
    pub fn remember(&self, ci: Arc<CompiledIntegration>) {
        self.versions.lock().expect("registry lock").insert(ci.record.id, ci);
    }

    /// Removes an integration's current version (its webhooks stop answering).
    pub fn remove(&self, tenant: &str, slug: &str) {
        let mut current = self.current.lock().expect("registry lock");
        current.remove(&(tenant.to_owned(), slug.to_owned()));
        self.rebuild(&current);
    }

    fn rebuild(&self, current: &HashMap<(String, String), Arc<CompiledIntegration>>) {
        let mut routes: Routes = HashMap::new();
        for ci in current.values() {
            for f in ci.flows.values() {
                if let (true, FlowTrigger::Webhook(w)) = (f.active, &f.trigger) {
                    routes.entry(ci.record.tenant_id.clone()).or_default().insert(w.path.clone(), f.clone());
                }
            }
        }
        self.routes.store(Arc::new(routes));
    }

    /// The active webhook flow at `path` in `tenant`.
    pub fn route(&self, tenant: &str, path: &str) -> Option<Arc<CompiledFlow>> {
        self.routes.load().get(tenant)?.get(path).cloned()
    }

    /// The current version of an integration.
    pub fn integration(&self, tenant: &str, slug: &str) -> Option<Arc<CompiledIntegration>> {
        self.current.lock().expect("registry lock").get(&(tenant.to_owned(), slug.to_owned())).cloned()
    }

    /// The current version of every integration.
    pub fn current_integrations(&self) -> Vec<Arc<CompiledIntegration>> {
        self.current.lock().expect("registry lock").values().cloned().collect()
    }

    /// A version, if compiled on this node.
    pub fn version(&self, id: i64) -> Option<Arc<CompiledIntegration>> {
        self.versions.lock().expect("registry lock").get(&id).cloned()
    }
}
