//! The `nats` sink against a real `nats-server -js` on loopback: a real agent process tails a
//! file a writer appends numbered lines with transaction ids to, and publishes to JetStream; it is
//! SIGKILLed mid-stream and restarted. The stream then holds every line (read back message by
//! message with the same decoder the source uses), a journal sequence always with the same
//! record, every transaction id on one partition, and the stream's partitions cover each batch's
//! whole range (one message per partition, empty ones too).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use quill::transport::nats::{MessageMeta, decode_payload};

const LINES: usize = 3000;
const PARTITIONS: u32 = 4;

fn append(path: &Path, range: std::ops::Range<usize>) {
    append_with(path, range.start as u64..range.end as u64, |i| {
        format!("line {i:06} txn_id=t{} payload", i / 7)
    });
}

/// One message as read back: partition (from the subject), meta, (sequence, raw) records.
type Message = (u32, MessageMeta, Vec<(u64, bytes::Bytes)>);

/// Every message of the stream: (partition from the subject, meta, decoded records).
fn read_stream(port: u16) -> Vec<Message> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let js = jetstream(port).await;
        // Not there until the agent has created it.
        let Ok(mut stream) = js.get_stream("quill").await else {
            return Vec::new();
        };
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await.unwrap();
            let partition: u32 = m.subject.rsplit('.').next().unwrap().parse().unwrap();
            let meta = MessageMeta::from_headers(Some(&m.headers)).unwrap();
            let id = m.headers.get("Nats-Msg-Id").unwrap().as_str().to_string();
            assert_eq!(id, meta.msg_id(partition));
            let records = decode_payload(&meta, &m.payload, 16 << 20).unwrap();
            out.push((
                partition,
                meta,
                records.into_iter().map(|(s, r)| (s, r.raw)).collect(),
            ));
        }
        out
    })
}

#[test]
fn agent_publishes_every_line_through_a_sigkill() {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "nats-server missing");
        eprintln!("skipping: nats-server missing (scripts/test installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let _nats = nats_server(&root.join("js"), port).expect("start nats-server");
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let cfg = root.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"data_dir = "./data"
hostname = "edge-1"

[sources.app]
type = "file"
include = ["logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.js]
type = "nats"
servers = ["nats://127.0.0.1:{port}"]
partitions = {PARTITIONS}
batch_size = "8KiB"
ack_timeout = "2s"
"#
        ),
    )
    .unwrap();
    let log = root.join("logs/app.log");
    append(&log, 0..LINES / 2);
    let agent = Daemon::start(root, &cfg);
    std::thread::sleep(Duration::from_millis(700));
    agent.kill();
    append(&log, LINES / 2..LINES);
    let agent = Daemon::start(root, &cfg);
    let complete = |msgs: &[Message]| {
        let mut seqs = std::collections::HashSet::new();
        for (_, _, r) in msgs {
            seqs.extend(r.iter().map(|(s, _)| *s));
        }
        seqs.len() >= LINES
    };
    assert!(
        wait_until(Duration::from_secs(30), || complete(&read_stream(port))),
        "not every line reached the stream\n{}",
        agent.stderr()
    );
    let log_text = agent.stderr();
    assert!(agent.stop().success(), "{log_text}");

    let msgs = read_stream(port);
    let mut by_seq: BTreeMap<u64, bytes::Bytes> = BTreeMap::new();
    let mut txn_partition: HashMap<String, u32> = HashMap::new();
    // (stream id, first) -> partitions seen with that batch's range.
    let mut batches: HashMap<(String, u64, u64), Vec<u32>> = HashMap::new();
    for (partition, meta, records) in &msgs {
        assert_eq!(meta.agent, "edge-1");
        batches
            .entry((meta.stream_id.clone(), meta.first, meta.last))
            .or_default()
            .push(*partition);
        for (seq, raw) in records {
            if let Some(prev) = by_seq.insert(*seq, raw.clone()) {
                assert_eq!(&prev, raw, "sequence {seq} with two records");
            }
            let text = std::str::from_utf8(raw).unwrap();
            let txn = text
                .split("txn_id=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            let p = *txn_partition.entry(txn.to_string()).or_insert(*partition);
            assert_eq!(p, *partition, "txn {txn} on two partitions");
        }
    }
    let mut numbers: Vec<usize> = by_seq
        .values()
        .map(|raw| std::str::from_utf8(&raw[5..11]).unwrap().parse().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        (0..LINES).collect::<Vec<_>>(),
        "every line exactly once by sequence"
    );
    for (range, mut parts) in batches {
        parts.sort();
        parts.dedup();
        assert_eq!(
            parts,
            (0..PARTITIONS).collect::<Vec<_>>(),
            "batch {range:?} lacks a partition's message"
        );
    }
    assert!(txn_partition.len() > 400);
    let used: std::collections::HashSet<u32> = txn_partition.values().copied().collect();
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "txn ids spread over every partition"
    );
}
