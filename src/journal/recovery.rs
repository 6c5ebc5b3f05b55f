//! Opening a journal directory: lock it, load the checkpoint snapshot and the cursors, scan the
//! tail segment (truncating a torn tail at the first bad frame) and replay checkpoints from the
//! segments the snapshot does not cover.
//!
//! When the cut removes records a cursor had acknowledged (the tail was damaged, or lost with
//! `fsync = "never"`), the checkpoints are those of the last frame that survived, so file
//! sources read those lines again; each such cursor gets a fence over what it had delivered
//! (`delivered`), persisted at once, so it skips them. The cut is logged with segment, offset,
//! bytes and records, and counted (`recovery_cut_records`, `recovery_cut_bytes`).
//!
//! Touches only the journal directory. Runs once, on the thread that calls `Journal::open`.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

use super::delivered::{self, Fence};
use super::format::{self, SEGMENT_HEADER_LEN};
use super::segment::{self, FrameAt, FrameReader};
use super::shared::{Counters, CursorMeta, SegmentInfo, State};
use super::writer::ActiveSegment;
use super::{JournalConfig, JournalError, io_err};

pub(super) struct Recovered {
    pub state: State,
    pub active: ActiveSegment,
    pub lock_file: File,
}

pub(super) fn recover(dir: &Path, config: &JournalConfig) -> Result<Recovered, JournalError> {
    let cursors_dir = dir.join("cursors");
    std::fs::create_dir_all(&cursors_dir).map_err(|e| io_err(&cursors_dir, e))?;
    let lock_file = lock_dir(dir)?;

    let mut checkpoints: HashMap<String, Bytes> = HashMap::new();
    let snap_path = dir.join("checkpoints.snap");
    let mut covers_below = 0;
    match std::fs::read(&snap_path) {
        Ok(bytes) => match format::decode_snapshot(&bytes) {
            Ok((covers, cps)) => {
                covers_below = covers;
                for cp in cps {
                    checkpoints.insert(cp.key, cp.value);
                }
            }
            Err(e) => tracing::warn!(
                path = %snap_path.display(),
                error = %e,
                "corrupt journal checkpoint snapshot; replaying checkpoints from all segments"
            ),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&snap_path, e)),
    }

    let mut cursors = load_cursors(&cursors_dir)?;

    let files = segment::list_segments(dir).map_err(|e| io_err(dir, e))?;
    let mut segments: Vec<SegmentInfo> = Vec::with_capacity(files.len() + 1);
    let n = files.len();
    for (i, (first_seq, path)) in files.into_iter().enumerate() {
        let len = std::fs::metadata(&path)
            .map_err(|e| io_err(&path, e))?
            .len();
        let last = i + 1 == n;
        if !last && first_seq >= covers_below {
            replay_sealed_checkpoints(&path, len, &mut checkpoints)
                .map_err(|e| io_err(&path, e))?;
        }
        segments.push(SegmentInfo {
            first_seq,
            path,
            len,
            sealed: !last,
        });
    }

    // The tail: keep the longest valid, gap-free prefix of frames.
    let mut cut_bytes = 0;
    let (active, next_seq) = match segments.last_mut() {
        Some(tail) => {
            let replay = tail.first_seq >= covers_below;
            let (active, next_seq) = recover_tail(tail, replay, &mut checkpoints)?;
            cut_bytes = tail.len.saturating_sub(active.len);
            tail.len = active.len;
            (active, next_seq)
        }
        None => {
            let active = create_segment(dir, 1)?;
            segments.push(SegmentInfo {
                first_seq: 1,
                path: active.path.clone(),
                len: active.len,
                sealed: false,
            });
            (active, 1)
        }
    };

    // Never reuse a sequence number a cursor already acknowledged (possible only when data
    // written without fsync was lost, or the tail was damaged): start a new segment past it.
    let max_acked = cursors.values().map(|c| c.acked).max().unwrap_or(0);
    let mut cut_records = 0;
    let (active, next_seq) = if max_acked >= next_seq {
        cut_records = max_acked - next_seq + 1;
        let fenced = fence_cursors(&cursors_dir, &mut cursors, next_seq, max_acked + 1);
        tracing::warn!(
            segment = %active.path.display(),
            offset = active.len,
            cut_bytes,
            records = %format!("{next_seq}..={max_acked}"),
            count = cut_records,
            fenced = %fenced.join(","),
            "journal recovery cut records that cursors had acknowledged: file sources read them \
             again from their last surviving checkpoint and the fenced cursors skip what they \
             had delivered; other records among them are lost for cursors that had not \
             delivered them"
        );
        if let Some(tail) = segments.last_mut() {
            tail.sealed = true;
        }
        let active = create_segment(dir, max_acked + 1)?;
        segments.push(SegmentInfo {
            first_seq: max_acked + 1,
            path: active.path.clone(),
            len: active.len,
            sealed: false,
        });
        (active, max_acked + 1)
    } else {
        (active, next_seq)
    };

    let held_bytes = segments.iter().map(|s| s.len).sum();
    let state = State {
        next_seq,
        append_segment: active.first_seq,
        append_segment_len: active.len,
        pending: VecDeque::new(),
        pending_bytes: 0,
        durable_seq: next_seq - 1,
        segments,
        checkpoints,
        snapshot_covers_below: covers_below,
        cursors,
        held_bytes,
        closing: false,
        writer_done: false,
        crash: false,
        write_blocked: false,
        inject_write_failures: 0,
        counters: Counters {
            recovery_cut_records: cut_records,
            recovery_cut_bytes: cut_bytes,
            ..Counters::default()
        },
        spare_buffers: Vec::new(),
        max_pending_bytes: super::shared::MAX_PENDING_BYTES,
        max_spare_buffers: super::shared::DEFAULT_SPARE_BUFFERS,
    };
    let _ = config;
    Ok(Recovered {
        state,
        active,
        lock_file,
    })
}

/// Takes an exclusive `flock` on `dir/LOCK`: two processes must never share a journal.
fn lock_dir(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    // A process forked by this one (any child, while it has not yet exec'd) shares the lock's
    // open file description for a moment, so a journal closed and reopened in one process can
    // find its own old lock still held: wait a little before calling it in use.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(file);
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        return Err(io_err(
            &path,
            io::Error::new(
                e.kind(),
                format!("journal is in use by another process ({e})"),
            ),
        ));
    }
}

/// How long [`lock_dir`] retries a held lock before it reports the journal in use.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn load_cursors(dir: &Path) -> Result<HashMap<String, CursorMeta>, JournalError> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".cur")) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        let meta = match format::decode_cursor(&bytes) {
            Ok((acked, sink_state, positions)) => {
                let (delivered, fence) = delivered::decode(&positions).unwrap_or_else(|e| {
                    tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "corrupt delivered positions in a journal cursor file; ignoring them"
                    );
                    Default::default()
                });
                CursorMeta {
                    acked,
                    sink_state,
                    delivered,
                    fence,
                    ..CursorMeta::default()
                }
            }
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "corrupt journal cursor file; the cursor restarts at the oldest record"
                );
                CursorMeta::default()
            }
        };
        out.insert(name.to_string(), meta);
    }
    Ok(out)
}

/// Gives every cursor that acknowledged `cut_from` or later a fence over what it delivered (for
/// records from `from_seq` on) and persists it at once, so a second restart keeps it. Returns
/// the names of the cursors fenced.
fn fence_cursors(
    cursors_dir: &Path,
    cursors: &mut HashMap<String, CursorMeta>,
    cut_from: u64,
    from_seq: u64,
) -> Vec<String> {
    let mut fenced = Vec::new();
    for (name, meta) in cursors.iter_mut() {
        if meta.acked < cut_from || meta.delivered.is_empty() {
            continue;
        }
        meta.fence = Fence::new(from_seq, &meta.delivered, meta.fence.take());
        let Some(fence) = meta.fence.as_ref() else {
            continue;
        };
        let positions = delivered::encode(&meta.delivered, Some(fence));
        let bytes = format::encode_cursor(meta.acked, meta.sink_state.as_deref(), &positions);
        if let Err(e) = segment::write_atomic(cursors_dir, &format!("{name}.cur"), &bytes) {
            // The fence still holds in memory: only a second restart before the re-read lines
            // are acknowledged would deliver them again.
            tracing::warn!(cursor = %name, error = %e, "cannot persist the cursor's fence");
        }
        fenced.push(format!("{name}({} files)", fence.files()));
    }
    fenced.sort();
    fenced
}

/// Applies the checkpoints of a sealed segment the snapshot does not cover (corrupt frames are
/// reported and skipped).
fn replay_sealed_checkpoints(
    path: &Path,
    len: u64,
    checkpoints: &mut HashMap<String, Bytes>,
) -> io::Result<()> {
    let mut reader = FrameReader::open(path)?;
    let mut offset = SEGMENT_HEADER_LEN as u64;
    let mut min_seq = 0;
    loop {
        match reader.frame_at(offset, len)? {
            FrameAt::Frame { header, body, next } => {
                if let Ok(cps) = format::decode_checkpoints(&body) {
                    for cp in cps {
                        checkpoints.insert(cp.key, cp.value);
                    }
                }
                min_seq = header.last_seq() + 1;
                offset = next;
            }
            FrameAt::End => return Ok(()),
            FrameAt::Invalid => {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    "corrupt frame in sealed journal segment; skipping it"
                );
                match reader.resync(offset + 1, len, min_seq)? {
                    Some(p) => offset = p,
                    None => return Ok(()),
                }
            }
        }
    }
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<ActiveSegment, JournalError> {
    let (path, file) = segment::create_segment_file(dir, first_seq)
        .map_err(|e| io_err(&dir.join(segment::segment_file_name(first_seq)), e))?;
    file.sync_all()
        .and_then(|()| segment::fsync_dir(dir))
        .map_err(|e| io_err(&path, e))?;
    Ok(ActiveSegment {
        first_seq,
        path,
        file: std::sync::Arc::new(file),
        len: SEGMENT_HEADER_LEN as u64,
    })
}

/// Scans the tail segment, truncates it after its last good frame, and opens it for appending.
fn recover_tail(
    tail: &SegmentInfo,
    replay_checkpoints: bool,
    checkpoints: &mut HashMap<String, Bytes>,
) -> Result<(ActiveSegment, u64), JournalError> {
    let path = &tail.path;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    let header_ok = tail.len >= SEGMENT_HEADER_LEN as u64
        && File::open(path)
            .and_then(|f| f.read_exact_at(&mut header, 0))
            .is_ok()
        && format::decode_segment_header(&header) == Ok(tail.first_seq);
    if !header_ok {
        tracing::warn!(
            segment = %path.display(),
            "journal tail segment has no valid header (torn at creation); recreating it"
        );
        let active = create_segment(dir, tail.first_seq)?;
        return Ok((active, tail.first_seq));
    }
    let mut reader = FrameReader::open(path).map_err(|e| io_err(path, e))?;
    let mut offset = SEGMENT_HEADER_LEN as u64;
    let mut next_seq = tail.first_seq;
    loop {
        match reader
            .frame_at(offset, tail.len)
            .map_err(|e| io_err(path, e))?
        {
            FrameAt::Frame { header, body, next } if header.first_seq == next_seq => {
                let Ok(cps) = format::decode_checkpoints(&body) else {
                    break;
                };
                if replay_checkpoints {
                    for cp in cps {
                        checkpoints.insert(cp.key, cp.value);
                    }
                }
                next_seq += header.count as u64;
                offset = next;
            }
            _ => break,
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    if offset < tail.len {
        tracing::warn!(
            segment = %path.display(),
            offset,
            dropped_bytes = tail.len - offset,
            "truncating the torn tail of the journal"
        );
        file.set_len(offset).map_err(|e| io_err(path, e))?;
    }
    // What a killed process left in the page cache is reported durable from now on: make it so.
    file.sync_all().map_err(|e| io_err(path, e))?;
    Ok((
        ActiveSegment {
            first_seq: tail.first_seq,
            path: path.clone(),
            file: std::sync::Arc::new(file),
            len: offset,
        },
        next_seq,
    ))
}
