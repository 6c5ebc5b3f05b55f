//! Sinks: where records leave the journal. Each sink runs on its own thread, reads the journal
//! through its own named cursor, and acknowledges what it has finished (with any state it needs to
//! resume exactly, stored atomically with the cursor position).
//!
//! - [`file`]: GELF JSON lines under `<path>/<category>/`, rotated by size, exactly once.
//! - [`index`]: the transaction-id index under `<data_dir>/index`, exactly once via commit payloads.
//! - [`forward`]: ships the journal to aggregators, advancing on their durable acks.
//!
//! A sink touches its own output and its journal cursor, nothing else.

pub mod file;
pub mod forward;
pub mod index;
