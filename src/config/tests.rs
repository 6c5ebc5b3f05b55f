//! Unit tests of loading and locating errors in a whole config file.

use super::*;

const GOOD: &str = r#"
data_dir = "./data"
hostname = "web1"

[sources.web]
type = "file"
include = ["logs/*.log"]
category = "web"
format = "haproxy"

[sources.sys]
type = "syslog"
udp = "127.0.0.1:5514"

[sinks.out]
type = "file"
path = "./data/out"
max_size = "100MiB"
"#;

#[test]
fn good_config_parses() {
    let c = Config::parse(GOOD, "q.toml").unwrap();
    assert_eq!(c.sources.len(), 2);
    match &c.sinks["out"] {
        SinkConfig::File(f) => assert_eq!(f.max_size, ByteSize::mib(100)),
        other => panic!("unexpected {other:?}"),
    }
}

fn invalid(text: &str) -> (usize, String, String) {
    match Config::parse(text, "q.toml") {
        Err(ConfigError::Invalid {
            line, key, message, ..
        }) => (line, key, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn typo_key_is_located() {
    let text = GOOD.replace("include =", "inclde =");
    let (line, key, msg) = invalid(&text);
    assert_eq!(line, 7, "{msg}");
    assert_eq!(key, "sources.web.inclde");
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn bad_category_is_rejected() {
    let text = GOOD.replace("category = \"web\"", "category = \"../x\"");
    let (line, key, msg) = invalid(&text);
    assert_eq!((line, key.as_str()), (8, "sources.web.category"), "{msg}");
}

#[test]
fn bad_value_is_located() {
    let text = GOOD.replace("max_size = \"100MiB\"", "max_size = \"100 parsecs\"");
    let (line, key, msg) = invalid(&text);
    assert_eq!((line, key.as_str()), (18, "sinks.out.max_size"), "{msg}");
    let text = GOOD.replace("format = \"haproxy\"", "format = \"nginx\"");
    let (line, key, _) = invalid(&text);
    assert_eq!((line, key.as_str()), (9, "sources.web.format"));
    let text = GOOD.replace("udp = \"127.0.0.1:5514\"", "udp = 5514");
    let (line, key, _) = invalid(&text);
    assert_eq!((line, key.as_str()), (13, "sources.sys.udp"));
}

#[test]
fn file_sink_output_settings() {
    let with = |extra: &str| {
        GOOD.replace(
            "max_size = \"100MiB\"",
            &format!("max_size = \"100MiB\"\n{extra}"),
        )
    };
    let (line, key, msg) = invalid(&with("workers = 0"));
    assert_eq!((line, key.as_str()), (19, "sinks.out.workers"), "{msg}");
    let (line, key, msg) = invalid(&with("fsync = \"sometimes\""));
    assert_eq!((line, key.as_str()), (19, "sinks.out.fsync"), "{msg}");
    let (_, key, msg) = invalid(&with("fsync_interval = \"0s\""));
    assert_eq!(key, "sinks.out.fsync_interval", "{msg}");
    let cfg = Config::parse(&with("fsync = \"never\"\nworkers = 3"), "t.toml").unwrap();
    match &cfg.sinks["out"] {
        SinkConfig::File(f) => {
            assert_eq!((f.fsync, f.workers), (Some(OutputFsync::Never), Some(3)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_top_level_key() {
    let (line, key, _) = invalid("data_dri = \"x\"\n");
    assert_eq!((line, key.as_str()), (1, "data_dri"));
}

#[test]
fn categories() {
    for ok in ["web", "lb.eu-1", "a_b"] {
        assert!(is_safe_category(ok));
    }
    for bad in ["", "..", "../x", "a/b", ".hidden", "a\u{7}", "a b"] {
        assert!(!is_safe_category(bad), "{bad:?}");
    }
}

#[test]
fn flattened_parse_keys_are_located() {
    // The parse keys are one struct flattened into the file and syslog sources: a typo or a bad
    // value there is still reported at its own line and key.
    let text = GOOD.replace(
        "udp = \"127.0.0.1:5514\"",
        "udp = \"127.0.0.1:5514\"\ntimezon = \"UTC\"",
    );
    let (line, key, msg) = invalid(&text);
    assert_eq!((line, key.as_str()), (14, "sources.sys.timezon"), "{msg}");
    assert!(msg.contains("unknown field"), "{msg}");
    let text = GOOD.replace(
        "format = \"haproxy\"",
        "format = \"haproxy\"\nhaproxy_format = 5",
    );
    let (line, key, msg) = invalid(&text);
    assert_eq!(
        (line, key.as_str()),
        (10, "sources.web.haproxy_format"),
        "{msg}"
    );
    let c = Config::parse(
        &GOOD.replace("format = \"haproxy\"", "timezone = \"UTC\""),
        "q.toml",
    )
    .unwrap();
    match &c.sources["web"] {
        SourceConfig::File(f) => assert_eq!(f.parse.timezone.as_deref(), Some("UTC")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn check_parsers_locates_what_only_compiling_finds() {
    let with = |extra: &str| {
        GOOD.replace(
            "format = \"haproxy\"",
            &format!("format = \"haproxy\"\n{extra}"),
        )
    };
    let located = |text: &str| {
        let c = Config::parse(text, "q.toml").unwrap();
        match c.check_parsers(text, "q.toml") {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected an error, got {other:?}"),
        }
    };
    let (line, key, msg) = located(&with("haproxy_format = [\"%{+Q}o %[unclosed\"]"));
    assert_eq!(
        (line, key.as_str()),
        (10, "sources.web.haproxy_format"),
        "{msg}"
    );
    let (line, key, msg) = located(&with("haproxy_config = \"/nonexistent/haproxy.cfg\""));
    assert_eq!(
        (line, key.as_str()),
        (10, "sources.web.haproxy_config"),
        "{msg}"
    );
    assert!(msg.contains("/nonexistent/haproxy.cfg"), "{msg}");
    let text = format!("{GOOD}\n[parse]\napache_format = [\"%{{unclosed\"]\n");
    let (line, key, msg) = located(&text);
    assert_eq!((line, key.as_str()), (21, "parse.apache_format"), "{msg}");
    let c = Config::parse(GOOD, "q.toml").unwrap();
    c.check_parsers(GOOD, "q.toml").unwrap();
}
