//! Quill's own metrics: per-source, per-sink and journal counters, and their Prometheus export.
//!
//! Stages count into plain atomics ([`SourceStats`], [`SinkStats`]); [`publish`] copies them into the
//! `metrics` registry ten times a second (served by [`crate::ops`] at `/metrics`), and [`report`]
//! builds the `/status` report. This module touches nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::component::HealthState;
use crate::journal::Journal;

/// Counters of one source.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// Records that could not be journaled (datagram sources when the journal is full).
    pub dropped: AtomicU64,
    /// Datagrams the kernel dropped before Quill could read them (socket receive queue overflow).
    pub kernel_dropped: AtomicU64,
    /// Malformed input (frames, lines) seen; the data itself is kept where it can be.
    pub errors: AtomicU64,
    /// Messages cut to the source's maximum message size (the rest of each is lost).
    pub truncated: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub refused_connections: AtomicU64,
    /// Forward source: HELLOs refused because the agent id is not one its credential may use
    /// (`identities`, `agent_id_from_certificate`), or no identity has the credential.
    pub identity_refused: AtomicU64,
    /// Files a file source skipped (unreadable, not a regular file, over its file limit).
    pub files_skipped: AtomicU64,
    /// Files a file source forgot before reading them to the end (deleted or rotated away
    /// beyond reach).
    pub files_forgotten: AtomicU64,
    /// Bytes lost in the copytruncate window (written to a file after it was copied and before
    /// it was truncated, so never read).
    pub copytruncate_lost_bytes: AtomicU64,
    /// NATS source: journal sequences of an agent stream skipped after `gap_timeout` (the batch
    /// holding them never reached the stream; its records on that partition are lost).
    pub gap_skipped: AtomicU64,
}

impl SourceStats {
    /// Every loss counter of the source: (name as in `quill_source_<name>_total`, count).
    pub fn losses(&self) -> [(&'static str, u64); 10] {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("dropped_journal_full", get(&self.dropped)),
            ("kernel_dropped", get(&self.kernel_dropped)),
            ("malformed", get(&self.errors)),
            ("truncated", get(&self.truncated)),
            ("refused_connections", get(&self.refused_connections)),
            ("identity_refused", get(&self.identity_refused)),
            ("files_skipped", get(&self.files_skipped)),
            ("files_forgotten", get(&self.files_forgotten)),
            (
                "copytruncate_lost_bytes",
                get(&self.copytruncate_lost_bytes),
            ),
            ("gap_skipped", get(&self.gap_skipped)),
        ]
    }

    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// HAProxy entries written with each `_bytes_sent_basis` (exact, estimate, lower_bound,
    /// unknown), when the sink runs the byte join.
    pub bytes_basis: [AtomicU64; 4],
    /// Records the byte join holds (waiting for a partner, or behind one that waits).
    pub join_held: AtomicU64,
    /// Receivers' WELCOMEs refused for claiming more than the journal holds (forward sinks).
    pub welcome_refused: AtomicU64,
    /// Running, retrying (with the last error) or failed: kept by the sink's supervisor.
    pub health: Arc<crate::component::Health>,
    /// How far the sink's journal cursor is behind: records and journal bytes.
    pub lag_records: AtomicU64,
    pub lag_bytes: AtomicU64,
    /// Times the sink failed and was restarted from its cursor.
    pub restarts: AtomicU64,
    /// Records the sink never wrote because it fell more than `max_lag` behind.
    pub skipped: AtomicU64,
    /// Records a network sink passed over because its receiver can never take them (a GELF
    /// message too large for 128 UDP chunks, a datagram above the UDP limit, an HTTP 4xx).
    pub dropped: AtomicU64,
}

impl SinkStats {
    /// Counts what the byte join released, and how much it still holds.
    pub fn note_joined(&self, released: &[crate::accounting::stream::Joined], held: usize) {
        for j in released {
            if let Some(c) = j.correction {
                self.bytes_basis[c.basis as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.join_held.store(held as u64, Ordering::Relaxed);
    }
}

/// The states `quill_sink_state{state}` reports (1 for the current one, 0 for the others).
const SINK_STATES: [HealthState; 5] = [
    HealthState::Starting,
    HealthState::Running,
    HealthState::Retrying,
    HealthState::Stopped,
    HealthState::Failed,
];

/// A source's losses for the status line (`, 3 kernel_dropped, 1 truncated`): the non-zero
/// ones, named as their metrics.
pub fn source_losses(s: &SourceStats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (name, n) in s.losses() {
        if n > 0 {
            let _ = write!(out, ", {n} {name}");
        }
    }
    out
}

/// A sink's part of the status line after its record count: state when not running (with the
/// last error), lag, restarts and skipped records when there are any.
pub fn sink_status(s: &SinkStats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let state = s.health.state();
    if state != HealthState::Running {
        let _ = write!(out, ", {}", state.as_str());
        if let Some(e) = s.health.last_error() {
            let _ = write!(out, " ({e})");
        }
    }
    let lag = s.lag_records.load(Ordering::Relaxed);
    if lag > 0 {
        let _ = write!(
            out,
            ", lag {lag} records/{} bytes",
            s.lag_bytes.load(Ordering::Relaxed)
        );
    }
    let restarts = s.restarts.load(Ordering::Relaxed);
    if restarts > 0 {
        let _ = write!(out, ", {restarts} restarts");
    }
    let skipped = s.skipped.load(Ordering::Relaxed);
    if skipped > 0 {
        let _ = write!(out, ", {skipped} skipped (max_lag)");
    }
    let dropped = s.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        let _ = write!(
            out,
            ", {dropped} dropped (refused by the receiver or too large)"
        );
    }
    out
}

/// The `/status` report of these components (`ready`: whether start-up finished, which only the
/// caller knows; a failed sink makes it false).
pub fn report(
    started: bool,
    sources: &[(String, Arc<SourceStats>)],
    sinks: &[(String, Arc<SinkStats>)],
    journal: &Journal,
) -> crate::status::StatusReport {
    use crate::status::{JournalStatus, SinkStatus, SourceStatus, StatusReport};
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let sinks: Vec<SinkStatus> = sinks
        .iter()
        .map(|(name, s)| SinkStatus {
            name: name.clone(),
            state: s.health.state().as_str().to_string(),
            last_error: s.health.last_error(),
            records: get(&s.records),
            bytes: get(&s.bytes),
            lag_records: get(&s.lag_records),
            lag_bytes: get(&s.lag_bytes),
            restarts: get(&s.restarts),
            skipped: get(&s.skipped),
            dropped: get(&s.dropped),
        })
        .collect();
    let js = journal.stats();
    StatusReport {
        ready: started
            && sinks
                .iter()
                .all(|s| s.state != HealthState::Failed.as_str()),
        sources: sources
            .iter()
            .map(|(name, s)| SourceStatus {
                name: name.clone(),
                records: get(&s.records),
                bytes: get(&s.bytes),
                losses: s
                    .losses()
                    .iter()
                    .map(|(k, n)| (k.to_string(), *n))
                    .collect(),
            })
            .collect(),
        sinks,
        journal: JournalStatus {
            last_seq: js.last_seq,
            durable_seq: js.durable_seq,
            bytes_held: js.bytes_held,
            dropped_journal_full: js.dropped_journal_full,
            write_errors: js.write_errors,
            write_blocked: js.write_blocked,
            recovery_cut_records: js.recovery_cut_records,
            recovery_cut_bytes: js.recovery_cut_bytes,
        },
    }
}

/// Copies the current counter values into the metrics registry.
pub fn publish(
    sources: &[(String, Arc<SourceStats>)],
    sinks: &[(String, Arc<SinkStats>)],
    journal: &Journal,
    parsers: &crate::parsers::ParserRegistry,
) {
    for (name, s) in sources {
        let label = [("source", name.clone())];
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metrics::counter!("quill_source_records_total", &label).absolute(get(&s.records));
        metrics::counter!("quill_source_bytes_total", &label).absolute(get(&s.bytes));
        for (loss, n) in s.losses() {
            metrics::counter!(format!("quill_source_{loss}_total"), &label).absolute(n);
        }
    }
    for (name, s) in sinks {
        let label = [("sink", name.clone())];
        metrics::counter!("quill_sink_records_total", &label)
            .absolute(s.records.load(Ordering::Relaxed));
        metrics::counter!("quill_sink_bytes_total", &label)
            .absolute(s.bytes.load(Ordering::Relaxed));
        metrics::counter!("quill_sink_welcome_refused_total", &label)
            .absolute(s.welcome_refused.load(Ordering::Relaxed));
        metrics::gauge!("quill_sink_join_held", &label)
            .set(s.join_held.load(Ordering::Relaxed) as f64);
        metrics::gauge!("quill_sink_lag_records", &label)
            .set(s.lag_records.load(Ordering::Relaxed) as f64);
        metrics::gauge!("quill_sink_lag_bytes", &label)
            .set(s.lag_bytes.load(Ordering::Relaxed) as f64);
        metrics::counter!("quill_sink_restarts_total", &label)
            .absolute(s.restarts.load(Ordering::Relaxed));
        metrics::counter!("quill_sink_skipped_total", &label)
            .absolute(s.skipped.load(Ordering::Relaxed));
        metrics::counter!("quill_sink_dropped_total", &label)
            .absolute(s.dropped.load(Ordering::Relaxed));
        let state = s.health.state();
        for st in SINK_STATES {
            metrics::gauge!("quill_sink_state", "sink" => name.clone(), "state" => st.as_str())
                .set(if st == state { 1.0 } else { 0.0 });
        }
        for basis in [
            crate::accounting::Basis::Exact,
            crate::accounting::Basis::Estimate,
            crate::accounting::Basis::LowerBound,
            crate::accounting::Basis::Unknown,
        ] {
            metrics::counter!(
                "quill_sink_bytes_sent_basis_total",
                "sink" => name.clone(),
                "basis" => basis.as_str()
            )
            .absolute(s.bytes_basis[basis as usize].load(Ordering::Relaxed));
        }
    }
    for (source, n) in parsers.parse_errors() {
        metrics::counter!("quill_parse_errors_total", "source" => source).absolute(n);
    }
    let js = journal.stats();
    metrics::counter!("quill_journal_records_total").absolute(js.records_appended);
    metrics::counter!("quill_journal_bytes_total").absolute(js.bytes_appended);
    metrics::gauge!("quill_journal_last_seq").set(js.last_seq as f64);
    metrics::gauge!("quill_journal_durable_seq").set(js.durable_seq as f64);
    metrics::gauge!("quill_journal_bytes_held").set(js.bytes_held as f64);
    metrics::gauge!("quill_journal_segments").set(js.segments as f64);
    metrics::counter!("quill_journal_fsyncs_total").absolute(js.fsyncs);
    metrics::gauge!("quill_journal_fsync_seconds_sum").set(js.fsync_time_total.as_secs_f64());
    metrics::gauge!("quill_journal_fsync_seconds_max").set(js.fsync_time_max.as_secs_f64());
    metrics::counter!("quill_journal_write_errors_total").absolute(js.write_errors);
    metrics::counter!("quill_journal_dropped_journal_full_total").absolute(js.dropped_journal_full);
    metrics::counter!("quill_journal_recovery_cut_records_total").absolute(js.recovery_cut_records);
    metrics::counter!("quill_journal_recovery_cut_bytes_total").absolute(js.recovery_cut_bytes);
    for (cursor, _, lag) in js.cursors {
        metrics::gauge!("quill_journal_cursor_lag_records", "cursor" => cursor).set(lag as f64);
    }
}
