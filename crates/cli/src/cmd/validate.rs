//! `flowgate validate FILE`: checks a definition locally; prints every problem as
//! `file:line:column: path: message`.

use anyhow::Context;
use clap::Args as ClapArgs;
use flowgate_engine::Engine;
use flowgate_model::Format;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What to check.
#[derive(ClapArgs)]
pub struct Args {
    /// The definition file (YAML or JSON).
    file: PathBuf,
}

/// Reads a definition file and guesses its format from the extension or content.
pub fn read(file: &Path) -> anyhow::Result<(String, Format)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let format = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => Format::sniff(&text),
    };
    Ok((text, format))
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (text, format) = read(&a.file)?;
    match Engine::validate(&text, format) {
        Ok(draft) => {
            let d = &draft.definition;
            println!(
                "{}: valid: integration `{}` with {} flow{}",
                a.file.display(),
                d.integration,
                d.flows.len(),
                if d.flows.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                match (p.line, p.column) {
                    (Some(l), Some(c)) => eprintln!("{}:{l}:{c}: {}: {}", a.file.display(), p.path, p.message),
                    _ => eprintln!("{}: {}: {}", a.file.display(), p.path, p.message),
                }
            }
            eprintln!("{} problem{}", problems.len(), if problems.len() == 1 { "" } else { "s" });
            Ok(ExitCode::from(1))
        }
    }
}
