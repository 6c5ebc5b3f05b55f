//! The topology runner: named sources → the journal → named sinks, reload, orderly shutdown.
//!
//! [`run`] opens the journal under `<data_dir>/journal`, binds every listener, starts every sink on
//! its own thread with its own journal cursor, starts every source (`topology`), writes the pid
//! file and logs a status line every `status_interval`. On SIGHUP (or `quill reload`) it re-reads
//! the config and applies what changed in place ([`reload`]); on SIGINT/SIGTERM it stops the
//! sources (each flushes what it read), closes the journal and lets every sink drain what is
//! journaled before returning. Records no sink takes are counted ([`unrouted`]).
//!
//! This module owns the tokio runtime and the wiring; the sources, sinks and journal own their I/O.

mod descriptors;
pub mod reload;
mod topology;
pub mod unrouted;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::accounting::stream::JoinSettings;
use crate::component::ComponentError;
use crate::config::Config;
use crate::journal::{Journal, JournalError};
use crate::parsers::ParserRegistry;
use topology::Topology;

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
    /// A listener that is not a component's own (the search API).
    #[error("{what}: {source}")]
    Listen {
        what: String,
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
    #[error("pid_file {path}: {source}")]
    PidFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub use crate::component::{Shutdown, ShutdownTrigger, SourceContext};
pub use crate::telemetry::{SinkStats, SourceStats};

/// Runs the topology until SIGINT/SIGTERM, then drains and returns. Without a config file to
/// re-read, SIGHUP is logged and ignored.
pub fn run(config: Config) -> Result<(), PipelineError> {
    run_daemon(config, None)
}

/// [`run`] for the config read from `path`: SIGHUP re-reads it and applies what changed.
pub fn run_file(config: Config, path: &Path) -> Result<(), PipelineError> {
    run_daemon(config, Some(path.to_path_buf()))
}

fn run_daemon(config: Config, path: Option<PathBuf>) -> Result<(), PipelineError> {
    crate::limits::raise_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("quill-rt")
        .enable_all()
        .build()
        .map_err(PipelineError::Runtime)?;
    let (trigger, shutdown) = Shutdown::new();
    let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
    // Installed before anything starts: from here on SIGHUP no longer kills the process.
    let signals = {
        let _guard = runtime.enter();
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        let hup = signal(SignalKind::hangup());
        runtime.spawn(async move {
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (term, int, hup) else {
                let _ = tokio::signal::ctrl_c().await;
                trigger.trigger();
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => { let _ = reload_tx.send(()); }
                }
            }
            tracing::info!("Shutdown requested; draining.");
            trigger.trigger();
        })
    };
    let reloads = Reloads {
        path,
        requests: reload_rx,
    };
    let result = serve(config, &runtime, shutdown, Some(reloads));
    signals.abort();
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Where reload requests come from, and the config file they re-read.
pub struct Reloads {
    /// The config file; `None`: requests are logged and ignored.
    pub path: Option<PathBuf>,
    pub requests: tokio::sync::mpsc::UnboundedReceiver<()>,
}

/// Runs the topology on `runtime` until `shutdown` fires (no reload).
pub fn run_until(
    config: Config,
    runtime: &tokio::runtime::Runtime,
    shutdown: Shutdown,
) -> Result<(), PipelineError> {
    serve(config, runtime, shutdown, None)
}

enum Event {
    Shutdown,
    Reload,
    Tick,
}

/// Runs the topology on `runtime` until `shutdown` fires, applying reloads from `reloads`.
pub fn serve(
    config: Config,
    runtime: &tokio::runtime::Runtime,
    shutdown: Shutdown,
    mut reloads: Option<Reloads>,
) -> Result<(), PipelineError> {
    let pid_path = config.pid_path();
    let status_every = config.status_interval.0;
    let mut config = config;
    descriptors::fit(&mut config, None);
    let mut topo = Topology::start(config, runtime)?;
    let pid_file = match reload::PidFile::create(&pid_path) {
        Ok(p) => p,
        Err(source) => {
            let _ = topo.stop_all();
            return Err(PipelineError::PidFile {
                path: pid_path.display().to_string(),
                source,
            });
        }
    };
    if let Err(e) = crate::host::drop_privileges(
        topo.config.user.as_deref(),
        topo.config.group.as_deref(),
        &writable_paths(&topo.config),
    ) {
        let _ = topo.stop_all();
        return Err(PipelineError::Setting {
            key: "user".into(),
            message: e.to_string(),
        });
    }
    topo.ops
        .update(true, topo.source_stats(), topo.sink_stats());
    tracing::info!(
        sources = topo.sources.len(),
        sinks = topo.sinks.len(),
        data_dir = %topo.data_dir().display(),
        pid_file = %pid_path.display(),
        "Quill is running."
    );
    crate::host::notify_ready();
    crate::host::start_watchdog(&shutdown);

    let mut sd = shutdown.clone();
    let mut tick = {
        let _guard = runtime.enter();
        tokio::time::interval(Duration::from_millis(100))
    };
    let mut next_status = Instant::now() + status_every;
    loop {
        let event = runtime.block_on(async {
            let reload = async {
                match reloads.as_mut() {
                    Some(r) => r.requests.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sd.triggered() => Event::Shutdown,
                Some(()) = reload => Event::Reload,
                _ = tick.tick() => Event::Tick,
            }
        });
        match event {
            Event::Shutdown => break,
            Event::Reload => {
                if let Some(r) = &reloads {
                    crate::host::notify_reloading();
                    apply_reload(&mut topo, r.path.as_deref(), runtime);
                    crate::host::notify_ready();
                }
            }
            Event::Tick => {
                let (sources, sinks) = (topo.source_stats(), topo.sink_stats());
                let parsers = topo.parsing.parsers.clone();
                crate::telemetry::publish(&sources, &sinks, &topo.journal, &parsers);
                topo.ops.update(true, sources.clone(), sinks.clone());
                let unrouted = topo.unrouted.counts();
                for (source, n) in &unrouted {
                    metrics::counter!("quill_unrouted_total", "source" => source.clone())
                        .absolute(*n);
                }
                if Instant::now() >= next_status {
                    next_status += status_every;
                    let running: Vec<(String, Option<String>)> = topo
                        .sources
                        .iter()
                        .map(|(n, s)| (n.clone(), s.running.detail()))
                        .collect();
                    let line = status_text(&sources, &running, &sinks, &topo.journal, &parsers);
                    tracing::info!("{line}{}", unrouted_text(&unrouted));
                }
            }
        }
    }

    // Orderly stop: sources flush, the journal closes, sinks drain.
    crate::host::notify_stopping();
    let (sources, sinks) = (topo.source_stats(), topo.sink_stats());
    let (first_error, details) = topo.stop_all();
    let parsers = topo.parsing.parsers.clone();
    tracing::info!(
        "{}{}",
        status_text(&sources, &details, &sinks, &topo.journal, &parsers),
        unrouted_text(&topo.unrouted.counts())
    );
    drop(pid_file);
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Re-reads the config at `path` and applies it; on an error the running topology stays.
fn apply_reload(topo: &mut Topology, path: Option<&Path>, runtime: &tokio::runtime::Runtime) {
    let Some(path) = path else {
        tracing::warn!("Reload requested, but this pipeline has no config file to re-read.");
        return;
    };
    tracing::info!(config = %path.display(), "Reload requested.");
    let started = Instant::now();
    let mut config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("Reload failed, the running config stays: {e}");
            return;
        }
    };
    descriptors::fit(&mut config, None);
    match topo.reload(config, runtime) {
        Ok((sources, sinks)) => tracing::info!(
            sources = %sources.summary(),
            sinks = %sinks.summary(),
            took_ms = started.elapsed().as_millis() as u64,
            "Reloaded."
        ),
        Err(e) => tracing::error!("Reload failed, the running config stays: {e}"),
    }
}

fn unrouted_text(counts: &[(String, u64)]) -> String {
    let mut s = String::new();
    for (source, n) in counts.iter().filter(|(_, n)| *n > 0) {
        let _ = write!(
            s,
            "{}{source}={n}",
            if s.is_empty() { " | unrouted: " } else { " " }
        );
    }
    s
}

/// What Quill writes to: the data directory and every file sink's output.
fn writable_paths(config: &Config) -> Vec<&Path> {
    let mut paths = vec![config.data_dir.as_path()];
    paths.extend(config.sinks.values().filter_map(|s| match s {
        crate::config::SinkConfig::File(f) => Some(f.path.as_path()),
        _ => None,
    }));
    paths
}

/// Reads `[bytes]`'s haproxy.cfg into the sinks' join settings.
pub(crate) fn join_settings(bytes: &crate::config::BytesSection) -> Result<JoinSettings, String> {
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
        line.push_str(&crate::telemetry::source_losses(s));
    }
    for (name, s) in sinks {
        let _ = write!(
            line,
            " | sink {name}: {} records{}",
            s.records.load(Ordering::Relaxed),
            crate::telemetry::sink_status(s)
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
