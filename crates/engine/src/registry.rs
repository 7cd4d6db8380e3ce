//! The flows a node serves: the current version of every integration, older versions that
//! executions still run on, flows switched on or off through the API, and the routing tables
//! of webhooks (per tenant) and inbound e-mail addresses (across tenants).
//!
//! Routing is the ingress hot path, so the table is an immutable map behind an `ArcSwap`:
//! a lookup is a pointer load and two hash probes, with no lock. The maps are persistent
//! (`imbl`): applying an integration copies the table in O(1) and changes only that
//! integration's routes, so an apply costs the same with two thousand integrations as with
//! one, and a start installs them all before building the table once.

use crate::compile::{CompiledFlow, CompiledIntegration, FlowTrigger};
use arc_swap::ArcSwap;
use flowgate_store::{FlowKey, FlowKeyBuf};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Webhook flows by tenant, then by path.
type Routes = imbl::HashMap<String, imbl::HashMap<String, Arc<CompiledFlow>>>;
/// E-mail flows by address (lowercase).
type Emails = imbl::HashMap<String, Arc<CompiledFlow>>;

/// Compiled integrations and routes.
#[derive(Default)]
pub struct Registry {
    routes: ArcSwap<Routes>,
    emails: ArcSwap<Emails>,
    current: Mutex<HashMap<(String, String), Arc<CompiledIntegration>>>,
    versions: Mutex<HashMap<i64, Arc<CompiledIntegration>>>,
    switches: Mutex<HashMap<FlowKeyBuf, bool>>,
    /// Domain of derived e-mail addresses.
    mail_domain: String,
    /// Bumped on every change (the scheduler re-reads its flows when it moves).
    generation: AtomicU64,
}

impl Registry {
    /// An empty registry whose e-mail flows get addresses under `mail_domain`.
    pub fn new(mail_domain: &str) -> Registry {
        Registry { mail_domain: mail_domain.to_ascii_lowercase(), ..Registry::default() }
    }

    /// The domain of derived e-mail addresses.
    pub fn mail_domain(&self) -> &str {
        &self.mail_domain
    }

    /// Marks a change that is not in the registry itself (a trigger's state was reset).
    pub fn touch(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes so far (any install, removal or switch).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a flow runs: never while its integration is not live; else its switch if it was
    /// switched through the API, else the document's `active`.
    pub fn is_active(&self, f: &CompiledFlow) -> bool {
        if !f.live {
            return false;
        }
        let switches = self.switches.lock().expect("registry lock");
        // Few flows are ever switched through the API: no key to build for the others.
        if switches.is_empty() {
            return f.active;
        }
        switches.get(&FlowKeyBuf::from(f.key())).copied().unwrap_or(f.active)
    }

    /// Replaces every switch (at start, and after events may have been missed).
    pub fn set_switches(&self, all: impl IntoIterator<Item = (FlowKeyBuf, bool)>) {
        *self.switches.lock().expect("registry lock") = all.into_iter().collect();
        let current = self.current.lock().expect("registry lock");
        self.rebuild(&current);
    }

    /// Switches one flow on or off.
    pub fn set_switch(&self, key: FlowKey<'_>, active: bool) {
        self.switches.lock().expect("registry lock").insert(key.into(), active);
        let current = self.current.lock().expect("registry lock");
        if let Some(ci) = current.get(&(key.tenant.to_owned(), key.integration.to_owned())) {
            // Its routes again, now that the switch says otherwise.
            self.reroute(Some(ci), Some(ci));
        }
    }

    /// Makes `ci` the current version of its integration.
    pub fn install(&self, ci: Arc<CompiledIntegration>) {
        let key = (ci.record.tenant_id.clone(), ci.record.slug.clone());
        {
            let mut versions = self.versions.lock().expect("registry lock");
            // Executions of this version run on the build of the latest deployment state.
            if versions.get(&ci.record.id).is_none_or(|v| v.stamp <= ci.stamp) {
                versions.insert(ci.record.id, ci.clone());
            }
        }
        let mut current = self.current.lock().expect("registry lock");
        // Two applies racing: the later version wins whatever order they finish in; of two
        // builds of one version, the one from the later deployment state (a reload that read
        // the deployment before a change must not undo it).
        if current.get(&key).is_some_and(|c| (c.record.version, c.stamp) > (ci.record.version, ci.stamp)) {
            return;
        }
        let old = current.insert(key, ci.clone());
        self.reroute(old.as_ref(), Some(&ci));
    }

    /// Makes each of `all` the current version of its integration (a node starting), and
    /// builds the routing table once.
    pub fn install_all(&self, all: impl IntoIterator<Item = Arc<CompiledIntegration>>) {
        let mut versions = self.versions.lock().expect("registry lock");
        let mut current = self.current.lock().expect("registry lock");
        for ci in all {
            versions.insert(ci.record.id, ci.clone());
            let key = (ci.record.tenant_id.clone(), ci.record.slug.clone());
            if current.get(&key).is_none_or(|c| (c.record.version, c.stamp) <= (ci.record.version, ci.stamp)) {
                current.insert(key, ci);
            }
        }
        drop(versions);
        self.rebuild(&current);
    }

    /// Caches an older version (executions may still run on it).
    pub fn remember(&self, ci: Arc<CompiledIntegration>) {
        let mut versions = self.versions.lock().expect("registry lock");
        if versions.get(&ci.record.id).is_none_or(|v| v.stamp <= ci.stamp) {
            versions.insert(ci.record.id, ci);
        }
    }

    /// Removes an integration's current version (its webhooks stop answering).
    pub fn remove(&self, tenant: &str, slug: &str) {
        let mut current = self.current.lock().expect("registry lock");
        let old = current.remove(&(tenant.to_owned(), slug.to_owned()));
        self.reroute(old.as_ref(), None);
    }

    /// Builds the routing tables from every current integration (a start, every switch
    /// reloaded). Called with `current` locked, as every change of the tables is.
    fn rebuild(&self, current: &HashMap<(String, String), Arc<CompiledIntegration>>) {
        let mut routes = Routes::new();
        let mut emails = Emails::new();
        for ci in current.values() {
            self.add_routes(ci, &mut routes, &mut emails);
        }
        self.routes.store(Arc::new(routes));
        self.emails.store(Arc::new(emails));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Replaces the routes of `old` (an integration's version going away) with those of
    /// `new` (its version coming in), leaving every other integration's as they are.
    /// Called with `current` locked.
    fn reroute(&self, old: Option<&Arc<CompiledIntegration>>, new: Option<&Arc<CompiledIntegration>>) {
        let mut routes = Routes::clone(&self.routes.load());
        let mut emails = Emails::clone(&self.emails.load());
        if let Some(old) = old {
            let ours = |f: &Arc<CompiledFlow>| f.tenant == old.record.tenant_id && f.integration == old.record.slug;
            for f in old.flows.values() {
                match &f.trigger {
                    FlowTrigger::Webhook(w) => {
                        if let Some(paths) = routes.get_mut(&old.record.tenant_id)
                            && paths.get(&w.path).is_some_and(ours)
                        {
                            paths.remove(&w.path);
                        }
                    }
                    FlowTrigger::Email(_) => {
                        if let Some(a) = f.email_address(&self.mail_domain)
                            && emails.get(&a).is_some_and(ours)
                        {
                            emails.remove(&a);
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(new) = new {
            self.add_routes(new, &mut routes, &mut emails);
        }
        self.routes.store(Arc::new(routes));
        self.emails.store(Arc::new(emails));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Adds the routes of `ci`'s active flows.
    fn add_routes(&self, ci: &CompiledIntegration, routes: &mut Routes, emails: &mut Emails) {
        for f in ci.flows.values() {
            if !self.is_active(f) {
                continue;
            }
            match &f.trigger {
                FlowTrigger::Webhook(w) => {
                    routes.entry(ci.record.tenant_id.clone()).or_default().insert(w.path.clone(), f.clone());
                }
                FlowTrigger::Email(_) => {
                    if let Some(a) = f.email_address(&self.mail_domain) {
                        emails.insert(a, f.clone());
                    }
                }
                _ => {}
            }
        }
    }

    /// The active e-mail flow at `address` (any tenant; case-insensitive).
    pub fn email_route(&self, address: &str) -> Option<Arc<CompiledFlow>> {
        self.emails.load().get(&address.to_ascii_lowercase()).cloned()
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
