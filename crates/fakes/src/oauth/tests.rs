//! The token and authorization endpoints over HTTP, and every knob.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::*;
use crate::test_support::client;

const REDIRECT: &str = "https://app.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kzLy7Sm5lo-UvYMJXgX09TMcKdp9";

/// How a test request authenticates the client.
enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    None,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<none>")
    }
    fn str(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_else(|| panic!("no `{field}` in {}", self.body)).to_owned()
    }
}

async fn start() -> OAuthServer {
    OAuthServer::start(OAuthConfig::default().with_client("app", "s3cret").with_client("other", "pw")).await
}

async fn token(server: &OAuthServer, auth: Auth<'_>, params: &[(&str, &str)]) -> Answer {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    let mut request = client().post(server.token_url());
    match auth {
        Auth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
        Auth::Post(id, secret) => form.extend([("client_id", id), ("client_secret", secret)]),
        Auth::None => {}
    }
    let response = request.form(&form).send().await.expect("token request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.expect("a JSON body");
    Answer { status, headers, body }
}

/// Runs the authorization endpoint and returns the redirect's query parameters.
async fn authorize(server: &OAuthServer, params: &[(&str, &str)]) -> HashMap<String, String> {
    let response = client().get(server.authorize_url()).query(params).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND, "authorize answer");
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    let location = Url::parse(location).unwrap();
    assert_eq!(&location[..url::Position::AfterPath], REDIRECT);
    location.query_pairs().into_owned().collect()
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Authorizes with an S256 challenge and exchanges the code: (access, refresh).
async fn code_flow(server: &OAuthServer) -> (String, String) {
    let challenge = s256(VERIFIER);
    let query = authorize(
        server,
        &[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", REDIRECT),
            ("scope", "accounting"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let answer = token(
        server,
        Auth::Basic("app", "s3cret"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &query["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    (answer.str("access_token"), answer.str("refresh_token"))
}

async fn refresh(server: &OAuthServer, refresh_token: &str) -> Answer {
    token(server, Auth::Basic("app", "s3cret"), &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
        .await
}

#[tokio::test]
async fn client_credentials_with_basic_auth_issues_a_bearer_token() {
    let server = start().await;
    let answer =
        token(&server, Auth::Basic("app", "s3cret"), &[("grant_type", "client_credentials"), ("scope", "a b")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3600);
    assert_eq!(answer.body["scope"], "a b");
    assert!(answer.body.get("refresh_token").is_none(), "no refresh token for client_credentials");
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(answer.headers[header::PRAGMA], "no-cache");
    assert!(server.validate_access(&answer.str("access_token")));
    assert!(!server.validate_access("at_made_up"));
}

#[tokio::test]
async fn client_secret_post_is_accepted() {
    let server = start().await;
    let answer = token(&server, Auth::Post("app", "s3cret"), &[("grant_type", "client_credentials")]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["scope"], "");
}

#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    let server = OAuthServer::start(OAuthConfig::default().with_client("my app", "p@ss:w%rd")).await;
    // RFC 6749 §2.3.1: id and secret are form-encoded before Base64.
    let answer =
        token(&server, Auth::Basic("my+app", "p%40ss%3Aw%25rd"), &[("grant_type", "client_credentials")]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn client_authentication_failures() {
    let server = start().await;
    let grant = [("grant_type", "client_credentials")];

    let wrong = token(&server, Auth::Basic("app", "nope"), &grant).await;
    assert_eq!((wrong.status, wrong.error()), (StatusCode::UNAUTHORIZED, "invalid_client"));
    assert_eq!(wrong.headers[header::WWW_AUTHENTICATE], "Basic realm=\"flowgate-fakes\"");
    assert_eq!(wrong.headers[header::CACHE_CONTROL], "no-store");

    let unknown = token(&server, Auth::Post("ghost", "s3cret"), &grant).await;
    assert_eq!((unknown.status, unknown.error()), (StatusCode::UNAUTHORIZED, "invalid_client"));

    let none = token(&server, Auth::None, &grant).await;
    assert_eq!((none.status, none.error()), (StatusCode::UNAUTHORIZED, "invalid_client"));

    let id_only = token(&server, Auth::None, &[("grant_type", "client_credentials"), ("client_id", "app")]).await;
    assert_eq!((id_only.status, id_only.error()), (StatusCode::UNAUTHORIZED, "invalid_client"));

    let both = token(
        &server,
        Auth::Basic("app", "s3cret"),
        &[("grant_type", "client_credentials"), ("client_secret", "s3cret")],
    )
    .await;
    assert_eq!((both.status, both.error()), (StatusCode::BAD_REQUEST, "invalid_request"));
}

#[tokio::test]
async fn malformed_token_requests() {
    let server = start().await;
    let auth = || Auth::Basic("app", "s3cret");

    let missing = token(&server, auth(), &[("scope", "x")]).await;
    assert_eq!((missing.status, missing.error()), (StatusCode::BAD_REQUEST, "invalid_request"));

    let unsupported = token(&server, auth(), &[("grant_type", "password")]).await;
    assert_eq!((unsupported.status, unsupported.error()), (StatusCode::BAD_REQUEST, "unsupported_grant_type"));

    let repeated =
        token(&server, auth(), &[("grant_type", "client_credentials"), ("grant_type", "client_credentials")]).await;
    assert_eq!(repeated.error(), "invalid_request");
    assert!(repeated.str("error_description").contains("repeated"));

    let json = client()
        .post(server.token_url())
        .basic_auth("app", Some("s3cret"))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json.json::<Value>().await.unwrap()["error"], "invalid_request");

    let code_without_code = token(&server, auth(), &[("grant_type", "authorization_code")]).await;
    assert_eq!(code_without_code.error(), "invalid_request");
}

#[tokio::test]
async fn required_scopes_are_enforced() {
    let config = OAuthConfig::default().with_client("app", "s3cret").with_required_scope("accounting");
    let server = OAuthServer::start(config).await;
    let auth = || Auth::Basic("app", "s3cret");

    let none = token(&server, auth(), &[("grant_type", "client_credentials")]).await;
    assert_eq!((none.status, none.error()), (StatusCode::BAD_REQUEST, "invalid_scope"));
    let other = token(&server, auth(), &[("grant_type", "client_credentials"), ("scope", "payments")]).await;
    assert_eq!(other.error(), "invalid_scope");
    let ok = token(&server, auth(), &[("grant_type", "client_credentials"), ("scope", "payments accounting")]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["scope"], "payments accounting");

    let query = authorize(
        &server,
        &[("response_type", "code"), ("client_id", "app"), ("redirect_uri", REDIRECT), ("state", "st")],
    )
    .await;
    assert_eq!(query["error"], "invalid_scope");
    assert_eq!(query["state"], "st");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn authorize_redirects_with_code_state_and_realm_and_records_the_request() {
    let config = OAuthConfig::default().with_client("app", "s3cret").with_realm_id("9130");
    let server = OAuthServer::start(config).await;
    let query = authorize(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", REDIRECT),
            ("scope", "com.intuit.quickbooks.accounting"),
            ("state", "xyz"),
        ],
    )
    .await;
    assert!(query["code"].starts_with("ac_"));
    assert_eq!(query["state"], "xyz");
    assert_eq!(query["realmId"], "9130");

    let recorded = server.last_authorize_request().expect("recorded");
    assert_eq!(
        recorded,
        AuthorizeRequest {
            response_type: Some("code".into()),
            client_id: Some("app".into()),
            redirect_uri: Some(REDIRECT.into()),
            scope: Some("com.intuit.quickbooks.accounting".into()),
            state: Some("xyz".into()),
            code_challenge: None,
            code_challenge_method: None,
        }
    );
    // Without PKCE, the code exchanges without a verifier.
    let answer = token(
        &server,
        Auth::Post("app", "s3cret"),
        &[("grant_type", "authorization_code"), ("code", &query["code"]), ("redirect_uri", REDIRECT)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["scope"], "com.intuit.quickbooks.accounting");
}

#[tokio::test]
async fn authorize_errors() {
    let server = start().await;
    let get = |params: Vec<(&'static str, &'static str)>| {
        let url = server.authorize_url();
        async move { client().get(url).query(&params).send().await.unwrap() }
    };

    for params in [
        vec![("response_type", "code"), ("redirect_uri", REDIRECT)],
        vec![("response_type", "code"), ("client_id", "ghost"), ("redirect_uri", REDIRECT)],
        vec![("response_type", "code"), ("client_id", "app")],
        vec![("response_type", "code"), ("client_id", "app"), ("redirect_uri", "not a url")],
    ] {
        let response = get(params.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{params:?}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_request");
    }
    assert_eq!(server.last_authorize_request().unwrap().redirect_uri.as_deref(), Some("not a url"));

    let query = authorize(
        &server,
        &[("response_type", "token"), ("client_id", "app"), ("redirect_uri", REDIRECT), ("state", "s1")],
    )
    .await;
    assert_eq!((query["error"].as_str(), query["state"].as_str()), ("unsupported_response_type", "s1"));

    let query = authorize(&server, &[("client_id", "app"), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(query["error"], "invalid_request");

    let query = authorize(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", "abc"),
            ("code_challenge_method", "S512"),
        ],
    )
    .await;
    assert_eq!(query["error"], "invalid_request");
}

#[tokio::test]
async fn authorization_code_with_s256_pkce() {
    let server = start().await;
    let challenge = s256(VERIFIER);
    let params = [
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = authorize(&server, &params).await["code"].clone();
    let exchange = |verifier: Option<&'static str>| {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        let server = &server;
        async move { token(server, Auth::Basic("app", "s3cret"), &form).await }
    };
    let missing = exchange(None).await;
    assert_eq!((missing.status, missing.error()), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let wrong = exchange(Some("dBjftJeZ4CVP-mJ0kzLy7Sm5lo-UvYMJXgX09TMcKdpX")).await;
    assert_eq!(wrong.error(), "invalid_grant");
    let short = exchange(Some("short")).await;
    assert_eq!(short.error(), "invalid_grant");
    // Failed attempts do not consume the code.
    let ok = exchange(Some(VERIFIER)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(ok.str("refresh_token").starts_with("rt_"));
    assert!(server.validate_access(&ok.str("access_token")));
}

#[tokio::test]
async fn authorization_code_with_plain_pkce() {
    let server = start().await;
    let params = [
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", REDIRECT),
        ("code_challenge", VERIFIER),
        ("code_challenge_method", "plain"),
    ];
    let code = authorize(&server, &params).await["code"].clone();
    let answer = token(
        &server,
        Auth::Basic("app", "s3cret"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn authorization_code_is_bound_to_client_and_redirect_uri() {
    let server = start().await;
    let params = [("response_type", "code"), ("client_id", "app"), ("redirect_uri", REDIRECT)];
    let code = authorize(&server, &params).await["code"].clone();

    let other_redirect = token(
        &server,
        Auth::Basic("app", "s3cret"),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://evil.example/cb")],
    )
    .await;
    assert_eq!(other_redirect.error(), "invalid_grant");
    let no_redirect =
        token(&server, Auth::Basic("app", "s3cret"), &[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!(no_redirect.error(), "invalid_request");
    let other_client = token(
        &server,
        Auth::Basic("other", "pw"),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)],
    )
    .await;
    assert_eq!(other_client.error(), "invalid_grant");
    let unknown = token(
        &server,
        Auth::Basic("app", "s3cret"),
        &[("grant_type", "authorization_code"), ("code", "ac_nope"), ("redirect_uri", REDIRECT)],
    )
    .await;
    assert_eq!(unknown.error(), "invalid_grant");
}

#[tokio::test]
async fn authorization_code_is_single_use_and_reuse_revokes_its_tokens() {
    let server = start().await;
    let params = [("response_type", "code"), ("client_id", "app"), ("redirect_uri", REDIRECT)];
    let code = authorize(&server, &params).await["code"].clone();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let first = token(&server, Auth::Basic("app", "s3cret"), &form).await;
    assert_eq!(first.status, StatusCode::OK);
    let (access, refresh_token) = (first.str("access_token"), first.str("refresh_token"));
    assert!(server.validate_access(&access));

    let second = token(&server, Auth::Basic("app", "s3cret"), &form).await;
    assert_eq!((second.status, second.error()), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert!(!server.validate_access(&access), "RFC 6749 §4.1.2: reuse revokes the issued tokens");
    assert!(!server.refresh_token_is_valid(&refresh_token));
    assert_eq!(refresh(&server, &refresh_token).await.error(), "invalid_grant");
}

#[tokio::test]
async fn expired_authorization_codes_are_refused() {
    let server = start().await;
    let params = [("response_type", "code"), ("client_id", "app"), ("redirect_uri", REDIRECT)];
    let code = authorize(&server, &params).await["code"].clone();
    server.expire_authorization_codes();
    let answer = token(
        &server,
        Auth::Basic("app", "s3cret"),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)],
    )
    .await;
    assert_eq!((answer.status, answer.error()), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert!(answer.str("error_description").contains("expired"));
}

#[tokio::test]
async fn rotation_keeps_the_old_token_until_the_new_one_is_used() {
    let server = start().await;
    let (_, r1) = code_flow(&server).await;

    let first = refresh(&server, &r1).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let r2 = first.str("refresh_token");
    assert_ne!(r2, r1, "each refresh answers a new refresh token");
    assert_eq!(first.body["scope"], "accounting");
    assert!(server.refresh_token_is_valid(&r1), "the old token stays valid until the new one is used");

    // A client that lost r2 retries with r1 and gets another new token.
    let retry = refresh(&server, &r1).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    let r2b = retry.str("refresh_token");
    assert_ne!(r2b, r2);

    // Using r2b confirms it: r1 and its other child r2 are retired.
    let next = refresh(&server, &r2b).await;
    assert_eq!(next.status, StatusCode::OK);
    let r3 = next.str("refresh_token");
    assert_eq!(refresh(&server, &r1).await.error(), "invalid_grant");
    assert_eq!(refresh(&server, &r2).await.error(), "invalid_grant");
    assert!(server.refresh_token_is_valid(&r2b), "r2b lives until r3 is used");
    assert!(server.refresh_token_is_valid(&r3));
    assert_eq!(server.token_requests_for("refresh_token"), 5);
}

#[tokio::test]
async fn rotation_is_confirmed_by_using_the_new_access_token() {
    let server = start().await;
    let (_, r1) = code_flow(&server).await;
    let answer = refresh(&server, &r1).await;
    let (a2, r2) = (answer.str("access_token"), answer.str("refresh_token"));
    assert!(server.refresh_token_is_valid(&r1));
    assert!(server.validate_access(&a2));
    assert!(!server.refresh_token_is_valid(&r1), "using a2 at a resource server retires r1");
    assert_eq!(refresh(&server, &r1).await.error(), "invalid_grant");
    assert!(server.refresh_token_is_valid(&r2));
}

#[tokio::test]
async fn without_rotation_the_refresh_token_is_answered_again() {
    let config = OAuthConfig::default().with_client("app", "s3cret").with_rotation(false);
    let server = OAuthServer::start(config).await;
    let (_, r1) = code_flow(&server).await;
    for _ in 0..3 {
        let answer = refresh(&server, &r1).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.str("refresh_token"), r1);
        assert!(server.validate_access(&answer.str("access_token")));
    }
}

#[tokio::test]
async fn refresh_scope_and_client_checks() {
    let server = start().await;
    let (_, r1) = code_flow(&server).await;
    let wider = token(
        &server,
        Auth::Basic("app", "s3cret"),
        &[("grant_type", "refresh_token"), ("refresh_token", &r1), ("scope", "accounting payments")],
    )
    .await;
    assert_eq!(wider.error(), "invalid_scope");
    let other_client =
        token(&server, Auth::Basic("other", "pw"), &[("grant_type", "refresh_token"), ("refresh_token", &r1)]).await;
    assert_eq!(other_client.error(), "invalid_grant");
    let missing = token(&server, Auth::Basic("app", "s3cret"), &[("grant_type", "refresh_token")]).await;
    assert_eq!(missing.error(), "invalid_request");
    let same = token(
        &server,
        Auth::Basic("app", "s3cret"),
        &[("grant_type", "refresh_token"), ("refresh_token", &r1), ("scope", "accounting")],
    )
    .await;
    assert_eq!(same.status, StatusCode::OK);
}

#[tokio::test]
async fn revoke_all_refresh_tokens() {
    let server = start().await;
    let (_, r1) = code_flow(&server).await;
    server.revoke_all_refresh_tokens();
    let answer = refresh(&server, &r1).await;
    assert_eq!((answer.status, answer.error()), (StatusCode::BAD_REQUEST, "invalid_grant"));
    // A new authorization works again.
    let (_, fresh) = code_flow(&server).await;
    assert_eq!(refresh(&server, &fresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn expire_access_tokens_and_lifetime() {
    let server = start().await;
    let (access, refresh_token) = code_flow(&server).await;
    assert!(server.validate_access(&access));
    server.expire_access_tokens();
    assert!(!server.validate_access(&access));
    let renewed = refresh(&server, &refresh_token).await;
    assert!(server.validate_access(&renewed.str("access_token")));

    let short =
        OAuthServer::start(OAuthConfig::default().with_client("app", "s3cret").with_access_token_lifetime_secs(0))
            .await;
    let answer = token(&short, Auth::Basic("app", "s3cret"), &[("grant_type", "client_credentials")]).await;
    assert_eq!(answer.body["expires_in"], 0);
    assert!(!short.validate_access(&answer.str("access_token")), "a zero lifetime is expired at once");
}

#[tokio::test]
async fn issue_access_token_is_valid_and_not_counted() {
    let server = start().await;
    let access = server.issue_access_token();
    assert!(server.validate_access(&access));
    assert_eq!(server.token_requests(), 0);
}

#[tokio::test]
async fn token_requests_are_counted_per_grant() {
    let server = start().await;
    code_flow(&server).await;
    token(&server, Auth::Basic("app", "s3cret"), &[("grant_type", "client_credentials")]).await;
    token(&server, Auth::Basic("app", "nope"), &[("grant_type", "client_credentials")]).await;
    token(&server, Auth::Basic("app", "s3cret"), &[("scope", "x")]).await;
    assert_eq!(server.token_requests(), 4);
    assert_eq!(server.token_requests_for("client_credentials"), 2);
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    assert_eq!(server.token_requests_for("refresh_token"), 0);
}

#[tokio::test]
async fn fail_next_token_requests_then_recover() {
    let server = start().await;
    server.fail_next_token_requests(2, 503);
    let grant = [("grant_type", "client_credentials")];
    for _ in 0..2 {
        let failed = token(&server, Auth::Basic("app", "s3cret"), &grant).await;
        assert_eq!((failed.status, failed.error()), (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"));
    }
    assert_eq!(token(&server, Auth::Basic("app", "s3cret"), &grant).await.status, StatusCode::OK);
    server.fail_next_token_requests(1, 500);
    let failed = token(&server, Auth::Basic("app", "s3cret"), &grant).await;
    assert_eq!((failed.status, failed.error()), (StatusCode::INTERNAL_SERVER_ERROR, "server_error"));
    assert_eq!(server.token_requests(), 4);
    assert_eq!(server.token_requests_for("client_credentials"), 4);
}

#[tokio::test]
async fn set_delay_slows_the_token_endpoint() {
    let server = start().await;
    server.set_delay(Duration::from_millis(300));
    let started = Instant::now();
    let answer = token(&server, Auth::Basic("app", "s3cret"), &[("grant_type", "client_credentials")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    server.set_delay(Duration::ZERO);
    let started = Instant::now();
    token(&server, Auth::Basic("app", "s3cret"), &[("grant_type", "client_credentials")]).await;
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_all_succeed_before_confirmation() {
    // A client without a single-flight guard refreshes several times with the same token: the
    // fake lets it (as QuickBooks does) but counts every request, which is what tests assert on.
    let server = start().await;
    let (_, r1) = code_flow(&server).await;
    server.set_delay(Duration::from_millis(100));
    let answers = futures_join(&server, &r1, 3).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(server.token_requests_for("refresh_token"), 3);
}

async fn futures_join(server: &OAuthServer, token: &str, count: usize) -> Vec<Answer> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let url = server.token_url();
        let token = token.to_owned();
        tasks.spawn(async move {
            let response = client()
                .post(url)
                .basic_auth("app", Some("s3cret"))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
                .send()
                .await
                .unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            Answer { status, headers, body: response.json().await.unwrap() }
        });
    }
    tasks.join_all().await
}
