//! Sinks: where records leave the journal. Each sink runs on its own thread, reads the journal
//! through its own named cursor, and acknowledges what it has finished (with any state it needs to
//! resume exactly, stored atomically with the cursor position).
//!
//! - [`file`]: GELF JSON lines under `<path>/<category>/`, rotated by size, exactly once.
//! - [`scribe_store`]: the file sink with `format = "raw"`: Scribe's file store, exactly once.
//! - [`index`]: the transaction-id index under `<data_dir>/index`, exactly once via commit payloads.
//! - [`forward`]: ships the journal to aggregators, advancing on their durable acks.
//!
//! A sink touches its own output and its journal cursor, nothing else.

pub mod file;
pub mod forward;
pub mod index;
pub mod scribe_store;

use crate::component::{ComponentError, Running, ShutdownTrigger, SinkContext};
use crate::config::SinkConfig;

/// Starts the sink described by `config` with `ctx`; its stop signal is `stop` (the trigger of
/// `ctx.shutdown`).
pub fn start(
    config: &SinkConfig,
    ctx: SinkContext,
    stop: ShutdownTrigger,
) -> Result<Running, ComponentError> {
    let handle = match config {
        SinkConfig::File(cfg) if cfg.format == crate::config::FileFormat::Raw => {
            scribe_store::spawn(cfg.clone(), ctx)?
        }
        SinkConfig::File(cfg) => file::spawn(cfg.clone(), ctx)?,
        SinkConfig::Forward(cfg) => forward::spawn(cfg.clone(), ctx)?,
        SinkConfig::Index(cfg) => index::spawn(cfg, ctx)?,
    };
    Ok(Running::thread(handle).with_stop(stop))
}
