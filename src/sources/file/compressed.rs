//! Rotated files compressed while Quill was down (logrotate `compress` without
//! `delaycompress`: `app.log` → `app.log.1` → `app.log.1.gz` before Quill read its end).
//!
//! After a restart, a checkpointed file that is nowhere to be found may be a `.gz`, `.zst`,
//! `.bz2` or `.xz` in the directory it was in. [`stage`] decompresses such a file on the source thread and, if
//! its decompressed first bytes are a known identity's (full fingerprint), writes into an
//! anonymous in-memory file (`memfd`) what the tailer needs at the same offsets: the first
//! bytes (the fingerprint), the bytes just before the checkpoint offset (the offset marker),
//! and everything after it. The rest stays a hole, so memory holds only the head and the part
//! not read yet. The tailer then reads that file as the rotated file it is, from its
//! checkpoint, exactly once (its checkpoints move with it; a crash while draining finds the
//! same compressed file again at the next start). `.lz4` and `.zip` are not read (logged).
//!
//! Touches only the compressed file it is given (read) and the memfd it creates.

use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::checkpoint::{Known, KnownFiles};
use super::identity::{Fingerprint, MARKER_BYTES};

/// A staged compressed file: the memfd and the identity it matched.
pub struct Staged {
    pub file: File,
    pub known: Known,
}

fn decoder(path: &Path) -> std::io::Result<Option<Box<dyn Read>>> {
    let name = path.as_os_str().as_encoded_bytes();
    let f = File::open(path)?;
    Ok(if name.ends_with(b".gz") {
        Some(Box::new(flate2::read::MultiGzDecoder::new(f)))
    } else if name.ends_with(b".zst") {
        Some(Box::new(zstd::stream::read::Decoder::new(f)?))
    } else if name.ends_with(b".bz2") {
        // Concatenated streams too (`cat a.bz2 b.bz2`, pbzip2).
        Some(Box::new(bzip2::read::MultiBzDecoder::new(f)))
    } else if name.ends_with(b".xz") {
        Some(Box::new(liblzma::read::XzDecoder::new_multi_decoder(f)))
    } else {
        None
    })
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the stream).
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Stages `path` if it decompresses to a known identity with unread data after its offset;
/// `Ok(None)` when it is none (or a format Quill does not decompress).
pub fn stage(
    path: &Path,
    known: &KnownFiles,
    fingerprint_bytes: u32,
) -> std::io::Result<Option<Staged>> {
    let Some(mut r) = decoder(path)? else {
        tracing::info!(path = %path.display(), "Compressed file not read (only .gz, .zst, .bz2 and .xz are).");
        return Ok(None);
    };
    let mut head = vec![0u8; fingerprint_bytes as usize];
    let n = read_full(&mut *r, &mut head)?;
    head.truncate(n);
    let fp = Fingerprint::of(&head);
    let Some(k) = known
        .candidates(&head, fp)
        .into_iter()
        .filter(|k| k.fingerprint == fp)
        .max_by_key(|k| k.offset)
        .cloned()
    else {
        return Ok(None);
    };
    // SAFETY: memfd_create returns a new owned descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"quill-rotated".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.write_all_at(&head, 0)?;
    let keep_from = k.offset.saturating_sub(MARKER_BYTES).max(head.len() as u64);
    let mut pos = head.len() as u64;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut *r, &mut chunk)?;
        if n == 0 {
            break;
        }
        let end = pos + n as u64;
        if end > keep_from {
            let skip = keep_from.saturating_sub(pos) as usize;
            file.write_all_at(&chunk[skip..n], pos + skip as u64)?;
        }
        pos = end;
    }
    if pos <= k.offset {
        return Ok(None); // everything in it was read before
    }
    file.set_len(pos)?;
    Ok(Some(Staged { file, known: k }))
}
