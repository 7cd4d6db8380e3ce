//! The OAuth fake's endpoints: the token endpoint (forms, client authentication, PKCE
//! checks, RFC 6749 errors) and the authorization endpoint (consent at once, redirects).

use super::*;

/// A PKCE code challenge (RFC 7636 §4.2).
pub(super) struct CodeChallenge {
    pub(super) challenge: String,
    pub(super) method: ChallengeMethod,
}

#[derive(Clone, Copy)]
pub(super) enum ChallengeMethod {
    Plain,
    S256,
}

impl CodeChallenge {
    /// RFC 7636 §4.6: the verifier must transform into the challenge.
    pub(super) fn verify(&self, verifier: Option<&str>) -> Result<(), TokenError> {
        let Some(verifier) = verifier else {
            return Err(TokenError::invalid_grant("code_verifier is required: the authorization used PKCE"));
        };
        // RFC 7636 §4.1: 43 to 128 unreserved characters.
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !well_formed {
            return Err(TokenError::invalid_grant("code_verifier must be 43 to 128 unreserved characters"));
        }
        let transformed = match self.method {
            ChallengeMethod::Plain => verifier.to_owned(),
            ChallengeMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        };
        if transformed != self.challenge {
            return Err(TokenError::invalid_grant("code_verifier does not match the code_challenge"));
        }
        Ok(())
    }
}

/// A parsed `application/x-www-form-urlencoded` body.
pub(super) struct Form(HashMap<String, String>);

impl Form {
    pub(super) fn parse(body: &[u8]) -> Result<Form, TokenError> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            // RFC 6749 §3.2: parameters must not be repeated.
            if params.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(TokenError::invalid_request(format!("parameter `{name}` is repeated")));
            }
        }
        Ok(Form(params))
    }

    /// A parameter; one sent without a value counts as absent (RFC 6749 §3.1).
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub(super) fn require(&self, name: &str) -> Result<&str, TokenError> {
        self.get(name).ok_or_else(|| TokenError::invalid_request(format!("parameter `{name}` is missing")))
    }
}

/// An error answer of the token endpoint (RFC 6749 §5.2).
#[derive(Debug)]
pub(super) struct TokenError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    pub(super) description: String,
}

impl TokenError {
    pub(super) fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> TokenError {
        TokenError { status, error, description: description.into() }
    }
    pub(super) fn invalid_request(description: impl Into<String>) -> TokenError {
        TokenError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
    pub(super) fn invalid_client(description: impl Into<String>) -> TokenError {
        TokenError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }
    pub(super) fn invalid_grant(description: impl Into<String>) -> TokenError {
        TokenError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }
    pub(super) fn unsupported_grant_type(description: impl Into<String>) -> TokenError {
        TokenError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", description)
    }
    pub(super) fn invalid_scope(description: impl Into<String>) -> TokenError {
        TokenError::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = token_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a 401 carries a challenge for the scheme the client can use.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"flowgate-fakes\""));
        }
        response
    }
}

/// A JSON answer of the token endpoint, never cached (RFC 6749 §5.1).
pub(super) fn token_response(status: StatusCode, body: &Value) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ];
    (status, headers, body.to_string()).into_response()
}

pub(super) async fn token_endpoint(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let grant_type =
        url::form_urlencoded::parse(&body).find(|(name, _)| name == "grant_type").map(|(_, value)| value.into_owned());
    let (delay, injected) = {
        let mut inner = shared.lock();
        inner.record_token_request(grant_type.as_deref());
        (inner.delay, inner.take_injected_failure())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = injected {
        let error = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            _ => "server_error",
        };
        return token_response(status, &json!({"error": error, "error_description": "failure injected by the fake"}));
    }
    let is_form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !is_form {
        return TokenError::invalid_request("the body must be application/x-www-form-urlencoded").into_response();
    }
    match Form::parse(&body).and_then(|form| shared.exchange(&headers, &form)) {
        Ok(answer) => {
            let answer_delay = {
                let mut inner = shared.lock();
                inner.tokens_issued += 1;
                inner.answer_delay
            };
            if !answer_delay.is_zero() {
                tokio::time::sleep(answer_delay).await;
            }
            token_response(StatusCode::OK, &answer)
        }
        Err(error) => error.into_response(),
    }
}

/// The authorization endpoint (RFC 6749 §4.1.1), consenting at once.
///
/// Errors about the client or `redirect_uri` answer 400 here, because the user agent must not
/// be sent to an unverified address; every other error is sent to the client in the redirect
/// (RFC 6749 §4.1.2.1).
pub(super) async fn authorize_endpoint(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let mut params: HashMap<String, String> = HashMap::new();
    let mut repeated = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if params.insert(name.to_string(), value.into_owned()).is_some() {
            repeated = Some(name.to_string());
        }
    }
    let param = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    let request = AuthorizeRequest {
        response_type: param("response_type"),
        client_id: param("client_id"),
        redirect_uri: param("redirect_uri"),
        scope: param("scope"),
        state: param("state"),
        code_challenge: param("code_challenge"),
        code_challenge_method: param("code_challenge_method"),
    };
    shared.lock().last_authorize = Some(request.clone());

    let bad_request = |description: String| {
        let body = json!({"error": "invalid_request", "error_description": description});
        (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    };
    if let Some(name) = repeated {
        return bad_request(format!("parameter `{name}` is repeated"));
    }
    let Some(client_id) = request.client_id.clone() else {
        return bad_request("parameter `client_id` is missing".into());
    };
    if shared.client_secret(&client_id).is_none() {
        return bad_request(format!("unknown client `{client_id}`"));
    }
    let Some(redirect_uri) = request.redirect_uri.clone() else {
        return bad_request("parameter `redirect_uri` is missing".into());
    };
    let redirect = match Url::parse(&redirect_uri) {
        Ok(url) if url.fragment().is_none() => url,
        _ => return bad_request("redirect_uri must be an absolute URI without a fragment".into()),
    };

    let state = request.state.clone();
    let redirect_error = |error: &str, description: &str| {
        let mut url = redirect.clone();
        url.query_pairs_mut().append_pair("error", error).append_pair("error_description", description);
        if let Some(state) = &state {
            url.query_pairs_mut().append_pair("state", state);
        }
        found(url)
    };
    match request.response_type.as_deref() {
        None => return redirect_error("invalid_request", "parameter `response_type` is missing"),
        Some("code") => {}
        Some(_) => return redirect_error("unsupported_response_type", "only response_type=code is supported"),
    }
    let challenge = match (request.code_challenge.clone(), request.code_challenge_method.as_deref()) {
        (None, None) => None,
        (None, Some(_)) => return redirect_error("invalid_request", "code_challenge_method without code_challenge"),
        // RFC 7636 §4.3: the method defaults to `plain`.
        (Some(challenge), None | Some("plain")) => Some(CodeChallenge { challenge, method: ChallengeMethod::Plain }),
        (Some(challenge), Some("S256")) => Some(CodeChallenge { challenge, method: ChallengeMethod::S256 }),
        (Some(_), Some(_)) => return redirect_error("invalid_request", "transform algorithm not supported"),
    };
    let scope = match shared.granted_scope(request.scope.as_deref()) {
        Ok(scope) => scope,
        Err(error) => return redirect_error(error.error, &error.description),
    };

    let code = new_token("ac");
    {
        let mut inner = shared.lock();
        let grant = inner.new_grant();
        let record = AuthorizationCode {
            client_id,
            redirect_uri,
            scope,
            challenge,
            issued_at: Instant::now(),
            expired: false,
            used: false,
            grant,
        };
        inner.codes.insert(code.clone(), record);
    }
    let mut url = redirect.clone();
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = &state {
        url.query_pairs_mut().append_pair("state", state);
    }
    if let Some(realm_id) = shared.realm_id() {
        url.query_pairs_mut().append_pair("realmId", realm_id);
    }
    found(url)
}

pub(super) fn found(location: Url) -> Response {
    let location = HeaderValue::from_str(location.as_str()).expect("a URL is a valid header value");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The token of an `Authorization: Bearer …` header (RFC 6750 §2.1), for the resource fakes.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `Authorization: Basic …` → (client_id, client_secret), each form-decoded (RFC 6749 §2.3.1).
pub(super) fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

pub(super) fn form_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&text.replace('+', " ")).decode_utf8().ok().map(|s| s.into_owned())
}

/// An opaque token with a prefix naming its kind (`at`, `rt`, `ac`), to make logs readable.
pub(super) fn new_token(kind: &str) -> String {
    format!("{kind}_{}", uuid::Uuid::new_v4().simple())
}
