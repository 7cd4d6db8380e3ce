//! A webhook body by its content type: first line = the `Content-Type` header, the rest =
//! the body bytes.
//!
//! * `hooks::parse_body` answers Ok or Err, never panics.
//! * A JSON body that ingress accepts without building a tree (`hooks::json_body`) is
//!   spliced as received into the event's JSON text: when the body parses on its own, that
//!   text must parse again, as the worker reads it (`serde_json::from_str`, in `executor/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // Header values reach the handler as text; non-UTF-8 ones are read lossily.
    let content_type = String::from_utf8_lossy(head);
    let parsed = flowgate_server::hooks::parse_body(&content_type, body);

    // What ingress accepts as JSON without building a tree.
    let Ok(Some(text)) = flowgate_server::hooks::json_body(&content_type, body) else { return };
    // A body accepted here whose tree cannot be built (a number out of range) is failed by
    // the worker on purpose (`invalid_event`); only bodies that do parse on their own count.
    if parsed.is_err() {
        return;
    }
    let event = format!("{{\"method\":\"POST\",\"headers\":{{}},\"body\":{text},\"receivedAt\":\"x\"}}");
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&event) {
        panic!("an accepted JSON body does not parse back once spliced into the event: {e}");
    }
});
