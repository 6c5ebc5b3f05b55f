//! Unit tests of the journal.

use super::*;
use crate::record::{Format, Origin};

fn rec(s: &str) -> Record {
    Record::new(
        Origin::new("t", "c", Format::Raw, "h"),
        Bytes::copy_from_slice(s.as_bytes()),
    )
}

fn batch(records: Vec<Record>) -> AppendBatch {
    AppendBatch {
        records,
        checkpoints: vec![],
    }
}

#[test]
fn append_read_ack() {
    let j = Journal::memory(JournalConfig::default());
    let a = j.appender();
    let mut c = j.cursor("sink").unwrap();
    let r = a
        .append_blocking(AppendBatch {
            records: vec![rec("a"), rec("b")],
            checkpoints: vec![Checkpoint {
                key: "file:1".into(),
                value: Bytes::from_static(b"10"),
            }],
        })
        .unwrap();
    assert_eq!((r.first_seq, r.last_seq), (1, 2));
    a.wait_durable_blocking(2).unwrap();
    assert_eq!(j.checkpoint("file:1").as_deref(), Some(&b"10"[..]));
    let b = c
        .next_batch_blocking(10, Duration::from_millis(500))
        .unwrap();
    assert_eq!(b.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(&b[1].record.raw[..], b"b");
    c.rewind();
    let again = c.next_batch_blocking(1, Duration::from_millis(10)).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].seq, 1);
    c.ack(2, Some(Bytes::from_static(b"len=5"))).unwrap();
    let reopened = j.cursor("sink").unwrap();
    assert_eq!(reopened.acked(), 2);
    assert_eq!(reopened.sink_state().map(|b| &b[..]), Some(&b"len=5"[..]));
    assert!(j.cursor("../x").is_err());
}

#[test]
fn oversized_records_are_refused_not_journaled() {
    let j = Journal::memory(JournalConfig::default());
    let huge = Record::new(
        Origin::new("t", "c", Format::Raw, "h"),
        Bytes::from(vec![b'x'; format::MAX_FRAME_BODY]),
    );
    let err = j.appender().append_blocking(batch(vec![huge])).unwrap_err();
    assert!(matches!(err, JournalError::TooLarge { .. }), "{err}");
    assert_eq!(j.stats().last_seq, 0);
}

#[test]
fn cursor_lag_and_skip_to_lag() {
    let j = Journal::memory(JournalConfig {
        segment_bytes: 4096,
        ..JournalConfig::default()
    });
    let _c = j.cursor("s").unwrap();
    let a = j.appender();
    let text = "x".repeat(100);
    let mut last = 0;
    for _ in 0..200 {
        last = a.append_blocking(batch(vec![rec(&text)])).unwrap().last_seq;
    }
    a.wait_durable_blocking(last).unwrap();
    let (records, bytes) = j.cursor_lag("s").unwrap();
    assert_eq!(records, 200);
    assert!(bytes > 200 * 100, "{bytes}");
    assert!(j.cursor_lag("nobody").is_none());
    // Nothing to skip when within the limit.
    assert_eq!(j.skip_cursor_to_lag("s", bytes).unwrap(), 0);
    let skipped = j.skip_cursor_to_lag("s", 8192).unwrap();
    let (records_after, bytes_after) = j.cursor_lag("s").unwrap();
    assert_eq!(records_after + skipped, 200);
    assert!(bytes_after <= 8192, "{bytes_after}");
    assert!(skipped > 100, "{skipped}");
    // A fresh cursor starts after what was skipped.
    let c = j.cursor("s").unwrap();
    assert_eq!(c.acked(), skipped);
}

#[test]
fn full_journal_hands_batch_back() {
    let j = Journal::memory(JournalConfig {
        max_bytes: 100,
        ..JournalConfig::default()
    });
    let _c = j.cursor("s").unwrap();
    let a = j.appender();
    a.try_append(batch(vec![rec("x")])).unwrap();
    let Err(TryAppendError::Full(back)) = a.try_append(batch(vec![rec("y")])) else {
        panic!("expected Full");
    };
    assert_eq!(&back.records[0].raw[..], b"y");
    assert_eq!(a.try_append_or_count(back).unwrap(), None);
    assert_eq!(j.stats().dropped_journal_full, 1);
}

#[test]
fn acked_segments_are_deleted_and_space_returns() {
    let j = Journal::memory(JournalConfig {
        segment_bytes: 4096,
        max_bytes: 64 << 10,
        fsync: FsyncPolicy::Always,
        ..JournalConfig::default()
    });
    let a = j.appender();
    let mut c = j.cursor("s").unwrap();
    let line = "x".repeat(200);
    let mut last = 0;
    for _ in 0..100 {
        last = a.append_blocking(batch(vec![rec(&line)])).unwrap().last_seq;
    }
    a.wait_durable_blocking(last).unwrap();
    assert!(j.stats().segments > 3, "{:?}", j.stats());
    let held = j.stats().bytes_held;
    let mut n = 0;
    while n < 100 {
        let b = c.next_batch_blocking(7, Duration::from_secs(1)).unwrap();
        assert!(!b.is_empty());
        n += b.len();
        c.ack(b[b.len() - 1].seq, None).unwrap();
    }
    let st = j.stats();
    assert!(st.segments <= 2 && st.bytes_held < held / 4, "{st:?}");
    assert_eq!(st.cursors, vec![("s".to_string(), 100, 0)]);
}

#[tokio::test]
async fn async_append_wait_and_read() {
    let j = Journal::memory(JournalConfig::default());
    let a = j.appender();
    let mut c = j.cursor("s").unwrap();
    let r = a.append(batch(vec![rec("1"), rec("2")])).await.unwrap();
    a.wait_durable(r.last_seq).await.unwrap();
    let got = c.next_batch(10).await.unwrap();
    assert_eq!(got.len(), 2);
    c.ack_async(2, None).await.unwrap();
    j.close().unwrap();
    assert!(c.next_batch(10).await.unwrap().is_empty());
    assert!(c.is_drained());
    assert!(matches!(
        a.append(batch(vec![rec("3")])).await,
        Err(JournalError::Closed)
    ));
}
