//! Agent identity on the forward path, with real `quill run` processes on loopback: an agent id is
//! bound to its token (`identities`) or to its client certificate (`agent_id_from_certificate`);
//! an agent claiming an id its credential does not allow is refused, told why and counted, and the
//! agent that owns the id loses and duplicates nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// An agent named `name` (its data, logs and hostname) that presents `agent_id` and `token`.
fn agent(root: &Path, name: &str, agent_id: &str, token: &str, port: u16) -> PathBuf {
    let extra = format!("agent_id = \"{agent_id}\"");
    agent_config_with_token(root, name, &[port], token, &extra)
}

#[test]
fn an_agent_cannot_use_an_id_its_token_does_not_allow() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (port, metrics) = (free_port(), free_port());
    write_file(&root.join("edge-2.token"), "token-of-edge-2\n");
    let agg_cfg = metered_aggregator_config(
        root,
        port,
        metrics,
        "identities = [\n  { agent_id = \"edge-1\", token = \"token-of-edge-1\" },\n  { agent_id = \"edge-2\", token_file = \"edge-2.token\" },\n]",
    );
    let agg = Daemon::start(root, &agg_cfg);
    wait_port(port);
    // The owner of `edge-1`, and a second agent configured with the same id but edge-2's token.
    let owner = Daemon::start(root, &agent(root, "a", "edge-1", "token-of-edge-1", port));
    append_lines(&root.join("a-logs/app.log"), "owner", 0..1000);
    let out = root.join("agg-out");
    let owner_count = || {
        numbered(&read_sink(&out))
            .get(&("a".to_string(), "owner".to_string()))
            .map_or(0, Vec::len)
    };
    assert!(
        wait_until(Duration::from_secs(15), || owner_count() >= 1000),
        "{}",
        agg.stderr()
    );
    let impostor = Daemon::start(root, &agent(root, "b", "edge-1", "token-of-edge-2", port));
    // The owner keeps writing while the impostor tries (and retries) to connect.
    for chunk in 1..4u64 {
        append_lines(
            &root.join("b-logs/app.log"),
            "impostor",
            (chunk - 1) * 300..chunk * 300,
        );
        append_lines(
            &root.join("a-logs/app.log"),
            "owner",
            chunk * 1000..(chunk + 1) * 1000,
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        wait_until(Duration::from_secs(15), || owner_count() >= 4000),
        "{}",
        agg.stderr()
    );
    assert_refusal_counted(metrics);
    // edge-2's token with its own id is fine: the binding, not the token, was the problem.
    let honest = Daemon::start(root, &agent(root, "c", "edge-2", "token-of-edge-2", port));
    append_lines(&root.join("c-logs/app.log"), "honest", 0..200);
    assert!(
        wait_until(Duration::from_secs(15), || numbered(&read_sink(&out))
            .get(&("c".to_string(), "honest".to_string()))
            .is_some_and(|v| v.len() >= 200)),
        "{}",
        agg.stderr()
    );
    let impostor_log = impostor.stderr();
    let agg_log = agg.stderr();
    for d in [owner, impostor, honest] {
        assert!(d.stop().success());
    }
    assert!(agg.stop().success());
    let by = numbered(&read_sink(&out));
    assert_once_each(
        by[&("a".into(), "owner".into())].iter().copied(),
        0..4000,
        "owner of edge-1",
    );
    assert_once_each(
        by[&("c".into(), "honest".into())].iter().copied(),
        0..200,
        "edge-2",
    );
    assert!(
        !by.contains_key(&("b".into(), "impostor".into())),
        "the impostor's lines arrived"
    );
    let why = "agent id \\\"edge-1\\\" does not match its credential, which may use \\\"edge-2\\\"";
    let plain = why.replace('\\', "");
    assert!(
        impostor_log.contains(&plain) || impostor_log.contains(why),
        "{impostor_log}"
    );
    assert!(agg_log.contains(&plain), "{agg_log}");
    // The owner's stream was never reset by the impostor.
    assert!(
        !agg_log.contains("started a new journal stream"),
        "{agg_log}"
    );
}

#[test]
fn with_mutual_tls_the_agent_id_is_a_name_of_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_pki(root);
    let (port, metrics) = (free_port(), free_port());
    let agg_cfg = metered_aggregator_config(
        root,
        port,
        metrics,
        &format!(
            "token = \"{TOKEN}\"\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\ntls_client_ca = \"ca.pem\"\nagent_id_from_certificate = true"
        ),
    );
    let tls = "tls_ca = \"ca.pem\"\ntls_cert = \"client.pem\"\ntls_key = \"client.key\"\ntls_server_name = \"localhost\"";
    // The client certificate's name is `edge-tls` (its DNS subject alternative name).
    let good = agent_config(root, "edge-tls", &[port], tls);
    let bad = agent_config(
        root,
        "other",
        &[port],
        &format!("{tls}\nagent_id = \"edge-9\""),
    );
    let agg = Daemon::start(root, &agg_cfg);
    wait_port(port);
    let good = Daemon::start(root, &good);
    let bad = Daemon::start(root, &bad);
    append_lines(&root.join("edge-tls-logs/app.log"), "t", 0..500);
    append_lines(&root.join("other-logs/app.log"), "o", 0..500);
    let out = root.join("agg-out");
    assert!(
        wait_until(Duration::from_secs(15), || read_sink(&out).len() >= 500),
        "{}",
        agg.stderr()
    );
    assert_refusal_counted(metrics);
    let agg_log = agg.stderr();
    assert!(good.stop().success());
    assert!(bad.stop().success());
    assert!(agg.stop().success());
    let by = numbered(&read_sink(&out));
    assert_once_each(
        by[&("edge-tls".into(), "t".into())].iter().copied(),
        0..500,
        "edge-tls",
    );
    assert!(!by.contains_key(&("other".into(), "o".into())));
    assert!(
        agg_log.contains("agent id \"edge-9\" does not match its credential, which may use a name of its client certificate")
            || agg_log.contains("agent id \\\"edge-9\\\" does not match its credential"),
        "{agg_log}"
    );
}

/// Waits (at most 10 s) until `quill_source_identity_refused_total` (labelled `agents`) on the
/// metrics port counts at least one refusal.
fn assert_refusal_counted(metrics: u16) {
    assert!(
        wait_until(Duration::from_secs(10), || scrape_metric(
            metrics,
            "quill_source_identity_refused_total",
            "agents"
        )
        .is_some_and(|n| n >= 1.0)),
        "the refusal is not counted"
    );
}
