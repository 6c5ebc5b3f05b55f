//! The logging library's agent path against the real daemon: `quill::logging` with an
//! `AgentSink` (RFC 5424, GELF JSON as MSG, octet counting over TCP) → a running `quill run` with
//! the syslog source it talks to → the file sink. Each of N entries, with fields and a
//! transaction id, arrives exactly once with its fields.

use std::time::Duration;

use quill::logging::sinks::{AgentAddr, AgentSink, Framing};
use quill::logging::{Config, Level, Logger, Route, TxnId};

use crate::support::*;

#[test]
fn library_entries_reach_the_daemon_exactly_once_with_their_fields() {
    const N: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let cfg = root.join("quill.toml");
    write_file(
        &cfg,
        &format!(
            "data_dir = \"./data\"\n[sources.agent]\ntype = \"syslog\"\ntcp = \"127.0.0.1:{port}\"\n\n\
             [sinks.out]\ntype = \"file\"\npath = \"./out\"\n"
        ),
    );
    let d = Daemon::start(root, &cfg);
    wait_port(port);
    let dispatcher = Config::new()
        .host("app-host-1")
        .sink(
            "agent",
            AgentSink::new(AgentAddr::Tcp(format!("127.0.0.1:{port}")))
                .framing(Framing::OctetCounting)
                .app_name("billing"),
        )
        .route(Route::new("").at_least(Level::Debug).to("agent"))
        .build()
        .unwrap();
    let log = Logger::with_dispatcher("billing.api", &dispatcher);
    let txns: Vec<TxnId> = (0..N).map(|_| TxnId::new()).collect();
    for (i, txn) in txns.iter().enumerate() {
        let level = if i.is_multiple_of(7) {
            Level::Warning
        } else {
            Level::Info
        };
        quill::log!(
            log.with("txn_id", txn.as_str()),
            level,
            "charged",
            seq = i,
            amount = i as f64 * 1.5,
            note = "multi\nline \"quoted\" ünïcode",
            user = format!("u{}", i % 13)
        );
    }
    dispatcher.flush().unwrap();
    let out = root.join("out");
    let arrived = wait_until(Duration::from_secs(30), || read_sink(&out).len() >= N);
    let stderr = d.stderr();
    drop(dispatcher);
    assert!(d.stop().success());
    let entries = read_sink(&out);
    assert!(arrived, "{} of {N} arrived\n{stderr}", entries.len());
    assert_eq!(entries.len(), N, "an entry twice");
    let mut seen = vec![false; N];
    for e in &entries {
        let i = e["_seq"].as_u64().unwrap_or_else(|| panic!("no _seq: {e}")) as usize;
        assert!(!std::mem::replace(&mut seen[i], true), "entry {i} twice");
        assert_eq!(e["short_message"], "charged", "{e}");
        assert_eq!(e["_txn_id"], txns[i].as_str(), "{e}");
        assert_eq!(e["_amount"].as_f64(), Some(i as f64 * 1.5), "{e}");
        assert_eq!(e["_note"], "multi\nline \"quoted\" ünïcode", "{e}");
        assert_eq!(e["_user"], format!("u{}", i % 13), "{e}");
        assert_eq!(e["_facility"], "billing.api", "{e}");
        assert_eq!(e["level"], if i.is_multiple_of(7) { 4 } else { 6 }, "{e}");
    }
    assert!(seen.iter().all(|&s| s));
}
