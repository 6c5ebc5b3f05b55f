//! The topology runner: named sources → the journal → named sinks, and orderly shutdown.
//!
//! [`run`] opens the journal under `<data_dir>/journal`, starts every sink on its own thread with
//! its own journal cursor, starts every source, logs a status line every `status_interval`, and on
//! SIGINT/SIGTERM stops the sources (each flushes what it read), closes the journal and lets every
//! sink drain what is journaled before returning.
//!
//! This module owns the tokio runtime and the wiring; the sources, sinks and journal own their I/O.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::accounting::stream::JoinSettings;
use crate::component::{ComponentError, Running, SinkContext};
use crate::config::{Config, SinkConfig, SourceConfig};
use crate::journal::{Journal, JournalError};
use crate::parse::registry::ParserRegistry;
use crate::record::Origin;
use crate::{sinks, sources};

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("source `{name}`: {source}")]
    Source {
        name: String,
        #[source]
        source: ComponentError,
    },
    #[error("sink `{name}`: {source}")]
    Sink {
        name: String,
        #[source]
        source: ComponentError,
    },
    /// A top-level setting (`bytes.haproxy_config`, `parse`).
    #[error("{key}: {message}")]
    Setting { key: String, message: String },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub use crate::component::{Shutdown, ShutdownTrigger, SourceContext};
pub use crate::telemetry::{SinkStats, SourceStats};

/// Runs the topology until SIGINT/SIGTERM, then drains and returns.
pub fn run(config: Config) -> Result<(), PipelineError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("quill-rt")
        .enable_all()
        .build()
        .map_err(PipelineError::Runtime)?;
    let (trigger, shutdown) = Shutdown::new();
    let signals = runtime.spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutdown requested; draining.");
        trigger.trigger();
    });
    let result = run_until(config, &runtime, shutdown);
    signals.abort();
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the topology on `runtime` until `shutdown` fires.
pub fn run_until(
    config: Config,
    runtime: &tokio::runtime::Runtime,
    shutdown: Shutdown,
) -> Result<(), PipelineError> {
    let hostname = config
        .hostname
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    std::fs::create_dir_all(&config.data_dir).map_err(|source| PipelineError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let journal = Journal::open(
        &config.data_dir.join("journal"),
        config.journal.to_journal_config(),
    )?;

    // A cursor no sink owns keeps every segment it has not read: say so, loudly.
    for (name, _, behind) in journal.stats().cursors {
        if !config.sinks.contains_key(&name) {
            tracing::warn!(
                cursor = %name,
                behind,
                "Journal cursor `{name}` belongs to no configured sink: the journal keeps what it has not read and fills up. Drop it with `quill journal drop-cursor {name} -c CONFIG` (or configure the sink again)."
            );
        }
    }

    // Every sink that writes GELF parses a record with the parser of its source.
    let mut parsers = Vec::new();
    for (name, source) in &config.sources {
        if let Some(options) = source.parse_options() {
            let parser = options
                .to_parser_config()
                .and_then(|c| c.compile().map_err(|e| e.to_string()))
                .map_err(|message| PipelineError::Source {
                    name: name.clone(),
                    source: ComponentError::Setting(message),
                })?;
            parsers.push((name.clone(), parser));
        }
    }
    // The byte join of the sinks that write GELF (its haproxy.cfg is read first: the default
    // parser reads it too).
    let join = match &config.bytes {
        Some(bytes) => Some(
            join_settings(bytes).map_err(|message| PipelineError::Setting {
                key: "bytes.haproxy_config".into(),
                message,
            })?,
        ),
        None => None,
    };
    let default_parser = config
        .parse
        .parse_options(config.bytes.as_ref())
        .to_parser_config()
        .and_then(|c| c.compile().map_err(|e| e.to_string()))
        .map_err(|message| PipelineError::Setting {
            key: "parse".into(),
            message,
        })?;
    let parsers = Arc::new(ParserRegistry::with_default(parsers, default_parser));
    let host: Arc<str> = hostname.as_str().into();

    // Sinks first, so their cursors exist before anything is appended.
    let mut sinks: Vec<(String, Running)> = Vec::new();
    let mut sink_stats = Vec::new();
    for (name, sink) in &config.sinks {
        let stats = Arc::new(SinkStats::default());
        if let SinkConfig::Index(cfg) = sink
            && !cfg.listen.is_empty()
        {
            start_search_api(&cfg.listen, &config.data_dir, runtime, &shutdown).map_err(
                |message| PipelineError::Sink {
                    name: name.clone(),
                    source: ComponentError::Setting(message),
                },
            )?;
        }
        let (stop, sink_shutdown) = Shutdown::new();
        let ctx = SinkContext {
            name: name.clone(),
            cursor: journal.cursor(name)?,
            stats: stats.clone(),
            shutdown: sink_shutdown,
            parsers: parsers.clone(),
            data_dir: config.data_dir.clone(),
            host: host.clone(),
            join: join.clone(),
        };
        let running = sinks::start(sink, ctx, stop).map_err(|source| PipelineError::Sink {
            name: name.clone(),
            source,
        })?;
        sinks.push((name.clone(), running));
        sink_stats.push((name.clone(), stats));
    }

    let mut sources_running: Vec<(String, Running)> = Vec::new();
    let mut source_stats = Vec::new();
    for (name, source) in &config.sources {
        let stats = Arc::new(SourceStats::default());
        let (category, format) = match source {
            SourceConfig::File(f) => (Config::source_category(name, &f.category), f.format),
            SourceConfig::Syslog(s) => (Config::source_category(name, &s.category), s.format),
            SourceConfig::Forward(_) => (name.as_str(), crate::record::Format::Auto),
            SourceConfig::Gelf(g) => (
                Config::source_category(name, &g.category),
                crate::record::Format::Gelf,
            ),
        };
        let (stop, source_shutdown) = Shutdown::new();
        let ctx = SourceContext {
            name: name.clone(),
            origin: Origin::new(name, category, format, &hostname),
            journal: journal.clone(),
            stats: stats.clone(),
            shutdown: source_shutdown,
            parsers: parsers.clone(),
            data_dir: config.data_dir.clone(),
            host: host.clone(),
        };
        let running =
            sources::start(source, ctx, stop, runtime).map_err(|source| PipelineError::Source {
                name: name.clone(),
                source,
            })?;
        sources_running.push((name.clone(), running));
        source_stats.push((name.clone(), stats));
    }
    tracing::info!(
        sources = config.sources.len(),
        sinks = config.sinks.len(),
        data_dir = %config.data_dir.display(),
        "Quill is running."
    );

    // Status line until shutdown.
    if let Some(addr) = &config.metrics_listen {
        let addr: std::net::SocketAddr = addr.parse().map_err(|e| PipelineError::Setting {
            key: "metrics_listen".into(),
            message: format!("invalid address `{addr}`: {e}"),
        })?;
        let _guard = runtime.enter();
        crate::telemetry::install_exporter(addr).map_err(|message| PipelineError::Setting {
            key: "metrics_listen".into(),
            message,
        })?;
        tracing::info!(%addr, "Serving Prometheus metrics at /metrics.");
    }
    let status_every = config.status_interval.0;
    let mut sd = shutdown.clone();
    let status_journal = journal.clone();
    runtime.block_on(async {
        let mut next_status = Instant::now() + status_every;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = sd.triggered() => break,
                _ = tick.tick() => {
                    crate::telemetry::publish(&source_stats, &sink_stats, &status_journal, &parsers);
                    if Instant::now() >= next_status {
                        next_status += status_every;
                        tracing::info!("{}", status_line(&source_stats, &sources_running, &sink_stats, &status_journal, &parsers));
                    }
                }
            }
        }
    });

    // Orderly stop: sources flush, the journal closes, sinks drain.
    let handle = runtime.handle();
    let mut first_error = None;
    for (_, source) in &sources_running {
        source.stop();
    }
    let mut details = Vec::new();
    for (name, source) in sources_running {
        details.push((name.clone(), source.detail()));
        if let Err(source) = source.join(handle) {
            tracing::error!(source = %name, "Source failed: {source}");
            first_error.get_or_insert(PipelineError::Source { name, source });
        }
    }
    journal.close()?;
    for (_, sink) in &sinks {
        sink.stop();
    }
    for (name, sink) in sinks {
        if let Err(source) = sink.join(handle) {
            tracing::error!(sink = %name, "Sink failed: {source}");
            first_error.get_or_insert(PipelineError::Sink { name, source });
        }
    }
    tracing::info!(
        "{}",
        status_text(&source_stats, &details, &sink_stats, &journal, &parsers)
    );
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads `[bytes]`'s haproxy.cfg into the sinks' join settings.
fn join_settings(bytes: &crate::config::BytesSection) -> Result<JoinSettings, String> {
    let path = &bytes.haproxy_config;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let cfg = crate::parse::haproxy::config::HaproxyConfig::parse(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut model = crate::accounting::HeaderModel::from_config(&cfg);
    model.assume_clients_keep_alive = bytes.assume_keep_alive_clients;
    Ok(JoinSettings {
        model,
        window: bytes.window.0,
        capacity: bytes.capacity,
    })
}

/// Serves the search API for `quill search --server` until shutdown.
fn start_search_api(
    addr: &str,
    data_dir: &std::path::Path,
    runtime: &tokio::runtime::Runtime,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot serve the search API on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("search API {addr}: {e}"))?;
    let _guard = runtime.enter();
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| format!("search API {addr}: {e}"))?;
    let root = crate::index::index_root(data_dir);
    let mut sd = shutdown.clone();
    runtime.spawn(async move {
        if let Err(e) =
            crate::index::http::serve_search_api(
                listener,
                root,
                async move { sd.triggered().await },
            )
            .await
        {
            tracing::error!("Search API stopped: {e}.");
        }
    });
    tracing::info!(%addr, "Serving the search API.");
    Ok(())
}

fn status_line(
    sources: &[(String, Arc<SourceStats>)],
    running: &[(String, Running)],
    sinks: &[(String, Arc<SinkStats>)],
    journal: &Journal,
    parsers: &ParserRegistry,
) -> String {
    let details: Vec<(String, Option<String>)> = running
        .iter()
        .map(|(name, r)| (name.clone(), r.detail()))
        .collect();
    status_text(sources, &details, sinks, journal, parsers)
}

fn status_text(
    sources: &[(String, Arc<SourceStats>)],
    details: &[(String, Option<String>)],
    sinks: &[(String, Arc<SinkStats>)],
    journal: &Journal,
    parsers: &ParserRegistry,
) -> String {
    let total_in: u64 = sources
        .iter()
        .map(|(_, s)| s.records.load(Ordering::Relaxed))
        .sum();
    let total_out: u64 = sinks
        .iter()
        .map(|(_, s)| s.records.load(Ordering::Relaxed))
        .sum();
    let mut line = format!("status: records in={total_in} out={total_out}");
    for (name, s) in sources {
        let _ = write!(
            line,
            " | source {name}: {} records, {} bytes",
            s.records.load(Ordering::Relaxed),
            s.bytes.load(Ordering::Relaxed)
        );
        if let Some((_, Some(detail))) = details.iter().find(|(n, _)| n == name) {
            let _ = write!(line, ", {detail}");
        }
        let dropped = s.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            let _ = write!(line, ", {dropped} dropped (journal full)");
        }
        let kernel = s.kernel_dropped.load(Ordering::Relaxed);
        if kernel > 0 {
            let _ = write!(line, ", {kernel} dropped by the kernel");
        }
        let errors = s.errors.load(Ordering::Relaxed);
        if errors > 0 {
            let _ = write!(line, ", {errors} malformed");
        }
    }
    for (name, s) in sinks {
        let _ = write!(
            line,
            " | sink {name}: {} records",
            s.records.load(Ordering::Relaxed)
        );
    }
    let parse_errors: Vec<String> = parsers
        .parse_errors()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(source, n)| format!("{source}={n}"))
        .collect();
    if !parse_errors.is_empty() {
        let _ = write!(line, " | parse errors: {}", parse_errors.join(" "));
    }
    let js = journal.stats();
    let _ = write!(line, " | journal: last_seq={}", js.last_seq);
    for (cursor, _, lag) in js.cursors {
        let _ = write!(line, " lag[{cursor}]={lag}");
    }
    line
}
