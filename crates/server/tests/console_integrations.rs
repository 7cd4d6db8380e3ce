//! The console's integrations area over HTTP, on both backends: the list (flows, live, last
//! execution, failures in 24 h), the integration page (flows, the deployment form built from
//! the `config` declarations, write-only secrets, per-field errors), connections' Test and
//! Authorize, versions with a side-by-side diff and Rollback, Run tests, CSRF on every POST,
//! tenant isolation and hostile names.

#[macro_use]
mod common;
mod console_support;

use common::{TOKEN, TestServer, send};
use console_support::{csrf_of, page, post_form, sign_in};
use serde_json::{Value, json};
use std::sync::Arc;

const ADMIN: &str = "fga_console_integrations_admin";
const SECRET: &str = "sup3r-s3cret-VALUE-9f1c";

/// Every kind of config variable, two connections, a flow that fails, hostile names and
/// two tests (one passes, one fails).
const SHOP: &str = r#"
integration: shop
name: "Shop <script>alert(1)</script>"
description: "Orders <img src=x onerror=alert(2)>"
config:
  apiUrl: { type: string, required: true, description: "Base URL <b>of the API</b>" }
  pageSize: { type: number, default: 50 }
  region: { type: string, allowed: [eu, us], default: eu }
  verbose: { type: boolean, default: false }
  extra: { type: json }
  apiKey: { type: secret, required: true }
connections:
  keyed:
    apiKey: { header: X-Api-Key, value: "{{ $config.apiKey }}" }
  books:
    oauth2: { grant: authorization_code, authUrl: "https://provider.example/authorize", tokenUrl: "https://provider.example/token", clientId: app, clientSecret: app-secret }
flows:
  - flow: orders
    name: "<img src=x onerror=alert(3)>"
    trigger: { manual: {} }
    steps:
      - { id: out, transform: '{ n: .body.n }' }
  - flow: fails
    trigger: { manual: {} }
    steps:
      - { id: boom, transform: 'error("nope")' }
tests:
  - name: orders passes n through
    flow: orders
    trigger: { body: { n: 2 } }
    expect: { output: { n: 2 } }
  - name: "<script>wrong</script>"
    flow: orders
    trigger: { body: { n: 2 } }
    expect: { output: { n: 3 } }
"#;

async fn start() -> (TestServer, String, String) {
    let s = TestServer::start_with(|st| st.admin_token = Some(ADMIN.into())).await;
    s.apply(SHOP).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (status, html) = page(&s, &cookie, "/console/integrations/shop").await;
    assert_eq!(status, 200, "{html}");
    let csrf = csrf_of(&html);
    (s, cookie, csrf)
}

async fn deploy_by_api(s: &TestServer) {
    let (status, _, v) = send(
        s.api(reqwest::Method::PUT, "/v1/integrations/shop/deployment")
            .json(&json!({ "config": { "apiUrl": "https://api.example", "apiKey": SECRET } })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["live"], true, "{v}");
}

/// The markup of one config field of the deployment form.
fn field<'a>(html: &'a str, var: &str) -> &'a str {
    let at = html.find(&format!(r#"data-var="{var}""#)).unwrap_or_else(|| panic!("field {var} in {html}"));
    let rest = &html[at..];
    let end = rest[1..].find("data-var=").map_or(rest.len(), |e| e + 1);
    &rest[..end.min(rest.find("</form>").unwrap_or(rest.len()))]
}

/// The markup of one flow's entry in the list.
fn flow_entry<'a>(html: &'a str, flow: &str) -> &'a str {
    let at = html.find(&format!(r#"<li data-flow="{flow}">"#)).unwrap_or_else(|| panic!("flow {flow} in {html}"));
    let rest = &html[at..];
    &rest[..rest.find("</li>").unwrap()]
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn assert_inert(html: &str) {
    for bad in ["<script>alert", "<img src=x", "<script>wrong", "<b>of the API</b>"] {
        assert!(!html.contains(bad), "{bad} is in the page as markup");
    }
}

backends!(list_shows_flows_last_status_and_failures);
async fn list_shows_flows_last_status_and_failures() {
    // On a manual clock, to move past the 24 hours.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let clock = Arc::new(flowgate_engine::ManualClock::new(now));
    let s = TestServer::start_with({
        let clock = clock.clone();
        move |st| st.clock = Some(clock)
    })
    .await;
    s.apply(SHOP).await;
    let (cookie, _) = sign_in(&s, TOKEN).await;
    // Not live before its required values are set.
    let (_, html) = page(&s, &cookie, "/console/integrations").await;
    assert!(html.contains("</span> not live</span>"), "{html}");
    deploy_by_api(&s).await;
    assert_eq!(s.run_flow("shop", "orders", json!({ "n": 1 })).await["status"], "succeeded");
    for _ in 0..2 {
        assert_eq!(s.run_flow("shop", "fails", json!({})).await["status"], "failed");
    }
    let (status, html) = page(&s, &cookie, "/console/integrations").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<a href="/console/integrations/shop">shop</a>"#), "the slug links to its page: {html}");
    assert!(html.contains("</span> live</span>"), "{html}");
    let fails = flow_entry(&html, "fails");
    assert!(fails.contains(r#"href="/console/integrations/shop/flows/fails""#), "{fails}");
    assert!(fails.contains("badge st-failed"), "last status: {fails}");
    assert!(fails.contains(r#"data-failures="2""#), "{fails}");
    assert!(fails.contains("2 failed in 24 h"), "{fails}");
    let orders = flow_entry(&html, "orders");
    assert!(orders.contains("badge st-succeeded"), "{orders}");
    assert!(orders.contains(r#"data-failures="0""#), "{orders}");
    assert!(html.contains(r#"data-total-failures="2""#), "{html}");
    // A day later they no longer count; the last status stays; a new failure counts.
    clock.advance(std::time::Duration::from_secs(25 * 3600));
    let (cookie, _) = sign_in(&s, TOKEN).await;
    let (_, html) = page(&s, &cookie, "/console/integrations").await;
    let fails = flow_entry(&html, "fails");
    assert!(fails.contains(r#"data-failures="0""#) && fails.contains("badge st-failed"), "{fails}");
    assert!(html.contains(r#"data-total-failures="0""#), "{html}");
    assert_eq!(s.run_flow("shop", "fails", json!({})).await["status"], "failed");
    let (_, html) = page(&s, &cookie, "/console/integrations").await;
    assert!(flow_entry(&html, "fails").contains(r#"data-failures="1""#), "{html}");
    // Hostile names are text.
    assert!(html.contains("Shop &lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(3)&gt;"), "{html}");
    assert_inert(&html);
}

backends!(the_page_shows_flows_and_a_form_built_from_the_config);
async fn the_page_shows_flows_and_a_form_built_from_the_config() {
    let (s, cookie, _) = start().await;
    let (_, html) = page(&s, &cookie, "/console/integrations/shop").await;
    assert!(html.contains(r#"<a class="button" href="/console/integrations/shop/edit">Edit</a>"#), "{html}");
    assert!(html.contains(r#"href="/console/integrations/shop/flows/orders""#), "{html}");
    assert!(html.contains(r#"<td data-label="Trigger">manual</td>"#), "{html}");
    assert!(html.contains("Orders &lt;img src=x onerror=alert(2)&gt;"), "the description: {html}");
    assert!(html.contains(r#"<dd id="current-version">1 "#), "{html}");
    // Types, required marks, defaults, `allowed` as a select.
    let api_url = field(&html, "apiUrl");
    assert!(api_url.contains(r#"data-type="string""#) && api_url.contains("required"), "{api_url}");
    assert!(api_url.contains(r#"type="text" name="cfg.apiUrl""#), "{api_url}");
    assert!(api_url.contains("Base URL &lt;b&gt;of the API&lt;/b&gt;"), "{api_url}");
    let page_size = field(&html, "pageSize");
    assert!(page_size.contains("(number)") && !page_size.contains("required"), "{page_size}");
    assert!(page_size.contains("Default: <code>50</code>"), "{page_size}");
    assert!(page_size.contains(r#"placeholder="50""#), "{page_size}");
    let region = field(&html, "region");
    assert!(region.contains(r#"<select id="cfg-2" name="cfg.region""#), "{region}");
    assert!(region.contains(r#"<option value="">(default: eu)</option>"#), "{region}");
    assert!(region.contains(r#"<option value="&quot;us&quot;">us</option>"#), "{region}");
    let verbose = field(&html, "verbose");
    assert!(verbose.contains(r#"<option value="true">true</option>"#), "{verbose}");
    assert!(field(&html, "extra").contains("<textarea"), "json");
    let key = field(&html, "apiKey");
    assert!(key.contains(r#"type="password" name="cfg.apiKey" value="""#), "{key}");
    assert!(key.contains(r#"data-secret-state="not set""#) && key.contains("required"), "{key}");
    // Every control has a label.
    for i in 0..6 {
        assert!(html.contains(&format!(r#"<label for="cfg-{i}">"#)), "label of cfg-{i}");
    }
    assert_inert(&html);
}

backends!(a_saved_secret_is_never_shown_and_the_api_sees_it_set);
async fn a_saved_secret_is_never_shown_and_the_api_sees_it_set() {
    let (s, cookie, csrf) = start().await;
    let form = format!(
        "csrf={csrf}&cfg.apiUrl=https%3A%2F%2Fapi.example&cfg.pageSize=25&cfg.region=%22us%22&cfg.verbose=true\
         &cfg.extra=%7B%22a%22%3A1%7D&cfg.apiKey={SECRET}"
    );
    let r = post_form(&s, &cookie, "/console/integrations/shop/deployment", &form).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/console/integrations/shop?saved=1#deployment");
    let (status, html) = page(&s, &cookie, "/console/integrations/shop?saved=1").await;
    assert_eq!(status, 200);
    assert!(html.contains("Deployment saved."), "{html}");
    assert!(!html.contains(SECRET), "the secret is in the page");
    assert!(field(&html, "apiKey").contains(r#"data-secret-state="set""#), "{html}");
    assert!(field(&html, "pageSize").contains(r#"value="25""#), "{html}");
    assert!(field(&html, "region").contains(r#"<option value="&quot;us&quot;" selected>us</option>"#), "{html}");
    assert!(html.contains("</span> live</span>"), "{html}");
    let d = s.get_json("/v1/integrations/shop/deployment").await;
    assert_eq!(d["config"]["apiKey"], json!({ "type": "secret", "set": true, "source": "deployment" }), "{d}");
    assert_eq!(d["config"]["pageSize"]["value"], 25, "{d}");
    assert_eq!(d["config"]["region"]["value"], "us", "{d}");
    assert_eq!(d["config"]["verbose"]["value"], true, "{d}");
    assert_eq!(d["config"]["extra"]["value"], json!({ "a": 1 }), "{d}");
    assert_eq!(d["live"], true);
    assert!(!d.to_string().contains(SECRET));

    // An empty secret field keeps it; emptying another field unsets it (its default applies).
    let form = format!("csrf={csrf}&cfg.apiUrl=https%3A%2F%2Fapi2.example&cfg.pageSize=&cfg.apiKey=");
    let r = post_form(&s, &cookie, "/console/integrations/shop/deployment", &form).await;
    assert_eq!(r.status(), 303);
    let d = s.get_json("/v1/integrations/shop/deployment").await;
    assert_eq!(d["config"]["apiKey"]["set"], true, "{d}");
    assert_eq!(d["config"]["pageSize"], json!({ "type": "number", "value": 50, "source": "default" }), "{d}");
    assert_eq!(d["config"]["apiUrl"]["value"], "https://api2.example");
    // The flows use it: the keyed connection is active with it.
    let (_, html) = page(&s, &cookie, "/console/integrations/shop").await;
    assert!(!html.contains(SECRET));
    // Removing a required secret is refused beside its field.
    let r =
        post_form(&s, &cookie, "/console/integrations/shop/deployment", &format!("csrf={csrf}&clear.apiKey=1")).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(field(&html, "apiKey").contains("required, and not set"), "{html}");
    assert!(!html.contains(SECRET));
    assert_eq!(s.get_json("/v1/integrations/shop/deployment").await["config"]["apiKey"]["set"], true);
}

backends!(wrong_values_are_refused_beside_their_fields);
async fn wrong_values_are_refused_beside_their_fields() {
    let (s, cookie, csrf) = start().await;
    deploy_by_api(&s).await;
    let typed = "typed-secret-never-echoed";
    let form = format!(
        "csrf={csrf}&cfg.apiUrl=https%3A%2F%2Fother.example&cfg.pageSize=abc&cfg.region=%22mars%22&cfg.extra=%7Bnope&cfg.apiKey={typed}"
    );
    let r = post_form(&s, &cookie, "/console/integrations/shop/deployment", &form).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("The deployment was not saved."), "{html}");
    let page_size = field(&html, "pageSize");
    assert!(page_size.contains(r#"class="field-error" id="cfg-1-error""#), "{page_size}");
    assert!(page_size.contains("expected a number"), "{page_size}");
    assert!(page_size.contains(r#"aria-invalid="true""#), "{page_size}");
    assert!(page_size.contains(r#"value="abc""#), "what was typed is shown again: {page_size}");
    assert!(field(&html, "extra").contains("not valid JSON"), "{html}");
    assert!(!field(&html, "apiUrl").contains("field-error"), "{html}");
    // A typed secret is never echoed back.
    assert!(!html.contains(typed), "a typed secret is echoed");
    assert!(!html.contains(SECRET));
    assert!(html.contains("Secrets you typed were not kept"), "{html}");
    // Without the JSON problem the engine checks the rest: `allowed` too.
    let form = format!("csrf={csrf}&cfg.pageSize=abc&cfg.region=%22mars%22");
    let r = post_form(&s, &cookie, "/console/integrations/shop/deployment", &form).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(field(&html, "pageSize").contains("expected a number"), "{html}");
    assert!(field(&html, "region").contains("not one of the allowed values"), "{html}");
    // Nothing was stored.
    let d = s.get_json("/v1/integrations/shop/deployment").await;
    assert_eq!(d["config"]["apiUrl"]["value"], "https://api.example", "{d}");
    assert_eq!(d["config"]["pageSize"]["source"], "default", "{d}");
}

backends!(versions_diff_side_by_side_and_roll_back);
async fn versions_diff_side_by_side_and_roll_back() {
    let (s, cookie, csrf) = start().await;
    let v2 = SHOP.replace("'{ n: .body.n }'", "'{ n: .body.n, twice: (.body.n * 2) }'").replace(
        "  - flow: fails\n",
        "  - flow: added\n    trigger: { manual: {} }\n    steps: [ { id: x, log: \"added <i>line</i>\" } ]\n  - flow: fails\n",
    );
    s.apply(&v2).await;
    let (_, html) = page(&s, &cookie, "/console/integrations/shop").await;
    assert!(html.contains(r#"<tr data-version="1">"#) && html.contains(r#"<tr data-version="2">"#), "{html}");
    assert!(html.contains(r#"href="/console/integrations/shop/diff?from=1&amp;to=2""#), "{html}");

    let (status, html) = page(&s, &cookie, "/console/integrations/shop/diff?from=1&to=2").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"<span class="added">+4 added</span>"#), "{html}");
    assert!(html.contains(r#"<span class="removed">−1 removed</span>"#), "{html}");
    // The changed line: removed on the left, added on the right, each marked.
    let row =
        html.split("<tr>").find(|r| r.contains("{ n: .body.n }")).unwrap_or_else(|| panic!("the old line in {html}"));
    assert!(row.contains(r#"<td class="mark del">−</td>"#), "{row}");
    assert!(row.contains(r#"<td class="mark ins">+</td>"#) && row.contains("twice"), "{row}");
    let added = html.split("<tr>").find(|r| r.contains("added &lt;i&gt;line&lt;/i&gt;")).expect("an added line");
    assert!(added.contains(r#"<td class="mark none"></td><td class="text none"></td>"#), "{added}");
    assert!(!html.contains("<i>line</i>"));
    // Bad or unknown versions.
    assert_eq!(page(&s, &cookie, "/console/integrations/shop/diff?from=1&to=9").await.0, 404);
    assert_eq!(page(&s, &cookie, "/console/integrations/shop/diff?from=x&to=2").await.0, 400);

    // Rollback to version 1: a new version (3) with version 1's source.
    let r = post_form(&s, &cookie, "/console/integrations/shop/versions/1/rollback", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/console/integrations/shop?rolledback=1&version=3#versions");
    let one = s.get_json("/v1/integrations/shop/versions/1").await;
    let three = s.get_json("/v1/integrations/shop/versions/3").await;
    assert_eq!(three["current"], true, "{three}");
    assert_eq!(three["source"], one["source"], "version 3 has version 1's source");
    let (_, html) = page(&s, &cookie, "/console/integrations/shop?rolledback=1&version=3").await;
    assert!(html.contains("version 1's source was applied again as version 3"), "{html}");
    assert!(html.contains(r#"<dd id="current-version">3 "#), "{html}");
    let (_, html) = page(&s, &cookie, "/console/integrations/shop/diff?from=1&to=3").await;
    assert!(html.contains("+0 added") && html.contains("the sources are the same"), "{html}");
    let r = post_form(&s, &cookie, "/console/integrations/shop/versions/7/rollback", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 404);
}

backends!(tests_run_with_each_result);
async fn tests_run_with_each_result() {
    let (s, cookie, csrf) = start().await;
    let (_, html) = page(&s, &cookie, "/console/integrations/shop").await;
    assert!(html.contains("Run tests"), "{html}");
    let r = post_form(&s, &cookie, "/console/integrations/shop/test", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let results = &html[html.find(r#"id="test-results""#).expect("results")..];
    assert!(results.contains("1 passed, 1 failed"), "{results}");
    let pass = results.find("orders passes n through").expect("the passing test");
    let fail = results.find("&lt;script&gt;wrong&lt;/script&gt;").expect("the failing test, escaped");
    let passing = &results[results[..pass].rfind("<li").unwrap()..pass];
    assert!(passing.contains(r#"data-passed="true""#) && passing.contains("✓</span> pass"), "{passing}");
    let failing = &results[results[..fail].rfind("<li").unwrap()..];
    assert!(failing.contains(r#"data-passed="false""#) && failing.contains("✗</span> fail"), "{failing}");
    assert!(failing.contains("<code>output.n</code>"), "the failure's path: {failing}");
    assert!(failing.contains(r#"class="failure-message""#), "{failing}");
    assert_inert(&html);
    // The API's runner agrees.
    let (_, _, v) = send(s.api(reqwest::Method::POST, "/v1/integrations/shop/test")).await;
    assert_eq!(v["passed"], false, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
}

backends!(connections_test_and_authorize);
async fn connections_test_and_authorize() {
    let (s, cookie, csrf) = start().await;
    // Before the secret is set the keyed connection cannot work.
    let (_, html) = page(&s, &cookie, "/console/integrations/shop").await;
    let list = &html[html.find(r#"id="connection-list""#).expect("connections")..];
    assert!(list.contains(r#"<tr data-connection="keyed">"#) && list.contains(r#"<tr data-connection="books">"#));
    assert!(list.contains("Authorize books") && !list.contains("Authorize keyed"), "{list}");
    deploy_by_api(&s).await;
    let r = post_form(&s, &cookie, "/console/integrations/shop/connections/keyed/test", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let result = &html[html.find(r#"id="connection-result""#).expect("a result")..];
    assert!(result.contains("Test of <code>keyed</code> passed"), "{result}");
    assert!(result.contains("nothing was contacted"), "{result}");
    assert!(!html.contains(SECRET));
    // Authorize: to the provider's URL, as the API computes it.
    let r =
        post_form(&s, &cookie, "/console/integrations/shop/connections/books/authorize", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.starts_with("https://provider.example/authorize?"), "{to}");
    assert!(to.contains("client_id=app") && to.contains("state="), "{to}");
    // A connection no person authorizes: the reason, in the page.
    let r =
        post_form(&s, &cookie, "/console/integrations/shop/connections/keyed/authorize", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Test of <code>keyed</code> failed"));
    let r = post_form(&s, &cookie, "/console/integrations/shop/connections/nope/test", &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 404);
}

backends!(every_post_needs_the_csrf_token);
async fn every_post_needs_the_csrf_token() {
    let (s, cookie, _) = start().await;
    deploy_by_api(&s).await;
    s.apply(&SHOP.replace("{ n: .body.n }", "{ m: .body.n }")).await;
    for path in [
        "/console/integrations/shop/deployment",
        "/console/integrations/shop/versions/1/rollback",
        "/console/integrations/shop/test",
        "/console/integrations/shop/connections/keyed/test",
        "/console/integrations/shop/connections/books/authorize",
    ] {
        for form in ["cfg.apiUrl=https%3A%2F%2Fevil.example", "csrf=forged&cfg.apiUrl=https%3A%2F%2Fevil.example"] {
            let r = post_form(&s, &cookie, path, form).await;
            assert_eq!(r.status(), 403, "{path} {form}");
        }
    }
    let d = s.get_json("/v1/integrations/shop/deployment").await;
    assert_eq!(d["config"]["apiUrl"]["value"], "https://api.example", "{d}");
    let v = s.get_json("/v1/integrations/shop/versions").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "no rollback happened: {v}");
}

backends!(another_tenant_gets_not_found);
async fn another_tenant_gets_not_found() {
    let (s, _, _) = start().await;
    deploy_by_api(&s).await;
    let other = s.create_tenant(ADMIN, "other").await;
    let (cookie, _) = sign_in(&s, &other).await;
    let (status, html) = page(&s, &cookie, "/console/integrations").await;
    assert_eq!(status, 200);
    assert!(!html.contains("shop"), "{html}");
    let csrf = csrf_of(&html);
    for path in ["/console/integrations/shop", "/console/integrations/shop/diff?from=1&to=1"] {
        let (status, html) = page(&s, &cookie, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!html.contains("Shop"), "{path}: {html}");
    }
    for path in [
        "/console/integrations/shop/deployment",
        "/console/integrations/shop/versions/1/rollback",
        "/console/integrations/shop/test",
        "/console/integrations/shop/connections/keyed/test",
        "/console/integrations/shop/connections/books/authorize",
    ] {
        let r = post_form(&s, &cookie, path, &format!("csrf={csrf}&cfg.apiUrl=https%3A%2F%2Fevil.example")).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(!r.text().await.unwrap().contains("Shop"), "{path}");
    }
    let d: Value = s.get_json("/v1/integrations/shop/deployment").await;
    assert_eq!(d["config"]["apiUrl"]["value"], "https://api.example", "{d}");
}
