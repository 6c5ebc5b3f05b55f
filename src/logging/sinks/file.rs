//! A file sink with size rotation: `app.log` is renamed `app.log.1` (older ones shift to `.2`,
//! ...) when the next line would take it past the limit. Runs on the log worker thread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Sink;
use crate::logging::Entry;

/// GELF JSON lines appended to a file, rotated by size.
///
/// ```
/// use quill::logging::sinks::FileSink;
/// let dir = tempfile::tempdir()?;
/// let sink = FileSink::new(dir.path().join("app.log"))?.rotate_at(10 << 20).keep(5);
/// # drop(sink);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes in the current file, including what is still buffered.
    size: u64,
    rotate_at: u64,
    keep: usize,
}

impl FileSink {
    /// Opens (creating, appending) `path`. No rotation until [`FileSink::rotate_at`].
    pub fn new(path: impl AsRef<Path>) -> io::Result<FileSink> {
        let path = path.as_ref().to_path_buf();
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(FileSink {
            path,
            out: BufWriter::with_capacity(64 * 1024, file),
            size,
            rotate_at: 0,
            keep: 5,
        })
    }

    /// Rotates when the file would exceed `bytes` (0: never).
    pub fn rotate_at(mut self, bytes: u64) -> FileSink {
        self.rotate_at = bytes;
        self
    }

    /// How many rotated files to keep (`app.log.1` .. `app.log.N`); 0 deletes on rotation.
    pub fn keep(mut self, files: usize) -> FileSink {
        self.keep = files;
        self
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.keep == 0 {
            fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
        }
        self.out = BufWriter::with_capacity(64 * 1024, open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Sink for FileSink {
    fn write(&mut self, _entry: &Entry, gelf: &[u8]) -> io::Result<()> {
        let len = gelf.len() as u64 + 1;
        if self.rotate_at > 0 && self.size > 0 && self.size + len > self.rotate_at {
            self.rotate()?;
        }
        self.out.write_all(gelf)?;
        self.out.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
