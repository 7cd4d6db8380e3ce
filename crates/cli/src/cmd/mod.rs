//! One file per subcommand, each with `Args` and `run`.

pub mod apply;
pub mod connections;
pub mod deployment;
pub mod dry_run;
pub mod executions;
pub mod flows;
pub mod integrations;
pub mod keys;
pub mod outbound;
pub mod run;
pub mod schema;
pub mod serve;
pub mod tenants;
pub mod test;
pub mod tokens;
pub mod validate;
