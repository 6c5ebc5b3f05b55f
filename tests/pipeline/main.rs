//! The daemon's integration tests, one binary: each module was a `tests/<name>.rs` of its own.
//! Helpers live in `tests/support/` (see its module doc: how to add a test, which tests hold
//! the [`support::alone`] lock, why some tests keep their own binary).

#![cfg(feature = "pipeline")]

mod adversarial;
mod adversarial_host;
mod apache_formats_live;
mod bytes_check;
mod bytes_clocks;
mod bytes_corpus;
mod bytes_daemon;
mod bytes_live;
mod cli_foundation;
mod copytruncate_loss;
mod file_compressed;
mod file_lines;
mod file_many;
mod file_restart;
mod file_rotation;
mod forward_bad_input;
mod forward_crash;
mod forward_e2e;
mod forward_failover;
mod forward_identity;
mod forward_routing;
mod gelf_sink;
mod gelf_source;
mod haproxy_captures_live;
mod haproxy_formats_live;
mod index_crash;
mod index_search;
mod journal_cli;
mod journal_crash;
mod journal_props;
mod journal_recovery;
mod journal_tail_damage;
mod logging_agent;
mod loss_counters;
mod nats_cluster;
mod nats_sink;
mod parse_apache_languages;
mod parse_captures;
mod parse_config_cli;
mod parse_corpus;
mod parse_embedded;
mod parse_format_props;
mod parse_gelf;
mod parse_haproxy_languages;
mod parse_keys_cli;
mod parse_props;
mod parse_timezones;
mod pipeline_crash;
mod pipeline_reload;
mod pipeline_routing;
mod regression;
mod reload_handover;
mod relp_rsyslog;
mod scribe_real;
mod search_fanout;
mod search_limits;
mod sink_faults;
mod sink_max_lag_running;
mod sink_supervise;
#[path = "../support/mod.rs"]
mod support;
mod syslog_load;
mod syslog_real;
mod syslog_sink;
mod syslog_tls;
mod systemd_host;
mod trace_page;
mod validate_online;
