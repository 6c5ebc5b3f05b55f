//! The byte join inside the daemon (`[bytes]`): the all-in-one pipeline and an aggregator fed by
//! an agent correct `_bytes_sent` exactly like the offline `quill parse --haproxy-config` join,
//! write every line exactly once and in journal order, and survive a SIGKILL while entries wait
//! for their partners. Inputs: real HAProxy 2.6 and Apache 2.4 logs (tests/fixtures/parse/).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIX}/{name}")).unwrap()
}

/// (`_bytes_sent`, basis, reason) of every HAProxy entry, by transaction id.
type Corrections = BTreeMap<String, Vec<(Option<i64>, String, String)>>;

fn corrections(entries: &[serde_json::Value]) -> Corrections {
    let mut out = Corrections::new();
    for e in entries {
        let Some(basis) = e["_bytes_sent_basis"].as_str() else {
            continue;
        };
        let tid = e["_txn_id"].as_str().unwrap_or("").to_owned();
        let reason = e["_bytes_sent_reason"].as_str().unwrap_or("").to_owned();
        out.entry(tid)
            .or_default()
            .push((e["_bytes_sent"].as_i64(), basis.to_owned(), reason));
    }
    out
}

fn exact_only(c: &Corrections) -> BTreeMap<String, Vec<i64>> {
    c.iter()
        .filter_map(|(tid, v)| {
            let exact: Vec<i64> = v
                .iter()
                .filter(|(_, b, _)| b == "exact")
                .filter_map(|(s, _, _)| *s)
                .collect();
            (!exact.is_empty()).then(|| (tid.clone(), exact))
        })
        .collect()
}

/// The offline join over the same two logs (`keep_alive`: `--assume-keep-alive-clients`).
fn offline_entries(keep_alive: bool) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(quill_bin());
    if keep_alive {
        cmd.arg("parse").arg("--assume-keep-alive-clients");
    } else {
        cmd.arg("parse");
    }
    let out = cmd
        .args(["--haproxy-config"])
        .arg(format!("{FIX}/haproxy-2.6.cfg"))
        .args(["--apache-format", APACHE_EXP])
        .args(["--txn-id", "X-Test-Id", "--txn-id", "tid", "--host", "t"])
        .arg(format!("{FIX}/haproxy-rfc5424.log"))
        .arg(format!("{FIX}/apache-exp.log"))
        .output()
        .unwrap();
    json_lines(&out.stdout)
}

fn offline(keep_alive: bool) -> Corrections {
    corrections(&offline_entries(keep_alive))
}

fn parse_keys() -> String {
    format!(
        "apache_format = ['{APACHE_EXP}']\ntxn_id_fields = [\"X-Test-Id\", \"tid\"]\nhaproxy_config = \"{FIX}/haproxy-2.6.cfg\"\n"
    )
}

fn bytes_section(keep_alive: bool) -> String {
    format!(
        "[bytes]\nhaproxy_config = \"{FIX}/haproxy-2.6.cfg\"\nwindow = \"3s\"\nassume_keep_alive_clients = {keep_alive}\n"
    )
}

fn total_lines() -> usize {
    fixture("haproxy-rfc5424.log").lines().count() + fixture("apache-exp.log").lines().count()
}

/// Every input line exactly once: the multiset of (message, timestamp) equals the offline
/// join's, which reads each line once.
fn assert_exactly_once(entries: &[serde_json::Value]) {
    let key = |e: &serde_json::Value| {
        format!(
            "{} @ {}",
            e["short_message"].as_str().unwrap_or(""),
            e["timestamp"]
        )
    };
    let mut got: Vec<String> = entries.iter().map(key).collect();
    let mut want: Vec<String> = offline_entries(false).iter().map(key).collect();
    assert_eq!(got.len(), total_lines(), "one entry per input line");
    got.sort();
    want.sort();
    assert!(
        got == want,
        "the same entries as the offline join, each once"
    );
}

/// The corrections that do not depend on the order entries were seen in (those with a learned
/// header count do: the counts are learned as pairs complete).
fn order_independent(c: &Corrections) -> Corrections {
    c.iter()
        .map(|(tid, v)| {
            let mut v: Vec<_> = v
                .iter()
                .filter(|(_, _, reason)| !reason.contains("learned"))
                .cloned()
                .collect();
            v.sort();
            (tid.clone(), v)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn check_against_offline(entries: &[serde_json::Value], keep_alive: bool) {
    let daemon = corrections(entries);
    let offline = offline(keep_alive);
    // Every HAProxy entry has a correction.
    let hap_lines = fixture("haproxy-rfc5424.log").lines().count();
    assert_eq!(daemon.values().map(Vec::len).sum::<usize>(), hap_lines);
    let (d, o) = (order_independent(&daemon), order_independent(&offline));
    assert!(o.len() > 500, "most entries are joined: {}", o.len());
    let differ: Vec<_> = o
        .iter()
        .filter(|(tid, v)| d.get(*tid) != Some(v))
        .take(5)
        .collect();
    assert!(
        differ.is_empty() && d.len() == o.len(),
        "the daemon corrects like the offline join ({} vs {} ids); first differences (offline): {differ:?}",
        d.len(),
        o.len()
    );
    // Labelled exact: the same entries, the same values.
    assert_eq!(exact_only(&daemon), exact_only(&offline));
    if keep_alive {
        assert!(exact_only(&offline).len() > 500);
    }
}

/// An all-in-one config tailing the two logs under `input`, with a file sink and an index sink.
fn all_in_one_config(
    dir: &Path,
    input: &Path,
    keep_alive: bool,
    metrics_port: u16,
) -> std::path::PathBuf {
    let config = dir.join("quill.toml");
    write_file(
        &config,
        &format!(
            "data_dir = \"{data}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n{bytes}\n[sources.lb]\ntype = \"file\"\ninclude = [\"{input}/haproxy.log\"]\n{keys}\n[sources.web]\ntype = \"file\"\ninclude = [\"{input}/apache.log\"]\nformat = \"apache\"\n{keys}\n[sinks.out]\ntype = \"file\"\npath = \"{out}\"\n\n[sinks.index]\ntype = \"index\"\nlisten = \"127.0.0.1:{port}\"\n",
            data = dir.join("data").display(),
            bytes = bytes_section(keep_alive),
            input = input.display(),
            keys = parse_keys(),
            out = dir.join("out").display(),
            port = free_port(),
        ),
    );
    config
}

fn write_inputs(input: &Path) {
    std::fs::create_dir_all(input).unwrap();
    write_file(&input.join("haproxy.log"), &fixture("haproxy-rfc5424.log"));
    write_file(&input.join("apache.log"), &fixture("apache-exp.log"));
}

fn wait_for_all(out: &Path, daemon: &Daemon) {
    let want = total_lines();
    assert!(
        wait_until(Duration::from_secs(60), || sink_line_count(out) >= want),
        "all {want} lines written (got {})\n{}",
        sink_line_count(out),
        daemon.stderr()
    );
    // Late duplicates would show now.
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn all_in_one_joins_like_the_offline_join() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_inputs(&input);
    let metrics_port = free_port();
    let config = all_in_one_config(dir.path(), &input, false, metrics_port);
    let daemon = Daemon::start(dir.path(), &config);
    let out = dir.path().join("out");
    wait_for_all(&out, &daemon);
    // The metrics count what was written, per basis.
    let written = read_sink(&out);
    let exact_written = written
        .iter()
        .filter(|e| e["_bytes_sent_basis"] == "exact")
        .count() as f64;
    let metric = |basis: &str| {
        scrape_metric(
            metrics_port,
            "quill_sink_bytes_sent_basis_total",
            &format!("sink=\"out\",basis=\"{basis}\""),
        )
    };
    assert!(
        wait_until(Duration::from_secs(5), || metric("exact")
            == Some(exact_written)),
        "exact metric {:?}, written {exact_written}",
        metric("exact")
    );
    assert_eq!(
        scrape_metric(metrics_port, "quill_sink_join_held", "sink=\"out\""),
        Some(0.0)
    );
    assert!(daemon.stop().success());
    let entries = read_sink(&out);
    assert_exactly_once(&entries);
    check_against_offline(&entries, false);
    // The index stores the corrected document.
    let (tid, exact) = exact_only(&corrections(&entries))
        .into_iter()
        .find(|(tid, _)| tid.len() > 1)
        .unwrap();
    let search = Command::new(quill_bin())
        .args(["search", "--json", "--data"])
        .arg(dir.path().join("data"))
        .arg(&tid)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&search.stdout);
    assert!(
        text.lines().any(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["_bytes_sent_basis"] == "exact" && v["_bytes_sent"] == exact[0]
        }),
        "search {tid}: {text}"
    );
}

/// SIGKILL while entries wait for partners: every line still exactly once, and the same
/// corrections as without a crash. Apache's log is journaled first, so backend lines are written
/// while HAProxy entries paired with them still wait behind an entry without a partner; the
/// sinks acknowledge nothing the join may need again, so the replay pairs them again.
#[test]
fn all_in_one_join_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    write_file(&input.join("apache.log"), &fixture("apache-exp.log"));
    write_file(&input.join("haproxy.log"), "");
    let config = all_in_one_config(dir.path(), &input, true, free_port());
    let out = dir.path().join("out");
    let daemon = Daemon::start(dir.path(), &config);
    std::thread::sleep(Duration::from_millis(1000));
    write_file(&input.join("haproxy.log"), &fixture("haproxy-rfc5424.log"));
    assert!(
        wait_until(Duration::from_secs(30), || sink_line_count(&out) > 0),
        "progress before the kill\n{}",
        daemon.stderr()
    );
    daemon.kill();
    let daemon = Daemon::start(dir.path(), &config);
    wait_for_all(&out, &daemon);
    assert!(daemon.stop().success());
    let entries = read_sink(&out);
    assert_exactly_once(&entries);
    check_against_offline(&entries, true);
}

#[test]
fn aggregator_joins_forwarded_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_inputs(&input);
    let port = free_port();
    let agg_dir = dir.path().join("agg");
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agg_dir).unwrap();
    std::fs::create_dir_all(&agent_dir).unwrap();
    // The aggregator knows nothing of the agent's sources: `[parse]` says how to read them.
    let agg_config = agg_dir.join("quill.toml");
    write_file(
        &agg_config,
        &format!(
            "data_dir = \"{data}\"\n[parse]\n{keys}\n{bytes}\n[sources.agents]\ntype = \"forward\"\nlisten = \"127.0.0.1:{port}\"\ntoken = \"t0k3n\"\n\n[sinks.out]\ntype = \"file\"\npath = \"{out}\"\n",
            data = agg_dir.join("data").display(),
            keys = parse_keys(),
            bytes = bytes_section(true),
            out = agg_dir.join("out").display(),
        ),
    );
    let agent_config = agent_dir.join("quill.toml");
    write_file(
        &agent_config,
        &format!(
            "data_dir = \"{data}\"\n[sources.lb]\ntype = \"file\"\ninclude = [\"{input}/haproxy.log\"]\n\n[sources.web]\ntype = \"file\"\ninclude = [\"{input}/apache.log\"]\nformat = \"apache\"\n\n[sinks.up]\ntype = \"forward\"\nto = [\"127.0.0.1:{port}\"]\ntoken = \"t0k3n\"\n",
            data = agent_dir.join("data").display(),
            input = input.display(),
        ),
    );
    let aggregator = Daemon::start(&agg_dir, &agg_config);
    let agent = Daemon::start(&agent_dir, &agent_config);
    let out = agg_dir.join("out");
    let want = total_lines();
    assert!(
        wait_until(Duration::from_secs(60), || sink_line_count(&out) >= want),
        "all {want} lines forwarded and written (got {})\nagent:\n{}\naggregator:\n{}",
        sink_line_count(&out),
        agent.stderr(),
        aggregator.stderr()
    );
    assert!(agent.stop().success());
    assert!(aggregator.stop().success());
    let entries = read_sink(&out);
    assert_exactly_once(&entries);
    check_against_offline(&entries, true);
}
