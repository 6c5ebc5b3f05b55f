//! The daemon's integration tests, one binary: each module was a `tests/<name>.rs` of its own.
//! Helpers live in `tests/support/` (see its module doc: how to add a test, which tests hold
//! the [`support::alone`] lock, why some tests keep their own binary).

#![cfg(feature = "pipeline")]

#[path = "../support/mod.rs"]
mod support;

mod adversarial;
mod bytes_check;
mod bytes_clocks;
mod bytes_corpus;
mod bytes_daemon;
mod bytes_live;
mod cli_foundation;
mod file_compressed;
mod file_lines;
mod file_many;
mod file_restart;
mod file_rotation;
mod forward_bad_input;
mod forward_crash;
mod forward_e2e;
mod gelf_source;
mod haproxy_captures_live;
mod index_crash;
mod index_search;
mod journal_cli;
mod journal_crash;
mod journal_props;
mod journal_recovery;
mod loss_counters;
mod parse_captures;
mod parse_config_cli;
mod parse_corpus;
mod parse_embedded;
mod parse_format_props;
mod parse_gelf;
mod parse_props;
mod parse_timezones;
mod pipeline_crash;
mod pipeline_reload;
mod pipeline_routing;
mod regression;
mod relp_rsyslog;
mod scribe_real;
mod search_limits;
mod sink_supervise;
mod syslog_real;
mod syslog_tls;
mod systemd_host;
mod trace_page;
