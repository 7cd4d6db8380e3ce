//! The Web API over HTTP: every operation, query option, condition, error and knob.

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::oauth::OAuthConfig;
use crate::test_support::client;

const ID_1: &str = "00000000-0000-0000-0000-000000000001";

struct Fixture {
    oauth: OAuthServer,
    dynamics: DynamicsServer,
    token: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
    }
    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_else(|| panic!("not a Dataverse error: {}", self.body))
    }
}

impl Fixture {
    async fn start() -> Fixture {
        let oauth = OAuthServer::start(OAuthConfig::default().with_client("app", "s3cret")).await;
        let dynamics = DynamicsServer::start(&oauth).await;
        let token = oauth.issue_access_token();
        Fixture { oauth, dynamics, token }
    }

    /// A request with the headers Dataverse's documentation asks for and the Bearer token.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.bare(method, path)
            .bearer_auth(&self.token)
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0")
            .header("Accept", "application/json")
    }

    fn bare(&self, method: Method, path: &str) -> RequestBuilder {
        let url =
            if path.starts_with("http") { path.to_owned() } else { format!("{}/{path}", self.dynamics.api_url()) };
        client().request(method, url)
    }

    async fn get(&self, path: &str) -> Answer {
        send(self.request(Method::GET, path)).await
    }
}

async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
    Answer { status, headers, body }
}

fn names(answer: &Answer) -> Vec<String> {
    answer.body["value"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap_or("<null>").to_owned()).collect()
}

#[test]
fn primary_keys_follow_set_names() {
    assert_eq!(primary_key("accounts"), "accountid");
    assert_eq!(primary_key("contacts"), "contactid");
    assert_eq!(primary_key("opportunities"), "opportunityid");
    assert_eq!(primary_key("new_widgets"), "new_widgetid");
}

#[tokio::test]
async fn create_answers_204_with_the_entity_id() {
    let f = Fixture::start().await;
    let answer = send(f.request(Method::POST, "accounts").json(&json!({"name": "Contoso", "revenue": 5}))).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.header("odata-version"), "4.0");
    let entity_id = answer.header("odata-entityid");
    let prefix = format!("{}/accounts(", f.dynamics.api_url());
    let id = entity_id.strip_prefix(&prefix).and_then(|r| r.strip_suffix(')')).expect("entity URL");
    let stored = f.dynamics.get("accounts", id).expect("stored");
    assert_eq!(stored["name"], "Contoso");
    assert_eq!(stored["accountid"], id);
    assert_eq!(stored["@odata.etag"], format!("W/\"{}\"", stored["versionnumber"]));
    assert!(stored["createdon"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn create_with_representation_and_given_id_then_duplicate() {
    let f = Fixture::start().await;
    let answer = send(
        f.request(Method::POST, "contacts?$select=firstname")
            .header("Prefer", "return=representation")
            .json(&json!({"contactid": ID_1, "firstname": "Ada", "lastname": "L"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.header("preference-applied"), "return=representation");
    assert_eq!(
        answer.body["@odata.context"],
        format!("{}/$metadata#contacts(firstname)/$entity", f.dynamics.api_url())
    );
    assert_eq!(answer.body["firstname"], "Ada");
    assert_eq!(answer.body["contactid"], ID_1);
    assert!(answer.body.get("lastname").is_none(), "$select applies to the representation");

    let again = send(f.request(Method::POST, "contacts").json(&json!({"contactid": ID_1}))).await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(again.error_code(), codes::DUPLICATE_RECORD);

    let invalid = send(f.request(Method::POST, "contacts").json(&json!([1, 2]))).await;
    assert_eq!((invalid.status, invalid.error_code()), (StatusCode::BAD_REQUEST, codes::INVALID_ARGUMENT));
    let bad_key = send(f.request(Method::POST, "contacts").json(&json!({"contactid": "nope"}))).await;
    assert_eq!(bad_key.error_code(), codes::INVALID_ARGUMENT);
}

#[tokio::test]
async fn bind_annotations_become_lookup_values() {
    let f = Fixture::start().await;
    let account = f.dynamics.insert("accounts", json!({"name": "Parent"}));
    let body = json!({"lastname": "Child", "parentcustomerid_account@odata.bind": format!("/accounts({account})")});
    let answer = send(f.request(Method::POST, "contacts").json(&body)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let contact = &f.dynamics.all("contacts")[0];
    assert_eq!(contact["_parentcustomerid_account_value"], account);
    assert!(contact.get("parentcustomerid_account@odata.bind").is_none());

    let filtered = f.get(&format!("contacts?$filter=_parentcustomerid_account_value eq {account}")).await;
    assert_eq!(filtered.body["value"].as_array().unwrap().len(), 1);

    let bad = send(f.request(Method::POST, "contacts").json(&json!({"x@odata.bind": "accounts"}))).await;
    assert_eq!(bad.error_code(), codes::INVALID_ARGUMENT);
}

#[tokio::test]
async fn retrieve_select_not_found_and_conditional_get() {
    let f = Fixture::start().await;
    let id = f.dynamics.insert("accounts", json!({"name": "Fabrikam", "revenue": 10}));
    let answer = f.get(&format!("accounts({id})")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["@odata.context"], format!("{}/$metadata#accounts/$entity", f.dynamics.api_url()));
    assert_eq!(answer.body["name"], "Fabrikam");
    let etag = answer.body["@odata.etag"].as_str().unwrap().to_owned();

    let selected = f.get(&format!("accounts({id})?$select=revenue,telephone1")).await;
    let keys: Vec<&String> = selected.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["@odata.context", "@odata.etag", "revenue", "telephone1", "accountid"]);
    assert_eq!(selected.body["telephone1"], Value::Null);

    let missing = f.get(&format!("accounts({ID_1})")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), codes::OBJECT_NOT_FOUND);
    assert_eq!(missing.body["error"]["message"], format!("account With Id = {ID_1} Does Not Exist"));

    let unchanged = send(f.request(Method::GET, &format!("accounts({id})")).header("If-None-Match", &etag)).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    let changed = send(f.request(Method::GET, &format!("accounts({id})")).header("If-None-Match", "W/\"999\"")).await;
    assert_eq!(changed.status, StatusCode::OK);
}

async fn seed_five(f: &Fixture) {
    for (name, revenue, city) in
        [("Alpha", 30, "Oslo"), ("bravo", 10, "Rome"), ("Charlie", 50, "Oslo"), ("Delta", 20, "Lima"), ("Echo", 40, "")]
    {
        let mut record = json!({"name": name, "revenue": revenue});
        if !city.is_empty() {
            record["address1_city"] = json!(city);
        }
        f.dynamics.insert("accounts", record);
    }
}

#[tokio::test]
async fn list_with_filter_select_orderby_top_and_count() {
    let f = Fixture::start().await;
    seed_five(&f).await;
    let all = f.get("accounts").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["@odata.context"], format!("{}/$metadata#accounts", f.dynamics.api_url()));
    assert_eq!(names(&all), ["Alpha", "bravo", "Charlie", "Delta", "Echo"]);
    assert!(all.body.get("@odata.count").is_none());
    assert!(all.headers.get("preference-applied").is_none());

    let cases = [
        ("$filter=address1_city eq 'oslo'", vec!["Alpha", "Charlie"]),
        ("$filter=address1_city ne 'Oslo'", vec!["bravo", "Delta", "Echo"]),
        ("$filter=revenue gt 20 and revenue lt 50", vec!["Alpha", "Echo"]),
        ("$filter=address1_city eq null", vec!["Echo"]),
        ("$filter=revenue eq 10 or startswith(name,'ch')", vec!["bravo", "Charlie"]),
        ("$orderby=revenue desc", vec!["Charlie", "Echo", "Alpha", "Delta", "bravo"]),
        ("$orderby=name", vec!["Alpha", "bravo", "Charlie", "Delta", "Echo"]),
        ("$orderby=address1_city asc,revenue desc", vec!["Echo", "Delta", "Charlie", "Alpha", "bravo"]),
        ("$top=2&$orderby=revenue", vec!["bravo", "Delta"]),
    ];
    for (query, expected) in cases {
        let answer = f.get(&format!("accounts?{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
        assert_eq!(names(&answer), expected, "{query}");
    }

    let counted = f.get("accounts?$select=name&$filter=revenue ge 30&$count=true&$top=1").await;
    assert_eq!(counted.body["@odata.count"], 3, "the count ignores $top");
    assert_eq!(counted.body["@odata.context"], format!("{}/$metadata#accounts(name)", f.dynamics.api_url()));
    let row = counted.body["value"][0].as_object().unwrap();
    assert_eq!(row.keys().collect::<Vec<_>>(), ["@odata.etag", "name", "accountid"]);

    let empty = f.get("contacts").await;
    assert_eq!(empty.body["value"], json!([]));
}

#[tokio::test]
async fn paging_with_maxpagesize_and_next_links() {
    let f = Fixture::start().await;
    seed_five(&f).await;
    let first = send(
        f.request(Method::GET, "accounts?$select=name&$orderby=revenue&$count=true")
            .header("Prefer", "odata.maxpagesize=2"),
    )
    .await;
    assert_eq!(first.header("preference-applied"), "odata.maxpagesize=2");
    assert_eq!(names(&first), ["bravo", "Delta"]);
    assert_eq!(first.body["@odata.count"], 5);
    let mut seen = names(&first);
    let mut next = first.body["@odata.nextLink"].as_str().expect("a next link").to_owned();
    assert!(next.starts_with(&format!("{}/accounts?", f.dynamics.api_url())), "{next}");
    assert!(next.contains("$skiptoken=%3Ccookie%20pagenumber%3D%222%22"), "{next}");
    let mut pages = 1;
    loop {
        let page = send(f.request(Method::GET, &next).header("Prefer", "odata.maxpagesize=2")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        seen.extend(names(&page));
        match page.body["@odata.nextLink"].as_str() {
            Some(link) => next = link.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["bravo", "Delta", "Alpha", "Echo", "Charlie"]);

    // $top wins over the page size.
    let top = send(f.request(Method::GET, "accounts?$top=3").header("Prefer", "odata.maxpagesize=2")).await;
    assert_eq!(names(&top).len(), 3);
    assert!(top.body.get("@odata.nextLink").is_none());
    assert!(top.headers.get("preference-applied").is_none());

    let bogus = f.get("accounts?$skiptoken=whatever").await;
    assert_eq!(bogus.error_code(), codes::BAD_REQUEST);
}

#[tokio::test]
async fn patch_upserts_and_honours_etag_conditions() {
    let f = Fixture::start().await;
    let path = format!("accounts({ID_1})");

    // Without conditions, PATCH creates a missing record with the URL's id.
    let created = send(f.request(Method::PATCH, &path).json(&json!({"name": "Upserted"}))).await;
    assert_eq!(created.status, StatusCode::NO_CONTENT);
    assert_eq!(created.header("odata-entityid"), format!("{}/{path}", f.dynamics.api_url()));
    let v1 = f.dynamics.get("accounts", ID_1).unwrap();
    assert_eq!(v1["name"], "Upserted");
    let etag1 = v1["@odata.etag"].as_str().unwrap().to_owned();

    // And updates an existing one, raising its version.
    let updated = send(f.request(Method::PATCH, &path).json(&json!({"revenue": 7}))).await;
    assert_eq!(updated.status, StatusCode::NO_CONTENT);
    let v2 = f.dynamics.get("accounts", ID_1).unwrap();
    assert_eq!((v2["name"].as_str(), v2["revenue"].as_i64()), (Some("Upserted"), Some(7)));
    assert_ne!(v2["@odata.etag"], etag1);
    assert!(v2["versionnumber"].as_u64() > v1["versionnumber"].as_u64());
    assert_eq!(v2["createdon"], v1["createdon"]);

    let stale = send(f.request(Method::PATCH, &path).header("If-Match", &etag1).json(&json!({"revenue": 8}))).await;
    assert_eq!((stale.status, stale.error_code()), (StatusCode::PRECONDITION_FAILED, codes::VERSION_MISMATCH));
    assert_eq!(f.dynamics.get("accounts", ID_1).unwrap()["revenue"], 7);

    let etag2 = v2["@odata.etag"].as_str().unwrap();
    let current = send(
        f.request(Method::PATCH, &path)
            .header("If-Match", etag2)
            .header("Prefer", "return=representation")
            .json(&json!({"revenue": 9})),
    )
    .await;
    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(current.body["revenue"], 9);

    let update_only = send(
        f.request(Method::PATCH, "accounts(00000000-0000-0000-0000-000000000002)")
            .header("If-Match", "*")
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!((update_only.status, update_only.error_code()), (StatusCode::NOT_FOUND, codes::OBJECT_NOT_FOUND));
    assert_eq!(f.dynamics.all("accounts").len(), 1);

    let create_only =
        send(f.request(Method::PATCH, &path).header("If-None-Match", "*").json(&json!({"name": "x"}))).await;
    assert_eq!(
        (create_only.status, create_only.error_code()),
        (StatusCode::PRECONDITION_FAILED, codes::DUPLICATE_RECORD)
    );
    let created_only = send(
        f.request(Method::PATCH, "accounts(00000000-0000-0000-0000-000000000003)")
            .header("If-None-Match", "*")
            .header("Prefer", "return=representation")
            .json(&json!({"name": "New"})),
    )
    .await;
    assert_eq!(created_only.status, StatusCode::CREATED);
    assert_eq!(created_only.body["accountid"], "00000000-0000-0000-0000-000000000003");

    let other_key =
        send(f.request(Method::PATCH, &path).json(&json!({"accountid": "00000000-0000-0000-0000-000000000009"}))).await;
    assert_eq!(other_key.error_code(), codes::INVALID_ARGUMENT);
}

#[tokio::test]
async fn alternate_keys_address_records() {
    let f = Fixture::start().await;
    let path = "accounts(accountnumber='A-1')";
    let created = send(f.request(Method::PATCH, path).json(&json!({"name": "First"}))).await;
    assert_eq!(created.status, StatusCode::NO_CONTENT);
    let updated = send(f.request(Method::PATCH, path).json(&json!({"name": "Second"}))).await;
    assert_eq!(updated.status, StatusCode::NO_CONTENT);
    let all = f.dynamics.all("accounts");
    assert_eq!(all.len(), 1, "the second PATCH updated the first record");
    assert_eq!((all[0]["name"].as_str(), all[0]["accountnumber"].as_str()), (Some("Second"), Some("A-1")));
    let read = f.get(path).await;
    assert_eq!(read.body["name"], "Second");
    let composite = f.get("accounts(accountnumber='A-1',name='second')").await;
    assert_eq!(composite.status, StatusCode::OK);
    let missing = f.get("accounts(accountnumber='B-2')").await;
    assert_eq!((missing.status, missing.error_code()), (StatusCode::NOT_FOUND, codes::OBJECT_NOT_FOUND));
}

#[tokio::test]
async fn delete_removes_records() {
    let f = Fixture::start().await;
    let id = f.dynamics.insert("accounts", json!({"name": "Doomed"}));
    let path = format!("accounts({id})");
    let stale = send(f.request(Method::DELETE, &path).header("If-Match", "W/\"12345\"")).await;
    assert_eq!(stale.error_code(), codes::VERSION_MISMATCH);
    let deleted = send(f.request(Method::DELETE, &path)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(f.dynamics.get("accounts", &id).is_none());
    let again = send(f.request(Method::DELETE, &path)).await;
    assert_eq!((again.status, again.error_code()), (StatusCode::NOT_FOUND, codes::OBJECT_NOT_FOUND));
}

#[tokio::test]
async fn odata_headers_are_required() {
    let f = Fixture::start().await;
    let without = |skip: &'static str| {
        let mut request = f.bare(Method::GET, "accounts").bearer_auth(&f.token);
        for (name, value) in [("OData-MaxVersion", "4.0"), ("OData-Version", "4.0"), ("Accept", "application/json")] {
            if name != skip {
                request = request.header(name, value);
            }
        }
        send(request)
    };
    for header in ["OData-MaxVersion", "OData-Version", "Accept"] {
        let answer = without(header).await;
        assert_eq!((answer.status, answer.error_code()), (StatusCode::BAD_REQUEST, codes::BAD_REQUEST), "{header}");
        assert!(answer.body["error"]["message"].as_str().unwrap().contains(header), "{}", answer.body);
    }
    let ok = without("none").await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_expired_tokens_get_401_with_a_bearer_challenge() {
    let f = Fixture::start().await;
    let anonymous = send(f.bare(Method::GET, "accounts").header("OData-MaxVersion", "4.0")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let challenge = anonymous.header("www-authenticate");
    assert!(challenge.starts_with("Bearer authorization_uri="), "{challenge}");
    assert!(challenge.contains(&f.oauth.authorize_url()));
    assert_eq!(anonymous.body, Value::Null);

    assert_eq!(f.get("accounts").await.status, StatusCode::OK);
    f.oauth.expire_access_tokens();
    assert_eq!(f.get("accounts").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn using_a_refreshed_access_token_confirms_rotation() {
    let oauth = OAuthServer::start(OAuthConfig::default().with_client("app", "s3cret")).await;
    let dynamics = DynamicsServer::start(&oauth).await;
    // Obtain a refresh token through the code flow.
    let redirect = "https://app.example/cb";
    let location = client()
        .get(oauth.authorize_url())
        .query(&[("response_type", "code"), ("client_id", "app"), ("redirect_uri", redirect)])
        .send()
        .await
        .unwrap()
        .headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let code = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let first: Value = client()
        .post(oauth.token_url())
        .basic_auth("app", Some("s3cret"))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", redirect)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let second: Value = client()
        .post(oauth.token_url())
        .basic_auth("app", Some("s3cret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", r1.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a2 = second["access_token"].as_str().unwrap();
    assert!(oauth.refresh_token_is_valid(&r1));

    let response = client()
        .get(format!("{}/WhoAmI", dynamics.api_url()))
        .bearer_auth(a2)
        .header("OData-MaxVersion", "4.0")
        .header("OData-Version", "4.0")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!oauth.refresh_token_is_valid(&r1), "a request with a2 retired r1");
}

#[tokio::test]
async fn throttle_next_answers_429_with_retry_after() {
    let f = Fixture::start().await;
    f.dynamics.throttle_next(2, 7);
    for _ in 0..2 {
        let answer = f.get("accounts").await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.header("retry-after"), "7");
        assert_eq!(answer.error_code(), codes::THROTTLED);
    }
    assert_eq!(f.get("accounts").await.status, StatusCode::OK);
}

#[tokio::test]
async fn requests_are_counted_per_method() {
    let f = Fixture::start().await;
    f.get("accounts").await;
    f.get("WhoAmI").await;
    send(f.request(Method::POST, "accounts").json(&json!({"name": "a"}))).await;
    send(f.bare(Method::DELETE, &format!("accounts({ID_1})"))).await;
    assert_eq!(f.dynamics.requests(), 4);
    assert_eq!(f.dynamics.requests_with_method("GET"), 2);
    assert_eq!(f.dynamics.requests_with_method("post"), 1);
    assert_eq!(f.dynamics.requests_with_method("DELETE"), 1);
    assert_eq!(f.dynamics.requests_with_method("PATCH"), 0);
}

#[tokio::test]
async fn who_am_i_names_the_caller() {
    let f = Fixture::start().await;
    let answer = f.get("WhoAmI").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body["@odata.context"],
        format!("{}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", f.dynamics.api_url())
    );
    for field in ["BusinessUnitId", "UserId", "OrganizationId"] {
        assert!(Uuid::try_parse(answer.body[field].as_str().unwrap()).is_ok(), "{field}");
    }
}

#[tokio::test]
async fn unsupported_and_malformed_requests() {
    let f = Fixture::start().await;
    for path in [
        "accounts?$skip=2",
        "accounts?$expand=primarycontactid",
        "accounts?$filter=name eq",
        "accounts?$top=x",
        "$metadata",
    ] {
        let answer = f.get(path).await;
        assert_eq!((answer.status, answer.error_code()), (StatusCode::BAD_REQUEST, codes::BAD_REQUEST), "{path}");
    }
    let put = send(f.request(Method::PUT, "accounts")).await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    let elsewhere = send(client().get(format!("{}/api/data/v9.1/accounts", f.dynamics.url()))).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn seeding_helpers() {
    let f = Fixture::start().await;
    let upper = ID_1.to_uppercase();
    let id = f.dynamics.insert("accounts", json!({"accountid": upper, "name": "One"}));
    assert_eq!(id, ID_1, "ids are stored lower-case");
    assert_eq!(f.dynamics.get("accounts", &upper).unwrap()["name"], "One");
    let replaced = f.dynamics.insert("accounts", json!({"accountid": ID_1, "name": "Uno"}));
    assert_eq!(replaced, ID_1);
    let other = f.dynamics.insert("accounts", json!({"name": "Two"}));
    let all = f.dynamics.all("accounts");
    assert_eq!(all.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), ["Uno", "Two"]);
    assert_eq!(all[1]["accountid"], other);
    assert!(f.dynamics.all("leads").is_empty());
    assert!(f.dynamics.get("accounts", "00000000-0000-0000-0000-0000000000ff").is_none());
}
