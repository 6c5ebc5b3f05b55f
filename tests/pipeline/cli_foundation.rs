//! The foundation end to end: the real `quill` binary, real files, real `logger` over UDP and TCP.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use assert_cmd::prelude::*;
use predicates::prelude::*;

#[test]
fn validate_names_file_line_and_key_of_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("typo.toml");
    write_file(
        &cfg,
        "data_dir = \"./data\"\n\n[sources.web]\ntype = \"file\"\ninclde = [\"logs/*.log\"]\ncategory = \"web\"\n",
    );
    Command::new(quill_bin())
        .args(["validate", "-c"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "typo.toml:5: sources.web.inclde: unknown field `inclde`",
        ));
}

#[test]
fn validate_rejects_a_category_that_escapes_the_output_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cat.toml");
    write_file(
        &cfg,
        "[sources.web]\ntype = \"file\"\ninclude = [\"logs/*.log\"]\ncategory = \"../x\"\n\n[sinks.out]\ntype = \"file\"\npath = \"out\"\n",
    );
    Command::new(quill_bin())
        .args(["validate", "-c"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cat.toml:4: sources.web.category: invalid category `../x`",
        ));
}

#[test]
fn validate_accepts_the_shipped_configs() {
    for cfg in [
        "config/quickstart.toml",
        "config/agent.toml",
        "config/aggregator.toml",
    ] {
        Command::new(quill_bin())
            .args(["validate", "-c", cfg])
            .assert()
            .success()
            .stdout(predicate::str::contains(": ok"));
    }
}

#[test]
fn bad_values_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    write_file(
        &cfg,
        "[sinks.out]\ntype = \"file\"\npath = \"out\"\nmax_size = \"ten\"\n",
    );
    Command::new(quill_bin())
        .args(["validate", "-c"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml:4: sinks.out.max_size"));
    Command::new(quill_bin())
        .args(["validate", "-c", "/nonexistent/quill.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "/nonexistent/quill.toml: cannot read config",
        ));
}

#[test]
fn files_and_syslog_flow_to_the_file_sink_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    write_file(&root.join("logs/app.log"), "first line\nsecond line\n");
    write_file(
        &root.join("quill.toml"),
        &format!(
            r#"data_dir = "./data"
hostname = "testhost"
status_interval = "1s"

[sources.app]
type = "file"
include = ["logs/*.log"]
category = "app"
format = "raw"
poll_interval = "50ms"

[sources.sys]
type = "syslog"
udp = "127.0.0.1:{port}"
tcp = "127.0.0.1:{port}"
category = "sys"

[sinks.out]
type = "file"
path = "./out"
max_size = "4KiB"
"#
        ),
    );
    let daemon = Daemon::start(root, &root.join("quill.toml"));
    let out = root.join("out");
    assert!(
        wait_until(Duration::from_secs(10), || read_sink(&out).len() >= 2),
        "file lines did not arrive\n{}",
        daemon.stderr()
    );
    // Appended lines, including a partial line completed later.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("logs/app.log"))
        .unwrap();
    f.write_all(b"third line\nfourth ").unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    f.write_all(b"line\r\n").unwrap();
    drop(f);
    // Enough lines to rotate the 4 KiB sink file.
    let many: String = (0..100)
        .map(|i| format!("bulk {i:04} {}\n", "x".repeat(40)))
        .collect();
    write_file(&root.join("logs/bulk.log"), &many);

    let port_s = port.to_string();
    for args in [
        vec![
            "-n",
            "127.0.0.1",
            "-P",
            &port_s,
            "-d",
            "--rfc3164",
            "hello over udp",
        ],
        vec![
            "-n",
            "127.0.0.1",
            "-P",
            &port_s,
            "-T",
            "--rfc5424",
            "hello over tcp",
        ],
        vec![
            "-n",
            "127.0.0.1",
            "-P",
            &port_s,
            "-T",
            "--octet-count",
            "hello octet counted",
        ],
    ] {
        logger(&args);
    }
    let expected = 2 + 2 + 100 + 3;
    assert!(
        wait_until(Duration::from_secs(10), || read_sink(&out).len()
            >= expected),
        "got {} of {expected} entries\n{}",
        read_sink(&out).len(),
        daemon.stderr()
    );
    let status = daemon.stop();
    assert!(status.success(), "quill exited with {status:?}");

    let entries = read_sink(&out);
    assert_eq!(entries.len(), expected, "every record exactly once");
    let msgs = messages(&entries);
    for want in ["first line", "second line", "third line", "fourth line"] {
        assert_eq!(
            msgs.iter().filter(|m| *m == want).count(),
            1,
            "{want:?} in {msgs:?}"
        );
    }
    for i in 0..100 {
        let want = format!("bulk {i:04} {}", "x".repeat(40));
        assert_eq!(msgs.iter().filter(|m| **m == want).count(), 1, "{want}");
    }
    for (want, format) in [
        ("hello over udp", "syslog-rfc3164"),
        ("hello over tcp", "syslog-rfc5424"),
        ("hello octet counted", "syslog-rfc5424"),
    ] {
        // Parsed at the sink: the syslog MSG is the short message, the header becomes fields.
        let hits: Vec<_> = entries
            .iter()
            .filter(|e| e["short_message"] == want)
            .collect();
        assert_eq!(hits.len(), 1, "{want}: {msgs:?}");
        assert_eq!(hits[0]["_category"], "sys");
        assert_eq!(hits[0]["_log_format"], format, "{:?}", hits[0]);
        assert_eq!(
            hits[0]["level"], 5,
            "logger's default priority is user.notice"
        );
    }
    for e in &entries {
        assert_eq!(e["version"], "1.1");
        if e["_category"] == "app" {
            // File lines carry no host of their own: the receiving host's name.
            assert_eq!(e["host"], "testhost");
        }
        assert!(e["timestamp"].as_f64().is_some_and(|t| t > 1.7e9));
        assert!(e["level"].is_u64());
    }
    // The 4 KiB limit rotated the app category into several files, none over the limit.
    let files: Vec<_> = std::fs::read_dir(out.join("app"))
        .unwrap()
        .flatten()
        .collect();
    assert!(files.len() >= 2, "rotation happened");
    for f in files {
        let name = f.file_name().into_string().unwrap();
        assert!(
            name.starts_with("app_") && name.ends_with(".gelf"),
            "{name}"
        );
        assert!(f.metadata().unwrap().len() <= 4096);
    }
    // quill cat reads what the sink wrote.
    let first = out.join("app/app_00000.gelf");
    Command::new(quill_bin())
        .args(["cat", "--host", "testhost"])
        .arg(&first)
        .assert()
        .success()
        .stdout(predicate::str::contains("first line"));
    Command::new(quill_bin())
        .args(["cat", "--host", "elsewhere"])
        .arg(&first)
        .assert()
        .code(1);
}

#[test]
fn quickstart_runs_from_a_fresh_checkout() {
    // Run the shipped quickstart exactly as the README says, in a copy of the repo's files.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for rel in [
        "config/quickstart.toml",
        "examples/haproxy.cfg",
        "examples/logs/haproxy.log",
        "examples/logs/apache_access.log",
    ] {
        let dst = root.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(rel), &dst).unwrap();
    }
    let sample_lines = [
        "examples/logs/haproxy.log",
        "examples/logs/apache_access.log",
    ]
    .iter()
    .map(|f| {
        std::fs::read_to_string(repo.join(f))
            .unwrap()
            .lines()
            .count()
    })
    .sum::<usize>();
    let daemon = Daemon::start(root, &root.join("config/quickstart.toml"));
    let out = root.join("data/out");
    assert!(
        wait_until(Duration::from_secs(5), || read_sink(&out).len()
            >= sample_lines),
        "within 5 s the sample logs are in data/out\n{}",
        daemon.stderr()
    );
    logger(&["-n", "127.0.0.1", "-P", "5514", "-d", "hello"]);
    assert!(
        wait_until(Duration::from_secs(5), || messages(&read_sink(&out))
            .iter()
            .any(|m| m.ends_with("hello"))),
        "logger's hello arrived\n{}",
        daemon.stderr()
    );
    // The request id from the sample logs finds the HAProxy line and the Apache line of that request.
    let txn = "f2a74de4-269e-4651-aa6a-128b0c5c7fd0";
    let mut found = Vec::new();
    let searched = wait_until(Duration::from_secs(10), || {
        let out = Command::new(quill_bin())
            .args(["search", txn, "--json", "--data"])
            .arg(root.join("data"))
            .output()
            .unwrap();
        found = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        found.len() >= 2
    });
    assert!(searched, "search found {found:?}\n{}", daemon.stderr());
    let cats: Vec<serde_json::Value> = found
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(cats.iter().all(|e| e["_txn_id"] == txn));
    assert!(
        cats.iter()
            .any(|e| e["_category"] == "lb" && e["_status"] == 200)
    );
    assert!(
        cats.iter()
            .any(|e| e["_category"] == "web" && e["_http_path"] == "/api/v1/cart")
    );
    assert!(daemon.stop().success());
    assert!(read_sink(&out).iter().any(|e| e["_category"] == "lb"));
    assert!(read_sink(&out).iter().any(|e| e["_category"] == "web"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["run", "validate", "parse", "search", "index", "send", "cat"] {
        Command::new(quill_bin())
            .args([sub, "--help"])
            .assert()
            .success();
    }
}
