//! The transaction-id index: every entry as a tantivy document, partitioned by day.
//!
//! Layout: `<data_dir>/index/<YYYY-MM-DD>/` holds one tantivy index per UTC day of the entries'
//! own timestamps ([`partition`]). Each commit stores, in tantivy's commit payload, how far each
//! input stream (the journal cursor, or a backfilled file) is covered, so a restarted writer skips
//! exactly what is already indexed ([`writer`]). Readers open the partitions read-only and may run
//! in other processes while a writer commits ([`reader`]). [`http`] serves searches as JSON for
//! `quill search --server`; [`fanout`] asks several servers at once and merges their answers;
//! [`backfill`] indexes existing log files.
//!
//! This module owns `<data_dir>/index/` and nothing else. See ARCHITECTURE.md, "Index schema" for why the
//! schema looks the way it does.

pub mod api;
pub mod backfill;
pub mod document;
pub mod fanout;
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod partition;
pub mod reader;
pub mod schema;
pub mod search_directory;
pub mod serve;
pub mod tokenizer;
pub mod trace_page;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use document::{DocumentBuilder, EntryFields};
pub use limits::{QueryRejected, SearchLimits};
pub use reader::{
    Cursor, IndexReaderSet, PageOptions, PageOrder, SearchHit, SearchPage, SearchRequest,
};
pub use writer::{AddOutcome, IndexWriterSet};

/// Where the index lives inside a data dir.
pub fn index_root(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// Settings of the index writer (the `[index]` config table).
#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// How often the sink commits; an entry is searchable at most about this long after it
    /// reached the journal (plus the reader's reload).
    pub commit_interval: Duration,
    /// Partitions whose day is older than this are deleted (0: keep forever).
    pub max_age_days: u32,
    /// When the partitions together are larger than this, the oldest are deleted (0: no limit).
    pub max_total_bytes: u64,
    /// Indexing memory budget per writer (split between its threads).
    pub writer_memory_bytes: usize,
    /// Indexing threads per writer.
    pub writer_threads: usize,
    /// Partitions kept open for writing at once; late entries for other days open theirs on demand.
    pub max_open_partitions: usize,
    /// Journal entries read per batch.
    pub batch_max: usize,
    /// How often retention runs in the sink.
    pub retention_check_interval: Duration,
    /// Bulk loading (backfill): no segment merges while this writer runs. Backfill flushes large
    /// segments (a big memory budget), so merging them would mostly rewrite data for nothing; a
    /// later writer (the daemon) merges as usual.
    pub bulk_load: bool,
    /// Index the positions of full-text words in new partitions, so phrase queries
    /// (`"connection refused"`) work. Off: about 10-15% faster indexing and a smaller index;
    /// a phrase query on such a partition is an error.
    pub word_positions: bool,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            commit_interval: Duration::from_secs(1),
            max_age_days: 30,
            max_total_bytes: 0,
            writer_memory_bytes: 64 << 20,
            writer_threads: 1,
            max_open_partitions: 2,
            batch_max: 4096,
            retention_check_interval: Duration::from_secs(60),
            bulk_load: false,
            word_positions: true,
        }
    }
}

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("index I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("index partition {path}: {source}")]
    Tantivy {
        path: String,
        #[source]
        source: tantivy::TantivyError,
    },
    #[error(
        "index partition {path} is being written by another process (a running quill daemon?); \
         stop it or index through it"
    )]
    Locked { path: String },
    #[error("invalid query `{query}`: {reason}")]
    BadQuery { query: String, reason: String },
    /// Refused before parsing (too long, too deep) or stopped at its time budget.
    #[error(transparent)]
    Rejected(#[from] limits::QueryRejected),
    #[error("index commit payload of {path} is unreadable: {reason}")]
    BadPayload { path: String, reason: String },
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

impl IndexError {
    pub(crate) fn tantivy(path: &Path, source: tantivy::TantivyError) -> IndexError {
        if matches!(source, tantivy::TantivyError::LockFailure(..)) {
            return IndexError::Locked {
                path: path.display().to_string(),
            };
        }
        IndexError::Tantivy {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> IndexError {
        IndexError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
