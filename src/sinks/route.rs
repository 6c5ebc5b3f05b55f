//! The routing decision: does a sink take a record? One pure function ([`Route::takes`]) the
//! file sinks (GELF and the raw Scribe store), the index sink, the network sinks and the forward sink
//! apply to what they read from their cursor; a record a sink does not take is acknowledged without
//! being written (exactly-once is unchanged: a skipped record is simply done for that sink; the
//! forward sink's batches carry the gaps, protocol version 2), and the unrouted accountant
//! (`pipeline::unrouted`) uses the same decision.
//!
//! What is matched:
//! - `inputs`: the record's `origin.source` (globs). A record forwarded from an agent keeps the
//!   agent's source name there, so on an aggregator `inputs` names the agents' sources, not the
//!   local `forward` source (which names no records).
//! - `categories`: `origin.category` (globs).
//! - `min_severity`: the syslog severity of the record's `<PRI>` (read from the first bytes, no
//!   parse). A record without one (a file line, a JSON document) passes: its level is not known
//!   without parsing it.
//! - `hosts`: the syslog header's HOSTNAME when the record is syslog and has one, else
//!   `origin.host` (the host that first received it).
//!
//! This module touches nothing: it reads a record and a compiled [`Route`].

use crate::config::{RouteConfig, Severity};
use crate::record::{Format, Record};

/// A sink's routing keys, compiled.
#[derive(Debug, Clone, Default)]
pub struct Route {
    inputs: Vec<glob::Pattern>,
    categories: Vec<glob::Pattern>,
    min_severity: Option<Severity>,
    hosts: Vec<glob::Pattern>,
}

fn compile(globs: &[String]) -> Vec<glob::Pattern> {
    // The config checked the globs; a pattern that does not compile matches literally.
    globs
        .iter()
        .map(|g| {
            glob::Pattern::new(g).unwrap_or_else(|_| {
                glob::Pattern::new(&glob::Pattern::escape(g)).unwrap_or_default()
            })
        })
        .collect()
}

fn any_match(patterns: &[glob::Pattern], value: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(value))
}

impl Route {
    pub fn new(config: &RouteConfig) -> Route {
        Route {
            inputs: compile(&config.inputs),
            categories: compile(&config.categories),
            min_severity: config.min_severity(),
            hosts: compile(&config.hosts),
        }
    }

    /// True when every record is taken (no keys set).
    pub fn takes_all(&self) -> bool {
        self.inputs.is_empty()
            && self.categories.is_empty()
            && self.min_severity.is_none()
            && self.hosts.is_empty()
    }

    /// The routing decision.
    pub fn takes(&self, record: &Record) -> bool {
        if self.takes_all() {
            return true;
        }
        let origin = &record.origin;
        if !any_match(&self.inputs, &origin.source)
            || !any_match(&self.categories, &origin.category)
        {
            return false;
        }
        if let Some(min) = self.min_severity
            && let Some(severity) = syslog_severity(&record.raw)
            && severity > min
        {
            return false;
        }
        if !self.hosts.is_empty() {
            let header_host = if matches!(origin.format, Format::Syslog | Format::Auto) {
                syslog_host(record)
            } else {
                None
            };
            let host = header_host.as_deref().unwrap_or(&origin.host);
            if !any_match(&self.hosts, host) {
                return false;
            }
        }
        true
    }
}

/// The severity of a line starting with a syslog `<PRI>` (1-3 digits, at most 191).
pub fn syslog_severity(raw: &[u8]) -> Option<Severity> {
    let rest = raw.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&b| b == b'>')?;
    if end == 0 {
        return None;
    }
    let digits = &rest[..end];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pri: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (pri <= 191).then_some(Severity((pri % 8) as u8))
}

fn syslog_host(record: &Record) -> Option<String> {
    syslog_severity(&record.raw)?;
    let header = crate::parse::syslog::header(
        &record.raw,
        record.received_at.as_millis(),
        &crate::parse::LogZone::UTC,
    )
    .ok()?;
    let host = header.host?;
    Some(String::from_utf8_lossy(host).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SeveritySetting;
    use crate::record::Origin;

    fn record(source: &str, category: &str, format: Format, raw: &str) -> Record {
        Record::new(
            Origin::new(source, category, format, "recv-host"),
            bytes::Bytes::from(raw.to_string()),
        )
    }

    fn route(inputs: &[&str], categories: &[&str], min: Option<&str>, hosts: &[&str]) -> Route {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        Route::new(&RouteConfig {
            inputs: s(inputs),
            categories: s(categories),
            min_severity: min.map(|m| SeveritySetting::Name(m.into())),
            hosts: s(hosts),
        })
    }

    #[test]
    fn default_takes_everything() {
        let r = Route::default();
        assert!(r.takes_all());
        assert!(r.takes(&record("a", "a", Format::Raw, "x")));
    }

    #[test]
    fn inputs_and_categories_are_globs() {
        let r = route(&["web*", "lb"], &[], None, &[]);
        assert!(r.takes(&record("web1", "c", Format::Raw, "x")));
        assert!(r.takes(&record("lb", "c", Format::Raw, "x")));
        assert!(!r.takes(&record("lb2", "c", Format::Raw, "x")));
        let r = route(&[], &["app.*"], None, &[]);
        assert!(r.takes(&record("s", "app.api", Format::Raw, "x")));
        assert!(!r.takes(&record("s", "db", Format::Raw, "x")));
        let both = route(&["web*"], &["app.*"], None, &[]);
        assert!(!both.takes(&record("web1", "db", Format::Raw, "x")));
    }

    #[test]
    fn severity_filters_syslog_and_passes_the_rest() {
        let r = route(&[], &[], Some("warning"), &[]);
        // <11> = user.err (3), <14> = user.info (6), <12> = user.warning (4).
        assert!(r.takes(&record(
            "s",
            "s",
            Format::Syslog,
            "<11>Oct 11 22:14:15 h app: x"
        )));
        assert!(r.takes(&record(
            "s",
            "s",
            Format::Syslog,
            "<12>Oct 11 22:14:15 h app: x"
        )));
        assert!(!r.takes(&record(
            "s",
            "s",
            Format::Syslog,
            "<14>Oct 11 22:14:15 h app: x"
        )));
        // No PRI: not known cheaply, passes.
        assert!(r.takes(&record("s", "s", Format::Haproxy, "GET / 200")));
        assert!(r.takes(&record("s", "s", Format::Syslog, "<999>bogus")));
    }

    #[test]
    fn hosts_match_the_syslog_header_else_the_receiving_host() {
        let r = route(&[], &[], None, &["db-*"]);
        assert!(r.takes(&record(
            "s",
            "s",
            Format::Syslog,
            "<14>Oct 11 22:14:15 db-1 app: x"
        )));
        assert!(!r.takes(&record(
            "s",
            "s",
            Format::Syslog,
            "<14>Oct 11 22:14:15 web-1 app: x"
        )));
        assert!(r.takes(&record(
            "s",
            "s",
            Format::Syslog,
            "<14>1 2024-01-01T00:00:00Z db-2 app 1 - - x"
        )));
        // A file line: the receiving host.
        assert!(!r.takes(&record("s", "s", Format::Raw, "db-1 x")));
        let recv = route(&[], &[], None, &["recv-*"]);
        assert!(recv.takes(&record("s", "s", Format::Raw, "x")));
    }

    #[test]
    fn pri_parsing() {
        assert_eq!(syslog_severity(b"<0>x"), Some(Severity(0)));
        assert_eq!(syslog_severity(b"<191>x"), Some(Severity(7)));
        assert_eq!(syslog_severity(b"<192>x"), None);
        assert_eq!(syslog_severity(b"<>x"), None);
        assert_eq!(syslog_severity(b"<1a>x"), None);
        assert_eq!(syslog_severity(b"x"), None);
    }
}
