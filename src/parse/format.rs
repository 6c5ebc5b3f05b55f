//! The format names a record's payload can be parsed in: a source's `format` key and the
//! hint each record carries. Data only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a record's payload should be parsed downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Detect per line.
    #[default]
    Auto,
    Haproxy,
    Apache,
    Syslog,
    Json,
    /// Never parsed: the line is the message.
    Raw,
    /// A GELF 1.1 message (JSON), validated and kept field for field (see `parse::gelf`).
    Gelf,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Auto,
        Format::Haproxy,
        Format::Apache,
        Format::Syslog,
        Format::Json,
        Format::Raw,
        Format::Gelf,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Haproxy => "haproxy",
            Format::Apache => "apache",
            Format::Syslog => "syslog",
            Format::Json => "json",
            Format::Raw => "raw",
            Format::Gelf => "gelf",
        }
    }

    /// Stable one-byte code, used by on-disk and on-wire encodings.
    pub fn code(self) -> u8 {
        match self {
            Format::Auto => 0,
            Format::Haproxy => 1,
            Format::Apache => 2,
            Format::Syslog => 3,
            Format::Json => 4,
            Format::Raw => 5,
            Format::Gelf => 6,
        }
    }

    /// Inverse of [`Format::code`]; unknown codes read as `Auto`.
    pub fn from_code(code: u8) -> Format {
        match code {
            1 => Format::Haproxy,
            2 => Format::Apache,
            3 => Format::Syslog,
            4 => Format::Json,
            5 => Format::Raw,
            6 => Format::Gelf,
            _ => Format::Auto,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown format `{s}` (expected one of: auto, haproxy, apache, syslog, json, raw, gelf)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_codes_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_code(f.code()), f);
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        }
        assert!("nope".parse::<Format>().is_err());
    }
}
