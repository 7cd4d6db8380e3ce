//! Tokens of OAuth connections. Each connection's token is held in memory and refreshed
//! before it expires (or once it was refused): one refresh at a time per connection, by a
//! lock on this node and a lease in the store across nodes; the tokens a refresh obtains are
//! stored sealed in the statement that ends the lease, so a rotated refresh token is never
//! lost between the provider's answer and the store (a crash before it leaves the old one,
//! which rotating providers keep valid until the new one is used).

use super::OAuthSpec;
use super::oauth::{self, Obtained, TokenError};
use crate::node::Inner;
use flowgate_model::connection::Grant;
use flowgate_steps::StepError;
use flowgate_steps::connection::Credentials;
use flowgate_store::{ConnectionKey, ConnectionTokens, NewTokens};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one node may hold a connection's refresh before another may take it over.
const LEASE_MS: i64 = 30_000;
/// How often a node waiting for another node's refresh looks again.
const WAIT_STEP: Duration = Duration::from_millis(50);
/// A token is refreshed this long before it expires (a quarter of its life when shorter).
const MARGIN_MS: i64 = 60_000;

/// Every OAuth connection's token on this node.
#[derive(Default)]
pub(crate) struct Tokens {
    slots: Mutex<HashMap<(String, String, String), Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// The token; the lock is the single flight: who waits here finds the new token.
    held: tokio::sync::Mutex<Option<Held>>,
    /// The version a provider refused (-1: none).
    refused: AtomicI64,
}

struct Held {
    access: String,
    fingerprint: String,
    refresh_at: Option<i64>,
    version: i64,
    extras: Value,
}

impl Tokens {
    fn slot(&self, key: ConnectionKey<'_>) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry((key.tenant.to_owned(), key.integration.to_owned(), key.connection.to_owned()))
            .or_insert_with(|| Arc::new(Slot { refused: AtomicI64::new(-1), ..Slot::default() }))
            .clone()
    }

    /// Marks `version` as refused: the next request for credentials obtains new ones.
    pub(crate) fn refused(&self, key: ConnectionKey<'_>, version: i64) {
        self.slot(key).refused.fetch_max(version, Ordering::AcqRel);
    }

    /// Forgets what this node holds for a connection (it was authorized again).
    pub(crate) fn forget(&self, key: ConnectionKey<'_>) {
        let slot = self.slot(key);
        // The next request reads the store (the lock may be held by a request in flight,
        // which then stores or reads on its own).
        if let Ok(mut held) = slot.held.try_lock() {
            *held = None;
        }
        slot.refused.store(-1, Ordering::Release);
    }

    /// Fresh credentials for `key`: the token held, else one stored by any node, else a new
    /// one from the provider.
    pub(crate) async fn credentials(
        &self,
        inner: &Inner,
        key: ConnectionKey<'_>,
        spec: &OAuthSpec,
    ) -> Result<Credentials, StepError> {
        let slot = self.slot(key);
        let mut held = slot.held.lock().await;
        let fingerprint = spec.fingerprint();
        let refused = slot.refused.load(Ordering::Acquire);
        if let Some(h) = held.as_ref()
            && h.fingerprint == fingerprint
            && usable(h, refused, inner.clock.now_ms())
        {
            return Ok(credentials(h, spec));
        }
        let aad = aad(key);
        let deadline = inner.clock.now_ms() + LEASE_MS + 5_000;
        loop {
            let now = inner.clock.now_ms();
            let row = inner.store.connection_tokens(key).await.map_err(store_error)?;
            if let Some(row) = &row {
                if row.status == "needs_reconnect" {
                    return Err(needs_reconnect(key, row.message.as_deref()));
                }
                if let Some(h) = open_row(inner, row, &aad, &fingerprint)?
                    && usable(&h, refused, now)
                {
                    let c = credentials(&h, spec);
                    *held = Some(h);
                    return Ok(c);
                }
            }
            let Some(row) = inner
                .store
                .lease_connection_refresh(key, &inner.settings.node_id, now, now + LEASE_MS)
                .await
                .map_err(store_error)?
            else {
                // Another node refreshes it: its tokens will be in the store.
                if now > deadline {
                    return Err(StepError::retryable(
                        "connection_busy",
                        format!("connection `{}`: another node's token refresh did not finish", key.connection),
                    ));
                }
                tokio::time::sleep(WAIT_STEP).await;
                continue;
            };
            // Under the lease. A refresh may have landed since the read above.
            if let Some(h) = open_row(inner, &row, &aad, &fingerprint)?
                && usable(&h, refused, now)
                && row.version > held.as_ref().map_or(-1, |h| h.version)
            {
                end(inner, key, &row.status, row.message.as_deref().unwrap_or("")).await;
                let c = credentials(&h, spec);
                *held = Some(h);
                return Ok(c);
            }
            let refresh_token = match &row.refresh_token {
                Some(sealed) if row.fingerprint.as_deref() == Some(fingerprint.as_str()) => {
                    Some(open(inner, sealed, &aad)?)
                }
                _ => None,
            };
            let obtained = match (&refresh_token, spec.grant) {
                (Some(rt), _) => oauth::refresh(inner, spec, rt.clone()).await,
                (None, Grant::ClientCredentials) => oauth::client_credentials(inner, spec).await,
                (None, Grant::AuthorizationCode) => {
                    end(inner, key, "new", "not authorized yet").await;
                    return Err(StepError::fatal(
                        "connection_not_authorized",
                        format!(
                            "connection `{}` is not authorized yet: open the URL of GET /v1/integrations/{}/connections/{}/authorize",
                            key.connection, key.integration, key.connection
                        ),
                    ));
                }
            };
            return match obtained {
                Ok(t) => {
                    let h = self.store(inner, key, (&aad, &fingerprint), t, now).await?;
                    let c = credentials(&h, spec);
                    *held = Some(h);
                    Ok(c)
                }
                Err(TokenError::Revoked(message)) => {
                    let message =
                        format!("the provider refused the stored grant ({message}): authorize the connection again");
                    end(inner, key, "needs_reconnect", &message).await;
                    *held = None;
                    Err(needs_reconnect(key, Some(&message)))
                }
                Err(TokenError::Failed { message, retryable }) => {
                    end(inner, key, "error", &message).await;
                    let message = format!("connection `{}`: {message}", key.connection);
                    Err(if retryable {
                        StepError::retryable("connection_token", message)
                    } else {
                        StepError::fatal("connection_token", message)
                    })
                }
            };
        }
    }

    /// Stores what a refresh obtained (ending the lease) and returns it as held.
    async fn store(
        &self,
        inner: &Inner,
        key: ConnectionKey<'_>,
        (aad, fingerprint): (&str, &str),
        t: Obtained,
        now: i64,
    ) -> Result<Held, StepError> {
        let access = inner.sealer.seal_str(&t.access_token, aad);
        let refresh = t.refresh_token.as_deref().map(|r| inner.sealer.seal_str(r, aad));
        let extras = t.extras.as_ref().map(Value::to_string);
        let expires_at = t.expires_in.map(|d| now + d.as_millis() as i64);
        let tokens = NewTokens {
            access_token: &access,
            refresh_token: refresh.as_deref(),
            extras: extras.as_deref(),
            expires_at,
            fingerprint,
            now,
        };
        let version = inner
            .store
            .store_connection_tokens(key, &inner.settings.node_id, tokens)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                StepError::retryable(
                    "connection_busy",
                    format!("connection `{}`: the refresh's lease passed to another node", key.connection),
                )
            })?;
        Ok(Held {
            access: t.access_token,
            fingerprint: fingerprint.to_owned(),
            refresh_at: expires_at.map(|at| refresh_at(now, at)),
            version,
            extras: t.extras.unwrap_or(Value::Null),
        })
    }
}

/// A held token that may be sent: not refused, not about to expire.
fn usable(h: &Held, refused: i64, now: i64) -> bool {
    h.version > refused && h.refresh_at.is_none_or(|at| now < at)
}

/// When a token obtained at `obtained` and expiring at `expires` is refreshed.
fn refresh_at(obtained: i64, expires: i64) -> i64 {
    expires - MARGIN_MS.min((expires - obtained) / 4)
}

/// What a connection's sealed tokens are bound to.
pub(crate) fn aad(key: ConnectionKey<'_>) -> String {
    format!("{}/{}/connections/{}", key.tenant, key.integration, key.connection)
}

fn open(inner: &Inner, sealed: &str, aad: &str) -> Result<String, StepError> {
    inner
        .sealer
        .open_str(sealed, aad)
        .map_err(|e| StepError::fatal("connection_sealed", format!("a stored token cannot be opened: {e}")))
}

/// The row's access token, opened, if it has one.
fn open_row(inner: &Inner, row: &ConnectionTokens, aad: &str, fingerprint: &str) -> Result<Option<Held>, StepError> {
    let Some(sealed) = &row.access_token else { return Ok(None) };
    if row.fingerprint.as_deref() != Some(fingerprint) {
        return Ok(None);
    }
    Ok(Some(Held {
        access: open(inner, sealed, aad)?,
        fingerprint: fingerprint.to_owned(),
        refresh_at: row.expires_at.map(|at| refresh_at(row.refreshed_at.unwrap_or(at), at)),
        version: row.version,
        extras: row.extras.as_deref().and_then(|e| serde_json::from_str(e).ok()).unwrap_or(Value::Null),
    }))
}

async fn end(inner: &Inner, key: ConnectionKey<'_>, status: &str, message: &str) {
    let now = inner.clock.now_ms();
    if let Err(e) = inner.store.end_connection_refresh(key, &inner.settings.node_id, status, message, now).await {
        tracing::warn!(connection = key.connection, error = %e, "Ending a connection's refresh failed; its lease expires.");
    }
}

fn credentials(h: &Held, spec: &OAuthSpec) -> Credentials {
    let mut c = Credentials { version: h.version, ..Credentials::default() };
    if let Ok(mut v) = http::HeaderValue::from_str(&format!("Bearer {}", h.access)) {
        v.set_sensitive(true);
        c.headers.push((http::header::AUTHORIZATION, v));
    }
    let mut extras = spec.extras.clone();
    if let (Value::Object(into), Value::Object(from)) = (&mut extras, &h.extras) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
    c.extras = extras;
    c
}

fn needs_reconnect(key: ConnectionKey<'_>, message: Option<&str>) -> StepError {
    StepError::fatal(
        "connection_needs_reconnect",
        format!(
            "connection `{}` needs to be authorized again: {}",
            key.connection,
            message.unwrap_or("its grant was revoked")
        ),
    )
}

fn store_error(e: flowgate_store::Error) -> StepError {
    StepError::retryable("connection_store", format!("reading or storing a connection's tokens failed: {e}"))
}
