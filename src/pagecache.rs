//! Written output let go of the page cache once it is on disk.
//!
//! A log output file is written once and read rarely, so its pages need not stay cached: kept,
//! they evict pages that are read (the journal's, which sinks read back right after it is
//! written), and every page of new output is a page the kernel must find. On a VM whose memory
//! its host backs lazily and takes back when the guest frees it (virtio-balloon free page
//! reporting: Firecracker and other cloud VMs, the project's own machines), finding it is a
//! host fault on first touch, and that copy into never-touched pages is what bounded the file
//! sink: 1.5 GB written in 64 KiB writes went at 236-299 MB/s into the page cache and at
//! 1,967-3,757 MB/s with the writes' pages released as below (the same pages used again), at a
//! tenth of the CPU. systemd-journald and PostgreSQL's WAL drop written files from the cache
//! for the first reason.
//!
//! [`Release`] follows the writes of one file: once a [`WINDOW`] of new bytes is written it
//! starts their writeback (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait),
//! then waits until the window before it is on disk and drops that window's pages
//! (`POSIX_FADV_DONTNEED`). At most two windows of a file stay cached. Nothing here makes
//! data durable, the sink's `fsync` policy does that; the wait is for writeback started one
//! window earlier, so it only holds a writer back that outruns its disk.
//!
//! May touch: only the file it is handed. Imports nothing of the crate.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Bytes written between two releases.
pub const WINDOW: u64 = 8 << 20;

/// Where one file's writes stand in their release (see the module doc).
#[derive(Debug)]
pub struct Release {
    /// Writeback was started for everything before this offset.
    started: u64,
    /// Pages before this offset were dropped.
    dropped: u64,
    /// The file system refused `sync_file_range` (not a regular file, say): nothing is done.
    unsupported: bool,
}

impl Release {
    /// Follows a file whose writes continue at `len` (what is before it is left as it is).
    pub fn new(len: u64) -> Release {
        Release {
            started: len,
            dropped: len,
            unsupported: false,
        }
    }

    /// Called after `file` was written up to `len` bytes. An error is a writeback error of the
    /// file (`EIO`, `ENOSPC`): reported here, it would not be reported again by the next
    /// `fdatasync` of the same file, so the caller must treat it as a failed write.
    pub fn written(&mut self, file: &File, len: u64) -> io::Result<()> {
        if self.unsupported || len < self.started.saturating_add(WINDOW) {
            return Ok(());
        }
        let fd = file.as_raw_fd();
        if let Err(e) = sync_range(fd, self.started, len - self.started, WRITE) {
            return self.refused(e);
        }
        if self.started > self.dropped {
            let (from, n) = (self.dropped, self.started - self.dropped);
            if let Err(e) = sync_range(fd, from, n, WAIT_BEFORE | WRITE | WAIT_AFTER) {
                return self.refused(e);
            }
            drop_pages(fd, from, n);
            self.dropped = self.started;
        }
        self.started = len;
        Ok(())
    }

    /// The file is done with (rotated, or the sink stops): its pages that are clean now go;
    /// dirty ones stay until written back.
    pub fn finish(&mut self, file: &File) {
        if !self.unsupported {
            drop_pages(file.as_raw_fd(), self.dropped, 0);
        }
    }

    /// Stops releasing when the file cannot be synced by range; passes real I/O errors on.
    fn refused(&mut self, e: io::Error) -> io::Result<()> {
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ESPIPE | libc::ENOSYS | libc::EOPNOTSUPP) => {
                self.unsupported = true;
                Ok(())
            }
            _ => Err(e),
        }
    }
}

const WRITE: libc::c_uint = libc::SYNC_FILE_RANGE_WRITE;
const WAIT_BEFORE: libc::c_uint = libc::SYNC_FILE_RANGE_WAIT_BEFORE;
const WAIT_AFTER: libc::c_uint = libc::SYNC_FILE_RANGE_WAIT_AFTER;

fn offset(n: u64) -> libc::off64_t {
    libc::off64_t::try_from(n).unwrap_or(libc::off64_t::MAX)
}

fn sync_range(fd: libc::c_int, from: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: a plain system call on a descriptor the caller's `File` keeps open.
    let rc = unsafe { libc::sync_file_range(fd, offset(from), offset(len), flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Advice only: the kernel keeps pages that are dirty or in use, and an error changes nothing.
fn drop_pages(fd: libc::c_int, from: u64, len: u64) {
    // SAFETY: as above.
    unsafe { libc::posix_fadvise(fd, offset(from), offset(len), libc::POSIX_FADV_DONTNEED) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Pages of `file` in the page cache (`mincore` over a read-only map of it).
    fn cached_pages(file: &File, len: u64) -> usize {
        let page = 4096usize;
        let len = len as usize;
        // SAFETY: a read-only map of a file we hold, unmapped below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: `vec` has a byte per page of the mapping.
        let rc = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(map, len) };
        vec.iter().filter(|&&b| b & 1 == 1).count()
    }

    #[test]
    fn at_most_two_windows_of_what_was_written_stay_cached() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("out"))
            .unwrap();
        let mut release = Release::new(0);
        let chunk = vec![b'x'; 1 << 20];
        let mut len = 0u64;
        for _ in 0..((6 * WINDOW) >> 20) {
            file.write_all(&chunk).unwrap();
            len += chunk.len() as u64;
            release.written(&file, len).unwrap();
        }
        let cached = cached_pages(&file, len) as u64 * 4096;
        assert!(
            cached <= 2 * WINDOW,
            "{cached} bytes of {len} cached, more than two windows"
        );
        // Everything written is still there, in order.
        drop(file);
        let back = std::fs::read(dir.path().join("out")).unwrap();
        assert_eq!(back.len() as u64, len);
        assert!(back.iter().all(|&b| b == b'x'));
    }

    #[test]
    fn a_file_that_cannot_sync_by_range_is_left_alone() {
        let (reader, writer) = std::io::pipe().unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(writer));
        let mut release = Release::new(0);
        release.written(&file, 2 * WINDOW).unwrap();
        assert!(release.unsupported);
        drop(reader);
    }
}
