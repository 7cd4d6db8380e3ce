//! The page chrome every console page shares (header, navigation, sign-out form) and small
//! pieces of markup used by several pages: status badges (a word and an icon, never colour
//! alone), times, durations, pretty JSON, error pages.

mod parts;

pub(crate) use parts::{duration, error_page, json_block, not_found, shown_once, status_badge, time};

use maud::{DOCTYPE, Markup, html};

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Dashboard,
    Executions,
    Integrations,
    Settings,
    /// The admin's tenants page: admin sessions only (their pages show this entry alone).
    Tenants,
    None,
}

/// A whole page. `csrf` is the session's token (for the sign-out form); `None` for pages
/// shown without a session.
pub(crate) fn page(title: &str, nav: Nav, session: Option<(&str, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Flowgate" }
                link rel="stylesheet" href=(crate::assets::CSS_PATH);
                script src=(crate::assets::JS_PATH) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/executions" { "Flowgate" }
                    @if let Some((tenant, csrf)) = session {
                        @if nav == Nav::Tenants { nav aria-label="Main" {
                            a href="/console/tenants" aria-current="page" { "Tenants" }
                        } } @else { nav aria-label="Main" {
                            a href="/console/dashboard" aria-current=[(nav == Nav::Dashboard).then_some("page")] { "Dashboard" }
                            a href="/console/executions" aria-current=[(nav == Nav::Executions).then_some("page")] { "Executions" }
                            a href="/console/integrations" aria-current=[(nav == Nav::Integrations).then_some("page")] { "Integrations" }
                            a href="/console/settings" aria-current=[(nav == Nav::Settings).then_some("page")] { "Settings" }
                        } }
                        form.signout method="post" action="/console/signout" {
                            input type="hidden" name="csrf" value=(csrf);
                            span.tenant title="Tenant" { (tenant) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}
