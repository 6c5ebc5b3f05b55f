//! Supervised sinks: a sink whose output fails (a full disk, an index error) is restarted from
//! its journal cursor with exponential backoff until the fault clears; it never dies silently.
//!
//! [`start`] starts the sink (an error here is a start-up error: the daemon does not run) and a
//! supervisor thread that waits for it. When the sink returns an error, the supervisor records it
//! in the sink's [`Health`](crate::component::Health) (state `retrying`, last error), waits
//! (100 ms doubling up to 30 s) and builds the sink again from a fresh cursor: a sink re-opened
//! from its cursor resumes exactly where its last acknowledgement left it (the file sink rolls
//! its output back to the acknowledged state, the index sink skips what its commits cover).
//! An attempt that has run for a second counts as recovered (state `running`, backoff reset).
//!
//! While it watches, the supervisor keeps the sink's lag (records and journal bytes behind the
//! durable end) in [`SinkStats`]. With `max_lag`, a sink further behind than that, down or
//! running but stuck or slow (a forward sink whose aggregator is unreachable), has its cursor
//! moved forward, so the journal stops waiting for it; every record it passes over is counted
//! in [`SinkStats::skipped`] and logged. While an attempt runs, its cursor jumps at its next
//! read and counts what it never read, plus what it had read but not acknowledged when it
//! rewinds or ends (see [`Journal::skip_cursor_to_lag`]).
//!
//! After the sink was asked to stop, a failing sink still gets [`GIVE_UP_AFTER_STOP`] of
//! retries to drain; then it stops with its error (what it did not write stays in the journal).
//!
//! Touches the sink's journal cursor (through the journal) and its stats; nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::accounting::stream::JoinSettings;
use crate::component::{
    ComponentError, HealthState, Running, Shutdown, ShutdownTrigger, SinkContext,
};
use crate::config::SinkConfig;
use crate::journal::Journal;
use crate::parsers::ParserRegistry;
use crate::telemetry::SinkStats;

/// An attempt that has run this long without failing counts as recovered.
const HEALTHY_AFTER: Duration = Duration::from_secs(1);
/// How often the supervisor refreshes the lag and looks at its sink.
const POLL: Duration = Duration::from_millis(100);
/// How long a sink that keeps failing after it was asked to stop is still retried.
pub const GIVE_UP_AFTER_STOP: Duration = Duration::from_secs(10);

/// Delay between restarts: starts at `initial`, doubles after each failure up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

/// What every attempt of a sink is built from (a [`SinkContext`] without its cursor).
struct Template {
    config: SinkConfig,
    name: String,
    journal: Journal,
    stats: Arc<SinkStats>,
    shutdown: Shutdown,
    parsers: Arc<ParserRegistry>,
    data_dir: PathBuf,
    host: Arc<str>,
    join: Option<JoinSettings>,
    max_lag: Option<u64>,
}

type Attempt = JoinHandle<Result<(), ComponentError>>;

/// Starts the sink described by `config` under a supervisor; `stop` triggers `ctx.shutdown`.
pub fn start(
    config: &SinkConfig,
    ctx: SinkContext,
    stop: ShutdownTrigger,
    backoff: Backoff,
) -> Result<Running, ComponentError> {
    let template = Template {
        config: config.clone(),
        name: ctx.name.clone(),
        journal: ctx.cursor.journal(),
        stats: ctx.stats.clone(),
        shutdown: ctx.shutdown.clone(),
        parsers: ctx.parsers.clone(),
        data_dir: ctx.data_dir.clone(),
        host: ctx.host.clone(),
        join: ctx.join.clone(),
        max_lag: config.max_lag().map(|s| s.as_u64()),
    };
    let health = ctx.stats.health.clone();
    health.set(HealthState::Running);
    let first = super::spawn(config, ctx)?;
    let handle = std::thread::Builder::new()
        .name(format!("supervise-{}", template.name))
        .spawn(move || template.supervise(first, backoff))
        .map_err(ComponentError::Thread)?;
    Ok(Running::thread(handle).with_stop(stop).with_health(health))
}

impl Template {
    fn context(&self) -> Result<SinkContext, ComponentError> {
        Ok(SinkContext {
            name: self.name.clone(),
            cursor: self.journal.cursor(&self.name)?,
            stats: self.stats.clone(),
            shutdown: self.shutdown.clone(),
            parsers: self.parsers.clone(),
            data_dir: self.data_dir.clone(),
            host: self.host.clone(),
            join: self.join.clone(),
        })
    }

    fn update_lag(&self) {
        if let Some((records, bytes)) = self.journal.cursor_lag(&self.name) {
            self.stats.lag_records.store(records, Ordering::Relaxed);
            self.stats.lag_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    /// Moves the cursor past what lies more than `max_lag` behind (the journal counts what
    /// is skipped: at once while no attempt holds the cursor, else as the attempt jumps).
    fn enforce_max_lag(&self) {
        let Some(max) = self.max_lag else {
            self.update_lag();
            return;
        };
        if let Err(e) = self.journal.skip_cursor_to_lag(&self.name, max) {
            tracing::error!(sink = %self.name, "Cannot move the cursor past max_lag: {e}")
        }
        self.take_skips();
        self.update_lag();
    }

    /// Counts what the journal skipped for this sink since the last call.
    fn take_skips(&self) {
        let n = self.journal.take_cursor_skips(&self.name);
        if n > 0 {
            self.stats.skipped.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(
                sink = %self.name,
                skipped = n,
                "Sink `{}` is more than max_lag behind: {n} records skipped (never written by it).",
                self.name
            );
        }
    }

    /// Waits `delay` (less once stopping), keeping lag and max_lag current.
    fn wait(&self, delay: Duration) {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            self.enforce_max_lag();
            if self.shutdown.is_triggered() {
                std::thread::sleep(POLL.min(delay));
                return;
            }
            std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        }
    }

    fn supervise(self, first: Attempt, backoff: Backoff) -> Result<(), ComponentError> {
        let health = self.stats.health.clone();
        let mut delay = backoff.initial;
        let mut attempt = Ok(first);
        let mut stopped_at: Option<Instant> = None;
        loop {
            let error = match attempt {
                Ok(handle) => {
                    let started = Instant::now();
                    while !handle.is_finished() {
                        self.enforce_max_lag();
                        if health.state() == HealthState::Retrying
                            && started.elapsed() >= HEALTHY_AFTER
                        {
                            health.set(HealthState::Running);
                            delay = backoff.initial;
                            tracing::info!(sink = %self.name, "Sink `{}` recovered.", self.name);
                        }
                        std::thread::sleep(POLL);
                    }
                    self.take_skips();
                    self.update_lag();
                    match handle.join() {
                        Ok(Ok(())) => return Ok(()),
                        Ok(Err(e)) => e,
                        Err(_) => ComponentError::Panicked,
                    }
                }
                Err(e) => e,
            };
            if self.shutdown.is_triggered() {
                let since = *stopped_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= GIVE_UP_AFTER_STOP {
                    tracing::error!(sink = %self.name, "Sink `{}` still fails at shutdown, giving up: {error}. What it did not write stays in the journal.", self.name);
                    return Err(error);
                }
            }
            health.fail(HealthState::Retrying, &error);
            self.stats.restarts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                sink = %self.name,
                "Sink `{}` failed: {error}. Restarting from its cursor in {delay:?}.",
                self.name
            );
            self.wait(delay);
            delay = (delay * 2).min(backoff.max);
            attempt = self
                .context()
                .and_then(|ctx| super::spawn(&self.config, ctx));
        }
    }
}
