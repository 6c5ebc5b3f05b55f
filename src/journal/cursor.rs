//! Cursors: named readers with a persisted, acknowledged position. [`Cursor`] is the public
//! handle; [`CursorIo`] its read state: which segment it reads, where the next frame is, decoded
//! entries not yet handed out, and where recently read frames start (so a rewind does not
//! rescan).
//!
//! Reads only durable bytes (each segment's published durable length) with positioned reads, so
//! the active segment is read safely while the writer appends to it. Corrupt frames are reported
//! with segment and offset and skipped by searching for the next frame's sync marker.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::delivered::Unacked;
use super::format::{self, OriginCache, SEGMENT_HEADER_LEN};
use super::segment::{FrameAt, FrameReader};
use super::shared::{Lifecycle, Shared};
use super::{Entry, JournalError, io_err};

/// A named reader with a persisted, acknowledged position.
pub struct Cursor {
    pub(super) life: Arc<Lifecycle>,
    pub(super) name: String,
    /// The last sequence number handed out.
    pub(super) read_pos: u64,
    pub(super) acked: u64,
    pub(super) sink_state: Option<Bytes>,
    /// Read state; `None` only while a read runs on a blocking thread (or after one was
    /// cancelled, in which case reading restarts from `read_pos`).
    pub(super) io: Option<Box<CursorIo>>,
    /// Ranges `(from, to]` this reader jumped over because the journal moved the cursor past
    /// `max_lag` (already counted as skipped), above its own acknowledgement.
    pub(super) jumped: Vec<(u64, u64)>,
    /// Source positions of what was handed out and not acknowledged yet.
    pub(super) unacked: Unacked,
    /// True while recovery's fence may skip re-read records for this cursor.
    pub(super) fenced: bool,
}

impl Drop for Cursor {
    /// What the journal moved this cursor past and this reader never acknowledged is skipped
    /// for good: the next reader starts after it.
    fn drop(&mut self) {
        self.read_pos = self.acked;
        self.catch_up(true);
    }
}

impl Cursor {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The journal this cursor reads (a supervisor re-opens the cursor through it).
    pub fn journal(&self) -> super::Journal {
        super::Journal {
            life: self.life.clone(),
        }
    }

    /// The last acknowledged sequence number (0: nothing yet).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The journal's highest durable sequence number: no entry beyond it exists yet.
    pub fn journal_durable_seq(&self) -> u64 {
        self.life.shared.lock().durable_seq
    }

    /// The sink state stored with the last acknowledgement.
    pub fn sink_state(&self) -> Option<&Bytes> {
        self.sink_state.as_ref()
    }

    /// The journal's fsync policy and group-commit interval (sinks follow them by default).
    pub fn journal_fsync(&self) -> (super::FsyncPolicy, Duration) {
        let config = &self.life.shared.config;
        (config.fsync, config.fsync_interval)
    }

    fn writer_done(&self) -> bool {
        self.life.shared.lock().writer_done
    }

    /// True once the journal is closed (nothing more will be appended).
    pub fn journal_closed(&self) -> bool {
        self.writer_done()
    }

    /// When the journal moved the cursor past the read position (`max_lag`), jumps there and
    /// counts the records passed over that were not counted before (a rewind re-reads from the
    /// own acknowledgement, so a range may be passed over twice). True if it jumped.
    /// `release`: this reader goes away (in the same step, so no move goes uncounted).
    fn catch_up(&mut self, release: bool) -> bool {
        let mut st = self.life.shared.lock();
        let Some(meta) = st.cursors.get_mut(&self.name) else {
            return false;
        };
        if release {
            meta.readers = meta.readers.saturating_sub(1);
        }
        let (from, to) = (self.read_pos, meta.acked);
        if to <= from {
            return false;
        }
        let counted: u64 = self
            .jumped
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum();
        meta.skipped += (to - from).saturating_sub(counted);
        drop(st);
        let mut merged = (from, to);
        self.jumped.retain(|&(a, b)| {
            let overlaps = a < to && b > from;
            if overlaps {
                merged = (merged.0.min(a), merged.1.max(b));
            }
            !overlaps
        });
        self.jumped.push(merged);
        self.read_pos = to;
        self.io = Some(Box::default());
        true
    }

    /// Drops from `out` the records this cursor delivered before recovery cut the journal's
    /// tail (a file source read them again) and notes the positions of the rest. Returns how
    /// many were dropped.
    fn admit(&mut self, out: &mut Vec<Entry>) -> usize {
        let mut dropped = 0;
        if self.fenced {
            let mut st = self.life.shared.lock();
            match st
                .cursors
                .get_mut(&self.name)
                .and_then(|m| m.fence.as_mut())
            {
                Some(fence) => out.retain(|e| {
                    let skip = fence.skips(e.seq, e.record.position);
                    dropped += usize::from(skip);
                    !skip
                }),
                None => self.fenced = false,
            }
        }
        for e in out.iter() {
            self.unacked.note(e.seq, e.record.position);
        }
        dropped
    }

    /// Reads what is readable now, without waiting.
    fn fill_now(&mut self, max: usize) -> Result<Vec<Entry>, JournalError> {
        loop {
            self.catch_up(false);
            let mut io = self.io.take().unwrap_or_default();
            let mut out = Vec::new();
            let r = io.fill(
                &self.life.shared,
                &self.name,
                &mut self.read_pos,
                max,
                &mut out,
            );
            self.io = Some(io);
            r?;
            // When everything read was skipped, read on before waiting.
            if self.admit(&mut out) == 0 || !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Returns up to `max` durable entries after the read position, waiting for at least one.
    /// An empty result means the journal was closed and everything was read.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, JournalError> {
        let max = max.max(1);
        loop {
            let progress = self.life.clone();
            let notified = progress.shared.progress.notified();
            let done_before = self.writer_done();
            self.catch_up(false);
            let mut io = self.io.take().unwrap_or_default();
            let out = if io.buffered_len() >= max {
                let mut out = Vec::new();
                io.take_buffered(&mut self.read_pos, max, &mut out);
                self.io = Some(io);
                out
            } else {
                let life = self.life.clone();
                let mut read_pos = self.read_pos;
                let name = self.name.clone();
                let (io, read_pos, r) = tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    let r = io.fill(&life.shared, &name, &mut read_pos, max, &mut out);
                    (io, read_pos, r.map(|()| out))
                })
                .await
                .map_err(|_| JournalError::Closed)?;
                self.io = Some(io);
                self.read_pos = read_pos;
                r?
            };
            let mut out = out;
            if self.admit(&mut out) > 0 && out.is_empty() {
                continue;
            }
            if !out.is_empty() || done_before {
                return Ok(out);
            }
            if self.catch_up(false) {
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// Blocking variant of [`Cursor::next_batch`]; returns an empty batch after `timeout` too.
    pub fn next_batch_blocking(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Entry>, JournalError> {
        let max = max.max(1);
        let deadline = Instant::now() + timeout;
        let life = self.life.clone();
        loop {
            let done_before = self.writer_done();
            let seen_durable = life.shared.lock().durable_seq;
            let out = self.fill_now(max)?;
            let now = Instant::now();
            if !out.is_empty() || done_before || now >= deadline {
                return Ok(out);
            }
            let st = life.shared.lock();
            if st.durable_seq == seen_durable && !st.writer_done {
                let _ = life
                    .shared
                    .changed
                    .wait_timeout(st, (deadline - now).min(Duration::from_millis(100)));
            }
        }
    }

    /// True when the journal is closed and this cursor has read everything.
    pub fn is_drained(&self) -> bool {
        let st = self.life.shared.lock();
        st.writer_done
            && self.read_pos >= st.durable_seq
            && self.io.as_ref().is_none_or(|io| io.buffered_len() == 0)
    }

    /// Acknowledges everything up to `seq`, with an optional sink state stored alongside; durable
    /// when this returns (it writes and fsyncs the cursor file: call it from a blocking thread, or
    /// use [`Cursor::ack_async`]).
    pub fn ack(&mut self, seq: u64, sink_state: Option<Bytes>) -> Result<(), JournalError> {
        let seq = seq.max(self.acked);
        let positions = self.unacked.take_through(seq);
        self.life
            .shared
            .persist_ack(&self.name, seq, sink_state.clone(), &positions)?;
        self.after_ack(seq, sink_state);
        self.life.shared.trim();
        Ok(())
    }

    /// [`Cursor::ack`] with the file write and fsync on a blocking thread.
    pub async fn ack_async(
        &mut self,
        seq: u64,
        sink_state: Option<Bytes>,
    ) -> Result<(), JournalError> {
        let seq = seq.max(self.acked);
        let life = self.life.clone();
        let name = self.name.clone();
        let state = sink_state.clone();
        let positions = self.unacked.take_through(seq);
        tokio::task::spawn_blocking(move || -> Result<(), JournalError> {
            life.shared.persist_ack(&name, seq, state, &positions)?;
            Ok(())
        })
        .await
        .map_err(|_| JournalError::Closed)??;
        self.after_ack(seq, sink_state);
        let life = self.life.clone();
        let _ = tokio::task::spawn_blocking(move || life.shared.trim()).await;
        Ok(())
    }

    fn after_ack(&mut self, seq: u64, sink_state: Option<Bytes>) {
        self.life
            .shared
            .record_ack(&self.name, seq, sink_state.clone());
        self.acked = seq;
        self.sink_state = sink_state;
        self.read_pos = self.read_pos.max(seq);
        self.jumped.retain(|&(_, to)| to > seq);
        if let Some(io) = self.io.as_mut() {
            io.acked(seq);
        }
    }

    /// Moves the read position back to the last acknowledgement (e.g. after a failed send).
    pub fn rewind(&mut self) {
        self.read_pos = self.acked;
        self.unacked.rewind(self.acked);
        if self.fenced
            && let Some(fence) = self
                .life
                .shared
                .lock()
                .cursors
                .get_mut(&self.name)
                .and_then(|m| m.fence.as_mut())
        {
            fence.rewind(self.acked);
        }
        if let Some(io) = self.io.as_mut() {
            io.rewind(self.acked);
        }
    }
}

/// Most frame starts remembered for rewinds; older ones are found again by scanning.
const MAX_MARKS: usize = 1 << 16;

/// Where a frame read since the last acknowledgement starts.
#[derive(Debug, Clone, Copy)]
struct Mark {
    first_seq: u64,
    last_seq: u64,
    segment: u64,
    offset: u64,
}

struct OpenSegment {
    first_seq: u64,
    path: PathBuf,
    reader: FrameReader,
    offset: u64,
    /// First sequence number a valid frame here may start at (for resynchronising).
    min_seq: u64,
}

#[derive(Default)]
pub(super) struct CursorIo {
    open: Option<OpenSegment>,
    /// Where to start when nothing is open: (segment, offset), from a rewind.
    resume_at: Option<(u64, u64)>,
    buffered: VecDeque<Entry>,
    marks: VecDeque<Mark>,
    origins: OriginCache,
}

/// What the shared state says about the segment being read.
struct SegmentView {
    limit: u64,
    sealed: bool,
    next_first_seq: Option<u64>,
}

impl CursorIo {
    pub fn buffered_len(&self) -> usize {
        self.buffered.len()
    }

    pub fn take_buffered(&mut self, read_pos: &mut u64, max: usize, out: &mut Vec<Entry>) {
        while out.len() < max {
            match self.buffered.pop_front() {
                Some(e) if e.seq > *read_pos => {
                    *read_pos = e.seq;
                    out.push(e);
                }
                Some(_) => {}
                None => break,
            }
        }
    }

    pub fn acked(&mut self, seq: u64) {
        while self.marks.front().is_some_and(|m| m.last_seq <= seq) {
            self.marks.pop_front();
        }
    }

    pub fn rewind(&mut self, acked: u64) {
        self.buffered.clear();
        let target = acked + 1;
        let mark = self
            .marks
            .iter()
            .find(|m| m.last_seq >= target)
            .filter(|m| m.first_seq <= target)
            .copied();
        self.marks.clear();
        self.open = None;
        self.resume_at = mark.map(|m| (m.segment, m.offset));
    }

    /// Moves up to `max` durable entries after `read_pos` into `out`, without waiting. Stops
    /// early when the journal moved cursor `name` past `read_pos` (the cursor jumps, and
    /// counts, before it reads on): segments behind it may be gone.
    pub fn fill(
        &mut self,
        shared: &Shared,
        name: &str,
        read_pos: &mut u64,
        max: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), JournalError> {
        loop {
            self.take_buffered(read_pos, max, out);
            if out.len() >= max {
                return Ok(());
            }
            let (durable_seq, floor) = {
                let st = shared.lock();
                (st.durable_seq, st.cursors.get(name).map_or(0, |m| m.acked))
            };
            if *read_pos >= durable_seq || floor > *read_pos {
                return Ok(());
            }
            if self.open.is_none() && !self.open_next(shared, *read_pos)? {
                return Ok(());
            }
            let Some(view) = self.view(shared) else {
                // The segment went away (cannot happen while we have not acknowledged past it,
                // but do not trust that): locate again.
                self.open = None;
                continue;
            };
            if !self.read_frame(&view, *read_pos)? {
                // End of the readable bytes of this segment.
                match (view.sealed, view.next_first_seq) {
                    (true, Some(next)) => {
                        self.open = None;
                        self.resume_at = Some((next, SEGMENT_HEADER_LEN as u64));
                    }
                    _ => return Ok(()),
                }
            }
        }
    }

    fn view(&self, shared: &Shared) -> Option<SegmentView> {
        let open = self.open.as_ref()?;
        let st = shared.lock();
        let i = st
            .segments
            .iter()
            .position(|s| s.first_seq == open.first_seq)?;
        let seg = &st.segments[i];
        Some(SegmentView {
            limit: seg.len,
            sealed: seg.sealed,
            next_first_seq: st.segments.get(i + 1).map(|s| s.first_seq),
        })
    }

    /// Opens the segment to read next: the rewind/roll position if there is one, else the
    /// segment holding `read_pos + 1`. False when there is none.
    fn open_next(&mut self, shared: &Shared, read_pos: u64) -> Result<bool, JournalError> {
        let (first_seq, path, offset, sealed) = {
            let st = shared.lock();
            let by_resume = self.resume_at.and_then(|(seg, off)| {
                st.segments
                    .iter()
                    .find(|s| s.first_seq == seg)
                    .map(|s| (s.first_seq, s.path.clone(), off, s.sealed))
            });
            let found = by_resume.or_else(|| {
                let target = read_pos + 1;
                let i = st
                    .segments
                    .iter()
                    .rposition(|s| s.first_seq <= target)
                    .unwrap_or(0);
                st.segments.get(i).map(|s| {
                    (
                        s.first_seq,
                        s.path.clone(),
                        SEGMENT_HEADER_LEN as u64,
                        s.sealed,
                    )
                })
            });
            match found {
                Some(f) => f,
                None => return Ok(false),
            }
        };
        self.resume_at = None;
        let reader = if sealed {
            FrameReader::open_mapped(&path)
        } else {
            FrameReader::open(&path)
        }
        .map_err(|e| io_err(&path, e))?;
        self.open = Some(OpenSegment {
            first_seq,
            path,
            reader,
            offset,
            min_seq: 0,
        });
        Ok(true)
    }

    /// Reads the next frame of the open segment into `buffered`. False at the readable end.
    fn read_frame(&mut self, view: &SegmentView, read_pos: u64) -> Result<bool, JournalError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(false);
        };
        let at = open.offset;
        let found = open
            .reader
            .frame_at(at, view.limit)
            .map_err(|e| io_err(&open.path, e))?;
        match found {
            FrameAt::End => Ok(false),
            FrameAt::Frame { header, body, next } => {
                open.offset = next;
                open.min_seq = header.last_seq() + 1;
                if header.count == 0 || header.last_seq() <= read_pos {
                    return Ok(true);
                }
                match format::decode_records(&header, &body, &mut self.origins) {
                    Ok(records) => {
                        for (i, record) in records.into_iter().enumerate() {
                            let seq = header.first_seq + i as u64;
                            if seq > read_pos {
                                self.buffered.push_back(Entry { seq, record });
                            }
                        }
                        if self.marks.len() >= MAX_MARKS {
                            self.marks.clear();
                        }
                        self.marks.push_back(Mark {
                            first_seq: header.first_seq,
                            last_seq: header.last_seq(),
                            segment: open.first_seq,
                            offset: at,
                        });
                    }
                    Err(e) => tracing::warn!(
                        segment = %open.path.display(),
                        offset = at,
                        error = %e,
                        "undecodable journal frame; skipping it"
                    ),
                }
                Ok(true)
            }
            FrameAt::Invalid => {
                tracing::warn!(
                    segment = %open.path.display(),
                    offset = at,
                    "corrupt journal frame; skipping to the next valid frame"
                );
                let resume = open
                    .reader
                    .resync(at + 1, view.limit, open.min_seq)
                    .map_err(|e| io_err(&open.path, e))?;
                open.offset = resume.unwrap_or(view.limit);
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AppendBatch, Journal, JournalConfig};
    use crate::record::{Format, Origin, Record};
    use bytes::Bytes;
    use std::time::Duration;

    fn append(j: &Journal, n: usize) -> u64 {
        let a = j.appender();
        let mut last = 0;
        for i in 0..n {
            let record = Record::new(
                Origin::new("t", "c", Format::Raw, "h"),
                Bytes::from(format!("{i:0>100}")),
            );
            let batch = AppendBatch {
                records: vec![record],
                checkpoints: Vec::new(),
            };
            last = a.append_blocking(batch).unwrap().last_seq;
        }
        a.wait_durable_blocking(last).unwrap();
        last
    }

    fn read_all(c: &mut super::Cursor) -> Vec<u64> {
        let mut seqs = Vec::new();
        loop {
            let batch = c
                .next_batch_blocking(1000, Duration::from_millis(50))
                .unwrap();
            if batch.is_empty() {
                return seqs;
            }
            seqs.extend(batch.iter().map(|e| e.seq));
        }
    }

    /// A reader holding the cursor while the journal moves it past `max_lag` jumps over what it
    /// did not read and counts it; a rewind and the reader's end count what it had read but
    /// never acknowledged, and nothing is counted twice.
    #[test]
    fn a_held_cursor_moved_past_max_lag_counts_exactly_what_it_skipped() {
        let j = Journal::memory(JournalConfig {
            segment_bytes: 4096,
            ..JournalConfig::default()
        });
        let mut c = j.cursor("s").unwrap();
        append(&j, 50);
        let first = c.next_batch_blocking(10, Duration::from_secs(1)).unwrap();
        assert_eq!(first.last().map(|e| e.seq), Some(10));
        c.ack(5, None).unwrap();
        let last = append(&j, 250);
        let moved = j.skip_cursor_to_lag("s", 8192).unwrap();
        assert!(moved > 0 && 5 + moved < last, "{moved}");
        let to = 5 + moved;
        // The reader goes on at `to + 1`: 11..=to are skipped (never read).
        let rest = read_all(&mut c);
        assert_eq!(rest.first(), Some(&(to + 1)));
        assert_eq!(rest.last(), Some(&last));
        assert_eq!(j.take_cursor_skips("s"), to - 10);
        // A rewind to its own acknowledgement (5): 6..=10 were read but are given up now; the
        // range it jumped is not counted again; everything after `to` is read again.
        c.rewind();
        let again = read_all(&mut c);
        assert_eq!(again.first(), Some(&(to + 1)));
        assert_eq!(j.take_cursor_skips("s"), 5);
        // An acknowledgement below the moved position never moves the cursor file back.
        c.ack(8, None).unwrap();
        drop(c);
        assert_eq!(j.take_cursor_skips("s"), 0);
        let reopened = j.cursor("s").unwrap();
        assert_eq!(reopened.acked(), to);
    }

    /// A reader that ends (a sink attempt that fails) while the journal moved its cursor counts
    /// what it had not acknowledged up to the new position.
    #[test]
    fn a_reader_that_ends_behind_the_moved_cursor_counts_the_rest() {
        let j = Journal::memory(JournalConfig {
            segment_bytes: 4096,
            ..JournalConfig::default()
        });
        let mut c = j.cursor("s").unwrap();
        append(&j, 300);
        let got = c.next_batch_blocking(20, Duration::from_secs(1)).unwrap();
        assert_eq!(got.len(), 20);
        c.ack(20, None).unwrap();
        let moved = j.skip_cursor_to_lag("s", 8192).unwrap();
        assert!(moved > 0);
        drop(c);
        assert_eq!(j.take_cursor_skips("s"), moved);
        assert_eq!(j.cursor("s").unwrap().acked(), 20 + moved);
    }
}
