//! Search across aggregators: two real `quill run` aggregators (file source → journal → index
//! sink with its search API on loopback) hold different entries of the same transaction ids,
//! interleaved in time. `quill search --server A --server B TXN` (the real binary) returns all of
//! them in time order (ties in the order the servers were given), `--limit` cuts the merged
//! result, and `-c FILE` with `[search] peers` does the same. With B stopped, or a peer
//! answering an HTTP error, A's entries still print, the failed peer is named on stderr and the
//! exit code is 3; with every peer down it is 2.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::*;

/// Entries per transaction id; even steps go to A, odd ones to B.
const STEPS: usize = 6;
const TXNS: [&str; 3] = ["fan-1", "fan-2", "fan-3"];

/// The entry of `txn` at `step`: its time and message.
fn entry(t: usize, step: usize) -> (String, String) {
    // One second per txn, 100 ms per step: the steps of a txn interleave across A and B.
    let ms = 100 * step;
    let time = format!("2026-11-23T01:0{t}:00.{ms:03}Z");
    (time, format!("{} step {step}", TXNS[t]))
}

fn json_line(time: &str, txn: &str, msg: &str) -> String {
    format!("{{\"time\":\"{time}\",\"level\":\"info\",\"msg\":\"{msg}\",\"txn_id\":\"{txn}\"}}\n")
}

/// Starts an aggregator in `dir` over `lines`; returns it and its search URL.
fn aggregator(dir: &Path, name: &str, lines: &str) -> (Daemon, String) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    write_file(&dir.join("logs/app.json"), lines);
    let port = free_port();
    let config = dir.join("quill.toml");
    write_file(
        &config,
        &format!(
            r#"data_dir = "./data"
hostname = "{name}"

[sources.app]
type = "file"
include = ["logs/*.json"]
format = "json"
poll_interval = "50ms"

[sinks.index]
type = "index"
max_age_days = 0
commit_interval = "200ms"
listen = "127.0.0.1:{port}"
"#
        ),
    );
    (
        Daemon::start(dir, &config),
        format!("http://127.0.0.1:{port}"),
    )
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn wait_entries(daemon: &Daemon, url: &str, want: usize) {
    let count = || count_entries(port_of(url), &[]);
    assert!(
        wait_until(Duration::from_secs(60), || count() >= want),
        "{url}: {want} entries indexed (got {})\n{}",
        count(),
        daemon.stderr()
    );
}

fn search(args: &[&str]) -> Output {
    quill()
        .arg("search")
        .args(args)
        .arg("--json")
        .env_remove("QUILL_DATA")
        .output()
        .expect("quill search runs")
}

/// The `short_message`s of `--json` output, in order.
fn messages_of(out: &Output) -> Vec<String> {
    json_lines(&out.stdout)
        .iter()
        .map(|v| v["short_message"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A search API that answers every request with 503, as an overloaded aggregator does.
fn overloaded_peer() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = r#"{"error":"too many searches at once; try again"}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn search_fans_out_merges_by_time_and_names_missing_peers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a_lines, mut b_lines) = (String::new(), String::new());
    for (t, txn) in TXNS.iter().enumerate() {
        for step in 0..STEPS {
            let (time, msg) = entry(t, step);
            let lines = if step % 2 == 0 {
                &mut a_lines
            } else {
                &mut b_lines
            };
            lines.push_str(&json_line(&time, txn, &msg));
        }
    }
    // One tie: the same millisecond on both aggregators.
    let tie = "2026-11-23T01:00:00.950Z";
    a_lines.push_str(&json_line(tie, TXNS[0], "tie on a"));
    b_lines.push_str(&json_line(tie, TXNS[0], "tie on b"));
    let (a, url_a) = aggregator(&dir.path().join("a"), "agg-a", &a_lines);
    let (b, url_b) = aggregator(&dir.path().join("b"), "agg-b", &b_lines);
    let per_side = TXNS.len() * STEPS / 2 + 1;
    wait_entries(&a, &url_a, per_side);
    wait_entries(&b, &url_b, per_side);

    let all_steps = |t: usize| -> Vec<String> { (0..STEPS).map(|s| entry(t, s).1).collect() };
    // Every entry of a txn, from both, in time order.
    let out = search(&["--server", &url_a, "--server", &url_b, TXNS[1]]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(messages_of(&out), all_steps(1));
    // Ties keep the order the servers were given in.
    let mut want = all_steps(0);
    want.extend(["tie on a".to_string(), "tie on b".to_string()]);
    let out = search(&["--server", &url_a, "--server", &url_b, TXNS[0]]);
    assert_eq!(messages_of(&out), want);
    let out = search(&["--server", &url_b, "--server", &url_a, TXNS[0]]);
    want.swap(STEPS, STEPS + 1);
    assert_eq!(messages_of(&out), want);
    // The limit applies to the merged result: the newest entries of both.
    let out = search(&[
        "--server", &url_a, "--server", &url_b, "--limit", "3", TXNS[2],
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(messages_of(&out), all_steps(2)[STEPS - 3..]);
    assert!(stderr_of(&out).contains("newest 3"), "{}", stderr_of(&out));
    // A query across both.
    let out = search(&["--server", &url_a, "--server", &url_b, "-q", "message:step"]);
    assert_eq!(messages_of(&out).len(), TXNS.len() * STEPS);

    // The same through `[search] peers`.
    let search_cfg = dir.path().join("search.toml");
    write_file(
        &search_cfg,
        &format!("[search]\npeers = [\"{url_a}\", \"{url_b}\"]\ntimeout = \"5s\"\n"),
    );
    let cfg = search_cfg.to_str().unwrap();
    let out = search(&["-c", cfg, TXNS[2]]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(messages_of(&out), all_steps(2));

    // A peer answering an error: the others' entries print, it is named, exit 3.
    let busy = overloaded_peer();
    let out = search(&[
        "--server", &url_a, "--server", &busy, "--server", &url_b, TXNS[1],
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert_eq!(messages_of(&out), all_steps(1));
    let err = stderr_of(&out);
    assert!(err.contains(&busy) && err.contains("503"), "{err}");

    // B stopped: A's entries print, B is named, exit 3.
    assert!(b.stop().success());
    let a_only: Vec<String> = all_steps(1).into_iter().step_by(2).collect();
    for out in [
        search(&["--server", &url_a, "--server", &url_b, TXNS[1]]),
        search(&["-c", cfg, TXNS[1]]),
    ] {
        assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
        assert_eq!(messages_of(&out), a_only);
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("cannot reach {url_b}")) && err.contains("1 of 2 servers"),
            "{err}"
        );
        assert!(!err.contains(&format!("reach {url_a}")), "{err}");
    }
    // Nothing matching on A while B is down is still incomplete, not "no entries".
    let out = search(&["-c", cfg, "fan-none"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));

    // Every peer down: an error.
    assert!(a.stop().success());
    let out = search(&["-c", cfg, TXNS[1]]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains(&url_a) && err.contains(&url_b) && err.contains("none of the 2"),
        "{err}"
    );
}
