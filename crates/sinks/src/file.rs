//! File delivery: one JSON line per record appended to a local file, for agents that tail it
//! (Filebeat, the Splunk forwarder…).
//!
//! The file and its directory are created when missing. When the path stops naming the file
//! being written — logrotate moved it away — the file is opened again, so records follow the
//! path rather than the old inode. A failed write drops its batch (counted) and reopens.

use crate::event::LogEvent;
use crate::task::{Ctx, Wake};
use std::io;
use std::path::{Path, PathBuf};
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

/// Records taken from the queue per write.
const BATCH: usize = 256;

/// Appends records to `path` until the sink stops.
pub(crate) async fn run(mut ctx: Ctx, path: PathBuf) {
    let mut file: Option<File> = None;
    let mut batch: Vec<LogEvent> = Vec::with_capacity(BATCH);
    let mut lines = Vec::new();
    loop {
        match ctx.receive(&mut batch, BATCH, None).await {
            Wake::Records => {}
            Wake::Due | Wake::Flush => continue,
            Wake::Closed => return,
            Wake::Abort => return ctx.abandon(0),
        }
        lines.clear();
        for event in &batch {
            if serde_json::to_writer(&mut lines, event).is_ok() {
                lines.push(b'\n');
            }
        }
        let result = tokio::select! {
            _ = ctx.aborted() => return ctx.abandon(batch.len()),
            r = append(&mut file, &path, &lines) => r,
        };
        match result {
            Ok(()) => ctx.shared.delivered(batch.len()),
            Err(e) => {
                let error = format!("writing {} failed: {e}", path.display());
                ctx.shared.failed_attempt(&error);
                ctx.shared.dropped(batch.len(), &error);
                file = None;
            }
        }
        batch.clear();
    }
}

async fn append(file: &mut Option<File>, path: &Path, lines: &[u8]) -> io::Result<()> {
    if let Some(open) = file
        && moved_away(open, path).await
    {
        *file = None;
    }
    let open = match file {
        Some(open) => open,
        None => file.insert(open(path).await?),
    };
    open.write_all(lines).await?;
    // tokio's File writes in the background; flushing waits for the write and its error.
    open.flush().await
}

/// Opens a log file for appending; new files and folders are the owner's only (0600, 0700):
/// they hold a tenant's execution records.
async fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        let mut builder = tokio::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(dir).await?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).await
}

/// Whether `path` no longer names `file` (renamed or deleted by log rotation).
#[cfg(unix)]
async fn moved_away(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata().await, tokio::fs::metadata(path).await) {
        (Ok(open), Ok(named)) => (open.dev(), open.ino()) != (named.dev(), named.ino()),
        _ => true,
    }
}

/// Without inode numbers rotation cannot be noticed; the file is kept.
#[cfg(not(unix))]
async fn moved_away(_file: &File, _path: &Path) -> bool {
    false
}
