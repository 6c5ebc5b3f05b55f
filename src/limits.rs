//! File descriptors: the process's `RLIMIT_NOFILE`, the connection limits it allows, and what an
//! accept loop does when descriptors run out.
//!
//! [`raise_nofile`] raises the soft limit to the hard one at start. [`share_connections`] lowers
//! the connection limits of all listeners together (the pipeline applies it to the whole config
//! at start and on reload) so that their sum leaves [`reserve`] descriptors free for the journal
//! (segments, cursors), the sinks (output files, connections) and the index;
//! [`clamp_connections`] checks one limit on its own (a source started outside the pipeline). [`AcceptBackoff`] makes an accept
//! loop that hits `EMFILE`/`ENFILE` pause instead of spinning, logging once per burst.
//!
//! This module touches the process's resource limits and nothing else.

use std::time::{Duration, Instant};

/// Pause after an accept failed because descriptors ran out.
pub const EMFILE_BACKOFF: Duration = Duration::from_millis(100);
/// Pause after any other accept failure.
const OTHER_BACKOFF: Duration = Duration::from_millis(50);
/// Accept failures are logged at most this often.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 1,048,576); returns the soft limit
/// in force afterwards.
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = nofile()?;
    let target = hard.min(1 << 20);
    if soft >= target {
        tracing::debug!(soft, hard, "File descriptor limit already at its maximum.");
        return Some(soft);
    }
    let lim = libc::rlimit {
        rlim_cur: target,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        tracing::info!(
            from = soft,
            to = target,
            "Raised the file descriptor limit to the hard limit."
        );
        Some(target)
    } else {
        let e = std::io::Error::last_os_error();
        tracing::warn!(soft, hard, "Cannot raise the file descriptor limit: {e}.");
        Some(soft)
    }
}

/// Descriptors kept free of connections under a soft limit of `soft`: a quarter of it, at least 64
/// and at most 4,096.
pub fn reserve(soft: u64) -> u64 {
    (soft / 4).clamp(64, 4096)
}

/// The connection limit a listener may use under a soft limit of `soft`: `requested`, lowered so
/// that [`reserve`] descriptors stay free (at least 1).
pub fn allowed_connections(requested: usize, soft: u64) -> usize {
    let usable = soft.saturating_sub(reserve(soft)).max(1);
    requested.min(usize::try_from(usable).unwrap_or(usize::MAX))
}

/// Connection limits for listeners that together may hold at most `soft` minus [`reserve`]
/// descriptors: `requested` unchanged when its sum fits, otherwise each lowered in proportion
/// (rounded down, at least 1 each).
pub fn share_connections(requested: &[usize], soft: u64) -> Vec<usize> {
    let usable = u128::from(soft.saturating_sub(reserve(soft)).max(1));
    let sum: u128 = requested.iter().map(|&r| r as u128).sum();
    if sum <= usable {
        return requested.to_vec();
    }
    requested
        .iter()
        .map(|&r| usize::try_from(r as u128 * usable / sum).map_or(r, |s| s.clamp(1, r.max(1))))
        .collect()
}

/// [`allowed_connections`] under the current limit, logging when it lowers `requested`.
pub fn clamp_connections(source: &str, key: &str, requested: usize) -> usize {
    let Some((soft, _)) = nofile() else {
        return requested;
    };
    let allowed = allowed_connections(requested, soft);
    if allowed < requested {
        tracing::warn!(
            source = %source,
            requested,
            allowed,
            descriptor_limit = soft,
            reserved = reserve(soft),
            "`{key}` lowered to {allowed}: the file descriptor limit is {soft} and {} stay reserved for the journal, sinks and index.",
            reserve(soft)
        );
    }
    allowed
}

/// True for "too many open files" (per process or system-wide).
pub fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// What an accept loop does after `accept` failed: pause, and log at most once per 5 s.
pub struct AcceptBackoff {
    source: String,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    pub fn new(source: &str) -> AcceptBackoff {
        AcceptBackoff {
            source: source.to_string(),
            last_log: None,
            unlogged: 0,
        }
    }

    /// How long to pause after `e`.
    pub fn delay(e: &std::io::Error) -> Duration {
        if is_out_of_descriptors(e) {
            EMFILE_BACKOFF
        } else {
            OTHER_BACKOFF
        }
    }

    /// Logs (rate-limited) and pauses.
    pub async fn failed(&mut self, e: &std::io::Error) {
        let delay = Self::delay(e);
        if self.last_log.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
            let also = std::mem::take(&mut self.unlogged);
            if is_out_of_descriptors(e) {
                tracing::warn!(source = %self.source, "Accept failed: {e}; pausing new connections for {delay:?} ({also} more failures since the last such line). Raise the descriptor limit or lower max_connections.");
            } else {
                tracing::warn!(source = %self.source, "Accept failed: {e} ({also} more failures since the last such line).");
            }
            self.last_log = Some(Instant::now());
        } else {
            self.unlogged += 1;
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_a_reserve() {
        assert_eq!(reserve(128), 64);
        assert_eq!(allowed_connections(1024, 128), 64);
        assert_eq!(allowed_connections(1024, 1024), 768);
        assert_eq!(allowed_connections(1024, 1 << 20), 1024);
        assert_eq!(allowed_connections(10, 40), 1);
        // Together: 200 + 100 + 100 under 128 descriptors (64 usable).
        assert_eq!(share_connections(&[200, 100, 100], 128), vec![32, 16, 16]);
        assert_eq!(share_connections(&[10, 20], 1024), vec![10, 20]);
        let big = share_connections(&[1024, 1024, 256, 64], 4096);
        assert!(big.iter().sum::<usize>() <= 4096 - 1024, "{big:?}");
        assert_eq!(share_connections(&[1, 1000], 128), vec![1, 63]);
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert!(is_out_of_descriptors(&emfile));
        assert_eq!(AcceptBackoff::delay(&emfile), EMFILE_BACKOFF);
        let other = std::io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(AcceptBackoff::delay(&other), OTHER_BACKOFF);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (_, hard) = nofile().unwrap();
        let soft = raise_nofile().unwrap();
        assert_eq!(soft, hard.min(1 << 20));
        assert_eq!(nofile().unwrap().0, soft);
    }
}
