//! The web console (issue 19) over HTTP, on both backends: sign-in and its cookie, pages
//! without a session, CSRF on every POST, revoked tokens ending sessions, tenant isolation,
//! escaping of hostile names and step data, the live stream, and the Retry / Replay /
//! Cancel buttons calling the engine. The browser suite (`tests/console/`) drives the same
//! pages in Chromium.

#[macro_use]
mod common;
mod console_support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{TOKEN, TestServer, send};
use console_support::{browser, csrf_of, page, post_form, sign_in};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ADMIN: &str = "fga_console_admin";

/// Flows with a hostile name and hostile step data, and one that fails.
const HOSTILE: &str = r#"
integration: console-demo
name: "<b>Console</b> demo"
flows:
  - flow: evil
    name: "<script>alert(1)</script>"
    trigger: { manual: {} }
    steps:
      - { id: echo, transform: '{ html: "<img src=x onerror=alert(1)>", given: $trigger.body }' }
  - flow: fails
    trigger: { manual: {} }
    steps:
      - { id: note, log: "about to fail" }
      - { id: boom, transform: 'error("nope <i>really</i>")' }
"#;

async fn run(s: &TestServer, flow: &str, body: Value) -> String {
    let r = s.run_flow("console-demo", flow, body).await;
    r["executionId"].as_str().expect("an execution id").to_owned()
}

backends!(sign_in_cookie_and_session_checks);
async fn sign_in_cookie_and_session_checks() {
    let s = TestServer::start().await;
    let c = browser();

    // `/` leads to the console; the API and health routes are untouched.
    let r = c.get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/console"));
    assert_eq!(c.get(format!("{}/healthz", s.url)).send().await.unwrap().status(), 200);
    assert_eq!(s.get_json("/v1/executions").await["items"], json!([]));

    // Without a session every page leads to the sign-in page, with the security headers.
    for path in ["/console/executions", "/console/integrations", "/console/executions/x", "/console/executions/stream"]
    {
        let r = c.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/console/signin", "{path}");
    }
    let r = c.get(format!("{}/console/signin", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-security-policy"], flowgate_console::CSP);
    assert!(!flowgate_console::CSP.contains("unsafe-inline"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.text().await.unwrap().contains(r#"<input id="token" type="password" name="token""#));

    // A bad token is refused, and no cookie is set.
    for bad in ["token=fgt_wrong", "token=", ""] {
        let r = c
            .post(format!("{}/console/signin", s.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
        assert!(r.headers().get("set-cookie").is_none(), "{bad}");
        assert!(r.text().await.unwrap().contains("That token is not valid."));
    }
    // A post of the sign-in form from another site is refused.
    let r = c
        .post(format!("{}/console/signin", s.url))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A good token: a session cookie with the right attributes (no `Secure` over http).
    let (cookie, set) = sign_in(&s, TOKEN).await;
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    assert!(!set.contains(TOKEN), "the cookie holds no token: {set}");
    let (status, html) = page(&s, &cookie, "/console/executions").await;
    assert_eq!(status, 200);
    assert!(html.contains("No executions match."), "{html}");
    assert!(html.contains(r#"<span class="tenant" title="Tenant">default</span>"#));

    // A tampered cookie is no session.
    let tampered = format!("{}A", cookie);
    assert_eq!(page(&s, &tampered, "/console/executions").await.0, 303);
    let (payload, sig) = cookie.trim_start_matches("fg_console=").split_once('.').unwrap();
    let claims = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
    assert!(claims.contains(r#""t":"default""#), "{claims}");
    let forged = format!("fg_console={}.{sig}", B64.encode(claims.replace(r#""t":"default""#, r#""t":"other""#)));
    assert_eq!(page(&s, &forged, "/console/executions").await.0, 303);

    // Sign-out needs the CSRF token, and clears the cookie.
    let r = post_form(&s, &cookie, "/console/signout", "").await;
    assert_eq!(r.status(), 403);
    let r = post_form(&s, &cookie, "/console/signout", "csrf=nope").await;
    assert_eq!(r.status(), 403);
    let csrf = csrf_of(&html);
    let r = post_form(&s, &cookie, "/console/signout", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 303);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("fg_console=;") && cleared.contains("Max-Age=0"), "{cleared}");

    // A revoked token ends its sessions at once.
    let (_, _, made) = send(s.api(reqwest::Method::POST, "/v1/tokens").json(&json!({ "name": "console" }))).await;
    let (cookie2, _) = sign_in(&s, made["token"].as_str().unwrap()).await;
    assert_eq!(page(&s, &cookie2, "/console/integrations").await.0, 200);
    let (status, _, _) =
        send(s.api(reqwest::Method::DELETE, &format!("/v1/tokens/{}", made["id"].as_str().unwrap()))).await;
    assert_eq!(status, 204);
    assert_eq!(page(&s, &cookie2, "/console/integrations").await.0, 303);
}

backends!(secure_cookie_behind_https);
async fn secure_cookie_behind_https() {
    let s = TestServer::start_with(|st| st.public_url = Some("https://flowgate.example".into())).await;
    let (_, set) = sign_in(&s, TOKEN).await;
    assert!(set.split("; ").any(|a| a == "Secure"), "{set}");
}

backends!(actions_need_csrf_and_call_the_engine);
async fn actions_need_csrf_and_call_the_engine() {
    let s = TestServer::start().await;
    s.apply(HOSTILE).await;
    let failed = run(&s, "fails", json!({})).await;
    assert_eq!(s.execution(&failed).await["status"], "failed");
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (status, html) = page(&s, &cookie, &format!("/console/executions/{failed}")).await;
    assert_eq!(status, 200);
    // The failing step's error, and the buttons a failed execution has.
    assert!(html.contains("at step <strong>boom</strong>"), "{html}");
    assert!(html.contains("nope &lt;i&gt;really&lt;/i&gt;"), "{html}");
    assert!(html.contains(r#"<li class="step" data-step="boom" data-status="failed">"#), "{html}");
    assert!(html.contains(">about to fail</li>") || html.contains("about to fail"), "the log: {html}");
    assert!(html.contains(&format!(r#"action="/console/executions/{failed}/retry""#)));
    assert!(html.contains(&format!(r#"action="/console/executions/{failed}/replay""#)));
    assert!(!html.contains(&format!(r#"action="/console/executions/{failed}/cancel""#)));
    let csrf = csrf_of(&html);

    // Without the CSRF token, or with another session's, nothing happens.
    let (other_cookie, _) = sign_in(&s, TOKEN).await;
    let (_, other_html) = page(&s, &other_cookie, "/console/executions").await;
    let other_csrf = csrf_of(&other_html);
    assert_eq!(other_cookie == cookie, other_csrf == csrf, "a CSRF token belongs to its session");
    for form in [String::new(), "csrf=".into(), "csrf=forged".into()] {
        let r = post_form(&s, &cookie, &format!("/console/executions/{failed}/retry"), &form).await;
        assert_eq!(r.status(), 403, "{form}");
        assert_eq!(r.headers()["content-security-policy"], flowgate_console::CSP);
    }
    assert_eq!(s.execution(&failed).await["attempt"], 1, "not retried");

    // Retry: the engine resumes it from the failed step (it fails again: same event).
    let r =
        post_form(&s, &cookie, &format!("/console/executions/{failed}/retry"), &format!("csrf={csrf}&confirmed=yes"))
            .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"].to_str().unwrap(), format!("/console/executions/{failed}"));
    let ex = eventually_status(&s, &failed, 2, "failed").await;
    assert_eq!(ex["failedStep"], "boom");

    // Replay: a new execution, whose page the button leads to.
    let r =
        post_form(&s, &cookie, &format!("/console/executions/{failed}/replay"), &format!("csrf={csrf}&confirmed=yes"))
            .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let replay = to.strip_prefix("/console/executions/").expect("an execution page").to_owned();
    assert_ne!(replay, failed);
    assert_eq!(s.execution(&replay).await["replayOf"], failed.as_str());

    // Cancel of a finished execution: the engine's refusal, shown as a page.
    let done = run(&s, "evil", json!({})).await;
    let r =
        post_form(&s, &cookie, &format!("/console/executions/{done}/cancel"), &format!("csrf={csrf}&confirmed=yes"))
            .await;
    assert_eq!(r.status(), 409);
    // An unknown action or execution.
    let r = post_form(&s, &cookie, &format!("/console/executions/{done}/explode"), &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 404);
    let r = post_form(&s, &cookie, "/console/executions/nope/retry", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 404);
}

/// Waits until the execution is in round `attempt` with `status`.
async fn eventually_status(s: &TestServer, id: &str, attempt: i64, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let ex = s.execution(id).await;
        if ex["attempt"] == attempt && ex["status"] == status {
            return ex;
        }
        assert!(started.elapsed() < common::DEADLINE, "execution {id} never reached {attempt}/{status}: {ex:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

backends!(tenants_see_only_their_own);
async fn tenants_see_only_their_own() {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    s.apply(HOSTILE).await;
    let mine = run(&s, "fails", json!({})).await;
    let other = s.create_tenant(ADMIN, "other").await;

    let (cookie, _) = sign_in(&s, &other).await;
    let (status, html) = page(&s, &cookie, "/console/executions").await;
    assert_eq!(status, 200);
    assert!(!html.contains(&mine), "another tenant's execution listed");
    assert!(html.contains("No executions match."));
    let (status, html) = page(&s, &cookie, "/console/integrations").await;
    assert_eq!(status, 200);
    assert!(!html.contains("console-demo"), "another tenant's integration listed");
    let (status, html) = page(&s, &cookie, &format!("/console/executions/{mine}")).await;
    assert_eq!(status, 404);
    assert!(!html.contains("boom"));
    // Its buttons cannot reach it either.
    let (_, listing) = page(&s, &cookie, "/console/executions").await;
    let csrf = csrf_of(&listing);
    let r = post_form(&s, &cookie, &format!("/console/executions/{mine}/retry"), &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(s.execution(&mine).await["attempt"], 1);
    // Nor its stream.
    let rows = stream_rows(&s, &cookie, "", Duration::from_millis(1500)).await;
    assert!(rows.is_empty(), "{rows:?}");

    // The owner sees it.
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (_, html) = page(&s, &cookie, "/console/executions").await;
    assert!(html.contains(&mine));
}

backends!(hostile_names_and_data_are_escaped);
async fn hostile_names_and_data_are_escaped() {
    let s = TestServer::start().await;
    s.apply(HOSTILE).await;
    let id = run(&s, "evil", json!({ "note": "</pre><script>alert(2)</script>" })).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;

    let (status, html) = page(&s, &cookie, "/console/integrations").await;
    assert_eq!(status, 200);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    assert!(html.contains("&lt;b&gt;Console&lt;/b&gt; demo"), "{html}");

    let (status, html) = page(&s, &cookie, &format!("/console/executions/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<span id="flow-name">&lt;script&gt;alert(1)&lt;/script&gt;</span>"#), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
    assert!(html.contains("&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;"), "{html}");
    for raw in ["<script>alert", "<img src=x", "</pre><script>", "<b>Console"] {
        assert!(!html.contains(raw), "{raw} unescaped in {html}");
    }
    // The only scripts are the console's own file.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
}

/// The `row` events of the monitor's stream (with the filters `query`) within `within`:
/// `(id, status)` pairs.
async fn stream_rows(s: &TestServer, cookie: &str, query: &str, within: Duration) -> Vec<(String, String)> {
    let mut r = browser()
        .get(format!("{}/console/executions/stream?{query}", s.url))
        .header("cookie", cookie)
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, r.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v["status"].as_str().unwrap().to_owned()))
        .collect()
}

backends!(the_stream_sends_new_and_changed_rows);
async fn the_stream_sends_new_and_changed_rows() {
    let s = TestServer::start().await;
    s.apply(HOSTILE).await;
    let before = run(&s, "evil", json!({})).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;

    // A stream opened now sends what exists, then what comes.
    let url = format!("{}/console/executions/stream?integration=console-demo&flow=fails", s.url);
    let mut r = browser().get(url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let failed = run(&s, "fails", json!({})).await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    while !text.contains(&format!(r#""id":"{failed}""#)) {
        match tokio::time::timeout_at(deadline, r.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no row for {failed} in the stream ({other:?}): {text}"),
        }
    }
    assert!(text.contains("event: row"), "{text}");
    assert!(!text.contains(&before), "the filter holds: {text}");
    // The row's markup is the monitor's, escaped.
    assert!(text.contains(&format!(r#"<tr id=\"ex-{failed}\""#)), "{text}");

    // The filters are the API's: a bad one is refused.
    let r = browser()
        .get(format!("{}/console/executions/stream?status=bogus", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = page(&s, &cookie, "/console/executions?status=bogus").await;
    assert_eq!(status, 400);
}

backends!(live_streams_are_limited_per_tenant);
async fn live_streams_are_limited_per_tenant() {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    let other = s.create_tenant(ADMIN, "other").await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (other_cookie, _) = sign_in(&s, &other).await;
    let open = |cookie: String| {
        let url = format!("{}/console/executions/stream", s.url);
        async move { browser().get(url).header("cookie", cookie).send().await.unwrap() }
    };
    // Sixteen live views at once; the seventeenth is told to come back later.
    let mut held = Vec::new();
    for _ in 0..16 {
        let r = open(cookie.clone()).await;
        assert_eq!(r.status(), 200);
        held.push(r);
    }
    let refused = open(cookie.clone()).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "10");
    // Another tenant's views are its own.
    assert_eq!(open(other_cookie).await.status(), 200);
    // A view closed frees its place (at the latest when the server next writes to it: a
    // keep-alive every 5 s).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = open(cookie.clone()).await;
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "a closed stream's place was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

backends!(monitor_filters_and_pages);
async fn monitor_filters_and_pages() {
    let s = TestServer::start().await;
    s.apply(HOSTILE).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(run(&s, "evil", json!({})).await);
    }
    let failed = run(&s, "fails", json!({})).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;

    let (_, html) = page(&s, &cookie, "/console/executions?status=failed").await;
    assert!(html.contains(&failed) && !ids.iter().any(|i| html.contains(i.as_str())), "{html}");
    // Status as a word and an icon, not colour alone.
    assert!(
        html.contains(r#"<span class="badge st-failed"><span class="icon" aria-hidden="true">✗</span> failed</span>"#)
    );
    let (_, html) = page(&s, &cookie, "/console/executions?integration=console-demo&flow=evil").await;
    assert!(!html.contains(&failed) && ids.iter().all(|i| html.contains(i.as_str())));
    assert!(html.contains(r#"<option value="console-demo" selected>console-demo</option>"#), "{html}");

    // Paging with the API's cursor: the page after the newest two.
    let listed = s.get_json("/v1/executions?limit=2").await;
    let cursor = listed["nextCursor"].as_str().unwrap();
    let (_, html) = page(&s, &cookie, &format!("/console/executions?cursor={cursor}")).await;
    assert!(!html.contains(&failed) && html.contains(&ids[0]) && html.contains(&ids[1]), "{html}");
    assert!(html.contains(r#"data-live="update""#), "older pages only update their rows");
    assert!(html.contains(">Newest</a>"));
}
