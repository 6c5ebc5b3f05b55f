//! An append made ready outside the journal's lock: sizes checked against the frame limit in one
//! pass, the batch cut into frames of at most [`format::SPLIT_FRAME_BODY`], and a large batch
//! (over [`ENCODE_OUTSIDE_LOCK`]) encoded into those frames before the lock is taken. Its
//! sequence numbers are filled in under the lock ([`EncodedFrame::number`]: the header and a CRC
//! combine, never a second pass over the bytes), so a 64 MiB forward batch neither holds the
//! journal-wide mutex while it is encoded nor, from [`super::Appender::append`], encodes on the
//! reactor (it runs on a blocking thread).
//!
//! Pure: touches nothing but the buffers it makes.

use super::format;
use super::{AppendBatch, Checkpoint, JournalError};

/// Batches whose encoded size is above this are encoded before the lock is taken.
pub(super) const ENCODE_OUTSIDE_LOCK: usize = 256 << 10;

/// A batch checked and cut into frames.
pub(super) struct Prepared {
    /// Encoded size (estimated from the records), for the room check.
    pub(super) size: u64,
    /// Bytes of record payload.
    pub(super) raw_bytes: u64,
    /// The frames as record ranges of the batch, each with its size estimate.
    pub(super) parts: Vec<Part>,
    /// For a large batch: the frames, encoded with sequence numbers still to be set.
    pub(super) encoded: Option<Vec<EncodedFrame>>,
}

/// One frame of a batch: records `start..end`; the last frame carries the batch's checkpoints.
#[derive(Clone, Copy)]
pub(super) struct Part {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) hint: u64,
}

/// One frame encoded ahead of its sequence number.
pub(super) struct EncodedFrame {
    pub(super) bytes: Vec<u8>,
    pub(super) records: u64,
    pub(super) checkpoints: Vec<Checkpoint>,
    body_crc: u32,
}

impl EncodedFrame {
    /// Sets the frame's first sequence number (and its checksum).
    pub(super) fn number(&mut self, first_seq: u64) {
        format::set_first_seq(&mut self.bytes, self.body_crc, first_seq);
    }
}

/// True when `batch` is encoded outside the lock (by [`prepare`]).
pub(super) fn is_large(batch: &AppendBatch) -> bool {
    let mut size = 64
        + batch
            .checkpoints
            .iter()
            .map(|c| c.key.len() + c.value.len() + 20)
            .sum::<usize>();
    for r in &batch.records {
        size += format::record_size_hint(r);
        if size > ENCODE_OUTSIDE_LOCK {
            return true;
        }
    }
    false
}

/// Checks `batch` and cuts it into frames; encodes them when the batch is large.
pub(super) fn prepare(batch: &AppendBatch) -> Result<Prepared, JournalError> {
    let checkpoint_bytes: usize = batch
        .checkpoints
        .iter()
        .map(|c| c.key.len() + c.value.len() + 20)
        .sum();
    let fixed = 256 + checkpoint_bytes;
    let mut encoded = 64 + checkpoint_bytes;
    let mut raw_bytes = 0u64;
    for r in &batch.records {
        let h = format::record_size_hint(r);
        encoded += h;
        raw_bytes += r.raw.len() as u64;
        let origin = r.origin.source.len() + r.origin.category.len() + r.origin.host.len();
        if h + origin + fixed > format::MAX_FRAME_BODY {
            return Err(JournalError::TooLarge {
                bytes: r.raw.len() as u64,
                max: (format::MAX_FRAME_BODY - fixed) as u64,
            });
        }
    }
    let parts = if encoded <= format::SPLIT_FRAME_BODY {
        vec![Part {
            start: 0,
            end: batch.records.len(),
            hint: encoded as u64,
        }]
    } else {
        split(batch)
    };
    let frames = (encoded > ENCODE_OUTSIDE_LOCK).then(|| encode(batch, &parts));
    Ok(Prepared {
        size: encoded as u64,
        raw_bytes,
        parts,
        encoded: frames,
    })
}

/// Records up to the split size per frame (at least one each).
fn split(batch: &AppendBatch) -> Vec<Part> {
    let records = &batch.records;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut hint = 64;
        while end < records.len() {
            let h = format::record_size_hint(&records[end]);
            if end > start && hint + h > format::SPLIT_FRAME_BODY {
                break;
            }
            hint += h;
            end += 1;
        }
        parts.push(Part {
            start,
            end,
            hint: hint as u64,
        });
        start = end;
    }
    parts
}

fn encode(batch: &AppendBatch, parts: &[Part]) -> Vec<EncodedFrame> {
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let checkpoints: &[Checkpoint] = if i == last { &batch.checkpoints } else { &[] };
            let mut bytes = Vec::with_capacity(p.hint as usize + 256);
            format::encode_frame(&mut bytes, 0, &batch.records[p.start..p.end], checkpoints);
            EncodedFrame {
                body_crc: format::frame_body_crc(&bytes),
                bytes,
                records: (p.end - p.start) as u64,
                checkpoints: checkpoints.to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Format, Origin, Record};
    use bytes::Bytes;

    fn batch(records: usize, size: usize) -> AppendBatch {
        let origin = Origin::new("s", "c", Format::Raw, "h");
        AppendBatch {
            records: (0..records)
                .map(|i| {
                    Record::new(
                        origin.clone(),
                        Bytes::from(vec![b'a' + (i % 26) as u8; size]),
                    )
                })
                .collect(),
            checkpoints: vec![Checkpoint {
                key: "k".into(),
                value: Bytes::from_static(b"v"),
            }],
        }
    }

    #[test]
    fn a_frame_numbered_late_is_the_frame_encoded_with_its_number() {
        let b = batch(40, 300 << 10); // 12 MiB: three frames, encoded outside the lock
        let mut p = prepare(&b).unwrap();
        assert!(p.parts.len() >= 3);
        let frames = p.encoded.as_mut().unwrap();
        let mut seq = 1000;
        for (frame, part) in frames.iter_mut().zip(&p.parts) {
            frame.number(seq);
            let checkpoints: &[Checkpoint] = if part.end == b.records.len() {
                &b.checkpoints
            } else {
                &[]
            };
            let mut direct = Vec::new();
            format::encode_frame(
                &mut direct,
                seq,
                &b.records[part.start..part.end],
                checkpoints,
            );
            assert_eq!(frame.bytes, direct);
            assert!(matches!(
                format::check_frame(&frame.bytes),
                format::FrameCheck::Valid(h) if h.first_seq == seq
            ));
            seq += frame.records;
        }
        assert_eq!(seq, 1040);
    }

    #[test]
    fn small_batches_are_encoded_under_the_lock_and_huge_records_refused() {
        let p = prepare(&batch(10, 100)).unwrap();
        assert!(p.encoded.is_none());
        assert_eq!(p.parts.len(), 1);
        assert_eq!(p.raw_bytes, 1000);
        assert!(matches!(
            prepare(&batch(1, format::MAX_FRAME_BODY)),
            Err(JournalError::TooLarge { .. })
        ));
    }
}
