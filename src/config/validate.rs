//! The checks serde cannot express: names, addresses, ranges, and settings that only make sense
//! together. Every error is located with [`super::locate`].

use super::listener::check_socket_addr;
use super::locate::find_key_line;
use super::{
    Config, ConfigError, MAX_FINGERPRINT_BYTES, MAX_WORKERS, SinkConfig, SourceConfig, limits,
    scribe,
};

/// True for a category that is safe as a directory and file name: 1 to 128 characters of
/// ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn is_safe_category(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Why a category name is unsafe, for error messages.
pub const CATEGORY_RULE: &str = "a category must be 1-128 characters of letters, digits, `-`, `_` or `.`, not starting with `.`";

impl Config {
    pub(super) fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let err = |table: &str, key: &str, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            line: find_key_line(text, table, key),
            key: if key.is_empty() {
                table.to_string()
            } else {
                format!("{table}.{key}")
            },
            message,
        };
        if let Some(h) = &self.hostname
            && (h.is_empty()
                || h.len() > 255
                || h.bytes().any(|b| b.is_ascii_control() || b == b' '))
        {
            return Err(err("", "hostname", format!("invalid hostname `{h}`")));
        }
        if let Some((key, message)) = self
            .metrics_listen
            .as_deref()
            .and_then(|a| check_socket_addr("metrics_listen", a))
        {
            return Err(err("", key, message));
        }
        if let Some(limit) = self.memory_limit
            && limit.0 < crate::memory::MIN_LIMIT
        {
            return Err(err(
                "",
                "memory_limit",
                format!(
                    "{} is below the smallest budget the daemon can keep, {} MiB",
                    limit.0,
                    crate::memory::MIN_LIMIT >> 20
                ),
            ));
        }
        let zones = self
            .sources
            .iter()
            .filter_map(|(n, s)| Some((format!("sources.{n}"), s.parse_options()?.timezone)))
            .chain([("parse".to_string(), self.parse.timezone.as_deref())]);
        for (table, zone) in zones {
            if let Some(tz) = zone
                && let Err(e) = crate::parse::LogZone::parse(tz)
            {
                return Err(err(&table, "timezone", e.to_string()));
            }
        }
        for (name, source) in &self.sources {
            let table = format!("sources.{name}");
            if !is_safe_category(name) {
                return Err(err(
                    &table,
                    "",
                    format!("invalid source name `{name}`: {CATEGORY_RULE}"),
                ));
            }
            let category = match source {
                SourceConfig::File(f) => {
                    if f.include.is_empty() {
                        return Err(err(
                            &table,
                            "include",
                            "needs at least one glob pattern".into(),
                        ));
                    }
                    if f.fingerprint_bytes.0 == 0 || f.fingerprint_bytes.0 > MAX_FINGERPRINT_BYTES {
                        return Err(err(
                            &table,
                            "fingerprint_bytes",
                            format!("must be between 1 and {MAX_FINGERPRINT_BYTES} bytes"),
                        ));
                    }
                    if f.max_line_bytes.0 == 0 {
                        return Err(err(&table, "max_line_bytes", "must be at least 1".into()));
                    }
                    if f.poll_interval.0.is_zero() {
                        return Err(err(&table, "poll_interval", "must be above 0".into()));
                    }
                    for pattern in f.include.iter().chain(&f.exclude) {
                        if let Err(e) = glob::Pattern::new(pattern) {
                            return Err(err(
                                &table,
                                "include",
                                format!("invalid glob `{pattern}`: {e}"),
                            ));
                        }
                    }
                    if let Some((key, e)) =
                        limits::check_symlinks(f.follow_symlinks, &f.symlink_roots)
                    {
                        return Err(err(&table, key, e));
                    }
                    if let Some((glob, what)) = limits::self_read(self, &f.include) {
                        return Err(err(
                            &table,
                            "include",
                            format!("`{glob}` would read {what}: Quill would read its own output"),
                        ));
                    }
                    &f.category
                }
                SourceConfig::Syslog(s) => {
                    let listens = [
                        s.udp.is_some(),
                        s.tcp.is_some(),
                        s.tls.is_some(),
                        s.unix.is_some(),
                        s.unix_stream.is_some(),
                    ];
                    if !listens.contains(&true) {
                        return Err(err(
                            &table,
                            "",
                            "a syslog source needs at least one of `udp`, `tcp`, `tls`, `unix`, `unix_stream`".into(),
                        ));
                    }
                    if s.tls.is_some() && (s.tls_cert.is_none() || s.tls_key.is_none()) {
                        return Err(err(
                            &table,
                            "tls",
                            "`tls` needs `tls_cert` and `tls_key`".into(),
                        ));
                    }
                    for (key, addr) in [("udp", &s.udp), ("tcp", &s.tcp), ("tls", &s.tls)] {
                        if let Some((key, message)) =
                            addr.as_deref().and_then(|a| check_socket_addr(key, a))
                        {
                            return Err(err(&table, key, message));
                        }
                    }
                    if let Some((key, message)) = s.tls_keys().check() {
                        return Err(err(&table, key, message));
                    }
                    &s.category
                }
                SourceConfig::Forward(f) => {
                    if let Some((key, message)) =
                        check_socket_addr("listen", &f.listen).or_else(|| f.check())
                    {
                        return Err(err(&table, key, message));
                    }
                    &None
                }
                SourceConfig::Scribe(s) => {
                    if let Some((key, message)) = s.check() {
                        return Err(err(&table, key, message));
                    }
                    &None
                }
                SourceConfig::Relp(r) => {
                    if let Some((key, message)) = r.check() {
                        return Err(err(&table, key, message));
                    }
                    &r.category
                }
                SourceConfig::Gelf(g) => {
                    if let Some((key, message)) = g.check() {
                        return Err(err(&table, key, message));
                    }
                    &g.category
                }
                SourceConfig::Nats(n) => {
                    if let Some((key, message)) = n.check() {
                        return Err(err(&table, key, message));
                    }
                    &None
                }
            };
            if let Some(c) = category
                && !is_safe_category(c)
            {
                return Err(err(
                    &table,
                    "category",
                    format!("invalid category `{c}`: {CATEGORY_RULE}"),
                ));
            }
        }
        for (name, sink) in &self.sinks {
            let table = format!("sinks.{name}");
            if !is_safe_category(name) {
                return Err(err(
                    &table,
                    "",
                    format!("invalid sink name `{name}`: {CATEGORY_RULE}"),
                ));
            }
            if let Some((key, message)) = sink.route().check() {
                return Err(err(&table, key, message));
            }
            match sink {
                SinkConfig::File(f) => {
                    if f.max_size.0 < 4096 {
                        return Err(err(&table, "max_size", "must be at least 4KiB".into()));
                    }
                    if f.workers.is_some_and(|w| w == 0 || w > MAX_WORKERS) {
                        let msg = format!("must be between 1 and {MAX_WORKERS}");
                        return Err(err(&table, "workers", msg));
                    }
                    if f.fsync_interval.as_ref().is_some_and(|i| i.0.is_zero()) {
                        return Err(err(&table, "fsync_interval", "must be above 0".into()));
                    }
                    if let Some((key, message)) = scribe::check_file_sink(f) {
                        return Err(err(&table, key, message));
                    }
                }
                SinkConfig::Forward(f) => {
                    if f.to.is_empty() {
                        return Err(err(
                            &table,
                            "to",
                            "needs at least one aggregator address".into(),
                        ));
                    }
                    if let Some((key, message)) = f.check() {
                        return Err(err(&table, key, message));
                    }
                }
                SinkConfig::Gelf(g) => {
                    if let Some((key, message)) = g.check() {
                        return Err(err(&table, key, message));
                    }
                }
                SinkConfig::Nats(n) => {
                    if let Some((key, message)) = n.check() {
                        return Err(err(&table, key, message));
                    }
                }
                SinkConfig::Syslog(g) => {
                    if let Some((key, message)) = g.check() {
                        return Err(err(&table, key, message));
                    }
                }
                SinkConfig::Index(i) => {
                    if !i.listen.is_empty() && i.listen.parse::<std::net::SocketAddr>().is_err() {
                        return Err(err(
                            &table,
                            "listen",
                            format!(
                                "invalid socket address `{}` (expected IP:PORT or \"\")",
                                i.listen
                            ),
                        ));
                    }
                    if let Some((key, message)) = i.search_check() {
                        return Err(err(&table, key, message));
                    }
                }
            }
        }
        Ok(())
    }
}
