//! The running topology: named sources and sinks with their [`Running`] handles, started from a
//! config, changed in place by a reload ([`super::reload`] says what changes), stopped in order.
//!
//! Start: every listener (metrics, search API, syslog sockets) is bound first; then sinks (their
//! cursors exist before anything is appended), then sources. A failed start stops what already
//! started, in reverse order. Reload: removed and changed sources stop, removed and changed
//! sinks stop (joined: a sink never runs twice on one cursor), then changed and new sinks start,
//! then changed and new sources. Unchanged components are not touched (their sockets stay open);
//! a changed source takes over its previous instance's sockets for the addresses that stayed
//! (`sources::syslog::handover`), so they never close.
//!
//! This module owns the wiring; components own their I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::accounting::stream::JoinSettings;
use crate::component::{
    ComponentError, Running, Shutdown, ShutdownTrigger, SinkContext, SourceContext,
};
use crate::config::{Config, SourceConfig};
use crate::journal::Journal;
use crate::parsers::ParserRegistry;
use crate::record::Origin;
use crate::sinks::route::Route;
use crate::telemetry::{SinkStats, SourceStats};
use crate::{sinks, sources};

use super::reload::{self, Plan};
use super::unrouted::Unrouted;
use super::{PipelineError, join_settings};

/// What the sinks that parse are started with, built from a config.
pub(super) struct Parsing {
    pub parsers: Arc<ParserRegistry>,
    pub join: Option<JoinSettings>,
    pub fingerprint: String,
}

impl Parsing {
    pub fn build(config: &Config) -> Result<Parsing, PipelineError> {
        let mut parsers = Vec::new();
        for (name, source) in &config.sources {
            if let Some(options) = source.parse_options() {
                let parser = options.compile(None).map_err(|e| PipelineError::Source {
                    name: name.clone(),
                    source: ComponentError::Setting(e.to_string()),
                })?;
                parsers.push((name.clone(), parser));
            }
        }
        // The byte join's haproxy.cfg is read first: the default parser reads it too.
        let join = match &config.bytes {
            Some(bytes) => {
                Some(
                    join_settings(bytes).map_err(|message| PipelineError::Setting {
                        key: "bytes.haproxy_config".into(),
                        message,
                    })?,
                )
            }
            None => None,
        };
        let default_parser = config
            .parse
            .parse_options(config.bytes.as_ref())
            .compile(None)
            .map_err(|e| PipelineError::Setting {
                key: "parse".into(),
                message: e.to_string(),
            })?;
        Ok(Parsing {
            parsers: Arc::new(ParserRegistry::with_default(parsers, default_parser)),
            join,
            fingerprint: reload::parse_fingerprint(config),
        })
    }
}

/// A running component and what outlives its restarts (its counters).
pub(super) struct Slot<S> {
    pub running: Running,
    pub stats: Arc<S>,
    pub fingerprint: String,
}

/// A running search API (`listen` of an index sink).
struct SearchApi {
    stop: ShutdownTrigger,
}

pub(super) struct Topology {
    pub config: Config,
    pub journal: Journal,
    pub parsing: Parsing,
    pub hostname: String,
    pub sources: BTreeMap<String, Slot<SourceStats>>,
    pub sinks: BTreeMap<String, Slot<SinkStats>>,
    pub unrouted: Unrouted,
    /// Duplicates of each running source's sockets, handed to its next instance on reload.
    held: BTreeMap<String, sources::Held>,
    search: BTreeMap<String, SearchApi>,
    /// What the operations server reports (refreshed by the pipeline's tick).
    pub ops: OpsView,
    ops_stop: ShutdownTrigger,
    runtime: tokio::runtime::Handle,
}

/// The components the operations server (`/status`, `/health/ready`) reports on: a snapshot the
/// pipeline refreshes, so a reload's new components show up.
#[derive(Clone, Default)]
pub struct OpsView {
    inner: Arc<std::sync::Mutex<OpsSnapshot>>,
}

type OpsSnapshot = (
    bool,
    Vec<(String, Arc<SourceStats>)>,
    Vec<(String, Arc<SinkStats>)>,
);

impl OpsView {
    /// Replaces the snapshot; `ready` once every component started.
    pub fn update(
        &self,
        ready: bool,
        sources: Vec<(String, Arc<SourceStats>)>,
        sinks: Vec<(String, Arc<SinkStats>)>,
    ) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = (ready, sources, sinks);
    }

    fn snapshot(&self) -> OpsSnapshot {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn hostname_of(config: &Config) -> String {
    config
        .hostname
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}

/// The search API addresses the config's index sinks serve.
fn search_listens(config: &Config) -> Vec<String> {
    let mut v: Vec<String> = config
        .sinks
        .values()
        .filter_map(|s| match s {
            crate::config::SinkConfig::Index(i) if !i.listen.is_empty() => Some(i.listen.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The search API's options (limits, token, TLS) from the first index sink that serves `addr`;
/// token and certificate files are read now, so a reload re-reads them.
fn search_options(
    config: &Config,
    addr: &str,
    hostname: &str,
) -> Result<crate::index::serve::ApiOptions, String> {
    let Some(cfg) = config.sinks.values().find_map(|s| match s {
        crate::config::SinkConfig::Index(i) if i.listen == addr => Some(i),
        _ => None,
    }) else {
        return Err(format!("no index sink serves {addr}"));
    };
    let token = crate::transport::load_token(
        cfg.search_token.as_deref(),
        cfg.search_token_file.as_deref(),
    )?
    .map(|t| String::from_utf8_lossy(&t).into_owned());
    let tls = match (&cfg.search_tls_cert, &cfg.search_tls_key) {
        (Some(cert), Some(key)) => Some(
            crate::transport::tls::server_config(cert, key, None)
                .map_err(|e| format!("search API TLS: {e}"))?,
        ),
        _ => None,
    };
    Ok(crate::index::serve::ApiOptions {
        limits: cfg.search_limits(),
        max_concurrent: cfg.search_max_concurrent,
        max_connections: cfg.search_max_connections,
        token,
        tls,
        server_name: hostname.to_string(),
    })
}

fn bind_search(addr: &str) -> Result<std::net::TcpListener, PipelineError> {
    let bind_error = |source| PipelineError::Listen {
        what: "search API (sinks.*.listen)".into(),
        source: ComponentError::Bind {
            addr: addr.to_string(),
            source,
        },
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    Ok(listener)
}

/// How long sources may take to stop before the journal closes under them.
const SOURCE_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A source waiting for journal space that will not come (a full disk) must not hold shutdown
/// forever: unless the returned sender is dropped within [`SOURCE_STOP_GRACE`], the journal is
/// closed, so waiting appends fail and count what they held as dropped.
fn close_if_sources_hang(journal: &Journal) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let journal = journal.clone();
    let _ = std::thread::Builder::new()
        .name("quill-stop".into())
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(SOURCE_STOP_GRACE)
            {
                tracing::warn!("Sources did not stop within {SOURCE_STOP_GRACE:?} (the journal cannot take more: is the disk full?); closing the journal under them.");
                let _ = journal.close();
            }
        });
    tx
}

impl Topology {
    /// Binds every listener, then starts sinks and sources; on a failure stops what started.
    pub fn start(
        config: Config,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Topology, PipelineError> {
        let hostname = hostname_of(&config);
        std::fs::create_dir_all(&config.data_dir).map_err(|source| PipelineError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let journal = Journal::open(
            &config.data_dir.join("journal"),
            config.journal.to_journal_config(),
        )?;
        if let Some(limit) = config.memory_limit {
            let budget = crate::memory::MemoryBudget::new(limit.0);
            budget.apply_allocator();
            journal.limit_memory(budget.journal_queue);
        }
        // A cursor no sink owns keeps every segment it has not read: say so, loudly.
        for (name, _, behind) in journal.stats().cursors {
            if !config.sinks.contains_key(&name) && name != super::unrouted::CURSOR {
                tracing::warn!(
                    cursor = %name,
                    behind,
                    "Journal cursor `{name}` belongs to no configured sink: the journal keeps what it has not read and fills up. Drop it with `quill journal drop-cursor {name} -c CONFIG` (or configure the sink again)."
                );
            }
        }
        let parsing = Parsing::build(&config)?;

        // Every listener first.
        let ops = OpsView::default();
        let (ops_stop, ops_shutdown) = Shutdown::new();
        if let Some(addr) = &config.metrics_listen {
            let setting = |message| PipelineError::Setting {
                key: "metrics_listen".into(),
                message,
            };
            let prometheus = crate::ops::install_recorder().map_err(setting)?;
            let (view, journal) = (ops.clone(), journal.clone());
            let report: crate::ops::Reporter = Arc::new(move || {
                let (ready, sources, sinks) = view.snapshot();
                crate::telemetry::report(ready, &sources, &sinks, &journal)
            });
            let addr = crate::ops::serve(addr, prometheus, report, runtime, &ops_shutdown)
                .map_err(|source| PipelineError::Listen {
                    what: "operations server (metrics_listen)".into(),
                    source,
                })?;
            tracing::info!(%addr, "Serving /metrics, /health/live, /health/ready and /status.");
        }
        let mut search_bound = Vec::new();
        for addr in search_listens(&config) {
            search_bound.push((addr.clone(), bind_search(&addr)?));
        }
        let mut bound = BTreeMap::new();
        for (name, source) in &config.sources {
            let b = sources::bind(source, name, None).map_err(|source| PipelineError::Source {
                name: name.clone(),
                source,
            })?;
            bound.insert(name.clone(), b);
        }

        let mut topo = Topology {
            journal,
            parsing,
            hostname,
            sources: BTreeMap::new(),
            sinks: BTreeMap::new(),
            unrouted: Unrouted::default(),
            held: BTreeMap::new(),
            search: BTreeMap::new(),
            ops,
            ops_stop,
            runtime: runtime.handle().clone(),
            config: config.clone(),
        };
        let started = (|| {
            for name in config.sinks.keys() {
                topo.start_sink(&config, name, None)?;
            }
            for (addr, listener) in search_bound {
                topo.serve_search(&config, &addr, listener)?;
            }
            // Before any source: a new accountant starts at what the journal holds now, and
            // what the sources journal from here on is counted.
            topo.unrouted.update(&topo.journal, topo.routes(&config));
            for (name, b) in bound {
                topo.start_source(&config, &name, b, None, runtime)?;
            }
            Ok(())
        })();
        if let Err(e) = started {
            tracing::error!("Start failed: {e}; stopping what started.");
            let _ = topo.stop_all();
            return Err(e);
        }
        Ok(topo)
    }

    fn routes(&self, config: &Config) -> Vec<Route> {
        config
            .sinks
            .values()
            .map(|s| Route::new(s.route()))
            .collect()
    }

    fn start_sink(
        &mut self,
        config: &Config,
        name: &str,
        stats: Option<Arc<SinkStats>>,
    ) -> Result<(), PipelineError> {
        let sink = &config.sinks[name];
        let err = |source| PipelineError::Sink {
            name: name.to_string(),
            source,
        };
        let stats = stats.unwrap_or_default();
        let (stop, shutdown) = Shutdown::new();
        let ctx = SinkContext {
            name: name.to_string(),
            cursor: self.journal.cursor(name).map_err(|e| err(e.into()))?,
            stats: stats.clone(),
            shutdown,
            parsers: self.parsing.parsers.clone(),
            data_dir: config.data_dir.clone(),
            host: self.hostname.as_str().into(),
            join: self.parsing.join.clone(),
        };
        let running = sinks::start(sink, ctx, stop).map_err(err)?;
        let fingerprint = reload::sink_fingerprint(sink, &self.hostname, &self.parsing.fingerprint);
        self.sinks.insert(
            name.to_string(),
            Slot {
                running,
                stats,
                fingerprint,
            },
        );
        Ok(())
    }

    fn start_source(
        &mut self,
        config: &Config,
        name: &str,
        bound: sources::Bound,
        stats: Option<Arc<SourceStats>>,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<(), PipelineError> {
        let source = &config.sources[name];
        let stats = stats.unwrap_or_default();
        let (category, format) = match source {
            SourceConfig::File(f) => (Config::source_category(name, &f.category), f.format),
            SourceConfig::Syslog(s) => (Config::source_category(name, &s.category), s.format),
            SourceConfig::Forward(_) | SourceConfig::Nats(_) => (name, crate::record::Format::Auto),
            SourceConfig::Scribe(s) => (name, s.format),
            SourceConfig::Relp(r) => (Config::source_category(name, &r.category), r.format),
            SourceConfig::Gelf(g) => (
                Config::source_category(name, &g.category),
                crate::record::Format::Gelf,
            ),
        };
        match bound.hold() {
            Some(h) => self.held.insert(name.to_string(), h),
            None => self.held.remove(name),
        };
        let (stop, shutdown) = Shutdown::new();
        let ctx = SourceContext {
            name: name.to_string(),
            origin: Origin::new(name, category, format, &self.hostname),
            journal: self.journal.clone(),
            stats: stats.clone(),
            shutdown,
            parsers: self.parsing.parsers.clone(),
            data_dir: config.data_dir.clone(),
            host: self.hostname.as_str().into(),
        };
        let running = sources::start_bound(source, bound, ctx, stop, runtime).map_err(|e| {
            PipelineError::Source {
                name: name.to_string(),
                source: e,
            }
        })?;
        self.sources.insert(
            name.to_string(),
            Slot {
                running,
                stats,
                fingerprint: reload::source_fingerprint(source, &self.hostname),
            },
        );
        Ok(())
    }

    fn serve_search(
        &mut self,
        config: &Config,
        addr: &str,
        listener: std::net::TcpListener,
    ) -> Result<(), PipelineError> {
        let opts = search_options(config, addr, &self.hostname).map_err(|message| {
            PipelineError::Listen {
                what: "search API (sinks.*.listen)".into(),
                source: ComponentError::Setting(message),
            }
        })?;
        let _guard = self.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| {
            PipelineError::Listen {
                what: "search API".into(),
                source: ComponentError::io(addr, source),
            }
        })?;
        let root = crate::index::index_root(&self.config.data_dir);
        let (stop, mut shutdown) = Shutdown::new();
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let auth = if opts.token.is_some() {
            "token required"
        } else {
            "no token"
        };
        self.runtime.spawn(async move {
            let stopped = async move { shutdown.triggered().await };
            if let Err(e) =
                crate::index::http::serve_search_api_with(listener, root, opts, stopped).await
            {
                tracing::error!("Search API stopped: {e}.");
            }
        });
        tracing::info!(%addr, "Serving the search API and the trace page at {scheme}://{addr}/ ({auth}).");
        self.search.insert(addr.to_string(), SearchApi { stop });
        Ok(())
    }

    /// Applies `new` in place; on an error nothing changes. Returns what changed.
    pub fn reload(
        &mut self,
        mut new: Config,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<(Plan, Plan), PipelineError> {
        for key in reload::fixed_changes(&self.config, &new) {
            tracing::warn!(
                key,
                "Reload: `{key}` cannot change while Quill runs; keeping the running value (restart to apply it)."
            );
        }
        reload::keep_fixed(&self.config, &mut new);
        let parsing = Parsing::build(&new)?;
        let hostname = hostname_of(&new);
        let old_sources: BTreeMap<String, String> = self
            .sources
            .iter()
            .map(|(n, s)| (n.clone(), s.fingerprint.clone()))
            .collect();
        let old_sinks: BTreeMap<String, String> = self
            .sinks
            .iter()
            .map(|(n, s)| (n.clone(), s.fingerprint.clone()))
            .collect();
        let new_sources = new
            .sources
            .iter()
            .map(|(n, s)| (n.clone(), reload::source_fingerprint(s, &hostname)))
            .collect();
        let new_sinks = new
            .sinks
            .iter()
            .map(|(n, s)| {
                let fp = reload::sink_fingerprint(s, &hostname, &parsing.fingerprint);
                (n.clone(), fp)
            })
            .collect();
        let source_plan = reload::diff(&old_sources, &new_sources);
        let sink_plan = reload::diff(&old_sinks, &new_sinks);

        // Stop: sources first (each flushes what it read), then sinks, all at once, then wait.
        let stopped_sources = stop_slots(&mut self.sources, &source_plan, &self.runtime);
        let stopped_sinks = stop_slots(&mut self.sinks, &sink_plan, &self.runtime);
        for name in &source_plan.removed {
            self.held.remove(name);
        }
        for name in &sink_plan.removed {
            tracing::info!(sink = %name, "Reload removed sink `{name}`: its journal cursor stays (and keeps what it has not read); `quill journal drop-cursor {name} -c CONFIG` removes it.");
        }
        self.hostname = hostname;
        self.parsing = parsing;
        let mut failures = 0;
        for name in sink_plan.to_start() {
            let stats = stopped_sinks.get(name).cloned();
            if let Err(e) = self.start_sink(&new, name, stats) {
                failures += 1;
                tracing::error!(sink = %name, "Reload could not start sink `{name}`: {e}.");
            }
        }
        self.update_search(&new);
        for name in source_plan.to_start() {
            let stats = stopped_sources.get(name).cloned();
            let held = self.held.remove(name);
            let started = sources::bind(&new.sources[name], name, held)
                .map_err(|source| PipelineError::Source {
                    name: name.clone(),
                    source,
                })
                .and_then(|b| self.start_source(&new, name, b, stats, runtime));
            if let Err(e) = started {
                failures += 1;
                tracing::error!(source = %name, "Reload could not start source `{name}`: {e}.");
            }
        }
        self.unrouted.update(&self.journal, self.routes(&new));
        self.config = new;
        if failures > 0 {
            tracing::warn!(
                failures,
                "Reload applied with components that did not start (a later reload retries them)."
            );
        }
        Ok((source_plan, sink_plan))
    }

    fn update_search(&mut self, config: &Config) {
        let wanted = search_listens(config);
        let gone: Vec<String> = self
            .search
            .keys()
            .filter(|a| !wanted.contains(a))
            .cloned()
            .collect();
        for addr in gone {
            if let Some(api) = self.search.remove(&addr) {
                api.stop.trigger();
            }
        }
        for addr in wanted {
            if self.search.contains_key(&addr) {
                continue;
            }
            let served = bind_search(&addr).and_then(|l| self.serve_search(config, &addr, l));
            if let Err(e) = served {
                tracing::error!("Reload: {e}.");
            }
        }
    }

    /// Orderly stop: sources flush (reverse order), the journal closes, sinks drain (reverse
    /// order). Returns the first error and the sources' last details.
    pub fn stop_all(&mut self) -> (Option<PipelineError>, Vec<(String, Option<String>)>) {
        let mut first_error = None;
        for slot in self.sources.values().rev() {
            slot.running.stop();
        }
        let sources_done = close_if_sources_hang(&self.journal);
        let mut details = Vec::new();
        let sources = std::mem::take(&mut self.sources);
        for (name, slot) in sources.into_iter().rev() {
            details.push((name.clone(), slot.running.detail()));
            if let Err(source) = slot.running.join(&self.runtime) {
                tracing::error!(source = %name, "Source failed: {source}");
                first_error.get_or_insert(PipelineError::Source { name, source });
            }
        }
        details.reverse();
        drop(sources_done);
        if let Err(e) = self.journal.close() {
            first_error.get_or_insert(e.into());
        }
        let dropped = self.journal.stats().dropped_journal_full;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "{dropped} records could not be journaled (the journal was full or its disk failed); file sources read theirs again at the next start."
            );
        }
        let sinks = std::mem::take(&mut self.sinks);
        // With the journal closed, file and index sinks drain it; forward sinks get their
        // `drain_timeout`.
        for slot in sinks.values() {
            slot.running.stop();
        }
        for (name, slot) in sinks.into_iter().rev() {
            if let Err(source) = slot.running.join(&self.runtime) {
                tracing::error!(sink = %name, "Sink failed: {source}");
                first_error.get_or_insert(PipelineError::Sink { name, source });
            }
        }
        self.unrouted.stop();
        self.held.clear();
        for api in std::mem::take(&mut self.search).into_values() {
            api.stop.trigger();
        }
        self.ops_stop.trigger();
        (first_error, details)
    }

    pub fn source_stats(&self) -> Vec<(String, Arc<SourceStats>)> {
        self.sources
            .iter()
            .map(|(n, s)| (n.clone(), s.stats.clone()))
            .collect()
    }

    pub fn sink_stats(&self) -> Vec<(String, Arc<SinkStats>)> {
        self.sinks
            .iter()
            .map(|(n, s)| (n.clone(), s.stats.clone()))
            .collect()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }
}

/// Stops the removed and changed components of `plan` (all asked first, then joined); returns
/// the stats of those stopped (a changed component keeps its counters).
fn stop_slots<S>(
    slots: &mut BTreeMap<String, Slot<S>>,
    plan: &Plan,
    runtime: &tokio::runtime::Handle,
) -> BTreeMap<String, Arc<S>> {
    let mut stopping = Vec::new();
    for name in plan.to_stop() {
        if let Some(slot) = slots.remove(name) {
            slot.running.stop();
            stopping.push((name.clone(), slot));
        }
    }
    let mut stats = BTreeMap::new();
    for (name, slot) in stopping {
        if let Err(e) = slot.running.join(runtime) {
            tracing::error!(component = %name, "Stopped with an error: {e}.");
        }
        stats.insert(name, slot.stats);
    }
    stats
}
