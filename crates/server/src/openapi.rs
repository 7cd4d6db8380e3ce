//! The OpenAPI 3.1 document of the REST API, served at `/v1/openapi.json`.
//!
//! Written out here rather than derived: the API is small, and a test checks that every
//! route of the router is described (`openapi_covers_every_route`).

use axum::Json;
use serde_json::{Value, json};

/// One operation, built up from `op(...)`: its success answers and the errors it can give
/// beyond the ones every operation can (400, 401, 404, 503).
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Op(Value);

fn op(summary: &str, tag: &str, params: &[&str], body: Option<Value>, ok: (&str, &str)) -> Op {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| {
            let (name, place) = p.split_once(':').unwrap_or((p, "path"));
            let kind = match name {
                "wait" => "boolean",
                "limit" | "timeout" | "after" => "integer",
                _ => "string",
            };
            json!({ "name": name, "in": place, "required": place == "path", "schema": { "type": kind } })
        })
        .collect();
    let error = json!({ "$ref": "#/components/responses/Error" });
    let mut o = json!({
        "summary": summary,
        "tags": [tag],
        "parameters": parameters,
        "responses": {
            "400": error, "401": error, "404": error,
            "503": { "$ref": "#/components/responses/Unavailable" },
        },
    });
    if let Some(b) = body {
        o["requestBody"] = b;
        // Every body is read under a size limit.
        o["responses"]["413"] = error;
    }
    Op(o).ok(ok.0, ok.1)
}

impl Op {
    /// A success answer: JSON, or nothing for 204.
    fn ok(mut self, code: &str, description: &str) -> Op {
        self.0["responses"][code] = if code == "204" {
            json!({ "description": description })
        } else {
            json!({ "description": description, "content": { "application/json": { "schema": { "type": "object" } } } })
        };
        self
    }

    /// Errors this operation can give besides the common ones (409, 422, …).
    fn errors(mut self, codes: &[&str]) -> Op {
        for code in codes {
            self.0["responses"][*code] = json!({ "$ref": "#/components/responses/Error" });
        }
        self
    }
}

fn definition_body() -> Value {
    json!({ "required": true, "content": {
        "application/yaml": { "schema": { "type": "string" } },
        "application/json": { "schema": { "type": "object" } }
    } })
}

/// A JSON request body that takes only the listed properties, `required` among them.
fn strict_body(required: &[&str], props: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": {
        "type": "object", "properties": props, "required": required, "additionalProperties": false
    } } } })
}

/// The document.
pub fn spec() -> Value {
    let json_body = |props: Value| json!({ "content": { "application/json": { "schema": { "type": "object", "properties": props } } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Flowgate API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Integrations, flows, executions and tokens of one tenant. Authenticate with `Authorization: Bearer <token>`. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string", "description": "What went wrong, for programs: `not_found`, `validation_failed`, `unauthorized`, `conflict`, `invalid_body`, `bad_request`, `payload_too_large`, `unavailable`, `not_live`, `invalid_smtp`, `invalid_log_source`, `execution_failed`, `connection_failed` (details.code says how), …" },
                    "message": { "type": "string", "description": "What went wrong and where, for people" },
                    "details": { "description": "More, when there is: every problem of a definition with its location, missing values, …" }
                } } } }
            },
            "responses": {
                "Error": { "description": "An error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "Unavailable": {
                    "description": "Busy, shutting down or the database unreachable; try again after `Retry-After` seconds",
                    "headers": { "Retry-After": { "schema": { "type": "integer" } } },
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
                }
            }
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/integrations": { "get": op("List integrations", "integrations", &[], None, ("200", "The tenant's integrations")) },
            "/v1/integrations/{slug}": {
                "put": op("Apply an integration (YAML or JSON); a new version when it changed", "integrations", &["slug"], Some(definition_body()), ("201", "The stored version")).ok("200", "Unchanged: the current version").errors(&["409", "422"]),
                "get": op("The current version, with its source", "integrations", &["slug"], None, ("200", "The integration")),
                "delete": op("Delete an integration (its history stays)", "integrations", &["slug"], None, ("204", "Deleted")),
            },
            "/v1/integrations/{slug}/flows/{flow}": { "get": op("A flow: trigger, webhook URL or e-mail address, next runs, trigger state, last run", "flows", &["slug", "flow"], None, ("200", "The flow")) },
            "/v1/integrations/{slug}/flows/{flow}/run": { "post": op("Run a flow manually or as a test", "flows", &["slug", "flow", "wait:query", "timeout:query"],
                Some(json_body(json!({ "body": {}, "headers": { "type": "object" }, "query": { "type": "object" } }))), ("202", "Accepted")).ok("200", "The result, when wait=true").errors(&["409", "422"]) },
            "/v1/integrations/{slug}/flows/{flow}/activate": { "post": op("Switch a flow on, on every node", "flows", &["slug", "flow"], None, ("200", "Switched on")).errors(&["409"]) },
            "/v1/integrations/{slug}/flows/{flow}/deactivate": { "post": op("Switch a flow off at once, on every node", "flows", &["slug", "flow"], None, ("200", "Switched off")).errors(&["409"]) },
            "/v1/integrations/{slug}/flows/{flow}/state": {
                "get": op("What a schedule or poll keeps: last slot, cursor, counts, last error", "flows", &["slug", "flow"], None, ("200", "The state (null before the first firing)")).errors(&["409"]),
                "delete": op("Forget a schedule's or poll's state: the next poll is a first run", "flows", &["slug", "flow"], None, ("200", "Reset")).errors(&["409"]),
            },
            "/v1/integrations/{slug}/deployment": {
                "get": op("The deployment: live or not, missing values, config (secrets only as set), lifecycle runs", "deployments", &["slug"], None, ("200", "The deployment")),
                "put": op("Set config values (secrets included; null unsets) and deploy; runs the deploy flows once live", "deployments", &["slug"],
                    Some(json_body(json!({ "config": { "type": "object" } }))), ("200", "The deployment")).ok("201", "Deployed for the first time").errors(&["409", "422"]),
                "delete": op("Undeploy: stored, not live; runs the undeploy flows", "deployments", &["slug"], None, ("200", "The deployment")).errors(&["409"]),
            },
            "/v1/integrations/{slug}/versions": { "get": op("An integration's versions, newest first", "versions", &["slug"], None, ("200", "The versions")) },
            "/v1/integrations/{slug}/versions/{n}": { "get": op("One version with its source (credentials as markers)", "versions", &["slug", "n"], None, ("200", "The version")) },
            "/v1/integrations/{slug}/versions/{a}/diff/{b}": { "get": op("A unified diff between two versions' sources", "versions", &["slug", "a", "b"], None, ("200", "The diff")) },
            "/v1/integrations/{slug}/versions/{n}/rollback": { "post": op("Apply version n again, as a new version", "versions", &["slug", "n"], None, ("201", "The new version")).ok("200", "That version is already the current one").errors(&["409", "422"]) },
            "/v1/integrations/{slug}/connections": { "get": op("The integration's connections: kind, status (active, new, needs_reconnect, error), expiry, last refresh; never a secret", "connections", &["slug"], None, ("200", "The connections")) },
            "/v1/integrations/{slug}/connections/{name}": { "get": op("One connection's status", "connections", &["slug", "name"], None, ("200", "The connection")) },
            "/v1/integrations/{slug}/connections/{name}/test": { "post": op("Check a connection without running a flow: obtain its credentials and, where its kind allows, contact the system with them (a database runs SELECT 1, a broker answers, a connector's API takes one harmless call); a failure is a 502 `connection_failed` whose details.code is the step's (`sql_unavailable`, `amqp_refused`, …)", "connections", &["slug", "name"], None, ("200", "It works: `{ok, connection}`, the connection's status with `tested`, what the test contacted, or that its kind has no test request and nothing was contacted")).errors(&["502"]) },
            "/v1/integrations/{slug}/connections/{name}/authorize": { "get": op("The provider URL that authorizes an authorization-code connection (its state is single use, 10 minutes)", "connections", &["slug", "name"], None, ("200", "`{url, expiresIn}`")) },
            "/v1/integrations/{slug}/test": { "post": op("Run the integration's test cases (tests:) on a throwaway engine", "integrations", &["slug", "name:query"], None, ("200", "The report")).errors(&["409", "422"]) },
            "/v1/integrations/{slug}/dry-runs": { "post": op("Dry-run a version (default: the newest, live or not) or a document not applied (`source`) against recorded executions: each one's event re-run with every step that is not pure answered from its recording; nothing is sent or stored but the results. Default flows: those that differ from the live version (all when none does); `limit` executions of each (default 500)", "integrations", &["slug"],
                Some(json_body(json!({ "version": { "type": "integer" }, "source": { "type": "string" }, "format": { "type": "string", "enum": ["yaml", "json"] }, "flow": { "type": "string" }, "flows": { "type": "array", "items": { "type": "string" } }, "from": {}, "to": {}, "status": { "type": "string", "enum": ["succeeded", "failed", "filtered"] }, "limit": { "type": "integer", "minimum": 1, "maximum": 100000 } }))), ("202", "The dry run: `{id, version, flows, total, progressUrl}`")).errors(&["422", "429"]) },
            "/v1/dry-runs/{id}": { "get": op("A dry run's progress (`total`, `done`, `same`, `different`, `wouldFail`, `unanswered`) and a page of its results (`outcome`, `after` = the previous page's `next`, `limit`); each result: `same`, `different` with `changes` (`at`: `status`, `steps.<key>`, `decisions.<key>`, `answer`; a `diff` of `{path, was, now}`), `would_fail` with `error`, `unanswered` with `steps`", "integrations", &["id", "outcome:query", "after:query", "limit:query"], None, ("200", "The dry run")) },
            "/v1/tenants": {
                "get": op("List tenants (admin token)", "tenants", &[], None, ("200", "The tenants")).errors(&["403"]),
                "post": op("Create a tenant and its first API token, shown once (admin token)", "tenants", &[], Some(strict_body(&["id"], json!({ "id": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$" }, "name": { "type": "string" } }))), ("201", "The tenant and its token")).errors(&["403", "409", "422"]),
            },
            "/v1/validate": { "post": op("Check a definition without storing it", "integrations", &[], Some(definition_body()), ("200", "Valid")).errors(&["422"]) },
            "/v1/executions": { "get": op("List executions, newest first", "executions", &["integration:query", "flow:query", "status:query", "triggerKind:query", "from:query", "to:query", "search:query", "limit:query", "cursor:query"], None, ("200", "A page of executions")) },
            "/v1/executions/{id}": { "get": op("An execution with every step attempt and its log", "executions", &["id"], None, ("200", "The execution")) },
            "/v1/executions/{id}/retry": { "post": op("Resume a failed execution from the failed step", "executions", &["id"], None, ("202", "Queued again")).errors(&["409"]) },
            "/v1/executions/{id}/replay": { "post": op("Run the execution's trigger again from the start, on the flow's latest version (default) or the original one (`version=original`)", "executions", &["id", "version:query"], None, ("202", "The new execution")).errors(&["409"]) },
            "/v1/executions/{id}/cancel": { "post": op("Cancel a queued or running execution", "executions", &["id"], None, ("200", "The execution")).errors(&["409"]) },
            "/v1/executions/{id}/skip": { "post": op("Let the executions after a failed one that blocks its order key run", "executions", &["id"], None, ("200", "The execution")).errors(&["409"]) },
            "/v1/executions/{id}/as-test": { "get": op("The execution as a `tests:` case of its flow: its trigger event, the side-effecting steps mocked (or failed, `mockErrors`) with what they recorded, the pure steps' outputs, the output and the `respond` answer as expectations; secrets stay markers. `case` is the text to paste under the document's `tests:` (YAML: one list item indented by two spaces; JSON: one object), `test` the case as JSON. 409: the execution has not ended or was cancelled; 422 `not_recorded`: its journal keeps no step outputs (`diagnostics: errors|minimal`); 422 `too_large`: its recording is over 16 MB; 503: the node's memory budget is full (`Retry-After`)", "executions", &["id", "format:query"], None, ("200", "`{executionId, integration, flow, version, format, case, test}`")).errors(&["409", "422"]) },
            "/v1/executions/retry": { "post": op("Bulk retry: resume matching executions (default: failed) from their failed step", "executions", &[],
                Some(json_body(json!({ "integration": { "type": "string" }, "flow": { "type": "string" }, "status": { "type": "string" }, "from": {}, "to": {}, "ids": { "type": "array" }, "triggerKind": { "type": "string" }, "search": { "type": "string" }, "dryRun": { "type": "boolean" } }))), ("202", "The bulk job")).ok("200", "A dry run: how many match").errors(&["422"]) },
            "/v1/executions/replay": { "post": op("Bulk replay: run matching executions again from the start", "executions", &[],
                Some(json_body(json!({ "integration": { "type": "string" }, "flow": { "type": "string" }, "status": { "type": "string" }, "from": {}, "to": {}, "ids": { "type": "array" }, "triggerKind": { "type": "string" }, "search": { "type": "string" }, "dryRun": { "type": "boolean" } }))), ("202", "The bulk job")).ok("200", "A dry run: how many match").errors(&["422"]) },
            "/v1/bulk/{id}": { "get": op("A bulk job's progress", "executions", &["id"], None, ("200", "The job")) },
            "/v1/deliveries/{id}": { "get": op("An outbound delivery (webhook or e-mail): status, next attempt, every attempt with status code, latency and response excerpt", "deliveries", &["id"], None, ("200", "The delivery")) },
            "/v1/deliveries/{id}/resend": { "post": op("Send a delivered or failed delivery again, with the same webhook-id", "deliveries", &["id"], None, ("202", "Queued again")).errors(&["409"]) },
            "/v1/smtp": {
                "get": op("The tenant's SMTP server (never its password), or which relay it uses (source: tenant|server|none)", "notifications", &[], None, ("200", "The SMTP settings")),
                "put": op("Set the tenant's SMTP server: a URL or the fields; e-mail steps and notifications go through it", "notifications", &[],
                    Some(json_body(json!({ "url": { "type": "string" }, "host": { "type": "string" }, "port": { "type": "integer" }, "security": { "type": "string", "enum": ["starttls", "tls", "none"] }, "username": { "type": "string" }, "password": { "type": "string" }, "from": { "type": "string" }, "timeoutMs": { "type": "integer" } }))),
                    ("200", "The SMTP settings")).errors(&["422"]),
                "delete": op("Forget the tenant's SMTP server: back to the server's relay", "notifications", &[], None, ("204", "Forgotten")),
            },
            "/v1/log-sources": { "get": op("The tenant's log sources with their counters (sent, dropped, failures)", "log-sources", &[], None, ("200", "The log sources")) },
            "/v1/log-sources/{name}": {
                "get": op("A log source (header values and URL queries redacted)", "log-sources", &["name"], None, ("200", "The log source")),
                "put": op("Create or replace a log source: syslog (udp/tcp), http (NDJSON batches) or file", "log-sources", &["name"],
                    Some(json_body(json!({ "syslog": { "type": "object" }, "http": { "type": "object" }, "file": { "type": "object" } }))), ("200", "The log source")).errors(&["422"]),
                "delete": op("Delete a log source", "log-sources", &["name"], None, ("204", "Deleted")),
            },
            "/v1/tokens": {
                "get": op("List API tokens", "tokens", &[], None, ("200", "Tokens (never the secrets)")),
                "post": op("Create an API token (shown once)", "tokens", &[], Some(strict_body(&["name"], json!({ "name": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S" } }))), ("201", "The token")).errors(&["422"]),
            },
            "/v1/tokens/{id}": { "delete": op("Revoke an API token", "tokens", &["id"], None, ("204", "Revoked")) },
            "/v1/keys": { "post": op("Generate a strong random webhook API key", "tokens", &[], None, ("200", "A key")) },
            "/v1/openapi.json": { "get": op("This document", "meta", &[], None, ("200", "OpenAPI 3.1")) },
            "/hooks/{tenant}/{path}": { "post": {
                "summary": "Webhook ingress (any method the flow allows); authenticated as the flow says",
                "tags": ["webhooks"], "security": [],
                "parameters": [{ "name": "tenant", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "path", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "content": { "*/*": { "schema": {} } } },
                "responses": {
                    "202": { "description": "Stored: `{executionId, statusUrl}` (`X-Flowgate-Duplicate: true` when the event was seen before)", "content": { "application/json": { "schema": { "type": "object", "properties": { "executionId": { "type": "string" }, "statusUrl": { "type": "string" } } } } } },
                    "default": { "description": "A sync flow's answer: what its `respond` step or its output says", "content": { "*/*": { "schema": {} } } },
                    "400": { "$ref": "#/components/responses/Error" }, "401": { "$ref": "#/components/responses/Error" },
                    "404": { "$ref": "#/components/responses/Error" }, "405": { "$ref": "#/components/responses/Error" },
                    "408": { "$ref": "#/components/responses/Error" }, "413": { "$ref": "#/components/responses/Error" },
                    "500": { "description": "A sync flow failed: where, never why (`execution_failed`)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "503": { "$ref": "#/components/responses/Unavailable" }
                }
            } },
            "/oauth/callback": { "get": {
                "summary": "Where an OAuth provider sends the person who authorized a connection (the single-use state is the credential)", "tags": ["connections"], "security": [],
                "parameters": [
                    { "name": "state", "in": "query", "required": false, "schema": { "type": "string" } },
                    { "name": "code", "in": "query", "required": false, "schema": { "type": "string" } },
                    { "name": "realmId", "in": "query", "required": false, "schema": { "type": "string" } },
                    { "name": "error", "in": "query", "required": false, "schema": { "type": "string" } }
                ],
                "responses": {
                    "200": { "description": "A page saying the connection is ready", "content": { "text/html": { "schema": { "type": "string" } } } },
                    "400": { "description": "A page saying why not (unknown, used or expired state; missing code)", "content": { "text/html": { "schema": { "type": "string" } } } },
                    "502": { "description": "A page saying the provider refused", "content": { "text/html": { "schema": { "type": "string" } } } },
                    "503": { "description": "A page saying to try again", "content": { "text/html": { "schema": { "type": "string" } } } }
                }
            } },
            "/resume/{id}": { "post": {
                "summary": "Resume an execution waiting in a `wait` step ($execution.resumeUrl, signed); the JSON body is the step's output", "tags": ["webhooks"], "security": [],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "sig", "in": "query", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {} } } },
                "responses": {
                    "202": { "description": "Resumed", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "400": { "$ref": "#/components/responses/Error" },
                    "404": { "$ref": "#/components/responses/Error" },
                    "409": { "$ref": "#/components/responses/Error" },
                    "413": { "$ref": "#/components/responses/Error" },
                    "503": { "$ref": "#/components/responses/Unavailable" }
                }
            } },
            "/status/{id}": { "get": {
                "summary": "An execution's status for a webhook caller (signed capability URL)", "tags": ["webhooks"], "security": [],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "sig", "in": "query", "required": true, "schema": { "type": "string" } }],
                "responses": {
                    "200": { "description": "Status and result", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "400": { "$ref": "#/components/responses/Error" },
                    "404": { "$ref": "#/components/responses/Error" },
                    "503": { "$ref": "#/components/responses/Unavailable" }
                }
            } },
        }
    })
}

/// `GET /v1/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}
