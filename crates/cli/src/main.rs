//! The `flowgate` binary: runs the server (`serve`), talks to one (`apply`, `flows`,
//! `executions`, `tokens`), and works on definitions locally (`validate`, `run`, `schema`, `keys`).
//!
//! Exit codes: 0 ok, 1 ran but failed (invalid definition, failed execution, API error),
//! 2 usage or configuration error.

mod client;
mod cmd;

// Request handling allocates many small, short-lived objects across threads; mimalloc
// handles that pattern with far less contention than the system allocator. The wrapper
// measures what each expression evaluation holds, for its memory budget (flowgate-expr).
#[global_allocator]
static ALLOCATOR: flowgate_expr::memory::Metered<mimalloc::MiMalloc> =
    flowgate_expr::memory::Metered(mimalloc::MiMalloc);

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Flowgate: a self-hosted integration engine.
#[derive(Parser)]
#[command(name = "flowgate", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite in the data directory).
    Serve(Box<cmd::serve::Args>),
    /// Apply an integration definition (YAML or JSON) to a server.
    Apply(cmd::apply::Args),
    /// Check a definition locally and list every problem with its location.
    Validate(cmd::validate::Args),
    /// Run a flow locally, without a server, and print each step's input and output.
    Run(cmd::run::Args),
    /// Run a definition's test cases (`tests:`) locally, without a server.
    Test(cmd::test::Args),
    /// Print the JSON Schema of the definition format.
    Schema,
    /// List, show or delete integrations on a server.
    #[command(subcommand)]
    Integrations(cmd::integrations::Command),
    /// Show, set config values of, or undeploy an integration's deployment.
    #[command(subcommand)]
    Deployment(cmd::deployment::Command),
    /// List, show, diff, dry-run or roll back an integration's versions.
    #[command(subcommand)]
    Versions(cmd::deployment::Versions),
    /// Create or list tenants (with the server's admin token).
    #[command(subcommand)]
    Tenants(cmd::tenants::Command),
    /// Show, run, switch on or off a flow on a server; read or reset a poll's state.
    #[command(subcommand)]
    Flows(cmd::flows::Command),
    /// List, inspect, retry, replay or cancel executions on a server.
    #[command(subcommand)]
    Executions(cmd::executions::Command),
    /// An integration's connections: status, authorize (prints the provider URL), test.
    #[command(subcommand)]
    Connections(cmd::connections::Command),
    /// Create, list or revoke API tokens on a server.
    #[command(subcommand)]
    Tokens(cmd::tokens::Command),
    /// Webhook API keys.
    #[command(subcommand)]
    Keys(cmd::keys::Command),
    /// Inspect or resend outbound deliveries (webhooks, e-mails).
    #[command(subcommand)]
    Deliveries(cmd::outbound::Deliveries),
    /// List, set or delete the tenant's log sources (syslog, HTTP, file).
    #[command(subcommand, name = "log-sources")]
    LogSources(cmd::outbound::LogSources),
    /// Show, set or unset the tenant's own SMTP server.
    #[command(subcommand)]
    Smtp(cmd::outbound::Smtp),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("FLOWGATE_RUNTIME_THREADS").ok().and_then(|v| v.parse().ok()) {
        builder.worker_threads(n);
    }
    let runtime = builder
        .enable_all()
        // Deeply nested values are converted, compared and dropped recursively, and
        // expressions run inline here: leave room (flowgate-expr needs 8 MiB free, else it
        // moves to a fresh stack). Only the pages touched are ever committed.
        .thread_stack_size(16 * 1024 * 1024)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(a) => cmd::serve::run(*a).await,
            Command::Apply(a) => cmd::apply::run(a).await,
            Command::Validate(a) => cmd::validate::run(a).await,
            Command::Run(a) => cmd::run::run(a).await,
            Command::Schema => cmd::schema::run(),
            Command::Test(a) => cmd::test::run(a).await,
            Command::Integrations(c) => cmd::integrations::run(c).await,
            Command::Deployment(c) => cmd::deployment::run(c).await,
            Command::Versions(c) => cmd::deployment::versions(c).await,
            Command::Tenants(c) => cmd::tenants::run(c).await,
            Command::Flows(c) => cmd::flows::run(c).await,
            Command::Executions(c) => cmd::executions::run(c).await,
            Command::Connections(c) => cmd::connections::run(c).await,
            Command::Tokens(c) => cmd::tokens::run(c).await,
            Command::Keys(c) => cmd::keys::run(c).await,
            Command::Deliveries(c) => cmd::outbound::deliveries(c).await,
            Command::LogSources(c) => cmd::outbound::log_sources(c).await,
            Command::Smtp(c) => cmd::outbound::smtp(c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (clashing ids, bad conflicts),
    /// which otherwise only fire when that subcommand is run.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
