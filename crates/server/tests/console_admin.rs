//! The console's settings and admin pages (issue 19, item 7) over HTTP, on both backends: API
//! tokens (shown once, listed without secrets, revoked — the session's own ending it), the
//! tenant's SMTP settings (the password write-only), log sources with their counters, and the
//! admin token's tenants page (admin sessions see tenants and nothing inside them; tenant
//! sessions never see it). CSRF on every POST; hostile names stay text.

#[macro_use]
mod common;
mod console_support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{TOKEN, TestServer, eventually, send};
use console_support::{browser, csrf_of, page, post_form, sign_in};
use serde_json::{Value, json};

const ADMIN: &str = "fga_console_admin_test";
const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

/// The value of `<input id="{id}" … value="…">` in a page.
fn input_value(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!(r#"id="{id}""#))?;
    let rest = &html[at..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let v = tag.find(r#"value=""#)? + r#"value=""#.len();
    Some(tag[v..].split('"').next()?.to_owned())
}

/// Percent-encodes a form value.
fn enc(v: &str) -> String {
    serde_urlencoded::to_string([("", v)]).unwrap()[1..].to_owned()
}

/// The status of `GET /v1/tokens` with `token`.
async fn api_status(s: &TestServer, token: &str) -> u16 {
    browser().get(format!("{}/v1/tokens", s.url)).bearer_auth(token).send().await.unwrap().status().as_u16()
}

/// The settings page of a session and its CSRF token.
async fn settings(s: &TestServer, cookie: &str) -> (String, String) {
    let (status, html) = page(s, cookie, "/console/settings").await;
    assert_eq!(status, 200, "{html}");
    let csrf = csrf_of(&html);
    (html, csrf)
}

backends!(api_tokens_are_shown_once_listed_and_revoked);
async fn api_tokens_are_shown_once_listed_and_revoked() {
    let s = TestServer::start().await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (html, csrf) = settings(&s, &cookie).await;
    assert!(html.contains("API tokens") && html.contains(r#"id="token-form""#), "{html}");
    assert!(html.contains("(this session)"), "the session's own token is marked: {html}");

    // Without (or with a wrong) CSRF token nothing is created.
    let before = s.get_json("/v1/tokens").await["items"].as_array().unwrap().len();
    for form in ["name=ci".to_owned(), "name=ci&csrf=nope".to_owned()] {
        let r = post_form(&s, &cookie, "/console/settings/tokens", &form).await;
        assert_eq!(r.status(), 403, "{form}");
    }
    assert_eq!(s.get_json("/v1/tokens").await["items"].as_array().unwrap().len(), before);
    // A name the API refuses is refused the same way.
    let r = post_form(&s, &cookie, "/console/settings/tokens", &format!("csrf={csrf}&name=%20%20")).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("`name` must be 1–200 characters"));

    // Created: shown in that answer only, with a copy button; the API takes it.
    let r = post_form(&s, &cookie, "/console/settings/tokens", &format!("csrf={csrf}&name={}", enc(HOSTILE))).await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    let token = input_value(&html, "new-token").expect("the new token is shown");
    assert!(token.starts_with("fgt_") && token.len() > 40, "{token}");
    assert!(html.contains(r#"data-copy="new-token""#), "a copy button");
    assert!(html.contains("shown only this once"));
    assert!(!html.contains("<script>alert(1)") && !html.contains("<img src=x"), "hostile name inert: {html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"), "{html}");
    assert_eq!(api_status(&s, &token).await, 200, "the API accepts the new token");

    // Never again: the list has its name and prefix, never the token or its hash.
    let (html, csrf) = settings(&s, &cookie).await;
    let hash = flowgate_engine::tokens::hash_token(&token);
    assert!(!html.contains(&token), "the token is shown once only");
    assert!(!html.contains(&token[12..]), "no part of the token beyond its prefix");
    assert!(!html.contains(&hash), "never the hash");
    assert!(!html.contains(TOKEN) && !html.contains(&flowgate_engine::tokens::hash_token(TOKEN)));
    assert!(html.contains(&token[..12]), "its prefix is listed");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "its name is listed, escaped");
    let items = s.get_json("/v1/tokens").await["items"].clone();
    let id = items.as_array().unwrap().iter().find(|t| t["prefix"] == token[..12]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Revoking: CSRF, then a confirmation, then done; the API refuses the token after.
    let revoke = format!("/console/settings/tokens/{id}/revoke");
    assert_eq!(post_form(&s, &cookie, &revoke, "confirmed=yes").await.status(), 403);
    assert_eq!(post_form(&s, &cookie, &revoke, "csrf=nope&confirmed=yes").await.status(), 403);
    let r = post_form(&s, &cookie, &revoke, &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    let confirm = r.text().await.unwrap();
    assert!(confirm.contains("Revoke token") && confirm.contains(r#"name="confirmed" value="yes""#), "{confirm}");
    assert!(!confirm.contains("<script>alert(1)"), "{confirm}");
    assert_eq!(api_status(&s, &token).await, 200, "not revoked before the confirmation");
    let r = post_form(&s, &cookie, &revoke, &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/settings?done=token-revoked#tokens");
    assert_eq!(api_status(&s, &token).await, 401, "the API refuses a revoked token");
    let (html, csrf) = settings(&s, &cookie).await;
    assert!(html.contains("⊘</span> revoked</span>"), "listed as revoked: {html}");
    let (_, html) = page(&s, &cookie, "/console/settings?done=token-revoked").await;
    assert!(html.contains("Token revoked: it no longer opens the API"), "{html}");
    let (_, html) = page(&s, &cookie, &format!("/console/settings?done={}", enc(HOSTILE))).await;
    assert!(!html.contains(r#"class="note"#), "an unknown outcome shows nothing: {html}");
    // Once only; and not another tenant's token, nor an unknown one.
    assert_eq!(post_form(&s, &cookie, &revoke, &format!("csrf={csrf}&confirmed=yes")).await.status(), 404);
    let r = post_form(&s, &cookie, "/console/settings/tokens/tok_nope/revoke", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 404);
}

backends!(revoking_the_sessions_own_token_signs_out);
async fn revoking_the_sessions_own_token_signs_out() {
    let s = TestServer::start().await;
    let (_, _, made) = send(s.api(reqwest::Method::POST, "/v1/tokens").json(&json!({ "name": "mine" }))).await;
    let token = made["token"].as_str().unwrap();
    let id = made["id"].as_str().unwrap();
    let (cookie, _) = sign_in(&s, token).await;
    let (_, csrf) = settings(&s, &cookie).await;
    let revoke = format!("/console/settings/tokens/{id}/revoke");
    let confirm = post_form(&s, &cookie, &revoke, &format!("csrf={csrf}")).await.text().await.unwrap();
    assert!(confirm.contains("you will be signed out"), "{confirm}");
    let r = post_form(&s, &cookie, &revoke, &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/signin");
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("fg_console=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(page(&s, &cookie, "/console/settings").await.0, 303, "the old cookie is no session");
    assert_eq!(api_status(&s, token).await, 401);
    assert_eq!(api_status(&s, TOKEN).await, 200, "other tokens are untouched");
}

backends!(smtp_password_is_write_only);
async fn smtp_password_is_write_only() {
    let s = TestServer::start().await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (html, csrf) = settings(&s, &cookie).await;
    assert!(html.contains(r#"id="smtp-form""#) && html.contains("not set"), "{html}");
    let pw = "hunter2-console-smtp-pw";
    let form = |extra: &str| {
        format!(
            "csrf={csrf}&host=127.0.0.1&port=2525&security=none&username=mailer%40acme.example&from={}{extra}",
            enc("Acme <flows@acme.example>")
        )
    };

    // CSRF first.
    let r = post_form(&s, &cookie, "/console/settings/smtp", &form(&format!("&password={pw}")).replace(&csrf, "nope"))
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(s.get_json("/v1/smtp").await["source"], "none");

    // Saved through the API's code: the API shows it, with the password set.
    let r = post_form(&s, &cookie, "/console/settings/smtp", &form(&format!("&password={pw}"))).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/settings?done=smtp-saved#smtp");
    let shown = s.get_json("/v1/smtp").await;
    assert_eq!(
        (shown["host"].clone(), shown["port"].clone(), shown["security"].clone()),
        (json!("127.0.0.1"), json!(2525), json!("none"))
    );
    assert_eq!(
        (shown["passwordSet"].clone(), shown["from"].clone()),
        (json!(true), json!("Acme <flows@acme.example>"))
    );
    let (status, html) = page(&s, &cookie, "/console/settings?done=smtp-saved").await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&html);
    assert!(!html.contains(pw), "the password is never in the page");
    assert!(html.contains("SMTP settings saved."));
    assert_eq!(input_value(&html, "smtp-host").as_deref(), Some("127.0.0.1"));
    assert_eq!(input_value(&html, "smtp-port").as_deref(), Some("2525"));
    assert_eq!(input_value(&html, "smtp-from").as_deref(), Some("Acme &lt;flows@acme.example&gt;"));
    assert!(input_value(&html, "smtp-password").is_none(), "the password field has no value");
    assert!(html.contains(r#"<span class="secret-set">set</span>"#), "{html}");
    assert!(html.contains("this tenant's own server"));

    // Saved again with the field empty: the password is kept.
    let form = |extra: &str| {
        format!(
            "csrf={csrf}&host=127.0.0.1&port=2526&security=none&username=mailer%40acme.example&from=flows%40acme.example{extra}"
        )
    };
    let r = post_form(&s, &cookie, "/console/settings/smtp", &form("&password=")).await;
    assert_eq!(r.status(), 303);
    let shown = s.get_json("/v1/smtp").await;
    assert_eq!((shown["port"].clone(), shown["passwordSet"].clone()), (json!(2526), json!(true)));

    // Refused input shows why, keeps the other fields, and never echoes the password.
    let typed = format!("&password=typed-{pw}");
    for (body, why) in [
        (
            format!("csrf={csrf}&host=127.0.0.1&port=70000&security=none&from=a%40b.example{typed}"),
            "the port must be a number",
        ),
        (format!("csrf={csrf}&host=127.0.0.1&port=25&security=ssl3&from=a%40b.example{typed}"), "the security must be"),
        (format!("csrf={csrf}&host=&port=25&security=none&from=a%40b.example{typed}"), "`host` (or `url`) is required"),
        (format!("csrf={csrf}&host=127.0.0.1&port=25&security=none&from={typed}"), "`from` is required"),
    ] {
        let r = post_form(&s, &cookie, "/console/settings/smtp", &body).await;
        assert_eq!(r.status(), 422, "{body}");
        let html = r.text().await.unwrap();
        assert!(html.contains(why), "{body}: {html}");
        assert!(!html.contains(pw), "{body}: the password is not echoed");
    }
    assert_eq!(s.get_json("/v1/smtp").await["port"], 2526, "nothing refused was saved");

    // Removing the password, then the settings (after a confirmation).
    let r = post_form(&s, &cookie, "/console/settings/smtp", &form("&clear_password=yes")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(s.get_json("/v1/smtp").await["passwordSet"], false);
    assert_eq!(post_form(&s, &cookie, "/console/settings/smtp/remove", "confirmed=yes").await.status(), 403);
    let r = post_form(&s, &cookie, "/console/settings/smtp/remove", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.get_json("/v1/smtp").await["source"], "tenant", "not before the confirmation");
    let r = post_form(&s, &cookie, "/console/settings/smtp/remove", &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(s.get_json("/v1/smtp").await["source"], "none");

    // Another tenant's settings are its own.
    let s2 = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    let other = s2.create_tenant(ADMIN, "other").await;
    let (cookie, _) = sign_in(&s2, TOKEN).await;
    let (_, csrf) = settings(&s2, &cookie).await;
    let r = post_form(
        &s2,
        &cookie,
        "/console/settings/smtp",
        &format!("csrf={csrf}&host=127.0.0.1&security=none&username=u&from=a%40b.example&password={pw}"),
    )
    .await;
    let status = r.status();
    assert_eq!(status, 303, "{}", r.text().await.unwrap());
    let (cookie, _) = sign_in(&s2, &other).await;
    let (html, _) = settings(&s2, &cookie).await;
    assert!(!html.contains("127.0.0.1") && html.contains("not set"), "{html}");
}

const LOGGED: &str = r#"
integration: console-logged
flows:
  - flow: noisy
    logSource: audit
    trigger: { manual: {} }
    steps:
      - { id: note, log: "hello from the console test" }
"#;

backends!(log_sources_are_listed_with_their_counters);
async fn log_sources_are_listed_with_their_counters() {
    let s = TestServer::start().await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (html, csrf) = settings(&s, &cookie).await;
    assert!(html.contains("No log sources."), "{html}");
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let url = format!("udp://{}", collector.local_addr().unwrap());

    assert_eq!(
        post_form(
            &s,
            &cookie,
            "/console/settings/log-sources",
            &format!("name=audit&kind=syslog&target={}", enc(&url))
        )
        .await
        .status(),
        403
    );
    // What the API refuses is refused here, with its words.
    for (form, why) in [
        (format!("name=Bad%20Name&kind=syslog&target={}", enc(&url)), "invalid log source name"),
        ("name=audit&kind=syslog&target=ftp%3A%2F%2Fx".to_owned(), "ftp"),
        (format!("name=audit&kind=carrier-pigeon&target={}", enc(&url)), "the kind must be"),
        (format!("name={}&kind=syslog&target={}", enc(HOSTILE), enc(&url)), "invalid log source name"),
    ] {
        let r = post_form(&s, &cookie, "/console/settings/log-sources", &format!("csrf={csrf}&{form}")).await;
        assert_eq!(r.status(), 422, "{form}");
        let html = r.text().await.unwrap();
        assert!(html.contains(why), "{form}: {html}");
        assert!(!html.contains("<script>alert(1)"), "{form}");
    }
    let r = post_form(
        &s,
        &cookie,
        "/console/settings/log-sources",
        &format!("csrf={csrf}&name=audit&kind=syslog&target={}", enc(&url)),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/settings?done=source-saved#log-sources");
    assert_eq!(s.get_json("/v1/log-sources/audit").await["name"], "audit", "the API sees it");

    // Its counters count what the flows send.
    s.apply(LOGGED).await;
    s.run_flow("console-logged", "noisy", json!({})).await;
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(common::DEADLINE, collector.recv(&mut buf)).await.expect("a syslog record").unwrap();
    assert!(n > 0);
    let sent = eventually("the sent counter", || async {
        let (_, html) = page(&s, &cookie, "/console/settings").await;
        let row = &html[html.find(r#"data-source="audit""#)?..];
        let at = row.find(r#"data-counter="sent">"#)? + r#"data-counter="sent">"#.len();
        let n: u64 = row[at..].split('<').next()?.parse().ok()?;
        (n >= 1).then_some((n, row[..row.find("</tr>")?].to_owned()))
    })
    .await;
    let api: Value = s.get_json("/v1/log-sources/audit").await;
    assert!(api["stats"]["sent"].as_u64().unwrap() >= sent.0, "{api}");
    for counter in ["dropped", "failedAttempts", "queued"] {
        assert!(sent.1.contains(&format!(r#"data-counter="{counter}">"#)), "{}", sent.1);
    }
    assert!(sent.1.contains(&url) && sent.1.contains(">syslog<"), "{}", sent.1);

    // Deleting: a confirmation, then gone (from the API too).
    let del = "/console/settings/log-sources/audit/delete";
    assert_eq!(post_form(&s, &cookie, del, "confirmed=yes").await.status(), 403);
    let r = post_form(&s, &cookie, del, &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Delete log source"));
    let r = post_form(&s, &cookie, del, &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(s.get_json("/v1/log-sources").await["items"], json!([]));
    assert_eq!(post_form(&s, &cookie, del, &format!("csrf={csrf}")).await.status(), 404);
}

/// Signs in with the admin token: the cookie pair (the answer leads to the tenants page).
async fn admin_sign_in(s: &TestServer, token: &str) -> String {
    let r = browser()
        .post(format!("{}/console/signin", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/tenants");
    r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

backends!(the_admin_token_sees_tenants_and_nothing_inside_them);
async fn the_admin_token_sees_tenants_and_nothing_inside_them() {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    s.apply(LOGGED).await;
    let id = s.run_flow("console-logged", "noisy", json!({})).await["executionId"].as_str().unwrap().to_owned();
    let cookie = admin_sign_in(&s, ADMIN).await;
    assert!(!cookie.contains(ADMIN));

    let (status, html) = page(&s, &cookie, "/console/tenants").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-tenant="default""#), "{html}");
    assert!(html.contains(r#"href="/console/tenants" aria-current="page">Tenants</a>"#), "the nav has Tenants");
    assert!(!html.contains(r#"href="/console/executions" aria-current"#), "no tenant links: {html}");
    let csrf = csrf_of(&html);

    // Nothing of any tenant's data: tenant pages send the admin to the tenants page.
    for path in [
        "/console/executions",
        "/console/integrations",
        "/console/settings",
        &format!("/console/executions/{id}"),
        "/console/executions/stream",
    ] {
        let (status, body) = page(&s, &cookie, path).await;
        assert!(!body.contains(&id) && !body.contains("console-logged"), "{path}");
        let r = browser().get(format!("{}{path}", s.url)).header("cookie", &cookie).send().await.unwrap();
        assert_eq!((status, r.headers()["location"].to_str().unwrap()), (303, "/console/tenants"), "{path}");
    }
    let r =
        post_form(&s, &cookie, &format!("/console/executions/{id}/retry"), &format!("csrf={csrf}&confirmed=yes")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/tenants");
    let r = post_form(&s, &cookie, "/console/settings/tokens", &format!("csrf={csrf}&name=sneaky")).await;
    assert_eq!(r.headers()["location"], "/console/tenants");
    assert_eq!(s.get_json("/v1/tokens").await["items"].as_array().unwrap().len(), 1, "no token made");

    // Creating a tenant: CSRF, validation, then its first token shown once, which works.
    assert_eq!(post_form(&s, &cookie, "/console/tenants", "id=acme").await.status(), 403);
    let r = post_form(&s, &cookie, "/console/tenants", &format!("csrf={csrf}&id=Not%20A%20Slug")).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("invalid tenant id"));
    let r = post_form(&s, &cookie, "/console/tenants", &format!("csrf={csrf}&id=acme&name={}", enc(HOSTILE))).await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    let token = input_value(&html, "new-token").expect("the first token is shown");
    assert!(!html.contains("<script>alert(1)") && html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    assert_eq!(api_status(&s, &token).await, 200);
    let (_, html) = page(&s, &cookie, "/console/tenants").await;
    assert!(html.contains(r#"data-tenant="acme""#) && !html.contains(&token), "shown once");
    let r = post_form(&s, &cookie, "/console/tenants", &format!("csrf={csrf}&id=acme")).await;
    assert_eq!(r.status(), 409);
    let listed = send(browser().get(format!("{}/v1/tenants", s.url)).bearer_auth(ADMIN)).await.2;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");

    // The new tenant signs in to its own (empty) console.
    let (tc, _) = sign_in(&s, &token).await;
    let (_, html) = page(&s, &tc, "/console/executions").await;
    assert!(!html.contains(&id));

    // The admin signs out.
    let r = post_form(&s, &cookie, "/console/signout", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/signin");

    // A new admin token ends the sessions opened with the old one.
    let s = s.restart(|st| st.admin_token = Some(format!("{ADMIN}-rotated"))).await;
    assert_eq!(page(&s, &cookie, "/console/tenants").await.0, 303);
    let r = browser()
        .post(format!("{}/console/signin", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the old admin token no longer signs in");
    admin_sign_in(&s, &format!("{ADMIN}-rotated")).await;
}

backends!(tenant_sessions_cannot_reach_the_tenants_page_or_become_admin);
async fn tenant_sessions_cannot_reach_the_tenants_page_or_become_admin() {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (status, html) = page(&s, &cookie, "/console/tenants").await;
    assert_eq!(status, 404);
    assert!(!html.contains(r#"data-tenant="#));
    let (_, settings_html) = page(&s, &cookie, "/console/settings").await;
    assert!(!settings_html.contains(r#"href="/console/tenants""#), "no Tenants link for a tenant");
    let csrf = csrf_of(&settings_html);
    let r = post_form(&s, &cookie, "/console/tenants", &format!("csrf={csrf}&id=sneaky")).await;
    assert_eq!(r.status(), 404);
    let listed = send(browser().get(format!("{}/v1/tenants", s.url)).bearer_auth(ADMIN)).await.2;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "no tenant made: {listed}");

    // The kind is inside the signed payload: marking a tenant's cookie admin breaks it.
    let (payload, sig) = cookie.trim_start_matches("fg_console=").split_once('.').unwrap();
    let claims = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
    assert!(claims.contains(r#""a":false"#), "{claims}");
    for forged in [
        claims.replace(r#""a":false"#, r#""a":true"#),
        claims.replace(r#""t":"default""#, r#""t":"""#).replace(r#""a":false"#, r#""a":true"#),
    ] {
        let forged = format!("fg_console={}.{sig}", B64.encode(forged));
        assert_eq!(page(&s, &forged, "/console/tenants").await.0, 303);
        assert_eq!(page(&s, &forged, "/console/settings").await.0, 303);
    }
    // A wrong admin token is no admin.
    let r = browser()
        .post(format!("{}/console/signin", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=fga_console_admin_tesT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
