//! A sink's routing keys: which records it takes (`inputs`, `categories`, `min_severity`,
//! `hosts`). Every sink type has them (flattened into its table); the decision itself is
//! [`crate::sinks::route`].

use serde::Deserialize;

/// `inputs`, `categories`, `min_severity`, `hosts` of a `[sinks.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RouteConfig {
    /// Source names (globs) whose records this sink takes; empty: every source. A record
    /// forwarded from an agent carries the agent's source name, which is what is matched.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Category globs; empty: every category.
    #[serde(default)]
    pub categories: Vec<String>,
    /// The least severe syslog severity taken (`"warning"` or `4`). Records whose severity is
    /// not known cheaply (not syslog) pass.
    #[serde(default)]
    pub min_severity: Option<SeveritySetting>,
    /// Host globs (the syslog header's host, else the host that received the record); empty:
    /// every host.
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl RouteConfig {
    /// True when the sink takes every record.
    pub fn takes_all(&self) -> bool {
        self.inputs.is_empty()
            && self.categories.is_empty()
            && self.min_severity.is_none()
            && self.hosts.is_empty()
    }

    /// `min_severity` as a severity (`None` when unset or invalid: [`RouteConfig::check`]
    /// reports the latter).
    pub fn min_severity(&self) -> Option<Severity> {
        self.min_severity.as_ref().and_then(|s| s.severity().ok())
    }

    /// The first invalid setting: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if let Some(Err(e)) = self.min_severity.as_ref().map(SeveritySetting::severity) {
            return Some(("min_severity", e));
        }
        for (key, globs) in [
            ("inputs", &self.inputs),
            ("categories", &self.categories),
            ("hosts", &self.hosts),
        ] {
            for g in globs {
                if let Err(e) = glob::Pattern::new(g) {
                    return Some((key, format!("invalid glob `{g}`: {e}")));
                }
            }
        }
        None
    }
}

/// A syslog severity, 0 (emerg) to 7 (debug): lower is more severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Severity(pub u8);

/// RFC 5424 severity names, by number (with the usual aliases accepted when parsing).
const NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl Severity {
    pub fn parse(s: &str) -> Result<Severity, String> {
        let t = s.trim().to_ascii_lowercase();
        if let Ok(n) = t.parse::<u8>() {
            return Severity::from_number(u64::from(n));
        }
        let n = match t.as_str() {
            "emerg" | "emergency" | "panic" => 0,
            "alert" => 1,
            "crit" | "critical" => 2,
            "err" | "error" => 3,
            "warning" | "warn" => 4,
            "notice" => 5,
            "info" | "informational" => 6,
            "debug" => 7,
            _ => {
                return Err(format!(
                    "unknown severity `{s}` (expected 0-7 or one of {})",
                    NAMES.join(", ")
                ));
            }
        };
        Ok(Severity(n))
    }

    fn from_number(n: u64) -> Result<Severity, String> {
        u8::try_from(n)
            .ok()
            .filter(|n| *n <= 7)
            .map(Severity)
            .ok_or_else(|| format!("severity {n} is out of range (0-7)"))
    }

    pub fn name(self) -> &'static str {
        NAMES[usize::from(self.0.min(7))]
    }
}

/// `min_severity` as written (a name or a number), checked by [`RouteConfig::check`] so the
/// error names its line (serde loses it inside sink tables).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SeveritySetting {
    Number(i64),
    Name(String),
}

impl SeveritySetting {
    pub fn severity(&self) -> Result<Severity, String> {
        match self {
            SeveritySetting::Number(n) => {
                Severity::from_number(u64::try_from(*n).unwrap_or(u64::MAX))
            }
            SeveritySetting::Name(s) => Severity::parse(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_tables_take_route_keys_and_still_reject_unknown_ones() {
        let ok = r#"
[sinks.out]
type = "file"
path = "/tmp/x"
inputs = ["web*", "lb"]
min_severity = "warning"
hosts = ["db-*"]
"#;
        let c = crate::config::Config::parse(ok, "t.toml").unwrap();
        let r = c.sinks["out"].route();
        assert_eq!(r.inputs, ["web*", "lb"]);
        assert_eq!(r.min_severity(), Some(Severity(4)));
        assert!(!r.takes_all());
        let bad = "[sinks.out]\ntype = \"file\"\npath = \"/tmp/x\"\ninptus = [\"a\"]\n";
        let e = crate::config::Config::parse(bad, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.toml:4: sinks.out.inptus"), "{e}");
        let glob = "[sinks.out]\ntype = \"index\"\ncategories = [\"[\"]\n";
        let e = crate::config::Config::parse(glob, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.toml:3: sinks.out.categories: invalid glob"),
            "{e}"
        );
        // A forward sink routes like the others (protocol version 2 carries the gaps).
        let fwd = "[sinks.f]\ntype = \"forward\"\nto = [\"127.0.0.1:1\"]\nhosts = [\"a\"]\n";
        assert!(crate::config::Config::parse(fwd, "t.toml").is_ok());
        let sev = "[sinks.out]\ntype = \"index\"\nmin_severity = 9\n";
        let e = crate::config::Config::parse(sev, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.toml:3: sinks.out.min_severity: severity 9"),
            "{e}"
        );
    }

    #[test]
    fn severity_names_and_numbers() {
        assert_eq!(Severity::parse("warning"), Ok(Severity(4)));
        assert_eq!(Severity::parse("ERR"), Ok(Severity(3)));
        assert_eq!(Severity::parse("7"), Ok(Severity(7)));
        assert!(Severity::parse("8").is_err());
        assert!(Severity::parse("loud").is_err());
        assert_eq!(Severity(4).name(), "warning");
    }
}
