//! Sources: where records enter Quill. Each source reads its input, makes [`crate::record::Record`]s
//! and appends them to the journal, carrying its resume position where it has one.
//!
//! - [`file`]: tails files matched by globs (a dedicated thread; file I/O never on the reactor).
//! - [`syslog`]: syslog over UDP, TCP and unix datagram sockets (async tasks).
//! - [`forward`]: batches from agents over the forward protocol (async tasks; aggregators).
//! - [`gelf`]: GELF over UDP (chunked, compressed), TCP and HTTP.
//!
//! A source may touch only its own input and the journal's append side.

pub mod file;
pub mod forward;
pub mod gelf;
pub mod syslog;

use crate::component::{ComponentError, Running, SourceContext};
use crate::config::SourceConfig;

/// Starts the source described by `config` with `ctx`; its stop signal is `stop` (the trigger of
/// `ctx.shutdown`).
pub fn start(
    config: &SourceConfig,
    ctx: SourceContext,
    stop: crate::component::ShutdownTrigger,
    runtime: &tokio::runtime::Runtime,
) -> Result<Running, ComponentError> {
    let running = match config {
        SourceConfig::File(cfg) => {
            let (handle, files) = file::spawn(cfg.clone(), ctx)?;
            Running::thread(handle).with_detail(move || files.summary())
        }
        SourceConfig::Syslog(cfg) => {
            let _guard = runtime.enter();
            let handle =
                syslog::start(cfg.clone(), ctx, runtime).map_err(ComponentError::Failed)?;
            Running::task(runtime.spawn(legacy(handle)))
        }
        SourceConfig::Forward(cfg) => {
            let handle =
                forward::start(cfg.clone(), ctx, runtime).map_err(ComponentError::Failed)?;
            Running::task(runtime.spawn(legacy(handle)))
        }
        SourceConfig::Gelf(cfg) => {
            let (handle, stats) = gelf::start(cfg, ctx, runtime)?;
            Running::task(handle).with_detail(move || stats.summary())
        }
    };
    Ok(running.with_stop(stop))
}

/// A task that reports its error as text, as a component task.
async fn legacy(handle: tokio::task::JoinHandle<Result<(), String>>) -> Result<(), ComponentError> {
    handle
        .await
        .map_err(|_| ComponentError::Panicked)?
        .map_err(ComponentError::Failed)
}
