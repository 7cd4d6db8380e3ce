//! `flowgate schema`: the JSON Schema of the definition format, generated from the Rust types.

use std::process::ExitCode;

pub fn run() -> anyhow::Result<ExitCode> {
    let schema = flowgate_model::schema::<flowgate_steps::StepConfig>();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}
