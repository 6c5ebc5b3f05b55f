//! Where a config error is: the file, line and dotted key of a TOML or validation error.
//!
//! Pure text functions over the config file's contents; they read nothing else.

use serde::Deserialize;
use thiserror::Error;

use super::{
    FileSinkConfig, FileSourceConfig, ForwardSinkConfig, ForwardSourceConfig, GelfSinkConfig,
    GelfSourceConfig, IndexSinkConfig, ParseKeys, SyslogSinkConfig, SyslogSourceConfig,
};

/// A config error, located in its file.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: String,
        line: usize,
        /// Dotted key path, e.g. `sources.web.category`.
        key: String,
        message: String,
    },
}

/// Turns a TOML/serde error into a located [`ConfigError`].
pub(super) fn locate_toml_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let span_start = e.span().map(|s| s.start).unwrap_or(0);
    // serde reports the table for an unknown key inside internally tagged enums; find the key's own
    // line within that table when the message names it.
    let mut line = line_of(text, span_start);
    let table = table_path_at(text, span_start);
    let mut key = table.clone();
    if let Some(name) = backticked_after(&message, "unknown field `") {
        if let Some(l) = find_key_line_from(text, span_start, &name) {
            line = l;
        }
        key = join_key(&table, &name);
    } else if let Some(k) = key_at_line(text, line) {
        key = join_key(&table, &k);
    } else if let Some(located) = relocate_in_tagged_table(text, origin, &table) {
        return located;
    } else if let Some(missing) = backticked_after(&message, "missing field `") {
        key = join_key(&table, &missing);
    }
    ConfigError::Invalid {
        path: origin.to_string(),
        line,
        key: if key.is_empty() {
            "(top level)".into()
        } else {
            key
        },
        message,
    }
}

/// serde reports a bad value inside an internally tagged table (`[sources.x]`, `[sinks.x]`) at the
/// table, not the key. Re-parsing that table's text alone as its concrete type yields a precise span.
fn relocate_in_tagged_table(text: &str, origin: &str, table: &str) -> Option<ConfigError> {
    let (kind, _) = table.split_once('.')?;
    let mut start_line = None;
    let mut body = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            if start_line.is_some() {
                break;
            }
            let name = t.trim_start_matches('[').split(']').next().unwrap_or("");
            if name.trim().replace(['"', ' '], "") == table {
                start_line = Some(i + 1);
            }
            body.push('\n');
            continue;
        }
        if start_line.is_none() {
            body.push('\n');
            continue;
        }
        let is_type = t.split_once('=').is_some_and(|(k, _)| k.trim() == "type");
        if is_type {
            body.push('\n');
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    start_line?;
    let type_name: String = text
        .lines()
        .skip(start_line?)
        .take_while(|l| !l.trim().starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "type").then(|| v.trim().trim_matches('"').to_string())
        })?;
    // The parse keys are flattened into file and syslog sources, and serde reports their bad
    // values without a position: try each alone.
    if matches!((kind, type_name.as_str()), ("sources", "file" | "syslog"))
        && let Some((key, message)) = first_bad_parse_key(&body)
    {
        return Some(ConfigError::Invalid {
            path: origin.to_string(),
            line: find_key_line(text, table, key),
            key: join_key(table, key),
            message,
        });
    }
    let err = match (kind, type_name.as_str()) {
        ("sources", "file") => toml::from_str::<FileSourceConfig>(&body).err(),
        ("sources", "syslog") => toml::from_str::<SyslogSourceConfig>(&body).err(),
        ("sources", "forward") => toml::from_str::<ForwardSourceConfig>(&body).err(),
        ("sources", "gelf") => toml::from_str::<GelfSourceConfig>(&body).err(),
        ("sinks", "file") => toml::from_str::<FileSinkConfig>(&body).err(),
        ("sinks", "forward") => toml::from_str::<ForwardSinkConfig>(&body).err(),
        ("sinks", "index") => toml::from_str::<IndexSinkConfig>(&body).err(),
        ("sinks", "gelf") => toml::from_str::<GelfSinkConfig>(&body).err(),
        ("sinks", "syslog") => toml::from_str::<SyslogSinkConfig>(&body).err(),
        _ => None,
    }?;
    let line = line_of(&body, err.span()?.start);
    let key = key_at_line(text, line).map_or_else(|| table.to_string(), |k| join_key(table, &k));
    Some(ConfigError::Invalid {
        path: origin.to_string(),
        line,
        key,
        message: err.message().trim().to_string(),
    })
}

/// The first parse key of a table's `body` whose value [`ParseKeys`] rejects, with why.
fn first_bad_parse_key(body: &str) -> Option<(&'static str, String)> {
    let table: toml::Table = toml::from_str(body).ok()?;
    ParseKeys::NAMES.iter().find_map(|&name| {
        let value = table.get(name)?;
        let mut alone = toml::Table::new();
        alone.insert(name.to_string(), value.clone());
        let err = ParseKeys::deserialize(alone).err()?;
        Some((name, err.message().trim().to_string()))
    })
}

fn join_key(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let end = message[start..].find('`')?;
    Some(message[start..start + end].to_string())
}

/// 1-based line number of byte offset `pos`.
fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The `[table]` header in force at byte offset `pos` (empty at top level).
fn table_path_at(text: &str, pos: usize) -> String {
    let mut current = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > pos {
            break;
        }
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            if let Some(end) = t.find(']') {
                current = t[1..end].trim().replace(['"', ' '], "");
            }
        }
        offset += line.len();
    }
    current
}

/// The key assigned on line `line` (1-based), if that line is `key = value`.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (k, _) = l.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.starts_with('[')).then(|| k.to_string())
}

/// The first line at or after byte offset `from` that assigns `key`, staying within the table.
fn find_key_line_from(text: &str, from: usize, key: &str) -> Option<usize> {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        if offset <= from {
            continue;
        }
        let t = line.trim();
        if t.starts_with('[') {
            if start > from {
                return None;
            }
            continue;
        }
        if let Some((k, _)) = t.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return Some(i + 1);
        }
    }
    None
}

/// The line of `key` inside `[table]` (or of the table header when `key` is empty); 1 if not found.
pub fn find_key_line(text: &str, table: &str, key: &str) -> usize {
    let mut in_table = table.is_empty();
    let mut header_line = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').split(']').next().unwrap_or("");
            in_table = name.trim().replace(['"', ' '], "") == table;
            if in_table {
                header_line = Some(i + 1);
            }
            continue;
        }
        if in_table
            && !key.is_empty()
            && let Some((k, _)) = t.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return i + 1;
        }
    }
    header_line.unwrap_or(1)
}
