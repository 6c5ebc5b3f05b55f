//! The parse keys loaded by one function everywhere: `quill validate` compiles them (a bad
//! `haproxy_format` or a missing haproxy.cfg is reported as file:line:key), and `quill index`
//! takes the same `--haproxy-config` as `quill parse`. The real `quill` binary over fixture files.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parse/cli")
        .join(name)
}

fn validate(config: &str) -> assert_cmd::assert::Assert {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.toml");
    std::fs::write(&path, config).unwrap();
    Command::cargo_bin("quill")
        .unwrap()
        .args(["validate", "-c"])
        .arg(&path)
        .assert()
}

const SOURCE: &str = "[sources.lb]\ntype = \"syslog\"\nudp = \"127.0.0.1:5514\"\n";

#[test]
fn validate_compiles_a_sources_haproxy_format() {
    validate(&format!("{SOURCE}haproxy_format = [\"%ci %[unclosed\"]\n"))
        .code(2)
        .stderr(predicate::str::contains(
            "q.toml:4: sources.lb.haproxy_format:",
        ));
}

#[test]
fn validate_reads_the_haproxy_cfg_a_source_names() {
    validate(&format!(
        "{SOURCE}haproxy_config = \"/nonexistent/haproxy.cfg\"\n"
    ))
    .code(2)
    .stderr(predicate::str::contains(
        "q.toml:4: sources.lb.haproxy_config: cannot read /nonexistent/haproxy.cfg",
    ));
    let cfg = fixture("custom-haproxy.cfg");
    validate(&format!(
        "{SOURCE}haproxy_config = {:?}\n",
        cfg.display().to_string()
    ))
    .success()
    .stdout(predicate::str::contains("ok (1 sources, 0 sinks)"));
}

#[test]
fn validate_compiles_the_parse_section() {
    validate("[parse]\ntimezone = \"UTC\"\napache_format = [\"%{unclosed\"]\n")
        .code(2)
        .stderr(predicate::str::contains("q.toml:3: parse.apache_format:"));
}

/// `quill index --haproxy-config` parses a custom `log-format` as `quill parse` does: the entry
/// is found by the unique id only that format extracts.
#[test]
fn index_takes_a_haproxy_cfg() {
    let unique_id = "0A010203:9C40_6A4F1A2B";
    let search = |data: &std::path::Path| {
        Command::cargo_bin("quill")
            .unwrap()
            .args(["search", unique_id, "--json", "--data"])
            .arg(data)
            .output()
            .unwrap()
    };
    let index = |data: &std::path::Path, extra: &[&std::ffi::OsStr]| {
        Command::cargo_bin("quill")
            .unwrap()
            .args([
                "index",
                "--format",
                "haproxy",
                "--max-age-days",
                "0",
                "--data",
            ])
            .arg(data)
            .args(extra)
            .arg(fixture("custom-haproxy.log"))
            .assert()
            .success();
    };
    let with = tempfile::tempdir().unwrap();
    let cfg = fixture("custom-haproxy.cfg");
    index(with.path(), &["--haproxy-config".as_ref(), cfg.as_os_str()]);
    let found = search(with.path());
    let stdout = String::from_utf8_lossy(&found.stdout);
    assert!(stdout.contains("\"_frontend\":\"fe_custom\""), "{stdout}");
    assert!(stdout.contains("haproxy-custom"), "{stdout}");

    let without = tempfile::tempdir().unwrap();
    index(without.path(), &[]);
    let found = search(without.path());
    let stdout = String::from_utf8_lossy(&found.stdout);
    assert!(!stdout.contains("\"_frontend\":\"fe_custom\""), "{stdout}");
}
