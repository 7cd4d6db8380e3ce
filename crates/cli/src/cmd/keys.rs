//! `flowgate keys generate`: a strong random key for a webhook's `apiKey` auth.

use clap::Subcommand;
use std::process::ExitCode;

/// Key commands.
#[derive(Subcommand)]
pub enum Command {
    /// Print a new random key (32 random bytes, base64url).
    Generate,
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Generate => println!("{}", flowgate_server::auth::new_key()),
    }
    Ok(ExitCode::SUCCESS)
}
