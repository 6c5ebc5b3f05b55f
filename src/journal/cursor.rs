//! A cursor's read state: which segment it reads, where the next frame is, decoded entries not
//! yet handed out, and where recently read frames start (so a rewind does not rescan).
//!
//! Reads only durable bytes (each segment's published durable length) with positioned reads, so
//! the active segment is read safely while the writer appends to it. Corrupt frames are reported
//! with segment and offset and skipped by searching for the next frame's sync marker.

use std::collections::VecDeque;
use std::path::PathBuf;

use super::format::{self, OriginCache, SEGMENT_HEADER_LEN};
use super::segment::{FrameAt, FrameReader};
use super::{Entry, JournalError, Shared, io_err};

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

    /// Moves up to `max` durable entries after `read_pos` into `out`, without waiting.
    pub fn fill(
        &mut self,
        shared: &Shared,
        read_pos: &mut u64,
        max: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), JournalError> {
        loop {
            self.take_buffered(read_pos, max, out);
            if out.len() >= max {
                return Ok(());
            }
            let durable_seq = shared.lock().durable_seq;
            if *read_pos >= durable_seq {
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
