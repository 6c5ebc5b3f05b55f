//! Rotation: files renamed out of the globs while Quill was down (orphans), a short file's
//! identity decided again once it is long enough, truncation (copytruncate) and what it lost,
//! and releasing rotated-away files once drained. Methods of the [`Tailer`] loop.
//!
//! **Copytruncate loss.** When a file is truncated before Quill read to the end it had seen,
//! the bytes between the offset read to and that size are gone from the live file. They are
//! settled at the next rescan: if a copy of the old content (logrotate's `app.log.1`) is adopted
//! then, it is read from the offset and only what the copy lacks is lost; otherwise all of them
//! are. Either way the loss is counted (`copytruncate_lost_bytes`) and logged once, naming the
//! file. Bytes written after Quill's last size check and truncated before its next one are
//! invisible to it: the counter is what Quill knew existed and never read.

use super::*;

/// A truncation that lost bytes Quill knew of, waiting for the next rescan to see whether a
/// copy of the old content is adopted.
#[derive(Debug)]
pub(super) struct TruncationLoss {
    fingerprint: Fingerprint,
    key: FileKey,
    /// What had been read (and journaled) of the old content.
    offset: u64,
    /// The largest size the old content was seen at.
    size: u64,
    path: PathBuf,
}

impl Tailer {
    /// After the first scan: checkpointed files that no glob found are looked for in the
    /// directory they were in (rotated out of the globs while Quill was down) and drained;
    /// identities found nowhere are forgotten.
    pub(super) fn adopt_orphans(&mut self) -> Result<(), TailError> {
        if self.known.is_empty() {
            return Ok(());
        }
        let mut dirs: BTreeMap<PathBuf, ()> = BTreeMap::new();
        for k in self.known.all() {
            if let Some(dir) = k.path.parent() {
                dirs.insert(dir.to_path_buf(), ());
            }
        }
        for dir in dirs.into_keys() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            let mut packed = Vec::new();
            for path in paths {
                if self.known.is_empty() {
                    break;
                }
                if discover::is_compressed(&path) {
                    packed.push(path);
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let key = FileKey::of(&meta);
                if !meta.is_file() || self.files.contains_key(&key) {
                    continue;
                }
                let started = self.start_file(&path, key, true);
                self.skip_unreadable(started, &path, "Cannot open rotated file")?;
            }
            // Rotated and compressed while Quill was down: read on inside it.
            for path in packed {
                if self.known.is_empty() {
                    break;
                }
                let staged = match compressed::stage(&path, &self.known, self.fingerprint_bytes) {
                    Ok(Some(s)) => s,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(source = %self.ctx.name, path = %path.display(), "Cannot decompress rotated file: {e}.");
                        continue;
                    }
                };
                let key = FileKey::of(&staged.file.metadata()?);
                tracing::info!(source = %self.ctx.name, path = %path.display(), offset = staged.known.offset, was = %staged.known.path.display(), "Reading on inside a file compressed after rotation.");
                let started = self.start_opened(staged.file, &path, key, true);
                self.skip_unreadable(started, &path, "Cannot read decompressed file")?;
            }
        }
        self.skipped.clear();
        let forgotten: Vec<Checkpoint> = self
            .known
            .all()
            .map(|k| {
                tracing::info!(source = %self.ctx.name, path = %k.path.display(), offset = k.offset, "A file read before is gone; forgetting it.");
                checkpoint::tombstone(&self.prefix, k.fingerprint, k.key)
            })
            .collect();
        self.known = KnownFiles::default();
        self.ctx
            .stats
            .files_forgotten
            .fetch_add(forgotten.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if !forgotten.is_empty() {
            self.append(Vec::new(), forgotten)?;
        }
        Ok(())
    }

    /// A short new file reached the fingerprint length before anything was read: decide its
    /// identity again with the full fingerprint. Returns false when it is to be dropped.
    pub(super) fn redecide(&mut self, f: &mut Tracked) -> Result<bool, TailError> {
        identity::read_head(&f.file, self.fingerprint_bytes, &mut self.head)?;
        let fp = Fingerprint::of(&self.head);
        f.fingerprint = fp;
        match self.decide(f.key, fp, f.size, &f.file) {
            Decision::Skip => {
                tracing::info!(source = %self.ctx.name, path = %f.path.display(), "File duplicates the content of a tracked file; skipping it.");
                f.untrack = true;
                Ok(false)
            }
            Decision::Read {
                offset,
                adopted: None,
            } => {
                // Found after the first scan: a new file, read from its start.
                let _ = offset;
                Ok(true)
            }
            Decision::Read {
                offset,
                adopted: Some(old),
            } => {
                f.reader.reset(offset);
                f.committed = offset;
                f.marker = identity::marker(&f.file, offset, &mut self.marker_buf)?;
                f.metrics.offset = offset;
                f.metrics.rotations += 1;
                let cps = vec![
                    Checkpoint {
                        key: checkpoint::key(&self.prefix, fp, f.key),
                        value: checkpoint::value(offset, f.marker, &f.path),
                    },
                    checkpoint::tombstone(&self.prefix, old.fingerprint, old.key),
                ];
                self.append(Vec::new(), cps)?;
                tracing::info!(source = %self.ctx.name, path = %f.path.display(), offset, was = %old.path.display(), "Resuming file.");
                Ok(true)
            }
        }
    }

    /// Whether the first bytes still are the ones the fingerprint was taken of.
    pub(super) fn head_unchanged(&mut self, f: &Tracked) -> std::io::Result<bool> {
        identity::read_head(&f.file, f.fingerprint.len, &mut self.head)?;
        Ok(Fingerprint::of(&self.head) == f.fingerprint)
    }

    /// Between two chunks of one read pass: whether the file was truncated (or rewritten) since
    /// the pass checked it, so that nothing of the new content is read as if it were the old.
    pub(super) fn truncated_while_reading(&mut self, f: &Tracked) -> std::io::Result<bool> {
        if f.file.metadata()?.len() < f.reader.read_to() {
            return Ok(true);
        }
        Ok(f.fingerprint.is_full(self.fingerprint_bytes) && !self.head_unchanged(f)?)
    }

    /// Copytruncate (or a rewrite): journal what was held of the old content, remember the old
    /// identity (so its copy can be matched) and what was not read of the `seen_size` bytes the
    /// old content had, and start again at 0.
    pub(super) fn on_truncated(
        &mut self,
        f: &mut Tracked,
        seen_size: u64,
    ) -> Result<(), TailError> {
        tracing::info!(source = %self.ctx.name, path = %f.path.display(), offset = f.reader.read_to(), size = f.size, "File was truncated; reading from its start.");
        self.flush_held(f)?;
        if seen_size > f.committed {
            self.truncations.push(TruncationLoss {
                fingerprint: f.fingerprint,
                key: f.key,
                offset: f.committed,
                size: seen_size,
                path: f.path.clone(),
            });
        }
        self.known.insert(f.known());
        self.skipped.clear();
        self.rescan_requested = true;
        f.reader.reset(0);
        if let Some(j) = f.joiner.as_mut() {
            j.clear();
        }
        f.committed = 0;
        f.metrics.offset = 0;
        f.metrics.rotations += 1;
        f.fingerprint = identity::fingerprint(&f.file, self.fingerprint_bytes, &mut self.head)?;
        Ok(())
    }

    /// A checkpointed identity `k` was adopted by a file of `size` bytes: if it is the old content
    /// of a truncated file, only what that copy lacks of the old content is lost.
    pub(super) fn settle_adopted(&mut self, k: &Known, size: u64) {
        let found = self
            .truncations
            .iter()
            .position(|t| t.fingerprint == k.fingerprint && t.key == k.key);
        if let Some(t) = found.map(|i| self.truncations.swap_remove(i)) {
            self.count_truncation_loss(&t, size.max(t.offset));
        }
    }

    /// At a rescan: truncations whose old content no copy took over lost what was not read.
    pub(super) fn settle_truncations(&mut self) {
        for t in std::mem::take(&mut self.truncations) {
            self.count_truncation_loss(&t, t.offset);
        }
    }

    fn count_truncation_loss(&self, t: &TruncationLoss, read: u64) {
        let lost = t.size.saturating_sub(read);
        if lost == 0 {
            return;
        }
        self.ctx
            .stats
            .copytruncate_lost_bytes
            .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(source = %self.ctx.name, path = %t.path.display(), lost_bytes = lost, offset = t.offset, size = t.size, "File was truncated before it was read to its end; {lost} bytes are lost (copytruncate window).");
    }

    /// Releases rotated-away files that were read to their end and stopped growing.
    pub(super) fn release_finished(&mut self) -> Result<(), TailError> {
        let release_after = self.config.release_after.0;
        let done: Vec<FileKey> = self
            .files
            .values()
            .filter(|f| {
                f.draining
                    && f.reader.read_to() >= f.size
                    && f.last_growth.elapsed() >= release_after
            })
            .map(|f| f.key)
            .collect();
        for key in done {
            // It may have grown since the last pass: read it once more first.
            match self.service(key) {
                Ok(_) | Err(TailError::Io(_)) => {}
                Err(e) => return Err(e),
            }
            let Some(mut f) = self.files.remove(&key) else {
                continue;
            };
            if f.reader.read_to() < f.size {
                self.files.insert(key, f);
                continue;
            }
            match self.flush_held(&mut f) {
                Ok(()) | Err(TailError::Io(_)) => {}
                Err(e) => return Err(e),
            }
            let deleted = f.file.metadata().map(|m| m.nlink() == 0).unwrap_or(true);
            if deleted {
                self.append(
                    Vec::new(),
                    vec![checkpoint::tombstone(&self.prefix, f.fingerprint, f.key)],
                )?;
            } else {
                self.known.insert(f.known());
            }
            tracing::info!(
                source = %self.ctx.name,
                path = %f.path.display(),
                lines = f.metrics.lines,
                bytes = f.metrics.bytes_read,
                deleted,
                "Released rotated file after reading it to its end."
            );
            self.metrics.add_released(&f.metrics);
        }
        Ok(())
    }
}
