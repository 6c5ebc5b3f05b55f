//! What every source and sink is started with, and what a running one hands back.
//!
//! A component (source or sink) is built the same way: from its config section and a context
//! ([`SourceContext`], [`SinkContext`]) that carries everything it may use — its name, the
//! journal (append side) or its journal cursor, its stats, its own shutdown signal, the parser
//! registry, the data directory and the host name. Nothing is process-wide: a second pipeline in
//! one process (or a reload) builds its own contexts. Starting one returns a [`Running`] handle
//! (stop, join, health, a status detail).
//!
//! This module holds types only: it starts nothing and touches no files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::watch;

use crate::accounting::stream::JoinSettings;
use crate::journal::{Cursor, Journal, JournalError};
use crate::parsers::ParserRegistry;
use crate::record::{Origin, Position, Record, RecordFlags, Timestamp};
use crate::telemetry::{SinkStats, SourceStats};

/// Why a component could not start, or stopped with an error.
#[derive(Debug, Error)]
pub enum ComponentError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory the component needs.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// A setting that cannot be used (a TLS key that does not load, an address that does not
    /// parse).
    #[error("{0}")]
    Setting(String),
    /// The component's own error, as it reported it.
    #[error("{0}")]
    Failed(String),
    #[error("cannot start thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the component's task panicked")]
    Panicked,
}

impl ComponentError {
    /// An I/O error about `context` (a path, an address).
    pub fn io(context: impl std::fmt::Display, source: std::io::Error) -> ComponentError {
        ComponentError::Io {
            context: context.to_string(),
            source,
        }
    }
}

/// A shutdown signal observable from async tasks and from threads.
#[derive(Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    rx: watch::Receiver<bool>,
}

/// The side that triggers a [`Shutdown`].
#[derive(Clone)]
pub struct ShutdownTrigger {
    flag: Arc<AtomicBool>,
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(false);
        (
            ShutdownTrigger {
                flag: flag.clone(),
                tx: Arc::new(tx),
            },
            Shutdown { flag, rx },
        )
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Resolves once shutdown is triggered.
    pub async fn triggered(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Release);
        let _ = self.tx.send(true);
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// What a source is handed when it starts.
#[derive(Clone)]
pub struct SourceContext {
    pub name: String,
    pub origin: Arc<Origin>,
    pub journal: Journal,
    pub stats: Arc<SourceStats>,
    /// This source's own stop signal (triggered at shutdown, or when a reload removes it).
    pub shutdown: Shutdown,
    pub parsers: Arc<ParserRegistry>,
    pub data_dir: PathBuf,
    pub host: Arc<str>,
}

impl SourceContext {
    /// A context with fresh stats, the default parsers, `.` as the data directory and the
    /// origin's host: for tests, benches and tools that run one source on its own.
    pub fn standalone(
        name: &str,
        origin: Arc<Origin>,
        journal: Journal,
        shutdown: Shutdown,
    ) -> SourceContext {
        SourceContext {
            name: name.to_string(),
            host: origin.host.clone(),
            origin,
            journal,
            stats: Arc::default(),
            shutdown,
            parsers: Arc::new(ParserRegistry::new(Vec::new())),
            data_dir: PathBuf::from("."),
        }
    }

    /// A record this source received at `now` (no file position: sockets).
    pub fn record(&self, raw: Bytes, flags: RecordFlags, now: Timestamp) -> Record {
        Record {
            origin: self.origin.clone(),
            received_at: now,
            position: Position::None,
            flags,
            raw,
        }
    }
}

/// What a sink is handed when it starts.
pub struct SinkContext {
    pub name: String,
    pub cursor: Cursor,
    pub stats: Arc<SinkStats>,
    /// This sink's own stop signal. Sinks drain the journal when it closes; a sink that is
    /// stopped on its own (a reload removed or changed it) finishes its batch and returns.
    pub shutdown: Shutdown,
    pub parsers: Arc<ParserRegistry>,
    pub data_dir: PathBuf,
    pub host: Arc<str>,
    /// The byte join (`[bytes]`), for sinks that write GELF.
    pub join: Option<JoinSettings>,
}

/// How a running component is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HealthState {
    Starting = 0,
    Running = 1,
    /// Failed and retrying (see [`Health::last_error`]).
    Retrying = 2,
    Stopped = 3,
    Failed = 4,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Running => "running",
            HealthState::Retrying => "retrying",
            HealthState::Stopped => "stopped",
            HealthState::Failed => "failed",
        }
    }

    fn from_u8(v: u8) -> HealthState {
        match v {
            0 => HealthState::Starting,
            1 => HealthState::Running,
            2 => HealthState::Retrying,
            3 => HealthState::Stopped,
            _ => HealthState::Failed,
        }
    }
}

/// A component's state and last error, shared between it and whoever reports on it.
#[derive(Debug, Default)]
pub struct Health {
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
}

impl Health {
    pub fn state(&self) -> HealthState {
        HealthState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set(&self, state: HealthState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Records an error and the state it leaves the component in.
    pub fn fail(&self, state: HealthState, error: impl std::fmt::Display) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
        self.set(state);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

type Detail = Arc<dyn Fn() -> String + Send + Sync>;

enum Task {
    Async(tokio::task::JoinHandle<Result<(), ComponentError>>),
    Thread(std::thread::JoinHandle<Result<(), ComponentError>>),
}

/// A started source or sink.
pub struct Running {
    task: Task,
    stop: Option<ShutdownTrigger>,
    health: Arc<Health>,
    detail: Option<Detail>,
}

impl Running {
    /// A component running as an async task.
    pub fn task(handle: tokio::task::JoinHandle<Result<(), ComponentError>>) -> Running {
        Running::new(Task::Async(handle))
    }

    /// A component running on its own thread.
    pub fn thread(handle: std::thread::JoinHandle<Result<(), ComponentError>>) -> Running {
        Running::new(Task::Thread(handle))
    }

    fn new(task: Task) -> Running {
        let health = Arc::new(Health::default());
        health.set(HealthState::Running);
        Running {
            task,
            stop: None,
            health,
            detail: None,
        }
    }

    /// The trigger that stops this component ([`Running::stop`]).
    pub fn with_stop(mut self, stop: ShutdownTrigger) -> Running {
        self.stop = Some(stop);
        self
    }

    /// Shares `health` with the component, which updates it.
    pub fn with_health(mut self, health: Arc<Health>) -> Running {
        self.health = health;
        self
    }

    /// A summary the status line shows after the component's counters (`files=3 lag=0B`).
    pub fn with_detail(mut self, detail: impl Fn() -> String + Send + Sync + 'static) -> Running {
        self.detail = Some(Arc::new(detail));
        self
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn detail(&self) -> Option<String> {
        self.detail.as_ref().map(|d| d())
    }

    /// Asks the component to stop; [`Running::join`] waits for it.
    pub fn stop(&self) {
        if let Some(stop) = &self.stop {
            stop.trigger();
        }
    }

    pub fn is_finished(&self) -> bool {
        match &self.task {
            Task::Async(h) => h.is_finished(),
            Task::Thread(h) => h.is_finished(),
        }
    }

    /// Waits for the component to finish.
    pub fn join(self, runtime: &tokio::runtime::Handle) -> Result<(), ComponentError> {
        let result = match self.task {
            Task::Async(h) => runtime.block_on(h).unwrap_or(Err(ComponentError::Panicked)),
            Task::Thread(h) => h.join().unwrap_or(Err(ComponentError::Panicked)),
        };
        match &result {
            Ok(()) => self.health.set(HealthState::Stopped),
            Err(e) => self.health.fail(HealthState::Failed, e),
        }
        result
    }
}
