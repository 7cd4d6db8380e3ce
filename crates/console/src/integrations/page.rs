//! One integration, `/console/integrations/{slug}`: its name, description and current
//! version; its flows; the deployment form; its connections with Test / Authorize; its
//! versions with a diff and Rollback; and its `tests:` with Run tests. The buttons' answers
//! (a refused form, test results, a connection test) are shown in this same page, passed in
//! as [`Extra`].

use super::deploy::{self, Refused};
use super::path_part;
use crate::Console;
use crate::layout::{self, Nav};
use crate::session::Session;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use flowgate_engine::CompiledIntegration;
use flowgate_engine::connections::ConnectionStatus;
use flowgate_engine::testing::TestReport;
use flowgate_model::Diagnostic;
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

/// A connection's test: its name, and its status or (code, message).
pub(crate) type ConnectionTest = (String, Result<ConnectionStatus, (String, String)>);

/// What a button's answer adds to the page.
#[derive(Default)]
pub(crate) struct Extra {
    /// The deployment form, refused.
    pub(crate) refused: Option<Refused>,
    /// The test run's report, or why the tests could not run.
    pub(crate) tests: Option<Result<TestReport, Vec<Diagnostic>>>,
    /// A connection's test: its name, and its status or (code, message).
    pub(crate) connection: Option<ConnectionTest>,
}

/// `?saved=1`, `?rolledback=N&version=M` after a redirect.
#[derive(Deserialize, Default)]
pub(crate) struct Notice {
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    rolledback: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

/// `GET /console/integrations/{slug}`.
pub(crate) async fn get(
    State(c): State<Console>,
    s: Session,
    Path(slug): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let mut notice = None;
    if n.saved.is_some() {
        notice = Some("Deployment saved.".to_owned());
    }
    if let Some(from) = n.rolledback.as_deref().and_then(|v| v.parse::<i64>().ok()) {
        let to = n.version.as_deref().and_then(|v| v.parse::<i64>().ok());
        notice = Some(match to {
            Some(to) => format!("Rolled back: version {from}'s source was applied again as version {to}."),
            None => format!("Rolled back to version {from}: it was already the current source."),
        });
    }
    match render(&c, &s, &slug, Extra::default(), notice.as_deref()).await {
        Ok(Some(m)) => Html(m.into_string()).into_response(),
        Ok(None) => layout::not_found("There is no such integration."),
        Err(e) => store_failed(e),
    }
}

/// The page with a button's answer, with `status`.
pub(crate) async fn respond(c: &Console, s: &Session, slug: &str, extra: Extra, status: StatusCode) -> Response {
    match render(c, s, slug, extra, None).await {
        Ok(Some(m)) => (status, Html(m.into_string())).into_response(),
        Ok(None) => layout::not_found("There is no such integration."),
        Err(e) => store_failed(e),
    }
}

/// The answer when the store failed.
pub(crate) fn store_failed(e: flowgate_store::Error) -> Response {
    tracing::error!(error = %e, "Console: the store failed on an integration page.");
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The database did not answer; try again.")
}

async fn render(
    c: &Console,
    s: &Session,
    slug: &str,
    extra: Extra,
    notice: Option<&str>,
) -> Result<Option<Markup>, flowgate_store::Error> {
    let engine = c.engine();
    let Some(ci) = engine.integration(&s.tenant, slug).await? else { return Ok(None) };
    let view = match engine.deployment_view(&s.tenant, slug).await {
        Ok(v) => v,
        Err(flowgate_engine::deploy::DeployError::NotFound) => return Ok(None),
        Err(flowgate_engine::deploy::DeployError::Store(e)) => return Err(e),
        Err(e) => return Err(flowgate_store::Error::Config(e.to_string())),
    };
    let store = engine.store();
    let (versions, connections) =
        tokio::try_join!(store.versions(&s.tenant, slug), engine.connections(&s.tenant, slug))?;
    let connections = connections.unwrap_or_default();
    let title = ci.definition.name.clone().unwrap_or_else(|| slug.to_owned());
    let base = format!("/console/integrations/{}", path_part(slug));
    let body = html! {
        p.crumbs { a href="/console/integrations" { "← Integrations" } }
        h1 { (title) " " span.sub { code { (slug) } } }
        @if let Some(n) = notice { p.notice role="status" #notice { span aria-hidden="true" { "✓ " } (n) } }
        dl.summary {
            @if let Some(d) = &ci.definition.description { dt { "Description" } dd #description { (d) } }
            dt { "Current version" } dd #current-version { (ci.record.version) " " span.sub { "(" (layout::time(ci.record.created_at)) ")" } }
            dt { "Deployment" } dd #deployment-state { (live_badge(&ci)) @if !ci.missing.is_empty() { " " span.sub { "required values not set: " (ci.missing.join(", ")) } } }
        }
        div.actions { a.button href=(format!("{base}/edit")) { "Edit" } }

        section #flows aria-labelledby="flows-h" {
            h2 #flows-h { "Flows" }
            div.scroll { table.list {
                caption.sr-only { "Flows" }
                thead { tr { th scope="col" { "Flow" } th scope="col" { "Trigger" } th scope="col" { "State" } } }
                tbody {
                    @for f in ci.flows.values() {
                        tr {
                            td data-label="Flow" {
                                a href=(format!("{base}/flows/{}", path_part(&f.slug))) { (f.slug) }
                                @if let Some(n) = &f.name { div.sub { (n) } }
                            }
                            td data-label="Trigger" { (f.trigger.kind()) }
                            td data-label="State" { (flow_state(&ci, engine.is_active(f))) }
                        }
                    }
                }
            } }
        }

        section #deployment aria-labelledby="deployment-h" {
            h2 #deployment-h { "Deployment" }
            p.sub { "The same as " code { "PUT /v1/integrations/" (slug) "/deployment" } ": saving sets these values and deploys; the integration is live once every required value is set." }
            (deploy::form(&ci, &view, extra.refused.as_ref(), &s.csrf))
        }

        section #connections aria-labelledby="connections-h" {
            h2 #connections-h { "Connections" }
            @if connections.is_empty() { p.empty { "This integration declares no connections." } }
            @else { (connections_table(&base, &connections, extra.connection.as_ref(), &s.csrf)) }
        }

        section #versions aria-labelledby="versions-h" {
            h2 #versions-h { "Versions" }
            (versions_section(&base, &ci, &versions, &s.csrf))
        }

        section #tests aria-labelledby="tests-h" {
            h2 #tests-h { "Tests" }
            (tests_section(&base, &ci, extra.tests.as_ref(), &s.csrf))
        }
    };
    Ok(Some(layout::page(&title, Nav::Integrations, Some((&s.tenant, &s.csrf)), body)))
}

/// Live or not, in words and an icon.
pub(crate) fn live_badge(ci: &CompiledIntegration) -> Markup {
    if ci.live() {
        html! { span.badge.st-succeeded { span.icon aria-hidden="true" { "●" } " live" } }
    } else if !ci.deployed {
        html! { span.badge.st-other { span.icon aria-hidden="true" { "○" } " not live (undeployed)" } }
    } else {
        html! { span.badge.st-other { span.icon aria-hidden="true" { "○" } " not live" } }
    }
}

fn flow_state(ci: &CompiledIntegration, active: bool) -> Markup {
    match (ci.live(), active) {
        (true, true) => html! { span.badge.st-succeeded { span.icon aria-hidden="true" { "●" } " live" } },
        (true, false) => html! { span.badge.st-other { span.icon aria-hidden="true" { "⏻" } " switched off" } },
        _ => html! { span.badge.st-other { span.icon aria-hidden="true" { "○" } " not live" } },
    }
}

fn conn_badge(status: &str) -> Markup {
    let (class, icon) = match status {
        "active" => ("st-succeeded", "✓"),
        "new" => ("st-waiting", "…"),
        "needs_reconnect" | "error" => ("st-failed", "✗"),
        _ => ("st-other", "•"),
    };
    html! { span class=(format!("badge {class}")) { span.icon aria-hidden="true" { (icon) } " " (status) } }
}

fn connections_table(base: &str, all: &[ConnectionStatus], tested: Option<&ConnectionTest>, csrf: &str) -> Markup {
    html! {
        @if let Some((name, outcome)) = tested {
            @match outcome {
                Ok(st) => div.outcome.ok #connection-result role="status" {
                    strong { span aria-hidden="true" { "✓ " } "Test of " code { (name) } " passed" } ": " (conn_badge(&st.status))
                    @if let Some(t) = st.tested { " — " (t) }
                    @if let Some(m) = &st.message { " — " (m) }
                },
                Err((code, message)) => div.outcome.bad #connection-result role="alert" {
                    strong { span aria-hidden="true" { "✗ " } "Test of " code { (name) } " failed" } ": " code { (code) } " " (message)
                },
            }
        }
        div.scroll { table.list #connection-list {
            caption.sr-only { "Connections" }
            thead { tr { th scope="col" { "Connection" } th scope="col" { "Kind" } th scope="col" { "Status" } th scope="col" { "Actions" } } }
            tbody {
                @for cn in all {
                    tr data-connection=(cn.name) {
                        td data-label="Connection" { code { (cn.name) } }
                        td data-label="Kind" { (cn.kind) @if let Some(g) = cn.grant { div.sub { (g) } } }
                        td data-label="Status" {
                            (conn_badge(&cn.status))
                            @if let Some(m) = &cn.message { div.sub { (m) } }
                            @if let Some(e) = &cn.expires_at { div.sub { "token expires " (e) } }
                        }
                        td data-label="Actions" {
                            div.actions {
                                form.action method="post" action=(format!("{base}/connections/{}/test", path_part(&cn.name))) {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" aria-label=(format!("Test {}", cn.name)) { "Test" }
                                }
                                @if cn.grant == Some("authorization_code") {
                                    form.action method="post" action=(format!("{base}/connections/{}/authorize", path_part(&cn.name))) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" aria-label=(format!("Authorize {}", cn.name)) { "Authorize" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

fn versions_section(
    base: &str,
    ci: &CompiledIntegration,
    versions: &[flowgate_store::VersionRecord],
    csrf: &str,
) -> Markup {
    let current = ci.record.version;
    let previous = versions.iter().map(|v| v.version).filter(|&v| v < current).max();
    html! {
        @if versions.len() > 1 {
            form.filters #diff-form method="get" action=(format!("{base}/diff")) aria-label="Compare versions" {
                div.field {
                    label for="diff-from" { "From version" }
                    select #diff-from name="from" {
                        @for v in versions { option value=(v.version) selected[Some(v.version) == previous] { (v.version) } }
                    }
                }
                div.field {
                    label for="diff-to" { "To version" }
                    select #diff-to name="to" {
                        @for v in versions { option value=(v.version) selected[v.version == current] { (v.version) } }
                    }
                }
                div.field.actions { button type="submit" { "Show diff" } }
            }
        }
        p.sub { "Rollback applies a version's source again as a new version (the history is kept), as "
            code { "POST /v1/integrations/" (ci.record.slug) "/versions/{n}/rollback" } " does; its deployment values stay." }
        div.scroll { table.list #version-list {
            caption.sr-only { "Versions, newest first" }
            thead { tr { th scope="col" { "Version" } th scope="col" { "Created (UTC)" } th scope="col" { "Hash" } th scope="col" { "Actions" } } }
            tbody {
                @for v in versions {
                    tr data-version=(v.version) {
                        td data-label="Version" { (v.version) @if v.id == ci.record.id { " " span.badge.st-succeeded { span.icon aria-hidden="true" { "●" } " current" } } }
                        td data-label="Created" { (layout::time(v.created_at)) }
                        td data-label="Hash" { code { (v.hash.chars().take(12).collect::<String>()) } }
                        td data-label="Actions" {
                            div.actions {
                                @if v.id != ci.record.id {
                                    a href=(format!("{base}/diff?from={}&to={}", v.version, current)) { "Diff with current" }
                                    form.action method="post" action=(format!("{base}/versions/{}/rollback", v.version)) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" aria-label=(format!("Roll back to version {}", v.version)) { "Rollback" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

fn pass_badge(passed: bool) -> Markup {
    if passed {
        html! { span.badge.st-succeeded { span.icon aria-hidden="true" { "✓" } " pass" } }
    } else {
        html! { span.badge.st-failed { span.icon aria-hidden="true" { "✗" } " fail" } }
    }
}

fn tests_section(
    base: &str,
    ci: &CompiledIntegration,
    outcome: Option<&Result<TestReport, Vec<Diagnostic>>>,
    csrf: &str,
) -> Markup {
    let tests = &ci.definition.tests;
    html! {
        @if tests.is_empty() {
            p.empty { "This integration declares no tests (a " code { "tests:" } " section)." }
        } @else {
            p.sub { (tests.len()) " test" @if tests.len() != 1 { "s" } ", run as " code { "flowgate test" } " runs them: on a throwaway engine with this deployment's values; mocked steps are not run and nothing is recorded." }
            form.action #run-tests method="post" action=(format!("{base}/test")) {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Run tests" }
            }
        }
        @match outcome {
            None => {},
            Some(Err(problems)) => div.outcome.bad #test-results role="alert" {
                p { strong { "The tests could not run:" } }
                ul { @for p in problems { li { (p.to_string()) } } }
            },
            Some(Ok(report)) => div #test-results role="status" {
                p.summary {
                    (pass_badge(report.passed)) " "
                    (report.results.iter().filter(|r| r.passed).count()) " passed, "
                    (report.results.iter().filter(|r| !r.passed).count()) " failed"
                    @if !report.missing.is_empty() { " " span.sub { "(ran without required values: " (report.missing.join(", ")) ")" } }
                }
                @if report.results.is_empty() { p.empty { "No test ran." } }
                ol.test-results {
                    @for r in &report.results {
                        li.test-result data-passed=(r.passed) {
                            div {
                                (pass_badge(r.passed)) " " strong { (r.name) }
                                span.sub { " flow " code { (r.flow) } ", ended " (r.status) ", " (layout::duration(r.duration_ms as i64)) }
                            }
                            @if !r.failures.is_empty() {
                                ul.failures {
                                    @for f in &r.failures {
                                        li {
                                            code { (f.path) } ": " span.failure-message { (f.message) }
                                            details { summary { "Expected and actual" }
                                                p.sub { "Expected" } (layout::json_block(&f.expected.to_string()))
                                                p.sub { "Actual" } (layout::json_block(&f.actual.to_string()))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        }
    }
}
