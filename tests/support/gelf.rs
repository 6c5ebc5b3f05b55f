//! Helpers shared by the logging integration tests: a GELF 1.1 validator written from the spec
//! (independent of the encoder), and readers for files of GELF lines.

use serde_json::{Map, Value};

/// Checks one GELF 1.1 line against the spec; returns its object.
///
/// Required: `version` "1.1", `host`, `short_message` (non-empty strings), `timestamp` (number),
/// `level` (integer 0-7). Every other key is an additional field: `_` + `[\w.\-]+`, not `_id`,
/// with a string or number value.
pub fn assert_gelf(line: &[u8]) -> Map<String, Value> {
    let text = std::str::from_utf8(line).expect("GELF line is UTF-8");
    assert!(!text.contains('\n'), "embedded newline in {text}");
    let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let Value::Object(map) = value else {
        panic!("not an object: {text}")
    };
    assert_eq!(map.get("version"), Some(&Value::from("1.1")), "{text}");
    for key in ["host", "short_message"] {
        let s = map
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{key} in {text}"));
        assert!(!s.is_empty(), "empty {key} in {text}");
    }
    assert!(map.get("timestamp").is_some_and(Value::is_number), "{text}");
    let level = map
        .get("level")
        .and_then(Value::as_u64)
        .expect("integer level");
    assert!(level <= 7, "{text}");
    for (key, value) in &map {
        if matches!(
            key.as_str(),
            "version" | "host" | "short_message" | "timestamp" | "level"
        ) {
            continue;
        }
        assert!(
            key.starts_with('_'),
            "additional field {key:?} lacks '_' in {text}"
        );
        assert!(key.len() > 1, "empty field name in {text}");
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'),
            "field name {key:?} outside [\\w.-] in {text}"
        );
        assert_ne!(key, "_id", "reserved _id in {text}");
        assert!(
            value.is_string() || value.is_number(),
            "{key} = {value} in {text}"
        );
    }
    map
}

/// Every line of `bytes` checked with [`assert_gelf`].
pub fn gelf_lines(bytes: &[u8]) -> Vec<Map<String, Value>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(assert_gelf)
        .collect()
}

/// The GELF lines of a file.
pub fn read_gelf_file(path: &std::path::Path) -> Vec<Map<String, Value>> {
    gelf_lines(&std::fs::read(path).unwrap_or_default())
}

/// The `short_message` of each GELF line (one checked with [`assert_gelf`] always has one).
pub fn short_messages(lines: &[Map<String, Value>]) -> Vec<&str> {
    lines
        .iter()
        .map(|m| m["short_message"].as_str().unwrap())
        .collect()
}
