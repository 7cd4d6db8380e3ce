-- Connections' tokens (crates/store/src/shared/connections.rs): one row per connection of an
-- integration, tokens sealed by the engine. `version` grows with every stored token, so a
-- node can tell a refresh another node made; `refresh_owner`/`refresh_until` is the lease of
-- the one refresh in flight across every node (single flight). `fingerprint` names the settings
-- (token URL, client, scopes) the tokens were obtained with: others do not use them.
CREATE TABLE connection_tokens (
    tenant_id TEXT NOT NULL,
    integration TEXT NOT NULL,
    connection TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    message TEXT,
    access_token TEXT,
    refresh_token TEXT,
    extras TEXT,
    fingerprint TEXT,
    expires_at BIGINT,
    refreshed_at BIGINT,
    version BIGINT NOT NULL DEFAULT 0,
    refresh_owner TEXT,
    refresh_until BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, integration, connection)
);

-- Authorizations in flight (the authorization-code grant): the `state` of a provider URL,
-- stored as its SHA-256 (the row alone cannot complete an authorization), single use,
-- short-lived, with the PKCE verifier sealed.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    integration TEXT NOT NULL,
    connection TEXT NOT NULL,
    verifier TEXT,
    expires_at BIGINT NOT NULL
);
