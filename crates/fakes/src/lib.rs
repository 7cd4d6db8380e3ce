//! Local fakes of the services Flowgate's connections and connectors talk to — an OAuth 2.0
//! authorization server, the Microsoft Dataverse (Dynamics 365) Web API and the QuickBooks
//! Online Accounting API — for tests, since neither SaaS is reachable from test machines.
//!
//! Each fake binds `127.0.0.1:0` (an ephemeral port), runs on the caller's tokio runtime (an
//! `axum::serve` task), stops accepting connections when dropped, keeps its data in memory,
//! and exposes counters and knobs (delays, injected failures, throttling) for tests. The
//! resource fakes accept exactly the access tokens their [`OAuthServer`] issued and that are
//! still valid, so token expiry, revocation and refresh-token rotation play out end to end.
//!
//! ```no_run
//! use flowgate_fakes::{DynamicsServer, OAuthConfig, OAuthServer, QuickBooksServer};
//!
//! # async fn example() {
//! let oauth = OAuthServer::start(OAuthConfig::default().with_client("app", "secret").with_realm_id("9130")).await;
//! let dynamics = DynamicsServer::start(&oauth).await;
//! let quickbooks = QuickBooksServer::start(&oauth).await;
//! let account = dynamics.insert("accounts", serde_json::json!({"name": "Contoso"}));
//! // Point the connection under test at oauth.token_url(), dynamics.api_url() and
//! // quickbooks.company_url("9130"); then assert on what the fakes saw:
//! assert_eq!(oauth.token_requests_for("refresh_token"), 0);
//! # let _ = (account, quickbooks);
//! # }
//! ```
//!
//! # Layout
//! - [`oauth`]: [`OAuthServer`], the token and authorization endpoints (RFC 6749, RFC 7636),
//!   QuickBooks-style refresh-token rotation, and the token checks the resource fakes share.
//! - [`dynamics`]: [`DynamicsServer`], the Dataverse Web API v9.2 subset; its `$filter` and
//!   `$orderby` engine lives in a private `filter` module.
//! - [`quickbooks`]: [`QuickBooksServer`], the QuickBooks Online Accounting API v3 subset; its
//!   query language lives in a private `query` module, webhook payloads and signatures in
//!   [`quickbooks::webhooks`].
//! - `serve` and `clock` (private): binding and serving on loopback; timestamps in each
//!   service's format.
//!
//! # Fidelity
//! ## Following the public documentation
//! - **OAuth** (RFC 6749 §2.3.1, §3, §4.1, §4.4, §5, §6; RFC 7636): `client_secret_basic`
//!   (form-decoded credentials) or `client_secret_post`, never both; the three grants; error
//!   codes and statuses of §5.2 (401 `invalid_client` with a `WWW-Authenticate` challenge);
//!   `Cache-Control: no-store` and `Pragma: no-cache`; repeated parameters refused; single-use
//!   codes that expire after 10 minutes, bound to client and `redirect_uri`, whose reuse
//!   revokes the tokens issued for them; PKCE `S256` and `plain` (the default), verifiers of
//!   43–128 unreserved characters; refresh with a narrower scope; authorization errors about
//!   the client or `redirect_uri` answered directly, all others by redirect with `state`.
//!   Rotation follows Intuit's description of QuickBooks refresh tokens (see [`oauth`]).
//! - **Dataverse** (Web API v9.2 reference): entity sets, `{singular}id` GUID keys,
//!   `@odata.etag` `W/"<version>"`, `@odata.context`, `$select` (primary key always included,
//!   absent columns `null`), `$filter`, `$orderby`, `$top`, `$count=true` (at most 5,000),
//!   `Prefer: odata.maxpagesize` (at most 5,000, the default) with `Preference-Applied` and an
//!   absolute `@odata.nextLink` carrying a `$skiptoken` paging cookie, `$skip` refused; `POST`
//!   answering 204 with `OData-EntityId` or 201 with `Prefer: return=representation`; `PATCH`
//!   as an upsert, with `If-Match: *` (update only), `If-Match: <etag>` (412) and
//!   `If-None-Match: *` (create only); conditional `GET` (304) and `DELETE`; alternate keys;
//!   `nav@odata.bind`; `WhoAmI`; error bodies `{"error":{"code","message"}}` with Dataverse's
//!   codes; 429 with `Retry-After` and `0x80072322`; case-insensitive text comparison.
//! - **QuickBooks Online** (Accounting API v3 docs): `/v3/company/{realmId}/{entity}` with
//!   lower-case entity names and capitalized answer keys; `Id`/`SyncToken`/`MetaData`;
//!   sparse and full updates; stale `SyncToken` → fault 5010 with HTTP 400; not found → 610
//!   with HTTP 400; `operation=delete`; `requestid` idempotency per company; the query
//!   language with `STARTPOSITION` (1-based) and `MAXRESULTS` (default 100, max 1000), empty
//!   results without an entity key, `COUNT(*)`, queries by `GET` or `POST`; duplicate names
//!   (6240) shared by customers, vendors and employees; faults sometimes sent with HTTP 200;
//!   429 `ThrottleExceeded` (003001); at most 10 requests in flight per company; webhook
//!   signatures (`intuit-signature`) and both payload shapes.
//!
//! ## Simplified or stricter
//! - OAuth: all clients are confidential (no public PKCE-only clients); any absolute
//!   `redirect_uri` is accepted (there is no registration); consent is automatic; resource
//!   fakes check that a token is valid, not its client or scope; code expiry is driven by
//!   [`OAuthServer::expire_authorization_codes`] in tests rather than by waiting.
//! - Dataverse: **stricter** — `OData-MaxVersion: 4.0`, `OData-Version: 4.0` and `Accept:
//!   application/json` are required (400 otherwise), to catch clients that omit them. Tables
//!   have no schema (unknown columns are `null`, no type checks, no alternate-key definitions);
//!   no `$expand`, `$apply`, `$batch`, `$metadata`, navigation paths, lambdas or functions
//!   other than `contains`/`startswith`/`endswith`; the paging cookie holds an offset, so a
//!   table changing between pages can shift rows; a lookup bound through `nav@odata.bind` is
//!   stored as `_nav_value` without checking the target exists (the real lookup column may be
//!   named differently for polymorphic lookups); rows come in creation order without
//!   `$orderby`; the 401 challenge names the fake's own authorize URL.
//! - QuickBooks: the token is not bound to one company (any served company accepts any valid
//!   token); the 401 fault uses the same capitalized `Fault` shape as other faults (the real
//!   one is written in lower case); answers are always JSON (the real API answers XML unless
//!   asked for JSON); no batch, CDC, reports, attachments or `operation=void`; any entity can
//!   be deleted (real name lists can only be made inactive); no required-field validation;
//!   `requestid` replays every answer the operation gave, faults included, but not the
//!   injected ones (throttling, concurrency, faults with 200); a column-list query answers
//!   those columns plus `"sparse": true`; the per-minute limit (500 requests) is not counted,
//!   only injected through [`QuickBooksServer::throttle_next`]; timestamps are in UTC.

#![warn(missing_docs)]

mod clock;
pub mod dynamics;
pub mod oauth;
pub mod quickbooks;
mod serve;
#[cfg(test)]
mod test_support;

pub use dynamics::DynamicsServer;
pub use oauth::{OAuthConfig, OAuthServer};
pub use quickbooks::QuickBooksServer;
