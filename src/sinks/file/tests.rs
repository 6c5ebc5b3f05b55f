//! Unit tests of the file sink.

use super::*;
use crate::config::{ByteSize, HumanDuration};
use crate::journal::{AppendBatch, Journal, JournalConfig};
use crate::record::{Format, Origin, Record};

/// A journal holding `n` raw records `line 0..n` of category `web`, and a sink over it.
fn sink_over(n: usize, fsync: OutputFsync, dir: &Path) -> (Journal, FileSink) {
    sink_with(n, fsync, dir, Compression::None)
}

fn sink_with(
    n: usize,
    fsync: OutputFsync,
    dir: &Path,
    compress: Compression,
) -> (Journal, FileSink) {
    let journal = Journal::memory(JournalConfig::default());
    let origin = Origin::new("app", "web", Format::Raw, "h1");
    let records = (0..n)
        .map(|i| Record::new(origin.clone(), Bytes::from(format!("line {i}"))))
        .collect();
    let appender = journal.appender();
    let receipt = appender
        .append_blocking(AppendBatch {
            records,
            checkpoints: vec![],
        })
        .unwrap();
    appender.wait_durable_blocking(receipt.last_seq).unwrap();
    let config = FileSinkConfig {
        fsync: Some(fsync),
        compress,
        ..test_config(dir)
    };
    let cursor = journal.cursor("out").unwrap();
    let parsers = Arc::new(ParserRegistry::new(Vec::new()));
    let sink = FileSink::open(config, cursor, Arc::default(), parsers).unwrap();
    (journal, sink)
}

fn test_config(dir: &Path) -> FileSinkConfig {
    FileSinkConfig {
        path: dir.to_path_buf(),
        max_size: ByteSize::mib(100),
        fsync: Some(OutputFsync::Batch),
        fsync_interval: Some(HumanDuration(Duration::from_secs(3600))),
        workers: Some(3),
        max_lag: None,
        route: Default::default(),
        format: Default::default(),
        rotate_period: None,
        compress: Compression::None,
        add_newlines: false,
    }
}

fn read_batch(sink: &mut FileSink) -> Vec<Joined> {
    let batch = sink
        .cursor
        .next_batch_blocking(BATCH, Duration::from_millis(500))
        .unwrap();
    batch.into_iter().map(Joined::plain).collect()
}

#[test]
fn acknowledges_only_what_the_policy_made_durable() {
    for fsync in [
        OutputFsync::Batch,
        OutputFsync::Interval,
        OutputFsync::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_journal, mut sink) = sink_over(3000, fsync, dir.path());
        let batch = read_batch(&mut sink);
        assert_eq!(batch.len(), 3000);
        sink.write_batch(batch).unwrap();
        sink.commit_if_due(false).unwrap();
        // `batch` commits every batch; the others wait for their (one hour) interval.
        let want = if fsync == OutputFsync::Batch { 3000 } else { 0 };
        assert_eq!(sink.cursor.acked(), want, "{fsync:?}");
        assert_eq!(sink.pending.is_empty(), fsync == OutputFsync::Batch);
        sink.commit_if_due(true).unwrap();
        assert_eq!(sink.cursor.acked(), 3000, "{fsync:?}");
        let text = std::fs::read_to_string(file_path(dir.path(), "web", 0, "gelf")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3000);
        for (i, line) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["short_message"], format!("line {i}"), "{fsync:?}");
        }
        let state = decode_state(sink.cursor.sink_state().unwrap());
        assert_eq!(
            state,
            FileStates::from([("web".to_string(), (0, text.len() as u64))])
        );
    }
}

/// Compressed output: every acknowledged length is a zstd frame boundary, so a restart that
/// cuts the file back to it leaves whole frames, and what follows is written exactly once.
#[test]
fn zstd_output_restarts_at_a_frame_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, mut sink) = sink_with(3000, OutputFsync::Batch, dir.path(), Compression::Zstd);
    let mut batch = read_batch(&mut sink);
    let rest = batch.split_off(1000);
    sink.write_batch(batch).unwrap();
    sink.commit_if_due(false).unwrap();
    assert_eq!(sink.cursor.acked(), 1000);
    let path = file_path(dir.path(), "web", 0, "gelf.zst");
    let acked_len = std::fs::metadata(&path).unwrap().len();
    // Written but never acknowledged (a crash before the commit): cut back on restart.
    assert_eq!(rest.len(), 2000);
    sink.write_batch(rest).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > acked_len);
    drop(sink);
    let config = FileSinkConfig {
        compress: Compression::Zstd,
        ..test_config(dir.path())
    };
    let cursor = journal.cursor("out").unwrap();
    let parsers = Arc::new(ParserRegistry::new(Vec::new()));
    let mut sink = FileSink::open(config, cursor, Arc::default(), parsers).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), acked_len);
    let rest = read_batch(&mut sink);
    assert_eq!(rest.first().map(|j| j.entry.seq), Some(1001));
    sink.write_batch(rest).unwrap();
    sink.commit_if_due(true).unwrap();
    let text = zstd::decode_all(std::fs::File::open(&path).unwrap()).unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&text).unwrap().lines().collect();
    assert_eq!(lines.len(), 3000);
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["short_message"], format!("line {i}"));
    }
    assert!(std::fs::metadata(&path).unwrap().len() * 3 < text.len() as u64);
}

/// `run` over several full batches (each written while the next is encoded): every line
/// once, in journal order, all acknowledged.
#[test]
fn run_writes_every_batch_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let n = 3 * BATCH + 17;
    let (journal, mut sink) = sink_over(n, OutputFsync::Interval, dir.path());
    journal.close().unwrap();
    sink.run().unwrap();
    assert_eq!(sink.cursor.acked(), n as u64);
    let text = std::fs::read_to_string(file_path(dir.path(), "web", 0, "gelf")).unwrap();
    let got: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["short_message"].to_string())
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("\"line {i}\"")).collect();
    assert!(got == want, "{} lines, not {n} in order", got.len());
}

#[test]
fn state_round_trip_rejects_unsafe() {
    let v = decode_state(b"web 3 120\n../x 1 1\nbad\n");
    assert_eq!(v, FileStates::from([("web".to_string(), (3, 120))]));
}

/// zstd output rotated inside the encode workers' runs: the runs cut by a rotation are
/// compressed by the sink itself; every file is whole frames, every line once, in order.
#[test]
fn zstd_output_rotated_mid_run_holds_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = sink_with(3000, OutputFsync::Batch, dir.path(), Compression::Zstd);
    let config = FileSinkConfig {
        compress: Compression::Zstd,
        // A few dozen GELF lines per run: rotations fall inside the workers' chunks.
        max_size: ByteSize::kib(4),
        ..test_config(dir.path())
    };
    let cursor = journal.cursor("rotated").unwrap();
    let parsers = Arc::new(ParserRegistry::new(Vec::new()));
    let mut sink = FileSink::open(config, cursor, Arc::default(), parsers).unwrap();
    let batch = read_batch(&mut sink);
    assert_eq!(batch.len(), 3000);
    sink.write_batch(batch).unwrap();
    sink.commit_if_due(true).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("web"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 3, "rotated: {files:?}");
    let mut lines = Vec::new();
    for f in &files {
        let text = zstd::decode_all(std::fs::File::open(f).unwrap()).unwrap();
        for line in String::from_utf8(text).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            lines.push(v["short_message"].as_str().unwrap().to_string());
        }
    }
    let want: Vec<String> = (0..3000).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want);
}
