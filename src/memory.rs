//! The daemon's memory budget (`memory_limit`): how the limit is divided among the stages that
//! hold memory in proportion to the traffic, and the allocator options the daemon sets when a
//! limit is given.
//!
//! [`MemoryBudget::new`] computes the shares; [`MemoryBudget::apply_allocator`] tells mimalloc
//! to return freed pages to the kernel at once instead of keeping them for reuse (without a
//! limit, mimalloc keeps them: cheaper, and most of a busy daemon's resident set). The shares
//! that do not scale with the limit are bounded by constants elsewhere and stated in README
//! ("Memory").
//!
//! This module touches the allocator's options and nothing else.

/// The smallest `memory_limit` accepted: below it the fixed shares alone do not fit.
pub const MIN_LIMIT: u64 = 32 << 20;

/// The journal's queue (encoded frames waiting for its writer) without a limit.
const DEFAULT_JOURNAL_QUEUE: u64 = 16 << 20;

/// What each stage may hold under a `memory_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// The whole limit, bytes.
    pub limit: u64,
    /// Encoded frames waiting for the journal writer (appends wait beyond it): an eighth of
    /// the limit, at most the 16 MiB used without one.
    pub journal_queue: u64,
}

impl MemoryBudget {
    /// The shares of `limit` bytes (raised to [`MIN_LIMIT`]; the config check refuses less).
    pub fn new(limit: u64) -> MemoryBudget {
        let limit = limit.max(MIN_LIMIT);
        MemoryBudget {
            limit,
            journal_queue: (limit / 8).min(DEFAULT_JOURNAL_QUEUE),
        }
    }

    /// Sets mimalloc's options for a bounded resident set: freed memory is purged (returned to
    /// the kernel) immediately rather than after a delay, and arenas are committed on demand.
    /// Options only: with another global allocator this changes nothing.
    pub fn apply_allocator(&self) {
        // mimalloc v2's option numbers (include/mimalloc.h: mi_option_arena_eager_commit = 4,
        // mi_option_purge_delay = 15).
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        // SAFETY: setting an option is a plain store into mimalloc's option table; both options
        // are read on each use, and any value is valid for them.
        unsafe {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_scale_with_the_limit_and_stay_bounded() {
        let b = MemoryBudget::new(64 << 20);
        assert_eq!(b.journal_queue, 8 << 20);
        assert_eq!(MemoryBudget::new(1 << 30).journal_queue, 16 << 20);
        assert_eq!(MemoryBudget::new(1).limit, MIN_LIMIT);
        assert_eq!(MemoryBudget::new(1).journal_queue, 4 << 20);
    }

    /// A limit below [`MIN_LIMIT`] is a config error naming the file, line and key.
    #[test]
    fn a_too_small_limit_names_file_line_and_key() {
        let text = "data_dir = \"/tmp/q\"\nmemory_limit = \"1MiB\"\n";
        match crate::config::Config::parse(text, "quill.toml") {
            Err(crate::config::ConfigError::Invalid {
                path, line, key, ..
            }) => {
                assert_eq!((path.as_str(), line), ("quill.toml", 2));
                assert!(key.ends_with("memory_limit"), "{key}");
            }
            other => panic!("expected an invalid-key error, got {other:?}"),
        }
        let ok = crate::config::Config::parse("memory_limit = \"64MiB\"\n", "quill.toml");
        assert_eq!(
            ok.map(|c| c.memory_limit.map(|l| l.0)).ok(),
            Some(Some(64 << 20))
        );
    }

    #[test]
    fn allocator_options_are_set() {
        MemoryBudget::new(64 << 20).apply_allocator();
        // SAFETY: reading an option is a plain load.
        let delay = unsafe { libmimalloc_sys::mi_option_get(15) };
        assert_eq!(delay, 0);
    }
}
