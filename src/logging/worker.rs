//! The queue and the worker thread: [`Config`] builds a [`Dispatcher`] (the sending side,
//! cheap to clone) and spawns one worker that applies rewriters, routes each entry, encodes it
//! once as GELF and writes it to the sinks, flushing them after every batch. All sink I/O
//! happens on that thread.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde_json::Value;

use super::encode::GelfEncoder;
use super::entry::{Entry, Facility, Field};
use super::rewrite::Rewriter;
use super::route::{Route, facility_matches};
use super::sinks::{Sink, WriterSink};
use super::{EXIT_FLUSH_TIMEOUT, Error, Level};

/// Threshold value meaning no route accepts the facility.
pub(crate) const THRESHOLD_NONE: u8 = 0;

/// The facility of the library's own entries (drop reports).
pub const SELF_FACILITY: &str = "quill.logging";

/// What a log call does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Wait until the worker makes room: nothing is lost, but a caller can be slowed down to the
    /// sinks' speed.
    #[default]
    Block,
    /// Drop the new entry and count it: the caller never waits. The worker logs the count
    /// (facility `quill.logging`, field `dropped`) and [`Dispatcher::dropped`] returns it.
    Drop,
}

/// Counters of a dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Entries dropped because the queue was full ([`WhenFull::Drop`]).
    pub dropped: u64,
    /// Entries written to at least one sink.
    pub written: u64,
    /// Sink writes or flushes that failed (the entry is lost for that sink).
    pub sink_errors: u64,
    /// Entries lost because a rewriter or sink panicked (the worker carries on).
    pub panics: u64,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    written: AtomicU64,
    sink_errors: AtomicU64,
    panics: AtomicU64,
}

enum Message {
    Entry(Entry),
    Flush(Sender<()>),
    Shutdown,
}

/// Configuration of a dispatcher: sinks by name, routes to them, rewriters, the queue.
///
/// ```
/// use quill::logging::sinks::{FileSink, WriterSink};
/// use quill::logging::{rewrite, Config, Level, Route, WhenFull};
///
/// let dir = tempfile::tempdir()?;
/// let dispatcher = Config::new()
///     .queue_capacity(4096)
///     .when_full(WhenFull::Drop)
///     .sink("app", FileSink::new(dir.path().join("app.log"))?.rotate_at(64 << 20))
///     .sink("stderr", WriterSink::stderr())
///     .rewrite(rewrite::extract("request", &["txn_id", "account_id"]))
///     .route(Route::new("myapp").at_least(Level::Info).to("app"))
///     .route(Route::new("").at_least(Level::Error).to("stderr"))
///     .build()?;
/// # drop(dispatcher);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Config {
    host: Option<String>,
    queue_capacity: usize,
    when_full: WhenFull,
    sinks: Vec<(String, Box<dyn Sink>)>,
    routes: Vec<Route>,
    rewriters: Vec<Rewriter>,
    pub(crate) capture_log: bool,
    pub(crate) capture_tracing: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("queue_capacity", &self.queue_capacity)
            .field("when_full", &self.when_full)
            .field(
                "sinks",
                &self.sinks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("routes", &self.routes)
            .field("rewriters", &self.rewriters.len())
            .finish()
    }
}

impl Config {
    /// Default queue capacity (entries).
    pub const DEFAULT_QUEUE_CAPACITY: usize = 16 * 1024;

    /// No sinks, no routes (so nothing is logged until you add them), a queue of
    /// [`Config::DEFAULT_QUEUE_CAPACITY`] entries, [`WhenFull::Block`].
    pub fn new() -> Config {
        Config {
            host: None,
            queue_capacity: Config::DEFAULT_QUEUE_CAPACITY,
            when_full: WhenFull::Block,
            sinks: Vec::new(),
            routes: Vec::new(),
            rewriters: Vec::new(),
            capture_log: false,
            capture_tracing: false,
        }
    }

    /// GELF lines on stderr for every facility at [`Level::Info`] or more severe.
    pub fn stderr() -> Config {
        Config::new()
            .sink("stderr", WriterSink::stderr())
            .route(Route::new("").at_least(Level::Info).to("stderr"))
    }

    /// The GELF `host` of every entry (default: this machine's host name).
    pub fn host(mut self, host: impl Into<String>) -> Config {
        self.host = Some(host.into());
        self
    }

    /// How many entries the queue holds before [`WhenFull`] applies.
    pub fn queue_capacity(mut self, capacity: usize) -> Config {
        self.queue_capacity = capacity;
        self
    }

    /// What a log call does when the queue is full.
    pub fn when_full(mut self, policy: WhenFull) -> Config {
        self.when_full = policy;
        self
    }

    /// Adds a sink that routes refer to by `name`.
    pub fn sink(mut self, name: impl Into<String>, sink: impl Sink) -> Config {
        self.sinks.push((name.into(), Box::new(sink)));
        self
    }

    /// Adds a route. Every route that accepts an entry gets it (each sink at most once).
    pub fn route(mut self, route: Route) -> Config {
        self.routes.push(route);
        self
    }

    /// Adds a rewriter; rewriters run in the order added, before routing.
    pub fn rewrite(mut self, rewriter: Rewriter) -> Config {
        self.rewriters.push(rewriter);
        self
    }

    /// With [`init`](super::init): also install the [`LogBackend`](super::LogBackend), so
    /// `log::info!` and friends go through this dispatcher.
    pub fn capture_log(mut self) -> Config {
        self.capture_log = true;
        self
    }

    /// With [`init`](super::init): also install a global `tracing` subscriber made of the
    /// registry and a [`GelfLayer`](super::GelfLayer).
    pub fn capture_tracing(mut self) -> Config {
        self.capture_tracing = true;
        self
    }

    /// Checks the configuration and starts the worker thread.
    pub fn build(self) -> Result<Dispatcher, Error> {
        if self.queue_capacity == 0 {
            return Err(Error::ZeroCapacity);
        }
        let mut names = HashSet::new();
        for (name, _) in &self.sinks {
            if !names.insert(name.as_str()) {
                return Err(Error::DuplicateSink(name.clone()));
            }
        }
        let mut routes = Vec::with_capacity(self.routes.len());
        for route in &self.routes {
            let mut sink_ids = Vec::new();
            for sink in &route.sinks {
                match self.sinks.iter().position(|(n, _)| n == sink) {
                    Some(i) => sink_ids.push(i),
                    None => {
                        return Err(Error::UnknownSink {
                            prefix: route.prefix.clone(),
                            sink: sink.clone(),
                        });
                    }
                }
            }
            routes.push(RouteRuntime {
                prefix: route.prefix.clone(),
                threshold: route.threshold(),
                sinks: sink_ids,
            });
        }
        let filters: Vec<(String, u8)> = routes
            .iter()
            .filter(|r| !r.sinks.is_empty())
            .map(|r| (r.prefix.clone(), r.threshold))
            .collect();
        let host: Arc<str> = Arc::from(self.host.unwrap_or_else(default_host));
        let counters = Arc::new(Counters::default());
        let (tx, rx) = crossbeam_channel::bounded(self.queue_capacity);
        let worker = Worker {
            rx,
            encoder: GelfEncoder::new(&host),
            sinks: self
                .sinks
                .into_iter()
                .map(|(name, sink)| SinkSlot {
                    name,
                    sink,
                    last_entry: u64::MAX,
                    dirty: false,
                    failing: false,
                })
                .collect(),
            routes,
            rewriters: self.rewriters,
            counters: counters.clone(),
            dropped_reported: 0,
            entry_seq: 0,
            line: Vec::with_capacity(1024),
        };
        let handle = std::thread::Builder::new()
            .name("quill-log-worker".into())
            .spawn(move || worker.run())
            .map_err(Error::Spawn)?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                tx,
                when_full: self.when_full,
                counters,
                filters,
                host,
                worker: Mutex::new(Some(handle)),
            }),
        })
    }
}

pub(crate) fn default_host() -> String {
    let name = gethostname::gethostname();
    let name = name.to_string_lossy();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name.into_owned()
    }
}

/// The sending side of a log queue: loggers, the tracing layer and the log backend push
/// entries here. Cheap to clone; the worker stops (after writing everything queued) when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Sender<Message>,
    when_full: WhenFull,
    counters: Arc<Counters>,
    filters: Vec<(String, u8)>,
    host: Arc<str>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // No other sender exists any more: everything queued before Shutdown gets written.
        let _ = self.tx.send(Message::Shutdown);
        let handle = match self.worker.get_mut() {
            Ok(h) => h.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("host", &self.inner.host)
            .field("when_full", &self.inner.when_full)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Dispatcher {
    /// Queues `entry` according to the [`WhenFull`] policy.
    pub fn send(&self, entry: Entry) {
        match self.inner.when_full {
            WhenFull::Block => {
                // Fails only if the worker is gone; nothing sensible to do with the entry then.
                let _ = self.inner.tx.send(Message::Entry(entry));
            }
            WhenFull::Drop => match self.inner.tx.try_send(Message::Entry(entry)) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }

    /// Waits until every entry queued before this call is written and the sinks are flushed.
    pub fn flush(&self) -> Result<(), Error> {
        self.flush_timeout(EXIT_FLUSH_TIMEOUT)
    }

    /// [`Dispatcher::flush`], giving up after `timeout`.
    pub fn flush_timeout(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        match self
            .inner
            .tx
            .send_deadline(Message::Flush(ack_tx), deadline)
        {
            Ok(()) => {}
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => {
                return Err(Error::FlushTimeout(timeout));
            }
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                return Err(Error::WorkerGone);
            }
        }
        match ack_rx.recv_deadline(deadline) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(Error::FlushTimeout(timeout)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(Error::WorkerGone),
        }
    }

    /// Entries dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// The dispatcher's counters.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            dropped: c.dropped.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            sink_errors: c.sink_errors.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
        }
    }

    /// The GELF `host` of this dispatcher's entries.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Whether some route accepts `level` for `facility`.
    pub fn enabled(&self, facility: &str, level: Level) -> bool {
        level.as_u8() < self.threshold_for(facility)
    }

    /// One more than the least severe level any route accepts for `facility` (0: none).
    pub(crate) fn threshold_for(&self, facility: &str) -> u8 {
        self.inner
            .filters
            .iter()
            .filter(|(prefix, _)| facility_matches(prefix, facility))
            .map(|&(_, t)| t)
            .max()
            .unwrap_or(THRESHOLD_NONE)
    }
}

/// Flushes its dispatcher when dropped: keep it alive in `main`.
#[must_use = "dropping the guard flushes the log queue; bind it: `let _guard = ...`"]
#[derive(Debug)]
pub struct LogGuard {
    dispatcher: Dispatcher,
}

impl LogGuard {
    /// A guard that flushes `dispatcher` on drop.
    pub fn new(dispatcher: Dispatcher) -> LogGuard {
        LogGuard { dispatcher }
    }

    /// The guarded dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let _ = self.dispatcher.flush();
    }
}

struct RouteRuntime {
    prefix: String,
    threshold: u8,
    sinks: Vec<usize>,
}

struct SinkSlot {
    name: String,
    sink: Box<dyn Sink>,
    /// Sequence number of the last entry written here (to write each entry once per sink).
    last_entry: u64,
    dirty: bool,
    failing: bool,
}

struct Worker {
    rx: Receiver<Message>,
    encoder: GelfEncoder,
    sinks: Vec<SinkSlot>,
    routes: Vec<RouteRuntime>,
    rewriters: Vec<Rewriter>,
    counters: Arc<Counters>,
    dropped_reported: u64,
    entry_seq: u64,
    line: Vec<u8>,
}

/// Entries handled before the sinks are flushed even if more are waiting.
const MAX_BATCH: usize = 4096;

impl Worker {
    fn run(mut self) {
        let mut acks: Vec<Sender<()>> = Vec::new();
        loop {
            let mut shutdown = false;
            match self.rx.recv() {
                Ok(m) => self.handle(m, &mut acks, &mut shutdown),
                Err(_) => shutdown = true,
            }
            let mut n = 1;
            while !shutdown && n < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(m) => self.handle(m, &mut acks, &mut shutdown),
                    Err(_) => break,
                }
                n += 1;
            }
            self.report_drops();
            self.flush_sinks();
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
            if shutdown {
                // Drain whatever is left (a Shutdown is the last message sent).
                while let Ok(m) = self.rx.try_recv() {
                    let mut ignored = false;
                    self.handle(m, &mut acks, &mut ignored);
                }
                self.report_drops();
                self.flush_sinks();
                for ack in acks.drain(..) {
                    let _ = ack.send(());
                }
                return;
            }
        }
    }

    fn handle(&mut self, message: Message, acks: &mut Vec<Sender<()>>, shutdown: &mut bool) {
        match message {
            Message::Entry(entry) => {
                // User code (rewriters, custom sinks) must not take logging down with it.
                let processed =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process(entry)));
                if processed.is_err() {
                    self.counters.panics.fetch_add(1, Ordering::Relaxed);
                }
            }
            Message::Flush(ack) => acks.push(ack),
            Message::Shutdown => *shutdown = true,
        }
    }

    fn report_drops(&mut self) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_reported {
            let delta = dropped - self.dropped_reported;
            self.dropped_reported = dropped;
            let entry = Entry::from_parts(
                Facility::Static(SELF_FACILITY),
                Level::Warning,
                "log entries dropped: queue full".into(),
                vec![
                    Field::from_value("dropped", Value::from(delta)),
                    Field::from_value("dropped_total", Value::from(dropped)),
                ],
                None,
            );
            self.process(entry);
        }
    }

    fn process(&mut self, mut entry: Entry) {
        entry.normalize();
        for rewriter in &self.rewriters {
            if rewriter.applies_to(entry.facility()) {
                rewriter.apply(&mut entry);
            }
        }
        self.entry_seq += 1;
        let seq = self.entry_seq;
        let mut encoded = false;
        let mut written = false;
        for route in &self.routes {
            if entry.level.as_u8() >= route.threshold
                || !facility_matches(&route.prefix, entry.facility())
            {
                continue;
            }
            for &sink_id in &route.sinks {
                let slot = &mut self.sinks[sink_id];
                if slot.last_entry == seq {
                    continue;
                }
                slot.last_entry = seq;
                if !encoded {
                    self.line.clear();
                    self.encoder.encode(&entry, &mut self.line);
                    encoded = true;
                }
                slot.dirty = true;
                match slot.sink.write(&entry, &self.line) {
                    Ok(()) => {
                        written = true;
                        slot.failing = false;
                    }
                    Err(e) => sink_failed(slot, &self.counters, "write", &e),
                }
            }
        }
        if written {
            self.counters.written.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush_sinks(&mut self) {
        for slot in &mut self.sinks {
            if slot.dirty {
                slot.dirty = false;
                if let Err(e) = slot.sink.flush() {
                    sink_failed(slot, &self.counters, "flush", &e);
                }
            }
        }
    }
}

/// Counts a sink failure; says so on stderr once per failing streak (the library cannot log
/// its own sink errors through the sink that fails).
fn sink_failed(slot: &mut SinkSlot, counters: &Counters, what: &str, e: &std::io::Error) {
    counters.sink_errors.fetch_add(1, Ordering::Relaxed);
    if !slot.failing {
        slot.failing = true;
        eprintln!("quill logging: sink {:?}: {what} failed: {e}", slot.name);
    }
}
