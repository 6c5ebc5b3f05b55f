//! Fitting the connection limits of every listener in a config under the descriptor limit
//! together: syslog stream listeners, forward (agents and handshakes), RELP, Scribe, GELF
//! TCP/HTTP and the search API. Their sum may use the soft `RLIMIT_NOFILE` minus the reserve
//! for the journal, sinks and index ([`crate::limits::reserve`]); when it does not fit, each is
//! lowered in proportion and the lowered ones are logged.
//!
//! Touches only the config it is given (and reads the process's descriptor limit).

use crate::config::{Config, SinkConfig, SourceConfig};

/// Lowers the connection limits in `config` so that together they fit under the soft
/// descriptor limit `soft` (the current one when `None`).
pub fn fit(config: &mut Config, soft: Option<u64>) {
    let Some(soft) = soft.or_else(|| crate::limits::nofile().map(|(s, _)| s)) else {
        return;
    };
    let mut limits: Vec<(String, &'static str, &mut usize)> = Vec::new();
    for (name, source) in config.sources.iter_mut() {
        match source {
            SourceConfig::Syslog(s) if s.tcp.is_some() || s.tls.is_some() || s.unix.is_some() => {
                limits.push((name.clone(), "max_connections", &mut s.max_connections))
            }
            SourceConfig::Forward(f) => {
                limits.push((name.clone(), "max_connections", &mut f.max_connections));
                limits.push((
                    name.clone(),
                    "max_unauthenticated",
                    &mut f.max_unauthenticated,
                ));
            }
            SourceConfig::Relp(r) => {
                limits.push((name.clone(), "max_connections", &mut r.max_connections))
            }
            SourceConfig::Scribe(r) => {
                limits.push((name.clone(), "max_connections", &mut r.max_connections))
            }
            SourceConfig::Gelf(g) if g.tcp.is_some() || g.http.is_some() => {
                limits.push((name.clone(), "max_connections", &mut g.max_connections))
            }
            _ => {}
        }
    }
    // The search API serves one address with the options of the first index sink naming it.
    let mut served: Vec<String> = Vec::new();
    for (name, sink) in config.sinks.iter_mut() {
        if let SinkConfig::Index(i) = sink
            && !i.listen.is_empty()
            && !served.contains(&i.listen)
        {
            served.push(i.listen.clone());
            limits.push((
                name.clone(),
                "search_max_connections",
                &mut i.search_max_connections,
            ));
        }
    }
    let requested: Vec<usize> = limits.iter().map(|l| *l.2).collect();
    let shares = crate::limits::share_connections(&requested, soft);
    let total: usize = requested.iter().sum();
    for ((component, key, limit), share) in limits.into_iter().zip(shares) {
        if share < *limit {
            tracing::warn!(
                component = %component,
                requested = *limit,
                allowed = share,
                descriptor_limit = soft,
                reserved = crate::limits::reserve(soft),
                all_listeners = total,
                "`{key}` lowered to {share}: all listeners together ask for {total} connections, the file descriptor limit is {soft} and {} stay reserved for the journal, sinks and index.",
                crate::limits::reserve(soft)
            );
            *limit = share;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_listeners_together_fit_under_the_limit() {
        let text = r#"
data_dir = "/tmp/x"
[sources.a]
type = "syslog"
tcp = "127.0.0.1:1"
max_connections = 300
[sources.b]
type = "syslog"
tcp = "127.0.0.1:2"
max_connections = 100
[sources.u]
type = "syslog"
udp = "127.0.0.1:3"
max_connections = 5000
[sinks.out]
type = "file"
path = "/tmp/out"
"#;
        let mut config = Config::parse(text, "test.toml").unwrap();
        fit(&mut config, Some(128));
        let max = |config: &Config, n: &str| match &config.sources[n] {
            SourceConfig::Syslog(s) => s.max_connections,
            _ => unreachable!(),
        };
        // 64 usable, 400 asked: 3 to 1.
        assert_eq!((max(&config, "a"), max(&config, "b")), (48, 16));
        assert_eq!(max(&config, "u"), 5000, "a datagram-only source holds none");
        fit(&mut config, Some(1 << 20));
        assert_eq!(
            (max(&config, "a"), max(&config, "b")),
            (48, 16),
            "never raised"
        );
    }
}
