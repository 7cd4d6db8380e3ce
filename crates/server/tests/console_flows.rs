//! The console's flow page (issue 19 item 3) over HTTP, on both backends: the General panel
//! of webhook, schedule, manual and e-mail flows (every field, secrets never shown), the
//! active switch (CSRF-checked, the same engine call as the API), the Steps diagram with a
//! switch, a loop, parallel branches and a call, an execution laid over it, hostile names
//! and step configs kept inert, another tenant's flows absent, and no session → sign-in.

#[macro_use]
mod common;
mod console_support;

use common::{TOKEN, TestServer};
use console_support::{browser, csrf_of, page, post_form, sign_in};
use serde_json::json;

const ADMIN: &str = "fga_console_flows_admin";
const PUBLIC: &str = "http://flows.example.test:8080";

const GENERAL: &str = r#"
integration: flows-demo
name: Flows demo
connections:
  crm: { bearer: { token: "crm-bearer-secret-value" } }
flows:
  - flow: hooked
    name: Orders in
    description: "Takes orders from the shop.\nSecond line."
    connection: crm
    orderBy: '$trigger.body.customer'
    notifyEmails: "ops@acme.example, dev@acme.example"
    notifyOnRecovery: true
    logSource: audit
    trigger:
      webhook:
        path: flows/orders
        methods: [POST, PUT]
        auth: { apiKey: { header: X-Shop-Key, keys: [ { label: shop-eu, secret: "super-secret-key-1" }, { label: shop-us, secret: "super-secret-key-2" } ] } }
        query:
          region: { default: eu, description: "Which shop" }
          dry: { required: true }
        respond: { mode: sync, timeout: 10s }
    steps:
      - { id: shape, transform: '{ id: .body.id }' }
  - flow: nightly
    trigger: { schedule: { cron: "0 7 * * MON-FRI", timezone: Europe/Oslo, missed: last } }
    steps:
      - { id: tick, log: "tick" }
  - flow: byhand
    trigger: { manual: {} }
    steps:
      - { id: note, log: "hello from byhand" }
      - { id: out, transform: '{ done: true }' }
  - flow: inbox
    trigger: { email: { allowFrom: ["*@acme.example"] } }
    steps:
      - { id: read, transform: '.body.subject' }
"#;

backends!(general_panel_shows_every_field);
async fn general_panel_shows_every_field() {
    let s = TestServer::start_with(|st| st.public_url = Some(PUBLIC.into())).await;
    s.apply(GENERAL).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;

    // Webhook: the exact URL the API serves, with a Copy button; auth without secrets.
    let (status, html) = page(&s, &cookie, "/console/integrations/flows-demo/flows/hooked").await;
    assert_eq!(status, 200, "{html}");
    let api = s.get_json("/v1/integrations/flows-demo/flows/hooked").await;
    let url = api["webhookUrl"].as_str().unwrap();
    assert_eq!(url, format!("{PUBLIC}/hooks/default/flows/orders"));
    assert!(html.contains(&format!(r#"<code class="copy-value" id="webhook-url">{url}</code>"#)), "{html}");
    assert!(html.contains(r#"<button type="button" data-copy="webhook-url""#), "{html}");
    for want in [
        "<h1>Orders in</h1>",
        "Takes orders from the shop.\nSecond line.",
        r#"<dd id="trigger-kind"><code>webhook</code></dd>"#,
        "<code>POST</code>, <code>PUT</code>",
        "<code>apiKey</code>",
        "<code>X-Shop-Key</code>",
        "shop-eu, shop-us",
        "<td><code>region</code></td><td><code>eu</code></td><td>no</td><td>Which shop</td>",
        "<td><code>dry</code></td>",
        "<code>sync</code>: request-response",
        "10s",
        "ordered per key <code>$trigger.body.customer</code>",
        "ops@acme.example, dev@acme.example",
        "and when it succeeds again",
        "<code>audit</code>",
        "<code>crm</code>",
        "bearer",
        "It has not run yet.",
        r#"href="/console/integrations/flows-demo/edit""#,
        r#"href="/console/integrations/flows-demo/flows/hooked/try""#,
        "Deactivate",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    for secret in ["super-secret-key-1", "super-secret-key-2", "crm-bearer-secret-value"] {
        assert!(!html.contains(secret), "a secret is shown: {secret}");
    }

    // Schedule: in words, and its next slots (the same computation as the API's).
    let (status, html) = page(&s, &cookie, "/console/integrations/flows-demo/flows/nightly").await;
    assert_eq!(status, 200);
    let api = s.get_json("/v1/integrations/flows-demo/flows/nightly").await;
    let words = api["trigger"]["schedule"].as_str().unwrap();
    assert!(
        html.contains(&format!(r#"<dd id="schedule-words">{words}<span class="sub"> (Europe/Oslo)</span>"#)),
        "{html}"
    );
    let next: Vec<&str> = api["nextRuns"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(next.len(), 5);
    for t in &next {
        assert!(html.contains(&format!(r#"<time datetime="{t}">"#)), "{t} in {html}");
    }
    assert!(html.contains("<code>last</code>: the latest missed slot runs once"), "{html}");

    // The active switch: a POST with the CSRF token, the same engine call as the API.
    let csrf = csrf_of(&html);
    let path = "/console/integrations/flows-demo/flows/nightly/active";
    assert_eq!(post_form(&s, &cookie, path, "active=false").await.status(), 403);
    assert_eq!(post_form(&s, &cookie, path, "csrf=wrong&active=false").await.status(), 403);
    assert_eq!(post_form(&s, &cookie, path, &format!("csrf={csrf}&active=maybe")).await.status(), 400);
    let r = post_form(&s, &cookie, path, &format!("csrf={csrf}&active=false")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/integrations/flows-demo/flows/nightly");
    assert_eq!(s.get_json("/v1/integrations/flows-demo/flows/nightly").await["active"], false);
    let (_, html) = page(&s, &cookie, "/console/integrations/flows-demo/flows/nightly").await;
    assert!(html.contains("inactive") && html.contains(">Activate</button>"), "{html}");
    assert!(html.contains("none while the flow is inactive"), "{html}");
    assert!(!html.contains(&format!(r#"<time datetime="{}">"#, next[0])), "no next runs while off");
    let r = post_form(&s, &cookie, path, &format!("csrf={csrf}&active=true")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(s.get_json("/v1/integrations/flows-demo/flows/nightly").await["active"], true);

    // Manual: the last execution, its status linking to its page, and its log.
    let (status, html) = page(&s, &cookie, "/console/integrations/flows-demo/flows/byhand").await;
    assert_eq!(status, 200);
    assert!(html.contains("only when started"), "{html}");
    let run = s.run_flow("flows-demo", "byhand", json!({})).await;
    let id = run["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&id, "succeeded").await;
    let (_, html) = page(&s, &cookie, "/console/integrations/flows-demo/flows/byhand").await;
    assert!(html.contains(&format!(r#"href="/console/executions/{id}""#)), "{html}");
    assert!(html.contains("succeeded"), "{html}");
    assert!(html.contains("hello from byhand"), "the last execution's log: {html}");

    // E-mail: the inbound address, as the API says it.
    let (status, html) = page(&s, &cookie, "/console/integrations/flows-demo/flows/inbox").await;
    assert_eq!(status, 200);
    let api = s.get_json("/v1/integrations/flows-demo/flows/inbox").await;
    let address = api["inboundEmailAddress"].as_str().unwrap();
    assert!(html.contains(&format!(r#"id="email-address">{address}</code>"#)), "{html}");
    assert!(html.contains("<code>*@acme.example</code>"), "{html}");

    // Unknown integration or flow: the console's 404 page.
    for path in ["/console/integrations/nope/flows/hooked", "/console/integrations/flows-demo/flows/nope"] {
        let (status, html) = page(&s, &cookie, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("Not found"), "{html}");
    }
}

const DIAGRAM: &str = r#"
integration: diagram-demo
flows:
  - flow: main
    trigger: { manual: {} }
    retry: { attempts: 2, backoff: { initial: 1s, max: 5s } }
    steps:
      - { id: start, transform: '{ kind: $trigger.body.kind, items: [1, 2, 3] }' }
      - id: route
        switch:
          - when: '.kind == "a"'
            steps:
              - { id: on_a, transform: '. + { branch: "a-branch-marker" }' }
          - when: '.kind == "b"'
            steps:
              - { id: on_b, transform: '. + { branch: "b" }' }
          - default:
              - { id: on_other, transform: '. + { branch: "other" }' }
      - id: each
        foreach:
          items: '.items'
          concurrency: 2
          steps:
            - { id: double, transform: '. * 2' }
      - id: both
        onError: continue
        parallel:
          left: [ { id: lefty, transform: '"left-output-marker"' } ]
          right: [ { id: righty, retry: { attempts: 1 }, transform: '"right"' } ]
      - id: ask
        call: { flow: child, input: { n: 1 } }
      - id: post
        when: 'false'
        http: { method: post, url: "https://api.example.test/orders" }
  - flow: child
    trigger: { manual: {} }
    steps:
      - { id: echo, transform: '{ child: true }' }
"#;

backends!(steps_diagram_and_execution_overlay);
async fn steps_diagram_and_execution_overlay() {
    let s = TestServer::start().await;
    s.apply(DIAGRAM).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let base = "/console/integrations/diagram-demo/flows/main";

    let (status, html) = page(&s, &cookie, base).await;
    assert_eq!(status, 200, "{html}");
    for want in [
        // Every step, nested where it runs, with its kind.
        r#"data-step="start" data-kind="transform""#,
        r#"data-step="route" data-kind="switch""#,
        r#"data-step="on_a" data-kind="transform""#,
        r#"data-step="on_b""#,
        r#"data-step="on_other""#,
        r#"data-step="each" data-kind="foreach""#,
        r#"data-step="each[*].double""#,
        r#"data-step="both" data-kind="parallel""#,
        r#"data-step="both[left].lefty""#,
        r#"data-step="both[right].righty""#,
        r#"data-step="ask" data-kind="call""#,
        // Switch cases and parallel branches side by side; the loop's body.
        r#"<div class="branches switch""#,
        r#"when <code title=".kind == &quot;a&quot;">.kind == &quot;a&quot;</code>"#,
        "otherwise",
        r#"<div class="body loop""#,
        "for each item of <code title=\".items\">.items</code>",
        r#"<div class="branches parallel""#,
        r#"data-branch="left""#,
        // Summaries, policies, the call linked to its flow.
        "<code>POST https://api.example.test/orders</code>",
        "Runs only when <code>false</code>",
        "Retry: 2 tries, 1s then ×2 up to 5s (flow)",
        "Retry: 1 try (no retry) (step)",
        "On error: <code>continue</code>",
        r#"Calls <a href="/console/integrations/diagram-demo/flows/child"><code>diagram-demo / child</code></a>"#,
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert!(!html.contains(r#"id="overlay""#), "no execution chosen");

    // An execution laid over the diagram: statuses, durations and data.
    let run = s.run_flow("diagram-demo", "main", json!({ "kind": "a" })).await;
    let id = run["executionId"].as_str().unwrap().to_owned();
    s.wait_for(&id, "succeeded").await;
    let (status, html) = page(&s, &cookie, base).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!(r#"<option value="{id}""#)), "the picker offers it: {html}");
    let (status, html) = page(&s, &cookie, &format!("{base}?execution={id}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-initial="steps""#), "the Steps panel opens");
    assert!(html.contains(&format!(r#"<option value="{id}" selected>"#)), "{html}");
    for (step, st) in [
        ("start", "succeeded"),
        ("route", "succeeded"),
        ("on_a", "succeeded"),
        ("on_b", "not run"),
        ("on_other", "not run"),
        ("each", "succeeded"),
        ("each[*].double", "succeeded"),
        ("both[left].lefty", "succeeded"),
        ("ask", "succeeded"),
    ] {
        let want = format!(r#"data-step="{step}" data-kind="#);
        let at = html.find(&want).unwrap_or_else(|| panic!("{step} in {html}"));
        let tag = &html[at..at + html[at..].find('>').unwrap()];
        assert!(tag.contains(&format!(r#"data-status="{st}""#)), "{step} is {st}: {tag}");
    }
    assert!(html.contains("3 runs: 3 succeeded"), "the loop's items: {html}");
    assert!(html.contains("a-branch-marker"), "a step's output: {html}");
    assert!(html.contains("left-output-marker"), "a branch step's output: {html}");
    assert!(html.contains("<summary>Input</summary>"), "{html}");
    assert!(html.contains(r#"<span class="badge st-skipped">"#), "the step whose `when` was false is skipped: {html}");

    // An execution of another flow, or none, is said so; the page still shows.
    let other = s.run_flow("diagram-demo", "child", json!({})).await;
    let other = other["executionId"].as_str().unwrap();
    let (status, html) = page(&s, &cookie, &format!("{base}?execution={other}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("That execution belongs to another flow."), "{html}");
    let (status, html) = page(&s, &cookie, &format!("{base}?execution=ex_nope")).await;
    assert_eq!(status, 200);
    assert!(html.contains("There is no such execution."), "{html}");
}

const HOSTILE: &str = r#"
integration: flows-hostile
name: "<b>bold</b>"
flows:
  - flow: evil
    name: "<script>alert('name')</script>"
    description: "<img src=x onerror=alert('desc')>"
    trigger: { webhook: { path: evil, query: { "q": { default: "<script>q</script>", description: "<svg onload=alert(1)>" } } } }
    steps:
      - id: shape
        name: "<i>step name</i>"
        transform: '{ html: "<script>alert(\"jq\")</script>" }'
      - id: go
        http: { url: "https://x.example/<img src=y onerror=alert(2)>" }
      - id: route
        switch:
          - when: '.html == "</code><script>alert(3)</script>"'
            steps: [ { id: inner, log: "<b>log</b>" } ]
"#;

backends!(hostile_input_inert_tenants_apart_and_sessions_needed);
async fn hostile_input_inert_tenants_apart_and_sessions_needed() {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    s.apply(HOSTILE).await;
    let path = "/console/integrations/flows-hostile/flows/evil";

    // No session: the sign-in page, for the page and its switch.
    let r = browser().get(format!("{}{path}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/signin");
    let r = browser().post(format!("{}{path}/active", s.url)).body("active=false").send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/signin");

    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (status, html) = page(&s, &cookie, path).await;
    assert_eq!(status, 200, "{html}");
    for want in [
        "&lt;script&gt;alert('name')&lt;/script&gt;",
        "&lt;img src=x onerror=alert('desc')&gt;",
        "&lt;svg onload=alert(1)&gt;",
        "&lt;script&gt;q&lt;/script&gt;",
        "&lt;i&gt;step name&lt;/i&gt;",
        "&lt;script&gt;alert(\\&quot;jq\\&quot;)&lt;/script&gt;",
        "https://x.example/&lt;img src=y onerror=alert(2)&gt;",
        "&lt;/code&gt;&lt;script&gt;alert(3)&lt;/script&gt;",
        "&lt;b&gt;log&lt;/b&gt;",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    for raw in ["<script>alert", "<img src=", "<svg", "<i>step", "<b>log", "<b>bold"] {
        assert!(!html.contains(raw), "unescaped {raw}");
    }
    assert!(!html.contains(" style="), "no inline style");

    // Another tenant: its flows are absent, the switch cannot reach them.
    let other = s.create_tenant(ADMIN, "flows-other").await;
    let (cookie2, _) = sign_in(&s, &other).await;
    let (status, html) = page(&s, &cookie2, path).await;
    assert_eq!(status, 404);
    assert!(!html.contains("alert('name')") && !html.contains("evil"), "{html}");
    let (_, listing) = page(&s, &cookie2, "/console/executions").await;
    let csrf = csrf_of(&listing);
    let r = post_form(&s, &cookie2, &format!("{path}/active"), &format!("csrf={csrf}&active=false")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(s.get_json("/v1/integrations/flows-hostile/flows/evil").await["active"], true);
}
