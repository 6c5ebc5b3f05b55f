//! Routes: which sinks get an entry, by facility prefix and level. Data only.

use super::Level;

/// Sends entries whose facility starts with a prefix (on a `.` boundary) and whose level is at
/// least as severe as a threshold to named sinks.
///
/// ```
/// use quill::logging::{Level, Route};
///
/// // `myapp.api` and `myapp.api.handler`, not `myapp.apiary`; Warning and more severe.
/// let route = Route::new("myapp.api").at_least(Level::Warning).to("file").to("stderr");
/// assert!(route.accepts("myapp.api.handler", Level::Error));
/// assert!(!route.accepts("myapp.apiary", Level::Error));
/// assert!(!route.accepts("myapp.api", Level::Info));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub(crate) prefix: String,
    pub(crate) at_least: Level,
    pub(crate) sinks: Vec<String>,
}

impl Route {
    /// A route for facilities under `prefix` (`""` matches every facility), accepting every
    /// level until [`Route::at_least`] says otherwise.
    pub fn new(prefix: impl Into<String>) -> Route {
        Route {
            prefix: prefix.into(),
            at_least: Level::Debug,
            sinks: Vec::new(),
        }
    }

    /// Accept only entries at `level` or more severe (`at_least(Level::Info)` drops Debug).
    pub fn at_least(mut self, level: Level) -> Route {
        self.at_least = level;
        self
    }

    /// Adds a sink, by the name given to [`Config::sink`](super::Config::sink).
    pub fn to(mut self, sink: impl Into<String>) -> Route {
        self.sinks.push(sink.into());
        self
    }

    /// Whether this route takes an entry of `level` from `facility`.
    pub fn accepts(&self, facility: &str, level: Level) -> bool {
        level <= self.at_least && facility_matches(&self.prefix, facility)
    }

    /// One more than the least severe accepted level.
    pub(crate) fn threshold(&self) -> u8 {
        self.at_least.as_u8() + 1
    }
}

/// `prefix` is empty, equal to `facility`, or a prefix of it followed by a `.`.
pub(crate) fn facility_matches(prefix: &str, facility: &str) -> bool {
    prefix.is_empty()
        || (facility.starts_with(prefix)
            && (facility.len() == prefix.len() || facility.as_bytes()[prefix.len()] == b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_dot_boundaries() {
        assert!(facility_matches("", "anything"));
        assert!(facility_matches("a.b", "a.b"));
        assert!(facility_matches("a.b", "a.b.c"));
        assert!(!facility_matches("a.b", "a.bc"));
        assert!(!facility_matches("a.b", "a"));
    }
}
