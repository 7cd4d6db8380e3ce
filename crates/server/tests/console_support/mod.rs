//! What the console's HTTP tests share: a browser-like client, signing in, fetching a page
//! with the session cookie, posting a form, and reading a page's CSRF token. Used with
//! `#[macro_use] mod common; mod console_support;` in each `console*.rs` test file.

#![allow(dead_code)]

use crate::common::TestServer;

/// A client that does not follow redirects (to see them) and keeps no cookies.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Signs in with `token`; the `fg_console=…` pair and the whole `Set-Cookie` header.
pub async fn sign_in(s: &TestServer, token: &str) -> (String, String) {
    let r = browser()
        .post(format!("{}/console/signin", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), 303, "sign-in with a good token redirects");
    assert_eq!(r.headers()["location"], "/console/executions");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = set.split(';').next().unwrap().trim().to_owned();
    (pair, set)
}

/// GET a console page with a session cookie: status and body.
pub async fn page(s: &TestServer, cookie: &str, path: &str) -> (u16, String) {
    let r = browser().get(format!("{}{path}", s.url)).header("cookie", cookie).send().await.expect("GET");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// POST a console form.
pub async fn post_form(s: &TestServer, cookie: &str, path: &str, form: &str) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", s.url))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .expect("POST")
}

/// The CSRF token in a page's forms.
pub fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_owned()
}
