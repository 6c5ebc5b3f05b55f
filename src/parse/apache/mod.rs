//! Apache httpd lines: access logs in any `LogFormat` (common, combined, vhost_combined,
//! combinedio built in) and the 2.4 error log.
//!
//! [`ApacheParser`] tries the configured formats in order (the error log is recognised by its
//! leading `[date]`); [`config`] reads `LogFormat`/`CustomLog` lines from an Apache config.

pub mod config;
pub mod error;
pub mod errorformat;
pub mod logformat;
pub mod strftime;

use self::logformat::LogFormat;
use super::{ConfigError, Context, FieldSink, LineInfo, ParseError};

/// The compiled Apache formats of a source.
#[derive(Debug)]
pub struct ApacheParser {
    formats: Vec<(&'static str, LogFormat)>,
    /// `ErrorLogFormat`s of the config, tried before the default error-log layout.
    error_formats: Vec<errorformat::ErrorLogFormat>,
}

impl ApacheParser {
    /// `formats` are LogFormat strings or nicknames; empty means combined, common,
    /// vhost_combined and combinedio. A nickname `combined`/`common` reports its size as
    /// `response_body_or_sent_bytes` (upstream `%b` or Debian `%O`); a format string read from
    /// the config that defines it is exact about which.
    pub fn new(formats: &[String], error_formats: &[String]) -> Result<ApacheParser, ConfigError> {
        let mut compiled = Vec::new();
        let defaults = [
            ("apache-combined", logformat::COMBINED),
            ("apache-common", logformat::COMMON),
            ("apache-vhost_combined", logformat::VHOST_COMBINED),
            ("apache-combinedio", logformat::COMBINEDIO),
        ];
        // Upstream's `combined`/`common` log `%b`, Debian's and Ubuntu's `%O`: by nickname alone
        // (no config defining it) the size field is named for the ambiguity.
        let ambiguous = |name: &str, f: LogFormat| {
            if matches!(name, "apache-combined" | "apache-common") {
                f.with_ambiguous_size()
            } else {
                f
            }
        };
        if formats.is_empty() {
            for (n, f) in defaults {
                compiled.push((n, ambiguous(n, compile(f)?)));
            }
        }
        for f in formats {
            let nick = logformat::nickname(f);
            let text = nick.unwrap_or(f.as_str());
            let name = defaults
                .iter()
                .find(|(_, d)| *d == text)
                .map_or("apache-custom", |(n, _)| *n);
            let c = compile(text)?;
            compiled.push((
                name,
                if nick.is_some() {
                    ambiguous(name, c)
                } else {
                    c
                },
            ));
        }
        let error_formats = error_formats
            .iter()
            .map(|f| {
                errorformat::ErrorLogFormat::compile(f).map_err(|e| ConfigError::ApacheLogFormat {
                    format: f.clone(),
                    error: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ApacheParser {
            formats: compiled,
            error_formats,
        })
    }

    /// Parses an access or error log line.
    pub fn parse<'a, S: FieldSink>(
        &self,
        line: &'a [u8],
        cx: &Context<'_>,
        sink: &mut S,
        info: &mut LineInfo<'a>,
    ) -> Result<(), ParseError> {
        let line = trim_end(line);
        for f in &self.error_formats {
            let mark = sink.mark();
            let saved = *info;
            if f.parse(line, cx, sink, info).is_ok() {
                info.format = "apache-error";
                return Ok(());
            }
            sink.rollback(mark);
            *info = saved;
        }
        if error::looks_like_error_log(line) {
            info.format = "apache-error";
            return error::parse(line, cx, sink, info);
        }
        let mut furthest = ParseError::at("not an Apache log line", 0);
        for (name, f) in &self.formats {
            let mark = sink.mark();
            let saved = *info;
            match f.parse(line, cx, sink, info) {
                Ok(()) => {
                    info.format = name;
                    return Ok(());
                }
                Err(e) => {
                    sink.rollback(mark);
                    *info = saved;
                    if e.column > furthest.column {
                        furthest = e;
                    }
                }
            }
        }
        Err(furthest)
    }
}

fn compile(f: &str) -> Result<LogFormat, ConfigError> {
    LogFormat::compile(f).map_err(|e| ConfigError::ApacheLogFormat {
        format: f.to_owned(),
        error: e.to_string(),
    })
}

fn trim_end(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && matches!(b[e - 1], b'\n' | b'\r') {
        e -= 1;
    }
    &b[..e]
}
