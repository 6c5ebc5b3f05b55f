//! The structured-logging library for Rust programs (GELF/JSON out, transaction ids, a `tracing`
//! layer). Light to depend on: it uses none of the pipeline's heavy dependencies, only std
//! threads, `crossbeam-channel`, `serde_json` and `flate2`.
//!
//! # Brief overview
//!
//! A program logs *objects*, not format strings: a [`Logger`] (one per module, named by a
//! dotted *facility* such as `myapp.api.handler`) emits [`Entry`]s made of a syslog [`Level`], a
//! short message and key-value [`Field`]s whose values are any `serde::Serialize`. Entries go
//! into a bounded queue; a worker thread applies [`Rewriter`]s, picks the sinks whose [`Route`]
//! (facility prefix + level) accepts the entry, encodes one GELF 1.1 JSON line and hands it to
//! the [`sinks`]: stderr, a size-rotated file, a Quill agent over TCP/unix sockets (syslog
//! framing), or Graylog-compatible GELF over UDP (chunked, compressed).
//!
//! The caller never waits for I/O: when the queue is full, the configured [`WhenFull`] policy
//! either blocks until there is room or drops the entry and counts it (the count is reported in
//! the log itself and by [`Dispatcher::dropped`]). A [`LogGuard`] flushes on drop, and
//! [`init`] registers an exit hook so `std::process::exit` right after logging loses nothing.
//!
//! [`TxnId`] makes transaction ids that encode their time and origin host; the
//! [`GelfLayer`] (a `tracing_subscriber::Layer`) and the [`LogBackend`] (a `log::Log`) route
//! the two ecosystem facades through the same dispatcher, with span fields such as `txn_id` on
//! every event.
//!
//! ```
//! use quill::logging::{sinks::WriterSink, Config, Level, Logger, Route};
//!
//! // A dispatcher writing GELF lines into memory (use `init` for the process-wide one).
//! let buffer = quill::logging::sinks::SharedBuffer::default();
//! let dispatcher = Config::new()
//!     .sink("mem", WriterSink::new(buffer.clone()))
//!     .route(Route::new("myapp").at_least(Level::Info).to("mem"))
//!     .build()?;
//!
//! let log = Logger::with_dispatcher("myapp.api.handler", &dispatcher);
//! quill::info!(log, "request served", status = 200, path = "/items", latency_ms = 3.5);
//! quill::debug!(log, "not routed: below Info");
//! dispatcher.flush()?;
//!
//! let line: serde_json::Value = serde_json::from_slice(buffer.contents().trim_ascii())?;
//! assert_eq!(line["short_message"], "request served");
//! assert_eq!(line["_status"], 200);
//! assert_eq!(line["_facility"], "myapp.api.handler");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Output
//!
//! Every line is a GELF 1.1 object: `version`, `host` ([`Config::host`], default the machine's
//! name), `short_message` (`-` if empty), `timestamp` (seconds, millisecond decimals), `level`
//! (syslog severity; `tracing` ERROR/WARN/INFO/DEBUG/TRACE and `log` levels map to 3/4/6/7/7)
//! and `_facility`. Each field `key` becomes `_key`, with characters outside `[A-Za-z0-9_.-]`
//! replaced by `_` and `id` written as `_id_` (GELF reserves `_id`). Numbers stay numbers and
//! strings stay strings; booleans become `"true"`/`"false"`, nulls are left out, nested objects
//! are flattened to dotted keys (`_req.path`, four levels deep) and arrays are written as JSON
//! text, because GELF values are strings or numbers only. A transaction id logged as `txn_id`
//! (by [`Logger::with`], a field, or a `tracing` span) comes out as `_txn_id`, the field
//! `quill search` looks up.
//!
//! # Depending on it
//!
//! `quill = { version = "…", default-features = false, features = ["logging"] }` pulls in no
//! async runtime, no index, no CLI: std threads, `crossbeam-channel`, `serde_json`, `flate2`,
//! `tracing`, `tracing-subscriber` (registry only) and `log`.
//!
//! This module touches only its own threads, the sinks' files and sockets, and (through
//! [`init`]) the process-wide `log`/`tracing` dispatchers when asked to.

#![warn(missing_docs)]
mod encode;
mod entry;
mod log_backend;
mod logger;
mod macros;
pub mod rewrite;
mod route;
pub mod sinks;
mod tracing_layer;
pub mod txn_id;
mod worker;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use entry::{Entry, Field};
pub use log_backend::LogBackend;
pub use logger::{EntryBuilder, Logger};
pub use rewrite::Rewriter;
pub use route::Route;
pub use sinks::Sink;
pub use tracing_layer::GelfLayer;
pub use txn_id::{REQUEST_ID_HEADER, TXN_ID_FIELD, TxnId, TxnIdError};
pub use worker::{Config, Dispatcher, LogGuard, Stats, WhenFull};

/// Syslog severity (RFC 5424), which is also GELF's `level`. Lower numbers are more severe;
/// `Level::Error < Level::Info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Level {
    /// System is unusable (0).
    Emergency = 0,
    /// Action must be taken immediately (1).
    Alert = 1,
    /// Critical conditions (2).
    Critical = 2,
    /// Error conditions (3).
    Error = 3,
    /// Warning conditions (4).
    Warning = 4,
    /// Normal but significant (5).
    Notice = 5,
    /// Informational (6).
    Info = 6,
    /// Debug-level messages (7).
    Debug = 7,
}

impl Level {
    /// All levels, most severe first.
    pub const ALL: [Level; 8] = [
        Level::Emergency,
        Level::Alert,
        Level::Critical,
        Level::Error,
        Level::Warning,
        Level::Notice,
        Level::Info,
        Level::Debug,
    ];

    /// The syslog severity number (0-7).
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The level with syslog severity `n`, if `n <= 7`.
    pub const fn from_u8(n: u8) -> Option<Level> {
        if n < 8 {
            Some(Level::ALL[n as usize])
        } else {
            None
        }
    }

    /// The lowercase name (`"warning"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Emergency => "emergency",
            Level::Alert => "alert",
            Level::Critical => "critical",
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = Error;

    /// Accepts the names above, the usual syslog abbreviations (`err`, `crit`, `warn`, `emerg`)
    /// and the numbers `0`-`7`, case-insensitively.
    fn from_str(s: &str) -> Result<Level, Error> {
        let level = match s.to_ascii_lowercase().as_str() {
            "emergency" | "emerg" | "panic" | "0" => Level::Emergency,
            "alert" | "1" => Level::Alert,
            "critical" | "crit" | "2" => Level::Critical,
            "error" | "err" | "3" => Level::Error,
            "warning" | "warn" | "4" => Level::Warning,
            "notice" | "5" => Level::Notice,
            "info" | "informational" | "6" => Level::Info,
            "debug" | "trace" | "7" => Level::Debug,
            _ => return Err(Error::UnknownLevel(s.to_owned())),
        };
        Ok(level)
    }
}

/// Errors from configuring or flushing the logging library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A level name that [`Level::from_str`] does not know.
    #[error("unknown log level {0:?} (expected emergency..debug or 0..7)")]
    UnknownLevel(String),
    /// A route names a sink that was not added with [`Config::sink`].
    #[error("route for facility prefix {prefix:?} names unknown sink {sink:?}")]
    UnknownSink {
        /// The route's facility prefix.
        prefix: String,
        /// The missing sink name.
        sink: String,
    },
    /// Two sinks were added under one name.
    #[error("two sinks are named {0:?}")]
    DuplicateSink(String),
    /// [`Config::queue_capacity`] was 0.
    #[error("queue capacity must be at least 1")]
    ZeroCapacity,
    /// [`init`] was already called in this process.
    #[error("the global logging dispatcher is already initialized")]
    AlreadyInitialized,
    /// The `log` crate already has a logger.
    #[error("could not install the `log` backend: another logger is already set")]
    LogBackendTaken,
    /// A global `tracing` subscriber is already set.
    #[error("could not install the `tracing` subscriber: {0}")]
    TracingTaken(String),
    /// The worker did not write the queue out in time (a sink is stuck).
    #[error("log worker did not finish flushing within {0:?}")]
    FlushTimeout(Duration),
    /// The worker thread is no longer running.
    #[error("log worker is gone (it panicked or was shut down)")]
    WorkerGone,
    /// The worker thread could not be spawned.
    #[error("could not start the log worker thread: {0}")]
    Spawn(#[source] std::io::Error),
}

static GLOBAL: OnceLock<Dispatcher> = OnceLock::new();

/// How long the exit hook and [`LogGuard`] wait for the worker to write what is queued.
pub const EXIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds `config` and installs it as the process-wide dispatcher used by [`Logger::local`]
/// loggers, plus the `log` and `tracing` facades if the config asks for them
/// ([`Config::capture_log`], [`Config::capture_tracing`]).
///
/// Also registers an exit hook (`atexit`) that flushes the queue, so a program that calls
/// `std::process::exit` right after logging loses nothing. Keep the returned guard alive in
/// `main`: dropping it flushes too.
///
/// ```no_run
/// // One line switches an existing `log`-based program to GELF on stderr.
/// let _guard = quill::logging::init(quill::logging::Config::stderr().capture_log())?;
/// log::info!("now in GELF");
/// # Ok::<(), quill::logging::Error>(())
/// ```
pub fn init(config: Config) -> Result<LogGuard, Error> {
    let capture_log = config.capture_log;
    let capture_tracing = config.capture_tracing;
    if GLOBAL.get().is_some() {
        return Err(Error::AlreadyInitialized);
    }
    let dispatcher = config.build()?;
    GLOBAL
        .set(dispatcher.clone())
        .map_err(|_| Error::AlreadyInitialized)?;
    register_exit_flush();
    if capture_log {
        LogBackend::new().install()?;
    }
    if capture_tracing {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(GelfLayer::new());
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|e| Error::TracingTaken(e.to_string()))?;
    }
    Ok(LogGuard::new(dispatcher))
}

/// The process-wide dispatcher installed by [`init`], if any.
pub fn global() -> Option<&'static Dispatcher> {
    GLOBAL.get()
}

/// Waits until everything logged so far through the global dispatcher is written to its sinks.
/// Does nothing if [`init`] was not called.
pub fn flush() -> Result<(), Error> {
    match GLOBAL.get() {
        Some(d) => d.flush(),
        None => Ok(()),
    }
}

fn register_exit_flush() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: `atexit` only stores the function pointer; `flush_at_exit` is a plain
        // `extern "C" fn` that does not unwind (errors are ignored).
        unsafe {
            libc::atexit(flush_at_exit);
        }
    });
}

extern "C" fn flush_at_exit() {
    if let Some(d) = GLOBAL.get() {
        let _ = std::panic::catch_unwind(|| d.flush_timeout(EXIT_FLUSH_TIMEOUT));
    }
}

/// Turns a module path or `log`/`tracing` target (`myapp::api`) into a facility (`myapp.api`).
pub(crate) fn facility_from_target(target: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memmem::find(target.as_bytes(), b"::").is_some() {
        std::borrow::Cow::Owned(target.replace("::", "."))
    } else {
        std::borrow::Cow::Borrowed(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip() {
        for level in Level::ALL {
            assert_eq!(Level::from_u8(level.as_u8()), Some(level));
            assert_eq!(level.as_str().parse::<Level>().unwrap(), level);
        }
        assert!(Level::Error < Level::Info);
        assert_eq!("WARN".parse::<Level>().unwrap(), Level::Warning);
        assert!("loud".parse::<Level>().is_err());
        assert_eq!(Level::from_u8(8), None);
    }

    #[test]
    fn targets_become_facilities() {
        assert_eq!(
            facility_from_target("myapp::api::handler"),
            "myapp.api.handler"
        );
        assert_eq!(facility_from_target("myapp"), "myapp");
    }
}
