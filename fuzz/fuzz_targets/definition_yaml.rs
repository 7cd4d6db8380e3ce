//! An integration definition in YAML through the full loader and compiler
//! (`Engine::validate`): it must answer Ok or Err with diagnostics, never panic, hang or
//! overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    // Definitions arrive as text (the API and the CLI read UTF-8).
    let Ok(text) = std::str::from_utf8(data) else { return };
    let result = flowgate_engine::Engine::validate(text, flowgate_model::Format::Yaml);
    // FLOWGATE_FUZZ_VERBOSE=1: say whether each input is valid (to check seeds by hand).
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    if *VERBOSE.get_or_init(|| std::env::var_os("FLOWGATE_FUZZ_VERBOSE").is_some()) {
        match &result {
            Ok(_) => eprintln!("valid"),
            Err(diags) => eprintln!("invalid: {diags:?}"),
        }
    }
});
