//! PostgreSQL text cannot hold the NUL character; SQLite's can. Text that comes from data
//! (log messages, order and dedup keys, names, subjects) may hold one — a webhook body's
//! `"\u0000"` logged by a step — and binding it fails the whole statement: a commit that
//! always fails would wedge the execution (and every other one batched with it). Such text
//! is stored with U+FFFD in place of each NUL — by the PostgreSQL backend on every recording
//! path, and for names given to the API on both backends (one behaviour). JSON text is
//! unaffected: serde_json writes a
//! NUL inside a string as the escape `\u0000`, which is plain ASCII.

use crate::types::WriteBatch;
use std::borrow::Cow;

/// `text` with every NUL replaced by U+FFFD (borrowed when it has none).
pub(crate) fn scrub(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(text) }
}

fn scrub_in_place(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

fn scrub_opt(text: &mut Option<String>) {
    if let Some(t) = text {
        scrub_in_place(t);
    }
}

/// Every text field of a batch that is bound as is (not JSON), and the JSON ones too, in
/// case a writer ever hands over raw text.
fn texts(batch: &WriteBatch) -> impl Iterator<Item = &str> {
    let inserts = batch.inserts.iter().flat_map(|e| {
        [
            Some(e.trigger.as_str()),
            e.auth_label.as_deref(),
            e.order_key.as_deref(),
            e.dedup.as_ref().map(|d| d.key.as_str()),
        ]
    });
    let steps = batch.steps.iter().flat_map(|r| {
        [Some(r.step_id.as_str()), r.input.as_deref(), r.output.as_deref(), r.error.as_deref(), r.response.as_deref()]
    });
    let logs = batch.logs.iter().flat_map(|l| [Some(l.message.as_str()), l.step_id.as_deref()]);
    let finishes = batch
        .finishes
        .iter()
        .flat_map(|f| [f.output.as_deref(), f.response.as_deref(), f.error.as_deref(), f.failed_step.as_deref()]);
    let responses = batch.responses.iter().map(|r| Some(r.response.as_str()));
    let states = batch.states.iter().map(|s| Some(s.state.as_str()));
    let deliveries = batch.deliveries.iter().flat_map(|d| [Some(d.name.as_str()), Some(d.request.as_str())]);
    inserts.chain(steps).chain(logs).chain(finishes).chain(responses).chain(states).chain(deliveries).flatten()
}

/// Whether any text of `batch` holds a NUL (a fast scan; the usual answer is no).
/// `text` scrubbed where the backend refuses NUL (`scrub`), as it is otherwise.
pub(crate) fn clean(scrub: bool, text: &str) -> Cow<'_, str> {
    if scrub { self::scrub(text) } else { Cow::Borrowed(text) }
}

pub(crate) fn batch_has_nul(batch: &WriteBatch) -> bool {
    texts(batch).any(|t| t.as_bytes().contains(&0))
}

/// A copy of `batch` with every NUL in its texts replaced.
pub(crate) fn scrub_batch(batch: &WriteBatch) -> WriteBatch {
    let mut b = batch.clone();
    for e in &mut b.inserts {
        scrub_in_place(&mut e.trigger);
        scrub_opt(&mut e.auth_label);
        scrub_opt(&mut e.order_key);
        if let Some(d) = &mut e.dedup {
            scrub_in_place(&mut d.key);
        }
    }
    for r in &mut b.steps {
        scrub_in_place(&mut r.step_id);
        for t in [&mut r.input, &mut r.output, &mut r.error, &mut r.response] {
            scrub_opt(t);
        }
    }
    for l in &mut b.logs {
        scrub_in_place(&mut l.message);
        scrub_opt(&mut l.step_id);
    }
    for f in &mut b.finishes {
        for t in [&mut f.output, &mut f.response, &mut f.error, &mut f.failed_step] {
            scrub_opt(t);
        }
    }
    for r in &mut b.responses {
        scrub_in_place(&mut r.response);
    }
    for s in &mut b.states {
        scrub_in_place(&mut s.state);
    }
    for d in &mut b.deliveries {
        scrub_in_place(&mut d.name);
        scrub_in_place(&mut d.request);
    }
    b
}
