//! The poll trigger: an HTTP source fetched on a schedule. This module is its compiled spec
//! (the request, how items, their ids and cursor are read, pagination, the first run);
//! `run` is one poll, started by the leader's scheduler.

pub(crate) mod run;

use flowgate_expr::Template;
use flowgate_model::schedule::Schedule;
use flowgate_model::trigger::{DEFAULT_MAX_PAGES, DEFAULT_REMEMBER, FirstRun, PollTrigger};
use flowgate_model::{Diags, Path};
use std::sync::Arc;

/// A poll trigger.
pub struct PollSpec {
    /// When it polls.
    pub schedule: Schedule,
    /// The request (templates see `$config` and `$state`).
    pub request: flowgate_steps::http::Request,
    /// The list of items in one response.
    pub items: Arc<Template>,
    /// An item's identity.
    pub id: Option<Arc<Template>>,
    /// An item's growing value.
    pub cursor: Option<Arc<Template>>,
    /// How pages are followed.
    pub paginate: Option<PaginateSpec>,
    /// Most pages one poll fetches.
    pub max_pages: u32,
    /// What the first poll does with its items.
    pub first_run: FirstRun,
    /// Item ids remembered.
    pub remember: usize,
}

/// How a poll finds its next page.
pub enum PaginateSpec {
    /// A URL read from the response.
    NextUrl(Arc<Template>),
    /// The `Link` header's `rel="next"`.
    LinkHeader,
    /// A page-number query parameter, from `start`.
    Page {
        /// Parameter name.
        param: String,
        /// First page.
        start: u64,
    },
    /// An offset query parameter advanced by the items received, from `start`.
    Offset {
        /// Parameter name.
        param: String,
        /// First offset.
        start: u64,
    },
}

/// The compiled poll (found at `at`); none when a part of it did not compile (the problems
/// are recorded).
pub(crate) fn compile(p: &PollTrigger, at: &Path, diags: &mut Diags) -> Option<PollSpec> {
    let request = flowgate_steps::http::Request::compile(&p.request, &at.key("request"), diags);
    let items = flowgate_steps::util::expr(&p.items, &at.key("items"), diags);
    let id = p.id.as_deref().and_then(|src| flowgate_steps::util::expr(src, &at.key("id"), diags));
    let cursor = p.cursor.as_deref().and_then(|src| flowgate_steps::util::expr(src, &at.key("cursor"), diags));
    let paginate = p.paginate.as_ref().and_then(|pg| {
        if let Some(src) = &pg.next_url {
            flowgate_steps::util::expr(src, &at.key("paginate").key("nextUrl"), diags).map(PaginateSpec::NextUrl)
        } else if pg.link_header {
            Some(PaginateSpec::LinkHeader)
        } else if let Some(param) = &pg.page_param {
            Some(PaginateSpec::Page { param: param.clone(), start: pg.start.unwrap_or(1) })
        } else {
            pg.offset_param
                .as_ref()
                .map(|param| PaginateSpec::Offset { param: param.clone(), start: pg.start.unwrap_or(0) })
        }
    });
    match (p.schedule(), request, items) {
        (Some(schedule), Some(request), Some(items)) => Some(PollSpec {
            schedule,
            request,
            items,
            id,
            cursor,
            paginate,
            max_pages: p.paginate.as_ref().and_then(|pg| pg.max_pages).unwrap_or(DEFAULT_MAX_PAGES),
            first_run: p.first_run,
            remember: p.remember.unwrap_or(DEFAULT_REMEMBER) as usize,
        }),
        _ => None,
    }
}
