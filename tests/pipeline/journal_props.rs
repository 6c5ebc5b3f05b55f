//! Property tests of the on-disk journal: random appends, acknowledgements, reads, rewinds,
//! clean restarts and simulated crashes (the tail cut at a random offset past the durable point,
//! random garbage appended, records appended but not yet durable), and random bit flips in sealed
//! segments. After every restart the journal must return exactly the durable records, in order,
//! each identical to what was appended, never a corrupt one; checkpoints must match the last
//! batch whose records survived (a batch survives whole or not at all).
//!
//! `PROPTEST_CASES` raises the number of cases (default 48 per property).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use quill::journal::{
    AppendBatch, Checkpoint, Cursor, FsyncPolicy, Journal, JournalConfig, internals,
};
use quill::record::{Format, Origin, Position, Record, RecordFlags, Timestamp};

use crate::support::drain_cursor;

fn origins() -> Vec<Arc<Origin>> {
    vec![
        Origin::new("web", "lb", Format::Haproxy, "host-a"),
        Origin::new("app", "apache", Format::Apache, "host-b"),
    ]
}

#[derive(Debug, Clone)]
struct RecSpec {
    origin: usize,
    raw: Vec<u8>,
    at: i64,
    flags: u8,
    file_pos: Option<(u64, u64)>,
}

impl RecSpec {
    fn build(&self, origins: &[Arc<Origin>]) -> Record {
        Record {
            origin: origins[self.origin].clone(),
            received_at: Timestamp(self.at),
            position: match self.file_pos {
                None => Position::None,
                Some((file_id, end_offset)) => Position::File {
                    file_id,
                    end_offset,
                },
            },
            flags: RecordFlags::from_bits(self.flags),
            raw: Bytes::from(self.raw.clone()),
        }
    }
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    (
        0..2usize,
        prop::collection::vec(any::<u8>(), 0..300),
        any::<i64>(),
        0..8u8,
        prop::option::of((any::<u64>(), any::<u64>())),
    )
        .prop_map(|(origin, raw, at, flags, file_pos)| RecSpec {
            origin,
            raw,
            at,
            flags,
            file_pos,
        })
}

fn batch_spec() -> impl Strategy<Value = Vec<RecSpec>> {
    prop::collection::vec(rec_spec(), 0..6)
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<RecSpec>),
    Read(usize),
    Ack(usize),
    Rewind,
    Restart,
    Crash {
        not_durable: Vec<Vec<RecSpec>>,
        cut: f64,
        garbage: Vec<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => batch_spec().prop_map(Op::Append),
        2 => (1..20usize).prop_map(Op::Read),
        2 => (0..20usize).prop_map(Op::Ack),
        1 => Just(Op::Rewind),
        1 => Just(Op::Restart),
        2 => (
            prop::collection::vec(batch_spec(), 0..4),
            0.0..1.0f64,
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(not_durable, cut, garbage)| Op::Crash { not_durable, cut, garbage }),
    ]
}

fn policy() -> impl Strategy<Value = FsyncPolicy> {
    prop_oneof![
        Just(FsyncPolicy::Interval),
        Just(FsyncPolicy::Always),
        Just(FsyncPolicy::Never)
    ]
}

fn config(fsync: FsyncPolicy) -> JournalConfig {
    JournalConfig {
        fsync,
        fsync_interval: Duration::from_millis(1),
        segment_bytes: 4096,
        max_bytes: 64 << 20,
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// The model: every record known to be in the journal (index = seq - 1), the batch each belongs
/// to, the cursor's acknowledged and read positions.
struct Model {
    records: Vec<Record>,
    batch_of: Vec<u64>,
    last_checkpoint: Option<u64>,
    batches: u64,
    acked: u64,
    read_pos: u64,
}

fn checkpoint_for(batch: u64) -> Checkpoint {
    Checkpoint {
        key: "source:batch".into(),
        value: Bytes::from(batch.to_le_bytes().to_vec()),
    }
}

fn batch_from_checkpoint(v: &Bytes) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&v[..8]);
    u64::from_le_bytes(a)
}

fn tail_segment(dir: &Path) -> (PathBuf, u64) {
    let segs = internals::list_segments(dir).unwrap();
    let (_, path) = segs.last().unwrap().clone();
    let len = std::fs::metadata(&path).unwrap().len();
    (path, len)
}

/// Reads everything readable through `cursor` and checks it against the model.
fn read_all_and_check(cursor: &mut Cursor, model: &Model) -> Vec<Record> {
    let got = drain_cursor(cursor, 64, Duration::from_millis(20));
    for (expect, e) in (model.read_pos + 1..).zip(&got) {
        assert_eq!(e.seq, expect, "sequence numbers must be gap-free");
    }
    got.into_iter().map(|e| e.record).collect()
}

fn run_ops(fsync: FsyncPolicy, ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let origins = origins();
    let mut journal = Journal::open(&dir, config(fsync)).unwrap();
    let mut cursor = journal.cursor("c").unwrap();
    let mut m = Model {
        records: Vec::new(),
        batch_of: Vec::new(),
        last_checkpoint: None,
        batches: 0,
        acked: 0,
        read_pos: 0,
    };
    for op in ops {
        match op {
            Op::Append(specs) => {
                m.batches += 1;
                let records: Vec<Record> = specs.iter().map(|s| s.build(&origins)).collect();
                let receipt = journal
                    .appender()
                    .append_blocking(AppendBatch {
                        records: records.clone(),
                        checkpoints: vec![checkpoint_for(m.batches)],
                    })
                    .unwrap();
                assert_eq!(receipt.first_seq, m.records.len() as u64 + 1);
                assert_eq!(
                    receipt.last_seq,
                    m.records.len() as u64 + records.len() as u64
                );
                if !records.is_empty() {
                    journal
                        .appender()
                        .wait_durable_blocking(receipt.last_seq)
                        .unwrap();
                }
                m.batch_of
                    .extend(std::iter::repeat_n(m.batches, records.len()));
                m.records.extend(records);
                m.last_checkpoint = Some(m.batches);
            }
            Op::Read(n) => {
                let got = cursor
                    .next_batch_blocking(n, Duration::from_millis(20))
                    .unwrap();
                let available = m.records.len() as u64 - m.read_pos;
                assert_eq!(got.len() as u64, available.min(n as u64));
                for e in got {
                    assert_eq!(e.seq, m.read_pos + 1);
                    assert_eq!(e.record, m.records[e.seq as usize - 1]);
                    m.read_pos = e.seq;
                }
            }
            Op::Ack(n) => {
                let to = (m.acked + n as u64).min(m.records.len() as u64);
                let state = Bytes::from(format!("state-{to}"));
                cursor.ack(to, Some(state)).unwrap();
                m.acked = m.acked.max(to);
                m.read_pos = m.read_pos.max(m.acked);
            }
            Op::Rewind => {
                cursor.rewind();
                m.read_pos = m.acked;
            }
            Op::Restart => {
                drop(cursor);
                journal.close().unwrap();
                drop(journal);
                journal = Journal::open(&dir, config(fsync)).unwrap();
                cursor = journal.cursor("c").unwrap();
                assert_eq!(cursor.acked(), m.acked);
                m.read_pos = m.acked;
                assert_eq!(journal.durable_seq(), m.records.len() as u64);
                check_checkpoint(&journal, &m);
            }
            Op::Crash {
                not_durable,
                cut,
                garbage,
            } => {
                let (durable_tail, durable_len) = tail_segment(&dir);
                let mut extra: Vec<(u64, Vec<Record>)> = Vec::new();
                let mut batch_no = m.batches;
                for specs in not_durable {
                    batch_no += 1;
                    let records: Vec<Record> = specs.iter().map(|s| s.build(&origins)).collect();
                    journal
                        .appender()
                        .append_blocking(AppendBatch {
                            records: records.clone(),
                            checkpoints: vec![checkpoint_for(batch_no)],
                        })
                        .unwrap();
                    extra.push((batch_no, records));
                }
                journal.simulate_crash();
                drop(cursor);
                drop(journal);
                // Cut the last segment somewhere past what was durable and add garbage, as a
                // machine crash in the middle of writing does.
                let (tail, len) = tail_segment(&dir);
                let from = if tail == durable_tail { durable_len } else { 0 };
                let new_len = from + ((len - from) as f64 * cut) as u64;
                let f = OpenOptions::new().write(true).open(&tail).unwrap();
                f.set_len(new_len).unwrap();
                std::os::unix::fs::FileExt::write_all_at(&f, &garbage, new_len).unwrap();
                drop(f);

                journal = Journal::open(&dir, config(fsync)).unwrap();
                cursor = journal.cursor("c").unwrap();
                assert_eq!(cursor.acked(), m.acked);
                m.read_pos = m.acked;
                let got = read_all_and_check(&mut cursor, &m);
                let known = &m.records[m.acked as usize..];
                assert!(got.len() >= known.len(), "durable records were lost");
                assert_eq!(&got[..known.len()], known);
                // What survived of the non-durable batches: whole batches, in order.
                let mut survivors = &got[known.len()..];
                for (batch_no, records) in extra {
                    if survivors.is_empty() {
                        break;
                    }
                    if records.is_empty() {
                        // A checkpoint-only batch: its survival shows in the checkpoint.
                        continue;
                    }
                    assert!(survivors.len() >= records.len(), "a batch survived in part");
                    assert_eq!(&survivors[..records.len()], &records[..]);
                    survivors = &survivors[records.len()..];
                    m.batch_of
                        .extend(std::iter::repeat_n(batch_no, records.len()));
                    m.records.extend(records);
                }
                assert!(survivors.is_empty(), "records nobody appended");
                m.batches = batch_no;
                m.read_pos = m.records.len() as u64;
                assert_eq!(journal.durable_seq(), m.records.len() as u64);
                // The checkpoint is the last surviving batch's (or a later checkpoint-only one).
                let cp = journal
                    .checkpoint("source:batch")
                    .map(|v| batch_from_checkpoint(&v));
                let last_record_batch = m.batch_of.last().copied();
                match (cp, last_record_batch) {
                    (Some(c), Some(b)) => assert!(c >= b, "checkpoint {c} behind batch {b}"),
                    (None, Some(b)) => panic!("checkpoint lost; batch {b} survived"),
                    _ => {}
                }
                m.last_checkpoint = cp;
            }
        }
    }
    drop(cursor);
    journal.close().unwrap();
    drop(journal);
    let journal = Journal::open(&dir, config(fsync)).unwrap();
    let mut cursor = journal.cursor("c").unwrap();
    m.read_pos = m.acked;
    let got = read_all_and_check(&mut cursor, &m);
    assert_eq!(&got[..], &m.records[m.acked as usize..]);
    check_checkpoint(&journal, &m);
}

fn check_checkpoint(journal: &Journal, m: &Model) {
    let cp = journal
        .checkpoint("source:batch")
        .map(|v| batch_from_checkpoint(&v));
    assert_eq!(cp, m.last_checkpoint);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn recovery_returns_exactly_the_durable_prefix(
        fsync in policy(),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run_ops(fsync, ops);
    }

    #[test]
    fn bit_rot_in_sealed_segments_is_skipped_without_losing_other_frames(
        batches in prop::collection::vec(prop::collection::vec(rec_spec(), 1..5), 20..60),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0.0..1.0f64, 0..8u8), 1..4),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("journal");
        let origins = origins();
        let cfg = config(FsyncPolicy::Never);
        let mut written: Vec<(u64, Record)> = Vec::new();
        {
            let journal = Journal::open(&dir, cfg.clone()).unwrap();
            let a = journal.appender();
            for (i, specs) in batches.iter().enumerate() {
                let records: Vec<Record> = specs.iter().map(|s| s.build(&origins)).collect();
                a.append_blocking(AppendBatch {
                    records: records.clone(),
                    checkpoints: vec![],
                })
                .unwrap();
                written.extend(records.into_iter().map(|r| (i as u64, r)));
            }
            journal.close().unwrap();
        }
        let segs = internals::list_segments(&dir).unwrap();
        prop_assume!(segs.len() >= 2);
        let sealed = &segs[..segs.len() - 1];
        for (which, at, bit) in &flips {
            let (_, path) = &sealed[which.index(sealed.len())];
            let mut bytes = std::fs::read(path).unwrap();
            let pos = ((bytes.len() as f64) * at) as usize % bytes.len();
            bytes[pos] ^= 1 << bit;
            std::fs::write(path, &bytes).unwrap();
        }
        let journal = Journal::open(&dir, cfg).unwrap();
        let mut cursor = journal.cursor("c").unwrap();
        let got = drain_cursor(&mut cursor, 100, Duration::from_millis(20));
        let mut last = 0;
        let mut present = vec![false; written.len()];
        for e in &got {
            prop_assert!(e.seq > last, "out of order");
            last = e.seq;
            let (_, original) = &written[e.seq as usize - 1];
            prop_assert_eq!(&e.record, original, "corrupt record returned");
            present[e.seq as usize - 1] = true;
        }
        // Each flip damages at most one frame (one batch), and a batch is kept or lost whole.
        let mut lost_batches = std::collections::BTreeSet::new();
        for (i, (batch, _)) in written.iter().enumerate() {
            if !present[i] {
                lost_batches.insert(*batch);
            }
        }
        for (i, (batch, _)) in written.iter().enumerate() {
            if lost_batches.contains(batch) {
                prop_assert!(!present[i], "batch {} survived in part", batch);
            }
        }
        prop_assert!(lost_batches.len() <= flips.len(), "lost {:?} for {} flips", lost_batches, flips.len());
    }
}
