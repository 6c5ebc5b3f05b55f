//! The `/status` report: what the operations server's `/status` returns and `quill status`
//! prints (sources, sinks, state, lag, losses, last errors, the journal), its problems and its
//! table. Data only: `telemetry` fills it from the counters, `ops` serves it.

use serde::{Deserialize, Serialize};

/// What `/status` returns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusReport {
    /// Every component started and no sink has failed.
    pub ready: bool,
    pub sources: Vec<SourceStatus>,
    pub sinks: Vec<SinkStatus>,
    pub journal: JournalStatus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceStatus {
    pub name: String,
    pub records: u64,
    pub bytes: u64,
    /// Loss counter name (as in the README table, without `quill_source_` and `_total`) →
    /// count; zero counters included.
    pub losses: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SinkStatus {
    pub name: String,
    /// `running`, `retrying`, `failed`, ... ([`crate::component::HealthState`]).
    pub state: String,
    pub last_error: Option<String>,
    pub records: u64,
    pub bytes: u64,
    pub lag_records: u64,
    pub lag_bytes: u64,
    pub restarts: u64,
    /// Records skipped past `max_lag`.
    pub skipped: u64,
    /// Records a network sink could not deliver ever and passed over (counted).
    #[serde(default)]
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JournalStatus {
    pub last_seq: u64,
    pub durable_seq: u64,
    pub bytes_held: u64,
    pub dropped_journal_full: u64,
    pub write_errors: u64,
    pub write_blocked: bool,
    /// Records the last open's recovery cut that cursors had acknowledged.
    #[serde(default)]
    pub recovery_cut_records: u64,
    /// Bytes the last open's recovery cut from the tail segment.
    #[serde(default)]
    pub recovery_cut_bytes: u64,
}

impl StatusReport {
    /// Healthy: ready, no sink retrying, nothing lost.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.ready {
            out.push("not ready".to_string());
        }
        for s in &self.sinks {
            if s.state != "running" {
                out.push(format!(
                    "sink {} is {}{}",
                    s.name,
                    s.state,
                    s.last_error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
        }
        if self.journal.write_blocked {
            out.push("journal writes are failing".to_string());
        }
        out
    }

    /// The report as a table for a terminal.
    pub fn to_table(&self) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<8} {:<20} {:<10} {:>12} {:>14} {:>12} {:>14}  LOSSES / LAST ERROR",
            "KIND", "NAME", "STATE", "RECORDS", "BYTES", "LAG RECORDS", "LAG BYTES"
        );
        for s in &self.sources {
            let losses: Vec<String> = s
                .losses
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            let _ = writeln!(
                t,
                "{:<8} {:<20} {:<10} {:>12} {:>14} {:>12} {:>14}  {}",
                "source",
                s.name,
                "running",
                s.records,
                s.bytes,
                "-",
                "-",
                losses.join(" ")
            );
        }
        for s in &self.sinks {
            let mut notes = Vec::new();
            if s.skipped > 0 {
                notes.push(format!("skipped={}", s.skipped));
            }
            if s.dropped > 0 {
                notes.push(format!("dropped={}", s.dropped));
            }
            if s.restarts > 0 {
                notes.push(format!("restarts={}", s.restarts));
            }
            if let Some(e) = &s.last_error {
                notes.push(format!("last error: {e}"));
            }
            let _ = writeln!(
                t,
                "{:<8} {:<20} {:<10} {:>12} {:>14} {:>12} {:>14}  {}",
                "sink",
                s.name,
                s.state,
                s.records,
                s.bytes,
                s.lag_records,
                s.lag_bytes,
                notes.join(" ")
            );
        }
        let j = &self.journal;
        let _ = writeln!(
            t,
            "journal: last_seq={} durable_seq={} bytes_held={} dropped_journal_full={} write_errors={}{}{}",
            j.last_seq,
            j.durable_seq,
            j.bytes_held,
            j.dropped_journal_full,
            j.write_errors,
            if j.recovery_cut_records > 0 {
                format!(" recovery_cut_records={}", j.recovery_cut_records)
            } else {
                String::new()
            },
            if j.write_blocked {
                " (writes failing)"
            } else {
                ""
            }
        );
        t
    }
}
