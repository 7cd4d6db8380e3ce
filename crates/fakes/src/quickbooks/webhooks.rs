//! QuickBooks Online webhook notifications as Intuit sends them: the `intuit-signature`
//! header and both payload shapes (the legacy `eventNotifications` object and the
//! CloudEvents list), for tests of webhook receivers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::clock;

/// The header that carries a notification's signature.
pub const SIGNATURE_HEADER: &str = "intuit-signature";
/// The `source` of the CloudEvents this fake builds (Intuit's identifies the app).
pub const CLOUDEVENTS_SOURCE: &str = "intuit.flowgate-fakes";

/// The `intuit-signature` value for a notification body: Base64 of the HMAC-SHA256 of the raw
/// body, keyed by the app's webhook verifier token.
pub fn sign_webhook(verifier_token: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(verifier_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// What happened to an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOperation {
    /// Created.
    Create,
    /// Updated.
    Update,
    /// Deleted.
    Delete,
    /// Merged into another entity (names lists only); see [`EntityChange::deleted_id`].
    Merge,
    /// Voided (transactions).
    Void,
    /// E-mailed (transactions).
    Emailed,
}

impl WebhookOperation {
    /// The legacy payload's `operation` (`Create`, …).
    pub fn legacy_name(self) -> &'static str {
        match self {
            WebhookOperation::Create => "Create",
            WebhookOperation::Update => "Update",
            WebhookOperation::Delete => "Delete",
            WebhookOperation::Merge => "Merge",
            WebhookOperation::Void => "Void",
            WebhookOperation::Emailed => "Emailed",
        }
    }

    /// The verb of a CloudEvents `type` (`qbo.customer.created.v1`).
    pub fn cloudevents_verb(self) -> &'static str {
        match self {
            WebhookOperation::Create => "created",
            WebhookOperation::Update => "updated",
            WebhookOperation::Delete => "deleted",
            WebhookOperation::Merge => "merged",
            WebhookOperation::Void => "voided",
            WebhookOperation::Emailed => "emailed",
        }
    }
}

/// One entity change to notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityChange {
    /// The company (`realmId`).
    pub realm_id: String,
    /// The entity's name as QuickBooks writes it (`Customer`, `Invoice`).
    pub entity: String,
    /// The entity's `Id`.
    pub id: String,
    /// What happened.
    pub operation: WebhookOperation,
    /// When, as the legacy payload's `lastUpdated` (ISO 8601).
    pub last_updated: String,
    /// For a merge, the id of the entity merged away (legacy payload's `deletedId`).
    pub deleted_id: Option<String>,
}

impl EntityChange {
    /// A change that happened now.
    pub fn new(
        realm_id: impl Into<String>,
        entity: impl Into<String>,
        id: impl Into<String>,
        operation: WebhookOperation,
    ) -> EntityChange {
        EntityChange {
            realm_id: realm_id.into(),
            entity: entity.into(),
            id: id.into(),
            operation,
            last_updated: clock::offset_seconds(),
            deleted_id: None,
        }
    }
}

/// The legacy payload: `{"eventNotifications":[{"realmId","dataChangeEvent":{"entities":[…]}}]}`,
/// one notification per company, in the order companies first appear in `changes`.
pub fn legacy_notification(changes: &[EntityChange]) -> Value {
    let mut by_realm: Vec<(&str, Vec<Value>)> = Vec::new();
    for change in changes {
        let mut entity = Map::new();
        entity.insert("name".into(), json!(change.entity));
        entity.insert("id".into(), json!(change.id));
        entity.insert("operation".into(), json!(change.operation.legacy_name()));
        entity.insert("lastUpdated".into(), json!(change.last_updated));
        if let Some(deleted) = &change.deleted_id {
            entity.insert("deletedId".into(), json!(deleted));
        }
        match by_realm.iter_mut().find(|(realm, _)| *realm == change.realm_id) {
            Some((_, entities)) => entities.push(Value::Object(entity)),
            None => by_realm.push((&change.realm_id, vec![Value::Object(entity)])),
        }
    }
    let notifications: Vec<Value> = by_realm
        .into_iter()
        .map(|(realm, entities)| json!({"realmId": realm, "dataChangeEvent": {"entities": entities}}))
        .collect();
    json!({ "eventNotifications": notifications })
}

/// The CloudEvents payload: a list with one event per change, typed
/// `qbo.<entity>.<verb>.v1` (`qbo.customer.created.v1`), each with a new `id`.
pub fn cloudevents_notification(changes: &[EntityChange]) -> Value {
    let events: Vec<Value> = changes
        .iter()
        .map(|change| {
            json!({
                "specversion": "1.0",
                "id": uuid::Uuid::new_v4().to_string(),
                "source": CLOUDEVENTS_SOURCE,
                "type": format!("qbo.{}.{}.v1", change.entity.to_lowercase(), change.operation.cloudevents_verb()),
                "datacontenttype": "application/json",
                "time": clock::utc_millis(),
                "intuitentityid": change.id,
                "intuitaccountid": change.realm_id,
                "data": {},
            })
        })
        .collect();
    Value::Array(events)
}
