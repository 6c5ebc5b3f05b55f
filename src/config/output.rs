//! Settings of how a sink makes its output durable and how many threads encode it
//! (`[sinks.X] fsync`, `fsync_interval`, `workers`). Read by sinks; no I/O here.

use serde::Deserialize;

use crate::journal::FsyncPolicy;

/// `[sinks.X] fsync`: when the sink's output files are fdatasynced. A sink acknowledges (moves its
/// journal cursor past) only what is durable under this policy, so exactly-once holds for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFsync {
    /// One fdatasync per file after every journal batch written.
    Batch,
    /// Group commit: one fdatasync of every file written since the last one, at most every
    /// `fsync_interval` (and when a file rotates or the sink stops).
    Interval,
    /// Never fdatasync (unsafe: a machine crash loses what the page cache held); the sink
    /// acknowledges once its output is written to the kernel, as the journal does.
    Never,
}

impl OutputFsync {
    /// The policy that follows the journal's: `always` → `batch`, `interval` → `interval`,
    /// `never` → `never`.
    pub fn following(journal: FsyncPolicy) -> OutputFsync {
        match journal {
            FsyncPolicy::Always => OutputFsync::Batch,
            FsyncPolicy::Interval => OutputFsync::Interval,
            FsyncPolicy::Never => OutputFsync::Never,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFsync::Batch => "batch",
            OutputFsync::Interval => "interval",
            OutputFsync::Never => "never",
        }
    }
}

/// Encoding threads of a sink when `workers` is not set: the machine's cores.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Most encoding threads a sink may ask for.
pub const MAX_WORKERS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_journal() {
        assert_eq!(
            OutputFsync::following(FsyncPolicy::Always),
            OutputFsync::Batch
        );
        assert_eq!(
            OutputFsync::following(FsyncPolicy::Interval),
            OutputFsync::Interval
        );
        assert_eq!(
            OutputFsync::following(FsyncPolicy::Never),
            OutputFsync::Never
        );
    }
}
