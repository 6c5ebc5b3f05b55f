//! The search API and `quill search --data` under hostile input, against the real binary over
//! real fixture data: deep nesting and huge `limit`s get clear answers fast and never take the
//! daemon down; a search past its time budget is cut; the token, TLS and the loopback default.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn nested(depth: usize) -> String {
    format!("{}GET{}", "(".repeat(depth), ")".repeat(depth))
}

fn alive(agg: &mut Aggregator) -> bool {
    matches!(agg.daemon.child.try_wait(), Ok(None))
}

#[test]
fn hostile_queries_get_clear_errors_and_the_daemon_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut agg = start_aggregator(dir.path(), "");
    wait_indexed(&agg, &[]);
    let pid = agg.daemon.child.id();
    let port = agg.port;

    // 1,000 nested parentheses: 400 at once, and the daemon still answers.
    let a = get(port, &format!("/api/search?q={}", enc(&nested(1000))), &[]).unwrap();
    assert_eq!(a.status, 400, "{a:?}");
    assert!(
        a.json()["error"].as_str().unwrap().contains("1000 deep"),
        "{}",
        a.body
    );
    assert!(a.took < Duration::from_secs(1), "took {:?}", a.took);
    let t = get(port, "/api/search?txn=queue-0267", &[]).unwrap();
    assert_eq!(t.status, 200);
    assert_eq!(t.json()["hits"].as_array().unwrap().len(), 2, "{}", t.body);

    // 5,000: no stack overflow; twenty at once: all refused quickly.
    let deep = format!("/api/search?q={}", enc(&nested(5000)));
    let started = Instant::now();
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| s.spawn(|| get(port, &deep, &[]).map_or(0, |a| a.status)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|&s| s == 400), "{answers:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(alive(&mut agg), "daemon died\n{}", agg.daemon.stderr());

    // Too long: 400 before parsing.
    let long = get(
        port,
        &format!("/api/search?q={}", enc(&"a ".repeat(3000))),
        &[],
    )
    .unwrap();
    assert_eq!(long.status, 400);
    assert!(long.body.contains("6000 bytes long"), "{}", long.body);

    // limit = 10^12: capped at 10,000 (nothing preallocated for 10^12), every entry returned.
    let rss_before = rss_kib(pid);
    let big = get(port, "/api/search?q=*&limit=1000000000000", &[]).unwrap();
    assert_eq!(big.status, 200, "{}", big.body);
    let v = big.json();
    assert_eq!(v["limit"], 10_000);
    assert_eq!(v["hits"].as_array().unwrap().len(), FIXTURE_LINES);
    assert_eq!(v["more"], false);
    assert!(v["server"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(alive(&mut agg));
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 200 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // A limit beyond u64 and a malformed cursor: 400, not a crash.
    let huge = get(port, "/api/search?q=*&limit=99999999999999999999999", &[]).unwrap();
    assert_eq!(huge.status, 400);
    let bad = get(port, "/api/search?q=*&cursor=yesterday", &[]).unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("TIMESTAMP_MS:SEQ"));

    // Paging: newest 100, then the 100 before them, no overlap, in order.
    let p1 = get(port, "/api/search?q=*&limit=100", &[]).unwrap().json();
    let next = p1["next"].as_str().unwrap().to_string();
    let p2 = get(
        port,
        &format!("/api/search?q=*&limit=100&cursor={next}"),
        &[],
    )
    .unwrap()
    .json();
    let key = |h: &serde_json::Value| {
        (
            h["timestamp_ms"].as_i64().unwrap(),
            h["seq"].as_u64().unwrap(),
        )
    };
    let (k1, k2): (Vec<_>, Vec<_>) = (
        p1["hits"].as_array().unwrap().iter().map(key).collect(),
        p2["hits"].as_array().unwrap().iter().map(key).collect(),
    );
    assert_eq!((k1.len(), k2.len()), (100, 100));
    assert!(
        k2.last().unwrap() < k1.first().unwrap(),
        "{:?} vs {:?}",
        k2.last(),
        k1.first()
    );

    // The same caps in `quill search --data` (reading the daemon's index read-only).
    let data = dir.path().join("data");
    let out = Command::new(quill_bin())
        .args(["search", "--data"])
        .arg(&data)
        .args(["-q", &nested(2000)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("2000 deep"), "{err}");
    let out = Command::new(quill_bin())
        .args([
            "search",
            "--json",
            "--limit",
            "1000000000000",
            "-q",
            "*",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        FIXTURE_LINES
    );

    assert!(agg.daemon.stop().success());
}

#[test]
fn a_search_past_its_time_budget_is_cut_and_frees_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let agg = start_aggregator(
        dir.path(),
        "search_time_budget = \"1ms\"\nsearch_max_concurrent = 1\n",
    );
    let pid = agg.daemon.child.id();
    assert!(
        wait_until(Duration::from_secs(90), || agg
            .daemon
            .stderr()
            .contains(&format!("sink index: {FIXTURE_LINES} records"))),
        "{}",
        agg.daemon.stderr()
    );
    // Loading 3,030 documents takes far longer than 1 ms: the search stops at the budget.
    let a = get(agg.port, "/api/search?q=*&limit=10000", &[]).unwrap();
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("time budget of 1ms"), "{}", a.body);
    assert!(a.took < Duration::from_secs(2), "took {:?}", a.took);
    // Nothing keeps running: the daemon is idle right after.
    let cpu = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(1));
    assert!(cpu_seconds(pid) - cpu < 0.5, "daemon still busy");
    // And it still answers.
    assert_eq!(get(agg.port, "/", &[]).unwrap().status, 200);
    assert!(agg.daemon.stop().success());
}

#[test]
fn a_token_guards_the_api_and_beyond_loopback_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    // Non-loopback without a token: refused, naming file, line and key.
    let config = dir.path().join("open.toml");
    write_file(
        &config,
        "data_dir = \"data\"\n\n[sinks.index]\ntype = \"index\"\nlisten = \"0.0.0.0:7379\"\n",
    );
    for cmd in ["validate", "run"] {
        let out = Command::new(quill_bin())
            .args([cmd, "-c"])
            .arg(&config)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd}: {err}");
        assert!(
            err.contains("open.toml:5: sinks.index.listen:") && err.contains("search_token"),
            "{cmd}: {err}"
        );
    }

    let token_file = dir.path().join("token");
    write_file(&token_file, "s3cret-token\n");
    let agg = start_aggregator(
        dir.path(),
        &format!("search_token_file = \"{}\"\n", token_file.display()),
    );
    let auth = ["Authorization: Bearer s3cret-token"];
    wait_indexed(&agg, &auth);
    let none = get(agg.port, "/api/search?txn=queue-0267", &[]).unwrap();
    assert_eq!(none.status, 401);
    assert!(
        none.head
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer")
    );
    let wrong = get(
        agg.port,
        "/api/search?txn=queue-0267",
        &["Authorization: Bearer s3cret"],
    )
    .unwrap();
    assert_eq!(wrong.status, 401);
    let neighbours = get(agg.port, "/api/neighbours?txn=queue-0267", &[]).unwrap();
    assert_eq!(neighbours.status, 401);
    let ok = get(agg.port, "/api/search?txn=queue-0267", &auth).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["hits"].as_array().unwrap().len(), 2);
    // `quill search --server` with and without the token file.
    let server = format!("http://127.0.0.1:{}", agg.port);
    let cli = |with_token: bool| {
        let mut cmd = Command::new(quill_bin());
        cmd.args(["search", "queue-0267", "--json", "--server", &server]);
        if with_token {
            cmd.arg("--token-file").arg(&token_file);
        }
        cmd.env_remove("QUILL_SEARCH_TOKEN_FILE").output().unwrap()
    };
    let out = cli(true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = cli(false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    // The page itself holds no data: served without the token.
    assert_eq!(get(agg.port, "/trace/queue-0267", &[]).unwrap().status, 200);
    assert!(agg.daemon.stop().success());
}

#[test]
fn the_api_speaks_tls_when_configured() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let agg = start_aggregator(
        dir.path(),
        &format!(
            "search_tls_cert = \"{0}/server.pem\"\nsearch_tls_key = \"{0}/server.key\"\n",
            dir.path().display()
        ),
    );
    let client = quill::transport::tls::client_config(&dir.path().join("ca.pem"), None).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let fetch = || -> Option<String> {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", agg.port)).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let conn = rustls::ClientConnection::new(client.clone(), name.clone()).ok()?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(b"GET /api/search?txn=queue-0267 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out);
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    assert!(
        wait_until(Duration::from_secs(90), || fetch()
            .is_some_and(|r| r.starts_with("HTTP/1.1 200")
                && r.matches("\"_txn_id\\\":\\\"queue-0267").count() == 2)),
        "{:?}\n{}",
        fetch(),
        agg.daemon.stderr()
    );
    // Plain HTTP on the TLS port gets nothing useful.
    assert!(get(agg.port, "/api/search?txn=queue-0267", &[]).is_none_or(|a| a.status != 200));
    assert!(agg.daemon.stop().success());
}
