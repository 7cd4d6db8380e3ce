//! Signed webhooks (`trigger.webhook.verify`) over HTTP: Standard Webhooks, GitHub, Stripe
//! and a generic HMAC, alone and with `auth`; `{{ $config.x }}` secrets (defaults and
//! deployment values); validation problems, located.
//!
//! Every signature here is made by the test itself with the `hmac`/`sha2` crates,
//! independently of the server's code (and checked against the published examples where
//! there are some). Time is a [`ManualClock`]: tolerance edges are exact and nothing sleeps.

#[macro_use]
mod common;

use base64::Engine as _;
use common::{TestServer, assert_error, send};
use flowgate_engine::{Clock, ManualClock};
use hmac::{Hmac, Mac};
use reqwest::RequestBuilder;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// When the Standard Webhooks specification's example was signed (2021-02-25T15:02:10Z).
const T0: i64 = 1_614_265_330;

/// The specification's example secret (Standard Webhooks).
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// GitHub's documented example secret.
const GH_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_stripe_test_0123456789";
const GENERIC_SECRET: &str = "generic-secret-1";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Rotation: two Standard Webhooks secrets, both accepted.
fn old_whsec() -> String {
    format!("whsec_{}", B64.encode(b"the old signing key, 32 bytes!!!"))
}
fn new_whsec() -> String {
    format!("whsec_{}", B64.encode(b"the new signing key, 32 bytes!!!"))
}

fn doc() -> String {
    r#"
integration: signed
config:
  whsec: { type: secret, default: "WHSEC" }
  ghSecret: { type: secret, default: "GH_SECRET" }
  stripeSecret: { type: secret, default: "STRIPE_SECRET" }
flows:
  - flow: sw
    trigger: { webhook: { path: sw, verify: { standardWebhooks: { secret: "{{ $config.whsec }}" } } } }
    steps: [ { id: echo, transform: '$trigger.body' } ]
  - flow: sw-rotate
    trigger:
      webhook:
        path: sw-rotate
        verify: { standardWebhooks: { secrets: [ "OLD", "NEW" ], tolerance: 1m } }
    steps: [ { id: echo, transform: '$trigger.body' } ]
  - flow: gh
    trigger: { webhook: { path: gh, verify: { github: { secret: "{{ $config.ghSecret }}" } } } }
    steps: [ { id: echo, transform: '$trigger.body' } ]
  - flow: gh-bearer
    trigger:
      webhook:
        path: gh-bearer
        auth: { bearer: { token: bearer-token-1 } }
        verify: { github: { secret: "{{ $config.ghSecret }}" } }
    steps: [ { id: echo, transform: '$trigger.body' } ]
  - flow: stripe
    trigger: { webhook: { path: stripe, verify: { stripe: { secret: "{{ $config.stripeSecret }}" } } } }
    steps: [ { id: echo, transform: '$trigger.body' } ]
  - flow: stripe-short
    trigger: { webhook: { path: stripe-short, verify: { stripe: { secret: "{{ $config.stripeSecret }}", tolerance: 30s } } } }
    steps: [ { id: echo, transform: '$trigger.body' } ]
  - flow: generic
    trigger:
      webhook:
        path: generic
        verify:
          hmac:
            secret: GENERIC_SECRET
            header: X-Signature
            algorithm: sha512
            encoding: base64
            prefix: "v1="
            timestampHeader: X-Timestamp
            tolerance: 2m
    steps: [ { id: echo, transform: '$trigger.body' } ]
  - flow: slack-like
    trigger:
      webhook:
        path: slack-like
        verify:
          hmac:
            secret: SLACK_SECRET
            header: X-Slack-Signature
            prefix: "v0="
            timestampHeader: X-Slack-Request-Timestamp
            payload: "v0:{timestamp}:{body}"
    steps: [ { id: echo, transform: '$trigger.body' } ]
"#
    .replace("WHSEC", WHSEC)
    .replace("GH_SECRET", GH_SECRET)
    .replace("STRIPE_SECRET", STRIPE_SECRET)
    .replace("GENERIC_SECRET", GENERIC_SECRET)
    .replace("SLACK_SECRET", SLACK_SECRET)
    .replace("OLD", &old_whsec())
    .replace("NEW", &new_whsec())
}

// ---------------------------------------------------------------------------------------
// Signing, independent of the server
// ---------------------------------------------------------------------------------------

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    parts.iter().for_each(|p| m.update(p));
    m.finalize().into_bytes().to_vec()
}

fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).expect("any key length");
    parts.iter().for_each(|p| m.update(p));
    m.finalize().into_bytes().to_vec()
}

/// `v1,<base64>` over `{id}.{ts}.{body}`, keyed by the secret's base64 after `whsec_`.
fn sw_sign(secret: &str, id: &str, ts: i64, body: &str) -> String {
    let key = B64.decode(secret.strip_prefix("whsec_").expect("whsec_ prefix")).expect("base64 secret");
    let sig = hmac_sha256(&key, &[id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body.as_bytes()]);
    format!("v1,{}", B64.encode(sig))
}

/// `sha256=<hex>` over the body.
fn gh_sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &[body])))
}

/// The hex `v1` over `{t}.{body}`, keyed by the secret as written.
fn stripe_v1(secret: &str, t: i64, body: &str) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), &[t.to_string().as_bytes(), b".", body.as_bytes()]))
}

/// Distinct `webhook-id`s: a repeated one is a duplicate delivery.
fn msg_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("msg_{}", N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A server on a manual clock at `secs` (Unix seconds), with the document applied.
async fn start_at(secs: i64) -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(secs * 1000));
    let c = clock.clone();
    let s = TestServer::start_with(move |st| st.clock = Some(c)).await;
    s.apply(&doc()).await;
    (s, clock)
}

fn now(clock: &ManualClock) -> i64 {
    clock.now_ms().div_euclid(1000)
}

async fn executions(s: &TestServer, flow: &str) -> usize {
    s.get_json(&format!("/v1/executions?integration=signed&flow={flow}&limit=500")).await["items"]
        .as_array()
        .expect("items")
        .len()
}

/// Accepted (202); the execution, once it succeeded.
async fn accepted(s: &TestServer, req: RequestBuilder) -> Value {
    let (status, _, v) = send(req).await;
    assert_eq!(status, 202, "{v}");
    s.wait_for(v["executionId"].as_str().expect("executionId"), "succeeded").await
}

/// Refused: 401 `invalid_signature` saying `why`, no secret in the answer, nothing started.
async fn refused(s: &TestServer, flow: &str, req: RequestBuilder, why: &str) {
    let before = executions(s, flow).await;
    let (status, _, v) = send(req).await;
    assert_eq!(status, 401, "{v}");
    assert_error(&v, "invalid_signature");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(why), "expected `{why}` in `{message}`");
    let text = v.to_string();
    for secret in [WHSEC, GH_SECRET, STRIPE_SECRET, GENERIC_SECRET, SLACK_SECRET] {
        assert!(!text.contains(secret), "the answer shows a secret: {text}");
    }
    assert_eq!(executions(s, flow).await, before, "a refused delivery must not start an execution");
}

const NO_MATCH: &str = "no signature matched";
const STALE: &str = "outside the tolerance";

fn sw_request(s: &TestServer, path: &str, id: &str, ts: i64, sig: &str, body: &str) -> RequestBuilder {
    s.post_hook(path)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body.to_owned())
}

/// `body` with its `i`-th byte changed.
fn tamper(body: &str, i: usize) -> String {
    let mut b = body.as_bytes().to_vec();
    b[i] = if b[i] == b'1' { b'2' } else { b'1' };
    String::from_utf8(b).unwrap()
}

// ---------------------------------------------------------------------------------------
// Standard Webhooks
// ---------------------------------------------------------------------------------------

backends!(standard_webhooks);
async fn standard_webhooks() {
    let (s, clock) = start_at(T0).await;
    // The flow shows how it is verified, never the secrets.
    let flow = s.get_json("/v1/integrations/signed/flows/sw-rotate").await;
    assert_eq!(
        flow["trigger"]["verify"],
        json!({ "scheme": "standardWebhooks", "secrets": 2, "toleranceSeconds": 60 }),
        "{flow:#}"
    );

    // The specification's example, signed here: the published signature, accepted.
    let (id, body) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", r#"{"test": 2432232314}"#);
    let sig = sw_sign(WHSEC, id, T0, body);
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "the test's own signer");
    let (status, _, first) = send(sw_request(&s, "sw", id, T0, &sig, body)).await;
    assert_eq!(status, 202, "{first}");
    let ex = s.wait_for(first["executionId"].as_str().unwrap(), "succeeded").await;
    assert_eq!(ex["output"], json!({ "test": 2432232314u64 }));
    assert_eq!(ex["trigger"]["headers"]["webhook-id"], id);

    // The same signed delivery again: its webhook-id makes it a duplicate (issue 4).
    let (status, headers, again) = send(sw_request(&s, "sw", id, T0, &sig, body)).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["executionId"], first["executionId"]);
    assert_eq!(headers["x-flowgate-duplicate"], "true");

    let body = r#"{"order": 1001, "total": 12.5}"#;
    let t = now(&clock);

    // Wrong key, tampered body (one byte), a signature for another id or time.
    let other = format!("whsec_{}", B64.encode(b"somebody else's key"));
    let id = msg_id();
    refused(&s, "sw", sw_request(&s, "sw", &id, t, &sw_sign(&other, &id, t, body), body), NO_MATCH).await;
    let sig = sw_sign(WHSEC, &id, t, body);
    refused(&s, "sw", sw_request(&s, "sw", &id, t, &sig, &tamper(body, 10)), NO_MATCH).await;
    refused(&s, "sw", sw_request(&s, "sw", &msg_id(), t, &sig, body), NO_MATCH).await;
    refused(&s, "sw", sw_request(&s, "sw", &id, t - 1, &sig, body), NO_MATCH).await;
    let bare = B64.encode(B64.decode(&sig[3..]).unwrap());
    refused(&s, "sw", sw_request(&s, "sw", &id, t, &bare, body), "`webhook-signature` header is malformed").await;

    // Missing headers.
    let full = || sw_request(&s, "sw", &id, t, &sig, body);
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut req = s.post_hook("sw").header("content-type", "application/json").body(body);
        for (k, v) in
            [("webhook-id", id.clone()), ("webhook-timestamp", t.to_string()), ("webhook-signature", sig.clone())]
        {
            if k != missing {
                req = req.header(k, v);
            }
        }
        refused(&s, "sw", req, &format!("missing the `{missing}` header")).await;
    }

    // Correctly signed: accepted, the raw body as sent.
    assert_eq!(accepted(&s, full()).await["output"], json!({ "order": 1001, "total": 12.5 }));

    // Several signatures: one matching is enough (here the second; a v1a is skipped).
    let id = msg_id();
    let list = format!("v1,{} v1a,abcd {}", B64.encode([7u8; 32]), sw_sign(WHSEC, &id, t, body));
    accepted(&s, sw_request(&s, "sw", &id, t, &list, body)).await;
    let id = msg_id();
    let list = format!("v1,{} v1,{}", B64.encode([7u8; 32]), B64.encode([8u8; 32]));
    refused(&s, "sw", sw_request(&s, "sw", &id, t, &list, body), NO_MATCH).await;

    // Tolerance (default 5 min), both ways, at the edge: signed now, delivered 300 s later
    // is accepted; 301 s later refused. Likewise a timestamp ahead of the clock.
    let (late_a, late_b) = (msg_id(), msg_id());
    let signed_at = now(&clock);
    let (sig_a, sig_b) = (sw_sign(WHSEC, &late_a, signed_at, body), sw_sign(WHSEC, &late_b, signed_at, body));
    clock.advance(Duration::from_secs(300));
    accepted(&s, sw_request(&s, "sw", &late_a, signed_at, &sig_a, body)).await;
    clock.advance(Duration::from_secs(1));
    refused(&s, "sw", sw_request(&s, "sw", &late_b, signed_at, &sig_b, body), STALE).await;
    let t = now(&clock);
    let id = msg_id();
    accepted(&s, sw_request(&s, "sw", &id, t + 300, &sw_sign(WHSEC, &id, t + 300, body), body)).await;
    let id = msg_id();
    refused(&s, "sw", sw_request(&s, "sw", &id, t + 301, &sw_sign(WHSEC, &id, t + 301, body), body), STALE).await;
    let soon = s.post_hook("sw").header("webhook-id", &id).header("webhook-timestamp", "soon");
    refused(&s, "sw", soon.header("webhook-signature", &sig).body(body), "`webhook-timestamp` header is malformed")
        .await;

    // Rotation: either secret signs; another does not. Its tolerance is 1 min.
    let t = now(&clock);
    for secret in [old_whsec(), new_whsec()] {
        let id = msg_id();
        accepted(&s, sw_request(&s, "sw-rotate", &id, t, &sw_sign(&secret, &id, t, body), body)).await;
    }
    let id = msg_id();
    refused(&s, "sw-rotate", sw_request(&s, "sw-rotate", &id, t, &sw_sign(WHSEC, &id, t, body), body), NO_MATCH).await;
    let id = msg_id();
    accepted(&s, sw_request(&s, "sw-rotate", &id, t - 60, &sw_sign(&new_whsec(), &id, t - 60, body), body)).await;
    let id = msg_id();
    let sig = sw_sign(&old_whsec(), &id, t - 61, body);
    refused(&s, "sw-rotate", sw_request(&s, "sw-rotate", &id, t - 61, &sig, body), STALE).await;
}

// ---------------------------------------------------------------------------------------
// GitHub
// ---------------------------------------------------------------------------------------

backends!(github);
async fn github() {
    let (s, _clock) = start_at(T0).await;
    let hook = |path: &str, sig: &str, body: &[u8]| {
        let json = body.starts_with(b"{");
        s.post_hook(path)
            .header("content-type", if json { "application/json" } else { "text/plain" })
            .header("X-Hub-Signature-256", sig)
            .body(body.to_vec())
    };

    // GitHub's documented example.
    let sig = gh_sign(GH_SECRET, b"Hello, World!");
    assert_eq!(sig, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "the test's signer");
    assert_eq!(accepted(&s, hook("gh", &sig, b"Hello, World!")).await["output"], "Hello, World!");

    // Over the raw bytes: odd spacing and key order survive, and are what is signed.
    let body = br#"{ "action" :"opened",   "number":7 }"#;
    let sig = gh_sign(GH_SECRET, body);
    let ex = accepted(&s, hook("gh", &sig, body)).await;
    assert_eq!(ex["output"], json!({ "action": "opened", "number": 7 }));

    refused(&s, "gh", hook("gh", &gh_sign("not the secret", body), body), NO_MATCH).await;
    let mut tampered = body.to_vec();
    tampered[28] = b'8';
    refused(&s, "gh", hook("gh", &sig, &tampered), NO_MATCH).await;
    refused(&s, "gh", s.post_hook("gh").body(body.to_vec()), "missing the `X-Hub-Signature-256` header").await;
    let sha1ish = sig.replace("sha256=", "sha1=");
    refused(&s, "gh", hook("gh", &sha1ish, body), "malformed").await;
    refused(&s, "gh", hook("gh", "sha256=zz", body), "malformed").await;

    // With `auth`: both must pass.
    let both = |token: &str, sig: &str| hook("gh-bearer", sig, body).bearer_auth(token);
    accepted(&s, both("bearer-token-1", &sig)).await;
    refused(&s, "gh-bearer", both("bearer-token-1", &gh_sign("nope", body)), NO_MATCH).await;
    let (status, _, v) = send(both("bearer-token-2", &sig)).await;
    assert_eq!(status, 401, "{v}");
    assert_error(&v, "unauthorized");
}

// ---------------------------------------------------------------------------------------
// Stripe
// ---------------------------------------------------------------------------------------

backends!(stripe);
async fn stripe() {
    let (s, clock) = start_at(T0).await;
    let body = r#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"amount":2000}}}"#;
    let hook = |path: &str, header: &str, body: &str| {
        s.post_hook(path)
            .header("content-type", "application/json")
            .header("Stripe-Signature", header)
            .body(body.to_owned())
    };
    let t = now(&clock);
    let good = stripe_v1(STRIPE_SECRET, t, body);
    // The test's signer against a value computed once by hand (Python's hmac module).
    assert_eq!(
        stripe_v1("whsec_test", 1_700_000_000, "{}"),
        "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
    );

    // Several v1 (one matching) and a v0, as Stripe sends while rolling a secret.
    let header = format!("t={t},v1={},v1={good},v0={}", "0".repeat(64), "ab".repeat(32));
    let ex = accepted(&s, hook("stripe", &header, body)).await;
    assert_eq!(ex["output"]["type"], "payment_intent.succeeded");

    refused(&s, "stripe", hook("stripe", &format!("t={t},v1={}", stripe_v1("whsec_other", t, body)), body), NO_MATCH)
        .await;
    refused(&s, "stripe", hook("stripe", &format!("t={t},v1={good}"), &tamper(body, 70)), NO_MATCH).await;
    refused(&s, "stripe", hook("stripe", &format!("t={},v1={good}", t + 1), body), NO_MATCH).await;
    refused(&s, "stripe", hook("stripe", &format!("t={t},v0={good}"), body), "malformed").await;
    refused(&s, "stripe", hook("stripe", &format!("v1={good}"), body), "malformed").await;
    refused(&s, "stripe", s.post_hook("stripe").body(body), "missing the `Stripe-Signature` header").await;

    // Tolerance, default 300 s: at the edge accepted, a second beyond refused, both ways.
    let t = now(&clock);
    let at = |t: i64| format!("t={t},v1={}", stripe_v1(STRIPE_SECRET, t, body));
    accepted(&s, hook("stripe", &at(t - 300), body)).await;
    refused(&s, "stripe", hook("stripe", &at(t - 301), body), STALE).await;
    accepted(&s, hook("stripe", &at(t + 300), body)).await;
    refused(&s, "stripe", hook("stripe", &at(t + 301), body), STALE).await;
    // A delivery signed now goes stale as the clock moves on.
    let signed = at(t);
    clock.advance(Duration::from_secs(30));
    accepted(&s, hook("stripe-short", &signed, body)).await;
    clock.advance(Duration::from_secs(1));
    refused(&s, "stripe-short", hook("stripe-short", &signed, body), STALE).await;
    accepted(&s, hook("stripe", &signed, body)).await;
}

// ---------------------------------------------------------------------------------------
// Generic HMAC
// ---------------------------------------------------------------------------------------

backends!(generic_hmac);
async fn generic_hmac() {
    let (s, clock) = start_at(T0).await;
    let flow = s.get_json("/v1/integrations/signed/flows/generic").await;
    assert_eq!(
        flow["trigger"]["verify"],
        json!({ "scheme": "hmac", "secrets": 1, "header": "x-signature", "algorithm": "sha512", "encoding": "base64",
                "timestampHeader": "x-timestamp", "toleranceSeconds": 120 }),
        "{flow:#}"
    );
    assert!(!flow.to_string().contains("GENERIC_SECRET"), "{flow}");
    let body = r#"{"event":"invoice.paid","amount":41}"#;
    // sha512, base64, `v1=` prefix, over `{timestamp}.{body}` (the default with a timestamp).
    let sign = |ts: &str, body: &str| {
        format!("v1={}", B64.encode(hmac_sha512(GENERIC_SECRET.as_bytes(), &[ts.as_bytes(), b".", body.as_bytes()])))
    };
    let hook = |sig: &str, ts: &str, body: &str| {
        s.post_hook("generic")
            .header("content-type", "application/json")
            .header("X-Signature", sig)
            .header("X-Timestamp", ts)
            .body(body.to_owned())
    };
    let t = now(&clock).to_string();
    let sig = sign(&t, body);
    assert_eq!(accepted(&s, hook(&sig, &t, body)).await["output"], json!({ "event": "invoice.paid", "amount": 41 }));

    refused(&s, "generic", hook(&sig, &t, &tamper(body, 33)), NO_MATCH).await;
    let wrong = format!("v1={}", B64.encode(hmac_sha512(b"another secret", &[t.as_bytes(), b".", body.as_bytes()])));
    refused(&s, "generic", hook(&wrong, &t, body), NO_MATCH).await;
    // The timestamp is signed: a fresh one on an old signature does not match.
    let next = (now(&clock) + 1).to_string();
    refused(&s, "generic", hook(&sig, &next, body), NO_MATCH).await;
    refused(&s, "generic", hook(&sig[3..], &t, body), "`x-signature` header is malformed").await;
    let no_sig = s.post_hook("generic").header("X-Timestamp", &t).body(body);
    refused(&s, "generic", no_sig, "missing the `x-signature` header").await;
    let no_ts = s.post_hook("generic").header("X-Signature", &sig).body(body);
    refused(&s, "generic", no_ts, "missing the `x-timestamp` header").await;

    // Tolerance 2 min, both ways, at the edge.
    let n = now(&clock);
    for (off, ok) in [(-120, true), (-121, false), (120, true), (121, false)] {
        let ts = (n + off).to_string();
        let req = hook(&sign(&ts, body), &ts, body);
        if ok {
            accepted(&s, req).await;
        } else {
            refused(&s, "generic", req, STALE).await;
        }
    }

    // Slack's layout: hex sha256 over `v0:{timestamp}:{body}`, prefix `v0=`.
    let form = "token=x&team_id=T1&command=%2Fdeploy&text=now";
    let ts = now(&clock).to_string();
    let mac = hmac_sha256(SLACK_SECRET.as_bytes(), &[b"v0:", ts.as_bytes(), b":", form.as_bytes()]);
    let slack = |sig: String| {
        s.post_hook("slack-like")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Slack-Request-Timestamp", &ts)
            .header("X-Slack-Signature", sig)
            .body(form)
    };
    let ex = accepted(&s, slack(format!("v0={}", hex::encode(&mac)))).await;
    assert_eq!(ex["output"]["command"], "/deploy");
    let dotted = hmac_sha256(SLACK_SECRET.as_bytes(), &[ts.as_bytes(), b".", form.as_bytes()]);
    refused(&s, "slack-like", slack(format!("v0={}", hex::encode(dotted))), NO_MATCH).await;
}

// ---------------------------------------------------------------------------------------
// Secrets from the deployment's config
// ---------------------------------------------------------------------------------------

const DEPLOYED: &str = r#"
integration: signed
config:
  hookSecret: { type: secret, required: true }
flows:
  - flow: deployed
    trigger: { webhook: { path: deployed, verify: { github: { secret: "{{ $config.hookSecret }}" } } } }
    steps: [ { id: echo, transform: '$trigger.body' } ]
"#;

backends!(secrets_from_deployment_config);
/// A `{{ $config.x }}` secret whose value is not set yet: the document applies (not live),
/// and once the deployment sets it, that value is the key.
async fn secrets_from_deployment_config() {
    let s = TestServer::start().await;
    let (status, v) = s.put_integration("signed", DEPLOYED).await;
    assert_eq!(status, 201, "an unset secret is not a problem while values are missing: {v}");
    assert_eq!(v["deployment"]["missing"], json!(["hookSecret"]), "{v}");
    let body = br#"{"n":1}"#;
    let hook =
        |secret: &str| s.post_hook("deployed").header("X-Hub-Signature-256", gh_sign(secret, body)).body(&body[..]);
    let (status, _, v) = send(hook("")).await;
    assert_eq!(status, 404, "not live: {v}");

    let (status, _, v) = send(
        s.api(reqwest::Method::PUT, "/v1/integrations/signed/deployment")
            .json(&json!({ "config": { "hookSecret": "deployed-secret-7" } })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(accepted(&s, hook("deployed-secret-7")).await["output"], json!({ "n": 1 }));
    refused(&s, "deployed", hook("{{ $config.hookSecret }}"), NO_MATCH).await;
    refused(&s, "deployed", hook(""), NO_MATCH).await;
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

const BROKEN: &str = r#"integration: bad-verify
config:
  unset: { type: secret }
flows:
  - flow: two
    trigger: { webhook: { path: a, verify: { github: { secret: abcdefgh }, stripe: { secret: abcdefgh } } } }
    steps: [ { id: x, transform: '.' } ]
  - flow: algo
    trigger: { webhook: { path: b, verify: { hmac: { secret: abcdefgh, header: X-Sig, algorithm: md5, encoding: base32 } } } }
    steps: [ { id: x, transform: '.' } ]
  - flow: b64
    trigger: { webhook: { path: c, verify: { standardWebhooks: { secret: "whsec_not base64!" } } } }
    steps: [ { id: x, transform: '.' } ]
  - flow: zero
    trigger: { webhook: { path: d, verify: { stripe: { secret: abcdefgh, tolerance: 0s } } } }
    steps: [ { id: x, transform: '.' } ]
  - flow: empty
    trigger: { webhook: { path: e, verify: { github: { secret: "{{ $config.unset }}" } } } }
    steps: [ { id: x, transform: '.' } ]
  - flow: payload
    trigger: { webhook: { path: f, verify: { hmac: { secret: abcdefgh, header: X-Sig, payload: "{id}.{body}", tolerance: 1m } } } }
    steps: [ { id: x, transform: '.' } ]
  - flow: none
    trigger: { webhook: { path: g, verify: { gitlab: { secret: abcdefgh } } } }
    steps: [ { id: x, transform: '.' } ]
  - flow: both-secrets
    trigger: { webhook: { path: h, verify: { github: { secret: abcdefgh, secrets: [ ijklmnop ] } } } }
    steps: [ { id: x, transform: '.' } ]
  - flow: rotation
    trigger: { webhook: { path: i, verify: { standardWebhooks: { secrets: [ "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "" ] } } } }
    steps: [ { id: x, transform: '.' } ]
"#;

backends!(validation_problems_are_located);
async fn validation_problems_are_located() {
    let s = TestServer::start().await;
    let (status, v) = s.put_integration("bad-verify", BROKEN).await;
    assert_eq!(status, 422, "{v}");
    assert_error(&v, "validation_failed");
    let problems = v["error"]["details"]["problems"].as_array().expect("details.problems");
    let find = |path: &str, says: &str| {
        let p = problems.iter().find(|p| p["path"] == path).unwrap_or_else(|| panic!("no problem at {path}: {v:#}"));
        let message = p["message"].as_str().unwrap();
        assert!(message.contains(says), "{path}: expected `{says}` in `{message}`");
        assert!(p["line"].as_u64().is_some_and(|l| l >= 1), "{path} has no line: {p}");
    };
    let at = |i: usize, rest: &str| format!("flows[{i}].trigger.webhook.verify{rest}");
    find(&at(0, ""), "only one scheme");
    find(&at(1, ".hmac.algorithm"), "unknown algorithm `md5`");
    find(&at(1, ".hmac.encoding"), "unknown encoding `base32`");
    find(&at(2, ".standardWebhooks.secret"), "base64");
    find(&at(3, ".stripe.tolerance"), "at least 1s");
    find(&at(4, ".github.secret"), "empty");
    find(&at(5, ".hmac.payload"), "unknown placeholder `{id}`");
    find(&at(5, ".hmac.tolerance"), "timestampHeader");
    find(&at(6, ".gitlab"), "unknown key `gitlab`");
    find(&at(6, ""), "set one scheme");
    find(&at(7, ".github"), "not both");
    find(&at(8, ".standardWebhooks.secrets[1]"), "empty");
    assert_eq!(problems.len(), 12, "{v:#}");

    // The same problems from /v1/validate, and nothing stored.
    let (status, _, again) =
        send(s.api(reqwest::Method::POST, "/v1/validate").header("content-type", "application/yaml").body(BROKEN))
            .await;
    assert_eq!(status, 422, "{again}");
    assert_eq!(again["error"]["details"]["problems"], v["error"]["details"]["problems"]);
    let (status, _, _) = send(s.api(reqwest::Method::GET, "/v1/integrations/bad-verify")).await;
    assert_eq!(status, 404);
}
