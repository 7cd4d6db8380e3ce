//! A received e-mail message through the SMTP crate's MIME parsing (`parse_message`):
//! Ok or Err, never a panic, hang or runaway memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = flowgate_smtp::parse_message(data);
});
