//! Keys that name a tenant's integration or flow. Tenant, integration and flow ids are all
//! strings; passing them as named fields of one value, rather than as three `&str` in a row,
//! means a call cannot swap them (a flow looked up under its integration's slug would find
//! nothing, silently).

use super::{Claimed, DeliveryRecord, Deployment, ExecutionRow, FlowSwitch, NewExecution, TriggerState, VersionRecord};

/// One integration of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntegrationKey<'a> {
    /// The tenant's id.
    pub tenant: &'a str,
    /// The integration's slug.
    pub integration: &'a str,
}

impl<'a> IntegrationKey<'a> {
    /// The flow `flow` of this integration.
    pub fn flow(self, flow: &'a str) -> FlowKey<'a> {
        FlowKey { tenant: self.tenant, integration: self.integration, flow }
    }
}

/// One flow of one tenant's integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey<'a> {
    /// The tenant's id.
    pub tenant: &'a str,
    /// The integration's slug.
    pub integration: &'a str,
    /// The flow's slug.
    pub flow: &'a str,
}

impl<'a> FlowKey<'a> {
    /// The integration the flow belongs to.
    pub fn integration(self) -> IntegrationKey<'a> {
        IntegrationKey { tenant: self.tenant, integration: self.integration }
    }
}

/// `flow_key()` for the records that name a flow by its three ids.
macro_rules! flow_keys {
    ($($record:ty: $what:literal),* $(,)?) => {$(
        impl $record {
            #[doc = concat!("The flow ", $what, ".")]
            pub fn flow_key(&self) -> FlowKey<'_> {
                FlowKey { tenant: &self.tenant_id, integration: &self.integration, flow: &self.flow }
            }
        }
    )*};
}

flow_keys!(
    ExecutionRow: "this execution runs",
    NewExecution: "this execution will run",
    Claimed: "the claimed execution runs",
    DeliveryRecord: "that sent this delivery",
    FlowSwitch: "switched",
    TriggerState: "that keeps this state",
);

impl VersionRecord {
    /// The integration this is a version of.
    pub fn integration_key(&self) -> IntegrationKey<'_> {
        IntegrationKey { tenant: &self.tenant_id, integration: &self.slug }
    }
}

impl Deployment {
    /// The integration deployed.
    pub fn integration_key(&self) -> IntegrationKey<'_> {
        IntegrationKey { tenant: &self.tenant_id, integration: &self.integration }
    }
}

/// An owned [`FlowKey`], for maps keyed by flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowKeyBuf {
    /// The tenant's id.
    pub tenant: String,
    /// The integration's slug.
    pub integration: String,
    /// The flow's slug.
    pub flow: String,
}

impl FlowKeyBuf {
    /// Borrows it.
    pub fn as_key(&self) -> FlowKey<'_> {
        FlowKey { tenant: &self.tenant, integration: &self.integration, flow: &self.flow }
    }
}

impl From<FlowKey<'_>> for FlowKeyBuf {
    fn from(k: FlowKey<'_>) -> FlowKeyBuf {
        FlowKeyBuf { tenant: k.tenant.to_owned(), integration: k.integration.to_owned(), flow: k.flow.to_owned() }
    }
}
