//! Sources: where records enter Quill. Each source reads its input, makes [`crate::record::Record`]s
//! and appends them to the journal, carrying its resume position where it has one.
//!
//! - [`file`]: tails files matched by globs (a dedicated thread; file I/O never on the reactor).
//! - [`syslog`]: syslog over UDP, TCP and unix datagram sockets (async tasks).
//! - [`forward`]: batches from agents over the forward protocol (async tasks; aggregators).
//!
//! A source may touch only its own input and the journal's append side.

pub mod file;
pub mod forward;
pub mod syslog;

use crate::config::SourceConfig;
use crate::pipeline::SourceContext;

/// A running source: an async task or a dedicated thread.
pub enum SourceTask {
    Async(tokio::task::JoinHandle<Result<(), String>>),
    Thread(std::thread::JoinHandle<Result<(), String>>),
}

impl SourceTask {
    /// Waits for the source to finish (after shutdown was triggered).
    pub fn join(self, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
        match self {
            SourceTask::Async(h) => runtime
                .block_on(h)
                .unwrap_or_else(|e| Err(format!("source task failed: {e}"))),
            SourceTask::Thread(h) => h
                .join()
                .unwrap_or_else(|_| Err("source thread panicked".to_string())),
        }
    }
}

/// Starts the source described by `config`.
pub fn start(
    config: &SourceConfig,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<SourceTask, String> {
    match config {
        SourceConfig::File(cfg) => file::spawn(cfg.clone(), ctx).map(SourceTask::Thread),
        SourceConfig::Syslog(cfg) => {
            let _guard = runtime.enter();
            syslog::start(cfg.clone(), ctx, runtime).map(SourceTask::Async)
        }
        SourceConfig::Forward(cfg) => {
            forward::start(cfg.clone(), ctx, runtime).map(SourceTask::Async)
        }
    }
}
