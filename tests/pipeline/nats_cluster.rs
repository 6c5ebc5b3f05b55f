//! Scale-out over NATS JetStream, against a real 3-node `nats-server -js` cluster on loopback
//! (own ports, own store dirs): 2 real agents (file source → `nats` sink, stream replicas 3) and
//! 2 real aggregators (`nats` source of one consumer group → GELF file sink + index sink) while
//! writers append numbered lines with transaction ids. Mid-stream one NATS node is SIGKILLed and
//! one aggregator aborts (as a kill -9) inside its commit window, after claiming or after
//! journaling (`QUILL_NATS_FAULT`, the only way to hit the window every run); both restart. Asserted: the union of the two aggregators' file outputs
//! holds every line exactly once; every transaction id's entries are on one aggregator, except
//! at most one per agent for each partition move (a partition has one owner at a time, and a
//! move falls between two of its messages); both aggregators took a share; and `quill search --server` against each aggregator, merged, returns
//! every entry of sampled transactions (the repeatable `--server` fan-out is another change: the
//! test queries each aggregator and merges).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const PER_AGENT: u64 = 3000;
const STEPS: u64 = 20;
const PER_TXN: u64 = 5;

/// A 3-node JetStream cluster: node i listens on `client[i]` and routes on `route[i]`.
struct Cluster {
    nodes: Vec<Option<Child>>,
    client: Vec<u16>,
    route: Vec<u16>,
    root: std::path::PathBuf,
}

impl Cluster {
    fn start(root: &Path) -> Cluster {
        let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut c = Cluster {
            nodes: Vec::new(),
            client,
            route,
            root: root.to_path_buf(),
        };
        for i in 0..3 {
            let child = c.spawn(i);
            c.nodes.push(Some(child));
        }
        c
    }

    fn spawn(&self, i: usize) -> Child {
        let routes: Vec<String> = self
            .route
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let log = std::fs::File::create(self.root.join(format!("nats-{i}.log"))).unwrap();
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.client[i].to_string()])
            .args(["-n", &format!("n{i}"), "--cluster_name", "quill"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", self.route[i])])
            .args(["--routes", &routes.join(",")])
            .arg("-sd")
            .arg(self.root.join(format!("js-{i}")))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server")
    }

    /// Waits until every node answers JetStream requests (the cluster has a metadata leader).
    fn wait_ready(&self) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ready = |port: u16| {
            rt.block_on(async {
                let Ok(client) = async_nats::connect(format!("nats://127.0.0.1:{port}")).await
                else {
                    return false;
                };
                let js = async_nats::jetstream::new(client);
                // A stream lookup answered (found or not) means a metadata leader is there.
                match tokio::time::timeout(Duration::from_secs(2), js.get_stream("quill")).await {
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => matches!(
                        e.kind(),
                        async_nats::jetstream::context::GetStreamErrorKind::JetStream(_)
                    ),
                    Err(_) => false,
                }
            })
        };
        for port in &self.client {
            assert!(
                wait_until(Duration::from_secs(20), || ready(*port)),
                "NATS node on {port} never became ready\n{}",
                (0..3)
                    .map(
                        |i| std::fs::read_to_string(self.root.join(format!("nats-{i}.log")))
                            .unwrap_or_default()
                    )
                    .collect::<Vec<_>>()
                    .join("\n----\n")
            );
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self, i: usize) {
        self.kill(i);
        self.nodes[i] = Some(self.spawn(i));
    }

    fn servers(&self) -> String {
        let s: Vec<String> = self
            .client
            .iter()
            .map(|p| format!("\"nats://127.0.0.1:{p}\""))
            .collect();
        s.join(", ")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

fn agent_config(root: &Path, name: &str, servers: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(root.join(format!("{name}-logs"))).unwrap();
    let path = root.join(format!("{name}.toml"));
    write_file(
        &path,
        &format!(
            r#"data_dir = "./{name}-data"
hostname = "{name}"

[sources.app]
type = "file"
include = ["{name}-logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.js]
type = "nats"
servers = [{servers}]
replicas = 3
partitions = 4
batch_size = "8KiB"
ack_timeout = "2s"
"#
        ),
    );
    path
}

fn aggregator_config(root: &Path, name: &str, servers: &str, port: u16) -> std::path::PathBuf {
    let path = root.join(format!("{name}.toml"));
    write_file(
        &path,
        &format!(
            r#"data_dir = "./{name}-data"
hostname = "{name}"

[sources.agents]
type = "nats"
servers = [{servers}]
consumer_group = "aggs"
aggregator_id = "{name}"
lease_ttl = "2s"
ack_wait = "2s"
pending_timeout = "60s"

[sinks.out]
type = "file"
path = "./{name}-out"

[sinks.index]
type = "index"
max_age_days = 0
commit_interval = "200ms"
listen = "127.0.0.1:{port}"
"#
        ),
    );
    path
}

fn line(agent: &str, n: u64) -> String {
    format!("{agent} {n:06} txn_id={agent}-t{} payload", n / PER_TXN)
}

fn append(root: &Path, agent: &str, range: std::ops::Range<u64>) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(format!("{agent}-logs/app.log")))
        .unwrap();
    let text: String = range.map(|n| line(agent, n) + "\n").collect();
    f.write_all(text.as_bytes()).unwrap();
}

/// (agent, number, txn) of a line, from its message.
fn parse(msg: &str) -> Option<(String, u64, String)> {
    let mut it = msg.split(' ');
    let agent = it.next()?.to_string();
    let n = it.next()?.parse().ok()?;
    let txn = it.next()?.strip_prefix("txn_id=")?.to_string();
    Some((agent, n, txn))
}

fn search(port: u16, txn: &str) -> Vec<String> {
    let out = quill()
        .args(["search", txn, "--server"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("no entries match"),
        "quill search {txn} on {port}: {stderr}"
    );
    json_lines(&out.stdout)
        .iter()
        .filter_map(|v| v["short_message"].as_str().map(str::to_string))
        .collect()
}

/// Crashed after journaling, before committing the mark: its records are in its journal only; the
/// restarted aggregator commits the claim, the other (which waited on it) drops the redelivery.
#[test]
fn aggregator_crashed_after_journaling_duplicates_nothing() {
    scenario("after-journal:12");
}

/// Crashed after claiming, before journaling: the restarted aggregator withdraws its claim and the
/// redelivered messages are journaled once by the partition's owner.
#[test]
fn aggregator_crashed_after_claiming_loses_nothing() {
    scenario("after-claim:12");
}

/// The run: agg1 aborts itself (as a kill -9, `QUILL_NATS_FAULT`) at `fault` mid-stream while
/// NATS node 1 is SIGKILLed; both come back later.
fn scenario(fault: &str) {
    if !require(
        &[Need::Program("nats-server")],
        "apt-get install nats-server",
    ) {
        return;
    }
    let _alone = alone();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut cluster = Cluster::start(root);
    cluster.wait_ready();
    let servers = cluster.servers();
    let agents = ["e1", "e2"];
    let aggs = ["agg1", "agg2"];
    let ports = [free_port(), free_port()];
    let agent_cfgs: Vec<_> = agents
        .iter()
        .map(|a| agent_config(root, a, &servers))
        .collect();
    let agg_cfgs: Vec<_> = aggs
        .iter()
        .zip(ports)
        .map(|(a, p)| aggregator_config(root, a, &servers, p))
        .collect();
    let agent_procs: Vec<Daemon> = agent_cfgs.iter().map(|c| Daemon::start(root, c)).collect();
    let mut agg_procs: Vec<Option<Daemon>> = vec![
        Some(Daemon::start_with_env(
            root,
            &agg_cfgs[0],
            &[("QUILL_NATS_FAULT", fault)],
        )),
        Some(Daemon::start(root, &agg_cfgs[1])),
    ];

    // Both aggregators own partitions before the writers start, so the kill moves some.
    let owns = |d: &Option<Daemon>| {
        d.as_ref()
            .is_some_and(|d| d.stderr().contains("Took partition"))
    };
    assert!(
        wait_until(Duration::from_secs(30), || agg_procs.iter().all(owns)),
        "the aggregators did not share the partitions\n{}",
        agg_procs
            .iter()
            .flatten()
            .map(|d| d.stderr())
            .collect::<Vec<_>>()
            .join("\n----\n")
    );
    // Partition moves from here on: each can split at most one transaction per agent (the one
    // whose lines straddle the last message the old owner took).
    let takes = |d: &Daemon| d.stderr().matches("Took partition").count();
    let takes_before: usize = agg_procs.iter().flatten().map(takes).sum();
    let mut takes_of_crashed = 0;
    let per_step = PER_AGENT / STEPS;
    for step in 0..STEPS {
        for a in agents {
            append(root, a, step * per_step..(step + 1) * per_step);
        }
        if step == 7 {
            cluster.kill(1);
        }
        if step == 13 {
            // agg1 crashed at its fault point by now (not killed by the test).
            let crashed = wait_until(Duration::from_secs(20), || {
                agg_procs[0]
                    .as_mut()
                    .is_some_and(|d| d.child.try_wait().ok().flatten().is_some())
            });
            let first = agg_procs[0].take().unwrap();
            takes_of_crashed = takes(&first);
            assert!(crashed, "agg1 never reached {fault}\n{}", first.stderr());
            assert!(first.stderr().contains("QUILL_NATS_FAULT: aborting"));
            cluster.restart(1);
            agg_procs[0] = Some(Daemon::start(root, &agg_cfgs[0]));
            // It takes its share back (the other releases it) while the writers go on.
            assert!(
                wait_until(Duration::from_secs(20), || owns(&agg_procs[0])),
                "the restarted aggregator got no partition\n{}",
                agg_procs
                    .iter()
                    .flatten()
                    .map(|d| d.stderr())
                    .collect::<Vec<_>>()
                    .join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    let outputs = || -> Vec<Vec<String>> {
        aggs.iter()
            .map(|a| sink_messages(&root.join(format!("{a}-out"))))
            .collect()
    };
    let total = PER_AGENT as usize * agents.len();
    let logs = |procs: &[Option<Daemon>]| -> String {
        procs
            .iter()
            .flatten()
            .map(|d| d.stderr())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    let done = wait_until(Duration::from_secs(75), || {
        outputs().iter().map(Vec::len).sum::<usize>() >= total
    });
    // Let anything duplicated arrive too before judging.
    std::thread::sleep(Duration::from_millis(1500));
    let outs = outputs();
    assert!(
        done,
        "outputs hold {} of {total} lines\n{}\n==== agents\n{}\n==== nats node 0\n{}",
        outs.iter().map(Vec::len).sum::<usize>(),
        logs(&agg_procs),
        agent_procs
            .iter()
            .map(|d| d.stderr())
            .collect::<Vec<_>>()
            .join("\n----\n"),
        std::fs::read_to_string(root.join("nats-0.log")).unwrap_or_default()
    );

    // Every line exactly once across the two aggregators.
    let mut got = Vec::new();
    let mut txn_owner: HashMap<String, BTreeSet<usize>> = HashMap::new();
    for (i, out) in outs.iter().enumerate() {
        for m in out {
            let (agent, n, txn) = parse(m).unwrap_or_else(|| panic!("unexpected line {m:?}"));
            got.push((agent, n));
            txn_owner.entry(txn).or_default().insert(i);
        }
    }
    let expected: Vec<(String, u64)> = agents
        .iter()
        .flat_map(|a| (0..PER_AGENT).map(move |n| (a.to_string(), n)))
        .collect();
    assert_once_each(got, expected, &logs(&agg_procs));
    // Every transaction on one aggregator, and both aggregators took a share.
    let split: Vec<&String> = txn_owner
        .iter()
        .filter(|(_, o)| o.len() > 1)
        .map(|(t, _)| t)
        .collect();
    // A partition is on one aggregator at a time; while it moves (the crash, the restarted
    // aggregator taking its share back, a lease lost to a stalled NATS node) the transaction
    // whose lines straddle the move can be split, and `quill search` across both (below) still
    // finds it whole. Anything beyond that bound would mean two owners at once.
    let takes_after: usize =
        takes_of_crashed + agg_procs.iter().flatten().map(takes).sum::<usize>();
    let moves = takes_after - takes_before;
    assert!(
        split.len() <= moves * agents.len(),
        "{} txns on both aggregators with {moves} partition moves: {split:?}",
        split.len()
    );
    if !split.is_empty() {
        eprintln!(
            "{} txns split by {moves} partition moves: {split:?}",
            split.len()
        );
    }
    assert!(
        outs.iter().all(|o| !o.is_empty()),
        "an aggregator got nothing: {:?}",
        outs.iter().map(Vec::len).collect::<Vec<_>>()
    );

    // Search across both aggregators: each sampled transaction complete, from one of them.
    for n in (0..PER_AGENT).step_by(397) {
        for a in agents {
            let txn = format!("{a}-t{}", n / PER_TXN);
            let want: BTreeSet<String> = (0..PER_TXN)
                .map(|k| line(a, n / PER_TXN * PER_TXN + k))
                .collect();
            let mut answers = Vec::new();
            let complete = wait_until(Duration::from_secs(10), || {
                answers = ports.iter().map(|p| search(*p, &txn)).collect();
                answers.iter().flatten().cloned().collect::<BTreeSet<_>>() == want
            });
            assert!(complete, "search {txn}: {answers:?}, want {want:?}");
            if !split.contains(&&txn) {
                assert_eq!(
                    answers.iter().filter(|a| !a.is_empty()).count(),
                    1,
                    "{txn} answered by both aggregators: {answers:?}"
                );
            }
            assert_eq!(
                answers.iter().map(Vec::len).sum::<usize>(),
                PER_TXN as usize
            );
        }
    }
    // The restarted agg1 settled the claim it crashed with, from its journal.
    let settled = if fault.starts_with("after-journal") {
        "is journaled: committing it"
    } else {
        "was never journaled: withdrawing it"
    };
    let restarted = agg_procs[0].as_ref().unwrap().stderr();
    assert!(restarted.contains(settled), "{restarted}");
    for d in agg_procs.into_iter().flatten() {
        let log = d.stderr();
        assert!(d.stop().success(), "{log}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "took {:?}",
        started.elapsed()
    );
}
