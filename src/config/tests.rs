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
