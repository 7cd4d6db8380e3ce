//! The HTTP side of the Dataverse fake: the resource a path names, query options, `Prefer`
//! and conditional headers, the OData headers every request must carry, and the handler.

use super::*;

/// What a URL segment names.
pub(super) enum Resource {
    WhoAmI,
    Set(String),
    Entity(String, Key),
}

/// How a single record is addressed.
pub(super) enum Key {
    /// `accounts(<guid>)`.
    Id(String),
    /// `accounts(accountnumber='A-1')` or `(k1='a',k2=2)`: alternate key columns and values.
    Alternate(Vec<(String, Value)>),
}

impl Resource {
    pub(super) fn parse(segment: &str) -> Result<Resource, String> {
        if segment == "WhoAmI" || segment == "WhoAmI()" {
            return Ok(Resource::WhoAmI);
        }
        let resource = match segment.split_once('(') {
            None => Resource::Set(segment.to_owned()),
            Some((set, rest)) => {
                let inner = rest.strip_suffix(')').ok_or_else(|| format!("malformed key in `{segment}`"))?;
                Resource::Entity(set.to_owned(), Key::parse(inner)?)
            }
        };
        let (Resource::Set(set) | Resource::Entity(set, _)) = &resource else { unreachable!() };
        filter::check_field(set).map_err(|_| format!("Resource not found for the segment '{segment}'."))?;
        Ok(resource)
    }
}

impl Key {
    pub(super) fn parse(text: &str) -> Result<Key, String> {
        if text.len() == 36
            && let Ok(id) = Uuid::try_parse(text)
        {
            return Ok(Key::Id(id.to_string()));
        }
        let mut pairs = Vec::new();
        let mut rest = text;
        loop {
            let (name, after) =
                rest.split_once('=').ok_or_else(|| format!("`{text}` is neither a GUID nor key=value"))?;
            filter::check_field(name.trim())?;
            let (value, after) = if let Some(quoted) = after.strip_prefix('\'') {
                // `''` escapes a quote inside a literal.
                let mut value = String::new();
                let mut chars = quoted.char_indices().peekable();
                let end = loop {
                    match chars.next() {
                        None => return Err(format!("unterminated literal in `{text}`")),
                        Some((_, '\'')) if chars.peek().map(|(_, c)| *c) == Some('\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some((at, '\'')) => break at + 1,
                        Some((_, c)) => value.push(c),
                    }
                };
                (Value::String(value), &quoted[end..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                let word = after[..end].trim();
                let value = match word {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => word.parse::<i64>().map(Value::from).map_err(|_| format!("`{word}` is not a key value"))?,
                };
                (value, &after[end..])
            };
            pairs.push((name.trim().to_owned(), value));
            match after.strip_prefix(',') {
                Some(next) => rest = next,
                None if after.trim().is_empty() => return Ok(Key::Alternate(pairs)),
                None => return Err(format!("unexpected `{after}` in `{text}`")),
            }
        }
    }
}

/// The system query options of a request.
#[derive(Default)]
pub(super) struct QueryOptions {
    pub(super) select: Option<Vec<String>>,
    pub(super) filter: Option<Filter>,
    pub(super) orderby: Vec<SortKey>,
    pub(super) top: Option<usize>,
    pub(super) count: bool,
    /// Rows to skip, from a `$skiptoken` this fake issued.
    pub(super) skip: usize,
}

impl QueryOptions {
    pub(super) fn parse(raw: &str) -> Result<QueryOptions, String> {
        let mut options = QueryOptions::default();
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            match name.as_ref() {
                "$select" => {
                    let columns: Vec<String> = value.split(',').map(|c| c.trim().to_owned()).collect();
                    for column in &columns {
                        filter::check_field(column)?;
                    }
                    options.select = Some(columns);
                }
                "$filter" => options.filter = Some(filter::parse_filter(&value)?),
                "$orderby" => options.orderby = filter::parse_orderby(&value)?,
                "$top" => {
                    options.top = Some(value.parse().map_err(|_| format!("$top must be a number, not `{value}`"))?)
                }
                "$count" => options.count = value.eq_ignore_ascii_case("true"),
                "$skiptoken" => options.skip = parse_skiptoken(&value)?,
                // Dataverse does not page with $skip; it says so.
                "$skip" => return Err("The query parameter $skip is not supported".into()),
                other if other.starts_with('$') => {
                    return Err(format!("The query parameter {other} is not supported by this fake"));
                }
                _ => {}
            }
        }
        Ok(options)
    }
}

pub(super) fn parse_skiptoken(cookie: &str) -> Result<usize, String> {
    let invalid = || format!("`{cookie}` is not a skip token this service issued");
    let start = cookie.find("skip=\"").ok_or_else(invalid)? + "skip=\"".len();
    let digits = &cookie[start..];
    let end = digits.find('"').ok_or_else(invalid)?;
    digits[..end].parse().map_err(|_| invalid())
}

/// `Prefer` header preferences the fake honors.
#[derive(Default)]
pub(super) struct Preferences {
    pub(super) max_page_size: Option<usize>,
    pub(super) return_representation: bool,
}

impl Preferences {
    pub(super) fn parse(headers: &HeaderMap) -> Preferences {
        let mut prefer = Preferences::default();
        let items = headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
        for item in items.map(str::trim) {
            if let Some(size) = item.strip_prefix("odata.maxpagesize=") {
                prefer.max_page_size = size.trim().parse().ok();
            } else if item == "return=representation" {
                prefer.return_representation = true;
            }
        }
        prefer
    }
}

/// `If-Match` / `If-None-Match`.
pub(super) struct Conditions {
    pub(super) if_match: Option<String>,
    pub(super) if_none_match: Option<String>,
}

impl Conditions {
    pub(super) fn parse(headers: &HeaderMap) -> Conditions {
        let get = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(|v| v.trim().to_owned());
        Conditions { if_match: get(header::IF_MATCH), if_none_match: get(header::IF_NONE_MATCH) }
    }
}

/// The headers Dataverse's documentation says every request carries.
pub(super) fn check_odata_headers(headers: &HeaderMap) -> Result<(), String> {
    let value = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_owned();
    for (name, spelled) in [(ODATA_MAX_VERSION, "OData-MaxVersion"), (ODATA_VERSION, "OData-Version")] {
        if value(&name) != "4.0" {
            return Err(format!(
                "header `{spelled}: 4.0` is required (this fake is stricter than Dataverse, to catch clients that omit it)"
            ));
        }
    }
    if !value(&header::ACCEPT).contains("application/json") {
        return Err(
            "header `Accept: application/json` is required (this fake is stricter than Dataverse, to catch clients that omit it)"
                .into(),
        );
    }
    Ok(())
}

pub(super) async fn api(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut inner = shared.lock();
        inner.requests += 1;
        *inner.requests_by_method.entry(method.as_str().to_owned()).or_default() += 1;
    }
    if !oauth::bearer_token(&headers).is_some_and(|token| shared.oauth.validate_access(token)) {
        return shared.unauthorized();
    }
    let throttled = {
        let mut inner = shared.lock();
        let throttle = inner.throttle;
        throttle.map(|(remaining, retry_after)| {
            inner.throttle = (remaining > 1).then_some((remaining - 1, retry_after));
            retry_after
        })
    };
    if let Some(retry_after) = throttled {
        let mut response = DvError::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::THROTTLED,
            "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
        )
        .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return response;
    }
    let mut response = handle(&shared, &method, &resource, query.as_deref().unwrap_or(""), &headers, &body)
        .unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(ODATA_VERSION, HeaderValue::from_static("4.0"));
    response
}

pub(super) fn handle(
    shared: &Shared,
    method: &Method,
    resource: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, DvError> {
    let bad_request = |message: String| DvError::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message);
    check_odata_headers(headers).map_err(bad_request)?;
    let resource = Resource::parse(resource).map_err(bad_request)?;
    let options = QueryOptions::parse(query).map_err(bad_request)?;
    let prefer = Preferences::parse(headers);
    let conditions = Conditions::parse(headers);
    match (method.clone(), &resource) {
        (Method::GET, Resource::WhoAmI) => Ok(shared.who_am_i()),
        (Method::GET, Resource::Set(set)) => Ok(shared.list(set, &options, &prefer, query)),
        (Method::POST, Resource::Set(set)) => shared.create(set, body, &options, &prefer),
        (Method::GET, Resource::Entity(set, key)) => shared.retrieve(set, key, &options, &conditions),
        (Method::PATCH, Resource::Entity(set, key)) => shared.upsert(set, key, body, &options, &prefer, &conditions),
        (Method::DELETE, Resource::Entity(set, key)) => shared.delete(set, key, &conditions),
        _ => Err(DvError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::BAD_REQUEST,
            format!("{method} is not supported on this resource"),
        )),
    }
}
