//! The YAML editor: `/console/integrations/{slug}/edit` (the current version's source) and
//! `/console/integrations/new` (a starting template; the slug comes from the document's
//! `integration:` key). Validate lists every problem at its line and column and marks it in
//! the gutter; Apply stores a new version exactly as `PUT /v1/integrations/{slug}` does, and
//! on any problem stores nothing and keeps the text as typed.

use super::{json, read_form, seg, unavailable, wants_json};
use crate::Console;
use crate::layout::{self, Nav};
use crate::session::{self, Session};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use flowgate_engine::ApplyError;
use flowgate_model::{Diagnostic, Format};
use flowgate_store::PutOutcome;
use http::{HeaderMap, StatusCode};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a new integration starts from.
const TEMPLATE: &str = "\
integration: my-integration
name: My integration
flows:
  - flow: hello
    trigger: { manual: {} }
    steps:
      - id: greet
        transform: '{ hello: ($trigger.body.name // \"world\") }'
";

/// The editor's form.
#[derive(Deserialize)]
pub(crate) struct EditForm {
    csrf: Option<String>,
    #[serde(default)]
    source: String,
    #[serde(default)]
    action: String,
}

/// One problem, where it is.
#[derive(Serialize, Clone)]
pub(crate) struct Problem {
    line: Option<usize>,
    column: Option<usize>,
    path: String,
    message: String,
}

impl From<Diagnostic> for Problem {
    fn from(d: Diagnostic) -> Problem {
        Problem { line: d.line, column: d.column, path: d.path, message: d.message }
    }
}

fn problem(message: String) -> Problem {
    Problem { line: None, column: None, path: String::new(), message }
}

/// Which page: a new integration, or an existing one's.
#[derive(Clone, Copy)]
enum Target<'a> {
    New,
    Existing(&'a str),
}

impl Target<'_> {
    fn action(&self) -> String {
        match self {
            Target::New => "/console/integrations/new".to_owned(),
            Target::Existing(slug) => format!("/console/integrations/{}/edit", seg(slug)),
        }
    }
}

/// What the page says above the editor after an action.
enum Notice {
    Valid,
    Applied { slug: String, version: i64, created: bool },
    Failed(String),
}

struct View<'a> {
    target: Target<'a>,
    version: Option<i64>,
    source: &'a str,
    problems: &'a [Problem],
    notice: Option<Notice>,
}

/// `GET /console/integrations/new`.
pub(crate) async fn new_page(s: Session) -> Response {
    page(&s, StatusCode::OK, View { target: Target::New, version: None, source: TEMPLATE, problems: &[], notice: None })
}

/// `GET /console/integrations/{slug}/edit`.
pub(crate) async fn edit_page(State(c): State<Console>, s: Session, Path(slug): Path<String>) -> Response {
    match c.engine().integration(&s.tenant, &slug).await {
        Ok(Some(ci)) => page(
            &s,
            StatusCode::OK,
            View {
                target: Target::Existing(&slug),
                version: Some(ci.record.version),
                source: &ci.record.source,
                problems: &[],
                notice: None,
            },
        ),
        // Another tenant's integration is as absent as one that never existed.
        Ok(None) => layout::not_found("There is no such integration."),
        Err(e) => unavailable(&e, "cannot read an integration"),
    }
}

/// `POST /console/integrations/new`.
pub(crate) async fn new_submit(State(c): State<Console>, s: Session, headers: HeaderMap, body: Body) -> Response {
    submit(&c, &s, Target::New, &headers, body).await
}

/// `POST /console/integrations/{slug}/edit`.
pub(crate) async fn edit_submit(
    State(c): State<Console>,
    s: Session,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    submit(&c, &s, Target::Existing(&slug), &headers, body).await
}

async fn submit(c: &Console, s: &Session, target: Target<'_>, headers: &HeaderMap, body: Body) -> Response {
    let (form, _room): (EditForm, _) = match read_form(c, headers, body).await {
        Ok(f) => f,
        Err(refused) => return refused,
    };
    if let Some(refused) = session::check_csrf(s, form.csrf.as_deref()) {
        return refused;
    }
    // The integration being edited must be the tenant's.
    let version = match target {
        Target::New => None,
        Target::Existing(slug) => match c.engine().integration(&s.tenant, slug).await {
            Ok(Some(ci)) => Some(ci.record.version),
            Ok(None) => return layout::not_found("There is no such integration."),
            Err(e) => return unavailable(&e, "cannot read an integration"),
        },
    };
    let limit = c.host.max_body_bytes();
    let too_large = (form.source.len() > limit)
        .then(|| vec![problem(format!("the definition is larger than the API takes ({limit} bytes)"))]);
    match form.action.as_str() {
        "validate" => {
            let problems = match too_large {
                Some(p) => p,
                None => match validate(c, &s.tenant, target, &form.source).await {
                    Ok(p) => p,
                    Err(e) => return unavailable(&e, "cannot validate"),
                },
            };
            if wants_json(headers) {
                return json(StatusCode::OK, serde_json::json!({ "valid": problems.is_empty(), "problems": problems }));
            }
            let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
            let notice = problems.is_empty().then_some(Notice::Valid);
            page(s, status, View { target, version, source: &form.source, problems: &problems, notice })
        }
        "apply" => {
            let outcome = match too_large {
                Some(p) => Err(p),
                None => apply(c, &s.tenant, target, &form.source).await,
            };
            match outcome {
                Ok(Ok((slug, version, created, source))) => page(
                    s,
                    StatusCode::OK,
                    View {
                        target: Target::Existing(&slug),
                        version: Some(version),
                        source: &source,
                        problems: &[],
                        notice: Some(Notice::Applied { slug: slug.clone(), version, created }),
                    },
                ),
                // Nothing was applied: the text stays as typed.
                Ok(Err(message)) => page(
                    s,
                    StatusCode::CONFLICT,
                    View {
                        target,
                        version,
                        source: &form.source,
                        problems: &[],
                        notice: Some(Notice::Failed(message)),
                    },
                ),
                Err(problems) => page(
                    s,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    View {
                        target,
                        version,
                        source: &form.source,
                        problems: &problems,
                        notice: Some(Notice::Failed("Nothing was applied: fix the problems below.".into())),
                    },
                ),
            }
        }
        _ => layout::error_page(StatusCode::BAD_REQUEST, "Bad request", "Choose Validate or Apply."),
    }
}

/// The integration a document names (its `integration:` key) and where that is.
fn named(text: &str) -> Option<(String, Option<(usize, usize)>)> {
    let doc = flowgate_model::source::parse(text, Format::sniff(text)).ok()?;
    let slug = doc.value.get("integration")?.as_str()?.to_owned();
    let at = doc.locations.find(&flowgate_model::Path::root().key("integration")).map(|p| (p.line, p.column));
    Some((slug, at))
}

/// A document naming another integration than the page's is refused (as the API refuses one
/// sent to another slug's URL); on the new page, one naming an existing integration.
async fn wrong_slug(
    c: &Console,
    tenant: &str,
    target: Target<'_>,
    text: &str,
) -> Result<Option<Problem>, flowgate_store::Error> {
    let Some((slug, at)) = named(text) else { return Ok(None) };
    let located = |message: String| Problem {
        line: at.map(|a| a.0),
        column: at.map(|a| a.1),
        path: "integration".into(),
        message,
    };
    Ok(match target {
        Target::Existing(expected) if slug != expected => Some(located(format!(
            "the document defines integration `{slug}` but this page edits `{expected}`: expected `{expected}` (the URL's slug)"
        ))),
        Target::Existing(_) => None,
        Target::New => c.engine().integration(tenant, &slug).await?.map(|_| {
            located(format!(
                "integration `{slug}` exists already: edit it on its own page (/console/integrations/{slug}/edit)"
            ))
        }),
    })
}

/// Every problem Apply would find (the engine's own check), located, by line.
async fn validate(
    c: &Console,
    tenant: &str,
    target: Target<'_>,
    text: &str,
) -> Result<Vec<Problem>, flowgate_store::Error> {
    let mut problems: Vec<Problem> = wrong_slug(c, tenant, target, text).await?.into_iter().collect();
    match c.engine().check(tenant, text, Format::sniff(text)).await {
        Ok(_) => {}
        Err(ApplyError::Invalid(d)) => problems.extend(d.into_iter().map(Problem::from)),
        Err(ApplyError::Conflict(m)) => problems.push(problem(m)),
        Err(ApplyError::Store(e)) => return Err(e),
    }
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    Ok(problems)
}

/// Applies the document: `Ok(Ok((slug, version, created, stored source)))`, `Ok(Err(message))`
/// when the store refused it (a conflict, or no answer), `Err(problems)` when it is invalid.
/// Nothing is stored unless it is `Ok(Ok(…))`.
async fn apply(
    c: &Console,
    tenant: &str,
    target: Target<'_>,
    text: &str,
) -> Result<Result<(String, i64, bool, String), String>, Vec<Problem>> {
    match wrong_slug(c, tenant, target, text).await {
        Ok(Some(p)) => return Err(vec![p]),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "Console editor: cannot read an integration.");
            return Ok(Err("The database did not answer; nothing was applied. Try again.".into()));
        }
    }
    match c.engine().apply(tenant, text, Format::sniff(text)).await {
        Ok((outcome, ci)) => Ok(Ok((
            ci.record.slug.clone(),
            ci.record.version,
            matches!(outcome, PutOutcome::Created(_)),
            ci.record.source.clone(),
        ))),
        Err(ApplyError::Invalid(d)) => {
            let mut problems: Vec<Problem> = d.into_iter().map(Problem::from).collect();
            problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
            Err(problems)
        }
        Err(ApplyError::Conflict(m)) => Ok(Err(format!("Nothing was applied: {m}"))),
        Err(ApplyError::Store(e)) => {
            tracing::error!(error = %e, "Console editor: cannot apply.");
            Ok(Err("The database did not answer; nothing was applied. Try again.".into()))
        }
    }
}

/// "line 3, column 5" (or the path when the problem has no place in the text).
fn place(p: &Problem) -> String {
    match (p.line, p.column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}"),
        (Some(l), None) => format!("line {l}"),
        _ if !p.path.is_empty() => format!("at {}", p.path),
        _ => "the document".to_owned(),
    }
}

fn page(s: &Session, status: StatusCode, v: View<'_>) -> Response {
    let lines = v.source.split('\n').count().max(1);
    // Each line's problems, for the gutter's markers.
    let mut marks: BTreeMap<usize, Vec<&Problem>> = BTreeMap::new();
    for p in v.problems {
        if let Some(l) = p.line {
            marks.entry(l.min(lines)).or_default().push(p);
        }
    }
    let (title, heading) = match v.target {
        Target::New => ("New integration".to_owned(), html! { "New integration" }),
        Target::Existing(slug) => (format!("Edit {slug}"), html! { "Edit integration " span.id { (slug) } }),
    };
    let body = html! {
        p.crumbs {
            a href="/console/integrations" { "← Integrations" }
            @if let Target::Existing(slug) = v.target {
                " / " a href=(format!("/console/integrations/{}", seg(slug))) { (slug) }
            }
        }
        h1 { (heading) }
        @match v.version {
            Some(n) => p.sub { "Current version " (n) ". Apply stores the text below as a new version (unchanged text keeps it)." },
            None => p.sub { "Write the integration's definition; its " code { "integration:" } " key names it. Apply stores it as version 1." },
        }
        @if let Some(n) = &v.notice { (notice(n)) }
        form #editor-form.editor-form method="post" action=(v.target.action()) {
            input type="hidden" name="csrf" value=(s.csrf);
            label for="source" { "Definition (YAML)" }
            p #source-hint.sub { "Tab inserts two spaces; press Esc, then Tab, to leave the editor." }
            div #editor.editor {
                div #gutter.gutter {
                    @for n in 1..=lines {
                        @match marks.get(&n) {
                            Some(ps) => {
                                @let message = ps.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
                                div.ln.bad data-line=(n) {
                                    a.mark href="#source" data-line=(n) data-column=(ps[0].column.unwrap_or(1))
                                        title=(message) aria-label=(format!("Problem at line {n}: {message}")) { "✗" }
                                    span aria-hidden="true" { (n) }
                                }
                            }
                            None => div.ln data-line=(n) { span aria-hidden="true" { (n) } },
                        }
                    }
                }
                textarea #source name="source" rows=((lines + 1).max(12)) wrap="off" spellcheck="false" autocapitalize="off"
                    autocomplete="off" aria-describedby="source-hint problems-summary"
                    aria-invalid=[(!v.problems.is_empty()).then_some("true")] {
                    // A newline right after `<textarea>` is dropped by the parser: this one is,
                    // so a text starting with a blank line keeps it.
                    "\n" (v.source)
                }
            }
            div.actions.editor-actions {
                button type="submit" name="action" value="validate" #validate { "Validate" }
                button type="submit" name="action" value="apply" #apply { "Apply" }
                span #editor-status.sub role="status" aria-live="polite" {}
            }
        }
        section #problems.problems aria-labelledby="problems-title" {
            h2 #problems-title { "Problems" }
            p #problems-summary {
                @if v.problems.is_empty() { "None found yet: Validate checks the text without applying it." }
                @else { (v.problems.len()) @if v.problems.len() == 1 { " problem" } @else { " problems" } " found." }
            }
            ol #problem-list {
                @for p in v.problems {
                    li {
                        a.problem href="#source" data-line=[p.line] data-column=[p.column] { (place(p)) }
                        ": " span.message { (p.message) }
                        @if !p.path.is_empty() && p.line.is_some() { " " span.sub { "(" (p.path) ")" } }
                    }
                }
            }
        }
    };
    let page = layout::page(&title, Nav::Integrations, Some((&s.tenant, &s.csrf)), body);
    (status, Html(page.into_string())).into_response()
}

fn notice(n: &Notice) -> Markup {
    match n {
        Notice::Valid => html! {
            div #notice.notice.ok role="status" { span aria-hidden="true" { "✓ " } "Valid: no problems found. Nothing was applied yet." }
        },
        Notice::Applied { slug, version, created } => html! {
            div #notice.notice.ok role="status" {
                span aria-hidden="true" { "✓ " }
                @if *created { "Applied: " strong #applied-version { "version " (version) } " of " (slug) ". " }
                @else { "Unchanged: the text is version " strong #applied-version { (version) } "'s; nothing new was stored. " }
                a href=(format!("/console/integrations/{}", seg(slug))) { "Open the integration" }
            }
        },
        Notice::Failed(m) => html! {
            div #notice.notice.bad role="alert" { span aria-hidden="true" { "✗ " } (m) }
        },
    }
}
