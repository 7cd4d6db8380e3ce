//! `flowgate keys generate`: a strong random key for a webhook's `apiKey` auth.
//! `flowgate keys rotate-master`: a new master key, every secret at rest re-sealed with it.

use anyhow::Context;
use clap::Subcommand;
use flowgate_secrets::{KeySource, MasterKey, Sealer};
use std::path::PathBuf;
use std::process::ExitCode;

/// Key commands.
#[derive(Subcommand)]
pub enum Command {
    /// Print a new random key (32 random bytes, base64url).
    Generate,
    /// Rotate the master key: re-seal every secret (config values, literal credentials) with a
    /// new key in one transaction. Stop the server first (on PostgreSQL: every node), then
    /// restart them with the new key.
    RotateMaster {
        /// Data directory (holds master.key unless FLOWGATE_MASTER_KEY is set).
        #[arg(long, env = "FLOWGATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Database URL (default: SQLite in the data directory).
        #[arg(long, env = "FLOWGATE_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// The current master key, when it is not in the data directory.
        #[arg(long, env = "FLOWGATE_MASTER_KEY", hide_env_values = true)]
        master_key: Option<String>,
    },
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Generate => println!("{}", flowgate_server::auth::new_key()),
        Command::RotateMaster { data_dir, database, master_key } => {
            return rotate(data_dir, database, master_key).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate(data_dir: PathBuf, database: Option<String>, master_key: Option<String>) -> anyhow::Result<ExitCode> {
    // The data directory's lock keeps a running server (SQLite's only user) out.
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join("flowgate.lock"))
        .context("cannot open the data directory's lock file")?;
    if lock.try_lock().is_err() {
        eprintln!("error: a Flowgate server is running on {}: stop it first", data_dir.display());
        return Ok(ExitCode::from(2));
    }
    let (old, source) = MasterKey::load(master_key.as_deref(), &data_dir).context("the current master key")?;
    let new = MasterKey::generate();
    let settings = flowgate_server::Settings { data_dir: data_dir.clone(), database, ..Default::default() };
    let store = flowgate_server::open_store(&settings).await?;
    let recorded = store.setting(flowgate_server::MASTER_KEY_SETTING).await?;
    if recorded.as_deref().is_some_and(|r| r != old.fingerprint()) {
        eprintln!(
            "error: the database's secrets are sealed with key {}, not with this key ({})",
            recorded.unwrap_or_default(),
            old.fingerprint()
        );
        return Ok(ExitCode::from(2));
    }
    let file = matches!(source, KeySource::File { .. });
    let next = data_dir.join("master.key.next");
    if file {
        // Written before the database changes: a crash in between leaves both keys on disk,
        // and the server opens values sealed with either.
        flowgate_server::write_private(&next, &new.encode()).context("cannot write master.key.next")?;
    }
    let sealer = Sealer::new(new.clone()).with_previous(vec![old.clone()]);
    let n = store.reseal_all(&|item| flowgate_engine::deploy::reseal_item(&sealer, item)).await?;
    store.put_setting(flowgate_server::MASTER_KEY_SETTING, &new.fingerprint()).await?;
    store.close().await;
    if file {
        let current = data_dir.join(flowgate_secrets::KEY_FILE);
        std::fs::rename(&current, data_dir.join("master.key.old")).context("cannot keep the old key")?;
        std::fs::rename(&next, &current).context("cannot install the new key")?;
        println!(
            "Re-sealed {n} stored secret set{} with master key {} (was {}).\nThe old key is in {}: delete it once no backup needs it.",
            if n == 1 { "" } else { "s" },
            new.fingerprint(),
            old.fingerprint(),
            data_dir.join("master.key.old").display()
        );
    } else {
        println!(
            "Re-sealed {n} stored secret set{} with a new master key ({}). Start every node with:\n\n    FLOWGATE_MASTER_KEY={}\n",
            if n == 1 { "" } else { "s" },
            new.fingerprint(),
            new.encode()
        );
    }
    Ok(ExitCode::SUCCESS)
}
