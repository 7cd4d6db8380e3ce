//! The console's editor (issue 19 item 4) over HTTP, on both backends: the YAML editor of an
//! integration (source shown escaped, Validate listing each problem at its line and column,
//! Apply storing version N+1 as the API does, a failing Apply storing nothing and keeping the
//! text, a document naming another integration refused, the API's body limit), the new
//! integration page, and *Try it* (a test run with a body, headers and query; its steps
//! endpoint; bad input refused without running anything); CSRF on every POST; a second
//! tenant reaching none of it.

#[macro_use]
mod common;
mod console_support;

use common::{TOKEN, TestServer};
use console_support::{browser, csrf_of, page, post_form, sign_in};
use serde_json::{Value, json};
use std::time::Instant;

const ADMIN: &str = "fga_console_editor_admin";

/// Version 1: a comment with markup, and a webhook flow echoing its trigger.
const V1: &str = r#"integration: ed-demo
# a comment with <script>alert('yaml')</script> in it
flows:
  - flow: echo
    trigger: { webhook: { path: ed/echo } }
    steps:
      - id: shape
        transform: '{ name: $trigger.body.name, tag: $trigger.headers["x-tag"], q: $trigger.query.q }'
      - id: wrap
        transform: '{ wrapped: ., note: "<img src=x onerror=alert(1)>" }'
"#;

/// Two problems: an unknown step kind (line 7) and a bad jq (line 9).
const TWO_PROBLEMS: &str = r#"integration: ed-demo
flows:
  - flow: echo
    trigger: { webhook: { path: ed/echo } }
    steps:
      - id: shape
        frobnicate: { x: 1 }
      - id: wrap
        transform: '{ a: ( }'
"#;

/// A YAML syntax error (line 4).
const SYNTAX: &str = "integration: ed-demo\nflows:\n  - flow: echo\n    trigger: { webhook: { path: ed/echo }\n";

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_owned()
}

/// POST the editor form of `path` (action `validate` or `apply`).
async fn submit(s: &TestServer, cookie: &str, path: &str, csrf: &str, action: &str, source: &str) -> (u16, String) {
    let form = format!("csrf={}&action={action}&source={}", enc(csrf), enc(source));
    let r = post_form(s, cookie, path, &form).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Validate as the page's script does (JSON).
async fn validate_json(s: &TestServer, cookie: &str, path: &str, csrf: &str, source: &str) -> Value {
    let r = browser()
        .post(format!("{}{path}", s.url))
        .header("cookie", cookie)
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}&action=validate&source={}", enc(csrf), enc(source)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn version(s: &TestServer, slug: &str) -> i64 {
    s.get_json(&format!("/v1/integrations/{slug}")).await["version"].as_i64().unwrap()
}

async fn executions(s: &TestServer, slug: &str) -> usize {
    s.get_json(&format!("/v1/executions?integration={slug}")).await["items"].as_array().unwrap().len()
}

backends!(edit_validate_and_apply);
async fn edit_validate_and_apply() {
    let s = TestServer::start().await;
    s.apply(V1).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let path = "/console/integrations/ed-demo/edit";

    // The current source, escaped: the comment's markup stays text.
    let (status, html) = page(&s, &cookie, path).await;
    assert_eq!(status, 200);
    assert!(html.contains("# a comment with &lt;script&gt;alert('yaml')&lt;/script&gt; in it"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("Current version 1"), "{html}");
    assert!(html.contains(r#"<textarea id="source" name="source""#), "{html}");
    let csrf = csrf_of(&html);

    // Validate: each problem at its line and column, from the engine's own check.
    let v = validate_json(&s, &cookie, path, &csrf, TWO_PROBLEMS).await;
    assert_eq!(v["valid"], false, "{v}");
    let problems = v["problems"].as_array().unwrap();
    assert!(problems.len() >= 2, "{v}");
    let at = |line: i64| problems.iter().find(|p| p["line"] == line).unwrap_or_else(|| panic!("line {line}: {v}"));
    assert!(at(7)["column"].as_i64().unwrap() >= 1, "{v}");
    assert!(at(7)["message"].as_str().unwrap().contains("unknown step kind or key `frobnicate`"), "{v}");
    assert!(at(9)["message"].as_str().unwrap().contains("expression does not compile"), "{v}");
    assert!(at(9)["column"].as_i64().unwrap() >= 1, "{v}");
    // The same as a page (no script): listed with line and column, marked in the gutter.
    let (status, html) = submit(&s, &cookie, path, &csrf, "validate", TWO_PROBLEMS).await;
    assert_eq!(status, 422, "{html}");
    let col7 = at(7)["column"].as_i64().unwrap();
    let col9 = at(9)["column"].as_i64().unwrap();
    assert!(html.contains(&format!(r#"data-line="7" data-column="{col7}">line 7, column {col7}</a>"#)), "{html}");
    assert!(html.contains(&format!(r#"data-line="9" data-column="{col9}">line 9, column {col9}</a>"#)), "{html}");
    assert!(html.contains(r#"<div class="ln bad" data-line="7">"#), "{html}");
    assert!(html.contains(r#"<div class="ln bad" data-line="9">"#), "{html}");
    assert!(html.contains("Problem at line 7: "), "{html}");
    // A syntax error, located.
    let v = validate_json(&s, &cookie, path, &csrf, SYNTAX).await;
    let problems = v["problems"].as_array().unwrap();
    assert!(!problems.is_empty() && problems[0]["line"].as_i64().is_some_and(|l| l >= 4), "{v}");
    assert!(problems[0]["message"].as_str().unwrap().contains("invalid YAML"), "{v}");
    // A valid text: no problems, nothing stored.
    let v2 = V1.replace("onerror=alert(1)>\" }'", "onerror=alert(1)>\", v: 2 }'");
    assert_ne!(v2, V1);
    let v = validate_json(&s, &cookie, path, &csrf, &v2).await;
    assert_eq!(v, json!({ "valid": true, "problems": [] }));
    assert_eq!(version(&s, "ed-demo").await, 1);

    // Apply: version 2, seen by the API, with a link to the integration's page.
    let (status, html) = submit(&s, &cookie, path, &csrf, "apply", &v2).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"<strong id="applied-version">version 2</strong>"#), "{html}");
    assert!(html.contains(r#"href="/console/integrations/ed-demo""#), "{html}");
    let api = s.get_json("/v1/integrations/ed-demo").await;
    assert_eq!(api["version"], 2);
    assert!(api["source"].as_str().unwrap().contains("v: 2"), "{api}");
    // The same text again keeps the version.
    let (status, html) = submit(&s, &cookie, path, &csrf, "apply", &v2).await;
    assert_eq!(status, 200);
    assert!(html.contains("Unchanged"), "{html}");
    assert_eq!(version(&s, "ed-demo").await, 2);

    // A failing Apply stores nothing and keeps the typed text.
    let typed = format!("{TWO_PROBLEMS}# typed <b>here</b>\n");
    let (status, html) = submit(&s, &cookie, path, &csrf, "apply", &typed).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Nothing was applied"), "{html}");
    assert!(html.contains("# typed &lt;b&gt;here&lt;/b&gt;"), "{html}");
    assert!(html.contains("frobnicate: { x: 1 }"), "{html}");
    assert!(html.contains(">line 7, column "), "{html}");
    assert_eq!(version(&s, "ed-demo").await, 2);
    let (status, html) = submit(&s, &cookie, path, &csrf, "apply", SYNTAX).await;
    assert_eq!(status, 422, "{html}");
    assert_eq!(version(&s, "ed-demo").await, 2);

    // A document naming another integration is refused, at its `integration:` line.
    let other = v2.replace("integration: ed-demo", "integration: ed-other");
    let (status, html) = submit(&s, &cookie, path, &csrf, "apply", &other).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("defines integration `ed-other` but this page edits `ed-demo`"), "{html}");
    assert!(html.contains(r#"data-line="1" data-column="#), "{html}");
    let v = validate_json(&s, &cookie, path, &csrf, &other).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["line"], 1, "{v}");
    assert_eq!(s.api(reqwest::Method::GET, "/v1/integrations/ed-other").send().await.unwrap().status(), 404);
    assert_eq!(version(&s, "ed-demo").await, 2);

    // CSRF on every POST: without it, or with another, nothing happens.
    for form in [
        format!("action=apply&source={}", enc(&v2.replace("v: 2", "v: 3"))),
        format!("csrf=nope&action=apply&source={}", enc(&v2.replace("v: 2", "v: 3"))),
    ] {
        let r = post_form(&s, &cookie, path, &form).await;
        assert_eq!(r.status(), 403);
        let r = post_form(&s, &cookie, "/console/integrations/new", &form).await;
        assert_eq!(r.status(), 403);
    }
    let r = post_form(&s, &cookie, path, &format!("action=validate&source={}", enc(&v2))).await;
    assert_eq!(r.status(), 403);
    assert_eq!(version(&s, "ed-demo").await, 2);

    // Unknown integrations are 404s.
    assert_eq!(page(&s, &cookie, "/console/integrations/nope/edit").await.0, 404);
    let (status, _) = submit(&s, &cookie, "/console/integrations/nope/edit", &csrf, "apply", &v2).await;
    assert_eq!(status, 404);
    // Without a session: to the sign-in page.
    let r = browser().get(format!("{}{path}", s.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/console/signin"));
}

backends!(new_integration_page);
async fn new_integration_page() {
    let s = TestServer::start().await;
    s.apply(V1).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (status, html) = page(&s, &cookie, "/console/integrations/new").await;
    assert_eq!(status, 200);
    assert!(html.contains("integration: my-integration"), "{html}");
    assert!(html.contains(r#"action="/console/integrations/new""#), "{html}");
    let csrf = csrf_of(&html);

    // The slug comes from the document; Apply stores version 1 and the page becomes its editor.
    let fresh = V1.replace("ed-demo", "ed-fresh").replace("ed/echo", "ed/fresh");
    let (status, html) = submit(&s, &cookie, "/console/integrations/new", &csrf, "apply", &fresh).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"<strong id="applied-version">version 1</strong>"#), "{html}");
    assert!(html.contains(r#"action="/console/integrations/ed-fresh/edit""#), "{html}");
    assert_eq!(version(&s, "ed-fresh").await, 1);

    // An existing slug is refused there (it has its own editor), and nothing changes.
    let again = V1.replace("onerror=alert(1)>\" }'", "onerror=alert(1)>\", v: 9 }'");
    let (status, html) = submit(&s, &cookie, "/console/integrations/new", &csrf, "apply", &again).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("integration `ed-demo` exists already"), "{html}");
    assert_eq!(version(&s, "ed-demo").await, 1);
    // A document without a slug: a problem, nothing stored.
    let v = validate_json(&s, &cookie, "/console/integrations/new", &csrf, "flows: []\n").await;
    assert_eq!(v["valid"], false, "{v}");
}

backends!(body_limit_as_the_api);
async fn body_limit_as_the_api() {
    let s = TestServer::start_with(|st| st.max_body_bytes = 2048).await;
    s.apply(V1).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let path = "/console/integrations/ed-demo/edit";
    let (_, html) = page(&s, &cookie, path).await;
    let csrf = csrf_of(&html);
    let big = format!("{V1}# {}\n", "x".repeat(3000));
    let (status, html) = submit(&s, &cookie, path, &csrf, "apply", &big).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("larger than the API takes (2048 bytes)"), "{html}");
    assert_eq!(version(&s, "ed-demo").await, 1);
    // Far over it: refused before it is read whole.
    let huge = format!("{V1}# {}\n", "x".repeat(20_000));
    let (status, _) = submit(&s, &cookie, path, &csrf, "apply", &huge).await;
    assert_eq!(status, 413);
}

backends!(try_it_runs_a_test_run_and_shows_its_steps);
async fn try_it_runs_a_test_run_and_shows_its_steps() {
    let s = TestServer::start().await;
    s.apply(V1).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let path = "/console/integrations/ed-demo/flows/echo/try";

    // No execution yet: an empty form.
    let (status, html) = page(&s, &cookie, path).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No execution yet to prefill from."), "{html}");
    assert!(html.contains("<strong>test</strong> execution"), "{html}");
    let csrf = csrf_of(&html);

    // Run, as the page's script does: a test execution, followed through the steps endpoint.
    let form = format!(
        "csrf={}&body_kind=json&body={}&headers={}&query={}",
        enc(&csrf),
        enc(r#"{ "name": "<b>Ada</b>" }"#),
        enc("X-Tag: blue\nAccept: text/plain"),
        enc("q=hello&n=1"),
    );
    let r = browser()
        .post(format!("{}{path}", s.url))
        .header("cookie", &cookie)
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let started: Value = r.json().await.unwrap();
    let id = started["executionId"].as_str().unwrap().to_owned();
    let steps_url = started["stepsUrl"].as_str().unwrap().to_owned();
    assert_eq!(steps_url, format!("{path}/{id}"));
    let deadline = Instant::now();
    let done = loop {
        let r = browser().get(format!("{}{steps_url}", s.url)).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        if v["done"] == true {
            break v;
        }
        assert!(deadline.elapsed() < common::DEADLINE, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done}");
    let steps = done["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{done}");
    assert_eq!(steps[0]["step"], "shape");
    assert_eq!(steps[0]["output"], json!({ "name": "<b>Ada</b>", "tag": "blue", "q": "hello" }), "{done}");
    assert_eq!(steps[0]["input"]["body"], json!({ "name": "<b>Ada</b>" }), "{done}");
    assert_eq!(steps[1]["output"]["wrapped"]["tag"], "blue", "{done}");
    assert!(steps[1]["durationMs"].as_i64().is_some());
    // Its markup: each step with its output, escaped.
    let html = done["html"].as_str().unwrap();
    assert!(html.contains(r#"data-step="shape" data-status="succeeded""#), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;b&gt;Ada&lt;/b&gt;"), "{html}");
    // The API sees a test execution.
    let ex = s.execution(&id).await;
    assert_eq!(ex["status"], "succeeded");
    assert!(ex.to_string().contains("\"test\""), "{ex}");

    // Without the script: to the execution's page.
    let r = post_form(&s, &cookie, path, &form).await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/console/executions/") && !to.ends_with(&id), "{to}");

    // The page is now prefilled from the last execution.
    let (_, html) = page(&s, &cookie, path).await;
    assert!(html.contains("Prefilled from the last execution"), "{html}");
    assert!(html.contains("x-tag: blue"), "{html}");
    assert!(html.contains(r#"value="q=hello&amp;n=1""#) || html.contains(r#"value="n=1&amp;q=hello""#), "{html}");
    assert!(html.contains("&lt;b&gt;Ada&lt;/b&gt;"), "{html}");

    // Bad JSON, a bad header line, a bad query: a clear error, nothing run.
    let before = executions(&s, "ed-demo").await;
    for (form, says) in [
        (format!("csrf={}&body_kind=json&body={}", enc(&csrf), enc("{ not json")), "The body is not valid JSON"),
        (format!("csrf={}&body=&headers={}", enc(&csrf), enc("X-Ok: 1\nno colon here")), "Header line 2 is not"),
        (format!("csrf={}&body=&headers={}", enc(&csrf), enc("Bad Name: 1")), "Header line 1 is not"),
    ] {
        let r = post_form(&s, &cookie, path, &form).await;
        assert_eq!(r.status(), 422);
        let html = r.text().await.unwrap();
        assert!(html.contains(says), "{says}: {html}");
        assert!(html.contains("{ not json") || !form.contains("not+json"), "the typed body is kept: {html}");
        let r = browser()
            .post(format!("{}{path}", s.url))
            .header("cookie", &cookie)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let v: Value = r.json().await.unwrap();
        assert!(v["errors"].to_string().contains(says), "{v}");
    }
    // A text body is sent as it is.
    let r =
        post_form(&s, &cookie, path, &format!("csrf={}&body_kind=text&body={}", enc(&csrf), enc("{ not json"))).await;
    assert_eq!(r.status(), 303);
    assert_eq!(executions(&s, "ed-demo").await, before + 1);

    // CSRF required; unknown flows and executions are 404s.
    let r = post_form(&s, &cookie, path, "body=%7B%7D").await;
    assert_eq!(r.status(), 403);
    assert_eq!(executions(&s, "ed-demo").await, before + 1);
    assert_eq!(page(&s, &cookie, "/console/integrations/ed-demo/flows/nope/try").await.0, 404);
    assert_eq!(page(&s, &cookie, &format!("/console/integrations/ed-demo/flows/nope/try/{id}")).await.0, 404);
    assert_eq!(page(&s, &cookie, &format!("{path}/not-an-id")).await.0, 404);
}

backends!(another_tenant_reaches_none_of_it);
async fn another_tenant_reaches_none_of_it() {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    s.apply(V1).await;
    let run = s
        .api(reqwest::Method::POST, "/v1/integrations/ed-demo/flows/echo/run")
        .json(&json!({ "body": { "name": "mine" } }))
        .send()
        .await
        .unwrap();
    let mine: Value = run.json().await.unwrap();
    let mine = mine["executionId"].as_str().unwrap().to_owned();
    let other = s.create_tenant(ADMIN, "other").await;
    let (cookie, _) = sign_in(&s, &other).await;
    let (_, html) = page(&s, &cookie, "/console/integrations/new").await;
    let csrf = csrf_of(&html);

    for path in [
        "/console/integrations/ed-demo/edit".to_owned(),
        "/console/integrations/ed-demo/flows/echo/try".to_owned(),
        format!("/console/integrations/ed-demo/flows/echo/try/{mine}"),
    ] {
        let (status, html) = page(&s, &cookie, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!html.contains("a comment with"), "{path}");
    }
    // Cannot apply into it, nor validate against it, nor run it.
    let changed = V1.replace("onerror=alert(1)>\" }'", "onerror=alert(1)>\", v: 2 }'");
    let (status, _) = submit(&s, &cookie, "/console/integrations/ed-demo/edit", &csrf, "apply", &changed).await;
    assert_eq!(status, 404);
    let (status, _) = submit(&s, &cookie, "/console/integrations/ed-demo/edit", &csrf, "validate", &changed).await;
    assert_eq!(status, 404);
    let r =
        post_form(&s, &cookie, "/console/integrations/ed-demo/flows/echo/try", &format!("csrf={}&body=", enc(&csrf)))
            .await;
    assert_eq!(r.status(), 404);
    assert_eq!(version(&s, "ed-demo").await, 1);
    assert_eq!(s.get_json("/v1/integrations/ed-demo").await["source"].as_str().unwrap(), V1);
    assert_eq!(executions(&s, "ed-demo").await, 1);

    // Its own integration of the same name, through the new page, is its own.
    let (status, html) = submit(&s, &cookie, "/console/integrations/new", &csrf, "apply", &changed).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(version(&s, "ed-demo").await, 1);
    assert!(!s.get_json("/v1/integrations/ed-demo").await["source"].as_str().unwrap().contains("v: 2"));
}

/// A literal credential in the document (a webhook key).
const KEY: &str = "literal-key-editor-0123456789";
const KEYED: &str = r#"integration: ed-keyed
flows:
  - flow: in
    trigger:
      webhook:
        path: ed/keyed
        auth: { apiKey: { keys: [{ label: ops, secret: LITERAL }] } }
    steps:
      - { id: ok, transform: '{ ok: true }' }
"#;

backends!(literal_credentials_are_never_shown_and_survive_an_edit);
async fn literal_credentials_are_never_shown_and_survive_an_edit() {
    let s = TestServer::start().await;
    s.apply(&KEYED.replace("LITERAL", KEY)).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let path = "/console/integrations/ed-keyed/edit";
    let (status, html) = page(&s, &cookie, path).await;
    assert_eq!(status, 200);
    assert!(!html.contains(KEY), "the literal key is shown: {html}");
    assert!(html.contains("secret: «secret:lit0»"), "{html}");
    let csrf = csrf_of(&html);
    let shown = KEYED.replace("LITERAL", "«secret:lit0»");

    // The text as shown validates (its markers stand for the stored credentials) and applies
    // unchanged; an edit keeps the credential working.
    let v = validate_json(&s, &cookie, path, &csrf, &shown).await;
    assert_eq!(v, json!({ "valid": true, "problems": [] }));
    let (status, html) = submit(&s, &cookie, path, &csrf, "apply", &shown).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Unchanged"), "{html}");
    let edited = shown.replace("{ ok: true }", "{ ok: true, v: 2 }");
    let (status, html) = submit(&s, &cookie, path, &csrf, "apply", &edited).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"<strong id="applied-version">version 2</strong>"#), "{html}");
    assert!(!html.contains(KEY), "{html}");
    let r = s.post_hook("ed/keyed").header("X-Api-Key", KEY).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 202, "the key still opens the webhook");
    let r = s.post_hook("ed/keyed").header("X-Api-Key", "wrong-key-0000000000").json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Try it, prefilled from that webhook's execution, does not show the key either.
    let r = common::eventually("the webhook's execution is the last run", || async {
        let (status, html) = page(&s, &cookie, "/console/integrations/ed-keyed/flows/in/try").await;
        (status == 200 && html.contains("Prefilled from the last execution")).then_some(html)
    })
    .await;
    assert!(!r.contains(KEY), "the key is shown: {r}");
    // A marker the integration does not have is a problem, and nothing is stored.
    let v = validate_json(&s, &cookie, path, &csrf, &edited.replace("lit0", "lit9")).await;
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["problems"][0]["message"].as_str().unwrap().contains("secret marker"), "{v}");
    let (status, _) = submit(&s, &cookie, path, &csrf, "apply", &edited.replace("lit0", "lit9")).await;
    assert_eq!(status, 422);
    assert_eq!(version(&s, "ed-keyed").await, 2);
    // A marker moved where a problem's message quotes the value at its place (a step's or
    // a flow's duration) is put back to validate, but the message shows the marker, never
    // the credential: through the console's Validate and Apply, and through the API.
    for moved in [
        edited.replace("- { id: ok,", "- { id: wait, delay: { for: \"«secret:lit0»\" } }\n      - { id: ok,"),
        edited.replace("  - flow: in\n", "  - flow: in\n    timeout: \"«secret:lit0»\"\n"),
    ] {
        let v = validate_json(&s, &cookie, path, &csrf, &moved).await;
        assert_eq!(v["valid"], false, "{v}");
        assert!(!v.to_string().contains(KEY), "Validate shows the key: {v}");
        let (status, html) = submit(&s, &cookie, path, &csrf, "apply", &moved).await;
        assert_eq!(status, 422, "{html}");
        assert!(!html.contains(KEY), "Apply shows the key: {html}");
        let (status, v) = s.apply_as(TOKEN, &moved).await;
        assert_eq!(status, 422, "{v}");
        assert!(!v.to_string().contains(KEY), "the API shows the key: {v}");
    }
}
