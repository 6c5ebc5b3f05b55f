//! Routing against the real binary: sinks take their `inputs` (globs), `min_severity` and
//! `hosts`; records no sink takes are counted as unrouted (Prometheus and the status line). Also
//! a real `logrotate` run whose postrotate sends SIGHUP through the pid file, at a high write
//! rate: the daemon reloads instead of dying, and nothing is lost or duplicated.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

fn tokens(root: &Path) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for m in messages(&read_sink(root)) {
        let token = m.rsplit(' ').next().unwrap_or("").to_string();
        *out.entry(token).or_insert(0) += 1;
    }
    out
}

fn sorted(m: &HashMap<String, u32>) -> Vec<String> {
    assert!(m.values().all(|c| *c == 1), "a line written twice: {m:?}");
    let mut v: Vec<String> = m.keys().cloned().collect();
    v.sort();
    v
}

#[test]
fn sinks_take_inputs_severity_and_hosts_and_the_rest_is_counted_unrouted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let port = free_port();
    let metrics = free_port();
    write_file(&root.join("in/web1.log"), "");
    write_file(&root.join("in2/web2.log"), "");
    write_file(
        &root.join("quill.toml"),
        &format!(
            r#"data_dir = "./data"
hostname = "recv"
metrics_listen = "127.0.0.1:{metrics}"
status_interval = "1s"

[sources.web1]
type = "file"
include = ["./in/*.log"]
format = "raw"
poll_interval = "50ms"

[sources.web2]
type = "file"
include = ["./in2/*.log"]
format = "raw"
poll_interval = "50ms"
category = "frontend"

[sources.sys]
type = "syslog"
tcp = "127.0.0.1:{port}"

[sinks.webs]
type = "file"
path = "./webs"
inputs = ["web*"]

[sinks.front]
type = "file"
path = "./front"
categories = ["front*"]

[sinks.warn]
type = "file"
path = "./warn"
inputs = ["sys"]
min_severity = "warning"

[sinks.db]
type = "file"
path = "./db"
inputs = ["sys"]
hosts = ["db-*"]
"#
        ),
    );
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    daemon.wait_listening(port, Duration::from_secs(20));
    std::fs::write(root.join("in/web1.log"), "a w1-0\na w1-1\n").unwrap();
    std::fs::write(root.join("in2/web2.log"), "b w2-0\n").unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // err from web-1 (warn), info from db-1 (db), warning from db-2 (warn + db), and two info
    // lines from web-1 that no sink takes.
    for line in [
        "<11>Oct 11 22:14:15 web-1 app: s-err-web",
        "<14>Oct 11 22:14:15 db-1 app: s-info-db",
        "<12>1 2024-01-01T00:00:00Z db-2 app - - - s-warning-db",
        "<14>Oct 11 22:14:15 web-1 app: s-info-web-a",
        "<15>Oct 11 22:14:15 web-1 app: s-debug-web-b",
    ] {
        writeln!(s, "{line}").unwrap();
    }
    drop(s);
    assert!(
        wait_until(Duration::from_secs(20), || scrape_metric(
            metrics,
            "quill_unrouted_total",
            "source=\"sys\""
        ) == Some(2.0)),
        "unrouted count\n{}",
        daemon.stderr()
    );
    assert!(
        wait_until(Duration::from_secs(10), || daemon
            .stderr()
            .contains("| unrouted: sys=2")),
        "status line\n{}",
        daemon.stderr()
    );
    assert!(daemon.stop().success());
    assert_eq!(
        sorted(&tokens(&root.join("webs"))),
        ["w1-0", "w1-1", "w2-0"]
    );
    assert_eq!(
        sorted(&tokens(&root.join("warn"))),
        ["s-err-web", "s-warning-db"]
    );
    assert_eq!(
        sorted(&tokens(&root.join("db"))),
        ["s-info-db", "s-warning-db"]
    );
    assert_eq!(sorted(&tokens(&root.join("front"))), ["w2-0"]);
}

/// A real logrotate (Debian's) rotating a file Quill tails, with the postrotate of syslog
/// daemons: `kill -HUP $(cat PIDFILE)`.
#[test]
fn logrotate_postrotate_sighup_loses_nothing() {
    if !require(&[Need::Program("logrotate")], "apt-get install logrotate") {
        return;
    }
    let logrotate = which("logrotate").expect("found by require");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let log = root.join("logs/app.log");
    write_file(&log, "");
    write_file(
        &root.join("quill.toml"),
        r#"data_dir = "./data"
pid_file = "./run/quill.pid"

[sources.app]
type = "file"
include = ["./logs/app.log"]
format = "raw"
poll_interval = "20ms"

[sinks.out]
type = "file"
path = "./out"
"#,
    );
    let pid_file = root.join("run/quill.pid");
    write_file(
        &root.join("logrotate.conf"),
        &format!(
            "{log} {{\n    rotate 10\n    missingok\n    nocompress\n    create 0644\n    postrotate\n        kill -HUP $(cat {pid})\n    endscript\n}}\n",
            log = log.display(),
            pid = pid_file.display()
        ),
    );
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    assert!(
        wait_until(Duration::from_secs(20), || pid_file.exists()),
        "{}",
        daemon.stderr()
    );
    // The writer reopens its file every 200 lines, like a program that reopens on HUP.
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            for _ in 0..300 {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
                let mut chunk = String::new();
                for _ in 0..200 {
                    chunk.push_str(&format!("line rot-{n}\n"));
                    n += 1;
                }
                f.write_all(chunk.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        let out = std::process::Command::new(&logrotate)
            .arg("-f")
            .arg("-s")
            .arg(root.join("logrotate.state"))
            .arg(root.join("logrotate.conf"))
            .output()
            .unwrap();
        assert!(out.status.success(), "logrotate: {out:?}");
    }
    let sent = writer.join().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || tokens(&root.join("out")).len()
            as u64
            >= sent),
        "{}",
        daemon.stderr()
    );
    let stderr = daemon.stderr();
    assert!(stderr.matches("Reloaded.").count() >= 4, "{stderr}");
    assert!(daemon.stop().success(), "{stderr}");
    let got = tokens(&root.join("out"));
    for i in 0..sent {
        assert_eq!(got.get(&format!("rot-{i}")), Some(&1), "rot-{i}");
    }
    assert_eq!(got.len() as u64, sent);
    assert!(root.join("logs/app.log.4").exists(), "logrotate rotated");
}
