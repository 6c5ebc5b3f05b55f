//! Forwarding end to end with real `quill run` processes on loopback: agent → aggregator (fields
//! intact, an aggregator outage), agent → aggregator → aggregator (two tiers), failover, mutual
//! TLS (certificates made with the `openssl` command), and `quill send`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

#[test]
fn agent_to_aggregator_keeps_fields_and_catches_up_after_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let agg_cfg = aggregator_config(root, "agg", port, "", "");
    let agent_cfg = agent_config(root, "edge-1", &[port], "");
    let log = root.join("edge-1-logs/app.log");
    let out = root.join("agg-out");

    let agg = Daemon::start(root, &agg_cfg);
    wait_port(port);
    let agent = Daemon::start(root, &agent_cfg);
    append_lines(&log, "edge", 0..500);
    assert!(
        wait_until(Duration::from_secs(15), || read_sink(&out).len() >= 500),
        "only {} lines arrived\nagent: {}\naggregator: {}",
        read_sink(&out).len(),
        agent.stderr(),
        agg.stderr()
    );
    let entries = read_sink(&out);
    let first = &entries[0];
    assert_eq!(first["host"], "edge-1", "the agent's host survives");
    assert_eq!(first["_category"], "app");
    assert_eq!(first["_source"], "app");
    assert_eq!(first["short_message"], "edge 0");
    assert!(first["timestamp"].as_f64().unwrap() > 1.6e9);

    // The aggregator goes away while the agent keeps journaling; then it comes back.
    assert!(agg.stop().success());
    append_lines(&log, "edge", 500..1500);
    std::thread::sleep(Duration::from_millis(1500));
    append_lines(&log, "edge", 1500..2000);
    let agg = Daemon::start(root, &agg_cfg);
    assert!(
        wait_until(Duration::from_secs(20), || read_sink(&out).len() >= 2000),
        "only {} lines after the outage\nagent: {}",
        read_sink(&out).len(),
        agent.stderr()
    );
    let agent_log = agent.stderr();
    assert!(agent.stop().success());
    assert!(agg.stop().success());
    let by_source = numbered(&read_sink(&out));
    let got = &by_source[&("edge-1".to_string(), "edge".to_string())];
    assert_exactly_once_in_order("edge-1", got, 2000);
    assert!(
        agent_log.contains(&format!("Forwarding to 127.0.0.1:{port} failed"))
            && agent_log.contains("failed attempts; resuming after sequence"),
        "{agent_log}"
    );
}

#[test]
fn two_tiers_agent_to_aggregator_to_aggregator() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (p1, p2) = (free_port(), free_port());
    let top = aggregator_config(root, "top", p2, "", "");
    let mid = aggregator_config(
        root,
        "mid",
        p1,
        "",
        &format!(
            "\n[sinks.up]\ntype = \"forward\"\nto = [\"127.0.0.1:{p2}\"]\ntoken = \"{TOKEN}\"\nbackoff_min = \"20ms\"\nbackoff_max = \"300ms\"\n"
        ),
    );
    let a1 = agent_config(root, "edge-a", &[p1], "");
    let a2 = agent_config(root, "edge-b", &[p1], "batch_size = \"4KiB\"\nwindow = 2\n");
    let top_d = Daemon::start(root, &top);
    let mid_d = Daemon::start(root, &mid);
    wait_port(p1);
    wait_port(p2);
    let d1 = Daemon::start(root, &a1);
    let d2 = Daemon::start(root, &a2);
    for chunk in 0..4u64 {
        append_lines(
            &root.join("edge-a-logs/app.log"),
            "a",
            chunk * 1000..(chunk + 1) * 1000,
        );
        append_lines(
            &root.join("edge-b-logs/app.log"),
            "b",
            chunk * 500..(chunk + 1) * 500,
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = root.join("top-out");
    assert!(
        wait_until(Duration::from_secs(20), || read_sink(&out).len() >= 6000),
        "top holds {} lines\nmid: {}\ntop: {}",
        read_sink(&out).len(),
        mid_d.stderr(),
        top_d.stderr()
    );
    for d in [d1, d2, mid_d, top_d] {
        assert!(d.stop().success());
    }
    let top_entries = read_sink(&out);
    let by = numbered(&top_entries);
    assert_exactly_once_in_order("a via mid", &by[&("edge-a".into(), "a".into())], 4000);
    assert_exactly_once_in_order("b via mid", &by[&("edge-b".into(), "b".into())], 2000);
    assert!(top_entries.iter().all(|e| e["_category"] == "app"));
    // The middle tier wrote its own copy as well.
    assert_eq!(read_sink(&root.join("mid-out")).len(), 6000);
}

#[test]
fn agent_fails_over_to_the_next_aggregator() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (dead, live) = (free_port(), free_port());
    let agg = Daemon::start(root, &aggregator_config(root, "agg", live, "", ""));
    wait_port(live);
    let agent = Daemon::start(root, &agent_config(root, "edge", &[dead, live], ""));
    append_lines(&root.join("edge-logs/app.log"), "x", 0..300);
    let out = root.join("agg-out");
    assert!(
        wait_until(Duration::from_secs(15), || read_sink(&out).len() >= 300),
        "{}",
        agent.stderr()
    );
    let log = agent.stderr();
    assert!(agent.stop().success());
    assert!(agg.stop().success());
    assert_exactly_once_in_order(
        "failover",
        &numbered(&read_sink(&out))[&("edge".into(), "x".into())],
        300,
    );
    assert!(
        log.contains(&format!("Forwarding to 127.0.0.1:{dead} failed")),
        "{log}"
    );
}

#[test]
fn mutual_tls_delivers_and_refuses_a_client_without_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_pki(root);
    let port = free_port();
    let agg_cfg = aggregator_config(
        root,
        "agg",
        port,
        "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\ntls_client_ca = \"ca.pem\"",
        "",
    );
    let agent_cfg = agent_config(
        root,
        "edge-tls",
        &[port],
        "tls_ca = \"ca.pem\"\ntls_cert = \"client.pem\"\ntls_key = \"client.key\"\ntls_server_name = \"localhost\"",
    );
    let agg = Daemon::start(root, &agg_cfg);
    wait_port(port);
    let agent = Daemon::start(root, &agent_cfg);
    append_lines(&root.join("edge-tls-logs/app.log"), "t", 0..400);
    let out = root.join("agg-out");
    assert!(
        wait_until(Duration::from_secs(15), || read_sink(&out).len() >= 400),
        "agent: {}\naggregator: {}",
        agent.stderr(),
        agg.stderr()
    );
    // Without a client certificate: refused, and told so.
    let send = Command::new(quill_bin())
        .args([
            "send",
            "--to",
            &format!("127.0.0.1:{port}"),
            "--token",
            TOKEN,
        ])
        .args([
            "--tls-ca",
            "ca.pem",
            "--tls-server-name",
            "localhost",
            "--retries",
            "1",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!send.status.success());
    let err = String::from_utf8_lossy(&send.stderr);
    assert!(err.contains("gave up"), "{err}");
    assert!(agent.stop().success());
    let agg_log = agg.stderr();
    assert!(agg.stop().success());
    assert_exactly_once_in_order(
        "tls",
        &numbered(&read_sink(&out))[&("edge-tls".into(), "t".into())],
        400,
    );
    assert!(agg_log.contains("TLS handshake failed"), "{agg_log}");
}

#[test]
fn quill_send_ships_files_and_stdin_and_reports_a_wrong_token() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let agg = Daemon::start(root, &aggregator_config(root, "agg", port, "", ""));
    wait_port(port);
    let addr = format!("127.0.0.1:{port}");
    let file = root.join("in.log");
    append_lines(&file, "f", 0..1000);
    let out = output_ok(
        Command::new(quill_bin())
            .args([
                "send",
                "--to",
                &addr,
                "--token",
                TOKEN,
                "--category",
                "batch",
            ])
            .arg(&file),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1000 lines"));

    let mut child = Command::new(quill_bin())
        .args([
            "send",
            "--to",
            &addr,
            "--token",
            TOKEN,
            "--category",
            "piped",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for n in 0..200 {
            writeln!(stdin, "p {n}").unwrap();
        }
    }
    let piped = child.wait_with_output().unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );

    let wrong = Command::new(quill_bin())
        .args(["send", "--to", &addr, "--token", "nope"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("wrong token"), "{err}");

    let sink = root.join("agg-out");
    assert!(wait_until(Duration::from_secs(10), || read_sink(&sink)
        .len()
        >= 1200));
    let agg_log = agg.stderr();
    assert!(agg.stop().success());
    let entries = read_sink(&sink);
    let by = numbered(&entries);
    let host = entries[0]["host"].as_str().unwrap().to_string();
    assert_exactly_once_in_order("file", &by[&(host.clone(), "f".into())], 1000);
    assert_exactly_once_in_order("stdin", &by[&(host, "p".into())], 200);
    assert!(
        entries
            .iter()
            .all(|e| e["_category"] == "batch" || e["_category"] == "piped")
    );
    assert!(agg_log.contains("wrong token"), "{agg_log}");
}

#[test]
fn load_balance_spreads_agents_over_aggregators() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (pa, pb) = (free_port(), free_port());
    let a = Daemon::start(root, &aggregator_config(root, "agg-a", pa, "", ""));
    let b = Daemon::start(root, &aggregator_config(root, "agg-b", pb, "", ""));
    wait_port(pa);
    wait_port(pb);
    // Two agent ids that start at different aggregators.
    let ids: Vec<String> = (0..)
        .map(|i| format!("lb-{i}"))
        .scan(None, |first: &mut Option<usize>, id| {
            let idx = quill::transport::shipper::first_address(&id, 2);
            Some(match first {
                None => {
                    *first = Some(idx);
                    Some(id)
                }
                Some(f) if *f != idx => Some(id),
                _ => None,
            })
        })
        .flatten()
        .take(2)
        .collect();
    let agents: Vec<Daemon> = ids
        .iter()
        .map(|id| {
            let cfg = agent_config(root, id, &[pa, pb], "load_balance = true");
            append_lines(&root.join(format!("{id}-logs/app.log")), "l", 0..200);
            Daemon::start(root, &cfg)
        })
        .collect();
    let (out_a, out_b) = (root.join("agg-a-out"), root.join("agg-b-out"));
    assert!(wait_until(Duration::from_secs(15), || {
        read_sink(&out_a).len() + read_sink(&out_b).len() >= 400
    }));
    for d in agents {
        assert!(d.stop().success());
    }
    assert!(a.stop().success());
    assert!(b.stop().success());
    for (out, port_index) in [(&out_a, 0), (&out_b, 1)] {
        let by = numbered(&read_sink(out));
        assert_eq!(
            by.len(),
            1,
            "each aggregator serves one agent: {:?}",
            by.keys()
        );
        let ((host, _), got) = by.into_iter().next().unwrap();
        assert_eq!(
            quill::transport::shipper::first_address(&host, 2),
            port_index
        );
        assert_exactly_once_in_order(&host, &got, 200);
    }
}
