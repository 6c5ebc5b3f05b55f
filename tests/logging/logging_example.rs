//! The example service (`examples/logging_service.rs`, built by `cargo test`) run as a real
//! process: its stdout is GELF, every request's entries share one transaction id, and in
//! `--serve` mode it answers real HTTP requests and echoes the id in `X-Request-ID`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::{assert_gelf, gelf_lines};
use quill::logging::TxnId;

/// `target/<profile>/examples/logging_service`, next to this test's `deps/` directory.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join("logging_service");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/logging_service.rs");
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    assert!(
        modified(&path) >= modified(&source),
        "{} is missing or older than its source: a plain `cargo test` builds examples, \
         `cargo test --test logging logging_example::` does not (run `cargo build --examples` first)",
        path.display()
    );
    path
}

#[test]
fn generated_requests_log_gelf_with_txn_ids() {
    let output = Command::new(example_binary())
        .args(["--requests", "30", "--debug"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines = gelf_lines(&output.stdout);
    let served: Vec<_> = lines
        .iter()
        .filter(|m| m["short_message"] == "request served")
        .collect();
    assert_eq!(served.len(), 30);
    for m in &served {
        assert!(m["_status"].is_u64() && m["_duration_ms"].is_f64());
        TxnId::parse(m["_txn_id"].as_str().unwrap()).unwrap();
    }
    // Everything logged during a request (module logger, tracing, log crate) has its txn id.
    let done = lines.last().unwrap();
    assert_eq!(done["short_message"], "done");
    assert_eq!(done["_requests"], 30);
    let in_requests = &lines[..lines.len() - 1];
    assert!(in_requests.iter().all(|m| m.contains_key("_txn_id")));
    // The rewriter pulled account_id out of the context and dropped the cookie.
    assert!(
        lines
            .iter()
            .all(|m| !m.keys().any(|k| k.contains("cookie")))
    );
    assert!(
        lines
            .iter()
            .any(|m| m["short_message"] == "no route" && m["_account_id"].is_u64())
    );
    // Retried requests (same X-Request-ID) group under one id: 1 + 6 of the 30.
    let mut per_txn: HashMap<&str, usize> = HashMap::new();
    for m in &served {
        *per_txn.entry(m["_txn_id"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(per_txn.values().max(), Some(&6));
}

#[test]
fn serve_mode_answers_http_and_echoes_the_request_id() {
    let mut child = Command::new(example_binary())
        .args(["--serve", "127.0.0.1:0", "--connections", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = Vec::new();
    stdout.read_until(b'\n', &mut first).unwrap();
    let listening = assert_gelf(first.trim_ascii_end());
    assert_eq!(listening["short_message"], "listening");
    let addr = listening["_addr"].as_str().unwrap().to_owned();

    let ours = TxnId::new();
    let mut echoed = Vec::new();
    for (path, header) in [
        ("/items/3", Some(ours.to_string())),
        ("/items/14", None),
        ("/health", Some("foreign-id-123".to_owned())),
    ] {
        let mut s = TcpStream::connect(&addr).unwrap();
        let header = header
            .map(|h| format!("X-Request-ID: {h}\r\n"))
            .unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\n").unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let id = response
            .lines()
            .find_map(|l| l.strip_prefix("X-Request-ID: "))
            .unwrap()
            .to_owned();
        echoed.push((response.lines().next().unwrap().to_owned(), id));
    }
    assert!(child.wait().unwrap().success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let lines = gelf_lines(&rest);

    assert!(echoed[0].0.starts_with("HTTP/1.1 200"));
    assert_eq!(echoed[0].1, ours.as_str(), "our id is kept");
    assert!(echoed[1].0.starts_with("HTTP/1.1 404"));
    assert_ne!(
        echoed[2].1, "foreign-id-123",
        "a foreign id is replaced by a new one"
    );
    for (_, id) in &echoed {
        let served = lines
            .iter()
            .find(|m| m["short_message"] == "request served" && m["_txn_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no log for {id}"));
        assert!(served["_status"].is_u64());
    }
}
