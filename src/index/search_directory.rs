//! The tantivy directory searches open a partition with: its files, never written.
//!
//! tantivy's reader takes the partition's meta lock (`.tantivy-meta.lock`, a file it opens for
//! writing) while it opens segments, so that a writer's clean-up cannot delete them meanwhile. A
//! user who may only read the data directory, or a read-only mount, cannot take it: the search
//! then goes without the lock (a segment deleted under it makes the open fail, and the reader
//! retries, see [`super::reader`]). Every write is refused. Touches nothing but the partition's
//! files, read-only (and the lock file when it can).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, WatchCallback, WatchHandle, WritePtr,
};

/// A partition's directory for searching (see the module doc).
#[derive(Debug, Clone)]
pub struct SearchDirectory {
    inner: MmapDirectory,
}

impl SearchDirectory {
    pub fn open(path: &Path) -> Result<SearchDirectory, tantivy::TantivyError> {
        let inner = MmapDirectory::open(path).map_err(tantivy::TantivyError::from)?;
        Ok(SearchDirectory { inner })
    }
}

fn read_only(path: &Path) -> Arc<io::Error> {
    Arc::new(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: a search never writes to the index", path.display()),
    ))
}

impl Directory for SearchDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError {
            io_error: read_only(path),
            filepath: path.to_path_buf(),
        })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::IoError {
            io_error: read_only(path),
            filepath: PathBuf::from(path),
        })
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, _data: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: a search never writes to the index", path.display()),
        ))
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        match self.inner.acquire_lock(lock) {
            Ok(held) => Ok(held),
            Err(LockError::IoError(e)) => {
                tracing::debug!(lock = %lock.filepath.display(), "Searching without the index lock: {e}.");
                Ok(DirectoryLock::from(Box::new(())))
            }
            Err(busy) => Err(busy),
        }
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}
